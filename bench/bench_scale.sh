#!/usr/bin/env bash
# bench/bench_scale.sh BUILD OUTDIR — scaling out: svc-persister (PostgreSQL)
# as one instance, then as two instances in one consumer group, on the same
# BENCH_N_SCALE payees (200000) of one 6-partition topic (bench/run.sh,
# BENCH_ONLY=scale, runs it). Each run: from the processes' start to the
# last row stored (group join included), and steady from row WARM+1; CPU:
# both processes' utime+stime. On a 2-core machine that also runs the broker
# and PostgreSQL, two instances cannot be faster than one: the figures show
# the cost of the group (two joins, a rebalance when the second arrives,
# twice the per-process overhead), not a speed-up.
# Env: BENCH_N_SCALE (200000), BENCH_BROKER, BENCH_PG
set -uo pipefail
BUILD=$1
OUT=$2
N=${BENCH_N_SCALE:-200000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
PGC=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export TB_PROTO_DIR=$ROOT/proto TB_LOG_LEVEL=warn
TAG=scale$(date +%s)_$$
hz=$(getconf CLK_TCK)
WARM=2000

cpu_of() { awk -v hz="$hz" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

"$BUILD/bench/bench_persister" fill --broker "$BROKER" --topic "$TAG.payee.valid" -n "$N" --partitions 6 || exit 2
for t in audit payee.dlq; do
    "$BUILD/bench/bench_persister" fill --broker "$BROKER" --topic "$TAG.$t" -n 0 || exit 2
done

# run INSTANCES: prints "wall cpu steady_n steady_wall steady_cpu"
run() {
    local k=$1 sch=${TAG}_$1 pids=() t0 tw="" cw=0 cn=0 c=0 deadline=$((SECONDS + 600))
    "$BUILD/bin/svc-persister" schema-sql --dataset payee --pg.schema "$sch" |
        psql "$PGC" -q -c "CREATE SCHEMA \"$sch\"" -f - || return 2
    t0=$(now)
    for i in $(seq "$k"); do
        "$BUILD/bin/svc-persister" --dataset payee --sink postgres --pg.schema "$sch" --pg.password tributary \
            --topic.prefix "$TAG." --group.id "g$sch" --audit.topic "$TAG.audit" --http.port 0 \
            2>>"$OUT/scale-$k.err" &
        pids+=($!)
    done
    cpus() { local s=0 p; for p in "${pids[@]}"; do s=$(awk -v a="$s" -v b="$(cpu_of "$p")" 'BEGIN { print a + b }'); done; echo "$s"; }
    while [ "$SECONDS" -lt "$deadline" ]; do
        c=$(psql "$PGC" -Atc "SELECT count(*) FROM \"$sch\".payee" 2>/dev/null || echo 0)
        if [ -z "$tw" ] && [ "${c:-0}" -ge "$WARM" ]; then tw=$(now); cw=$(cpus); cn=$c; fi
        [ "${c:-0}" -ge "$N" ] && break
        sleep 0.05
    done
    local t1 c1
    t1=$(now); c1=$(cpus)
    kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
    PGOPTIONS='-c client_min_messages=warning' psql "$PGC" -qc "DROP SCHEMA \"$sch\" CASCADE"
    [ "${c:-0}" -ge "$N" ] || { echo "BROKEN: $k instance(s) stored ${c:-0} of $N rows (see $OUT/scale-$k.err)" >&2; return 1; }
    awk -v t0="$t0" -v t1="$t1" -v tw="$tw" -v c1="$c1" -v cw="$cw" -v n="$N" -v cn="$cn" \
        'BEGIN { printf "%.3f %.3f %d %.3f %.3f\n", t1 - t0, c1, n - cn, t1 - tw, c1 - cw }'
}
la0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r w1 c1 s1n s1w s1c < <(run 1) || exit 1
read -r w2 c2 s2n s2w s2c < <(run 2) || exit 1
awk -v n="$N" -v w1="$w1" -v c1="$c1" -v s1n="$s1n" -v s1w="$s1w" -v s1c="$s1c" \
    -v w2="$w2" -v c2="$c2" -v s2n="$s2n" -v s2w="$s2w" -v s2c="$s2c" -v la0="$la0" -v la1="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
    printf "  svc-persister (PostgreSQL), %d payees on a 6-partition topic; load average %s at start, %s at end\n", n, la0, la1
    printf "    one instance         %8.0f rows/s  %6.1f CPU-s/M   steady %8.0f rows/s  %6.1f CPU-s/M\n", n / w1, c1 * 1e6 / n, s1n / s1w, s1c * 1e6 / s1n
    printf "    two, one group       %8.0f rows/s  %6.1f CPU-s/M   steady %8.0f rows/s  %6.1f CPU-s/M  (combined, both processes)\n", n / w2, c2 * 1e6 / n, s2n / s2w, s2c * 1e6 / s2n
    printf "    two / one: rate %.2fx (start-up included), %.2fx steady; CPU per row %.2fx\n", w1 / w2, (s2n / s2w) / (s1n / s1w), c2 / c1
    print  "    on two cores shared with the broker and PostgreSQL this shows the cost of the group (joins,"
    print  "    the rebalance when the second instance arrives, two processes), not a speed-up" }'
"$BUILD/bench/bench_produce" delete --broker "$BROKER" "$TAG.payee.valid" "$TAG.audit" "$TAG.payee.dlq" >/dev/null 2>&1 || true
exit 0
