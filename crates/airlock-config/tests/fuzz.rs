//! The loader never panics: truncated and mutated versions of the example, and hostile shapes.

use std::path::Path;

use airlock_config::{Config, EXAMPLE, fuzz_parse};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "\n",
    "#",
    ".",
    ",",
    "*",
    "/",
    "~",
    "\\",
    "0",
    "-1",
    "1e999",
    "é",
    "\u{0}",
    "\"\"\"",
    "[rules]",
    "[[rules]]",
    "[secrets.x]",
    "action = \"approve\"",
    "body = {}",
    "hosts = [\"*\"]",
    "header = \"X\"",
    "query = \"q\"",
    "{secret}",
    "nan",
    "inf",
    "true",
    "1979-05-27T07:32:00Z",
    "approvers = []",
    "timeout = \"99999999999999999999d\"",
    "quorum = -1",
    "quorum = 4294967296",
];

fn mutate(rng: &mut Rng, src: &str) -> Vec<u8> {
    let mut b = src.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 => b.truncate(at),
            1 => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let p = PIECES[rng.below(PIECES.len())].as_bytes();
                b.splice(at..at, p.iter().copied());
            }
            3 if at < b.len() => b[at] = (rng.next() & 0xff) as u8,
            4 => {
                // Duplicate a run (repeats tables and keys).
                let end = (at + rng.below(200)).min(b.len());
                let run: Vec<u8> = b[at..end].to_vec();
                b.splice(at..at, run);
            }
            _ => {
                let p = PIECES[rng.below(PIECES.len())].as_bytes();
                let end = (at + p.len()).min(b.len());
                b.splice(at..end, p.iter().copied());
            }
        }
    }
    b
}

#[test]
fn truncations_never_panic() {
    let mut cut = 0;
    while cut <= EXAMPLE.len() {
        fuzz_parse(&EXAMPLE.as_bytes()[..cut]);
        // Also through the lossy path, so cuts inside multi-byte characters are parsed too.
        let text = String::from_utf8_lossy(&EXAMPLE.as_bytes()[..cut]);
        let _ = Config::parse(&text, Path::new("t.toml"));
        cut += 7;
    }
}

#[test]
fn mutations_never_panic() {
    let mut rng = Rng(0x5eed_a1f1_0c4b_0001);
    let mut rejected = 0;
    for _ in 0..2000 {
        let bytes = mutate(&mut rng, EXAMPLE);
        fuzz_parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Config::parse(&text, Path::new("m.toml")) {
            // Rendering the error must not panic either.
            let _ = e.to_string();
            rejected += 1;
        }
    }
    assert!(
        rejected > 100,
        "the mutations should break the example most of the time ({rejected})"
    );
}

#[test]
fn hostile_shapes_never_panic() {
    let deep_array = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_table = format!("a = {}{}", "{b = ".repeat(10_000), "}".repeat(10_000));
    let deep_body = format!(
        "[[rules]]\nname = \"r\"\naction = \"deny\"\nbody = {{ json = {{ \"/a\" = {}1{} }} }}\n",
        "[".repeat(60),
        "]".repeat(60)
    );
    let many_rules = "[[rules]]\nname = \"r\"\naction = \"deny\"\n".repeat(2000);
    let long_key = format!("[gateway]\n{} = 1\n", "k".repeat(100_000));
    for src in [deep_array, deep_table, deep_body, many_rules, long_key] {
        let _ = Config::parse(&src, Path::new("h.toml")).map_err(|e| e.to_string());
    }
}
