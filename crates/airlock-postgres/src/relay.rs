//! A logged-in session: every statement is decided before the server sees it.
//!
//! Client → server: a Simple Query is decided whole (every statement of a multi-statement
//! string); an Extended Query batch is kept until Sync or Flush: each Parse is classified (a
//! denied one refuses the batch), each Bind is decided on the statement it runs (an `approve`
//! holds there), and the batch goes out only when every part passed. Server → client streams
//! message by message (results are never buffered whole); only ReadyForQuery is read, for the
//! real transaction status, and error/notice texts, to scrub the password from them.
//!
//! A refusal answers as PostgreSQL would: ErrorResponse (42501) and, at the Sync, a
//! ReadyForQuery with the real status. Inside a transaction block the server must be in the
//! failed state too, so airlock runs one statement of its own that fails (its answer is not
//! relayed): the client and the server then agree on `E`, and ROLLBACK works.
//!
//! COPY streams both ways, message by message: CopyData from the server like any result, and
//! CopyData/CopyDone/CopyFail from the client straight on (the COPY was decided with its
//! statement). A server in copy-in mode ignores Sync, so when a statement that is `COPY … FROM
//! STDIN` runs, the relay learns from the server whether copy-in began (CopyInResponse) before it
//! counts a Sync as owed a ReadyForQuery.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, watch};

use crate::PgGateway;
use crate::classify::{Statements, classify};
use crate::codec::{self, Frame};
use crate::decide::{Ask, Outcome, decide};
use crate::upstream::{Stream, Upstream};

pub(crate) struct Who {
    pub(crate) agent: String,
    pub(crate) database: String,
    /// (the server's process id, the one minted for the client), as `cancel` gave them.
    pub(crate) pids: Option<(i32, i32)>,
    /// How the agent logged in: a reload that removes it (or reissues its token) ends the session.
    pub(crate) login: airlock_gateway::Principal,
}

/// Fails on purpose to put a transaction block into the failed state, as the refused statement
/// would have; its answer is swallowed.
const ABORT: &str =
    "DO $airlock$ BEGIN RAISE EXCEPTION 'airlock refused a statement in this transaction'; END $airlock$";
/// Prepared statements remembered per session; beyond this, older names are forgotten (a Bind of
/// a forgotten name reads as unparsed: refused unless a restrictive rule lets it pass).
const MAX_PREPARED: usize = 10_000;
/// Error and notice messages up to this size are read whole and scrubbed; larger ones stream.
const SCRUB_LIMIT: usize = 64 * 1024;

/// How far the server has answered: ReadyForQuery messages seen, and the last status; and
/// how many CopyInResponse and ErrorResponse messages it sent.
#[derive(Clone, Copy)]
struct Progress {
    answered: u64,
    status: u8,
    copy_ins: u64,
    errors: u64,
}

type ClientWriter = Arc<Mutex<WriteHalf<Box<dyn Stream>>>>;

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

pub(crate) async fn run(
    client: Box<dyn Stream>,
    mut buf: BytesMut,
    up: Upstream,
    who: Who,
    gw: Arc<PgGateway>,
) -> std::io::Result<()> {
    let (mut cr, cw) = tokio::io::split(client);
    let cw: ClientWriter = Arc::new(Mutex::new(cw));
    let (ur, uw) = tokio::io::split(up.stream);
    let (tx, rx) = watch::channel(Progress {
        answered: 0,
        status: up.status,
        copy_ins: 0,
        errors: 0,
    });
    let swallow = Arc::new(AtomicU64::new(0));
    let scrub = gw
        .databases
        .get(&who.database)
        .map(|db| {
            let placeholder = db.config.placeholder.as_bytes().to_vec();
            airlock_vault::Scrubber::new(vec![(db.password.clone(), placeholder)])
        })
        .unwrap_or_else(|| airlock_vault::Scrubber::new(vec![]));
    let rest = std::io::Cursor::new(up.rest.to_vec());
    let down = tokio::spawn(downstream(
        BufReader::new(rest.chain(ur)),
        cw.clone(),
        tx,
        swallow.clone(),
        scrub,
        who.pids,
    ));
    let mut s = Session {
        gw,
        who,
        up: uw,
        client: cw,
        progress: rx,
        swallow,
        sent: 0,
        batch: Vec::new(),
        refused: None,
        skipping: false,
        prepared: HashMap::new(),
        copy_portals: HashSet::new(),
        batch_copy: false,
        copying: false,
    };
    let revoked = s.gw.gateway.revoked(s.who.login.clone());
    let result = tokio::select! {
        result = s.client_loop(&mut cr, &mut buf) => result,
        // A statement in flight is cut with the session: its result does not reach the agent
        // (the server rolls back an open transaction when airlock's connection to it closes).
        () = revoked => {
            down.abort();
            // A client that does not read is not waited for.
            tokio::time::timeout(std::time::Duration::from_secs(5), s.cut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    down.abort();
    result
}

impl Session {
    /// Tells the client why its session ends, and records it.
    async fn cut(&mut self) -> std::io::Result<()> {
        let why = airlock_gateway::CUT;
        tracing::info!(agent = %self.who.agent, database = %self.who.database, "{why}");
        let ev = airlock_core::audit::AuditEvent {
            ts_ms: airlock_gateway::now_ms(),
            kind: "database".into(),
            agent: Some(self.who.agent.clone()),
            method: None,
            host: Some(self.who.database.clone()),
            path: None,
            rules: vec![],
            decision: "deny".into(),
            reason: why.into(),
            secrets: vec![],
            status: None,
            bytes_in: 0,
            bytes_out: 0,
            latency_us: 0,
            detail: None,
        };
        let _ = self.gw.gateway.audit.append(ev);
        let mut out = BytesMut::new();
        codec::error_response("57P01", &format!("airlock: {why}"), None).encode(&mut out);
        let mut client = self.client.lock().await;
        client.write_all(&out).await?;
        client.shutdown().await
    }
}

struct Session {
    gw: Arc<PgGateway>,
    who: Who,
    up: WriteHalf<Box<dyn Stream>>,
    client: ClientWriter,
    progress: watch::Receiver<Progress>,
    swallow: Arc<AtomicU64>,
    /// ReadyForQuery messages the server owes (Queries and Syncs sent, airlock's own included).
    sent: u64,
    /// The Extended Query messages since the last Sync/Flush.
    batch: Vec<Frame>,
    /// Why the current batch is refused, once one part was.
    refused: Option<(Option<String>, String)>,
    /// After a refused batch ended by Flush: drop everything until Sync.
    skipping: bool,
    /// Statement name → (text, classes), as the Parse gave them.
    prepared: HashMap<String, (String, Statements)>,
    /// Portals bound to a `COPY … FROM STDIN` statement.
    copy_portals: HashSet<String>,
    /// The current batch executes such a portal.
    batch_copy: bool,
    /// The server is in copy-in mode (it said CopyInResponse; no CopyDone/CopyFail since).
    copying: bool,
}

impl Session {
    async fn client_loop(&mut self, cr: &mut ReadHalf<Box<dyn Stream>>, buf: &mut BytesMut) -> std::io::Result<()> {
        loop {
            let frame = match codec::decode(buf, codec::MAX_CLIENT_MESSAGE).map_err(io_err)? {
                Some(f) => f,
                None => {
                    if cr.read_buf(buf).await? == 0 {
                        return Ok(());
                    }
                    continue;
                }
            };
            // Anything but CopyData, Sync and Flush ends copy-in at the server: CopyDone and
            // CopyFail by design, any other message as an error.
            if !matches!(frame.tag, b'd' | b'S' | b'H') {
                self.copying = false;
            }
            match frame.tag {
                b'Q' => self.query(frame).await?,
                b'P' => self.parse(frame).await?,
                b'B' => self.bind(frame).await?,
                b'E' => {
                    let mut body = frame.body.clone();
                    let portal = codec::cstr(&mut body).unwrap_or_default();
                    self.batch_copy |= self.copy_portals.contains(&portal);
                    self.batch.push(frame);
                }
                b'D' | b'C' => self.batch.push(frame),
                b'S' => {
                    self.batch.push(frame);
                    self.end_batch(true).await?;
                }
                b'H' => {
                    self.batch.push(frame);
                    self.end_batch(false).await?;
                }
                b'd' | b'c' | b'f' => {
                    let more = whole_frame_buffered(buf);
                    self.copy_message(frame, more).await?
                }
                b'X' => {
                    let _ = self.forward(&[frame]).await;
                    return Ok(());
                }
                // The function-call protocol names a function by OID, past any statement: refused.
                b'F' => {
                    let why = "the function-call protocol is not available through airlock".to_string();
                    self.refuse(None, why, true).await?;
                }
                other => {
                    let e = codec::error_response("08P01", "airlock: unexpected message", None);
                    self.reply(&[e]).await?;
                    return Err(io_err(format!("unexpected message {:?}", other as char)));
                }
            }
        }
    }

    fn ask<'a>(&'a self, text: &'a str, st: &'a Statements, prepare_only: bool) -> Ask<'a> {
        Ask {
            agent: &self.who.agent,
            database: &self.who.database,
            text,
            st,
            prepare_only,
        }
    }

    async fn query(&mut self, frame: Frame) -> std::io::Result<()> {
        let text = codec::query_text(&frame).map_err(io_err)?;
        let st = classify(&text);
        let outcome = decide(&self.gw, self.ask(&text, &st, false)).await;
        match outcome {
            Outcome::Forward if st.copy_in => self.forward_may_copy(&[frame], End::Query).await,
            Outcome::Forward => {
                self.forward(&[frame]).await?;
                self.sent += 1;
                Ok(())
            }
            Outcome::Refuse { rule, reason } => self.refuse(rule, reason, true).await,
        }
    }

    async fn parse(&mut self, frame: Frame) -> std::io::Result<()> {
        let (name, text) = codec::parse_message(&frame).map_err(io_err)?;
        let st = classify(&text);
        if self.refused.is_none() {
            let outcome = decide(&self.gw, self.ask(&text, &st, true)).await;
            if let Outcome::Refuse { rule, reason } = outcome {
                self.refused = Some((rule, reason));
            }
        }
        if self.prepared.len() >= MAX_PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(name, (text, st));
        self.batch.push(frame);
        Ok(())
    }

    async fn bind(&mut self, frame: Frame) -> std::io::Result<()> {
        let (portal, stmt) = codec::bind_statement(&frame).map_err(io_err)?;
        let unknown = (
            String::new(),
            Statements {
                classes: vec![airlock_core::facts::SqlClass::Other],
                unparsed: true,
                ..Statements::default()
            },
        );
        let (text, st) = self.prepared.get(&stmt).cloned().unwrap_or(unknown);
        if self.refused.is_none() {
            let outcome = decide(&self.gw, self.ask(&text, &st, false)).await;
            if let Outcome::Refuse { rule, reason } = outcome {
                self.refused = Some((rule, reason));
            }
        }
        if st.copy_in {
            if self.copy_portals.len() >= MAX_PREPARED {
                self.copy_portals.clear();
            }
            self.copy_portals.insert(portal);
        } else {
            self.copy_portals.remove(&portal);
        }
        self.batch.push(frame);
        Ok(())
    }

    async fn end_batch(&mut self, sync: bool) -> std::io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let copy = std::mem::take(&mut self.batch_copy);
        if self.skipping {
            if sync {
                self.skipping = false;
                let status = self.caught_up().await?;
                self.reply(&[codec::ready_for_query(status)]).await?;
            }
            return Ok(());
        }
        if let Some((rule, reason)) = self.refused.take() {
            return self.refuse(rule, reason, sync).await;
        }
        if copy {
            let end = if sync { End::Sync } else { End::Flush };
            return self.forward_may_copy(&batch, end).await;
        }
        self.forward(&batch).await?;
        // In copy-in the server ignores Sync: it owes no ReadyForQuery for it.
        if sync && !self.copying {
            self.sent += 1;
        }
        Ok(())
    }

    /// Forwards `frames`, which run a `COPY … FROM STDIN`, and learns from the server whether
    /// copy-in began (CopyInResponse) or not (an error, or every answer given). Everything sent
    /// before is answered first, so the answer read is these frames'. A Sync ending them is owed
    /// a ReadyForQuery only when copy-in did not begin; a Simple Query always is (after its COPY).
    async fn forward_may_copy(&mut self, frames: &[Frame], end: End) -> std::io::Result<()> {
        self.caught_up().await?;
        let before = *self.progress.borrow();
        self.forward(frames).await?;
        let began = {
            let p = self
                .progress
                .wait_for(|p| p.copy_ins > before.copy_ins || p.errors > before.errors || p.answered > before.answered)
                .await
                .map_err(|_| io_err("the database connection closed"))?;
            p.copy_ins > before.copy_ins
        };
        self.copying = began;
        if end == End::Query || (end == End::Sync && !began) {
            self.sent += 1;
        }
        Ok(())
    }

    /// CopyData, CopyDone, CopyFail: on to the server as each comes (never gathered), flushed
    /// when no further message is already here (`more`). Extended Query messages still pending
    /// go first, in order. In a refused batch they belong to a COPY the server never got: dropped.
    async fn copy_message(&mut self, frame: Frame, more: bool) -> std::io::Result<()> {
        if self.skipping || self.refused.is_some() {
            return Ok(());
        }
        if !self.batch.is_empty() {
            self.end_batch(false).await?;
        }
        let mut head = [frame.tag, 0, 0, 0, 0];
        head[1..].copy_from_slice(&(frame.body.len() as u32 + 4).to_be_bytes());
        self.up.write_all(&head).await?;
        self.up.write_all(&frame.body).await?;
        if !more {
            self.up.flush().await?;
        }
        Ok(())
    }

    /// Answers a refusal once everything sent before it is answered, with the real status.
    async fn refuse(&mut self, rule: Option<String>, reason: String, ready: bool) -> std::io::Result<()> {
        let mut status = self.caught_up().await?;
        if status == b'T' {
            let mut out = BytesMut::new();
            codec::Frame {
                tag: b'Q',
                body: bytes::Bytes::from(format!("{ABORT}\0")),
            }
            .encode(&mut out);
            self.swallow.fetch_add(1, Ordering::SeqCst);
            self.up.write_all(&out).await?;
            self.up.flush().await?;
            self.sent += 1;
            status = self.caught_up().await?;
        }
        let message = format!("airlock: {reason}");
        let detail = match &rule {
            Some(r) => format!("refused by airlock rule \"{r}\""),
            None => "refused by airlock (no rule allows it; the default applies)".to_string(),
        };
        let mut answer = vec![codec::error_response("42501", &message, Some(&detail))];
        if ready {
            answer.push(codec::ready_for_query(status));
        } else {
            self.skipping = true;
        }
        self.reply(&answer).await
    }

    /// Waits until the server answered everything sent; the transaction status then.
    async fn caught_up(&mut self) -> std::io::Result<u8> {
        let sent = self.sent;
        let p = self
            .progress
            .wait_for(|p| p.answered >= sent)
            .await
            .map_err(|_| io_err("the database connection closed"))?;
        Ok(p.status)
    }

    async fn forward(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        self.up.write_all(&out).await?;
        self.up.flush().await
    }

    async fn reply(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        let mut w = self.client.lock().await;
        w.write_all(&out).await?;
        w.flush().await
    }
}

/// What ends frames that may start copy-in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Query,
    Sync,
    Flush,
}

/// Whether `buf` already holds another whole message.
fn whole_frame_buffered(buf: &[u8]) -> bool {
    buf.len() >= 5 && {
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        len >= 4 && buf.len() > len as usize
    }
}

/// A NotificationResponse from this session's own backend names the process id the client
/// knows (the minted one), so a client can still tell its own notifications apart.
fn own_notification(mut body: Vec<u8>, pids: Option<(i32, i32)>) -> Vec<u8> {
    if let Some((server, minted)) = pids
        && body.get(..4) == Some(&server.to_be_bytes()[..])
    {
        body[..4].copy_from_slice(&minted.to_be_bytes());
    }
    body
}

/// Server → client, message by message. ReadyForQuery updates the progress; airlock's own
/// statement's answer is dropped; errors and notices are scrubbed of the password.
///
/// Messages are gathered and written together while more of the server's answer is already
/// buffered: a statement's RowDescription, DataRows, CommandComplete and ReadyForQuery leave in
/// one TLS record and one write, not one each (each write is a syscall and a record). What is
/// gathered is written before this task waits on the server and before it reports progress, so
/// airlock's own answers (written by the other direction) never overtake it.
async fn downstream<R: AsyncRead + Unpin>(
    mut up: BufReader<R>,
    client: ClientWriter,
    tx: watch::Sender<Progress>,
    swallow: Arc<AtomicU64>,
    scrub: airlock_vault::Scrubber,
    pids: Option<(i32, i32)>,
) -> std::io::Result<()> {
    let mut head = [0u8; 5];
    let mut out = BytesMut::new();
    loop {
        if up.buffer().is_empty() || out.len() >= GATHER {
            send_out(&client, &mut out).await?;
        }
        up.read_exact(&mut head).await?;
        if matches!(head[0], b'G' | b'E') {
            send_out(&client, &mut out).await?;
        }
        match head[0] {
            b'G' => tx.send_modify(|p| p.copy_ins += 1),
            b'E' => tx.send_modify(|p| p.errors += 1),
            _ => {}
        }
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len < 4 {
            return Err(io_err("the database sent a bad message length"));
        }
        let n = (len - 4) as usize;
        let dropping = swallow.load(Ordering::SeqCst) > 0;
        let small = head[0] == b'Z' || (matches!(head[0], b'E' | b'N' | b'A') && n <= SCRUB_LIMIT);
        if small || (dropping && n <= SCRUB_LIMIT) {
            let mut body = vec![0u8; n];
            up.read_exact(&mut body).await?;
            if !dropping {
                let shown = match head[0] {
                    b'E' | b'N' => scrub.scrub_once(&body).unwrap_or_else(|| body.clone()),
                    b'A' => own_notification(body.clone(), pids),
                    _ => body.clone(),
                };
                let f = Frame {
                    tag: head[0],
                    body: shown.into(),
                };
                f.encode(&mut out);
            }
            if head[0] == b'Z' {
                send_out(&client, &mut out).await?;
                if dropping {
                    swallow.fetch_sub(1, Ordering::SeqCst);
                }
                let status = body.first().copied().unwrap_or(b'I');
                tx.send_modify(|p| {
                    p.answered += 1;
                    p.status = status;
                });
            }
            continue;
        }
        if dropping {
            tokio::io::copy(&mut (&mut up).take(n as u64), &mut tokio::io::sink()).await?;
            continue;
        }
        if n <= GATHER {
            out.extend_from_slice(&head);
            let at = out.len();
            out.resize(at + n, 0);
            up.read_exact(&mut out[at..]).await?;
            continue;
        }
        // A large message streams through (its bytes are never held whole).
        send_out(&client, &mut out).await?;
        let mut w = client.lock().await;
        w.write_all(&head).await?;
        let copied = tokio::io::copy(&mut (&mut up).take(n as u64), &mut *w).await?;
        if copied != n as u64 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if up.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

/// Most bytes of the server's answer gathered before they are written.
const GATHER: usize = 64 * 1024;

/// Writes and flushes what [`downstream`] gathered, if anything.
async fn send_out(client: &ClientWriter, out: &mut BytesMut) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let mut w = client.lock().await;
    w.write_all(out).await?;
    out.clear();
    w.flush().await
}
