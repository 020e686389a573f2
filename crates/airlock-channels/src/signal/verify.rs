//! Events from signal-cli's `GET /api/v1/events` (server-sent events), as pure functions: the
//! SSE framing ([`Sse`]) and an event's JSON → a typed vote. signal-cli sends one `receive`
//! event per envelope, its data `{"envelope": {…}, "account": "+…"}` (the JSON-RPC `receive`
//! notification's params; a whole notification is accepted too). A vote is a direct message
//! (`dataMessage`, no group) whose text is `approve CODE` / `deny CODE` / `grant CODE`; the
//! voter is `envelope.sourceNumber` as signal-cli reports it.

use serde_json::Value;

use crate::ballot;
use crate::token::Decision;

/// E.164: `+` and 6 to 15 digits.
pub fn is_number(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The sender's number (E.164), as signal-cli reports it.
    pub from: String,
    pub code: String,
    pub decision: Decision,
    /// The message's timestamp (ms): its id, for the answer.
    pub timestamp: u64,
}

/// An event's data → the vote it carries, if any. `account` (when configured) must match.
pub fn vote(data: &str, account: Option<&str>) -> Option<Vote> {
    let v: Value = serde_json::from_str(data).ok()?;
    let params = if v["method"] == "receive" { &v["params"] } else { &v };
    if let (Some(want), Some(got)) = (account, params["account"].as_str())
        && want != got
    {
        return None;
    }
    let env = &params["envelope"];
    let msg = &env["dataMessage"];
    if !msg.is_object() || msg.get("groupInfo").is_some_and(|g| !g.is_null()) {
        return None;
    }
    let from = env["sourceNumber"].as_str().filter(|n| is_number(n))?;
    let (decision, code) = ballot::command(msg["message"].as_str()?)?;
    Some(Vote {
        from: from.to_string(),
        code,
        decision,
        timestamp: msg["timestamp"]
            .as_u64()
            .or_else(|| env["timestamp"].as_u64())
            .unwrap_or(0),
    })
}

/// The most a single event may hold (an envelope is a few KiB).
pub const MAX_EVENT: usize = 256 * 1024;

/// Server-sent events framing: lines in, each complete event's `data` out.
#[derive(Debug, Default)]
pub struct Sse {
    buf: Vec<u8>,
    data: String,
    oversized: bool,
}

impl Sse {
    /// Feeds bytes; returns the data of every event they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(bytes);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() && !self.oversized {
                    out.push(std::mem::take(&mut self.data));
                }
                self.data.clear();
                self.oversized = false;
            } else if let Some(d) = line.strip_prefix("data:") {
                if self.data.len() + d.len() > MAX_EVENT {
                    self.oversized = true;
                    continue;
                }
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
            // `event:`, `id:`, `retry:` and comments carry nothing we need.
        }
        if self.buf.len() > MAX_EVENT {
            // A line that never ends: drop it.
            self.buf.clear();
            self.oversized = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn receive(from: Value, text: &str, group: bool) -> String {
        let mut dm =
            json!({"timestamp": 1_700_000_000_123u64, "message": text, "expiresInSeconds": 0, "viewOnce": false});
        if group {
            dm["groupInfo"] = json!({"groupId": "abc", "type": "DELIVER"});
        }
        json!({"envelope": {"source": from, "sourceNumber": from, "sourceUuid": "u-1", "sourceName": "Alice",
            "sourceDevice": 1, "timestamp": 1_700_000_000_123u64, "dataMessage": dm}, "account": "+15550000000"})
        .to_string()
    }

    #[test]
    fn direct_messages_with_a_code_are_votes() {
        let v = vote(&receive(json!("+15551234567"), "approve K7QX2M9P", false), None).unwrap();
        assert_eq!(
            v,
            Vote {
                from: "+15551234567".into(),
                code: "K7QX2M9P".into(),
                decision: Decision::Approve,
                timestamp: 1_700_000_000_123
            }
        );
        let wrapped = json!({"jsonrpc": "2.0", "method": "receive",
            "params": serde_json::from_str::<Value>(&receive(json!("+15551234567"), "deny K7QX2M9P", false)).unwrap()});
        assert_eq!(
            vote(&wrapped.to_string(), Some("+15550000000")).unwrap().decision,
            Decision::Deny
        );
        assert_eq!(
            vote(&wrapped.to_string(), Some("+15559999999")),
            None,
            "another account's"
        );
        assert_eq!(
            vote(&receive(json!("+15551234567"), "approve K7QX2M9P", true), None),
            None,
            "groups"
        );
        assert_eq!(
            vote(&receive(json!(null), "approve K7QX2M9P", false), None),
            None,
            "number hidden"
        );
        assert_eq!(vote(&receive(json!("+15551234567"), "hello", false), None), None);
        assert_eq!(vote("not json", None), None);
        assert!(is_number("+15551234567") && !is_number("15551234567") && !is_number("+1"));
    }

    #[test]
    fn sse_frames_split_anywhere() {
        let mut s = Sse::default();
        let stream =
            b": keepalive\n\nevent: receive\ndata: {\"a\":\ndata: 1}\n\nevent: receive\r\ndata:{\"b\":2}\r\n\r\n";
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            got.extend(s.feed(chunk));
        }
        assert_eq!(got, vec!["{\"a\":\n1}".to_string(), "{\"b\":2}".to_string()]);
        let mut s = Sse::default();
        let big = format!("data: {}\n\ndata: ok\n\n", "x".repeat(MAX_EVENT + 1));
        assert_eq!(s.feed(big.as_bytes()), vec!["ok".to_string()]);
    }
}
