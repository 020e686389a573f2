//! SQL text → statement classes, read by PostgreSQL's own grammar (libpg_query through the
//! `pg_query` crate), so what airlock decides on is what the server will run.
//!
//! Each statement gets its base class (read, write, ddl, other) and, where the grammar tells
//! more, the extra classes `role`, `copy` and `procedural` (docs/databases.md lists what each
//! catches). Text that does not parse is `unparsed`: it never satisfies an allow rule.

use airlock_core::facts::SqlClass::{self, Copy, Ddl, Other, Procedural, Read, Role, Write};
use pg_query::NodeEnum as N;

/// What one SQL text holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statements {
    /// Every class of every statement, each once.
    pub classes: Vec<SqlClass>,
    /// How many statements the text holds.
    pub count: usize,
    /// Tables named anywhere in the text.
    pub tables: Vec<String>,
    /// The text did not parse (or was empty): only restrictive rules can match it.
    pub unparsed: bool,
    /// A statement is `COPY … FROM STDIN`: running it puts the server in copy-in mode.
    pub copy_in: bool,
}

/// Functions that run SQL or commands given to them as text, read files, or change the role:
/// a call reads as `procedural` (or `role`), never as a plain read.
const PROCEDURAL_FUNCTIONS: &[&str] = &[
    "dblink",
    "dblink_exec",
    "dblink_send_query",
    "dblink_open",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "lo_import",
    "lo_export",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
];
const ROLE_FUNCTIONS: &[&str] = &["set_config"];

pub fn classify(sql: &str) -> Statements {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(_) => {
            return Statements {
                classes: vec![Other],
                unparsed: true,
                ..Statements::default()
            };
        }
    };
    let mut out = Statements {
        count: parsed.protobuf.stmts.len(),
        tables: parsed.tables(),
        unparsed: parsed.protobuf.stmts.is_empty(),
        ..Statements::default()
    };
    let mut add = |c: SqlClass| {
        if !out.classes.contains(&c) {
            out.classes.push(c);
        }
    };
    let mut copy_in = false;
    for raw in &parsed.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(node) => {
                copy_in |= matches!(node, N::CopyStmt(c) if c.is_from && !c.is_program && c.filename.is_empty());
                top(node, &mut add)
            }
            None => add(Other),
        }
    }
    // Nested statements (a data-modifying WITH, EXPLAIN ANALYZE of a write, PREPARE … AS).
    for (node, _, _, _) in parsed.protobuf.nodes() {
        use pg_query::NodeRef as R;
        match node {
            R::InsertStmt(_) | R::UpdateStmt(_) | R::DeleteStmt(_) | R::MergeStmt(_) => add(Write),
            R::SelectStmt(s) if s.into_clause.is_some() => {
                add(Write);
                add(Ddl);
            }
            R::SelectStmt(s) if !s.locking_clause.is_empty() => add(Write),
            _ => {}
        }
    }
    for (f, _) in &parsed.functions {
        let name = f.rsplit('.').next().unwrap_or(f).to_ascii_lowercase();
        if PROCEDURAL_FUNCTIONS.contains(&name.as_str()) {
            add(Procedural);
        }
        if ROLE_FUNCTIONS.contains(&name.as_str()) {
            add(Role);
        }
    }
    if out.unparsed && !out.classes.contains(&Other) {
        out.classes.push(Other);
    }
    out.copy_in = copy_in;
    out
}

/// Each statement of `sql` with its own classes, split by PostgreSQL's own grammar (`policy
/// explain`); `None` when the text does not parse (the whole reads as `unparsed`).
pub fn each(sql: &str) -> Option<Vec<(String, Statements)>> {
    let parts = pg_query::split_with_parser(sql).ok()?;
    Some(parts.into_iter().map(|p| (p.trim().to_string(), classify(p))).collect())
}

/// The classes of one top-level statement.
fn top(node: &N, add: &mut impl FnMut(SqlClass)) {
    match node {
        N::SelectStmt(_) | N::VariableShowStmt(_) | N::ExplainStmt(_) => add(Read),
        // Transaction control commits or discards only what was already decided statement by statement.
        N::TransactionStmt(_) => add(Read),
        N::DeclareCursorStmt(_) | N::FetchStmt(_) | N::ClosePortalStmt(_) | N::PrepareStmt(_) => add(Read),
        N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_) | N::LockStmt(_) => add(Write),
        N::CopyStmt(c) => {
            add(Copy);
            add(if c.is_from { Write } else { Read });
            // A program, or a file on the server's own file system (as pg_read_file): outside
            // the database. STDIN/STDOUT (no file name) stay inside the session.
            if c.is_program || !c.filename.is_empty() {
                add(Procedural);
            }
        }
        N::VariableSetStmt(s) => {
            let name = s.name.to_ascii_lowercase();
            if name == "role" || name == "session_authorization" {
                add(Role);
            } else {
                add(Other);
            }
        }
        N::DoStmt(_) | N::CallStmt(_) | N::LoadStmt(_) => add(Procedural),
        N::CreateFunctionStmt(_) => {
            add(Ddl);
            add(Procedural);
        }
        N::GrantStmt(_)
        | N::GrantRoleStmt(_)
        | N::CreateRoleStmt(_)
        | N::AlterRoleStmt(_)
        | N::AlterRoleSetStmt(_)
        | N::DropRoleStmt(_)
        | N::AlterDefaultPrivilegesStmt(_)
        | N::ReassignOwnedStmt(_) => {
            add(Ddl);
            add(Role);
        }
        // A prepared statement runs again whatever it was prepared as; maintenance, notifications
        // and session resets change no data or schema but are not reads either.
        N::ExecuteStmt(_)
        | N::DeallocateStmt(_)
        | N::DiscardStmt(_)
        | N::ListenStmt(_)
        | N::UnlistenStmt(_)
        | N::NotifyStmt(_)
        | N::CheckPointStmt(_)
        | N::VacuumStmt(_)
        | N::ClusterStmt(_)
        | N::ReindexStmt(_)
        | N::ConstraintsSetStmt(_) => add(Other),
        // Everything else the grammar knows is a schema or server change: CREATE, ALTER, DROP,
        // TRUNCATE, COMMENT, RENAME, SECURITY LABEL, … (the most guarded class, not `other`).
        _ => add(Ddl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(sql: &str) -> Vec<SqlClass> {
        classify(sql).classes
    }

    #[test]
    fn statements_read_as_documented() {
        assert_eq!(classes("SELECT * FROM t"), vec![Read]);
        assert_eq!(classes("select 1; DROP TABLE t"), vec![Read, Ddl]);
        assert_eq!(classes("/* DROP TABLE t */ SELECT 1 -- ; DROP TABLE t"), vec![Read]);
        assert_eq!(classes("SELECT $x$; DROP TABLE t; $x$"), vec![Read]);
        assert_eq!(classes("SELECT 1; $$ DROP TABLE t $$"), vec![Other]);
        assert!(classify("SELECT 1; $$ DROP TABLE t $$").unparsed);
        assert_eq!(classes("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$"), vec![Procedural]);
        assert_eq!(
            classes("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE t'; END $$"),
            vec![Ddl, Procedural]
        );
        assert_eq!(classes("SET ROLE admin"), vec![Role]);
        assert_eq!(classes("SET search_path = x"), vec![Other]);
        assert_eq!(classes("SELECT set_config('role', 'admin', false)"), vec![Read, Role]);
        assert_eq!(classes("GRANT admin TO me"), vec![Ddl, Role]);
        assert_eq!(classes("COPY t FROM PROGRAM 'id'"), vec![Copy, Write, Procedural]);
        assert_eq!(classes("COPY t TO STDOUT"), vec![Copy, Read]);
        assert_eq!(
            classes("COPY (SELECT * FROM t) TO PROGRAM 'sh'"),
            vec![Copy, Read, Procedural]
        );
        assert_eq!(classes("COPY t FROM STDIN"), vec![Copy, Write]);
        assert_eq!(classes("COPY t TO '/tmp/x'"), vec![Copy, Read, Procedural]);
        assert_eq!(classes("COPY t FROM '/etc/passwd'"), vec![Copy, Write, Procedural]);
        assert!(classify("SELECT 1; COPY t FROM STDIN").copy_in);
        for not_in in [
            "COPY t TO STDOUT",
            "COPY t FROM PROGRAM 'id'",
            "COPY t FROM '/x'",
            "SELECT 1",
        ] {
            assert!(!classify(not_in).copy_in, "{not_in}");
        }
        assert_eq!(
            classes("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x"),
            vec![Read, Write]
        );
        assert_eq!(classes("SELECT * INTO t2 FROM t"), vec![Read, Write, Ddl]);
        assert_eq!(
            classes("SELECT * FROM dblink('x', 'DROP TABLE t') AS r(a int)"),
            vec![Read, Procedural]
        );
        assert_eq!(classes("BEGIN"), vec![Read]);
        assert_eq!(classes("TRUNCATE t"), vec![Ddl]);
        assert_eq!(classify("DROP TABLE accounts").tables, vec!["accounts".to_string()]);
        for bad in ["", "   ", "SELEC 1", "SELECT 'unterminated", "SELECT 1\0; DROP TABLE t"] {
            let s = classify(bad);
            assert!(s.unparsed && s.classes.contains(&Other), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_fails_closed_without_crashing() {
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        let s = classify(&deep);
        assert!(s.unparsed || s.classes == vec![Read]);
    }
}
