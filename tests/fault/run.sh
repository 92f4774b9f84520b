#!/usr/bin/env bash
# tests/fault/run.sh — the whole pipeline under faults, judged by svc-recon
# and by an independent checker (issue 11).
#
# Every scenario runs svc-validator, svc-cache-feeder, svc-persister
# (PostgreSQL; MongoDB in the mongo scenario) and the svc-recon daemon as services, each under a supervisor
# that restarts it when it dies, and svc-ingest on a mixed batch file and then
# a change file (deploy/local/gen_payees.py: format errors, rule breaks,
# moved keys, deletes, out-of-order versions), while faults are injected.
# Afterwards it waits until:
#   - fault_check verify: every row of PostgreSQL (every document of MongoDB)
#     and every key in Redis equals
#     the final state fault_check computes from the two input files alone;
#   - svc-recon report --batch: clean, for the batch and for the change file;
#   - the committed records of each batch on payee.raw, payee.valid and
#     payee.dlq add up (raw = published, valid + dlq = raw, no id twice), and
#     the errors file holds one line per format error;
# and prints a table. Any condition not met within the deadline fails it.
#
# Scenarios:
#   kill9     kill -9 of each service once (ingest first, while it reads),
#             then of a random one every 0.5–2.5 s, at least 20 kills, each
#             service restarted
#   outages   ingest's errors folder read-only (then writable), a broker
#             restart, PostgreSQL stopped, Redis stopped, the validator
#             SIGSTOPped past max.poll.interval.ms and SIGCONTed
#   mongo     svc-persister on MongoDB (FerretDB): the MongoDB-compatible
#             server stopped mid-run while records arrive, then kill -9 of
#             random services (10 kills)
#   brokers3  3 brokers, RF 3, min.insync.replicas 2: one broker killed -9
#             mid-run and started again, then the outages of `outages`
#             (make test: a smaller batch, 5,000 rows, for its time)
#
# Usage: tests/fault/run.sh --quick | --soak [SCENARIO...]
#   --quick  sizes and outages for make test (about 5 minutes)
#   --soak   make fault: larger files, 30 s outages, 40 kills, 3 brokers
# Env: TRIBUTARY_BUILD (build), STACK_* ports as deploy/local/stack.sh, FAULT_SEED.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
build=${TRIBUTARY_BUILD:-build}
export TB_PROTO_DIR=${TB_PROTO_DIR:-$repo/proto}
check=$build/tests/fault/fault_check
stack=deploy/local/stack.sh
mode=quick
scenarios=()
for a in "$@"; do
    case $a in
    --quick) mode=quick ;;
    --soak) mode=soak ;;
    -*) echo "usage: $0 --quick|--soak [kill9|outages|mongo|brokers3...]" >&2; exit 64 ;;
    *) scenarios+=("$a") ;;
    esac
done
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(kill9 outages mongo brokers3)
fi
if [ "$mode" = quick ]; then
    ROWS=${FAULT_ROWS:-20000} CHANGES=${FAULT_CHANGES:-3000} KILLS=20 OUTAGE=6 DEADLINE=150
    # three brokers on two cores: the stack is remade twice around it
    ROWS_brokers3=${FAULT_ROWS:-5000} CHANGES_brokers3=${FAULT_CHANGES:-1000}
else
    ROWS=${FAULT_ROWS:-200000} CHANGES=${FAULT_CHANGES:-30000} KILLS=40 OUTAGE=30 DEADLINE=600
fi
SEED=${FAULT_SEED:-$RANDOM}
RANDOM=$SEED
# A broker restarted under load recovers every partition's log first: give
# stack.sh's start commands time for that (its default is 90 s).
export STACK_WAIT_SECS=${STACK_WAIT_SECS:-300}
kport=${STACK_KAFKA_PORT:-9092}
brokers=127.0.0.1:$kport
rport=${STACK_REDIS_PORT:-6379}
pgport=${STACK_PG_PORT:-5432}
pgconn="host=127.0.0.1 port=$pgport dbname=tributary user=tributary"
mongouri=mongodb://127.0.0.1:${STACK_MONGO_PORT:-27017}
# Poll interval short enough that a SIGSTOP outlives it (the group then
# fences the stopped member), session timeout below it.
POLL_MS=10000
run=$(date +%H%M%S)$$
work=${STACK_DIR:-$repo/.stack}/fault/$run
mkdir -p "$work"
printf 'tributary\n' >"$work/pg.password"
failures=0
summary=()

log() { printf '[fault %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---- supervised services ----------------------------------------------------

# supervise NAME CMD...: run CMD again whenever it exits, until $work/stop
# exists; its current pid in $sdir/NAME.pid, its starts in NAME.starts.
supervise() {
    local name=$1
    shift
    (
        while [ ! -e "$sdir/stop" ]; do
            "$@" >>"$sdir/$name.log" 2>&1 &
            echo $! >"$sdir/$name.pid"
            echo x >>"$sdir/$name.starts"
            { wait $!; } 2>/dev/null
            echo "exit $? at $(date +%T.%N)" >>"$sdir/$name.exits"
            [ -e "$sdir/stop" ] || sleep 0.3
        done
    ) &
    echo $! >"$sdir/$name.sup"
}

svc_pid() { cat "$sdir/$1.pid" 2>/dev/null; }

seed() { # GROUP TOPIC...: fault_check seed-group, again while a new cluster settles
    local i
    for i in $(seq 1 30); do
        "$check" seed-group --brokers "$brokers" --group "$@" 2>>"$sdir/seed.log" && return 0
        sleep 1
    done
    log "FAIL: seed-group $1: $(tail -n 1 "$sdir/seed.log")"
    return 1
}

start_services() {
    local common=(--instance.id "fault-$scn" --audit.topic "$audit" --startup.timeout.ms 300000
                  --shutdown.grace.ms 5000 --log.level warn)
    local poll=(--kafka.max.poll.interval.ms "$POLL_MS" --kafka.session.timeout.ms 6000)
    [ "$nodes" = 3 ] && common+=(--kafka.bootstrap.servers "$brokers")
    seed "$grp-validator" payee.raw payee.retry || return 1
    seed "$grp-feeder" payee.valid || return 1
    seed "$grp-persister" payee.valid || return 1
    supervise validator "$build/bin/svc-validator" "${common[@]}" "${poll[@]}" --dataset payee \
        --http.port 18082 --group.id "$grp-validator" --transactional.id "$grp-validator" \
        --commit.interval.ms 200
    supervise feeder "$build/bin/svc-cache-feeder" "${common[@]}" "${poll[@]}" --dataset payee \
        --http.port 18083 --group.id "$grp-feeder" --cache.prefix "$cprefix"
    local store=(--sink postgres --pg.schema "$schema" --pg.conninfo "$pgconn"
                 --pg.password_file "$work/pg.password")
    # FerretDB 1.24 has no Decimal128: decimals stored as their exact text
    [ "$sink" = mongodb ] && store=(--sink mongodb --mongodb.uri "$mongouri"
                                    --mongodb.database "$schema" --mongodb.decimal128=false)
    supervise persister "$build/bin/svc-persister" "${common[@]}" "${poll[@]}" --dataset payee \
        --http.port 18084 --group.id "$grp-persister" "${store[@]}" --create.tables \
        --batch.timeout.ms 300
    supervise recon "$build/bin/svc-recon" "${common[@]}" --http.port 18085 \
        --group.id "$grp-recon" --state.schema "$rschema" --sinks cache-feeder,persister \
        --pg.conninfo "$pgconn" --pg.password_file "$work/pg.password"
}

stop_services() {
    touch "$sdir/stop"
    local n pid
    # a scenario that failed may leave svc-ingest running: it must not publish
    # into the next scenario's topics
    pid=$(cat "$sdir/ingest.loop" 2>/dev/null)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    pid=$(svc_pid ingest)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    for n in validator feeder persister recon; do
        pid=$(svc_pid $n)
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for n in validator feeder persister recon; do
        pid=$(cat "$sdir/$n.sup" 2>/dev/null)
        [ -n "$pid" ] && wait "$pid" 2>/dev/null
    done
}

# ingest_file FILE BATCH [ERRORS]: svc-ingest until the file is done (exit 0
# or 65), resuming after every kill or outage (a run with the broker away
# exits 69; a kill -9 137).
ingest_file() {
    local file=$1 batch=$2 errors=${3:-$1.errors.jsonl} rc tries=0
    local args=(--dataset payee --batch.id "$batch" --audit.topic "$audit" --http.port 0
                --errors "$errors" --checkpoint.records 500 --startup.timeout.ms 300000
                --broker.timeout.ms 60000 --progress never --log.level warn)
    [ "$nodes" = 3 ] && args+=(--kafka.bootstrap.servers "$brokers")
    while :; do
        "$build/bin/svc-ingest" "${args[@]}" "$file" >>"$sdir/ingest.log" 2>&1 &
        echo $! >"$sdir/ingest.pid"
        { wait $!; } 2>/dev/null
        rc=$?
        echo "ingest $batch exit $rc at $(date +%T.%N)" >>"$sdir/ingest.exits"
        case $rc in 0 | 65) return 0 ;; esac
        tries=$((tries + 1))
        [ $tries -lt 200 ] || return 1
        sleep 0.3
    done
}

ingest_all() {
    ingest_file "$bfile" "$bbatch" && ingest_file "$cfile" "$cbatch"
    echo $? >"$sdir/ingest.done"
    rm -f "$sdir/ingest.pid"
}

# ---- faults -----------------------------------------------------------------

declare -A faults
fault() { faults[$1]=$(( ${faults[$1]:-0} + 1 )); }

kill9_loop() { # kill -9 random services: KILLS kills (the soak: also until ingest is done)
    local kills=0 victims=(validator feeder persister recon ingest) v pid i
    # Each service once first, ingest while it reads (it runs only while a
    # file goes in: left to chance, a run may never meet it), then at random.
    for v in ingest validator feeder persister recon; do
        for i in $(seq 1 50); do
            pid=$(svc_pid "$v")
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && break
            pid=
            sleep 0.1
        done
        [ -n "$pid" ] || { log "kill -9 $v: not running (ingest done?)"; continue; }
        sleep "0.$((RANDOM % 10))"
        kill -9 "$pid" 2>/dev/null || continue
        kills=$((kills + 1))
        fault "kill -9 $v"
    done
    while [ $kills -lt "$KILLS" ] || { [ "$mode" = soak ] && [ ! -e "$sdir/ingest.done" ]; }; do
        sleep "0.$((RANDOM % 10))"
        sleep $((RANDOM % 2 + 0))
        v=${victims[RANDOM % ${#victims[@]}]}
        pid=$(svc_pid "$v")
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
        kill -9 "$pid" 2>/dev/null || continue
        kills=$((kills + 1))
        fault "kill -9 $v"
        [ $kills -ge $((KILLS * 3)) ] && break
    done
}

readonly_errors() { # ingest with a read-only errors folder, then writable
    local ro=$work/ro-$scn out rc
    mkdir -p "$ro"
    out=$(unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" &&
              exec "$2" --dataset payee --batch.id "$3" --audit.topic "$4" --http.port 0 \
                   --errors "$1/errors.jsonl" --progress never --log.level warn "$5"' \
              sh "$ro" "$build/bin/svc-ingest" "$bbatch" "$audit" "$bfile" 2>&1)
    rc=$?
    fault "errors folder read-only (ingest exit $rc)"
    echo "$out" >>"$sdir/ingest.log"
    if [ $rc -eq 0 ] || [ $rc -eq 65 ]; then
        log "FAIL: ingest finished (exit $rc) with its errors file on a read-only folder"
        return 1
    fi
    if ! grep -qi "errors" <<<"$out"; then
        log "FAIL: ingest's error names no errors file: $out"
        return 1
    fi
    log "read-only errors folder: ingest exit $rc: $(grep -io '"msg":"[^"]*"' <<<"$out" | tail -n 1)"
}

outage() { # NAME STOP-CMD START-CMD
    local name=$1 t0=$SECONDS
    log "$name stopped for ${OUTAGE}s"
    eval "$2" >>"$sdir/stack.log" 2>&1
    sleep "$OUTAGE"
    eval "$3" >>"$sdir/stack.log" 2>&1 || { log "FAIL: $name did not come back"; return 1; }
    fault "$name away $((SECONDS - t0))s"
}

# outages_loop: one chain, so that every outage meets records in flight:
# the batch is ingested across a broker restart; then the validator is
# SIGSTOPped while the change file goes in, PostgreSQL and Redis are stopped
# while it is stopped, and its SIGCONT (a zombie: its group has fenced it,
# its late commit must be refused) releases the change records towards
# sinks that are down. With 3 brokers: one broker killed during the batch.
outages_loop() {
    # make test: a clean restart; the soak: the broker killed -9 (its restart
    # then takes a minute or more: log recovery, and svc-ingest resumes late)
    local pid kafka_stop="$stack kafka-stop 1"
    [ "$mode" = soak ] && kafka_stop="$stack kafka-stop 1 --kill"
    ingest_file "$bfile" "$bbatch" >/dev/null &
    local ing=$!
    echo $ing >"$sdir/ingest.loop"
    sleep 1
    if [ "$nodes" = 3 ]; then
        outage "broker 2 (kill -9)" "$stack kafka-stop 2 --kill" "$stack kafka-start 2" || return 1
    else
        outage "broker 1 (restart${kafka_stop#*1})" "$kafka_stop" "$stack kafka-start 1" || return 1
    fi
    wait $ing || return 1
    pid=$(svc_pid validator)
    ingest_file "$cfile" "$cbatch" >/dev/null &
    ing=$!
    echo $ing >"$sdir/ingest.loop"
    sleep 0.5
    kill -STOP "$pid"
    local stop_s=$(( POLL_MS / 1000 + 6 ))
    log "validator SIGSTOPped (max.poll.interval.ms $POLL_MS); PostgreSQL and Redis stopped"
    $stack pg-stop >>"$sdir/stack.log" 2>&1
    $stack redis-stop >>"$sdir/stack.log" 2>&1
    local t0=$SECONDS
    wait $ing || return 1
    sleep $(( stop_s > SECONDS - t0 ? stop_s - (SECONDS - t0) : 0 ))
    kill -CONT "$pid"
    fault "SIGSTOP validator ${stop_s}s+, SIGCONT"
    log "validator SIGCONTed"
    sleep $(( OUTAGE > SECONDS - t0 ? OUTAGE - (SECONDS - t0) : 0 ))
    $stack pg-start >>"$sdir/stack.log" 2>&1 || { log "FAIL: PostgreSQL did not come back"; return 1; }
    fault "PostgreSQL stopped $((SECONDS - t0))s"
    sleep 3
    $stack redis-start >>"$sdir/stack.log" 2>&1 || { log "FAIL: Redis did not come back"; return 1; }
    fault "Redis stopped $((SECONDS - t0))s"
    echo 0 >"$sdir/ingest.done"
}

# ---- checking ---------------------------------------------------------------

kv() { sed -nE "s/.*(^| )$1=([0-9-]+).*/\2/p" <<<"$2"; }

recon_report() { # BATCH: exit code; JSON in $sdir/recon-BATCH.json
    "$build/bin/svc-recon" report --batch "$1" --json --audit.topic "$audit" \
        --state.schema "$rschema" --sinks cache-feeder,persister --pg.conninfo "$pgconn" \
        --pg.password_file "$work/pg.password" --log.level warn \
        $([ "$nodes" = 3 ] && echo --kafka.bootstrap.servers "$brokers") \
        >"$sdir/recon-$1.json" 2>>"$sdir/recon-report.log"
}

converge() { # wait until the sinks equal the model and recon is clean
    local deadline=$((SECONDS + DEADLINE)) v rb rc
    local store=(--pg "$pgconn password=tributary" --pg-schema "$schema")
    [ "$sink" = mongodb ] && store=(--mongo "$mongouri" --mongo-db "$schema")
    while :; do
        v=$("$check" verify --batch "$bfile" --change "$cfile" "${store[@]}" \
                --redis-port "$rport" --cache-prefix "$cprefix" 2>&1)
        vrc=$?
        rb=1 rc=1
        if [ $vrc -eq 0 ]; then
            recon_report "$bbatch"; rb=$?
            recon_report "$cbatch"; rc=$?
        fi
        [ $vrc -eq 0 ] && [ $rb -eq 0 ] && [ $rc -eq 0 ] && break
        if [ $SECONDS -ge $deadline ]; then
            log "FAIL: not converged in ${DEADLINE}s (verify exit $vrc, recon batch $rb, change $rc)"
            echo "$v" | head -n 25
            return 1
        fi
        sleep 3
    done
    verify=$v
    return 0
}

topic_counts() { # prints "T records distinct" for the batch on each topic
    local t b out
    for b in "$bbatch" "$cbatch"; do
        for t in payee.raw payee.valid payee.dlq; do
            out=$("$check" count --brokers "$brokers" --topic "$t" --batch "$b")
            echo "$b $t $(kv records "$out") $(kv distinct "$out")"
        done
    done
}

# ---- one scenario -----------------------------------------------------------

scenario() {
    scn=$1
    sdir=$work/$scn
    mkdir -p "$sdir"
    nodes=1 sink=postgres
    [ "$scn" = mongo ] && sink=mongodb
    if [ "$scn" = brokers3 ]; then
        nodes=3
        brokers=127.0.0.1:$kport,127.0.0.1:$((kport + 2)),127.0.0.1:$((kport + 4))
        $stack down >>"$sdir/stack.log" 2>&1
        $stack up --kafka-nodes 3 >>"$sdir/stack.log" 2>&1 || { log "FAIL: 3 brokers"; return 1; }
    fi
    unset faults
    declare -gA faults
    local tag=f${run}${scn:0:2}
    audit=fault.audit.$tag grp=tributary-fault-$tag schema=fault_$tag rschema=fault_recon_$tag
    cprefix=$tag bbatch=fault-$tag-batch cbatch=fault-$tag-change
    bfile=$sdir/payees.csv cfile=$sdir/changes.csv
    local rows=$ROWS changes=$CHANGES
    if [ "$mode" = quick ] && [ "$scn" = brokers3 ]; then rows=$ROWS_brokers3 changes=$CHANGES_brokers3; fi
    python3 deploy/local/gen_payees.py --rows "$rows" --changes "$changes" \
        --prefix "${tag^^}-" --seed "$SEED" --bad-share 0.01 "$bfile" "$cfile" || return 1
    log "scenario $scn: $rows batch rows, $changes changed keys, seed $SEED, logs $sdir"
    local t0=$SECONDS ok=1
    start_services || { log "FAIL: services"; return 1; }
    case $scn in
    kill9)
        ingest_all &
        echo $! >"$sdir/ingest.loop"
        kill9_loop
        ;;
    outages | brokers3)
        readonly_errors || ok=0
        outages_loop || { ok=0; echo 1 >"$sdir/ingest.done"; }
        ;;
    mongo)
        # the server away while the batch arrives (the persister holds its
        # batch and retries), then kills while it catches up
        ingest_all &
        echo $! >"$sdir/ingest.loop"
        sleep 1
        outage "FerretDB (MongoDB wire)" "$stack ferretdb-stop" "$stack ferretdb-start" || ok=0
        KILLS=10 kill9_loop
        ;;
    esac
    wait_ingest || ok=0
    converge || ok=0
    local secs=$((SECONDS - t0))
    stop_services
    report_table "$secs" "$ok" || ok=0
    if [ "$scn" = brokers3 ]; then
        $stack down >>"$sdir/stack.log" 2>&1
        $stack up >>"$sdir/stack.log" 2>&1
        brokers=127.0.0.1:$kport
    fi
    [ "$ok" = 1 ]
}

wait_ingest() {
    local deadline=$((SECONDS + DEADLINE))
    while [ ! -e "$sdir/ingest.done" ]; do
        [ $SECONDS -lt $deadline ] || { log "FAIL: ingest not done in ${DEADLINE}s"; return 1; }
        sleep 1
    done
    [ "$(cat "$sdir/ingest.done")" = 0 ] || { log "FAIL: ingest gave up"; return 1; }
}

report_table() {
    local secs=$1 line f b t n d
    local -A cnt
    while read -r b t n d; do
        cnt[$b.$t]=$n
        cnt[$b.$t.dup]=$(( ${n:-0} - ${d:-0} ))
    done < <(topic_counts)
    local eb ec
    eb=$(grep -c . "$bfile.errors.jsonl" 2>/dev/null || echo 0)
    ec=$(grep -c . "$cfile.errors.jsonl" 2>/dev/null || echo 0)
    echo
    echo "== fault scenario $scn ($secs s) =="
    echo "faults injected:"
    for f in "${!faults[@]}"; do printf '  %-44s %s\n' "$f" "${faults[$f]}"; done | sort
    printf '  %-44s %s\n' "restarts (validator feeder persister recon)" \
        "$(for s in validator feeder persister recon; do printf '%s ' $(( $(grep -c . "$sdir/$s.starts") - 1 )); done)"
    printf '%-28s %12s %12s\n' "" "batch" "change"
    row() { printf '%-28s %12s %12s\n' "$1" "$2" "$3"; }
    row "records in (CSV records)" "$(kv batch_records "$verify")" "$(kv change_records "$verify")"
    row "format errors (expected)" "$(kv batch_format "$verify")" "$(kv change_format "$verify")"
    row "  in the errors file" "$eb" "$ec"
    row "payee.raw (expected)" "$(kv batch_published "$verify")" "$(kv change_published "$verify")"
    row "  on payee.raw" "${cnt[$bbatch.payee.raw]}" "${cnt[$cbatch.payee.raw]}"
    row "payee.valid (expected)" "$(kv batch_valid "$verify")" "$(kv change_valid "$verify")"
    row "  on payee.valid" "${cnt[$bbatch.payee.valid]}" "${cnt[$cbatch.payee.valid]}"
    row "payee.dlq (expected)" "$(kv batch_rules "$verify")" "$(kv change_rules "$verify")"
    row "  on payee.dlq" "${cnt[$bbatch.payee.dlq]}" "${cnt[$cbatch.payee.dlq]}"
    row "duplicated on topics" "$(( ${cnt[$bbatch.payee.raw.dup]} + ${cnt[$bbatch.payee.valid.dup]} + ${cnt[$bbatch.payee.dlq.dup]} ))" \
        "$(( ${cnt[$cbatch.payee.raw.dup]} + ${cnt[$cbatch.payee.valid.dup]} + ${cnt[$cbatch.payee.dlq.dup]} ))"
    row "recon verdict" "$(jq -r 'if .clean then "clean" else "NOT clean" end' "$sdir/recon-$bbatch.json" 2>/dev/null)" \
        "$(jq -r 'if .clean then "clean" else "NOT clean" end' "$sdir/recon-$cbatch.json" 2>/dev/null)"
    printf '%-28s %12s %12s %8s %8s %8s\n' "final state" "expected" "stored" "lost" "altered" "unexpct"
    local what="PostgreSQL rows"
    [ "$sink" = mongodb ] && what="MongoDB documents"
    printf '%-28s %12s %12s %8s %8s %8s\n' "$what" "$(kv expected_rows "$verify")" \
        "$(kv pg_rows "$verify")" "$(kv pg_lost "$verify")" "$(kv pg_altered "$verify")" "$(kv pg_unexpected "$verify")"
    printf '%-28s %12s %12s %8s %8s %8s\n' "Redis keys" "$(kv expected_rows "$verify")" \
        "$(kv redis_keys "$verify")" "$(kv redis_lost "$verify")" "$(kv redis_altered "$verify")" "$(kv redis_unexpected "$verify")"
    # the figures must add up, not only be printed
    local bad=0
    for b in batch change; do
        local bb=$bbatch
        [ $b = change ] && bb=$cbatch
        [ "${cnt[$bb.payee.raw]}" = "$(kv ${b}_published "$verify")" ] || bad=1
        [ "${cnt[$bb.payee.valid]}" = "$(kv ${b}_valid "$verify")" ] || bad=1
        [ "${cnt[$bb.payee.dlq]}" = "$(kv ${b}_rules "$verify")" ] || bad=1
        [ $(( ${cnt[$bb.payee.raw.dup]} + ${cnt[$bb.payee.valid.dup]} + ${cnt[$bb.payee.dlq.dup]} )) = 0 ] || bad=1
    done
    [ "$eb" = "$(kv batch_format "$verify")" ] && [ "$ec" = "$(kv change_format "$verify")" ] || bad=1
    if [ $bad = 1 ] || [ "$2" != 1 ]; then
        echo "verdict: FAIL (logs: $sdir)"
        summary+=("$scn FAIL")
        return 1
    fi
    echo "verdict: PASS — lost 0, duplicated 0, recon clean"
    summary+=("$scn ok (${secs}s)")
}

for s in "${scenarios[@]}"; do
    scenario "$s" || failures=$((failures + 1))
done
echo
echo "fault suite ($mode): ${summary[*]}"
[ $failures -eq 0 ] || { echo "fault suite: $failures scenario(s) failed (logs: $work)"; exit 1; }
