#!/usr/bin/env bash
# Single-range versus cross-range transactions over the PostgreSQL wire
# protocol: 8 pgbench connections (prepared statements) each run
#   BEGIN; UPDATE acct ... WHERE id = :a; UPDATE acct ... WHERE id = :b; END;
# with both accounts in one range (a one-phase commit) or in two ranges (a
# two-phase commit), against a 3-node cluster (`tessera demo`, RocksDB with
# fsync). The table is split in two with ALTER TABLE ... SPLIT AT. Prints
# tps and the p50/p99 latency of whole transactions (from pgbench's
# per-transaction log). With PostgreSQL 15 running locally (TESSERA_PG,
# default "host=/var/run/postgresql dbname=postgres"), the same scripts run
# against it as the baseline (one server: no ranges).
#
#   bash benches/txn-ranges.sh [seconds per run, default 15] [accounts, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-15}"
ACCOUNTS="${2:-10000}"
HALF=$((ACCOUNTS / 2))
CLIENTS=8
command -v pgbench >/dev/null || { echo "pgbench not found (apt install postgresql-client)" >&2; exit 1; }
source benches/demo-cluster.sh

transfer_script "$DATA/single-range.sql" "1, $HALF" "1, $HALF"
transfer_script "$DATA/cross-range.sql" "1, $HALF" "$((HALF + 1)), $ACCOUNTS"

setup() { # conninfo, split
    psql "$1" -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS acct;
CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
INSERT INTO acct SELECT g, 1000000 FROM generate_series(1, $ACCOUNTS) AS g;
SQL
    if [ "$2" = split ]; then
        psql "$1" -q -v ON_ERROR_STOP=1 -c "ALTER TABLE acct SPLIT AT VALUES ($((HALF + 1)))" >/dev/null
        psql "$1" -c "SHOW RANGES FROM TABLE acct"
    fi
}

run() { # target, conninfo, script
    local out logs="$DATA/logs-$1-$(basename "$3" .sql)"
    mkdir -p "$logs"
    out="$(cd "$logs" && pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -l -f "$3" "$2" 2>&1)" ||
        { echo "$out" >&2; return 1; }
    printf '%-9s %-13s %8s tps  p50 %6s ms  p99 %7s ms  failed %s\n' "$1" "$(basename "$3" .sql)" \
        "$(echo "$out" | awk '/^tps/ {printf "%.0f", $3; exit}')" \
        "$(percentile 50 "$logs"/pgbench_log.*)" "$(percentile 99 "$logs"/pgbench_log.*)" \
        "$(echo "$out" | awk '/number of failed transactions/ {print $5; exit}')"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); $CLIENTS connections, ${SECONDS_PER_RUN}s per run, $ACCOUNTS accounts"
TESSERA="postgresql://root@127.0.0.1:$SQL_PORT/tessera"
setup "$TESSERA" split
run tessera "$TESSERA" "$DATA/single-range.sql"
run tessera "$TESSERA" "$DATA/cross-range.sql"
total="$(psql "$TESSERA" -qAtc 'SELECT sum(bal) FROM acct')"
[ "$total" = "$((ACCOUNTS * 1000000))" ] || { echo "tessera: the accounts hold $total, not $((ACCOUNTS * 1000000))" >&2; exit 1; }

PG="${TESSERA_PG:-host=/var/run/postgresql dbname=postgres}"
if psql "$PG" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    setup "$PG" no
    run postgres "$PG" "$DATA/single-range.sql"
    run postgres "$PG" "$DATA/cross-range.sql"
    psql "$PG" -qc 'DROP TABLE acct'
else
    echo "postgres: skipped, no server at \"$PG\""
fi
