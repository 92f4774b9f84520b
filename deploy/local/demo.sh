#!/usr/bin/env bash
# The demo on the local stack: a sample payee file through the whole
# pipeline. svc-validator, svc-cache-feeder and svc-persister run as
# services; svc-ingest publishes the file; then the script shows where every
# line went — the errors file, .valid, .dlq, Redis, PostgreSQL — reads one
# payee back the way a client would, ends with svc-recon's verdict on the
# batch, and stops the services with SIGTERM.
#
# Usage: deploy/local/demo.sh [BUILD_DIR]   (make demo does deps, stack-up, build first)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
export TB_PROTO_DIR="$PWD/proto"
work=${STACK_DIR:-$PWD/.stack}/demo
mkdir -p "$work"
run=$(date +%Y%m%d%H%M%S)
file="$work/payees-$run.csv"
rows=1000
pgconn="host=127.0.0.1 port=${STACK_PG_PORT:-5432} user=tributary password=tributary dbname=tributary"
# The local stack's development password, handed over as services take
# secrets: from a file.
pgpass="$work/pg.password"
printf 'tributary\n' > "$pgpass"

# ---- the sample: 1000 payees, a few bad lines, a few that break a rule ----
{
    echo "payee_id,name,account_number,routing_number,country,currency,email,amount_limit,status,updated_at"
    for i in $(seq 1 $rows); do
        id=$(printf 'DEMO%06d' "$i")
        case $i in
        17)  echo "$id,\"Acme\" Ltd,12345678,021000021,US,USD,,10.00,ACTIVE,2026-11-01T10:00:00Z" ;;
        99)  echo "$id,Acme Ltd,12345678,021000021,US,USD,,ten,ACTIVE,2026-11-01T10:00:00Z" ;;
        250) echo "$id,Acme Ltd,12345678,021000021,US,USD,,10.00,SLEEPING,2026-11-01T10:00:00Z" ;;
        400) echo "$id,Bad Routing Inc,12345678,123456789,US,USD,,10.00,ACTIVE,2026-11-01T10:00:00Z" ;;
        401) echo "$id,Nowhere GmbH,12345678,021000021,XX,EUR,,10.00,ACTIVE,2026-11-01T10:00:00Z" ;;
        402) echo "$id,Minus Corp,12345678,021000021,US,USD,,-5.00,ACTIVE,2026-11-01T10:00:00Z" ;;
        *)   echo "$id,\"Payee $i, \"\"the\"\" best\",$((10000000 + i)),021000021,US,USD,p$i@example.com,$((i * 10)).50,ACTIVE,2026-11-01T10:00:00Z" ;;
        esac
    done
} > "$file"
bad_lines=3
invalid=3
valid=$((rows - bad_lines - invalid))

pids=()
names=()
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

start() { # name port args...
    local name=$1 port=$2
    shift 2
    "$build/bin/$name" --http.port "$port" --shutdown.grace.ms 10000 "$@" 2>"$work/$name-$run.log" &
    pids+=($!)
    names+=("$name")
}
start svc-validator 8082 --dataset payee --commit.interval.ms 200
start svc-cache-feeder 8083 --dataset payee
start svc-persister 8084 --dataset payee --sink postgres --create-tables --batch.timeout.ms 500 \
    --pg.conninfo "host=127.0.0.1 port=${STACK_PG_PORT:-5432} dbname=tributary user=tributary" \
    --pg.password_file "$pgpass"

printf '\n%-18s %-6s %s\n' service port readyz
for i in "${!names[@]}"; do
    port=$((8082 + i))
    ready=""
    for _ in $(seq 1 150); do
        ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
        [ "$ready" = 200 ] && break
        sleep 0.2
    done
    printf '%-18s %-6s %s\n' "${names[$i]}" "$port" "$ready"
done

echo
echo "svc-ingest --dataset payee $file"
rc=0
"$build/bin/svc-ingest" --dataset payee --http.port 0 --batch.id "demo-$run" "$file" 2>"$work/svc-ingest-$run.log" || rc=$?
echo "svc-ingest exit code $rc (65: some lines rejected, as planted)"
echo "bad lines reported in $file.errors.jsonl:"
sed 's/^/  /' "$file.errors.jsonl"

# ---- wait until every valid payee is in Redis and in PostgreSQL ----------
count_redis() {
    redis-cli -p "${STACK_REDIS_PORT:-6379}" --scan --pattern 'tb:payee:DEMO*' | wc -l
}
count_pg() {
    psql "$pgconn" -Atc "SELECT count(*) FROM payee WHERE payee_id LIKE 'DEMO%'" 2>/dev/null || echo 0
}
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(count_redis)" -ge "$valid" ] && [ "$(count_pg)" -ge "$valid" ] && break
    sleep 0.5
done

# Counts alone can be fooled (a re-run finds the keys of the last run in
# place): wait until svc-recon has every stage's account of this batch.
recon() { # svc-recon SUBCOMMAND [args...]: catches up, then answers for the demo batch
    local sub=$1
    shift
    "$build/bin/svc-recon" "$sub" --batch "demo-$run" --sinks cache-feeder,persister \
        --pg.password_file "$pgpass" "$@" 2>>"$work/svc-recon-$run.log"
}
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ]; do
    recon report --json >/dev/null && break
    sleep 1
done

echo
printf '%-40s %6s %6s\n' "where the $rows lines went" expected found
printf '%-40s %6s %6s\n' "format errors (errors file)" "$bad_lines" "$(wc -l < "$file.errors.jsonl")"
printf '%-40s %6s %6s\n' "payees in Redis (tb:payee:DEMO*)" "$valid" "$(count_redis)"
printf '%-40s %6s %6s\n' "payees in PostgreSQL (table payee)" "$valid" "$(count_pg)"
dlq=$(kcat -C -b "127.0.0.1:${STACK_KAFKA_PORT:-9092}" -t payee.dlq -o beginning -e -q \
          -f '%h\n' 2>/dev/null | grep -c "demo-$run" || true)
printf '%-40s %6s %6s\n' "invalid payees on payee.dlq" "$invalid" "$dlq"

echo
echo "a client reads payee DEMO000001 from Redis:"
"$build/bin/svc-cache-feeder" get --dataset payee DEMO000001 2>/dev/null | sed 's/^/  /'
echo "and from PostgreSQL:"
psql "$pgconn" -c "SELECT payee_id, routing_number, country, amount_limit, status FROM payee WHERE payee_id = 'DEMO000001'" | sed 's/^/  /'

echo
echo "svc-recon report --batch demo-$run (every stage's own audit events, reconciled):"
rrc=0
recon report | sed 's/^/  /' || rrc=$?
echo "svc-recon exit code $rrc (0: clean; the rejected lines are accounted for)"

echo
echo "stopping the services with SIGTERM:"
trap - EXIT
for i in "${!names[@]}"; do
    kill -TERM "${pids[$i]}"
    code=0
    wait "${pids[$i]}" || code=$?
    printf '  %-18s exit %d\n' "${names[$i]}" "$code"
done
echo "logs (JSON lines): $work"
