//! The gateway's logs on stderr: text for a person at a terminal, one JSON object a line for a
//! collector (journald, Loki, a container runtime). The `AIRLOCK_LOG` filter (RUST_LOG syntax)
//! applies to both.
//!
//! A JSON line has stable keys: `timestamp` (RFC 3339, UTC), `level`, `target` (the module that
//! logged), and `fields`, holding `message` and the event's own fields (`agent`, `rule`,
//! `decision`, `host`, `error`, …). Events never carry a secret or a request body: every value
//! logged is something the gateway itself parsed or decided.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Without `--log-format`: text when stderr is a terminal, JSON otherwise.
pub fn resolve(format: Option<LogFormat>, stderr_is_terminal: bool) -> LogFormat {
    format.unwrap_or(if stderr_is_terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    })
}

/// The default filter: airlock's own crates at info, everything else at warn.
const DEFAULT_FILTER: &str = "airlock=info,warn";

pub fn init(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match resolve(format, std::io::stderr().is_terminal()) {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_text_anything_else_json_unless_told() {
        assert_eq!(resolve(None, true), LogFormat::Text);
        assert_eq!(resolve(None, false), LogFormat::Json);
        assert_eq!(resolve(Some(LogFormat::Json), true), LogFormat::Json);
        assert_eq!(resolve(Some(LogFormat::Text), false), LogFormat::Text);
    }
}
