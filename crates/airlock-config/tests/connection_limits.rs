//! `[gateway]` connection time limits and `[approvals] max_held_per_agent`: defaults, values,
//! and errors that name the file, the line and the key.

use std::path::Path;
use std::time::Duration;

use airlock_config::{Config, ConfigError, DEFAULT_CONN_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_HELD_PER_AGENT};

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::parse(src, Path::new("airlock.toml"))
}

#[test]
fn absent_keys_take_the_defaults() {
    let c = parse("").unwrap_or_else(|e| panic!("{e}"));
    let t = c.gateway.timeouts;
    assert_eq!(DEFAULT_CONN_TIMEOUT, Duration::from_secs(30));
    assert_eq!(
        (t.handshake, t.header, t.idle),
        (DEFAULT_CONN_TIMEOUT, DEFAULT_CONN_TIMEOUT, DEFAULT_CONN_TIMEOUT)
    );
    assert_eq!(c.approvals.max_held_per_agent, DEFAULT_MAX_HELD_PER_AGENT);
    assert_eq!(DEFAULT_MAX_HELD_PER_AGENT, 100);
}

#[test]
fn configured_values_are_read() {
    let src = "[gateway]\nhandshake_timeout = \"5s\"\nheader_timeout = \"1m\"\nidle_timeout = \"1h\"\n\
               [approvals]\nmax_held_per_agent = 7\n";
    let c = parse(src).unwrap_or_else(|e| panic!("{e}"));
    let t = c.gateway.timeouts;
    assert_eq!(t.handshake, Duration::from_secs(5));
    assert_eq!(t.header, Duration::from_secs(60));
    assert_eq!(t.idle, Duration::from_secs(3600));
    assert_eq!(c.approvals.max_held_per_agent, 7);
}

#[test]
fn bad_values_name_the_file_line_and_key() {
    let src = "[gateway]\n\
               handshake_timeout = \"0s\"\n\
               header_timeout = \"soon\"\n\
               idle_timeout = \"2h\"\n\
               [approvals]\n\
               max_held_per_agent = 0\n";
    let errors = match parse(src) {
        Err(ConfigError::Invalid { errors }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    };
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for want in [
        "airlock.toml:2: gateway.handshake_timeout: must be longer than 0s",
        "airlock.toml:3: gateway.header_timeout: bad duration \"soon\"",
        "airlock.toml:4: gateway.idle_timeout: must be at most 1h",
        "airlock.toml:6: approvals.max_held_per_agent: must be between 1 and 10000",
    ] {
        assert!(shown.iter().any(|s| s.starts_with(want)), "no {want:?} in {shown:#?}");
    }
    assert_eq!(errors.len(), 4, "{shown:#?}");

    let wrong_type = "[approvals]\nmax_held_per_agent = \"lots\"\n[gateway]\nidle_timeout = 30\n";
    let shown = parse(wrong_type).unwrap_err().to_string();
    assert!(
        shown.contains("airlock.toml:2: approvals.max_held_per_agent: expected an integer"),
        "{shown}"
    );
    assert!(
        shown.contains("airlock.toml:4: gateway.idle_timeout: expected a string"),
        "{shown}"
    );
}

#[test]
fn drain_timeout_defaults_reads_and_names_bad_values() {
    let c = parse("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(DEFAULT_DRAIN_TIMEOUT, Duration::from_secs(30));
    assert_eq!(c.gateway.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    let c = parse("[gateway]\ndrain_timeout = \"2m\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.gateway.drain_timeout, Duration::from_secs(120));
    for (value, want) in [
        ("\"2h\"", "airlock.toml:3: gateway.drain_timeout: must be at most 1h"),
        (
            "\"0s\"",
            "airlock.toml:3: gateway.drain_timeout: must be longer than 0s",
        ),
        (
            "\"later\"",
            "airlock.toml:3: gateway.drain_timeout: bad duration \"later\"",
        ),
        ("30", "airlock.toml:3: gateway.drain_timeout: expected a string"),
    ] {
        let src = format!("[gateway]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = {value}\n");
        let shown = parse(&src).unwrap_err().to_string();
        assert!(shown.contains(want), "no {want:?} in {shown}");
    }
}
