//! SQL classification through the public API.

use airlock_core::facts::SqlClass::{self, Ddl, Other, Read, Write};
use airlock_inspect::{Want, inspect};

const SQL: Want = Want {
    json: false,
    graphql: false,
    jsonrpc: false,
    sql: true,
};

fn classify(sql: &str) -> (Vec<SqlClass>, bool) {
    let f = inspect(Some("application/sql"), sql.as_bytes(), &[], SQL);
    (f.sql, f.sql_unparsed)
}

#[test]
fn classification_table() {
    let cases: &[(&str, &[SqlClass])] = &[
        // Reads.
        ("SELECT 1", &[Read]),
        ("select * from users where id = 1", &[Read]),
        ("SELECT \"Weird Col\" FROM \"My Table\"", &[Read]),
        ("SELECT `a` FROM `t`", &[Read]),
        ("WITH x AS (SELECT 1) SELECT * FROM x", &[Read]),
        ("SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 3", &[Read]),
        ("SHOW TABLES", &[Read]),
        ("show databases", &[Read]),
        ("EXPLAIN SELECT 1", &[Read]),
        ("EXPLAIN DELETE FROM t", &[Read]),
        ("DESCRIBE t", &[Read]),
        ("VALUES (1), (2)", &[Read]),
        ("COPY t TO STDOUT", &[Read]),
        ("SELECT * FROM t FOR UPDATE", &[Read]),
        // Writes.
        ("INSERT INTO t (a) VALUES (1)", &[Write]),
        ("insert into t select * from u", &[Write]),
        ("UPDATE t SET a = 1 WHERE b = 2", &[Write]),
        ("DELETE FROM t", &[Write]),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", &[Write]),
        ("COPY t FROM '/tmp/x'", &[Write]),
        ("COPY t FROM PROGRAM 'curl example.com'", &[Write]),
        ("COPY t TO '/tmp/x'", &[Write]),
        // SELECT … INTO and CREATE TABLE … AS both create a table and fill it.
        ("select 1 into t from x", &[Ddl, Write]),
        ("SELECT * INTO backup FROM users", &[Ddl, Write]),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", &[Write]),
        (
            "WITH a AS (SELECT 1), b AS (WITH c AS (UPDATE t SET x = 1 RETURNING x) SELECT * FROM c) SELECT 1",
            &[Write],
        ),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", &[Write]),
        (
            "SELECT 1 UNION (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d)",
            &[Write],
        ),
        ("COPY (DELETE FROM t RETURNING *) TO STDOUT", &[Write]),
        ("EXPLAIN ANALYZE DELETE FROM t", &[Write]),
        ("EXPLAIN (ANALYZE) UPDATE t SET a = 1", &[Write]),
        ("EXPLAIN (ANALYZE false) UPDATE t SET a = 1", &[Read]),
        ("EXPLAIN ANALYZE SELECT 1", &[Read]),
        // DDL.
        ("CREATE TABLE t (id INT PRIMARY KEY)", &[Ddl]),
        ("create index i on t (a)", &[Ddl]),
        ("CREATE VIEW v AS SELECT 1", &[Ddl]),
        ("CREATE SCHEMA s", &[Ddl]),
        ("CREATE DATABASE d", &[Ddl]),
        ("ALTER TABLE t ADD COLUMN b INT", &[Ddl]),
        ("DROP TABLE t", &[Ddl]),
        ("drop table if exists \"Users\" cascade", &[Ddl]),
        ("TRUNCATE TABLE t", &[Ddl]),
        ("GRANT SELECT ON t TO bob", &[Ddl]),
        ("REVOKE ALL ON t FROM bob", &[Ddl]),
        ("COMMENT ON TABLE t IS 'x'", &[Ddl]),
        ("RENAME TABLE a TO b", &[Ddl]),
        ("CREATE TABLE t2 AS SELECT * FROM t", &[Ddl, Write]),
        ("EXPLAIN ANALYZE CREATE TABLE t (a INT)", &[Ddl]),
        // Other.
        ("SET search_path = x", &[Other]),
        ("BEGIN", &[Other]),
        ("COMMIT", &[Other]),
        ("ROLLBACK", &[Other]),
        ("CALL do_things()", &[Other]),
        // A prepared statement is what it will run.
        ("PREPARE p AS DELETE FROM t", &[Write]),
        ("USE db", &[Other]),
        // Several statements: every one counts, in order.
        ("DROP TABLE x; SELECT 1", &[Ddl, Read]),
        ("SELECT 1; /* */ DROP TABLE t", &[Read, Ddl]),
        ("SELECT 1;\n-- note\nDELETE FROM t;", &[Read, Write]),
        ("BEGIN; INSERT INTO t VALUES (1); COMMIT;", &[Other, Write, Other]),
        (";;SELECT 1;;", &[Read]),
    ];
    for (sql, want) in cases {
        assert_eq!(classify(sql), (want.to_vec(), false), "{sql}");
    }
}

#[test]
fn text_that_does_not_parse_is_other_and_flagged() {
    for sql in [
        "DROP TABEL t",
        "SELEC 1",
        "SELECT 1 +",
        "SELECT 1; DROOP t",
        "not sql at all, just words",
        "-- only a comment",
        "SELECT 1 END DROP TABLE t",
    ] {
        let (classes, unparsed) = classify(sql);
        assert!(unparsed, "{sql}");
        assert!(classes.contains(&Other), "{sql}: {classes:?}");
    }
}

#[test]
fn dialect_disagreement_reports_every_reading() {
    // MySQL reads one string literal; PostgreSQL ends the string at `\'` and runs a DROP.
    let (classes, unparsed) = classify("SELECT 'a\\'; DROP TABLE t; -- '");
    assert!(unparsed);
    assert!(
        classes.contains(&Read) && classes.contains(&Ddl) && classes.contains(&Other),
        "{classes:?}"
    );
}

#[test]
fn mysql_executable_comments_fail_closed() {
    for sql in [
        "SELECT 1 /*! ; DROP TABLE t */",
        "SELECT 1 /*!50000 , (SELECT 1) */",
        "SELECT /*M! 1 */ 2",
    ] {
        let (classes, unparsed) = classify(sql);
        assert!(unparsed, "{sql}");
        assert!(classes.contains(&Other), "{sql}");
    }
    // Ordinary comments and optimizer hints are fine.
    assert_eq!(classify("SELECT /*+ INDEX(t i) */ 1 /* ! */"), (vec![Read], false));
}

#[test]
fn pathological_nesting_is_an_error_not_a_crash() {
    let parens = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(classify(&parens), (vec![Other], true));
    let subqueries = format!(
        "SELECT * FROM {}t{}",
        "(SELECT * FROM ".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(classify(&subqueries), (vec![Other], true));
    let minus = format!("SELECT {}1", "-".repeat(100_000));
    assert_eq!(classify(&minus), (vec![Other], true));
}

#[test]
fn long_chains_are_refused_before_they_can_overflow_on_drop() {
    for sql in [
        format!("SELECT 1{}", "+1".repeat(200_000)),
        format!("SELECT 1{}", " UNION SELECT 1".repeat(60_000)),
        format!("SELECT a FROM t WHERE a{}", " AND a".repeat(100_000)),
        format!("SELECT a{}", "::int".repeat(100_000)),
    ] {
        let (classes, unparsed) = classify(&sql);
        assert!(unparsed);
        assert_eq!(classes, [Other]);
    }
    // Below the bound, long chains still parse.
    assert_eq!(
        classify(&format!("SELECT 1{}", " UNION SELECT 1".repeat(2_000))),
        (vec![Read], false)
    );
    assert_eq!(
        classify(&format!("SELECT 1 WHERE a = 1{}", " OR a = 1".repeat(3_000))),
        (vec![Read], false)
    );
}

#[test]
fn bulk_inserts_are_not_chains() {
    let rows = vec!["(1, 'x', NULL, TRUE, $1, some_col)"; 20_000].join(", ");
    assert_eq!(classify(&format!("INSERT INTO t VALUES {rows}")), (vec![Write], false));
}

#[test]
fn chains_at_the_bound_parse_and_drop_on_a_small_stack() {
    let worst = format!("SELECT 1{}", "+1".repeat(9_999));
    let unions = format!("SELECT 1{}", " UNION SELECT 1".repeat(4_999));
    let run = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || (classify(&worst), classify(&unions)))
        .expect("spawn");
    let (worst, unions) = run.join().expect("no stack overflow");
    assert_eq!(worst, (vec![Read], false));
    assert_eq!(unions, (vec![Read], false));
}

/// Inputs the fuzzer found that made sqlparser take seconds to a minute (exponential in the
/// nesting): they must read as unparsed — failing closed — and return at once.
#[test]
fn exponential_nesting_is_refused_before_parsing() {
    let fuzz_found = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/slow-sql-nesting.txt")).unwrap();
    for body in [
        format!("SELECT {}", "f(a,-".repeat(20)),
        format!("SELECT {}", "CAST(CASE (".repeat(8)),
        format!("SELECT {}1{}", "f(".repeat(14), ")".repeat(14)),
        format!("SELECT {}1{}", "CASE WHEN x THEN ".repeat(12), " END".repeat(12)),
        String::from_utf8_lossy(&fuzz_found).into_owned(),
    ] {
        let f = inspect(Some("text/plain"), body.as_bytes(), &[], SQL);
        assert!(f.sql_unparsed && f.sql.contains(&Other), "{body}");
    }
    // Ordinary nesting still parses.
    assert_eq!(
        classify("SELECT f(g(h(1))), (SELECT max(a) FROM (SELECT a FROM t) s)"),
        (vec![Read], false)
    );
}

#[test]
fn dynamic_sql_is_read_like_an_executable_comment() {
    // What these run is text the parser never sees: restrictive rules match, allow rules never do.
    for sql in [
        "EXECUTE p",
        "EXECUTE IMMEDIATE 'DROP TABLE t'",
        "EXEC sp_executesql N'DROP TABLE t'",
        "SELECT dblink_exec('host=x', 'DROP TABLE t')",
        "SELECT public.DBLINK_EXEC('c', 'x')",
        "SELECT * FROM query_to_xml('DROP TABLE t', true, true, '')",
        "SELECT 1; EXECUTE IMMEDIATE 'DROP TABLE t'",
    ] {
        let (classes, unparsed) = classify(sql);
        assert!(unparsed && classes.contains(&Other), "{sql}: {classes:?}");
    }
}

#[test]
fn procedural_blocks_count_what_they_contain() {
    for (sql, hidden) in [
        ("IF 1 = 1 THEN DROP TABLE t; END IF", Ddl),
        ("IF 1 = 1 THEN SELECT 1; ELSE DROP TABLE t; END IF", Ddl),
        ("IF 1 = 1 THEN SELECT 1; ELSEIF 2 = 2 THEN DELETE FROM t; END IF", Write),
        ("WHILE 1 = 1 DO DROP TABLE t; END WHILE", Ddl),
        ("CASE WHEN 1 = 1 THEN DROP TABLE t; END CASE", Ddl),
        ("BEGIN DROP TABLE t; END", Ddl),
    ] {
        let (classes, _) = classify(sql);
        // Either parsed and classed by its contents, or not parsed (then flagged): never read as harmless.
        assert!(
            classes.contains(&hidden) || classes.contains(&Other),
            "{sql}: {classes:?}"
        );
        assert_ne!(classes, vec![Read], "{sql}");
        assert!(!classes.is_empty(), "{sql}");
    }
    // A block parsed by some dialect is classed by what it holds.
    let (classes, _) = classify("IF 1 = 1 THEN DROP TABLE t; END IF");
    assert!(classes.contains(&Ddl), "{classes:?}");
}
