//! Parsing: sqlparser's PostgreSQL dialect, split into statements.

use sqlparser::ast::{self, SequenceOptions};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::error::{SqlError, SqlResult};
use crate::session::Statement;

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// A statement sqlparser understands.
    Sql(Box<ast::Statement>),
    /// An empty query string.
    Empty,
    /// A statement of Tessera's own, which sqlparser does not know.
    Tessera(TesseraStmt),
    /// `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table, ...]` (or with
    /// options in parentheses), `ANALYZE [VERBOSE] [table, ...]`: no
    /// tables means every table of the database.
    Maintenance {
        vacuum: bool,
        analyze: bool,
        tables: Vec<ast::ObjectName>,
    },
}

impl std::fmt::Display for Stmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stmt::Sql(s) => write!(f, "{s}"),
            Stmt::Empty => Ok(()),
            Stmt::Tessera(t) => write!(f, "{t}"),
            Stmt::Maintenance {
                vacuum,
                analyze,
                tables,
            } => {
                let verb = match (vacuum, analyze) {
                    (true, true) => "VACUUM ANALYZE",
                    (true, false) => "VACUUM",
                    (false, _) => "ANALYZE",
                };
                let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                write!(f, "{verb}")?;
                if !tables.is_empty() {
                    write!(f, " {}", tables.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Statements of Tessera's own (range administration).
#[derive(Debug, Clone)]
pub enum TesseraStmt {
    /// `ALTER TABLE t SPLIT AT VALUES (v, ...)[, (...)]`: a range starts at
    /// each row's primary key (a prefix of its columns).
    /// `ALTER INDEX t@idx SPLIT AT ...` splits at the index's keys instead.
    SplitAt {
        table: ast::ObjectName,
        index: Option<String>,
        rows: Vec<Vec<ast::Expr>>,
    },
    /// `SHOW RANGES FROM TABLE t`: the ranges holding the table's rows.
    /// `SHOW RANGES FROM INDEX t@idx`: the ranges holding the index.
    ShowRanges {
        table: ast::ObjectName,
        index: Option<String>,
    },
    /// `SHOW RANGE FROM TABLE t FOR ROW (v, ...)`: the range holding the
    /// row with that primary key.
    ShowRangeForRow {
        table: ast::ObjectName,
        row: Vec<ast::Expr>,
    },
    /// `SHOW RANGES`: every range of the cluster.
    ShowAllRanges,
    /// `SHOW NODES`: the cluster's nodes.
    ShowNodes,
    /// `ALTER RANGE id RELOCATE LEASE TO node`: the range's lease (its Raft
    /// leadership) moves to its replica on the node.
    RelocateLease { range_id: u64, node: u64 },
    /// `ALTER RANGE id RELOCATE [VOTERS] FROM node TO node`: the range's
    /// voting replica on one node moves to another.
    RelocateVoters { range_id: u64, from: u64, to: u64 },
    /// `ALTER TABLE t UNSPLIT AT VALUES (v, ...)[, (...)]`: the range
    /// starting at each row's key merges into the range before it.
    /// `ALTER TABLE t UNSPLIT ALL` (rows None): every range boundary inside
    /// the table goes. `ALTER INDEX t@idx UNSPLIT ...` works on the index.
    UnsplitAt {
        table: ast::ObjectName,
        index: Option<String>,
        rows: Option<Vec<Vec<ast::Expr>>>,
    },
}

fn fmt_rows(rows: &[Vec<ast::Expr>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|row| {
            let values: Vec<String> = row.iter().map(|e| e.to_string()).collect();
            format!("({})", values.join(", "))
        })
        .collect();
    rows.join(", ")
}

fn fmt_target(
    f: &mut std::fmt::Formatter<'_>,
    table: &ast::ObjectName,
    index: &Option<String>,
) -> std::fmt::Result {
    match index {
        None => write!(f, "ALTER TABLE {table}"),
        Some(index) => write!(f, "ALTER INDEX {table}@{index}"),
    }
}

impl std::fmt::Display for TesseraStmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TesseraStmt::SplitAt { table, index, rows } => {
                fmt_target(f, table, index)?;
                write!(f, " SPLIT AT VALUES {}", fmt_rows(rows))
            }
            TesseraStmt::UnsplitAt { table, index, rows } => {
                fmt_target(f, table, index)?;
                match rows {
                    Some(rows) => write!(f, " UNSPLIT AT VALUES {}", fmt_rows(rows)),
                    None => write!(f, " UNSPLIT ALL"),
                }
            }
            TesseraStmt::ShowRanges { table, index: None } => {
                write!(f, "SHOW RANGES FROM TABLE {table}")
            }
            TesseraStmt::ShowRanges {
                table,
                index: Some(index),
            } => write!(f, "SHOW RANGES FROM INDEX {table}@{index}"),
            TesseraStmt::ShowRangeForRow { table, row } => {
                let values: Vec<String> = row.iter().map(|e| e.to_string()).collect();
                write!(
                    f,
                    "SHOW RANGE FROM TABLE {table} FOR ROW ({})",
                    values.join(", ")
                )
            }
            TesseraStmt::ShowNodes => write!(f, "SHOW NODES"),
            TesseraStmt::ShowAllRanges => write!(f, "SHOW RANGES"),
            TesseraStmt::RelocateLease { range_id, node } => {
                write!(f, "ALTER RANGE {range_id} RELOCATE LEASE TO {node}")
            }
            TesseraStmt::RelocateVoters { range_id, from, to } => {
                write!(
                    f,
                    "ALTER RANGE {range_id} RELOCATE VOTERS FROM {from} TO {to}"
                )
            }
        }
    }
}

fn syntax_error(e: ParserError, sql: &str) -> SqlError {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => {
            return SqlError::new(
                crate::error::code::PROGRAM_LIMIT_EXCEEDED,
                "statement is too deeply nested",
            )
        }
    };
    // sqlparser says "Expected: X, found: Y at Line: 1, Column: 8"; psql
    // users expect PostgreSQL's "syntax error at or near".
    let near = msg
        .split("found: ")
        .nth(1)
        .map(|rest| rest.split(" at Line").next().unwrap_or(rest).to_string());
    let message = match near {
        Some(tok) if tok == "EOF" => "syntax error at end of input".to_string(),
        Some(tok) => format!("syntax error at or near \"{tok}\""),
        None => format!("syntax error: {msg}"),
    };
    let _ = sql;
    SqlError::syntax(message).with_detail(msg)
}

/// Parses a query string into its statements.
pub fn parse(sql: &str) -> SqlResult<Vec<Statement>> {
    if sql.trim().trim_matches(';').trim().is_empty() {
        return Ok(vec![Statement {
            inner: Stmt::Empty,
            sql: String::new(),
            plan: Default::default(),
        }]);
    }
    let dialect = PostgreSqlDialect {};
    let stmts = Parser::new(&dialect)
        .with_recursion_limit(200)
        .try_with_sql(sql)
        .and_then(|mut p| parse_statements(&mut p))
        .map_err(|e| syntax_error(e, sql))?;
    Ok(stmts
        .into_iter()
        .map(|s| Statement {
            sql: s.to_string(),
            inner: s,
            plan: Default::default(),
        })
        .collect())
}

/// Whether the next tokens are `ALTER TABLE <name> SPLIT` (or `UNSPLIT`).
fn is_split_at(p: &Parser) -> bool {
    let index = is_keyword(&p.peek_nth_token(1).token, Keyword::INDEX);
    if !is_keyword(&p.peek_nth_token(0).token, Keyword::ALTER)
        || !(index || is_keyword(&p.peek_nth_token(1).token, Keyword::TABLE))
    {
        return false;
    }
    // The name: words separated by periods, then `@index` for an index.
    let mut n = 2;
    while matches!(p.peek_nth_token(n + 1).token, Token::Period) {
        n += 2;
    }
    if index && matches!(p.peek_nth_token(n + 1).token, Token::AtSign) {
        n += 2;
    }
    matches!(&p.peek_nth_token(n + 1).token, Token::Word(w)
        if w.value.eq_ignore_ascii_case("split") || w.value.eq_ignore_ascii_case("unsplit"))
}

/// Whether the next tokens are `SHOW <word>`.
fn is_show(p: &Parser, word: &str) -> bool {
    is_keyword(&p.peek_nth_token(0).token, Keyword::SHOW)
        && matches!(&p.peek_nth_token(1).token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// `table@index` (the index part only if `index`).
fn parse_target(
    p: &mut Parser,
    index: bool,
) -> Result<(ast::ObjectName, Option<String>), ParserError> {
    let table = p.parse_object_name(false)?;
    if !index {
        return Ok((table, None));
    }
    p.expect_token(&Token::AtSign)?;
    Ok((table, Some(p.parse_identifier()?.value)))
}

/// `ALTER TABLE name [UN]SPLIT AT VALUES (...)[, (...)]`,
/// `ALTER TABLE name UNSPLIT ALL`, and the same with `ALTER INDEX name@index`
fn parse_split_at(p: &mut Parser) -> Result<TesseraStmt, ParserError> {
    p.expect_keyword_is(Keyword::ALTER)?;
    let index = p.parse_one_of_keywords(&[Keyword::TABLE, Keyword::INDEX]) == Some(Keyword::INDEX);
    let (table, index) = parse_target(p, index)?;
    // SPLIT or UNSPLIT, checked by is_split_at
    let unsplit =
        matches!(&p.next_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("unsplit"));
    if unsplit && p.parse_keyword(Keyword::ALL) {
        return Ok(TesseraStmt::UnsplitAt {
            table,
            index,
            rows: None,
        });
    }
    p.expect_keywords(&[Keyword::AT, Keyword::VALUES])?;
    let mut rows = Vec::new();
    loop {
        p.expect_token(&Token::LParen)?;
        rows.push(p.parse_comma_separated(Parser::parse_expr)?);
        p.expect_token(&Token::RParen)?;
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    if unsplit {
        return Ok(TesseraStmt::UnsplitAt {
            table,
            index,
            rows: Some(rows),
        });
    }
    Ok(TesseraStmt::SplitAt { table, index, rows })
}

/// Whether the next tokens are `ALTER RANGE`.
fn is_alter_range(p: &Parser) -> bool {
    is_keyword(&p.peek_nth_token(0).token, Keyword::ALTER)
        && matches!(&p.peek_nth_token(1).token, Token::Word(w) if w.value.eq_ignore_ascii_case("range"))
}

/// A range or node id: a non-negative integer literal.
fn parse_id(p: &mut Parser, what: &str) -> Result<u64, ParserError> {
    let token = p.next_token();
    match &token.token {
        Token::Number(n, _) => n
            .parse()
            .map_err(|_| ParserError::ParserError(format!("invalid {what}: {n}"))),
        _ => p.expected(what, token),
    }
}

fn expect_word(p: &mut Parser, word: &str) -> Result<(), ParserError> {
    let token = p.next_token();
    match &token.token {
        Token::Word(w) if w.value.eq_ignore_ascii_case(word) => Ok(()),
        _ => p.expected(word, token),
    }
}

/// `ALTER RANGE id RELOCATE LEASE TO node` and
/// `ALTER RANGE id RELOCATE [VOTERS] FROM node TO node`
fn parse_alter_range(p: &mut Parser) -> Result<TesseraStmt, ParserError> {
    p.expect_keyword_is(Keyword::ALTER)?;
    p.next_token(); // RANGE, checked by is_alter_range
    let range_id = parse_id(p, "a range id")?;
    expect_word(p, "relocate")?;
    let lease =
        matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("lease"));
    if lease {
        p.next_token();
        p.expect_keyword_is(Keyword::TO)?;
        let node = parse_id(p, "a node id")?;
        return Ok(TesseraStmt::RelocateLease { range_id, node });
    }
    if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("voters")) {
        p.next_token();
    }
    p.expect_keyword_is(Keyword::FROM)?;
    let from = parse_id(p, "a node id")?;
    p.expect_keyword_is(Keyword::TO)?;
    let to = parse_id(p, "a node id")?;
    Ok(TesseraStmt::RelocateVoters { range_id, from, to })
}

/// `SHOW RANGES`, `SHOW RANGES FROM TABLE name`, `SHOW RANGES FROM INDEX name@index`,
/// `SHOW RANGE FROM TABLE name FOR ROW
/// (...)` and `SHOW NODES`
fn parse_show(p: &mut Parser) -> Result<TesseraStmt, ParserError> {
    p.expect_keyword_is(Keyword::SHOW)?;
    let what = p.next_token().to_string().to_ascii_lowercase();
    if what == "nodes" {
        return Ok(TesseraStmt::ShowNodes);
    }
    if what == "ranges" && matches!(p.peek_token().token, Token::EOF | Token::SemiColon) {
        return Ok(TesseraStmt::ShowAllRanges);
    }
    p.expect_keyword_is(Keyword::FROM)?;
    if what == "ranges" {
        let index = p.parse_one_of_keywords(&[Keyword::TABLE, Keyword::INDEX]);
        if index.is_none() {
            return p.expected("TABLE or INDEX", p.peek_token());
        }
        let (table, index) = parse_target(p, index == Some(Keyword::INDEX))?;
        return Ok(TesseraStmt::ShowRanges { table, index });
    }
    p.expect_keyword_is(Keyword::TABLE)?;
    let table = p.parse_object_name(false)?;
    p.expect_keywords(&[Keyword::FOR, Keyword::ROW])?;
    p.expect_token(&Token::LParen)?;
    let row = p.parse_comma_separated(Parser::parse_expr)?;
    p.expect_token(&Token::RParen)?;
    Ok(TesseraStmt::ShowRangeForRow { table, row })
}

/// The statements of a query string, separated by semicolons. sqlparser
/// parses each, except `CREATE SEQUENCE`, whose options PostgreSQL takes in
/// any order and sqlparser only in one, and Tessera's own statements.
fn parse_statements(p: &mut Parser) -> Result<Vec<Stmt>, ParserError> {
    let mut statements = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token == Token::EOF {
            return Ok(statements);
        }
        let create_sequence = is_keyword(&p.peek_nth_token(0).token, Keyword::CREATE)
            && (1..=2).any(|n| is_keyword(&p.peek_nth_token(n).token, Keyword::SEQUENCE));
        statements.push(if create_sequence {
            Stmt::Sql(Box::new(parse_create_sequence(p)?))
        } else if is_split_at(p) {
            Stmt::Tessera(parse_split_at(p)?)
        } else if is_show(p, "ranges") || is_show(p, "range") || is_show(p, "nodes") {
            Stmt::Tessera(parse_show(p)?)
        } else if is_alter_range(p) {
            Stmt::Tessera(parse_alter_range(p)?)
        } else if is_word(&p.peek_token().token, "vacuum")
            || is_word(&p.peek_token().token, "analyze")
            || is_word(&p.peek_token().token, "analyse")
        {
            parse_maintenance(p)?
        } else if is_copy_with_boolean_options(p) {
            Stmt::Sql(Box::new(parse_copy(p)?))
        } else {
            Stmt::Sql(Box::new(p.parse_statement()?))
        });
        let next = p.peek_token();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return p.expected("end of statement", next);
        }
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword)
}

/// Whether `token` is the unquoted word `word` (any case).
fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [(cols)], ...]`,
/// `VACUUM (option [value], ...) [table [(cols)], ...]` and
/// `ANALYZE [VERBOSE] [table [(cols)], ...]`.
fn parse_maintenance(p: &mut Parser) -> Result<Stmt, ParserError> {
    let vacuum = is_word(&p.next_token().token, "vacuum");
    let mut analyze = !vacuum;
    if vacuum && p.consume_token(&Token::LParen) {
        loop {
            let option = p.parse_identifier()?.value.to_ascii_lowercase();
            let value = match &p.peek_token().token {
                Token::Comma | Token::RParen => true,
                _ => parse_option_boolean(p)?,
            };
            match option.as_str() {
                "analyze" | "analyse" => analyze = value,
                "full"
                | "freeze"
                | "verbose"
                | "skip_locked"
                | "disable_page_skipping"
                | "index_cleanup"
                | "process_toast"
                | "truncate"
                | "parallel" => {}
                other => {
                    return Err(ParserError::ParserError(format!(
                        "unrecognized VACUUM option \"{other}\""
                    )))
                }
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    } else {
        for word in ["full", "freeze", "verbose", "analyze"] {
            if !vacuum && word != "verbose" {
                continue;
            }
            let token = p.peek_token().token;
            if is_word(&token, word) || (word == "analyze" && is_word(&token, "analyse")) {
                p.next_token();
                analyze |= word == "analyze";
            }
        }
    }
    let mut tables = Vec::new();
    if !matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
        tables = p.parse_comma_separated(|p| {
            let name = p.parse_object_name(false)?;
            // Column lists (for ANALYZE) name what to analyze: all is fine.
            if p.consume_token(&Token::LParen) {
                p.parse_comma_separated(Parser::parse_identifier)?;
                p.expect_token(&Token::RParen)?;
            }
            Ok(name)
        })?;
    }
    Ok(Stmt::Maintenance {
        vacuum,
        analyze,
        tables,
    })
}

/// A boolean option value as PostgreSQL reads one: `true`, `false`, `on`,
/// `off`, `1`, `0` (or a prefix-free spelling of them, as `yes`/`no`).
fn parse_option_boolean(p: &mut Parser) -> Result<bool, ParserError> {
    let token = p.next_token();
    let text = match &token.token {
        Token::Word(w) => w.value.to_ascii_lowercase(),
        Token::Number(n, _) => n.clone(),
        Token::SingleQuotedString(s) => s.to_ascii_lowercase(),
        _ => return p.expected("a boolean", token),
    };
    match text.as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" => Ok(false),
        other => Err(ParserError::ParserError(format!(
            "requires a Boolean value, not \"{other}\""
        ))),
    }
}

/// Whether the next statement is a `COPY` whose options give a boolean as
/// `on`, `off`, `0` or `1` (`WITH (FREEZE ON)`, as pgbench writes it),
/// which sqlparser does not read.
fn is_copy_with_boolean_options(p: &Parser) -> bool {
    if !is_keyword(&p.peek_nth_token(0).token, Keyword::COPY) {
        return false;
    }
    let mut n = 1;
    loop {
        let token = p.peek_nth_token(n).token;
        match token {
            Token::SemiColon | Token::EOF => return false,
            Token::Word(w) if matches!(w.keyword, Keyword::FREEZE | Keyword::HEADER) => {
                let value = p.peek_nth_token(n + 1).token;
                if is_word(&value, "on")
                    || is_word(&value, "off")
                    || matches!(&value, Token::Number(v, _) if v == "0" || v == "1")
                {
                    return true;
                }
            }
            _ => {}
        }
        n += 1;
    }
}

/// `COPY table [(columns)] FROM STDIN | TO STDOUT [[WITH] (option, ...)]`
/// (and `COPY (query) TO ...`), with PostgreSQL's option syntax: a boolean
/// option's value may be `true`, `false`, `on`, `off`, `1` or `0`.
fn parse_copy(p: &mut Parser) -> Result<ast::Statement, ParserError> {
    use sqlparser::parser::IsOptional;
    p.expect_keyword_is(Keyword::COPY)?;
    let source = if p.consume_token(&Token::LParen) {
        let query = p.parse_query()?;
        p.expect_token(&Token::RParen)?;
        ast::CopySource::Query(query)
    } else {
        ast::CopySource::Table {
            table_name: p.parse_object_name(false)?,
            columns: p.parse_parenthesized_column_list(IsOptional::Optional, false)?,
        }
    };
    let to = match p.parse_one_of_keywords(&[Keyword::FROM, Keyword::TO]) {
        Some(keyword) => keyword == Keyword::TO,
        None => return p.expected("FROM or TO", p.peek_token()),
    };
    let target = if p.parse_keyword(Keyword::STDIN) {
        ast::CopyTarget::Stdin
    } else if p.parse_keyword(Keyword::STDOUT) {
        ast::CopyTarget::Stdout
    } else {
        ast::CopyTarget::File {
            filename: p.parse_literal_string()?,
        }
    };
    let _ = p.parse_keyword(Keyword::WITH);
    p.expect_token(&Token::LParen)?;
    let boolean = |p: &mut Parser| match p.peek_token().token {
        Token::Comma | Token::RParen => Ok(true),
        _ => parse_option_boolean(p),
    };
    let character = |p: &mut Parser, what: &str| {
        let s = p.parse_literal_string()?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(ParserError::ParserError(format!(
                "COPY {what} must be a single one-byte character"
            ))),
        }
    };
    let options = p.parse_comma_separated(|p| {
        let name = p.parse_identifier()?.value.to_ascii_lowercase();
        Ok(match name.as_str() {
            "format" => ast::CopyOption::Format(p.parse_identifier()?),
            "freeze" => ast::CopyOption::Freeze(boolean(p)?),
            "header" => ast::CopyOption::Header(boolean(p)?),
            "delimiter" => ast::CopyOption::Delimiter(character(p, "delimiter")?),
            "quote" => ast::CopyOption::Quote(character(p, "quote")?),
            "escape" => ast::CopyOption::Escape(character(p, "escape")?),
            "null" => ast::CopyOption::Null(p.parse_literal_string()?),
            "encoding" => ast::CopyOption::Encoding(p.parse_literal_string()?),
            "force_quote" => ast::CopyOption::ForceQuote(
                p.parse_parenthesized_column_list(IsOptional::Mandatory, false)?,
            ),
            "force_not_null" => ast::CopyOption::ForceNotNull(
                p.parse_parenthesized_column_list(IsOptional::Mandatory, false)?,
            ),
            "force_null" => ast::CopyOption::ForceNull(
                p.parse_parenthesized_column_list(IsOptional::Mandatory, false)?,
            ),
            other => {
                return Err(ParserError::ParserError(format!(
                    "option \"{other}\" not recognized"
                )))
            }
        })
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(ast::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options: Vec::new(),
        values: Vec::new(),
    })
}

/// `CREATE [TEMP] SEQUENCE [IF NOT EXISTS] name [AS type] [option ...]`,
/// the options in any order, each at most once.
fn parse_create_sequence(p: &mut Parser) -> Result<ast::Statement, ParserError> {
    p.expect_keyword_is(Keyword::CREATE)?;
    let temporary = p
        .parse_one_of_keywords(&[Keyword::TEMP, Keyword::TEMPORARY])
        .is_some();
    p.expect_keyword_is(Keyword::SEQUENCE)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = p.parse_object_name(false)?;
    let data_type = if p.parse_keyword(Keyword::AS) {
        Some(p.parse_data_type()?)
    } else {
        None
    };
    let mut options: Vec<SequenceOptions> = Vec::new();
    let mut owned_by = None;
    loop {
        let option = if p.parse_keyword(Keyword::INCREMENT) {
            let by = p.parse_keyword(Keyword::BY);
            SequenceOptions::IncrementBy(p.parse_number()?, by)
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            SequenceOptions::MinValue(None)
        } else if p.parse_keyword(Keyword::MINVALUE) {
            SequenceOptions::MinValue(Some(p.parse_number()?))
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            SequenceOptions::MaxValue(None)
        } else if p.parse_keyword(Keyword::MAXVALUE) {
            SequenceOptions::MaxValue(Some(p.parse_number()?))
        } else if p.parse_keyword(Keyword::START) {
            let with = p.parse_keyword(Keyword::WITH);
            SequenceOptions::StartWith(p.parse_number()?, with)
        } else if p.parse_keyword(Keyword::CACHE) {
            SequenceOptions::Cache(p.parse_number()?)
        } else if p.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            // sqlparser's encoding: Cycle(true) is NO CYCLE.
            SequenceOptions::Cycle(true)
        } else if p.parse_keyword(Keyword::CYCLE) {
            SequenceOptions::Cycle(false)
        } else if p.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            if owned_by.is_some() {
                return Err(ParserError::ParserError(
                    "conflicting or redundant options".into(),
                ));
            }
            owned_by = Some(p.parse_object_name(false)?);
            continue;
        } else {
            break;
        };
        let kind = std::mem::discriminant(&option);
        if options.iter().any(|o| std::mem::discriminant(o) == kind) {
            return Err(ParserError::ParserError(
                "conflicting or redundant options".into(),
            ));
        }
        options.push(option);
    }
    Ok(ast::Statement::CreateSequence {
        temporary,
        if_not_exists,
        name,
        data_type,
        sequence_options: options,
        owned_by,
    })
}

/// Parses one expression (stored defaults and checks).
pub fn parse_expr(sql: &str) -> SqlResult<ast::Expr> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| syntax_error(e, sql))
}
