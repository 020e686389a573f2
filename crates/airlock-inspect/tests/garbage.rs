//! Agent-controlled bytes never panic the inspector: random bytes, and random splices of the
//! fragments real bodies are made of (which reach much deeper into the parsers).

use airlock_inspect::{Want, inspect};

/// SplitMix64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/json"),
    Some("application/graphql"),
    Some("application/sql"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
    Some("application/octet-stream"),
];

const FRAGMENTS: [&str; 48] = [
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "'",
    "`",
    "\\",
    ",",
    ":",
    ";",
    "=",
    "&",
    "%",
    "%2",
    "+",
    "#",
    "--",
    "/*",
    "*/",
    "/*!",
    "$$",
    "...",
    "@",
    " ",
    "\n",
    "query",
    "mutation",
    "fragment F on T",
    "on",
    "select",
    "SELECT",
    "DROP TABLE",
    "WITH",
    "DELETE FROM",
    "INTO",
    "UNION",
    "EXPLAIN ANALYZE",
    "\"query\":",
    "\"sql\":",
    "\"method\":",
    "\"tools/call\"",
    "\"params\":{\"name\":",
    "\u{0}",
    "\u{FEFF}",
    "é",
];

/// Inspects one body; true when some parser got far enough to report a real fact.
fn check(ct: Option<&str>, body: &[u8]) -> bool {
    let facts = inspect(ct, body, &[], Want::ALL);
    // Unparsed SQL is always reported as (at least) Other.
    if facts.sql_unparsed {
        assert!(facts.sql.contains(&airlock_core::facts::SqlClass::Other));
    }
    !facts.jsonrpc.is_empty()
        || facts.graphql.iter().any(|o| o.kind != "unparsed")
        || (!facts.sql.is_empty() && !facts.sql_unparsed)
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5EED);
    for _ in 0..3_000 {
        let len = rng.below(256);
        let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(CONTENT_TYPES[rng.below(CONTENT_TYPES.len())], &body);
    }
}

#[test]
fn random_fragment_splices_never_panic() {
    let mut rng = Rng(0xA110C);
    for _ in 0..3_000 {
        let mut body = String::new();
        for _ in 0..rng.below(40) {
            body.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
        let _ = check(CONTENT_TYPES[rng.below(CONTENT_TYPES.len())], body.as_bytes());
    }
}

#[test]
fn mutated_valid_bodies_never_panic() {
    let seeds: [(Option<&str>, &[u8]); 6] = [
        (
            CONTENT_TYPES[1],
            br#"{"query":"mutation M { x: deleteIssue(id: 1) { ...F } } fragment F on I { ok }","operationName":"M"}"#,
        ),
        (
            CONTENT_TYPES[1],
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exec","arguments":{"cmd":"ls"}}}]"#,
        ),
        (
            CONTENT_TYPES[1],
            br#"{"statements":[{"statement":"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"}]}"#,
        ),
        (
            CONTENT_TYPES[5],
            b"sql=SELECT+*+FROM+t+WHERE+a+%3D+%27x%27%3B+DROP+TABLE+u",
        ),
        (
            CONTENT_TYPES[3],
            b"EXPLAIN (ANALYZE) COPY (SELECT 1) TO STDOUT; CREATE TABLE t AS SELECT 1 INTO x",
        ),
        (
            CONTENT_TYPES[2],
            b"query Q($a: [Int!]) { a(x: $a) @skip(if: true) { ... on T { b } } }",
        ),
    ];
    let mut rng = Rng(0xB0D1E5);
    let mut reached = 0;
    for i in 0..3_000 {
        let (natural, seed) = seeds[i % seeds.len()];
        let mut body = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(body.len() + 1);
            match rng.below(3) {
                0 if at < body.len() => body[at] = rng.next() as u8,
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ => body.insert(at.min(body.len()), FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes()[0]),
            }
        }
        // Mostly the seed's own content type, so that the parsers get past the first bytes.
        let ct = if rng.below(4) == 0 {
            CONTENT_TYPES[rng.below(CONTENT_TYPES.len())]
        } else {
            natural
        };
        reached += usize::from(check(ct, &body));
    }
    assert!(reached > 100, "only {reached} mutants got past the parsers");
}
