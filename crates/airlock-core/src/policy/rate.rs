//! Rate limits: the rule's `rate` and the in-process limiter.

use std::collections::HashMap;

use serde::Serialize;

/// `count` requests per `per_secs`, per agent and rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: u32,
    pub per_secs: u32,
}

impl Rate {
    /// Parses `"60/min"`, `"10/s"`, `"1000/hour"`, `"5/day"`.
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, unit) = s.split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0)?;
        let per_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return None,
        };
        Some(Rate { count, per_secs })
    }

    /// GCRA in milliseconds: `(interval, burst)`. A request at `now` is within the rate while
    /// `max(tat, now) + interval <= now + burst`, and then moves `tat` there.
    pub fn gcra_ms(self) -> (u64, u64) {
        let count = u64::from(self.count.max(1));
        let interval = u64::from(self.per_secs) * 1000 / count;
        (interval, interval * count)
    }
}

/// Generic cell rate limiting (GCRA, [`Rate::gcra_ms`]): one timestamp per key, time given by
/// the caller. The store runs the same arithmetic for replicas that share their limits.
#[derive(Debug, Default)]
pub struct RateLimiter {
    tat: HashMap<(usize, String), u64>,
}

impl RateLimiter {
    /// Records one request for (`rule`, `agent`) at `now_ms`; false when it exceeds `rate`.
    pub fn check(&mut self, rule: usize, agent: &str, rate: Rate, now_ms: u64) -> bool {
        let (interval, burst) = rate.gcra_ms();
        let key = (rule, agent.to_string());
        let tat = self.tat.get(&key).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms + interval > burst {
            return false;
        }
        self.tat.insert(key, tat + interval);
        true
    }

    /// Drops keys idle long enough to be full again; call now and then to bound memory.
    pub fn prune(&mut self, now_ms: u64) {
        self.tat.retain(|_, tat| *tat > now_ms);
    }
}
