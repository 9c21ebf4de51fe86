//! psql's meta-commands (`\dt`, `\d table`, `\di`, `\l`) run catalog queries;
//! each one must succeed and describe the table correctly.

use std::sync::Arc;

use tessera_sql::kv::MemoryKv;
use tessera_sql::{QueryResult, Session, SqlEngine};

fn rows(s: &mut Session, sql: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for stmt in s.parse(sql).unwrap_or_else(|e| panic!("{e}\n{sql}")) {
        match s
            .execute(&stmt, &[])
            .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        {
            QueryResult::Rows { columns, rows, .. } => {
                out = rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .zip(&columns)
                            .map(|(v, c)| v.to_pg_text(c.ty).unwrap_or_else(|| "NULL".into()))
                            .collect()
                    })
                    .collect()
            }
            _ => out.clear(),
        }
    }
    out
}

#[test]
fn psql_describe_queries_succeed() {
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    let mut s = Session::new(engine, "tessera", "tester", &[]).unwrap();
    rows(
        &mut s,
        "CREATE TABLE dt (id int PRIMARY KEY, name text NOT NULL DEFAULT 'x', v numeric(5,2) UNIQUE, CHECK (id > 0));
         CREATE INDEX dt_name ON dt (name)",
    );
    let oid = rows(&mut s, "SELECT 'dt'::regclass::oid")[0][0].clone();
    let script = include_str!("psql_describe.sql").replace("OID_OF_DT", &oid);
    let queries: Vec<&str> = script
        .split(";\n")
        .map(str::trim)
        .filter(|q| q.contains("SELECT"))
        .collect();
    assert_eq!(queries.len(), 13);
    let results: Vec<Vec<Vec<String>>> = queries.iter().map(|q| rows(&mut s, q)).collect();
    // \dt
    assert_eq!(results[0], vec![vec!["public", "dt", "table", "tester"]]);
    // \d dt: the table, its columns, indexes and check constraint.
    assert_eq!(results[1], vec![vec![oid.as_str(), "public", "dt"]]);
    let cols: Vec<(String, String, String, String)> = results[3]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("id".into(), "integer".into(), "NULL".into(), "t".into()),
            ("name".into(), "text".into(), "'x'".into(), "t".into()),
            ("v".into(), "numeric(5,2)".into(), "NULL".into(), "f".into()),
        ]
    );
    let indexes: Vec<&str> = results[4].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(indexes, vec!["dt_pkey", "dt_name", "dt_v_key"]);
    assert_eq!(results[5], vec![vec!["dt_check", "CHECK ((id > 0))"]]);
    // \l lists the databases.
    let dbs: Vec<&str> = results[12].iter().map(|r| r[0].as_str()).collect();
    assert!(dbs.contains(&"tessera"), "{dbs:?}");
}
