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
