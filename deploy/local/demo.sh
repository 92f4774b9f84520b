#!/usr/bin/env bash
# The demo on the local stack (make demo): a realistic payee batch of
# DEMO_ROWS rows (1,000,000 by default: a small share of format errors and
# rule breaks; names with commas, quotes, line breaks and non-Latin scripts)
# and a change file (updates, moved keys, deletes, out-of-order versions),
# made by deploy/local/gen_payees.py, through all five services at once:
# svc-validator, svc-cache-feeder, svc-persister (PostgreSQL) and the
# svc-recon daemon as services, svc-ingest on the batch and then the change
# file. One progress line per stage while it runs, then one summary (rows per
# stage, throughput, p50/p99 latency from line read to row committed, recon's
# verdict for the batch and the change file). The stack and the services
# stay up; the summary ends with where to look and the one command that
# stops everything:
#
#   deploy/local/demo.sh stop        (SIGTERM to the services, then stack.sh down)
#
# Usage: deploy/local/demo.sh [BUILD_DIR]   (make demo does deps, stack-up, build first)
# Env: DEMO_ROWS (1000000), DEMO_CHANGES (20000), STACK_* ports as stack.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
demo_root=${STACK_DIR:-$PWD/.stack}/demo
pidfile=$demo_root/services.pids

if [ "${1:-}" = stop ]; then
    if [ -f "$pidfile" ]; then
        while read -r pid name; do
            kill -TERM "$pid" 2>/dev/null && echo "stopping $name (pid $pid)"
        done <"$pidfile"
        sleep 2
        rm -f "$pidfile"
    fi
    exec deploy/local/stack.sh down
fi

build=${1:-build}
export TB_PROTO_DIR="$PWD/proto"
rows=${DEMO_ROWS:-1000000}
changes=${DEMO_CHANGES:-20000}
run=$(date +%Y%m%d%H%M%S)
work=$demo_root/$run
mkdir -p "$work"
kport=${STACK_KAFKA_PORT:-9092}
pgconn="host=127.0.0.1 port=${STACK_PG_PORT:-5432} dbname=tributary user=tributary"
pgpass="$work/pg.password" # the local stack's development password, as a secret file
printf 'tributary\n' >"$pgpass"
psqlc() { PGPASSWORD=tributary psql "$pgconn" -Atc "$1" 2>/dev/null; }
bbatch=demo-$run-batch cbatch=demo-$run-change
rschema=tributary_recon # the daemon's default state schema
t_start=$SECONDS

# ---- the input -----------------------------------------------------------------
t0=$SECONDS
echo "generating $rows payees and $changes changed keys (deploy/local/gen_payees.py) ..."
python3 deploy/local/gen_payees.py --rows "$rows" --changes "$changes" --prefix "D$run-" \
    --seed "${run: -6}" "$work/payees.csv" "$work/changes.csv"
t_gen=$((SECONDS - t0))
echo "  $work/payees.csv ($(du -h "$work/payees.csv" | cut -f1)), $work/changes.csv, ${t_gen}s"

# ---- the services, left running ------------------------------------------------
if [ -f "$pidfile" ]; then # a previous demo's services: stopped, the stack kept
    while read -r pid _; do kill -TERM "$pid" 2>/dev/null || true; done <"$pidfile"
    sleep 2
fi
: >"$pidfile"
start() { # name port args...
    local name=$1 port=$2
    shift 2
    setsid "$build/bin/$name" --http.port "$port" --shutdown.grace.ms 10000 "$@" \
        </dev/null >/dev/null 2>"$work/$name.log" &
    echo "$! $name" >>"$pidfile"
}
start svc-validator 8082 --dataset payee --commit.interval.ms 500 --batch.max 5000
start svc-cache-feeder 8083 --dataset payee
start svc-persister 8084 --dataset payee --sink postgres --create.tables --batch.timeout.ms 500 \
    --batch.size 5000 --pg.conninfo "$pgconn" --pg.password_file "$pgpass"
# svc-recon's API refuses every caller without a token file (deny by
# default): one viewer and one operator token, each printed once by
# `svc-recon token add` (only their hashes are kept in the file)
tokens="$work/recon.tokens"
viewer_token=$("$build/bin/svc-recon" token add --id demo-viewer --role viewer --file "$tokens")
operator_token=$("$build/bin/svc-recon" token add --id demo-operator --role operator --file "$tokens")
printf '%s\n' "$viewer_token" >"$work/viewer.token"
printf '%s\n' "$operator_token" >"$work/operator.token"
chmod 600 "$work/viewer.token" "$work/operator.token"
start svc-recon 8085 --sinks cache-feeder,persister --pg.conninfo "$pgconn" \
    --pg.password_file "$pgpass" --auth.tokens.file "$tokens"
for port in 8082 8083 8084 8085; do
    for _ in $(seq 1 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
        sleep 0.2
    done
done
echo "services ready: validator :8082, cache-feeder :8083, persister :8084, recon :8085"

# ---- progress ---------------------------------------------------------------------
metric() { # PORT NAME [LABEL-FILTER]: the sum of a metric's samples
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v n="$2" -v f="${3:-}" '$1 ~ "^"n"({|$)" && index($1, f) {s += $NF} END {printf "%d", s}'
}
pg_rows() { psqlc "SELECT count(*) FROM payee WHERE payee_id LIKE 'D$run-%'" || echo 0; }
tty=0
[ -t 1 ] && tty=1
progress() { # one line per stage
    local lines=("ingest       lines read $(metric 8081 tributary_ingest_lines_read_total) published $(metric 8081 tributary_ingest_records_published_total)"
                 "validator    records    $(metric 8082 tributary_validator_records_total)"
                 "cache-feeder operations $(metric 8083 tributary_cache_operations_total)"
                 "persister    rows       $(metric 8084 tributary_persister_rows_total)   (payee rows of this run in PostgreSQL: $(pg_rows))"
                 "recon        audit events applied $(metric 8085 tributary_recon_audit_events_total)")
    if [ $tty = 1 ]; then
        [ "${drawn:-0}" = 1 ] && printf '\033[5A'
        printf '\033[K  %s\n' "${lines[@]}"
        drawn=1
    else
        printf '  [%3ds] %s\n' $((SECONDS - t_start)) "${lines[*]}"
    fi
}

ingest() { # FILE BATCH: one-shot svc-ingest on port 8081 (its /metrics while it runs)
    "$build/bin/svc-ingest" --dataset payee --http.port 8081 --batch.id "$2" --progress never \
        --summary.json "$1" >"$work/$(basename "$1").summary.json" 2>>"$work/svc-ingest.log" || true
}

echo
echo "svc-ingest: $work/payees.csv, then $work/changes.csv"
t_ingest=$SECONDS
( ingest "$work/payees.csv" "$bbatch"; ingest "$work/changes.csv" "$cbatch" ) &
ingest_pid=$!
recon_clean() { # BATCH: svc-recon report, exit 0 when the batch is clean
    "$build/bin/svc-recon" report --batch "$1" --json --sinks cache-feeder,persister \
        --pg.conninfo "$pgconn" --pg.password_file "$pgpass" --log.level warn \
        >"$work/recon-$1.json" 2>>"$work/svc-recon-report.log"
}
deadline=$((SECONDS + ${DEMO_TIMEOUT:-900}))
done_ingest=0
while [ $SECONDS -lt $deadline ]; do
    progress
    if [ $done_ingest = 0 ] && ! kill -0 $ingest_pid 2>/dev/null; then
        done_ingest=1
        t_ingested=$SECONDS
    fi
    if [ $done_ingest = 1 ]; then
        # everything the validator called valid is in PostgreSQL and in Redis
        # when the recon daemon's state says so for both batches
        if recon_clean "$bbatch" && recon_clean "$cbatch"; then break; fi
    fi
    sleep 2
done
progress
t_done=$SECONDS

# ---- the summary --------------------------------------------------------------------
tot() { jq -r "[.datasets[].totals$2] | add // 0" "$work/recon-$1.json" 2>/dev/null || echo "?"; }
verdict() { jq -r 'if .clean then "clean" else "NOT clean: " + (.counts | tostring) end' \
                "$work/recon-$1.json" 2>/dev/null || echo "no report"; }
# Latency from line read to row committed: the persister's audit event of a
# record (emitted after its database commit) minus ingest's (emitted as the
# line is read and published), from recon's state (table events,
# docs/svc-recon.md), over every record of both batches.
lat=$(psqlc "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.ts_ms - i.ts_ms))::bigint || ' ' ||
                    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY p.ts_ms - i.ts_ms))::bigint
             FROM $rschema.events i JOIN $rschema.events p ON p.id = i.id AND p.batch_id = i.batch_id
             WHERE i.batch_id IN ('$bbatch', '$cbatch') AND p.batch_id IN ('$bbatch', '$cbatch')
               AND i.stage = 'ingest' AND i.outcome = 'published' AND p.stage = 'persister'" || true)
secs=$((t_done - t_ingest))
[ $secs -gt 0 ] || secs=1
echo
echo "==================== tributary demo: summary ===================="
printf '%-34s %12s %12s\n' "" "batch" "change file"
row() { printf '%-34s %12s %12s\n' "$1" "$(tot "$bbatch" "$2")" "$(tot "$cbatch" "$2")"; }
row "lines read (ingest)" .lines
row "format errors (errors file)" .format_errors
row "published to payee.raw" .published
row "valid (validator)" .valid
row "invalid, to payee.dlq" .invalid
row "cached in Redis (cache-feeder)" '.sinks["cache-feeder"].handled'
row "written to PostgreSQL (persister)" '.sinks.persister.handled'
printf '%-34s %12s %12s\n' "svc-recon verdict" "$(verdict "$bbatch")" "$(verdict "$cbatch")"
echo
total=$(( $(tot "$bbatch" .lines) + $(tot "$cbatch" .lines) ))
printf 'throughput: %d lines in %d s from the first line read to recon clean = %d lines/s end to end\n' \
    "$total" "$secs" $((total / secs))
printf '            (ingest alone: %d s for both files)\n' $((t_ingested - t_ingest))
echo "latency line read -> row committed in PostgreSQL: p50 ${lat%% *} ms, p99 ${lat##* } ms"
echo "wall time: generator ${t_gen}s, pipeline ${secs}s, whole script $((SECONDS - t_start))s"

# ---- one record tampered with behind the pipeline's back, named by recon -----------
# A payee of the batch that the change file did not touch is deleted from
# PostgreSQL by hand; svc-recon report --verify-sinks reads the table itself
# (not the services' audit events) and names it: missing at the postgres sink.
victim=$(psqlc "SELECT key FROM $rschema.events WHERE batch_id = '$bbatch' AND stage = 'persister'
                  AND key NOT IN (SELECT key FROM $rschema.events WHERE batch_id = '$cbatch'
                                  AND key IS NOT NULL)
                  AND EXISTS (SELECT 1 FROM payee p WHERE p.payee_id = key)
                ORDER BY key LIMIT 1" || true)
echo
if [ -n "$victim" ] && [ "$(psqlc "WITH d AS (DELETE FROM payee WHERE payee_id = '$victim' RETURNING 1)
                                  SELECT count(*) FROM d")" = 1 ]; then
    echo "tampered: payee $victim deleted from PostgreSQL by hand (DELETE FROM payee ...)"
    # exit 1 is the expected answer here (not clean): never the script's end
    vrc=0
    "$build/bin/svc-recon" report --batch "$bbatch" --json --verify-sinks \
        --sinks cache-feeder,persister --pg.conninfo "$pgconn" --pg.password_file "$pgpass" \
        --verify.pg.password_file "$pgpass" --log.level warn \
        >"$work/recon-tampered.json" 2>>"$work/svc-recon-report.log" || vrc=$?
    echo "svc-recon report --batch $bbatch --verify-sinks: exit $vrc ($(jq -r 'if .clean then "clean" else "NOT clean" end' "$work/recon-tampered.json" 2>/dev/null))"
    jq -r --arg k "$victim" '.discrepancies[]? | select(.key == $k) |
              "  named: \(.verdict) at \(.sink // .stage): key \(.key) (id \(.id))"' \
        "$work/recon-tampered.json" 2>/dev/null
    others=$(jq -r --arg k "$victim" '[.discrepancies[]? | select(.key != $k)] | length' \
                "$work/recon-tampered.json" 2>/dev/null)
    # the keys the change file moved away are expected absent (AuditEvent v3
    # old_key): only the tampered row should be named
    if [ "${others:-0}" -gt 0 ]; then
        echo "  also named: $others other record(s): see $work/recon-tampered.json"
    fi
    echo "  (the row stays deleted: the report names it until the record is written again)"
else
    echo "tampered: no payee of the batch alone found to delete (skipped)"
fi

echo
echo "the services keep running:"
echo "  metrics  http://127.0.0.1:8082/metrics (validator)  :8083 (cache-feeder)  :8084 (persister)  :8085 (recon)"
echo "  recon    dashboard (viewer token): http://127.0.0.1:8085/dashboard#token=$viewer_token&batch=$bbatch"
echo "           API: curl -H \"Authorization: Bearer \$(cat $work/viewer.token)\" http://127.0.0.1:8085/batches/$bbatch"
echo "           operator token (reconcile, replay): $work/operator.token"
echo "           (svc-recon report --batch ID for the same on the command line)"
echo "  a payee  $build/bin/svc-cache-feeder get --dataset payee D$run-00000001"
echo "  data     PostgreSQL table payee (payee_id LIKE 'D$run-%'), Redis tb:payee:D$run-*"
echo "  logs     $work"
echo "stop everything (services and stack):  deploy/local/demo.sh stop"
