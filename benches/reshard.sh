#!/usr/bin/env bash
# A steady transfer workload while the table is resharded: 8 pgbench
# connections (prepared statements) each run
#   BEGIN; UPDATE acct ... WHERE id = :a; UPDATE acct ... WHERE id = :b; END;
# against a 3-node cluster (`tessera demo`, RocksDB with fsync) that a
# fourth node (`tessera start`) joins, for 55 s. After 10 s the table (one
# range) splits into four (ALTER TABLE ... SPLIT AT); after 25 s each of
# its ranges moves its replica on node 1 to node 4 (ALTER RANGE ...
# RELOCATE VOTERS); after 40 s the four ranges merge back into one (ALTER
# TABLE ... UNSPLIT ALL). The rebalancers are off, so that only these
# steps move anything. Prints the throughput and p50/p99 latency of each
# phase, from pgbench's per-transaction log, and checks the accounts'
# total.
#
#   bash benches/reshard.sh [accounts, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${1:-10000}"
command -v pgbench >/dev/null || { echo "pgbench not found (apt install postgresql-client)" >&2; exit 1; }
DEMO_ARGS="--rebalance-interval-secs 0"
source benches/demo-cluster.sh
"$T" start --node-id 4 --data-dir "$DATA/node4" --listen-addr "127.0.0.1:$((PORT + 3))" \
    --sql-addr "127.0.0.1:$((SQL_PORT + 3))" --join "127.0.0.1:$PORT" \
    --rebalance-interval-secs 0 >"$DATA/node4.log" 2>&1 &
NODE4=$!
trap 'kill $NODE4 $DEMO 2>/dev/null; wait $NODE4 $DEMO 2>/dev/null; rm -rf "$DATA"' EXIT

TESSERA="postgresql://root@127.0.0.1:$SQL_PORT/tessera"
for _ in $(seq 1 100); do
    psql "$TESSERA" -qAt -c "SHOW NODES" 2>/dev/null | grep -q '^4|.*|t|' && break
    sleep 0.2
done
psql "$TESSERA" -qAt -c "SHOW NODES" | grep -q '^4|.*|t|' || { echo "node 4 did not join" >&2; cat "$DATA/node4.log" >&2; exit 1; }
psql "$TESSERA" -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
INSERT INTO acct SELECT g, 1000000 FROM generate_series(1, $ACCOUNTS) AS g;
SQL
transfer_script "$DATA/transfer.sql" "1, $ACCOUNTS" "1, $ACCOUNTS"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
show() { echo "$1:"; psql "$TESSERA" -c "SHOW RANGES FROM TABLE acct"; }
wait_until() { sleep "$(calc "$1 - ($(now) - $START)" | sed "s/^-.*/0/")"; }

show "before"
mkdir -p "$DATA/log"
(cd "$DATA/log" && pgbench -n -M prepared -c 8 -j 2 -T 55 -l -f "$DATA/transfer.sql" "$TESSERA" >"$DATA/pgbench.out" 2>&1) &
BENCH=$!
START=$(now)
wait_until 10
SPLIT_AT=$(now)
psql "$TESSERA" -q -c "ALTER TABLE acct SPLIT AT VALUES ($((ACCOUNTS / 4))), ($((ACCOUNTS / 2))), ($((ACCOUNTS * 3 / 4)))" >/dev/null
SPLIT_DONE=$(now)
show "after the split"
wait_until 25
MOVE_AT=$(now)
for id in $(psql "$TESSERA" -qAt -c "SHOW RANGES FROM TABLE acct" | awk -F'|' '$4 ~ /[{,]1[,}]/ { print $1 }'); do
    psql "$TESSERA" -q -c "ALTER RANGE $id RELOCATE VOTERS FROM 1 TO 4" >/dev/null
done
MOVE_DONE=$(now)
show "after the relocation"
wait_until 40
MERGE_AT=$(now)
psql "$TESSERA" -q -c "ALTER TABLE acct UNSPLIT ALL" >/dev/null
MERGE_DONE=$(now)
show "after the merge"
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
                if (NR == 0) { printf "%-24s no transactions\n", name; exit }
                p50 = v[int(NR * 0.50 + 0.5)]; p99 = v[int(NR * 0.99 + 0.5)]
                if (p50 == "") p50 = v[1]; if (p99 == "") p99 = v[NR]
                printf "%-24s %6.1f s %7.0f tps  p50 %7.2f ms  p99 %7.2f ms\n", name, secs, NR / secs, p50 / 1000, p99 / 1000
            }'
}
END=$(calc "$START + 55")
echo "split took $(calc "$SPLIT_DONE - $SPLIT_AT") s; relocation $(calc "$MOVE_DONE - $MOVE_AT") s; merge $(calc "$MERGE_DONE - $MERGE_AT") s"
phase "before (one range)" "$(calc "$START + 1")" "$SPLIT_AT"
phase "split" "$SPLIT_AT" "$(calc "$SPLIT_DONE + 1")"
phase "four ranges" "$(calc "$SPLIT_DONE + 1")" "$MOVE_AT"
phase "relocation" "$MOVE_AT" "$(calc "$MOVE_DONE + 1")"
phase "after the relocation" "$(calc "$MOVE_DONE + 1")" "$MERGE_AT"
phase "merge" "$MERGE_AT" "$(calc "$MERGE_DONE + 1")"
phase "after (one range)" "$(calc "$MERGE_DONE + 1")" "$END"
total="$(psql "$TESSERA" -qAtc 'SELECT sum(bal) FROM acct')"
[ "$total" = "$((ACCOUNTS * 1000000))" ] || { echo "the accounts hold $total, not $((ACCOUNTS * 1000000))" >&2; exit 1; }
echo "total holds: $total"
