//! The core stays small enough to audit in one sitting (DESIGN.md: ≤ 1,500 lines without tests)
//! and pure: no async runtime, no IO, no clock, no randomness among its dependencies or in its code.
//! Lines are counted as a reviewer reads them: code, not blank lines, comments or `#[cfg(test)]` modules.

use std::path::{Path, PathBuf};

const BUDGET: usize = 1_500;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Code lines of one file up to its test module.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
}

#[test]
fn core_fits_its_line_budget() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut total = 0;
    for f in &files {
        total += code_lines(&std::fs::read_to_string(f).expect("read source"));
    }
    assert!(
        total <= BUDGET,
        "airlock-core has {total} lines of code (budget {BUDGET}): move what is not the decision out of the core"
    );
}

#[test]
fn core_stays_pure() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read manifest");
    let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
    let deps = deps.split("\n[").next().unwrap_or("");
    for banned in [
        "tokio",
        "rand",
        "getrandom",
        "chrono",
        "time ",
        "reqwest",
        "hyper",
        "sqlx",
        "rusqlite",
    ] {
        assert!(!deps.contains(banned), "airlock-core must not depend on {banned}");
    }
    let mut files = Vec::new();
    sources(&dir.join("src"), &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        // Address types from std::net are plain values; sockets and name resolution are IO.
        let io = [
            "std::fs",
            "std::io",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "ToSocketAddrs",
        ];
        let ambient = [
            "std::time",
            "SystemTime",
            "Instant",
            "std::thread",
            "std::process",
            "std::env",
        ];
        for banned in io.into_iter().chain(ambient) {
            assert!(
                !text.contains(banned),
                "{} uses {banned}: the core takes IO and time as arguments",
                f.display()
            );
        }
    }
}
