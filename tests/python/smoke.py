"""psycopg smoke test, run by tests/drivers.rs: python3 smoke.py DSN.

Connects, creates a table, inserts with parameters, selects with a
parameter, and checks that a duplicate key fails with SQLSTATE 23505 while
the connection stays usable. Uses psycopg 3 when installed, else psycopg2.
Exits non-zero with a message on the first failed check.
"""

import datetime
import decimal
import sys

try:
    import psycopg

    DRIVER = "psycopg " + psycopg.__version__

    def connect(dsn):
        return psycopg.connect(dsn)

    def sqlstate(err):
        return err.sqlstate

    UniqueViolation = psycopg.errors.UniqueViolation
    DatabaseError = psycopg.DatabaseError
except ImportError:
    import psycopg2
    import psycopg2.errors

    DRIVER = "psycopg2 " + psycopg2.__version__

    def connect(dsn):
        return psycopg2.connect(dsn)

    def sqlstate(err):
        return err.pgcode

    UniqueViolation = psycopg2.errors.UniqueViolation
    DatabaseError = psycopg2.DatabaseError


def check(what, got, want):
    if got != want:
        sys.exit(f"{DRIVER}: {what}: got {got!r}, want {want!r}")


def main():
    dsn = sys.argv[1]
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE py_smoke (id INT PRIMARY KEY, name TEXT, score FLOAT8, "
        "price NUMERIC, born DATE, active BOOL)"
    )
    conn.commit()

    rows = [
        (1, "ada", 9.5, decimal.Decimal("10.25"), datetime.date(1815, 12, 10), True),
        (2, "grace", 8.25, decimal.Decimal("0.10"), datetime.date(1906, 12, 9), False),
        (3, "o'brien", None, None, None, None),
    ]
    cur.executemany(
        "INSERT INTO py_smoke (id, name, score, price, born, active) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        rows,
    )
    conn.commit()

    cur.execute(
        "SELECT id, name, score, price, born, active FROM py_smoke WHERE id = %s",
        (2,),
    )
    check("select by id", cur.fetchall(), [rows[1]])
    cur.execute("SELECT name FROM py_smoke WHERE name = %s", ("o'brien",))
    check("select by quoted text", cur.fetchall(), [("o'brien",)])
    cur.execute("SELECT id FROM py_smoke WHERE score IS NULL")
    check("select NULL", cur.fetchall(), [(3,)])
    cur.execute("SELECT count(*) FROM py_smoke")
    check("count", cur.fetchone(), (3,))
    conn.commit()

    try:
        cur.execute(
            "INSERT INTO py_smoke (id, name) VALUES (%s, %s)", (1, "duplicate")
        )
        sys.exit(f"{DRIVER}: duplicate key was accepted")
    except UniqueViolation as err:
        check("duplicate key SQLSTATE", sqlstate(err), "23505")
    except DatabaseError as err:
        sys.exit(f"{DRIVER}: duplicate key: wrong error {sqlstate(err)}: {err}")
    conn.rollback()

    cur.execute("SELECT name FROM py_smoke WHERE id = %s", (1,))
    check("usable after the error", cur.fetchall(), [("ada",)])
    conn.commit()
    conn.close()
    print(f"{DRIVER}: ok")


if __name__ == "__main__":
    main()
