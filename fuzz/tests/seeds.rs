//! Every fuzz target's logic over every committed seed, on stable, without cargo-fuzz:
//! `cargo test --manifest-path fuzz/Cargo.toml`.

use std::fs;
use std::path::{Path, PathBuf};

use airlock_core::facts::Scheme;
use airlock_core::policy::Action;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("request_parse", airlock_fuzz::request_parse),
    ("policy_eval", airlock_fuzz::policy_eval),
    ("config_load", airlock_fuzz::config_load),
    ("body_readings", airlock_fuzz::body_readings),
    ("pg_codec", airlock_fuzz::pg_codec),
];

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

#[test]
fn every_target_survives_its_seeds() {
    for (name, run) in TARGETS {
        for seed in seeds(name) {
            let data = fs::read(&seed).expect("read seed");
            let caught = std::panic::catch_unwind(|| run(&data));
            assert!(caught.is_ok(), "{name} panicked on {}", seed.display());
        }
    }
}

/// The targets take any bytes: every seed through every target, truncated too.
#[test]
fn every_target_survives_every_seed_and_its_prefixes() {
    let all: Vec<Vec<u8>> = TARGETS
        .iter()
        .flat_map(|(name, _)| seeds(name))
        .map(|p| fs::read(p).expect("read seed"))
        .collect();
    for (_, run) in TARGETS {
        for data in &all {
            for cut in [0, 1, data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
                run(&data[..cut.min(data.len())]);
            }
            run(data);
        }
    }
}

#[test]
fn the_fixed_config_parses_and_the_head_parser_reads_seeds() {
    assert_eq!(airlock_fuzz::CONFIG.policy.default, Action::Deny);
    let data = b"GET http://Maps.GoogleAPIs.com.:8080?key=x HTTP/1.1\r\nHost: ignored\r\n\r\nbody";
    let h = airlock_fuzz::parse_head(data);
    assert_eq!(
        (h.scheme, h.host.as_str(), h.port),
        (Scheme::Http, "maps.googleapis.com", 8080)
    );
    assert_eq!(h.target, "/?key=x");
    assert_eq!(h.body, b"body");
    let h = airlock_fuzz::parse_head(b"POST /x HTTP/1.1\nHost: [::1]:8443\nContent-Type: text/plain\n\nSELECT 1");
    assert_eq!((h.scheme, h.host.as_str(), h.port), (Scheme::Https, "::1", 8443));
    assert_eq!(h.content_type(), Some("text/plain"));
}

/// Positive control for `pg_codec`: a psql-like stream reads as TLS request, startup, password,
/// query and terminate, the same cut into single bytes.
#[test]
fn the_pg_reader_reads_a_client_stream() {
    use airlock_fuzz::{PgEvent, pg_read};
    let seed = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/pg_codec/psql_simple_query")).unwrap();
    let wire = &seed[1..];
    let events = pg_read(wire, wire.len(), airlock_pgwire::MAX_CLIENT_MESSAGE);
    assert_eq!(events, pg_read(wire, 1, airlock_pgwire::MAX_CLIENT_MESSAGE));
    assert!(matches!(events[0], PgEvent::Startup(airlock_pgwire::Startup::Ssl)));
    assert!(
        matches!(&events[1], PgEvent::Startup(airlock_pgwire::Startup::Params { minor: 0, params }) if params[0] == ("user".into(), "analyst".into()))
    );
    let tags: Vec<u8> = events[2..]
        .iter()
        .map(|e| match e {
            PgEvent::Frame(f) => f.tag,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tags, b"pQX");
    // A frame above the limit is refused, not read.
    let small = pg_read(wire, wire.len(), 16);
    assert!(matches!(
        small.last(),
        Some(PgEvent::Error(airlock_pgwire::CodecError::TooLarge(..)))
    ));
}
