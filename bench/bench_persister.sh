#!/usr/bin/env bash
# bench/bench_persister.sh BUILD OUTDIR — svc-persister next to the physical
# limit, in the same run:
#   PostgreSQL: svc-persister (Kafka -> COPY staging -> version-guarded merge)
#               vs `psql \copy` of the same rows into a table of the same DDL;
#   MongoDB:    svc-persister (guarded unordered bulks) vs insert_many of the
#               same documents (bench_persister mongo-insert).
# Rates are taken from the 2,001st row written to the last: the warm-up
# (consumer group join, the audit producer's id and first metadata, the
# first batches' statement preparation) is left out, as a service that runs
# for hours pays it once. CPU: svc-persister's whole
# process (utime+stime from /proc) / psql's or the inserter's own CPU.
# Database-server CPU is not counted on either side.
#
# Env: BENCH_N_PERSISTER (100000), BENCH_N_PERSISTER_MONGO (10000),
#      BENCH_BROKER (127.0.0.1:9092), BENCH_PG (libpq string of the local stack)
set -uo pipefail
BUILD=$1
OUT=$2
N=${BENCH_N_PERSISTER:-100000}
NM=${BENCH_N_PERSISTER_MONGO:-10000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
PGC=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
TAG=bp$(date +%s)_$$
BIN=$BUILD/bin/svc-persister
HELPER=$BUILD/bench/bench_persister
export TB_PROTO_DIR=$ROOT/proto TB_LOG_LEVEL=warn
hz=$(getconf CLK_TCK)

cpu_of() { awk -v hz="$hz" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
now() { date +%s.%N; }
count_pg() { psql "$PGC" -Atc "SELECT count(*) FROM \"$1\".payee" 2>/dev/null || echo 0; }

# run_persister SINK N EXTRA... : prints "rows seconds cpu_seconds" (row
# WARM+1 -> N rows)
WARM=2000
run_persister() {
    local sink=$1 n=$2 count_cmd=$3; shift 3
    "$BIN" --dataset payee --sink "$sink" --create.tables --topic.prefix "$TAG." \
        --group.id "bench_${TAG}_$sink" --audit.topic "audit_$TAG" \
        --http.port 0 --batch.size 1000 --batch.timeout.ms 100 "$@" 2>>"$OUT/persister.err" &
    local pid=$! t0="" c0=0 c=0 deadline=$((SECONDS + 600))
    while [ "$SECONDS" -lt "$deadline" ]; do
        c=$($count_cmd)
        if [ -z "$t0" ] && [ "${c:-0}" -ge "$WARM" ]; then t0=$(now); c0=$c; cpu0=$(cpu_of $pid); fi
        [ "${c:-0}" -ge "$n" ] && break
        sleep 0.05
    done
    local t1 cpu1
    t1=$(now); cpu1=$(cpu_of $pid)
    kill -TERM $pid; wait $pid
    [ "${c:-0}" -eq "$n" ] || { echo "BROKEN: $sink holds $c of $n rows" >&2; return 1; }
    awk -v n="$((n - c0))" -v a="$t0" -v b="$t1" -v c0="$cpu0" -v c1="$cpu1" \
        'BEGIN { printf "%d %.3f %.3f\n", n, b - a, c1 - c0 }'
}

# The output topics exist before the clock starts, as audit.events and the
# DLQs do in a running system: a topic the broker creates on the first
# record costs librdkafka's 1 s refresh of unknown topics, once, inside the
# measured window otherwise.
ensure_topic() {
    for _ in $(seq 100); do
        kcat -L -b "$BROKER" -t "$1" 2>/dev/null | grep -q 'partition 0,' && return 0
        sleep 0.1
    done
    echo "bench: topic $1 never had a leader" >&2; return 1
}
"$HELPER" fill --broker "$BROKER" --topic "$TAG.payee.valid" -n "$N" || exit 2
ensure_topic "audit_$TAG" && ensure_topic "$TAG.payee.dlq" || exit 2

# ---- PostgreSQL -------------------------------------------------------------
SCH=bench_$TAG
psql "$PGC" -qc "CREATE SCHEMA \"$SCH\"" || exit 2
pg_count() { count_pg "$SCH"; }
read -r p_n p_wall p_cpu < <(run_persister postgres "$N" pg_count --pg.schema "$SCH" \
    --pg.password tributary) || exit 1
# The same rows, as a file, into a fresh table of the same DDL with \copy.
psql "$PGC" -qc "\\copy \"$SCH\".payee TO '$OUT/payee.copy'" || exit 2
psql "$PGC" -qc "CREATE TABLE \"$SCH\".payee_copy (LIKE \"$SCH\".payee INCLUDING ALL)" || exit 2
TIMEFORMAT='%R %U %S'
{ time psql "$PGC" -qc "\\copy \"$SCH\".payee_copy FROM '$OUT/payee.copy'" ; } 2>"$OUT/copy-time.txt" || exit 2
read -r c_wall c_user c_sys < <(tail -n1 "$OUT/copy-time.txt")
c_n=$(psql "$PGC" -Atc "SELECT count(*) FROM \"$SCH\".payee_copy")
[ "$c_n" -eq "$N" ] || echo "BROKEN: \\copy loaded $c_n of $N rows" >&2
awk -v n="$N" -v pn="$p_n" -v pw="$p_wall" -v pc="$p_cpu" -v cw="$c_wall" -v cu="$c_user" -v cs="$c_sys" 'BEGIN {
    pr = pn / pw; cr = n / cw
    printf "  postgres  svc-persister  %9.0f rows/s  %7.3f CPU-s/Mrow   (rows %d-%d, %.2f s)\n", pr, pc * 1e6 / pn, n - pn + 1, n, pw
    printf "  postgres  psql \\copy     %9.0f rows/s  %7.3f CPU-s/Mrow   (the %d rows, same DDL, %.2f s)\n", cr, (cu + cs) * 1e6 / n, n, cw
    printf "  postgres  ratio persister/\\copy: %.2fx the rate\n", pr / cr }'
psql "$PGC" -qc "DROP SCHEMA \"$SCH\" CASCADE"
rm -f "$OUT/payee.copy"

# ---- MongoDB (FerretDB on the local stack) ----------------------------------
MDB=bench_$TAG
"$HELPER" fill --broker "$BROKER" --topic "m$TAG.payee.valid" -n "$NM" || exit 2
ensure_topic "audit_m$TAG" && ensure_topic "m$TAG.payee.dlq" || exit 2
# progress from the service's metrics: counting documents is a full scan on
# FerretDB 1.x, and polling it would slow down what is measured
MPORT=${BENCH_PERSISTER_HTTP_PORT:-18996}
mongo_count() {
    curl -s "http://127.0.0.1:$MPORT/metrics" 2>/dev/null |
        awk '/^tributary_persister_rows_total\{/ { s += $2 } END { printf "%d\n", s }'
}
TAG_SAVE=$TAG; TAG=m$TAG
read -r m_n m_wall m_cpu < <(run_persister mongodb "$NM" mongo_count --mongodb.database "$MDB" \
    --mongodb.write.concern 1 --mongodb.decimal128=false --http.port "$MPORT") || exit 1
n_docs=$("$HELPER" mongo-count --db "$MDB" 2>/dev/null || echo 0)
[ "$n_docs" -eq "$NM" ] || { echo "BROKEN: mongodb holds $n_docs of $NM documents" >&2; exit 1; }
TAG=$TAG_SAVE
read -r i_wall i_user i_sys < <("$HELPER" mongo-insert --db "${MDB}_ins" --coll payee -n "$NM" 2>/dev/null)
awk -v n="$NM" -v pn="$m_n" -v pw="$m_wall" -v pc="$m_cpu" -v cw="$i_wall" -v cu="$i_user" -v cs="$i_sys" 'BEGIN {
    pr = pn / pw; cr = n / cw
    printf "  mongodb   svc-persister  %9.0f docs/s  %7.3f CPU-s/Mdoc   (docs %d-%d, %.2f s)\n", pr, pc * 1e6 / pn, n - pn + 1, n, pw
    printf "  mongodb   insert_many    %9.0f docs/s  %7.3f CPU-s/Mdoc   (the %d documents, %.2f s)\n", cr, (cu + cs) * 1e6 / n, n, cw
    printf "  mongodb   ratio persister/insert_many: %.2fx the rate\n", pr / cr }'
"$HELPER" mongo-drop --db "$MDB" >/dev/null 2>&1
"$HELPER" mongo-drop --db "${MDB}_ins" >/dev/null 2>&1
exit 0
