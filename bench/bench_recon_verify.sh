#!/bin/sh
# bench_recon_verify.sh — time to reconcile a clean N-record batch (default
# 1,000,000) with and without --verify-sinks, next to SELECT count(*) and a
# full-table hash in psql over the same PostgreSQL table.
#
# bench_sinkcheck fills svc-persister's payee table (schema bench_sinkcheck)
# with N rows and publishes the four stages' audit events of the same
# records (ids, versions, content digests) to a fresh topic; then
#   1. svc-recon report --batch bench    (catch-up of 4N events + reconcile)
#   2. the same again: the state is current, so this is the reconcile alone
#   3. the same with --verify-sinks (PostgreSQL: coverage payee:postgres)
#
#   bench/bench_recon_verify.sh [BUILD]   (env BENCH_N_VERIFY, default 1000000)
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_N_VERIFY:-1000000}
PG=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
TAG=benchv$(date +%s)
TOPIC=audit.$TAG
SCHEMA=recon_$TAG
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -Ilibcore/include $(pkg-config --cflags libcjson hiredis libmongoc-1.0) \
    -I/usr/include/postgresql bench/bench_sinkcheck.c svc-recon/sinkcheck.c svc-recon/sinkcheck_pg.c \
    "$BUILD/lib/libtributary-core.a" -lpq $(pkg-config --libs rdkafka hiredis libcjson avro-c \
    libcurl libmicrohttpd uuid libcrypto zlib libmongoc-1.0) -lpthread -lm \
    -o "$BUILD/bench/bench_sinkcheck"
BENCH_KEEP=1 BENCH_AUDIT_TOPIC=$TOPIC TB_PROTO_DIR="$ROOT/proto" "$BUILD/bench/bench_sinkcheck" "$N"

run() { # label, args...
    label=$1
    shift
    /usr/bin/time -f "%e %U %S" -o /tmp/$TAG.time env TB_PROTO_DIR="$ROOT/proto" \
        TB_PG_PASSWORD=tributary "$BUILD/bin/svc-recon" report --batch bench --json \
        --audit.topic "$TOPIC" --state.schema "$SCHEMA" --log.level warn \
        --catchup.timeout.ms 1800000 "$@" >/tmp/$TAG.json || true
    read -r wall user sys < /tmp/$TAG.time
    python3 -c "import json,sys; j=json.load(open('/tmp/$TAG.json')); \
print('$label: clean=%s delivered=%d reconcile %.2f s%s; wall %s s, svc-recon CPU %.2f s' % \
(j['clean'], j['counts']['delivered'], j['seconds'], \
 (', verify %.2f s' % j['verify_seconds']) if 'verify_seconds' in j else '', '$wall', $user + $sys))"
}
run "report (catch-up + reconcile)"
run "report (reconcile only)"
run "report --verify-sinks" --verify-sinks --coverage payee:postgres --verify.pg.schema bench_sinkcheck
t0=$(date +%s.%N)
psql "$PG" -qAtc "SELECT count(*) FROM bench_sinkcheck.payee" >/dev/null
t1=$(date +%s.%N)
psql "$PG" -qAtc "SELECT sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM bench_sinkcheck.payee t" >/dev/null
t2=$(date +%s.%N)
echo "psql SELECT count(*): $(echo "$t1 - $t0" | bc) s; full-table md5 hash: $(echo "$t2 - $t1" | bc) s"
psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE; DROP SCHEMA bench_sinkcheck CASCADE" 2>/dev/null || true
rm -f /tmp/$TAG.*
