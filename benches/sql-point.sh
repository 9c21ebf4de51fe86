#!/usr/bin/env bash
# Primary-key point selects and single-row inserts per second over the
# PostgreSQL wire protocol, with 8 connections (pgbench, prepared statements),
# against a 3-node cluster (three nodes in one `tessera demo` process on
# 127.0.0.1, RocksDB with fsync). With PostgreSQL 15 running locally
# (TESSERA_PG, default "host=/var/run/postgresql dbname=postgres": the
# local socket as the current OS user, which needs a PostgreSQL role of that
# name), the same load runs against it as the baseline.
#
#   bash benches/sql-point.sh [seconds per run, default 15] [rows, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-15}"
ROWS="${2:-10000}"
CLIENTS=8
command -v pgbench >/dev/null || { echo "pgbench not found (apt install postgresql-client)" >&2; exit 1; }
source benches/demo-cluster.sh

cat >"$DATA/select.sql" <<SQL
\set k random(1, $ROWS)
SELECT v FROM bench_kv WHERE k = :k;
SQL
cat >"$DATA/insert.sql" <<'SQL'
INSERT INTO bench_ins (v) VALUES ('0123456789012345678901234567890123456789');
SQL

setup() {
    psql "$1" -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS bench_kv;
DROP TABLE IF EXISTS bench_ins;
CREATE TABLE bench_kv (k int PRIMARY KEY, v text);
INSERT INTO bench_kv SELECT g, 'value-' || g FROM generate_series(1, $ROWS) AS g;
CREATE TABLE bench_ins (v text);
SQL
}

run() { # name conninfo script
    local out
    out="$(pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -f "$3" "$2" 2>&1)" || { echo "$out" >&2; return 1; }
    printf '%-10s %-14s %10s tps  %8s ms avg latency\n' "$1" "$(basename "$3" .sql)" \
        "$(echo "$out" | awk '/^tps/ {print $3; exit}')" \
        "$(echo "$out" | awk '/latency average/ {print $4; exit}')"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); $CLIENTS connections, ${SECONDS_PER_RUN}s per run"
TESSERA="postgresql://root@127.0.0.1:$SQL_PORT/tessera"
setup "$TESSERA"
run tessera "$TESSERA" "$DATA/select.sql"
run tessera "$TESSERA" "$DATA/insert.sql"

PG="${TESSERA_PG:-host=/var/run/postgresql dbname=postgres}"
if psql "$PG" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    setup "$PG"
    run postgres "$PG" "$DATA/select.sql"
    run postgres "$PG" "$DATA/insert.sql"
    psql "$PG" -qc 'DROP TABLE bench_kv; DROP TABLE bench_ins'
else
    echo "postgres: skipped, no server at \"$PG\""
fi
