//! The SQL engine over the in-memory store, statement by statement.

use std::sync::Arc;

use tessera_sql::kv::MemoryKv;
use tessera_sql::{QueryResult, Session, SqlEngine};

fn session() -> Session {
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    Session::new(engine, "tessera", "tester", &[]).unwrap()
}

/// Runs `sql` and renders the last result as text lines.
fn run(s: &mut Session, sql: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for stmt in s.parse(sql).map_err(|e| e.code.to_string())? {
        out.clear();
        match s
            .execute(&stmt, &[])
            .map_err(|e| format!("{} {}", e.code, e.message))?
        {
            QueryResult::Rows { columns, rows, .. } => {
                for r in rows {
                    let cells: Vec<String> = r
                        .iter()
                        .zip(&columns)
                        .map(|(v, c)| v.to_pg_text(c.ty).unwrap_or_else(|| "NULL".into()))
                        .collect();
                    out.push(cells.join("|"));
                }
            }
            QueryResult::Command { tag } => out.push(tag),
            other => out.push(format!("{other:?}")),
        }
    }
    Ok(out)
}

#[test]
fn create_insert_select() {
    let mut s = session();
    run(
        &mut s,
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT NOT NULL, score NUMERIC(5,2))",
    )
    .unwrap();
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', 10)"
        )
        .unwrap(),
        vec!["INSERT 0 3"]
    );
    assert_eq!(
        run(&mut s, "SELECT id, name, score FROM t ORDER BY id DESC").unwrap(),
        vec!["3|c|10.00", "2|b|NULL", "1|a|1.50"]
    );
    assert_eq!(
        run(&mut s, "SELECT count(*), sum(id), avg(id) FROM t").unwrap(),
        vec!["3|6|2.0000000000000000"]
    );
    assert_eq!(
        run(&mut s, "SELECT name FROM t WHERE id = 2").unwrap(),
        vec!["b"]
    );
    assert!(run(&mut s, "INSERT INTO t VALUES (1, 'dup', 0)")
        .unwrap_err()
        .starts_with("23505"));
    assert!(run(&mut s, "INSERT INTO t VALUES (9, NULL, 0)")
        .unwrap_err()
        .starts_with("23502"));
    assert!(run(&mut s, "SELECT 1/0").unwrap_err().starts_with("22012"));
    assert!(run(&mut s, "SELECT 2147483647 + 1")
        .unwrap_err()
        .starts_with("22003"));
    assert!(run(&mut s, "SELECT 'abc'::int")
        .unwrap_err()
        .starts_with("22P02"));
    assert!(run(&mut s, "SELECT nope FROM t")
        .unwrap_err()
        .starts_with("42703"));
    assert!(run(&mut s, "SELECT * FROM nope")
        .unwrap_err()
        .starts_with("42P01"));
    assert!(run(&mut s, "SELEC 1").unwrap_err().starts_with("42601"));
}

#[test]
fn joins_groups_subqueries() {
    let mut s = session();
    run(
        &mut s,
        "CREATE TABLE a (id INT PRIMARY KEY, g TEXT); CREATE TABLE b (id INT PRIMARY KEY, a_id INT, v INT);
         INSERT INTO a VALUES (1,'x'),(2,'y'),(3,'x');
         INSERT INTO b VALUES (10,1,5),(11,1,7),(12,2,1),(13,9,4)",
    )
    .unwrap();
    assert_eq!(
        run(
            &mut s,
            "SELECT a.g, sum(b.v) FROM a JOIN b ON b.a_id = a.id GROUP BY a.g ORDER BY 1"
        )
        .unwrap(),
        vec!["x|12", "y|1"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT a.id, b.id FROM a LEFT JOIN b ON b.a_id = a.id ORDER BY 1, 2"
        )
        .unwrap(),
        vec!["1|10", "1|11", "2|12", "3|NULL"]
    );
    assert_eq!(
        run(&mut s, "SELECT a.id, b.id FROM a FULL JOIN b ON b.a_id = a.id WHERE a.id IS NULL OR b.id IS NULL ORDER BY 1, 2").unwrap(),
        vec!["3|NULL", "NULL|13"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.a_id = a.id) ORDER BY id"
        )
        .unwrap(),
        vec!["1", "2"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM a WHERE id NOT IN (SELECT a_id FROM b) ORDER BY id"
        )
        .unwrap(),
        vec!["3"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT g, count(*) FROM a GROUP BY g HAVING count(*) > 1"
        )
        .unwrap(),
        vec!["x|2"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT (SELECT max(v) FROM b WHERE b.a_id = a.id) FROM a ORDER BY id"
        )
        .unwrap(),
        vec!["7", "1", "NULL"]
    );
    assert_eq!(
        run(
            &mut s,
            "SELECT id FROM a UNION SELECT a_id FROM b ORDER BY 1"
        )
        .unwrap(),
        vec!["1", "2", "3", "9"]
    );
    assert_eq!(
        run(
            &mut s,
            "WITH c AS (SELECT g, count(*) AS n FROM a GROUP BY g) SELECT n FROM c ORDER BY n"
        )
        .unwrap(),
        vec!["1", "2"]
    );
    assert!(run(&mut s, "SELECT g, id FROM a GROUP BY g")
        .unwrap_err()
        .starts_with("42803"));
    assert_eq!(
        run(
            &mut s,
            "SELECT count(*) FROM generate_series(1, 10) AS s(x) WHERE x % 2 = 0"
        )
        .unwrap(),
        vec!["5"]
    );
}

#[test]
fn dml_and_indexes() {
    let mut s = session();
    run(
        &mut s,
        "CREATE TABLE kv (k SERIAL PRIMARY KEY, v TEXT UNIQUE, n INT DEFAULT 7 CHECK (n > 0))",
    )
    .unwrap();
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO kv (v) VALUES ('a'), ('b') RETURNING k, n"
        )
        .unwrap(),
        vec!["1|7", "2|7"]
    );
    assert!(run(&mut s, "INSERT INTO kv (v) VALUES ('a')")
        .unwrap_err()
        .starts_with("23505"));
    assert!(run(&mut s, "INSERT INTO kv (v, n) VALUES ('z', 0)")
        .unwrap_err()
        .starts_with("23514"));
    assert_eq!(
        run(
            &mut s,
            "INSERT INTO kv (v) VALUES ('a') ON CONFLICT DO NOTHING"
        )
        .unwrap(),
        vec!["INSERT 0 0"]
    );
    assert_eq!(
        run(&mut s, "INSERT INTO kv (k, v) VALUES (1, 'q') ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING v").unwrap(),
        vec!["q"]
    );
    run(&mut s, "CREATE INDEX kv_n ON kv (n)").unwrap();
    assert_eq!(
        run(&mut s, "UPDATE kv SET n = n + 1 WHERE v = 'b' RETURNING n").unwrap(),
        vec!["8"]
    );
    assert_eq!(
        run(&mut s, "SELECT v FROM kv WHERE n = 8").unwrap(),
        vec!["b"]
    );
    assert_eq!(
        run(&mut s, "DELETE FROM kv WHERE k = 1").unwrap(),
        vec!["DELETE 1"]
    );
    assert_eq!(
        run(&mut s, "SELECT v FROM kv WHERE n = 7").unwrap(),
        Vec::<String>::new()
    );
    let plan = run(&mut s, "EXPLAIN SELECT * FROM kv WHERE k = 2")
        .unwrap()
        .join("\n");
    assert!(plan.contains("Point Get"), "{plan}");
    let plan = run(&mut s, "EXPLAIN SELECT * FROM kv WHERE n = 8")
        .unwrap()
        .join("\n");
    assert!(plan.contains("Index Scan"), "{plan}");
    run(&mut s, "ALTER TABLE kv ADD COLUMN extra INT DEFAULT 5").unwrap();
    assert_eq!(run(&mut s, "SELECT extra FROM kv").unwrap(), vec!["5"]);
    run(&mut s, "BEGIN; INSERT INTO kv (v) VALUES ('t'); ROLLBACK").unwrap();
    assert_eq!(run(&mut s, "SELECT count(*) FROM kv").unwrap(), vec!["1"]);
    run(
        &mut s,
        "CREATE TABLE nopk (a INT); INSERT INTO nopk VALUES (1), (1)",
    )
    .unwrap();
    assert_eq!(run(&mut s, "SELECT * FROM nopk").unwrap(), vec!["1", "1"]);
}

/// Runs `sql` and returns the error's code and detail.
fn run_err(s: &mut Session, sql: &str) -> (String, String) {
    for stmt in s.parse(sql).unwrap() {
        if let Err(e) = s.execute(&stmt, &[]) {
            return (e.code.to_string(), e.detail.unwrap_or_default());
        }
    }
    panic!("{sql} succeeded");
}

#[test]
fn transactions_read_a_snapshot_and_the_second_writer_of_a_row_gets_40001() {
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    let mut a = Session::new(engine.clone(), "tessera", "a", &[]).unwrap();
    let mut b = Session::new(engine, "tessera", "b", &[]).unwrap();
    run(
        &mut a,
        "CREATE TABLE acct (id INT PRIMARY KEY, owner TEXT UNIQUE, bal INT)",
    )
    .unwrap();
    run(
        &mut a,
        "INSERT INTO acct VALUES (1, 'ann', 100), (2, 'bob', 100)",
    )
    .unwrap();

    run(&mut a, "BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(
        run(&mut a, "SELECT bal FROM acct WHERE id = 1").unwrap(),
        vec!["100"]
    );
    // B commits a change; A's snapshot does not see it.
    run(&mut b, "UPDATE acct SET bal = bal + 5 WHERE id = 1").unwrap();
    assert_eq!(
        run(&mut a, "SELECT bal FROM acct WHERE id = 1").unwrap(),
        vec!["100"]
    );
    // A's write to the same row loses at commit, naming the table and key.
    run(&mut a, "UPDATE acct SET bal = bal - 10 WHERE id = 1").unwrap();
    let (code, detail) = run_err(&mut a, "COMMIT");
    assert_eq!(code, "40001");
    assert!(
        detail.starts_with("table \"acct\", key (id)=(1):"),
        "{detail}"
    );
    assert_eq!(
        run(&mut a, "SELECT bal FROM acct WHERE id = 1").unwrap(),
        vec!["105"]
    );

    // Two inserts of one unique value: the second to commit conflicts on the
    // unique index entry instead of both succeeding.
    run(&mut a, "BEGIN").unwrap();
    run(&mut b, "BEGIN").unwrap();
    run(&mut a, "INSERT INTO acct VALUES (3, 'cat', 1)").unwrap();
    run(&mut b, "INSERT INTO acct VALUES (4, 'cat', 1)").unwrap();
    run(&mut a, "COMMIT").unwrap();
    let (code, detail) = run_err(&mut b, "COMMIT");
    assert_eq!(code, "40001");
    assert!(detail.contains("key (owner)=(cat)"), "{detail}");
    assert_eq!(
        run(&mut a, "SELECT id FROM acct WHERE owner = 'cat'").unwrap(),
        vec!["3"]
    );
    // SERIALIZABLE is refused rather than run as snapshot isolation.
    assert_eq!(
        run_err(&mut a, "BEGIN ISOLATION LEVEL SERIALIZABLE").0,
        "0A000"
    );
}
