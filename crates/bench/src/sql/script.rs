//! pgbench-style scripts: the transaction a client runs over and over.
//!
//! A script is a list of commands, run in order:
//!
//! - `\set name expression` sets an integer variable. Expressions have
//!   integer literals, `:variables`, `random(lo, hi)` (uniform, both bounds
//!   included), `+ - * / %` (truncating division, as C and pgbench divide)
//!   and parentheses.
//! - An SQL statement, which ends with `;` and may span lines (the last one
//!   may leave its `;` out). `:name` in it stands for the variable's value:
//!   a bind parameter in prepared mode, a literal in simple mode. Quoted
//!   strings and identifiers, `::` casts and `--` comments are left alone.
//!
//! Blank lines and lines starting with `--` are skipped. The variables
//! `scale` and `client_id` are predefined. The whole script is checked before
//! a run starts: an unknown command, a malformed expression or a variable
//! used before it is set is an error naming the line.
//!
//! Variables are numbered (their slots) while parsing, so a transaction's
//! variables are a vector indexed by slot rather than a map.

use anyhow::{anyhow, bail, Result};
use rand::Rng;

/// The variables a script may use without setting them, in slot order:
/// `Script::variables` gives them their values.
const PREDEFINED: [&str; 2] = ["scale", "client_id"];

/// A parsed, checked script.
pub struct Script {
    /// What to call the script in messages: its file, or the built-in's name.
    name: String,
    commands: Vec<Command>,
    /// Variable names by slot.
    variables: Vec<String>,
}

/// One step of a script.
pub enum Command {
    /// `\set`.
    Set(Assignment),
    /// An SQL statement.
    Sql(Statement),
}

/// `\set name expression`.
pub struct Assignment {
    line: usize,
    /// The variable's name and slot.
    name: String,
    slot: usize,
    expr: Expr,
}

/// An SQL statement of a script, with the variables it uses.
pub struct Statement {
    /// Its position among the script's statements, from 0.
    index: usize,
    /// The script line it starts on.
    line: usize,
    /// As written (with `:names`), without its `;`.
    text: String,
    parts: Vec<Part>,
}

/// A piece of a statement's text.
enum Part {
    Sql(String),
    /// A variable's value, by slot.
    Variable(usize),
}

/// The values of a transaction's variables, by slot.
pub struct Variables(Vec<i64>);

impl Script {
    /// Parses and checks a script; `name` is used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let mut parser = ScriptParser {
            script: Script {
                name: name.to_string(),
                commands: Vec::new(),
                variables: PREDEFINED.iter().map(|v| v.to_string()).collect(),
            },
            statements: 0,
            pending: None,
        };
        for (number, line) in text.lines().enumerate() {
            parser.line(number + 1, line)?;
        }
        parser.finish()
    }

    /// The script's name, as given to `parse`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The commands, in order.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The SQL statements, in order.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.commands.iter().filter_map(|command| match command {
            Command::Sql(statement) => Some(statement),
            Command::Set(_) => None,
        })
    }

    /// The variables at the start of a transaction: the predefined ones set,
    /// the others not yet (parsing made sure none is read before it is set).
    pub fn variables(&self, scale: i64, client_id: i64) -> Variables {
        let mut values = vec![0; self.variables.len()];
        values[..PREDEFINED.len()].copy_from_slice(&[scale, client_id]);
        Variables(values)
    }
}

impl Assignment {
    /// The script line it is on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Evaluates the expression into the variable.
    pub fn apply(&self, variables: &mut Variables, rng: &mut impl Rng) -> Result<()> {
        let value = self
            .expr
            .eval(&variables.0, rng)
            .map_err(|err| anyhow!("\\set {}: {err}", self.name))?;
        variables.0[self.slot] = value;
        Ok(())
    }
}

impl Statement {
    /// Its position among the script's statements, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The script line it starts on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The statement as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text to prepare: each variable is a parameter, `$1`, `$2`, ...
    /// in order, one per use (two uses of a variable may need two types).
    pub fn with_parameters(&self) -> String {
        let mut number = 0;
        self.render(|_| {
            number += 1;
            format!("${number}")
        })
    }

    /// The arguments of the prepared statement, in parameter order.
    pub fn arguments(&self, variables: &Variables) -> Vec<i64> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Variable(slot) => Some(variables.0[*slot]),
                Part::Sql(_) => None,
            })
            .collect()
    }

    /// The text to send as is: each variable is its value. A negative one is
    /// in parentheses, lest `x -:delta` read as the comment `x --5`.
    pub fn with_literals(&self, variables: &Variables) -> String {
        self.render(|slot| match variables.0[slot] {
            value if value < 0 => format!("({value})"),
            value => value.to_string(),
        })
    }

    fn render(&self, mut variable: impl FnMut(usize) -> String) -> String {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Sql(sql) => text.push_str(sql),
                Part::Variable(slot) => text.push_str(&variable(*slot)),
            }
        }
        text
    }
}

/// Reads a script line by line.
struct ScriptParser {
    script: Script,
    /// Statements so far.
    statements: usize,
    /// The statement being read, until its `;`.
    pending: Option<PendingStatement>,
}

/// A statement read in part.
struct PendingStatement {
    line: usize,
    text: String,
    parts: Vec<Part>,
    /// Inside a quoted string (`'`) or identifier (`"`): the closing quote.
    quote: Option<char>,
}

impl PendingStatement {
    fn push(&mut self, c: char) {
        self.text.push(c);
        match self.parts.last_mut() {
            Some(Part::Sql(sql)) => sql.push(c),
            _ => self.parts.push(Part::Sql(c.to_string())),
        }
    }
}

impl ScriptParser {
    fn line(&mut self, number: usize, line: &str) -> Result<()> {
        let trimmed = line.trim();
        if self.pending.is_none() {
            if trimmed.is_empty() || trimmed.starts_with("--") {
                return Ok(());
            }
            if let Some(command) = trimmed.strip_prefix('\\') {
                return self.meta_command(number, command);
            }
        } else if trimmed.starts_with('\\') && self.quote().is_none() {
            let start = self.pending.as_ref().map_or(number, |p| p.line);
            bail!(
                "{}:{number}: a command inside the SQL statement of line {start}: is its ';' missing?",
                self.script.name
            );
        }
        self.sql_line(number, line)
    }

    fn quote(&self) -> Option<char> {
        self.pending.as_ref().and_then(|pending| pending.quote)
    }

    /// `\set name expression` (the backslash stripped).
    fn meta_command(&mut self, line: usize, command: &str) -> Result<()> {
        let error = |message: String| anyhow!("{}:{line}: {message}", self.script.name);
        let (word, rest) = split_word(command);
        if word != "set" {
            return Err(error(format!(
                "unknown command \\{word} (only \\set is supported)"
            )));
        }
        let (name, expression) = split_word(rest);
        if name.is_empty() || expression.is_empty() {
            return Err(error(
                "\\set needs a variable name and an expression".into(),
            ));
        }
        if !is_identifier(name) {
            return Err(error(format!("\\set: {name:?} is not a variable name")));
        }
        let expr = ExprParser::parse(expression, &|variable: &str| self.slot(variable))
            .map_err(|err| error(format!("\\set {name}: {err}")))?;
        let slot = match self.slot(name) {
            Some(slot) => slot,
            None => {
                self.script.variables.push(name.to_string());
                self.script.variables.len() - 1
            }
        };
        self.script.commands.push(Command::Set(Assignment {
            line,
            name: name.to_string(),
            slot,
            expr,
        }));
        Ok(())
    }

    /// The slot of a variable set so far.
    fn slot(&self, name: &str) -> Option<usize> {
        self.script.variables.iter().position(|v| v == name)
    }

    /// SQL text: adds to the pending statement, ending it at each `;`.
    fn sql_line(&mut self, number: usize, line: &str) -> Result<()> {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if let Some(pending) = &mut self.pending {
                if let Some(quote) = pending.quote {
                    pending.push(c);
                    if c == quote {
                        pending.quote = None;
                    }
                    i += 1;
                    continue;
                }
            }
            match c {
                '-' if next == Some('-') => break,
                ';' => {
                    self.end_statement();
                    i += 1;
                    continue;
                }
                c if c.is_whitespace() && self.pending.is_none() => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let pending = self.pending.get_or_insert_with(|| PendingStatement {
                line: number,
                text: String::new(),
                parts: Vec::new(),
                quote: None,
            });
            match c {
                '\'' | '"' => {
                    pending.quote = Some(c);
                    pending.push(c);
                    i += 1;
                }
                ':' if next == Some(':') => {
                    pending.push(':');
                    pending.push(':');
                    i += 2;
                }
                ':' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_') => {
                    let name: String = chars[i + 1..]
                        .iter()
                        .take_while(|n| n.is_ascii_alphanumeric() || **n == '_')
                        .collect();
                    i += 1 + name.len();
                    let Some(slot) = self.script.variables.iter().position(|v| *v == name) else {
                        bail!("{}:{number}: undefined variable :{name}", self.script.name);
                    };
                    pending.text.push(':');
                    pending.text.push_str(&name);
                    pending.parts.push(Part::Variable(slot));
                }
                _ => {
                    pending.push(c);
                    i += 1;
                }
            }
        }
        if let Some(pending) = &mut self.pending {
            pending.push('\n');
        }
        Ok(())
    }

    /// Ends the pending statement at its `;`; an empty one is dropped.
    fn end_statement(&mut self) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        if let Some(Part::Sql(sql)) = pending.parts.last_mut() {
            let trimmed = sql.trim_end().len();
            sql.truncate(trimmed);
        }
        pending
            .parts
            .retain(|part| !matches!(part, Part::Sql(sql) if sql.is_empty()));
        if pending.parts.is_empty() {
            return;
        }
        self.script.commands.push(Command::Sql(Statement {
            index: self.statements,
            line: pending.line,
            text: pending.text.trim().to_string(),
            parts: pending.parts,
        }));
        self.statements += 1;
    }

    fn finish(mut self) -> Result<Script> {
        if let Some(pending) = &self.pending {
            if pending.quote.is_some() {
                bail!(
                    "{}:{}: the statement ends inside a quoted string",
                    self.script.name,
                    pending.line
                );
            }
        }
        self.end_statement();
        if self.statements == 0 {
            bail!("{}: the script has no SQL statement", self.script.name);
        }
        Ok(self.script)
    }
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim()),
        None => (text, ""),
    }
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An integer expression of `\set`.
#[derive(Debug, PartialEq)]
enum Expr {
    Integer(i64),
    /// A variable, by slot.
    Variable(usize),
    Negate(Box<Expr>),
    Binary(Operator, Box<Expr>, Box<Expr>),
    /// `random(lo, hi)`: uniform in `lo..=hi`.
    Random(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

impl Expr {
    /// The value, given the variables by slot; errors are messages.
    fn eval(&self, variables: &[i64], rng: &mut impl Rng) -> Result<i64, String> {
        Ok(match self {
            Expr::Integer(value) => *value,
            Expr::Variable(slot) => variables[*slot],
            Expr::Negate(operand) => operand
                .eval(variables, rng)?
                .checked_neg()
                .ok_or("integer out of range")?,
            Expr::Binary(operator, left, right) => {
                let (left, right) = (left.eval(variables, rng)?, right.eval(variables, rng)?);
                let value = match operator {
                    Operator::Add => left.checked_add(right),
                    Operator::Subtract => left.checked_sub(right),
                    Operator::Multiply => left.checked_mul(right),
                    Operator::Divide | Operator::Remainder if right == 0 => {
                        return Err("division by zero".into())
                    }
                    Operator::Divide => left.checked_div(right),
                    Operator::Remainder => left.checked_rem(right),
                };
                value.ok_or("integer out of range")?
            }
            Expr::Random(lo, hi) => {
                let (lo, hi) = (lo.eval(variables, rng)?, hi.eval(variables, rng)?);
                if lo > hi {
                    return Err(format!(
                        "random({lo}, {hi}): the lower bound is above the upper"
                    ));
                }
                rng.gen_range(lo..=hi)
            }
        })
    }
}

/// A token of an expression.
#[derive(Debug, PartialEq)]
enum Token {
    Integer(i64),
    /// `:name`.
    Variable(String),
    /// A function name.
    Name(String),
    Operator(char),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let word = |start: usize| -> String {
        chars[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect()
    };
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '0'..='9' => {
                let digits = word(i);
                i += digits.len();
                let value = digits.parse().map_err(|_| {
                    if digits.bytes().all(|b| b.is_ascii_digit()) {
                        format!("integer {digits} out of range")
                    } else {
                        format!("{digits:?} is not an integer")
                    }
                })?;
                if chars.get(i) == Some(&'.') {
                    return Err("only integers are supported".into());
                }
                tokens.push(Token::Integer(value));
            }
            ':' => {
                let name = word(i + 1);
                if !is_identifier(&name) {
                    return Err("':' must be followed by a variable name".into());
                }
                i += 1 + name.len();
                tokens.push(Token::Variable(name));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let name = word(i);
                i += name.len();
                tokens.push(Token::Name(name));
            }
            '+' | '-' | '*' | '/' | '%' => {
                tokens.push(Token::Operator(c));
                i += 1;
            }
            '(' | ')' | ',' => {
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
                i += 1;
            }
            _ => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(tokens)
}

/// Recursive descent over the tokens, one function per precedence level:
/// `+ -`, then `* / %`, then unary minus, then operands.
struct ExprParser<'a> {
    tokens: Vec<Token>,
    position: usize,
    /// The slot of a variable set so far.
    slot: &'a dyn Fn(&str) -> Option<usize>,
}

impl ExprParser<'_> {
    fn parse(text: &str, slot: &dyn Fn(&str) -> Option<usize>) -> Result<Expr, String> {
        let mut parser = ExprParser {
            tokens: tokenize(text)?,
            position: 0,
            slot,
        };
        let expr = parser.sum()?;
        match parser.tokens.get(parser.position) {
            None => Ok(expr),
            Some(token) => Err(format!("unexpected {} after the expression", show(token))),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<&Token> {
        self.position += 1;
        self.tokens.get(self.position - 1)
    }

    fn expect(&mut self, expected: Token) -> Result<(), String> {
        match self.next() {
            Some(token) if *token == expected => Ok(()),
            Some(token) => Err(format!(
                "expected {}, found {}",
                show(&expected),
                show(token)
            )),
            None => Err(format!("expected {} at the end", show(&expected))),
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut expr = self.product()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Operator('+')) => Operator::Add,
                Some(Token::Operator('-')) => Operator::Subtract,
                _ => return Ok(expr),
            };
            self.position += 1;
            expr = Expr::Binary(operator, Box::new(expr), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut expr = self.unary()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Operator('*')) => Operator::Multiply,
                Some(Token::Operator('/')) => Operator::Divide,
                Some(Token::Operator('%')) => Operator::Remainder,
                _ => return Ok(expr),
            };
            self.position += 1;
            expr = Expr::Binary(operator, Box::new(expr), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Operator('-')) => {
                self.position += 1;
                Ok(Expr::Negate(Box::new(self.unary()?)))
            }
            Some(Token::Operator('+')) => {
                self.position += 1;
                self.unary()
            }
            _ => self.operand(),
        }
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let slot = self.slot;
        match self.next() {
            Some(Token::Integer(value)) => Ok(Expr::Integer(*value)),
            Some(Token::Variable(name)) => slot(name)
                .map(Expr::Variable)
                .ok_or_else(|| format!("undefined variable :{name}")),
            Some(Token::Open) => {
                let expr = self.sum()?;
                self.expect(Token::Close)?;
                Ok(expr)
            }
            Some(Token::Name(name)) if name.eq_ignore_ascii_case("random") => {
                self.expect(Token::Open)?;
                let lo = self.sum()?;
                self.expect(Token::Comma)?;
                let hi = self.sum()?;
                self.expect(Token::Close)?;
                Ok(Expr::Random(Box::new(lo), Box::new(hi)))
            }
            Some(Token::Name(name)) => Err(format!(
                "unknown function {name} (only random(lo, hi) is supported)"
            )),
            Some(token) => Err(format!("unexpected {}", show(token))),
            None => Err("the expression ends too soon".into()),
        }
    }
}

/// A token as it was written, for messages.
fn show(token: &Token) -> String {
    match token {
        Token::Integer(value) => value.to_string(),
        Token::Variable(name) => format!(":{name}"),
        Token::Name(name) => name.clone(),
        Token::Operator(c) => format!("'{c}'"),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Comma => "','".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// Runs a script's `\set`s, returning the value of each variable named.
    fn run_sets(script: &Script, names: &[&str]) -> Result<Vec<i64>> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut variables = script.variables(3, 2);
        for command in script.commands() {
            if let Command::Set(assignment) = command {
                assignment.apply(&mut variables, &mut rng)?;
            }
        }
        Ok(names
            .iter()
            .map(|name| variables.0[script.variables.iter().position(|v| v == name).unwrap()])
            .collect())
    }

    fn eval(expression: &str) -> Result<i64> {
        let script = Script::parse("test", &format!("\\set x {expression}\nSELECT :x;"))?;
        Ok(run_sets(&script, &["x"])?[0])
    }

    fn error(script: &str) -> String {
        match Script::parse("test.sql", script) {
            Ok(_) => panic!("{script:?} parsed"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn arithmetic_has_precedence_and_truncates() {
        assert_eq!(eval("1 + 2 * 3").unwrap(), 7);
        assert_eq!(eval("(1 + 2) * 3").unwrap(), 9);
        assert_eq!(eval("10 - 2 - 3").unwrap(), 5);
        assert_eq!(eval("100 / 10 / 5").unwrap(), 2);
        assert_eq!(eval("-7 / 2").unwrap(), -3);
        assert_eq!(eval("-7 % 3").unwrap(), -1);
        assert_eq!(eval("- -4 + +1").unwrap(), 5);
        assert_eq!(eval("100000 * :scale + :client_id").unwrap(), 300_002);
    }

    #[test]
    fn arithmetic_errors_are_reported() {
        assert_eq!(
            eval("1 / (2 - 2)").unwrap_err().to_string(),
            "\\set x: division by zero"
        );
        assert!(eval("9223372036854775807 + 1")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(eval("random(5, 4)")
            .unwrap_err()
            .to_string()
            .contains("lower bound is above"));
    }

    #[test]
    fn random_stays_in_its_bounds() {
        let script = Script::parse(
            "test",
            "\\set a random(1, 10 * :scale)\n\\set b random(-5000, 5000)\n\\set c random(4, 4)\nSELECT 1",
        )
        .unwrap();
        for _ in 0..100 {
            let values = run_sets(&script, &["a", "b", "c"]).unwrap();
            assert!((1..=30).contains(&values[0]), "{values:?}");
            assert!((-5000..=5000).contains(&values[1]), "{values:?}");
            assert_eq!(values[2], 4);
        }
    }

    #[test]
    fn statements_split_at_semicolons_outside_quotes() {
        let script = Script::parse(
            "test",
            "-- a comment\n\
             BEGIN; SELECT 'a;b', \"c;d\"\n  FROM t; -- trailing\n\
             \n\
             SELECT 1::int8,\n 'x:y' -- :z; not a variable\n\
             , 2",
        )
        .unwrap();
        let texts: Vec<(usize, &str)> = script.statements().map(|s| (s.line(), s.text())).collect();
        assert_eq!(
            texts,
            [
                (2, "BEGIN"),
                (2, "SELECT 'a;b', \"c;d\"\n  FROM t"),
                (5, "SELECT 1::int8,\n 'x:y' \n, 2"),
            ]
        );
        assert_eq!(
            script
                .statements()
                .map(Statement::index)
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn variables_become_parameters_or_literals() {
        let script = Script::parse(
            "test",
            "\\set aid 5\n\\set delta -7\n\
             UPDATE t SET b = b -:delta WHERE aid = :aid AND s = ':aid' AND c = :aid::int8;",
        )
        .unwrap();
        let statement = script.statements().next().unwrap();
        assert_eq!(
            statement.with_parameters(),
            "UPDATE t SET b = b -$1 WHERE aid = $2 AND s = ':aid' AND c = $3::int8"
        );
        let mut variables = script.variables(1, 0);
        let mut rng = SmallRng::seed_from_u64(0);
        for command in script.commands() {
            if let Command::Set(assignment) = command {
                assignment.apply(&mut variables, &mut rng).unwrap();
            }
        }
        assert_eq!(statement.arguments(&variables), [-7, 5, 5]);
        assert_eq!(
            statement.with_literals(&variables),
            "UPDATE t SET b = b -(-7) WHERE aid = 5 AND s = ':aid' AND c = 5::int8"
        );
        assert_eq!(
            statement.text(),
            "UPDATE t SET b = b -:delta WHERE aid = :aid AND s = ':aid' AND c = :aid::int8"
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            error("SELECT 1;\n\\sleep 10 ms\n"),
            "test.sql:2: unknown command \\sleep (only \\set is supported)"
        );
        assert_eq!(
            error("\\set a 1\nSELECT :a,\n  :b;"),
            "test.sql:3: undefined variable :b"
        );
        assert_eq!(
            error("\\set a :b + 1\nSELECT 1;"),
            "test.sql:1: \\set a: undefined variable :b"
        );
        // A variable is set only from its \set on.
        assert_eq!(
            error("SELECT :a;\n\\set a 1"),
            "test.sql:1: undefined variable :a"
        );
        assert_eq!(
            error("\\set a abs(1)\nSELECT 1;"),
            "test.sql:1: \\set a: unknown function abs (only random(lo, hi) is supported)"
        );
        assert_eq!(
            error("\\set a (1 + 2\nSELECT 1;"),
            "test.sql:1: \\set a: expected ')' at the end"
        );
        assert_eq!(
            error("\\set a 1 2\nSELECT 1;"),
            "test.sql:1: \\set a: unexpected 2 after the expression"
        );
        assert_eq!(
            error("\\set a 1.5\nSELECT 1;"),
            "test.sql:1: \\set a: only integers are supported"
        );
        assert_eq!(
            error("\\set a\n"),
            "test.sql:1: \\set needs a variable name and an expression"
        );
        assert_eq!(
            error("SELECT 1\n\\set a 1\nSELECT 2;"),
            "test.sql:2: a command inside the SQL statement of line 1: is its ';' missing?"
        );
        assert_eq!(
            error("SELECT 'abc;\n"),
            "test.sql:1: the statement ends inside a quoted string"
        );
        assert_eq!(
            error("\\set a 1\n-- nothing\n"),
            "test.sql: the script has no SQL statement"
        );
    }

    #[test]
    fn the_last_statement_may_leave_out_its_semicolon() {
        let script = Script::parse("test", "SELECT 1;\nSELECT 2\n").unwrap();
        let texts: Vec<&str> = script.statements().map(Statement::text).collect();
        assert_eq!(texts, ["SELECT 1", "SELECT 2"]);
    }
}
