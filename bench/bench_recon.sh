#!/bin/sh
# bench_recon.sh — svc-recon's audit consumption: N records x 4 audit events
# on a fresh topic, then `svc-recon report` (catch-up to the end, one
# reconciliation) timed with its own CPU, next to kcat reading the same
# topic to its end in the same run. PostgreSQL's own CPU is not in
# svc-recon's figure (the wall time includes it: every apply waits for it).
#
#   bench/bench_recon.sh [BUILD]      (env BENCH_N_RECON records, default 250000)
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_N_RECON:-250000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
PG=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
TAG=bench$(date +%s)
TOPIC=audit.$TAG
SCHEMA=recon_$TAG
CC=${CC:-cc}
PKGS="rdkafka hiredis libcjson avro-c libcurl libmicrohttpd uuid libcrypto zlib"
mkdir -p "$BUILD/bench"
$CC -std=c11 -D_GNU_SOURCE -O2 -Ilibcore/include $(pkg-config --cflags $PKGS) \
    -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_recon" \
    bench/bench_recon.c bench/bench_common.c "$BUILD/lib/libtributary-core.a" \
    $(pkg-config --libs $PKGS) -lpthread -lm
EVENTS=$("$BUILD/bench/bench_recon" --broker "$BROKER" --topic "$TOPIC" --batch "$TAG" -n "$N")
echo "bench_recon: $EVENTS audit events on $TOPIC"

t0=$(date +%s.%N)
kcat -b "$BROKER" -C -t "$TOPIC" -o beginning -e -q -f '%o\n' -X isolation.level=read_committed | wc -l > /tmp/$TAG.kcat
t1=$(date +%s.%N)
echo "kcat: $(cat /tmp/$TAG.kcat) events in $(echo "$t1 - $t0" | bc) s wall"

/usr/bin/time -f "%e %U %S" -o /tmp/$TAG.time env TB_PROTO_DIR="$ROOT/proto" \
    TB_PG_PASSWORD=tributary "$BUILD/bin/svc-recon" report --batch "$TAG" \
    --audit.topic "$TOPIC" --state.schema "$SCHEMA" --log.level warn >/tmp/$TAG.report || true
read -r wall user sys < /tmp/$TAG.time
head -2 /tmp/$TAG.report
echo "svc-recon report: $EVENTS events in $wall s wall, CPU user $user s sys $sys s"
echo "svc-recon: $(echo "$EVENTS / $wall" | bc) events/s wall," \
     "$(echo "$EVENTS / ($user + $sys)" | bc) events per svc-recon CPU-second"
psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" 2>/dev/null || true
rm -f /tmp/$TAG.*
