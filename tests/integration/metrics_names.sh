#!/usr/bin/env bash
# tests/integration/metrics_names.sh — every metric the Grafana dashboards
# and the alert rules name (deploy/metric_names.py) exists in what the
# running services export.
#
# Starts the five services against the local stack (make stack-up), each
# with its configuration from deploy/compose/compose.yaml, sends a
# small payee batch through them (deploy/local/gen_payees.py: good rows,
# format errors and rule breaks, so the error metrics have samples too),
# waits until svc-recon has reconciled it, scrapes /metrics of each service
# and compares (deploy/metric_names.py compare). Metrics that come from
# elsewhere (node_exporter's broker disk, kube-state-metrics, Prometheus's
# own `up`) are listed in deploy/prometheus/external-metrics.txt and skipped
# by name; nothing else is.
#
# Env: TRIBUTARY_BUILD (build), TB_PROTO_DIR (proto/), STACK_* as stack.sh.
# Kept apart from every other test, as the fault suite does: its own consumer
# groups (seeded at the end of payee.raw/.retry/.valid with fault_check, so
# history is not read), audit topic, Redis key prefix and PostgreSQL schemas
# (the schemas are dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
build=${TRIBUTARY_BUILD:-build}
case "$build" in /*) ;; *) build=$repo/$build ;; esac
export TB_PROTO_DIR=${TB_PROTO_DIR:-$repo/proto}
export MONGOC_DISABLE_SHM=1
say() { printf 'metrics_names: %s\n' "$*"; }

eval "$(deploy/local/stack.sh env)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tributary-metrics.XXXXXX")
pids=()
run=tbm$(date +%s)$$
pgconn="host=127.0.0.1 port=${STACK_PG_PORT:-5432} dbname=tributary user=tributary"
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    PGPASSWORD=tributary psql "$pgconn" -qAtc \
        "DROP SCHEMA IF EXISTS ${run}_sink CASCADE; DROP SCHEMA IF EXISTS ${run}_recon CASCADE" \
        >/dev/null 2>&1 || true
    redis-cli -h "${STACK_REDIS_HOST:-127.0.0.1}" -p "${STACK_REDIS_PORT:-6379}" --scan --pattern "$run*" 2>/dev/null |
        xargs -r redis-cli -h "${STACK_REDIS_HOST:-127.0.0.1}" -p "${STACK_REDIS_PORT:-6379}" del >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

read -r p_ing p_val p_feed p_pers p_rec < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
printf 'tributary\n' >"$work/pg.password"
group=tributary-$run
audit=$run.audit
for g in "validator payee.raw payee.retry" "feeder payee.valid" "persister payee.valid"; do
    set -- $g
    name=$1
    shift
    ok=0
    for _ in $(seq 1 30); do
        "$build/tests/fault/fault_check" seed-group --brokers "$STACK_KAFKA_BOOTSTRAP" \
            --group "$group-$name" "$@" 2>>"$work/seed.log" && { ok=1; break; }
        sleep 1
    done
    [ "$ok" = 1 ] || { say "FAIL: seeding $group-$name: $(tail -n 1 "$work/seed.log")"; echo "0 passed, 1 failed"; exit 1; }
done

# Each service runs with its tributary.properties from
# deploy/compose/compose.yaml, so the compose file's settings are known to
# start the services; flags override what must differ here (the stack's
# addresses instead of the compose hosts, free ports, the isolation above).
python3 - "$work" <<'PY'
import sys, yaml
c = yaml.safe_load(open("deploy/compose/compose.yaml"))
for n in ("svc-ingest", "svc-validator", "svc-cache-feeder", "svc-persister", "svc-recon"):
    open("%s/%s.properties" % (sys.argv[1], n), "w").write(c["configs"][n + ".properties"]["content"])
PY
start() { # NAME PORT ARGS...  (librdkafka statistics every second: lag, rtt, queue gauges)
    local name=$1 port=$2
    shift 2
    "$build/bin/$name" --config "$work/$name.properties" --http.port "$port" --shutdown.grace.ms 5000 \
        --kafka.statistics.interval.ms 1000 "$@" \
        </dev/null >/dev/null 2>"$work/$name.log" &
    pids+=($!)
}
mkdir -p "$work/spool"
kb=(--kafka.bootstrap.servers "$STACK_KAFKA_BOOTSTRAP" --audit.topic "$audit")
redis=(--redis.host "${STACK_REDIS_HOST:-127.0.0.1}" --redis.port "${STACK_REDIS_PORT:-6379}")
start svc-ingest "$p_ing" serve --dataset payee --spool.dir "$work/spool" --spool.poll.ms 200 \
    "${kb[@]}"
start svc-validator "$p_val" --dataset payee --group.id "$group-validator" \
    --transactional.id "$group-validator" --commit.interval.ms 200 "${redis[@]}" "${kb[@]}"
start svc-cache-feeder "$p_feed" --dataset payee --group.id "$group-feeder" \
    --cache.prefix "$run" "${redis[@]}" "${kb[@]}"
start svc-persister "$p_pers" --dataset payee --sink postgres --create.tables \
    --pg.schema "${run}_sink" --group.id "$group-persister" --batch.timeout.ms 200 \
    --pg.conninfo "$pgconn" --pg.password_file "$work/pg.password" "${kb[@]}"
# svc-recon's API needs a token (deny by default): a viewer's, from the token tool
vtok=$("$build/bin/svc-recon" token add --id metrics-viewer --role viewer --file "$work/recon.tokens")
rauth=(-H "Authorization: Bearer $vtok")
start svc-recon "$p_rec" --group.id "$group-recon" --sinks cache-feeder,persister \
    --auth.tokens.file "$work/recon.tokens" \
    --state.schema "${run}_recon" --pg.conninfo "$pgconn" --pg.password_file "$work/pg.password" \
    "${kb[@]}"

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${@:3}" "http://127.0.0.1:$1$2" 2>/dev/null || true; } # PORT PATH [curl args]
failed=0
for sp in "svc-ingest:$p_ing" "svc-validator:$p_val" "svc-cache-feeder:$p_feed" \
          "svc-persister:$p_pers" "svc-recon:$p_rec"; do
    name=${sp%%:*} port=${sp##*:}
    for _ in $(seq 1 300); do
        [ "$(code "$port" /readyz)" = 200 ] && break
        sleep 0.2
    done
    if [ "$(code "$port" /readyz)" != 200 ]; then
        say "FAIL: $name never ready on :$port; its log:"
        tail -20 "$work/$name.log"
        failed=1
    fi
done
[ "$failed" -eq 0 ] || { echo "0 passed, 1 failed"; exit 1; }
say "five services ready (ports $p_ing $p_val $p_feed $p_pers $p_rec)"

python3 deploy/local/gen_payees.py --rows 300 --changes 30 --prefix "$run-" --seed 7 \
    "$work/payees.csv" "$work/changes.csv" >/dev/null
mv "$work/payees.csv" "$work/spool/$run.csv"

has() { # PORT FAMILY: the family is on /metrics
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | grep -q "^# TYPE $2 "
}
deadline=$((SECONDS + ${METRICS_WAIT_SECS:-120}))
batch=
recon_asked() { # svc-recon reconciles a batch (and sets its gauges) when asked for it
    [ -n "$batch" ] || batch=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["batch_id"])' \
        "$work/spool/done/$run.csv.summary.json" 2>/dev/null) || return 1
    [ "$(code "$p_rec" "/batches/$batch" "${rauth[@]}")" = 200 ]
}
e2e_count() { # PORT SINK: end-to-end latency observations of the sink for payee
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v s="$2" '
        $1 ~ "^tributary_end_to_end_latency_seconds_count[{]" && index($1, "sink=\"" s "\"") &&
        index($1, "dataset=\"payee\"") { n = $2 } END { print n + 0 }'
}
# What the wait is for: the file done, records written by both sinks,
# svc-recon asked for the batch (it sets its batch gauges then), and the
# librdkafka statistics gauges, which come with the first statistics after
# a client has connected.
waits=("svc-validator $p_val tributary_kafka_consumer_lag"
       "svc-validator $p_val tributary_kafka_broker_rtt_seconds"
       "svc-validator $p_val tributary_kafka_producer_queue_messages")
all_there() {
    local w n port fam
    [ -e "$work/spool/done/$run.csv.summary.json" ] || return 1
    [ "$(e2e_count "$p_feed" redis)" -gt 0 ] && [ "$(e2e_count "$p_pers" postgres)" -gt 0 ] || return 1
    recon_asked || return 1
    for w in "${waits[@]}"; do
        read -r n port fam <<<"$w"
        has "$port" "$fam" || return 1
    done
}
until all_there; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        say "FAIL: the batch did not get through within ${METRICS_WAIT_SECS:-120} s (spool: $(ls "$work/spool" "$work/spool"/* 2>/dev/null | tr '\n' ' '))"
        say "  end-to-end observations: cache-feeder $(e2e_count "$p_feed" redis), persister $(e2e_count "$p_pers" postgres)"
        say "  batch ${batch:-?}: GET /batches/${batch:-?} said $(curl -s --max-time 5 "${rauth[@]}" "http://127.0.0.1:$p_rec/batches/$batch" | head -c 300)"
        for w in "${waits[@]}"; do
            read -r n port fam <<<"$w"
            has "$port" "$fam" || { say "  $n has no $fam; its log:"; tail -5 "$work/$n.log"; }
        done
        echo "0 passed, 1 failed"
        exit 1
    fi
    sleep 0.5
done
# One more metrics period of the services (counters flush per batch).
sleep 2
for sp in "svc-ingest:$p_ing" "svc-validator:$p_val" "svc-cache-feeder:$p_feed" \
          "svc-persister:$p_pers" "svc-recon:$p_rec"; do
    curl -s --max-time 5 "http://127.0.0.1:${sp##*:}/metrics" >"$work/${sp%%:*}.metrics"
    say "${sp%%:*}: $(grep -c '^# TYPE' "$work/${sp%%:*}.metrics") metric families"
done
# The end-to-end latency has samples from both sinks (tb.ingest.ts to the write).
for f in "svc-cache-feeder:$p_feed:redis" "svc-persister:$p_pers:postgres"; do
    IFS=: read -r n port sink <<<"$f"
    say "$n: $(e2e_count "$port" "$sink") end-to-end latency observations (sink $sink)"
done
if python3 deploy/metric_names.py compare "$work"/*.metrics; then
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
    exit 1
fi
