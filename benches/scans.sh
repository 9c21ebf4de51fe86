#!/usr/bin/env bash
# Scans and aggregates over a table in ten ranges, with the work done at the
# ranges' leaders (distsql = on, the default: filters, projections and
# partial aggregates run where the data is, all ranges in parallel) and with
# every row read through the gateway (distsql = off), against a 3-node
# cluster (`tessera demo`). One pgbench connection runs each query again and
# again; prints queries per second and the p50/p99 latency (from pgbench's
# per-transaction log). With PostgreSQL 15 running locally (TESSERA_PG,
# default "host=/var/run/postgresql dbname=postgres"), the same queries run
# against it as the baseline.
#
#   bash benches/scans.sh [seconds per run, default 10] [rows, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
ROWS="${2:-100000}"
command -v pgbench >/dev/null || { echo "pgbench not found (apt install postgresql-client)" >&2; exit 1; }
source benches/demo-cluster.sh

query() { # name, SQL
    echo "$2" >"$DATA/$1.sql"
}
query count "SELECT count(*), sum(x) FROM scan_t;"
query group "SELECT g, count(*), sum(x), min(x), max(x), avg(x) FROM scan_t WHERE x > 100 GROUP BY g;"
query filter "SELECT id, x FROM scan_t WHERE x = 4242;"

setup() { # conninfo, split
    psql "$1" -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS scan_t;
CREATE TABLE scan_t (id int PRIMARY KEY, g int NOT NULL, x int, pad text);
INSERT INTO scan_t SELECT i, i % 10, (i * 7919) % 10007, repeat('x', 40) FROM generate_series(1, $ROWS) AS i;
SQL
    if [ "$2" = split ]; then
        local at="" i
        for i in $(seq 1 9); do at="$at${at:+, }($((ROWS * i / 10)))"; done
        psql "$1" -q -v ON_ERROR_STOP=1 -c "ALTER TABLE scan_t SPLIT AT VALUES $at" >/dev/null
        echo "scan_t: $(psql "$1" -qAtc "SELECT count(*) FROM scan_t") rows in $(psql "$1" -qAt -c "SHOW RANGES FROM TABLE scan_t" | wc -l) ranges"
    fi
}

run() { # label, conninfo, query name, PGOPTIONS
    local out logs="$DATA/logs-$1-$3"
    mkdir -p "$logs"
    out="$(cd "$logs" && PGOPTIONS="$4" pgbench -n -c 1 -T "$SECONDS_PER_RUN" -l -f "$DATA/$3.sql" "$2" 2>&1)" ||
        { echo "$out" >&2; return 1; }
    printf '%-22s %-7s %8s q/s  p50 %8s ms  p99 %8s ms\n' "$1" "$3" \
        "$(echo "$out" | awk '/^tps/ {printf "%.1f", $3; exit}')" \
        "$(percentile 50 "$logs"/pgbench_log.*)" "$(percentile 99 "$logs"/pgbench_log.*)"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); ${SECONDS_PER_RUN}s per run, $ROWS rows"
TESSERA="postgresql://root@127.0.0.1:$SQL_PORT/tessera"
setup "$TESSERA" split
for q in count group filter; do
    run "tessera distsql=on" "$TESSERA" "$q" "-c distsql=on"
    run "tessera distsql=off" "$TESSERA" "$q" "-c distsql=off"
done

PG="${TESSERA_PG:-host=/var/run/postgresql dbname=postgres}"
if psql "$PG" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    setup "$PG" no
    for q in count group filter; do
        run "postgres" "$PG" "$q" ""
    done
    psql "$PG" -qc 'DROP TABLE scan_t'
else
    echo "postgres: skipped, no server at \"$PG\""
fi
