#!/usr/bin/env bash
# A steady transfer workload while the table is resharded: 8 pgbench
# connections (prepared statements) each run
#   BEGIN; UPDATE acct ... WHERE id = :a; UPDATE acct ... WHERE id = :b; END;
# against a 3-node cluster (`tessera demo`, RocksDB with fsync) for 40 s.
# After 10 s the table (one range) splits into four (ALTER TABLE ... SPLIT
# AT); after 25 s every range's lease moves to another node (ALTER RANGE ...
# RELOCATE LEASE). Prints the throughput and p50/p99 latency of each phase,
# from pgbench's per-transaction log, and checks the accounts' total.
#
#   bash benches/reshard.sh [accounts, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${1:-10000}"
command -v pgbench >/dev/null || { echo "pgbench not found (apt install postgresql-client)" >&2; exit 1; }
source benches/demo-cluster.sh

TESSERA="postgresql://root@127.0.0.1:$SQL_PORT/tessera"
psql "$TESSERA" -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
INSERT INTO acct SELECT g, 1000000 FROM generate_series(1, $ACCOUNTS) AS g;
SQL
transfer_script "$DATA/transfer.sql" "1, $ACCOUNTS" "1, $ACCOUNTS"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
show() { echo "$1:"; psql "$TESSERA" -c "SHOW RANGES FROM TABLE acct"; }

show "before"
mkdir -p "$DATA/log"
(cd "$DATA/log" && pgbench -n -M prepared -c 8 -j 2 -T 40 -l -f "$DATA/transfer.sql" "$TESSERA" >"$DATA/pgbench.out" 2>&1) &
BENCH=$!
START=$(now)
sleep 10
SPLIT_AT=$(now)
psql "$TESSERA" -q -c "ALTER TABLE acct SPLIT AT VALUES ($((ACCOUNTS / 4))), ($((ACCOUNTS / 2))), ($((ACCOUNTS * 3 / 4)))" >/dev/null
SPLIT_DONE=$(now)
show "after the split"
sleep "$(calc "25 - ($(now) - $START)" | sed "s/^-.*/0/")"
MOVE_AT=$(now)
i=0
for id in $(psql "$TESSERA" -qAt -c "SHOW RANGES FROM TABLE acct" | cut -d'|' -f1); do
    psql "$TESSERA" -q -c "ALTER RANGE $id RELOCATE LEASE TO $((i % 3 + 1))" >/dev/null
    i=$((i + 1))
done
MOVE_DONE=$(now)
show "after the lease moves"
wait $BENCH || { cat "$DATA/pgbench.out" >&2; exit 1; }
grep -E "failed transactions|^tps" "$DATA/pgbench.out"

# Per phase: transactions that ended in [from, to) (pgbench's log: field 3
# is the latency in us, fields 5 and 6 the end time).
phase() { # name, from, to
    cat "$DATA"/log/pgbench_log.* | awk -v from="$2" -v to="$3" '
        { t = $5 + $6 / 1e6; if (t >= from && t < to) print $3 }' | sort -n |
        awk -v name="$1" -v secs="$(calc "$3 - $2")" '
            { v[NR] = $1 }
            END {
                if (NR == 0) { printf "%-22s no transactions\n", name; exit }
                p50 = v[int(NR * 0.50 + 0.5)]; p99 = v[int(NR * 0.99 + 0.5)]
                if (p50 == "") p50 = v[1]; if (p99 == "") p99 = v[NR]
                printf "%-22s %6.1f s %7.0f tps  p50 %7.2f ms  p99 %7.2f ms\n", name, secs, NR / secs, p50 / 1000, p99 / 1000
            }'
}
END=$(calc "$START + 40")
echo "split took $(calc "$SPLIT_DONE - $SPLIT_AT") s; lease moves took $(calc "$MOVE_DONE - $MOVE_AT") s"
phase "before (one range)" "$(calc "$START + 1")" "$SPLIT_AT"
phase "split" "$SPLIT_AT" "$(calc "$SPLIT_DONE + 1")"
phase "four ranges" "$(calc "$SPLIT_DONE + 1")" "$MOVE_AT"
phase "lease moves" "$MOVE_AT" "$(calc "$MOVE_DONE + 1")"
phase "after" "$(calc "$MOVE_DONE + 1")" "$END"
total="$(psql "$TESSERA" -qAtc 'SELECT sum(bal) FROM acct')"
[ "$total" = "$((ACCOUNTS * 1000000))" ] || { echo "the accounts hold $total, not $((ACCOUNTS * 1000000))" >&2; exit 1; }
echo "total holds: $total"
