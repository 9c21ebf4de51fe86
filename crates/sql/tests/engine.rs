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

/// Runs `sql` and returns the error's code and detail (of parsing or of
/// the first statement that fails).
fn run_err(s: &mut Session, sql: &str) -> (String, String) {
    let statements = match s.parse(sql) {
        Ok(statements) => statements,
        Err(e) => return (e.code.to_string(), e.detail.unwrap_or_default()),
    };
    for stmt in statements {
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
    // A's write to the same row fails as it locks the row, naming the
    // table and key, as PostgreSQL's REPEATABLE READ does.
    let (code, detail) = run_err(&mut a, "UPDATE acct SET bal = bal - 10 WHERE id = 1");
    assert_eq!(code, "40001");
    assert!(
        detail.starts_with("table \"acct\", key (id)=(1):"),
        "{detail}"
    );
    assert_eq!(run_err(&mut a, "SELECT 1").0, "25P02");
    run(&mut a, "ROLLBACK").unwrap();
    assert_eq!(
        run(&mut a, "SELECT bal FROM acct WHERE id = 1").unwrap(),
        vec!["105"]
    );

    // Two inserts of one unique value under READ COMMITTED: the second
    // waits for the first's lock, then sees its row: a unique violation,
    // not two rows.
    run(&mut a, "BEGIN").unwrap();
    run(&mut b, "BEGIN").unwrap();
    run(&mut a, "INSERT INTO acct VALUES (3, 'cat', 1)").unwrap();
    let waiter = std::thread::spawn(move || {
        let err = run(&mut b, "INSERT INTO acct VALUES (4, 'cat', 1)").unwrap_err();
        run(&mut b, "ROLLBACK").unwrap();
        err
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    run(&mut a, "COMMIT").unwrap();
    let err = waiter.join().unwrap();
    assert!(err.starts_with("23505"), "{err}");
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

fn engine_with(sql: &str) -> Arc<SqlEngine> {
    let engine = SqlEngine::new(Arc::new(MemoryKv::new()));
    let mut s = Session::new(engine.clone(), "tessera", "setup", &[]).unwrap();
    run(&mut s, sql).unwrap();
    engine
}

#[test]
fn read_committed_increments_neither_fail_nor_get_lost() {
    let engine = engine_with(
        "CREATE TABLE counter (id INT PRIMARY KEY, v INT); INSERT INTO counter VALUES (1, 0)",
    );
    // Half the clients in single statements, half in explicit blocks.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut s = Session::new(engine, "tessera", "c", &[]).unwrap();
                for _ in 0..50 {
                    let sql = if i % 2 == 0 {
                        "UPDATE counter SET v = v + 1 WHERE id = 1"
                    } else {
                        "BEGIN; UPDATE counter SET v = v + 1 WHERE id = 1; COMMIT"
                    };
                    run(&mut s, sql).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut s = Session::new(engine, "tessera", "check", &[]).unwrap();
    assert_eq!(run(&mut s, "SELECT v FROM counter").unwrap(), vec!["400"]);
}

#[test]
fn read_committed_statements_see_what_committed_before_them() {
    let engine =
        engine_with("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)");
    let mut a = Session::new(engine.clone(), "tessera", "a", &[]).unwrap();
    let mut b = Session::new(engine, "tessera", "b", &[]).unwrap();
    run(&mut a, "BEGIN").unwrap();
    assert_eq!(run(&mut a, "SELECT v FROM t").unwrap(), vec!["1"]);
    run(&mut b, "UPDATE t SET v = 2").unwrap();
    assert_eq!(run(&mut a, "SELECT v FROM t").unwrap(), vec!["2"]);
    run(&mut a, "COMMIT").unwrap();
    run(&mut a, "BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(run(&mut a, "SELECT v FROM t").unwrap(), vec!["2"]);
    run(&mut b, "UPDATE t SET v = 3").unwrap();
    assert_eq!(run(&mut a, "SELECT v FROM t").unwrap(), vec!["2"]);
    run(&mut a, "COMMIT").unwrap();
}

#[test]
fn savepoints_undo_part_of_a_block() {
    let mut s = session();
    run(&mut s, "CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    run(&mut s, "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a").unwrap();
    run(
        &mut s,
        "INSERT INTO t VALUES (2); SAVEPOINT b; INSERT INTO t VALUES (3)",
    )
    .unwrap();
    // An error inside: the block fails until ROLLBACK TO.
    assert_eq!(run_err(&mut s, "INSERT INTO t VALUES (1)").0, "23505");
    assert_eq!(run_err(&mut s, "SELECT 1").0, "25P02");
    assert_eq!(run_err(&mut s, "RELEASE SAVEPOINT b").0, "25P02");
    assert_eq!(
        run(&mut s, "ROLLBACK TO SAVEPOINT b").unwrap(),
        vec!["ROLLBACK"]
    );
    assert_eq!(
        run(&mut s, "SELECT id FROM t ORDER BY id").unwrap(),
        vec!["1", "2"]
    );
    run(&mut s, "INSERT INTO t VALUES (4); ROLLBACK TO a").unwrap();
    assert_eq!(run(&mut s, "SELECT id FROM t").unwrap(), vec!["1"]);
    // The savepoint survives ROLLBACK TO; RELEASE forgets it.
    run(&mut s, "INSERT INTO t VALUES (5); RELEASE a").unwrap();
    assert_eq!(run_err(&mut s, "ROLLBACK TO a").0, "3B001");
    run(&mut s, "ROLLBACK").unwrap();
    run(
        &mut s,
        "BEGIN; INSERT INTO t VALUES (6); SAVEPOINT x; INSERT INTO t VALUES (7); RELEASE x; COMMIT",
    )
    .unwrap();
    assert_eq!(
        run(&mut s, "SELECT id FROM t ORDER BY id").unwrap(),
        vec!["6", "7"]
    );
    assert_eq!(run_err(&mut s, "SAVEPOINT y").0, "25P01");
    assert_eq!(run_err(&mut s, "BEGIN; ROLLBACK TO nope").0, "3B001");
    run(&mut s, "ROLLBACK").unwrap();
}

#[test]
fn select_for_update_locks_rows_until_the_end() {
    let engine = engine_with(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 10), (2, 20)",
    );
    let mut a = Session::new(engine.clone(), "tessera", "a", &[]).unwrap();
    let mut b = Session::new(engine, "tessera", "b", &[]).unwrap();
    run(&mut a, "BEGIN").unwrap();
    assert_eq!(
        run(&mut a, "SELECT v FROM t WHERE id = 1 FOR UPDATE").unwrap(),
        vec!["10"]
    );
    // NOWAIT fails at once; the other row is free.
    run(&mut b, "BEGIN").unwrap();
    assert_eq!(
        run_err(&mut b, "SELECT v FROM t WHERE id = 1 FOR UPDATE NOWAIT").0,
        "55P03"
    );
    run(&mut b, "ROLLBACK").unwrap();
    run(&mut b, "UPDATE t SET v = 21 WHERE id = 2").unwrap();
    // A writer of the locked row waits for A, then applies its change to
    // A's committed value.
    let writer = std::thread::spawn(move || {
        run(&mut b, "UPDATE t SET v = v + 1 WHERE id = 1").unwrap();
        b
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    run(&mut a, "UPDATE t SET v = 100 WHERE id = 1; COMMIT").unwrap();
    let mut b = writer.join().unwrap();
    assert_eq!(
        run(&mut b, "SELECT v FROM t ORDER BY id").unwrap(),
        vec!["101", "21"]
    );
    assert_eq!(
        run_err(&mut b, "SELECT count(*) FROM t FOR UPDATE").0,
        "0A000"
    );
}

#[test]
fn a_deadlock_aborts_one_transaction_and_the_other_goes_on() {
    let engine = engine_with(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 0), (2, 0)",
    );
    let mut a = Session::new(engine.clone(), "tessera", "a", &[]).unwrap();
    let mut b = Session::new(engine.clone(), "tessera", "b", &[]).unwrap();
    run(&mut a, "BEGIN; UPDATE t SET v = 1 WHERE id = 1").unwrap();
    run(&mut b, "BEGIN; UPDATE t SET v = 2 WHERE id = 2").unwrap();
    let first = std::thread::spawn(move || {
        let r = run(&mut a, "UPDATE t SET v = 1 WHERE id = 2");
        (a, r)
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    // B closes the cycle and is the victim; its locks go with it.
    let (code, detail) = run_err(&mut b, "UPDATE t SET v = 2 WHERE id = 1");
    assert_eq!(code, "40P01");
    assert!(detail.contains("table \"t\", key (id)=(1)"), "{detail}");
    let (mut a, r) = first.join().unwrap();
    r.unwrap();
    run(&mut a, "COMMIT").unwrap();
    run(&mut b, "ROLLBACK").unwrap();
    assert_eq!(
        run(&mut a, "SELECT v FROM t ORDER BY id").unwrap(),
        vec!["1", "1"]
    );
}

#[test]
fn transaction_control_outside_a_block_warns_as_postgresql_does() {
    let mut s = session();
    assert_eq!(run(&mut s, "COMMIT").unwrap(), vec!["COMMIT"]);
    let notices = s.take_notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].code, "25P01");
    assert_eq!(notices[0].message, "there is no transaction in progress");
    run(&mut s, "ROLLBACK").unwrap();
    assert_eq!(s.take_notices()[0].code, "25P01");
    run(&mut s, "BEGIN; BEGIN").unwrap();
    assert_eq!(s.take_notices()[0].code, "25001");
    run(&mut s, "COMMIT").unwrap();
    assert!(s.take_notices().is_empty());
    // An unknown isolation level is a syntax error, as in PostgreSQL.
    assert_eq!(
        run_err(&mut s, "BEGIN ISOLATION LEVEL SOMETIMES").0,
        "42601"
    );
}

/// A prepared query keeps its plan between runs, and binds it again when the
/// schema changes under it, or its parameters' types do.
#[test]
fn a_prepared_query_binds_again_after_a_schema_change() {
    use tessera_sql::Value;
    let mut s = session();
    run(
        &mut s,
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'old')",
    )
    .unwrap();
    let stmt = s.parse("SELECT v FROM t WHERE id = $1").unwrap().remove(0);
    let text_of = |s: &mut Session, stmt: &tessera_sql::Statement, params: &[Value]| match s
        .execute(stmt, params)
        .unwrap()
    {
        QueryResult::Rows { rows, columns, .. } => rows
            .iter()
            .map(|r| {
                r[0].to_pg_text(columns[0].ty)
                    .unwrap_or_else(|| "NULL".into())
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    let text = |s: &mut Session, params: &[Value]| -> Vec<String> { text_of(s, &stmt, params) };
    assert_eq!(text(&mut s, &[Value::Int(1)]), vec!["old"]);
    assert_eq!(text(&mut s, &[Value::Int(1)]), vec!["old"]);
    // The same name, another table: the kept plan names the old one.
    run(
        &mut s,
        "DROP TABLE t; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 7)",
    )
    .unwrap();
    assert_eq!(text(&mut s, &[Value::Int(1)]), vec!["7"]);
    // A parameter of another type binds anew too: as a statement parsed
    // afresh does.
    let fresh = s.parse("SELECT v FROM t WHERE id = $1").unwrap().remove(0);
    for params in [[Value::Float(1.0)], [Value::Int(1)], [Value::Null]] {
        assert_eq!(text(&mut s, &params), text_of(&mut s, &fresh, &params));
    }
    run(&mut s, "DROP TABLE t").unwrap();
    let err = s.execute(&stmt, &[Value::Int(1)]).unwrap_err();
    assert_eq!(err.code, "42P01");
}
