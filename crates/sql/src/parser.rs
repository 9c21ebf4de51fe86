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
            inner: Stmt::Sql(Box::new(s)),
        })
        .collect())
}

/// The statements of a query string, separated by semicolons. sqlparser
/// parses each, except `CREATE SEQUENCE`, whose options PostgreSQL takes in
/// any order and sqlparser only in one.
fn parse_statements(p: &mut Parser) -> Result<Vec<ast::Statement>, ParserError> {
    let mut statements = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token == Token::EOF {
            return Ok(statements);
        }
        let create_sequence = is_keyword(&p.peek_nth_token(0).token, Keyword::CREATE)
            && (1..=2).any(|n| is_keyword(&p.peek_nth_token(n).token, Keyword::SEQUENCE));
        statements.push(if create_sequence {
            parse_create_sequence(p)?
        } else {
            p.parse_statement()?
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
