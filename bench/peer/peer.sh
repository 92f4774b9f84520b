#!/usr/bin/env bash
# bench/peer/peer.sh BUILD OUTDIR — tributary's sinks side by side with the
# peers a platform team would otherwise pick, on the same broker and servers,
# the same BENCH_N_PEER payees (200000), in one run (bench/run.sh,
# BENCH_ONLY=peer, runs it):
#   Kafka -> PostgreSQL: svc-persister (COPY staging + version-guarded merge,
#       audit on) | Kafka Connect 3.9.1 standalone + Debezium JDBC sink
#       3.1.2.Final (upsert, NO version guard), fed a JSON copy of the records
#       (JsonConverter, embedded schemas; Flatten + ReplaceField onto the
#       persister's table) | Python: confluent-kafka + fastavro + psycopg COPY
#       into staging + the same guarded merge (no audit)
#   Kafka -> Redis: svc-cache-feeder (guarded Lua script per batch, audit on)
#       | Python: confluent-kafka + fastavro + redis-py pipelined SETs (NO guard)
# Each job: from process start to the last record stored ("start-up
# included"), and steady from the WARM+1st record to the last; CPU is the
# job's whole process (utime+stime of all its threads, from /proc; the JVM's
# JIT and GC included), not the servers'.
# Env: BENCH_N_PEER (200000), BENCH_BROKER, BENCH_PG, BENCH_REDIS_HOST/PORT,
#      STACK_CACHE_DIR (where bench/peer/install.sh put the peers)
set -uo pipefail
BUILD=$1
OUT=$2
N=${BENCH_N_PEER:-200000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
PGC=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
RH=${BENCH_REDIS_HOST:-127.0.0.1}
RP=${BENCH_REDIS_PORT:-6379}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
CACHE=${STACK_CACHE_DIR:-$ROOT/.stack/cache}
P=$CACHE/peer
PY=$P/venv/bin/python
TAG=peer$(date +%s)_$$
HELPER=$BUILD/bench/bench_persister
export TB_PROTO_DIR=$ROOT/proto TB_LOG_LEVEL=warn
hz=$(getconf CLK_TCK)
WARM=2000
RES=$OUT/peer.tsv
: > "$RES"

if ! "$HERE/install.sh"; then
    echo "bench: the peers are not installed in $P and could not be fetched here" >&2
    echo "       (run bench/peer/install.sh where the registries are reachable, same STACK_CACHE_DIR)" >&2
    exit 2
fi

cpu_of() { awk -v hz="$hz" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

# run_job LABEL COUNT_CMD CMD... : starts CMD, polls COUNT_CMD every 50 ms
# until N, kills CMD; appends "label n wall cpu steady_n steady_wall
# steady_cpu first_s joined_s" to $RES (first_s: start -> first record
# stored; joined_s: start -> the group's first assignment, from the service's
# "kafka partitions assigned" log line; - for the peers).
run_job() {
    local label=$1 count_cmd=$2; shift 2
    local t0 tw="" tf="" cw=0 c=0 deadline=$((SECONDS + 900))
    t0=$(now)
    "$@" >>"$OUT/peer-$label.log" 2>&1 &
    local pid=$!
    while [ "$SECONDS" -lt "$deadline" ] && kill -0 $pid 2>/dev/null; do
        c=$($count_cmd)
        c=${c:-0}
        [ -z "$tf" ] && [ "$c" -gt 0 ] && tf=$(now)
        if [ -z "$tw" ] && [ "$c" -ge "$WARM" ]; then tw=$(now); cw=$(cpu_of $pid); cn=$c; fi
        [ "$c" -ge "$N" ] && break
        sleep 0.05
    done
    local t1 c1
    t1=$(now); c1=$(cpu_of $pid)
    kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
    if [ "$c" -lt "$N" ]; then
        echo "BROKEN: $label stored $c of $N records (see $OUT/peer-$label.log)" >&2
        return 1
    fi
    local joined=-1 ts
    ts=$(grep -m1 '"msg":"kafka partitions assigned"' "$OUT/peer-$label.log" | sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
    [ -n "$ts" ] && joined=$(awk -v a="$(date -d "$ts" +%s.%N)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
    awk -v l="$label" -v n="$N" -v t0="$t0" -v t1="$t1" -v tw="$tw" -v tf="$tf" -v cw="$cw" -v c1="$c1" -v cn="$cn" -v j="$joined" \
        'BEGIN { printf "%s\t%d\t%.3f\t%.3f\t%d\t%.3f\t%.3f\t%.3f\t%s\n", l, n, t1 - t0, c1, n - cn, t1 - tw, c1 - cw, tf - t0, j }' >> "$RES"
}

"$HELPER" fill --broker "$BROKER" --topic "$TAG.payee.valid" -n "$N" || exit 2
"$PY" "$HERE/peer.py" jsoncopy --broker "$BROKER" --proto "$ROOT/proto" --src "$TAG.payee.valid" \
    --dst "$TAG.payee.json" -n "$N" || { echo "bench: the JSON copy failed" >&2; exit 2; }
# audit and DLQ topics exist before the clocks start, as in a running system
for t in "audit_$TAG" "$TAG.payee.dlq"; do
    kcat -P -b "$BROKER" -t "$t" </dev/null 2>/dev/null
    for _ in $(seq 100); do kcat -L -b "$BROKER" -t "$t" 2>/dev/null | grep -q 'partition 0,' && break; sleep 0.1; done
done

# ---- Kafka -> PostgreSQL ------------------------------------------------------
S_TB=${TAG}_tb S_DBZ=${TAG}_dbz S_PY=${TAG}_py
for s in "$S_TB" "$S_DBZ" "$S_PY"; do psql "$PGC" -qc "CREATE SCHEMA \"$s\"" || exit 2; done
pg_count() { psql "$PGC" -Atc "SELECT count(*) FROM \"$1\".payee" 2>/dev/null || echo 0; }
cnt_tb() { pg_count "$S_TB"; }
cnt_dbz() { pg_count "$S_DBZ"; }
cnt_py() { pg_count "$S_PY"; }
# the persister's tables (its own DDL), created before any clock starts, for all three
for s in "$S_TB" "$S_DBZ" "$S_PY"; do
    "$BUILD/bin/svc-persister" schema-sql --dataset payee --pg.schema "$s" | psql "$PGC" -q || exit 2
done

run_job persister cnt_tb "$BUILD/bin/svc-persister" --dataset payee --sink postgres --pg.schema "$S_TB" \
    --pg.password tributary --topic.prefix "$TAG." --group.id "tb$TAG" --audit.topic "audit_$TAG" \
    --http.port 0 --log.level info || exit 1

# Kafka Connect standalone + Debezium JDBC sink
CD=$OUT/connect-$TAG
mkdir -p "$CD"
cat > "$CD/worker.properties" <<EOF
bootstrap.servers=$BROKER
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
offset.storage.file.filename=$CD/offsets
plugin.path=$P/plugins
listeners=http://127.0.0.1:0
consumer.auto.offset.reset=earliest
EOF
cat > "$CD/sink.properties" <<EOF
name=dbz-$TAG
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=1
topics=$TAG.payee.json
connection.url=jdbc:postgresql://127.0.0.1:5432/tributary
connection.username=tributary
connection.password=tributary
insert.mode=upsert
delete.enabled=false
primary.key.mode=record_value
primary.key.fields=payee_id
schema.evolution=none
collection.name.format=$S_DBZ.payee
transforms=flat,map
transforms.flat.type=org.apache.kafka.connect.transforms.Flatten\$Value
transforms.flat.delimiter=_
transforms.map.type=org.apache.kafka.connect.transforms.ReplaceField\$Value
transforms.map.exclude=meta_op,meta_kind,meta_source,meta_seq,meta_event_time,meta_old_key
transforms.map.renames=meta_version:tb_version,meta_id:tb_id,meta_batch_id:tb_batch
EOF
cat > "$CD/log4j.properties" <<EOF
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
run_job connect cnt_dbz java -Xms256m -Xmx1g -XX:+UseG1GC -Dlog4j.configuration="file:$CD/log4j.properties" \
    -cp "$P/connect-3.9.1/libs/*" org.apache.kafka.connect.cli.ConnectStandalone \
    "$CD/worker.properties" "$CD/sink.properties" || exit 1

run_job python_pg cnt_py "$PY" "$HERE/peer.py" pg --broker "$BROKER" --proto "$ROOT/proto" \
    --topic "$TAG.payee.valid" --group "py$TAG" --conninfo "$PGC" --schema "$S_PY" || exit 1

# same rows in all three tables (the Debezium one without the tb_* it does not write)
for s in "$S_DBZ" "$S_PY"; do
    d=$(psql "$PGC" -Atc "SELECT count(*) FROM \"$S_TB\".payee a FULL JOIN \"$s\".payee b USING (payee_id)
        WHERE a IS NULL OR b IS NULL OR (a.name, a.account_number, a.routing_number, a.iban, a.country,
        a.currency, a.email, a.amount_limit, a.status, a.updated_at, a.tb_version, a.tb_id, a.tb_batch)
        IS DISTINCT FROM (b.name, b.account_number, b.routing_number, b.iban, b.country, b.currency,
        b.email, b.amount_limit, b.status, b.updated_at, b.tb_version, b.tb_id, b.tb_batch)")
    [ "$d" = 0 ] || echo "BROKEN: $s.payee differs from svc-persister's rows in ${d:-?} rows" >&2
done

# ---- Kafka -> Redis -----------------------------------------------------------
CFP=cf$TAG
cnt_cf() { redis-cli -h "$RH" -p "$RP" HLEN "$CFP#meta:payee" 2>/dev/null || echo 0; }
PYDB=${BENCH_PEER_REDIS_DB:-11}
redis-cli -h "$RH" -p "$RP" -n "$PYDB" FLUSHDB >/dev/null
cnt_pyr() { redis-cli -h "$RH" -p "$RP" -n "$PYDB" DBSIZE 2>/dev/null || echo 0; }
run_job cache_feeder cnt_cf "$BUILD/bin/svc-cache-feeder" --dataset payee --topic.prefix "$TAG." \
    --cache.prefix "$CFP" --group.id "$CFP" --audit.topic "audit_$TAG" --http.port 0 \
    --redis.host "$RH" --redis.port "$RP" --kafka.bootstrap.servers "$BROKER" --log.level info || exit 1
run_job python_redis cnt_pyr "$PY" "$HERE/peer.py" redis --broker "$BROKER" --proto "$ROOT/proto" \
    --topic "$TAG.payee.valid" --group "pyr$TAG" --host "$RH" --port "$RP" --db "$PYDB" --prefix "payee:" || exit 1

# ---- report -------------------------------------------------------------------
awk -F'\t' -v la="$(cut -d' ' -f1-3 /proc/loadavg)" '
    { l[NR] = $1; n[$1] = $2; w[$1] = $3; c[$1] = $4; sn[$1] = $5; sw[$1] = $6; sc[$1] = $7; f[$1] = $8; j[$1] = $9 }
    function line(k, what) {
        printf "  %-13s %-40s %8.0f rec/s %8.1f CPU-s/M   steady %8.0f rec/s %8.1f CPU-s/M   first record %.2f s%s\n",
               k, what, n[k] / w[k], c[k] * 1e6 / n[k], sn[k] / sw[k], sc[k] * 1e6 / sn[k], f[k],
               j[k] >= 0 ? sprintf(" (group joined %.2f s)", j[k]) : ""
    }
    function ratio(a, b) {
        printf "  %s / %s: rate %.2fx (start-up included), %.2fx steady; CPU per record %.2fx less\n",
               a, b, (n[a] / w[a]) / (n[b] / w[b]), (sn[a] / sw[a]) / (sn[b] / sw[b]), (c[b] / n[b]) / (c[a] / n[a])
    }
    END {
        printf "  (%d records each, start-up included: process start -> last record stored; steady: record %d -> last; load average at the end %s)\n", n[l[1]], WARM + 1, la
        print "  Kafka -> PostgreSQL"
        line("persister", "svc-persister (guarded merge, audit on)")
        line("connect", "Kafka Connect + Debezium JDBC (upsert)")
        line("python_pg", "Python COPY + guarded merge")
        ratio("persister", "connect"); ratio("persister", "python_pg")
        print "  Kafka -> Redis"
        line("cache_feeder", "svc-cache-feeder (guarded Lua, audit on)")
        line("python_redis", "Python pipelined SET (no guard)")
        ratio("cache_feeder", "python_redis")
        print "  less work than tributary: Debezium upserts without a version guard (an older event"
        print "  overwrites a newer row) and writes no audit; the Python Redis consumer SETs with no"
        print "  guard and no audit; the Python PostgreSQL consumer runs the same guarded merge, no audit."
        printf "  start-up (process start -> first record stored): svc-persister %.2f s of its %.2f s, svc-cache-feeder %.2f s of %.2f s;\n",
               f["persister"], w["persister"], f["cache_feeder"], w["cache_feeder"]
        printf "  Kafka Connect %.2f s (JVM, plugin scan, Hibernate). The local broker runs group.initial.rebalance.delay.ms=0;\n", f["connect"]
        print "  a broker on its default (3000) adds 3 s to every first join, ours and every peer alike."
    }' WARM="$WARM" "$RES" | tee "$OUT/peer-report.txt"

# ---- clean up -----------------------------------------------------------------
for s in "$S_TB" "$S_DBZ" "$S_PY"; do PGOPTIONS='-c client_min_messages=warning' psql "$PGC" -qc "DROP SCHEMA \"$s\" CASCADE"; done
redis-cli -h "$RH" -p "$RP" --scan --pattern "$CFP*" | xargs -r -n 1000 redis-cli -h "$RH" -p "$RP" UNLINK >/dev/null
redis-cli -h "$RH" -p "$RP" -n "$PYDB" FLUSHDB >/dev/null
"$BUILD/bench/bench_produce" delete --broker "$BROKER" "$TAG.payee.valid" "$TAG.payee.json" "audit_$TAG" \
    "$TAG.payee.dlq" >/dev/null 2>&1 || true
rm -rf "$CD"
exit 0
