//! Optimizer rules, applied in order to a bound plan:
//! 1. filter pushdown into table scans (the filter runs as rows stream);
//! 2. key span extraction: equality and range predicates on the primary key
//!    become a point read or a range scan, equality on a secondary index's
//!    columns becomes an index scan.

use crate::catalog::TableDesc;
use crate::expr::{CmpOp, Expr};
use crate::plan::{Plan, ScanSpan};

/// Applies every rule.
pub fn optimize(plan: Plan) -> Plan {
    let plan = map_children(plan, optimize);
    match plan {
        Plan::Filter { input, predicate } => match *input {
            Plan::Scan {
                table,
                span: ScanSpan::Full,
                filter: None,
                cols,
                locking,
            } => {
                let span = extract_span(&table, &predicate);
                Plan::Scan {
                    table,
                    span,
                    filter: Some(predicate),
                    cols,
                    locking,
                }
            }
            other => Plan::Filter {
                input: Box::new(other),
                predicate,
            },
        },
        p => p,
    }
}

fn map_children(plan: Plan, f: fn(Plan) -> Plan) -> Plan {
    let b = |p: Box<Plan>| Box::new(f(*p));
    match plan {
        Plan::Filter { input, predicate } => Plan::Filter {
            input: b(input),
            predicate,
        },
        Plan::Project { input, exprs, cols } => Plan::Project {
            input: b(input),
            exprs,
            cols,
        },
        Plan::Aggregate {
            input,
            groups,
            aggs,
            cols,
        } => Plan::Aggregate {
            input: b(input),
            groups,
            aggs,
            cols,
        },
        Plan::Join {
            left,
            right,
            kind,
            equi,
            on,
            cols,
        } => Plan::Join {
            left: b(left),
            right: b(right),
            kind,
            equi,
            on,
            cols,
        },
        Plan::Sort { input, keys } => Plan::Sort {
            input: b(input),
            keys,
        },
        Plan::Limit {
            input,
            limit,
            offset,
        } => Plan::Limit {
            input: b(input),
            limit,
            offset,
        },
        Plan::Distinct { input } => Plan::Distinct { input: b(input) },
        Plan::SetOp {
            op,
            all,
            left,
            right,
            cols,
        } => Plan::SetOp {
            op,
            all,
            left: b(left),
            right: b(right),
            cols,
        },
        p => p,
    }
}

/// `column op value` terms of a predicate, with the value computable before
/// the scan.
fn key_terms(predicate: &Expr) -> Vec<(usize, CmpOp, Expr)> {
    let mut out = Vec::new();
    for term in predicate.clone().conjuncts() {
        if let Expr::Cmp(op, a, b) = term {
            match (*a, *b) {
                (Expr::Column(i), v) if v.is_key_computable() => out.push((i, op, v)),
                (v, Expr::Column(i)) if v.is_key_computable() => out.push((i, op.flip(), v)),
                _ => {}
            }
        }
    }
    out
}

/// Chooses the narrowest key span the predicate allows.
pub fn extract_span(table: &TableDesc, predicate: &Expr) -> ScanSpan {
    let terms = key_terms(predicate);
    if terms.is_empty() {
        return ScanSpan::Full;
    }
    let eq_for = |col_id: u32| -> Option<Expr> {
        let pos = table.position(col_id)?;
        terms
            .iter()
            .find(|(i, op, _)| *i == pos && *op == CmpOp::Eq)
            .map(|(_, _, v)| v.clone())
    };
    let pk = table.primary();
    let mut eq = Vec::new();
    for (col, _) in &pk.columns {
        match eq_for(*col) {
            Some(v) => eq.push(v),
            None => break,
        }
    }
    if eq.len() == pk.columns.len() {
        return ScanSpan::Point(eq);
    }
    // A range on the next primary key column (ascending only).
    let next = pk
        .columns
        .get(eq.len())
        .filter(|(_, desc)| !desc)
        .and_then(|(id, _)| table.position(*id));
    let (mut lower, mut upper) = (None, None);
    if let Some(pos) = next {
        for (i, op, v) in &terms {
            if *i != pos {
                continue;
            }
            match op {
                CmpOp::Gt => lower = Some((v.clone(), false)),
                CmpOp::GtEq => lower = Some((v.clone(), true)),
                CmpOp::Lt => upper = Some((v.clone(), false)),
                CmpOp::LtEq => upper = Some((v.clone(), true)),
                _ => {}
            }
        }
    }
    if !eq.is_empty() || lower.is_some() || upper.is_some() {
        return ScanSpan::Range { eq, lower, upper };
    }
    // The secondary index with the longest equality prefix.
    let mut best: Option<(usize, Vec<Expr>)> = None;
    for (k, ix) in table.indexes.iter().enumerate().skip(1) {
        let mut eqs = Vec::new();
        for (col, _) in &ix.columns {
            match eq_for(*col) {
                Some(v) => eqs.push(v),
                None => break,
            }
        }
        if !eqs.is_empty() && best.as_ref().is_none_or(|(_, b)| eqs.len() > b.len()) {
            best = Some((k, eqs));
        }
    }
    match best {
        Some((index, eq)) => ScanSpan::Index { index, eq },
        None => ScanSpan::Full,
    }
}
