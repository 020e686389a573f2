//! SQL text → one [`SqlClass`] per statement.
//!
//! The server's dialect is unknown, so the text is read by three dialects (generic, PostgreSQL,
//! MySQL). When the ones that parse disagree — e.g. `'a\'; DROP TABLE t; -- '` is one SELECT to
//! MySQL and a SELECT plus a DROP to PostgreSQL — the text is reported as unparsed with every
//! interpretation's classes, because the server decides which one runs.

use airlock_core::facts::SqlClass;
use sqlparser::ast::{
    ConditionalStatementBlock, CopySource, CopyTarget, Expr, Query, SetExpr, Statement, UtilityOption, Value,
};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// Nesting depth the parser may recurse to (sqlparser's own default, kept explicit).
const RECURSION_LIMIT: usize = 50;

/// Most "chain-building" tokens one statement may hold.
///
/// sqlparser builds `a + b + c …` and `x UNION y UNION z …` as left-deep trees without recursing,
/// but dropping such a tree recurses once per link: 50,000 links overflow a 2 MiB thread stack.
/// Every link needs at least one operator or keyword token, so bounding those bounds the depth.
/// Bulk INSERTs (names, literals, placeholders, commas) are not affected.
const MAX_CHAIN_TOKENS: usize = 10_000;
/// sqlparser's time grows exponentially with nested calls and groups (fuzzing found a
/// 324-byte body that parses for a minute: `f(a,-f(a,-…`, `CAST(CASE (…`). Deeper nesting
/// than this reads as unparsed, which fails closed; real queries rarely nest past a handful.
const MAX_NESTING: usize = 10;
/// Nested `CASE` expressions, counted apart from brackets for the same reason.
const MAX_CASE_NESTING: usize = 8;

/// The classes of one SQL text: `Ok` when every dialect that parsed it agrees, else `Err` with the
/// classes to report alongside `sql_unparsed`.
pub(crate) fn classify_text(sql: &str) -> Result<Vec<SqlClass>, Vec<SqlClass>> {
    let dialects: [&dyn Dialect; 3] = [&GenericDialect {}, &PostgreSqlDialect {}, &MySqlDialect {}];
    let mut readings: Vec<Vec<SqlClass>> = Vec::new();
    for dialect in dialects {
        match read(dialect, sql) {
            Reading::Classes(classes) => {
                if !readings.contains(&classes) {
                    readings.push(classes);
                }
            }
            // Text this dialect runs but cannot show us (MySQL `/*! … */`): the server may run anything.
            Reading::Hidden | Reading::TooDeep => return Err(union_with_other(&readings)),
            Reading::Failed => {}
        }
    }
    match readings.len() {
        0 => Err(vec![SqlClass::Other]),
        1 => Ok(readings.swap_remove(0)),
        _ => Err(union_with_other(&readings)),
    }
}

/// Every class seen in any reading, then `Other`, each once.
fn union_with_other(readings: &[Vec<SqlClass>]) -> Vec<SqlClass> {
    let mut out: Vec<SqlClass> = Vec::new();
    for c in readings.iter().flatten().copied().chain([SqlClass::Other]) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

enum Reading {
    Classes(Vec<SqlClass>),
    /// Tokenizing or parsing failed.
    Failed,
    /// An executable comment hides statements from the parser.
    Hidden,
    /// A statement too long a chain to parse safely.
    TooDeep,
}

fn read(dialect: &dyn Dialect, sql: &str) -> Reading {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() else {
        return Reading::Failed;
    };
    if let Some(bad) = screen(&tokens) {
        return bad;
    }
    let mut parser = Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let Ok(statements) = parser.parse_statements() else {
        return Reading::Failed;
    };
    // parse_statements stops early at a bare `END`; trailing text it skipped must not go unseen.
    if parser.peek_token().token != Token::EOF || statements.is_empty() {
        return Reading::Failed;
    }
    let mut classes = Vec::with_capacity(statements.len());
    for st in &statements {
        if classify(st, &mut classes).is_err() {
            return Reading::Hidden;
        }
    }
    Reading::Classes(classes)
}

/// Functions that run SQL or commands given to them as text: what they run cannot be seen, so
/// a statement calling one is read like an executable comment (restrictively).
const DYNAMIC_FUNCTIONS: [&str; 12] = [
    "dblink",
    "dblink_exec",
    "dblink_send_query",
    "dblink_open",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    "xp_cmdshell",
    "sp_executesql",
    "sp_execute",
    "sys_exec",
];

/// Rejects token streams the parser would mishandle or whose effect is hidden: MySQL/MariaDB
/// executable comments (`/*! DROP TABLE t */` runs on MySQL), calls of functions that run SQL
/// given as text, and over-long expression chains.
fn screen(tokens: &[TokenWithSpan]) -> Option<Reading> {
    let mut chain = 0usize;
    let (mut depth, mut cases) = (0usize, 0usize);
    let mut last_word: Option<&str> = None;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::LParen if last_word.is_some_and(|w| DYNAMIC_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(w))) => {
                return Some(Reading::Hidden);
            }
            Token::Word(w) => last_word = Some(&w.value),
            _ => last_word = None,
        }
        match &t.token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => cases += 1,
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => cases = cases.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING || cases > MAX_CASE_NESTING {
            return Some(Reading::TooDeep);
        }
        match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(c)) if c.starts_with('!') || c.starts_with("M!") => {
                return Some(Reading::Hidden);
            }
            Token::SemiColon => chain = 0,
            tok if is_leaf(tok) => {}
            _ => {
                chain += 1;
                if chain > MAX_CHAIN_TOKENS {
                    return Some(Reading::TooDeep);
                }
            }
        }
    }
    None
}

/// Tokens that can never link two expressions together.
fn is_leaf(t: &Token) -> bool {
    match t {
        Token::Whitespace(_)
        | Token::Comma
        | Token::LParen
        | Token::RParen
        | Token::EOF
        | Token::Number(..)
        | Token::Placeholder(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => true,
        // Names never link expressions (operators and keywords do); a few keywords are values.
        Token::Word(w) => {
            w.keyword == Keyword::NoKeyword
                || (w.quote_style.is_none()
                    && matches!(
                        w.keyword,
                        Keyword::NULL | Keyword::TRUE | Keyword::FALSE | Keyword::DEFAULT
                    ))
        }
        _ => false,
    }
}

/// Pushes the class(es) of one parsed statement; `Err` when what it runs is hidden (dynamic SQL:
/// `EXECUTE`, `EXECUTE IMMEDIATE '…'`), which is read restrictively like an executable comment.
pub(crate) fn classify(statement: &Statement, out: &mut Vec<SqlClass>) -> Result<(), Hidden> {
    let mut s = statement;
    // EXPLAIN only reads, unless ANALYZE runs the statement it explains.
    loop {
        match s {
            Statement::Explain {
                analyze,
                statement,
                options,
                ..
            } if *analyze || has_analyze(options.as_deref()) => s = statement,
            _ => break,
        }
    }
    use Statement as S;
    let class = match s {
        S::Execute { .. } => return Err(Hidden),
        // A prepared statement runs later, as what it is.
        S::Prepare { statement, .. } => return classify(statement, out),
        // Procedural blocks run what they contain, whichever branch is taken.
        S::If(i) => {
            let blocks = std::iter::once(&i.if_block)
                .chain(&i.elseif_blocks)
                .chain(&i.else_block);
            return blocks_class(blocks, out);
        }
        S::While(w) => return blocks_class(std::iter::once(&w.while_block), out),
        S::Case(c) => return blocks_class(c.when_blocks.iter().chain(&c.else_block), out),
        // Creating a table from a query both defines and writes it.
        S::CreateTable(t) if t.query.is_some() => {
            out.extend([SqlClass::Ddl, SqlClass::Write]);
            return Ok(());
        }
        S::Query(q) => match query_class(q) {
            QueryClass::Read => SqlClass::Read,
            QueryClass::Write => SqlClass::Write,
            QueryClass::Into => {
                out.extend([SqlClass::Ddl, SqlClass::Write]);
                return Ok(());
            }
        },
        S::Explain { .. } | S::ExplainTable { .. } => SqlClass::Read,
        S::ShowFunctions { .. }
        | S::ShowVariable { .. }
        | S::ShowStatus { .. }
        | S::ShowVariables { .. }
        | S::ShowCreate { .. }
        | S::ShowColumns { .. }
        | S::ShowDatabases { .. }
        | S::ShowSchemas { .. }
        | S::ShowCharset(_)
        | S::ShowObjects(_)
        | S::ShowTables { .. }
        | S::ShowViews { .. }
        | S::ShowCollation { .. } => SqlClass::Read,
        S::Copy {
            source,
            to: true,
            target,
            ..
        } => match (source, target) {
            (CopySource::Query(q), CopyTarget::Stdout) if query_class(q) == QueryClass::Read => SqlClass::Read,
            (CopySource::Query(_), CopyTarget::Stdout) => SqlClass::Write,
            (CopySource::Table { .. }, CopyTarget::Stdout) => SqlClass::Read,
            // COPY … TO a server file or program writes outside the database.
            _ => SqlClass::Write,
        },
        S::Insert(_)
        | S::Update { .. }
        | S::Delete(_)
        | S::Merge { .. }
        | S::Copy { .. }
        | S::CopyIntoSnowflake { .. }
        | S::LoadData { .. }
        | S::Directory { .. }
        | S::Unload { .. }
        | S::ExportData(_) => SqlClass::Write,
        S::CreateView { .. }
        | S::CreateTable(_)
        | S::CreateVirtualTable { .. }
        | S::CreateIndex(_)
        | S::CreateRole { .. }
        | S::CreateSecret { .. }
        | S::CreateServer(_)
        | S::CreatePolicy { .. }
        | S::CreateConnector(_)
        | S::CreateExtension { .. }
        | S::CreateSchema { .. }
        | S::CreateDatabase { .. }
        | S::CreateFunction(_)
        | S::CreateTrigger(_)
        | S::CreateProcedure { .. }
        | S::CreateMacro { .. }
        | S::CreateStage { .. }
        | S::CreateSequence { .. }
        | S::CreateDomain(_)
        | S::CreateType { .. }
        | S::CreateUser(_)
        | S::AlterTable { .. }
        | S::AlterSchema(_)
        | S::AlterIndex { .. }
        | S::AlterView { .. }
        | S::AlterType(_)
        | S::AlterRole { .. }
        | S::AlterPolicy { .. }
        | S::AlterConnector { .. }
        | S::Drop { .. }
        | S::DropFunction { .. }
        | S::DropDomain(_)
        | S::DropProcedure { .. }
        | S::DropSecret { .. }
        | S::DropPolicy { .. }
        | S::DropConnector { .. }
        | S::DropExtension { .. }
        | S::DropTrigger(_)
        | S::Truncate { .. }
        | S::RenameTable(_)
        | S::Grant { .. }
        | S::Deny(_)
        | S::Revoke { .. }
        | S::Comment { .. } => SqlClass::Ddl,
        _ => SqlClass::Other,
    };
    out.push(class);
    Ok(())
}

/// Dynamic SQL: what runs is not in the text.
#[derive(Debug)]
pub(crate) struct Hidden;

/// The classes of every statement in procedural blocks, plus `Other` for the block itself.
fn blocks_class<'a>(
    blocks: impl Iterator<Item = &'a ConditionalStatementBlock>,
    out: &mut Vec<SqlClass>,
) -> Result<(), Hidden> {
    for b in blocks {
        for st in b.statements() {
            classify(st, out)?;
        }
    }
    out.push(SqlClass::Other);
    Ok(())
}

/// `EXPLAIN (ANALYZE)` / `EXPLAIN (ANALYZE true)`; `ANALYZE false|off|0` does not run anything.
fn has_analyze(options: Option<&[UtilityOption]>) -> bool {
    options.unwrap_or_default().iter().any(|o| {
        o.name.value.eq_ignore_ascii_case("analyze")
            && !matches!(&o.arg, Some(Expr::Value(v)) if is_false(&v.value))
            && !matches!(&o.arg, Some(Expr::Identifier(i)) if i.value.eq_ignore_ascii_case("off"))
    })
}

fn is_false(v: &Value) -> bool {
    match v {
        Value::Boolean(b) => !b,
        Value::Number(n, _) => n == "0",
        Value::SingleQuotedString(s) => s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("false") || s == "0",
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryClass {
    Read,
    Write,
    /// `SELECT … INTO t` creates and fills a table.
    Into,
}

/// A query reads, unless a data-modifying CTE, a DML body or `SELECT … INTO` hides a write in it.
/// Walked with an explicit stack: `UNION` chains are left-deep and may be thousands long.
fn query_class(q: &Query) -> QueryClass {
    enum Node<'a> {
        Query(&'a Query),
        Set(&'a SetExpr),
    }
    let mut stack = vec![Node::Query(q)];
    while let Some(node) = stack.pop() {
        match node {
            Node::Query(q) => {
                if let Some(with) = &q.with {
                    stack.extend(with.cte_tables.iter().map(|cte| Node::Query(&cte.query)));
                }
                stack.push(Node::Set(&q.body));
            }
            Node::Set(set) => match set {
                SetExpr::Select(select) if select.into.is_some() => return QueryClass::Into,
                SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => {}
                SetExpr::Query(q) => stack.push(Node::Query(q)),
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(Node::Set(left));
                    stack.push(Node::Set(right));
                }
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                    return QueryClass::Write;
                }
            },
        }
    }
    QueryClass::Read
}
