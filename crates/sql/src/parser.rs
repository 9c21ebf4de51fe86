//! Parsing: sqlparser's PostgreSQL dialect, split into statements.

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

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
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| syntax_error(e, sql))?;
    Ok(stmts
        .into_iter()
        .map(|s| Statement {
            sql: s.to_string(),
            inner: Stmt::Sql(Box::new(s)),
        })
        .collect())
}

/// Parses one expression (stored defaults and checks).
pub fn parse_expr(sql: &str) -> SqlResult<ast::Expr> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| syntax_error(e, sql))
}
