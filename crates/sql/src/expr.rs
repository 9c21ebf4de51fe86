//! Bound scalar expressions and their evaluation with SQL's three-valued logic.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{code, SqlError, SqlResult};
use crate::exec::Env;
use crate::functions::Func;
use crate::plan::Plan;
use crate::types::{cast, compare, int_range, DataType, Value};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The operator with its operands swapped.
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            o => o,
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::NotEq => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::LtEq => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::GtEq => o != Ordering::Less,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Pow => "^",
        }
    }
}

/// What a subquery expression tests.
#[derive(Debug, Clone)]
pub enum SubqueryKind {
    /// `(SELECT ...)`: one value, NULL if no rows, 21000 if several.
    Scalar,
    /// `EXISTS (...)`.
    Exists,
    /// `x op ANY (SELECT ...)` (IN is `= ANY`).
    Any(Box<Expr>, CmpOp),
    /// `x op ALL (SELECT ...)` (NOT IN is `<> ALL`).
    All(Box<Expr>, CmpOp),
    /// `ARRAY(SELECT ...)`: the column's values as an array.
    Array,
}

/// A bound expression: column references are positions in the input row.
///
/// Expressions travel to the nodes that hold a scan's ranges (see
/// [`crate::flow`]); a subquery never does, so it cannot be serialized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Expr {
    Const(Value),
    Column(usize),
    /// A column of an enclosing query's row: depth 1 is the nearest.
    Outer {
        depth: usize,
        index: usize,
    },
    Param(usize),
    Not(Box<Expr>),
    Neg(Box<Expr>, DataType),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>, DataType),
    Concat(Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    /// IS [NOT] DISTINCT FROM.
    IsDistinct(Box<Expr>, Box<Expr>, bool),
    /// IS [NOT] TRUE/FALSE: (expr, value, negated).
    IsBool(Box<Expr>, bool, bool),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
        case_insensitive: bool,
        negated: bool,
    },
    Regex {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        case_insensitive: bool,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        from: DataType,
        to: DataType,
    },
    Func {
        func: Func,
        args: Vec<Expr>,
        ty: DataType,
    },
    /// `x op ANY (array)` / `x op ALL (array)`.
    ArrayCmp {
        expr: Box<Expr>,
        op: CmpOp,
        array: Box<Expr>,
        all: bool,
    },
    #[serde(skip)]
    Subquery {
        /// Unique within the statement; caches uncorrelated results.
        id: usize,
        plan: Box<Plan>,
        kind: SubqueryKind,
        correlated: bool,
    },
}

impl Expr {
    /// A boolean constant.
    pub fn boolean(b: bool) -> Expr {
        Expr::Const(Value::Bool(b))
    }

    /// Does the expression read the input row (or an outer row)?
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(_) | Expr::Outer { .. } | Expr::Subquery { .. }
            ) {
                constant = false;
            }
            if let Expr::Func { func, .. } = e {
                if func.is_volatile() {
                    constant = false;
                }
            }
        });
        constant
    }

    /// Does the expression read only parameters and constants (no columns,
    /// no subqueries) so that it can compute a key before a scan?
    pub fn is_key_computable(&self) -> bool {
        let mut ok = true;
        self.walk(&mut |e| {
            if matches!(e, Expr::Column(_) | Expr::Subquery { .. }) {
                ok = false;
            }
        });
        ok
    }

    /// Visits the expression tree (not into subquery plans).
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Const(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(_) => {}
            Expr::Not(e)
            | Expr::Neg(e, _)
            | Expr::IsNull(e, _)
            | Expr::IsBool(e, _, _)
            | Expr::Cast { expr: e, .. } => e.walk(f),
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Cmp(_, a, b)
            | Expr::Arith(_, a, b, _)
            | Expr::Concat(a, b)
            | Expr::IsDistinct(a, b, _) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                ..
            } => {
                expr.walk(f);
                pattern.walk(f);
                if let Some(e) = escape {
                    e.walk(f);
                }
            }
            Expr::Regex { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Expr::Func { args, .. } => args.iter().for_each(|e| e.walk(f)),
            Expr::ArrayCmp { expr, array, .. } => {
                expr.walk(f);
                array.walk(f);
            }
            Expr::Subquery { kind, .. } => match kind {
                SubqueryKind::Any(e, _) | SubqueryKind::All(e, _) => e.walk(f),
                _ => {}
            },
        }
    }

    /// Rewrites column references (not inside subqueries).
    pub fn map_columns(&self, f: &dyn Fn(usize) -> Expr) -> Expr {
        let m = |e: &Expr| Box::new(e.map_columns(f));
        match self {
            Expr::Column(i) => f(*i),
            Expr::Const(_) | Expr::Outer { .. } | Expr::Param(_) => self.clone(),
            Expr::Not(e) => Expr::Not(m(e)),
            Expr::Neg(e, t) => Expr::Neg(m(e), *t),
            Expr::And(a, b) => Expr::And(m(a), m(b)),
            Expr::Or(a, b) => Expr::Or(m(a), m(b)),
            Expr::Cmp(o, a, b) => Expr::Cmp(*o, m(a), m(b)),
            Expr::Arith(o, a, b, t) => Expr::Arith(*o, m(a), m(b), *t),
            Expr::Concat(a, b) => Expr::Concat(m(a), m(b)),
            Expr::IsNull(e, n) => Expr::IsNull(m(e), *n),
            Expr::IsDistinct(a, b, n) => Expr::IsDistinct(m(a), m(b), *n),
            Expr::IsBool(e, v, n) => Expr::IsBool(m(e), *v, *n),
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => Expr::Like {
                expr: m(expr),
                pattern: m(pattern),
                escape: escape.as_ref().map(|e| m(e)),
                case_insensitive: *case_insensitive,
                negated: *negated,
            },
            Expr::Regex {
                expr,
                pattern,
                case_insensitive,
                negated,
            } => Expr::Regex {
                expr: m(expr),
                pattern: m(pattern),
                case_insensitive: *case_insensitive,
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: m(expr),
                list: list.iter().map(|e| e.map_columns(f)).collect(),
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: operand.as_ref().map(|e| m(e)),
                whens: whens
                    .iter()
                    .map(|(w, t)| (w.map_columns(f), t.map_columns(f)))
                    .collect(),
                otherwise: otherwise.as_ref().map(|e| m(e)),
            },
            Expr::Cast { expr, from, to } => Expr::Cast {
                expr: m(expr),
                from: *from,
                to: *to,
            },
            Expr::Func { func, args, ty } => Expr::Func {
                func: *func,
                args: args.iter().map(|e| e.map_columns(f)).collect(),
                ty: *ty,
            },
            Expr::ArrayCmp {
                expr,
                op,
                array,
                all,
            } => Expr::ArrayCmp {
                expr: m(expr),
                op: *op,
                array: m(array),
                all: *all,
            },
            Expr::Subquery {
                id,
                plan,
                kind,
                correlated,
            } => Expr::Subquery {
                id: *id,
                plan: plan.clone(),
                kind: match kind {
                    SubqueryKind::Any(e, o) => SubqueryKind::Any(m(e), *o),
                    SubqueryKind::All(e, o) => SubqueryKind::All(m(e), *o),
                    k => k.clone(),
                },
                correlated: *correlated,
            },
        }
    }

    /// Splits a conjunction into its terms.
    pub fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(a, b) => {
                let mut v = a.conjuncts();
                v.extend(b.conjuncts());
                v
            }
            e => vec![e],
        }
    }

    /// Joins terms with AND.
    pub fn conjoin(terms: Vec<Expr>) -> Option<Expr> {
        terms
            .into_iter()
            .reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
    }

    /// Column positions the expression reads.
    pub fn columns_used(&self) -> Vec<usize> {
        let mut v = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column(i) = e {
                v.push(*i);
            }
        });
        v
    }

    /// Evaluates the expression over `row`.
    pub fn eval(&self, row: &[Value], env: &Env) -> SqlResult<Value> {
        Ok(match self {
            Expr::Const(v) => v.clone(),
            Expr::Column(i) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| SqlError::internal(format!("column {i} out of range")))?,
            Expr::Outer { depth, index } => env.outer_value(*depth, *index)?,
            Expr::Param(i) => env.ctx.params.get(*i).cloned().ok_or_else(|| {
                SqlError::new(
                    code::UNDEFINED_PARAMETER,
                    format!("there is no parameter ${}", i + 1),
                )
            })?,
            Expr::Not(e) => match e.eval(row, env)?.as_bool()? {
                None => Value::Null,
                Some(b) => Value::Bool(!b),
            },
            Expr::Neg(e, ty) => match e.eval(row, env)? {
                Value::Null => Value::Null,
                Value::Int(i) => {
                    let (min, max, name) = int_range(*ty);
                    match i.checked_neg() {
                        Some(n) if n >= min && n <= max => Value::Int(n),
                        _ => return Err(SqlError::out_of_range(format!("{name} out of range"))),
                    }
                }
                Value::Float(f) => Value::Float(-f),
                Value::Numeric(d) if d.is_zero() => Value::Numeric(d),
                Value::Numeric(d) => Value::Numeric(-d),
                other => {
                    return Err(SqlError::mismatch(format!(
                        "cannot negate {}",
                        other.kind()
                    )))
                }
            },
            Expr::And(a, b) => {
                let l = a.eval(row, env)?.as_bool()?;
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let r = b.eval(row, env)?.as_bool()?;
                match (l, r) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let l = a.eval(row, env)?.as_bool()?;
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let r = b.eval(row, env)?.as_bool()?;
                match (l, r) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Cmp(op, a, b) => {
                let (l, r) = (a.eval(row, env)?, b.eval(row, env)?);
                if l.is_null() || r.is_null() {
                    Value::Null
                } else {
                    Value::Bool(op.holds(compare(&l, &r)))
                }
            }
            Expr::Arith(op, a, b, ty) => arith(*op, a.eval(row, env)?, b.eval(row, env)?, *ty)?,
            Expr::Concat(a, b) => {
                let (l, r) = (a.eval(row, env)?, b.eval(row, env)?);
                match (l, r) {
                    (Value::Null, _) | (_, Value::Null) => Value::Null,
                    (Value::Text(x), Value::Text(y)) => Value::Text(x + &y),
                    (Value::Bool(x), Value::Text(y)) => Value::Text(format!("{x}{y}")),
                    (Value::Text(x), Value::Bool(y)) => Value::Text(format!("{x}{y}")),
                    (x, y) => {
                        let xs = x.to_pg_text(DataType::Text).unwrap_or_default();
                        let ys = y.to_pg_text(DataType::Text).unwrap_or_default();
                        Value::Text(xs + &ys)
                    }
                }
            }
            Expr::IsNull(e, negated) => Value::Bool(e.eval(row, env)?.is_null() != *negated),
            Expr::IsDistinct(a, b, negated) => {
                let (l, r) = (a.eval(row, env)?, b.eval(row, env)?);
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => compare(&l, &r) != Ordering::Equal,
                };
                Value::Bool(distinct != *negated)
            }
            Expr::IsBool(e, value, negated) => {
                let v = e.eval(row, env)?.as_bool()?;
                Value::Bool((v == Some(*value)) != *negated)
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let (s, p) = (expr.eval(row, env)?, pattern.eval(row, env)?);
                let esc = match escape {
                    Some(e) => match e.eval(row, env)? {
                        Value::Null => return Ok(Value::Null),
                        Value::Text(t) => {
                            let mut chars = t.chars();
                            match (chars.next(), chars.next()) {
                                (None, _) => None,
                                (Some(c), None) => Some(c),
                                _ => {
                                    return Err(SqlError::new(
                                        code::INVALID_ESCAPE_SEQUENCE,
                                        "invalid escape string",
                                    )
                                    .with_detail("Escape string must be empty or one character."))
                                }
                            }
                        }
                        _ => Some('\\'),
                    },
                    None => Some('\\'),
                };
                match (s, p) {
                    (Value::Text(s), Value::Text(p)) => {
                        let m = if *case_insensitive {
                            like(&s.to_lowercase(), &p.to_lowercase(), esc)?
                        } else {
                            like(&s, &p, esc)?
                        };
                        Value::Bool(m != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::Regex {
                expr,
                pattern,
                case_insensitive,
                negated,
            } => {
                let (s, p) = (expr.eval(row, env)?, pattern.eval(row, env)?);
                match (s, p) {
                    (Value::Text(s), Value::Text(p)) => {
                        let re = env.ctx.regex(&p, *case_insensitive)?;
                        Value::Bool(re.is_match(&s) != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, env)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row, env)?;
                    if x.is_null() {
                        saw_null = true;
                    } else if compare(&v, &x) == Ordering::Equal {
                        return Ok(Value::Bool(!*negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let op = match operand {
                    Some(o) => Some(o.eval(row, env)?),
                    None => None,
                };
                for (w, then) in whens {
                    let hit = match &op {
                        Some(v) => {
                            let c = w.eval(row, env)?;
                            !v.is_null() && !c.is_null() && compare(v, &c) == Ordering::Equal
                        }
                        None => w.eval(row, env)?.as_bool()? == Some(true),
                    };
                    if hit {
                        return then.eval(row, env);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, env)?,
                    None => Value::Null,
                }
            }
            Expr::Cast { expr, from, to } => {
                let v = expr.eval(row, env)?;
                if matches!(to, DataType::RegClass) && from.is_string() {
                    return crate::pg_catalog::regclass_in(env, &v);
                }
                cast(v, *from, *to, true)?
            }
            Expr::Func { func, args, ty } => crate::functions::call(*func, args, *ty, row, env)?,
            Expr::ArrayCmp {
                expr,
                op,
                array,
                all,
            } => {
                let v = expr.eval(row, env)?;
                let Value::Array(items) = array.eval(row, env)? else {
                    return Ok(Value::Null);
                };
                if v.is_null() {
                    return Ok(if items.is_empty() {
                        Value::Bool(*all)
                    } else {
                        Value::Null
                    });
                }
                let mut saw_null = false;
                for item in &items {
                    if item.is_null() {
                        saw_null = true;
                        continue;
                    }
                    let hit = op.holds(compare(&v, item));
                    if hit != *all {
                        return Ok(Value::Bool(hit));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*all)
                }
            }
            Expr::Subquery {
                id,
                plan,
                kind,
                correlated,
            } => crate::exec::eval_subquery(*id, plan, kind, *correlated, row, env)?,
        })
    }
}

/// Binary arithmetic with PostgreSQL's overflow and division-by-zero errors.
pub fn arith(op: ArithOp, l: Value, r: Value, ty: DataType) -> SqlResult<Value> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let div_zero = || SqlError::new(code::DIVISION_BY_ZERO, "division by zero");
    match ty {
        t if t.is_integer() => {
            let (a, b) = (l.as_i64()?, r.as_i64()?);
            let (min, max, name) = int_range(t);
            let v = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div => {
                    if b == 0 {
                        return Err(div_zero());
                    }
                    a.checked_div(b)
                }
                ArithOp::Mod => {
                    if b == 0 {
                        return Err(div_zero());
                    }
                    Some(a.checked_rem(b).unwrap_or(0))
                }
                ArithOp::Pow => {
                    return arith(
                        op,
                        Value::Float(a as f64),
                        Value::Float(b as f64),
                        DataType::Float8,
                    )
                }
            };
            match v {
                Some(v) if v >= min && v <= max => Ok(Value::Int(v)),
                _ => Err(SqlError::out_of_range(format!("{name} out of range"))),
            }
        }
        DataType::Float4 | DataType::Float8 => {
            let (a, b) = (l.as_f64()?, r.as_f64()?);
            let v = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => {
                    if b == 0.0 {
                        return Err(div_zero());
                    }
                    a / b
                }
                ArithOp::Mod => {
                    if b == 0.0 {
                        return Err(div_zero());
                    }
                    a % b
                }
                ArithOp::Pow => {
                    if a == 0.0 && b < 0.0 {
                        return Err(SqlError::new(
                            "2201F",
                            "zero raised to a negative power is undefined",
                        ));
                    }
                    if a < 0.0 && b.fract() != 0.0 {
                        return Err(SqlError::new(
                            "2201F",
                            "a negative number raised to a non-integer power yields a complex result",
                        ));
                    }
                    a.powf(b)
                }
            };
            let v = if ty == DataType::Float4 {
                v as f32 as f64
            } else {
                v
            };
            if v.is_infinite() && a.is_finite() && b.is_finite() {
                return Err(SqlError::out_of_range("value out of range: overflow"));
            }
            Ok(Value::Float(v))
        }
        DataType::Numeric(_) => {
            let (a, b) = (l.as_decimal()?, r.as_decimal()?);
            let overflow = || SqlError::out_of_range("value overflows numeric format");
            let v = match op {
                ArithOp::Add => a.checked_add(b).ok_or_else(overflow)?,
                ArithOp::Sub => a.checked_sub(b).ok_or_else(overflow)?,
                ArithOp::Mul => {
                    let mut v = a.checked_mul(b).ok_or_else(overflow)?;
                    if v.is_zero() {
                        // A product has the sum of the scales, zero included
                        // (Decimal drops the scale of a zero product).
                        v.rescale((a.scale() + b.scale()).min(28));
                    }
                    v
                }
                ArithOp::Div => {
                    if b.is_zero() {
                        return Err(div_zero());
                    }
                    numeric_div(a, b)?
                }
                ArithOp::Mod => {
                    if b.is_zero() {
                        return Err(div_zero());
                    }
                    a.checked_rem(b).ok_or_else(overflow)?
                }
                ArithOp::Pow => {
                    let f = a.to_f64().unwrap_or(0.0).powf(b.to_f64().unwrap_or(0.0));
                    return cast(
                        Value::Float(f),
                        DataType::Float8,
                        DataType::Numeric(None),
                        false,
                    );
                }
            };
            Ok(Value::Numeric(v))
        }
        other => Err(SqlError::new(
            code::UNDEFINED_FUNCTION,
            format!(
                "operator does not exist: {} {} {}",
                other.sql_name(),
                op.symbol(),
                other.sql_name()
            ),
        )),
    }
}

/// Base-10000 weight of a nonzero decimal, and its leading base-10000 digit.
fn weight_and_first_digit(d: Decimal) -> (i32, u32) {
    let s = d.abs().normalize().to_string();
    let (int_part, frac_part) = s.split_once('.').unwrap_or((&s, ""));
    let int_part = int_part.trim_start_matches('0');
    if !int_part.is_empty() {
        let digits = int_part.len() as i32;
        let weight = (digits - 1).div_euclid(4);
        let lead_len = (digits - weight * 4) as usize;
        (weight, int_part[..lead_len].parse().unwrap_or(0))
    } else {
        let zeros = frac_part.len() - frac_part.trim_start_matches('0').len();
        let weight = -((zeros as i32) / 4) - 1;
        let start = ((-weight - 1) * 4) as usize;
        let group: String = frac_part.chars().skip(start).take(4).collect();
        let group = format!("{group:0<4}");
        (weight, group.parse().unwrap_or(0))
    }
}

/// numeric division with PostgreSQL's result scale (select_div_scale).
pub fn numeric_div(a: Decimal, b: Decimal) -> SqlResult<Decimal> {
    let rscale = if a.is_zero() {
        16u32.max(a.scale()).max(b.scale())
    } else {
        let (w1, f1) = weight_and_first_digit(a);
        let (w2, f2) = weight_and_first_digit(b);
        let mut qweight = w1 - w2;
        if f1 <= f2 {
            qweight -= 1;
        }
        let rscale = 16 - qweight * 4;
        rscale
            .max(a.scale() as i32)
            .max(b.scale() as i32)
            .clamp(0, 1000) as u32
    };
    let q = a
        .checked_div(b)
        .ok_or_else(|| SqlError::out_of_range("value overflows numeric format"))?;
    let mut q = q.round_dp_with_strategy(
        rscale.min(28),
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    if rscale <= 28 {
        q.rescale(rscale);
    }
    Ok(q)
}

/// SQL LIKE with `%`, `_` and an escape character.
pub fn like(s: &str, p: &str, escape: Option<char>) -> SqlResult<bool> {
    let s: Vec<char> = s.chars().collect();
    let mut pat = Vec::new(); // (char, is_literal)
    let mut it = p.chars();
    while let Some(c) = it.next() {
        if Some(c) == escape {
            match it.next() {
                Some(n) => pat.push((n, true)),
                None => {
                    return Err(SqlError::new(
                        code::INVALID_ESCAPE_SEQUENCE,
                        "LIKE pattern must not end with escape character",
                    ))
                }
            }
        } else {
            pat.push((c, false));
        }
    }
    // Iterative matcher with backtracking on the last %.
    let (mut si, mut pi) = (0usize, 0usize);
    let (mut star_p, mut star_s) = (None::<usize>, 0usize);
    while si < s.len() {
        if pi < pat.len() && !pat[pi].1 && pat[pi].0 == '%' {
            star_p = Some(pi);
            star_s = si;
            pi += 1;
        } else if pi < pat.len() && ((!pat[pi].1 && pat[pi].0 == '_') || pat[pi].0 == s[si]) {
            si += 1;
            pi += 1;
        } else if let Some(sp) = star_p {
            pi = sp + 1;
            star_s += 1;
            si = star_s;
        } else {
            return Ok(false);
        }
    }
    while pi < pat.len() && !pat[pi].1 && pat[pi].0 == '%' {
        pi += 1;
    }
    Ok(pi == pat.len())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Const(v) => match v {
                Value::Null => write!(f, "NULL"),
                Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
                v => write!(f, "{}", v.to_pg_text(DataType::Float8).unwrap_or_default()),
            },
            Expr::Column(i) => write!(f, "#{i}"),
            Expr::Outer { depth, index } => write!(f, "outer{depth}#{index}"),
            Expr::Param(i) => write!(f, "${}", i + 1),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Neg(e, _) => write!(f, "-{e}"),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Cmp(o, a, b) => write!(f, "({a} {} {b})", o.symbol()),
            Expr::Arith(o, a, b, _) => write!(f, "({a} {} {b})", o.symbol()),
            Expr::Concat(a, b) => write!(f, "({a} || {b})"),
            Expr::IsNull(e, n) => write!(f, "({e} IS {}NULL)", if *n { "NOT " } else { "" }),
            Expr::IsDistinct(a, b, n) => write!(
                f,
                "({a} IS {}DISTINCT FROM {b})",
                if *n { "NOT " } else { "" }
            ),
            Expr::IsBool(e, v, n) => write!(
                f,
                "({e} IS {}{})",
                if *n { "NOT " } else { "" },
                if *v { "TRUE" } else { "FALSE" }
            ),
            Expr::Like {
                expr,
                pattern,
                case_insensitive,
                negated,
                ..
            } => write!(
                f,
                "({expr} {}{} {pattern})",
                if *negated { "NOT " } else { "" },
                if *case_insensitive { "ILIKE" } else { "LIKE" }
            ),
            Expr::Regex {
                expr,
                pattern,
                case_insensitive,
                negated,
            } => write!(
                f,
                "({expr} {}~{} {pattern})",
                if *negated { "!" } else { "" },
                if *case_insensitive { "*" } else { "" }
            ),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, "))")
            }
            Expr::Case { .. } => write!(f, "CASE ... END"),
            Expr::ArrayCmp {
                expr,
                op,
                array,
                all,
            } => write!(
                f,
                "({expr} {} {}({array}))",
                op.symbol(),
                if *all { "ALL" } else { "ANY" }
            ),
            Expr::Cast { expr, to, .. } => write!(f, "{expr}::{}", to.sql_name()),
            Expr::Func { func, args, .. } => {
                write!(f, "{}(", func.name())?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, ")")
            }
            Expr::Subquery { id, kind, .. } => match kind {
                SubqueryKind::Scalar => write!(f, "(subquery {id})"),
                SubqueryKind::Exists => write!(f, "EXISTS(subquery {id})"),
                SubqueryKind::Array => write!(f, "ARRAY(subquery {id})"),
                SubqueryKind::Any(e, o) => write!(f, "({e} {} ANY(subquery {id}))", o.symbol()),
                SubqueryKind::All(e, o) => write!(f, "({e} {} ALL(subquery {id}))", o.symbol()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", Some('\\')).unwrap());
        assert!(like("hello", "h_llo", Some('\\')).unwrap());
        assert!(!like("hello", "h_lo", Some('\\')).unwrap());
        assert!(like("50%", "50\\%", Some('\\')).unwrap());
        assert!(like("", "%", Some('\\')).unwrap());
        assert!(like("abcabc", "%abc", Some('\\')).unwrap());
    }

    #[test]
    fn numeric_division_scale_matches_postgres() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            numeric_div(d("1"), d("3")).unwrap().to_string(),
            "0.33333333333333333333"
        );
        assert_eq!(
            numeric_div(d("10"), d("3")).unwrap().to_string(),
            "3.3333333333333333"
        );
        assert_eq!(
            numeric_div(d("3"), d("2")).unwrap().to_string(),
            "1.5000000000000000"
        );
        assert_eq!(
            numeric_div(d("100000"), d("3")).unwrap().to_string(),
            "33333.333333333333"
        );
        assert_eq!(
            numeric_div(d("1"), d("1")).unwrap().to_string(),
            "1.00000000000000000000"
        );
    }
}
