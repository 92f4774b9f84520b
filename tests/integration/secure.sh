#!/usr/bin/env bash
# tests/integration/secure.sh — the pipeline on the secure set of the local
# stack (deploy/local/stack.sh up --secure; make test starts it): Kafka over
# SASL_SSL with SCRAM-SHA-512 and ACLs, Redis ACL users, PostgreSQL over TLS
# with scram-sha-256. Each service runs as its own principal, its passwords
# read from the stack's secret files (*_file keys), the CA verified
# (kafka.ssl.ca.location, pg.sslmode=verify-full).
#
# Cases (one line each, then "N passed, N failed"):
#   pipeline   ingest → validator → cache-feeder → persister: every record of
#              the batch on payee.valid, in Redis and in PostgreSQL.
#   recon      svc-recon report --verify-sinks of that batch as principal
#              recon (its state in the secure PostgreSQL): clean, every
#              record delivered.
#   leaks      a second batch with bad lines and rule breaks on personal
#              fields; no secret, private key or personal value of either
#              batch in any log line (debug, librdkafka's debug contexts),
#              errors file, /metrics, HTTP error body or DLQ header
#              (leak_scan.py).
#   rotation   the Kafka passwords of ingest and validator rotated while the
#              pipeline runs (stack.sh kafka-rotate), the validator
#              restarted mid-batch: every record exactly once.
#   redis tls  svc-cache-feeder through a stunnel client sidecar to the
#              secure Redis's tls-port: the batch's keys in Redis.
#   refusals   (see the cases below): each refused by its server, reported in
#              one line naming the server and the setting, exit 78 (a refused
#              configuration) or 69/readiness as for any dependency failure.
#
# Env: TRIBUTARY_BUILD (build), TB_PROTO_DIR (proto/), STACK_* as stack.sh;
# SECURE_WAIT_SECS (120) for the pipeline. Isolation: the batch's keys carry
# a prefix of this run; its consumer groups and transactional ids are new;
# its Redis keys are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
build=${TRIBUTARY_BUILD:-build}
case "$build" in /*) ;; *) build=$repo/$build ;; esac
export TB_PROTO_DIR=${TB_PROTO_DIR:-$repo/proto}
say() { printf 'secure: %s\n' "$*"; }

if ! deploy/local/stack.sh status --secure >/dev/null 2>&1; then
    say "FAIL: the secure stack is not up (deploy/local/stack.sh up --secure)"
    echo "0 passed, 1 failed"
    exit 1
fi
eval "$(deploy/local/stack.sh env --secure)"
sec=$STACK_SECURE_SECRETS
ca=$STACK_SECURE_CA
work=$(mktemp -d "${TMPDIR:-/tmp}/tributary-secure.XXXXXX")
pids=()
run=s$(date +%s)$$
cprefix=tb:$run
passed=0
failed=0

redis_admin() {
    REDISCLI_AUTH=$(cat "$sec/redis-admin.password") redis-cli --no-auth-warning -h "$STACK_SECURE_REDIS_HOST" \
        -p "$STACK_SECURE_REDIS_PORT" --user admin "$@"
}
pg_admin_count() { # SQL: one number, as recon (read-only) over TLS
    PGPASSWORD=$(cat "$sec/pg-recon.password") psql -X -qtA \
        "$STACK_SECURE_PG_CONNINFO user=recon" -c "$1" 2>/dev/null || echo 0
}
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    local keys i
    mapfile -t keys < <(redis_admin --scan --pattern "$cprefix*" 2>/dev/null || true)
    for (( i = 0; i < ${#keys[@]}; i += 100 )); do
        redis_admin del "${keys[@]:i:100}" >/dev/null 2>&1 || true
    done
    PGPASSWORD=$(cat "$sec/pg-recon.password") psql -X -qtA "$STACK_SECURE_PG_CONNINFO user=recon" \
        -c "DROP SCHEMA IF EXISTS recon_$run CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pass() { passed=$((passed + 1)); say "ok   $1"; }
fail() { failed=$((failed + 1)); say "FAIL $1"; shift; local l; for l in "$@"; do say "     $l"; done; }

# kafka USER [PASSWORD_FILE] [CA]: the Kafka settings of USER.
kafka() {
    echo --kafka.bootstrap.servers "$STACK_SECURE_KAFKA_BOOTSTRAP" \
        --kafka.security.protocol SASL_SSL --kafka.sasl.mechanisms SCRAM-SHA-512 \
        --kafka.sasl.username "$1" --kafka.sasl.password_file "${2:-$sec/kafka-$1.password}" \
        --kafka.ssl.ca.location "${3:-$ca}"
}
# redis USER [PASSWORD_FILE]
redis() {
    echo --redis.host "$STACK_SECURE_REDIS_HOST" --redis.port "$STACK_SECURE_REDIS_PORT" \
        --redis.user "$1" --redis.password_file "${2:-$sec/redis-$1.password}"
}
pgconn="$STACK_SECURE_PG_CONNINFO user=persister"

read -r p_val p_feed p_pers < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

start() { # NAME PORT ARGS...
    local name=$1 port=$2
    shift 2
    "$build/bin/$name" --http.port "$port" --shutdown.grace.ms 5000 --log.level "${SECURE_LOG_LEVEL:-debug}" "$@" \
        </dev/null >/dev/null 2>"$work/$name.log" &
    pids+=($!)
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null || true; }

# ---- pipeline ----------------------------------------------------------------
# librdkafka's own debug contexts on top of log.level debug: SASL/TLS
# handshakes, broker state, protocol requests and message-level lines, the
# ones that would show credentials or payloads if any could.
kdebug=(--kafka.debug "${SECURE_KAFKA_DEBUG:-security,broker,protocol,msg}")

rows=${SECURE_ROWS:-200}
python3 deploy/local/gen_payees.py --rows "$rows" --changes 0 --bad-share 0 --prefix "$run-" --seed 11 \
    "$work/payees.csv" "$work/changes.csv" >/dev/null
# shellcheck disable=SC2046
start svc-validator "$p_val" --dataset payee --group.id "tributary-validator-$run" \
    --transactional.id "svc-validator-$run" --commit.interval.ms 200 $(kafka validator) "${kdebug[@]}"
# shellcheck disable=SC2046
start svc-cache-feeder "$p_feed" --dataset payee --group.id "tributary-cache-feeder-$run" \
    --cache.prefix "$cprefix" $(redis cache-feeder) $(kafka cache-feeder) "${kdebug[@]}"
# shellcheck disable=SC2046
start svc-persister "$p_pers" --dataset payee --sink postgres --create.tables \
    --group.id "svc-persister-$run" --batch.timeout.ms 200 \
    --pg.conninfo "$pgconn" --pg.sslmode verify-full --pg.password_file "$sec/pg-persister.password" \
    $(kafka persister) "${kdebug[@]}"

ready=1
for sp in "svc-validator:$p_val" "svc-cache-feeder:$p_feed" "svc-persister:$p_pers"; do
    name=${sp%%:*} port=${sp##*:}
    for _ in $(seq 1 300); do
        [ "$(code "$port" /readyz)" = 200 ] && break
        sleep 0.2
    done
    if [ "$(code "$port" /readyz)" != 200 ]; then
        fail "pipeline: $name never ready on :$port" "$(tail -5 "$work/$name.log" | tr '\n' ' ')"
        ready=0
    fi
done

# kcat_admin ARGS...: kcat -C as admin (read_committed) to the end of a topic.
kcat_admin() {
    timeout 60 kcat -C -b "$STACK_SECURE_KAFKA_BOOTSTRAP" -X security.protocol=SASL_SSL \
        -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=admin \
        -X sasl.password="$(cat "$sec/kafka-admin.password")" -X ssl.ca.location="$ca" \
        -X isolation.level=read_committed -o beginning -e -q "$@" 2>/dev/null
}
valid_count() { kcat_admin -t payee.valid -f '%k\n' | grep -c "^$run-" || true; }
redis_count() { redis_admin --scan --pattern "$cprefix:payee:$run-*" 2>/dev/null | grep -c . || true; }
pg_count() { pg_admin_count "SELECT count(*) FROM public.payee WHERE payee_id LIKE '$run-%'"; }

if [ "$ready" = 1 ]; then
    # shellcheck disable=SC2046
    if ! "$build/bin/svc-ingest" --http.port 0 --log.level debug --dataset payee --batch.id "$run" $(kafka ingest) \
            "${kdebug[@]}" "$work/payees.csv" >"$work/ingest.out" 2>"$work/ingest.log"; then
        fail "pipeline: svc-ingest as ingest failed" "$(tail -3 "$work/ingest.log" | tr '\n' ' ')"
    else
        deadline=$((SECONDS + ${SECURE_WAIT_SECS:-120}))
        while :; do
            nr=$(redis_count); np=$(pg_count)
            if [ "$nr" -ge "$rows" ] && [ "$np" -ge "$rows" ]; then break; fi
            [ "$SECONDS" -lt "$deadline" ] || break
            sleep 1
        done
        nv=$(valid_count)
        if [ "$nv" -eq "$rows" ] && [ "$nr" -eq "$rows" ] && [ "$np" -eq "$rows" ]; then
            pass "pipeline: $rows records on payee.valid, in Redis ($cprefix:payee:*) and in PostgreSQL (public.payee), each service as its own principal"
        else
            fail "pipeline: of $rows records: $nv on payee.valid, $nr in Redis, $np in PostgreSQL" \
                "validator: $(tail -3 "$work/svc-validator.log" | tr '\n' ' ')" \
                "cache-feeder: $(tail -3 "$work/svc-cache-feeder.log" | tr '\n' ' ')" \
                "persister: $(tail -3 "$work/svc-persister.log" | tr '\n' ' ')"
        fi
    fi
fi

# ---- svc-recon as its own principal -------------------------------------------
# The batch of the pipeline case reconciled by svc-recon report as principal
# recon: audit.events read over SASL_SSL (its group under the prefixed ACL
# tributary-recon*), its state schema in the secure PostgreSQL over TLS
# (verify-full) as role recon, and --verify-sinks reading the rows as recon
# (SELECT only) and the keys as Redis user recon (reads only).
recon_batch() { # BATCH OUT: svc-recon report's exit code; its JSON in OUT
    # shellcheck disable=SC2046
    "$build/bin/svc-recon" report --batch "$1" --json --verify-sinks --log.level debug \
        --group.id "tributary-recon-$run" --state.schema "recon_$run" --sinks cache-feeder,persister \
        --pg.conninfo "$STACK_SECURE_PG_CONNINFO user=recon" --pg.sslmode verify-full \
        --pg.password_file "$sec/pg-recon.password" \
        --verify.pg.conninfo "$STACK_SECURE_PG_CONNINFO user=recon" --verify.pg.schema public \
        --verify.redis.host "$STACK_SECURE_REDIS_HOST" --verify.redis.port "$STACK_SECURE_REDIS_PORT" \
        --verify.redis.user recon --verify.redis.password_file "$sec/redis-recon.password" \
        --verify.cache.prefix "$cprefix" $(kafka recon) "${kdebug[@]}" >"$2" 2>>"$work/svc-recon.log"
}
if [ "$ready" = 1 ]; then
    rrc=0
    recon_batch "$run" "$work/recon.json" || rrc=$?
    rclean=$(jq -r '.clean' "$work/recon.json" 2>/dev/null || echo "?")
    rdel=$(jq -r '.counts.delivered // 0' "$work/recon.json" 2>/dev/null || echo 0)
    if [ "$rrc" = 0 ] && [ "$rclean" = true ] && [ "$rdel" = "$rows" ]; then
        pass "svc-recon as recon: batch $run clean, $rdel records delivered, sinks verified (PostgreSQL over TLS as a read-only role, Redis as a read-only user)"
    else
        fail "svc-recon as recon: exit $rrc, clean $rclean, delivered $rdel of $rows" \
            "$(head -c 400 "$work/recon.json")" "$(tail -3 "$work/svc-recon.log" | tr '\n' ' ')"
    fi
fi

# ---- no secret, no personal datum in any output ----------------------------
# A second batch (keys p<run>-) with bad lines (ingest's errors file) and
# records the rules refuse (the DLQ), some of them on personal fields
# (tb.personal in proto/payee.avsc: name, account_number, email). Then every
# output is searched (tests/integration/leak_scan.py, which checks itself on
# a planted needle of each kind first) for each secret file of the stack, each
# private key, and each personal value of both batches: the services' logs at
# log.level debug with librdkafka's debug contexts, svc-ingest's output and
# errors file, /metrics, the error bodies of bad requests to each HTTP port,
# and the headers of the batch's dead-letter records.
python3 deploy/local/gen_payees.py --rows 40 --changes 0 --bad-share 0.5 --prefix "p$run-" --seed 7 \
    "$work/pii.csv" "$work/pii-changes.csv" >/dev/null
long_name=$(printf 'Longname%.0s' $(seq 1 20))
cat >>"$work/pii.csv" <<EOF
p$run-90000001,Pia Privacy-Example,AB-12 3456789,021000021,US,USD,pia.privacy@example.com,100.00,ACTIVE,2026-11-02T10:00:00Z,1000000
p$run-90000002,$long_name Smith,55501234,021000021,US,USD,,100.00,ACTIVE,2026-11-02T10:00:00Z,1000000
p$run-90000003,Quentin Quiet-Example,55509876,021000021,US,USD,not-an-address-quentin,100.00,ACTIVE,2026-11-02T10:00:00Z,1000000
p$run-90000004,Rhea Rowcount-Example,55504321,021000021,US,USD
p$run-90000005,Sven Stray-Example,55506789,021000021,US,USD,sven@example.com,ten,ACTIVE,2026-11-02T10:00:00Z,1000000
EOF
pii_rc=0
# shellcheck disable=SC2046
"$build/bin/svc-ingest" --http.port 0 --log.level debug --dataset payee --batch.id "$run-pii" $(kafka ingest) \
    "${kdebug[@]}" "$work/pii.csv" >"$work/ingest-pii.out" 2>"$work/ingest-pii.log" || pii_rc=$?
dlq_pii() { kcat_admin -t payee.dlq -f '%k\t%h\n' | grep "^p$run-" || true; }
deadline=$((SECONDS + 60))
while [ "$(dlq_pii | grep -c "^p$run-9000000[123]")" -lt 3 ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
dlq_pii >"$work/dlq.headers"

# Bad requests to each service's HTTP port, personal values in the path, the
# query string and the body (a 404, a 405, a query the route does not take).
pv_name="Pia Privacy-Example" pv_acct=55509876 pv_mail=pia.privacy@example.com
for sp in "svc-validator:$p_val" "svc-cache-feeder:$p_feed" "svc-persister:$p_pers"; do
    n=${sp%%:*} port=${sp##*:} i=0
    for req in "GET /payee/${pv_name// /%20}" "GET /payees?account=$pv_acct&email=$pv_mail" \
               "POST /metrics?name=${pv_name// /%20}" "DELETE /readyz/$pv_acct" "PUT /healthz?x=$pv_mail"; do
        i=$((i + 1))
        curl -s --max-time 2 -X "${req%% *}" -d "{\"account_number\":\"$pv_acct\"}" \
            -w '\n%{http_code}\n' "http://127.0.0.1:$port${req#* }" >"$work/http-$n-$i.body" 2>/dev/null || true
    done
    curl -s --max-time 5 "http://127.0.0.1:$port/metrics" >"$work/$n.metrics" 2>/dev/null || true
done

outputs=("$work"/svc-*.log "$work"/ingest*.log "$work"/ingest*.out "$work"/*.metrics "$work"/http-*.body
         "$work/dlq.headers")
[ -e "$work/pii.csv.errors.jsonl" ] && outputs+=("$work/pii.csv.errors.jsonl")
nlines=$(cat "$work"/svc-*.log "$work"/ingest*.log 2>/dev/null | wc -l)
nkd=$(cat "$work"/svc-*.log "$work"/ingest*.log 2>/dev/null | grep -c '"component":"librdkafka"' || true)
ndlq=$(grep -c . "$work/dlq.headers" || true)
nerr=$(grep -c . "$work/pii.csv.errors.jsonl" 2>/dev/null || true)
nhttp=$(cat "$work"/http-*.body 2>/dev/null | grep -cx '4[0-9][0-9]' || true)
scan_rc=0
scan=$(python3 tests/integration/leak_scan.py --secret "$sec"/* --key "${ca%/*}"/*.key \
    --personal "proto/payee.avsc:$work/payees.csv" "proto/payee.avsc:$work/pii.csv" -- "${outputs[@]}") || scan_rc=$?
if [ "$scan_rc" = 0 ] && [ "$pii_rc" = 65 ] && [ "${nerr:-0}" -ge 2 ] && [ "$ndlq" -ge 3 ] &&
        [ "$nkd" -gt 0 ] && [ "$nhttp" -ge 15 ]; then
    pass "no secret, key or personal value in $nlines log lines (debug; $nkd of librdkafka's own), /metrics, $nhttp HTTP error bodies, $nerr errors-file lines, $ndlq DLQ header sets"
else
    fail "secrets or personal data in the pipeline's output (scan exit $scan_rc; ingest exit $pii_rc, want 65; $nerr errors-file lines, $ndlq DLQ records of p$run-, $nkd librdkafka lines, $nhttp error bodies)" \
        "${scan:-}"
fi

# ---- rotation ----------------------------------------------------------------
# The Kafka passwords of ingest and validator rotated while the pipeline runs
# (deploy/local/stack.sh kafka-rotate USER --secure: the broker's credential,
# then the secret file): the old password is refused at once; the running
# validator goes on over its authenticated connections; svc-ingest (a run per
# file) reads the new file; the validator is restarted in the middle of a
# batch (SIGTERM, then the same group and transactional id) and reads the new
# file. Every record of the three batches exactly once on payee.valid and in
# PostgreSQL.
rot_can_connect() { # USER PASSWORD: kcat gets metadata as USER
    timeout 20 kcat -L -b "$STACK_SECURE_KAFKA_BOOTSTRAP" -X security.protocol=SASL_SSL \
        -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username="$1" -X sasl.password="$2" \
        -X ssl.ca.location="$ca" -m 10 -t audit.events >/dev/null 2>&1
}
rot_ingest() { # BATCH FILE
    # shellcheck disable=SC2046
    "$build/bin/svc-ingest" --http.port 0 --dataset payee --batch.id "$1" $(kafka ingest) "$2" \
        >>"$work/rot-ingest.out" 2>>"$work/rot-ingest.log"
}
rrows=${SECURE_ROT_ROWS:-2000}
for b in a b c; do
    python3 deploy/local/gen_payees.py --rows "$rrows" --changes 0 --bad-share 0 --prefix "r$run-$b" \
        --seed 13 "$work/rot-$b.csv" "$work/rot-$b-changes.csv" >/dev/null
done
rot_err=()
old_ing=$(cat "$sec/kafka-ingest.password") old_val=$(cat "$sec/kafka-validator.password")
rot_ingest "$run-ra" "$work/rot-a.csv" || rot_err+=("ingest of batch a (old password) failed")
for u in ingest validator; do
    deploy/local/stack.sh kafka-rotate "$u" --secure >>"$work/rot.out" 2>&1 || rot_err+=("kafka-rotate $u failed")
done
[ "$(cat "$sec/kafka-ingest.password")" != "$old_ing" ] || rot_err+=("the ingest password file did not change")
rot_can_connect validator "$old_val" && rot_err+=("the old validator password still accepted")
rot_can_connect validator "$(cat "$sec/kafka-validator.password")" || rot_err+=("the new validator password refused")
rot_ingest "$run-rb" "$work/rot-b.csv" || rot_err+=("ingest of batch b (new password) failed")
# the validator restarted right after batch b is written (its records in flight)
kill -TERM "${pids[0]}" 2>/dev/null; wait "${pids[0]}" 2>/dev/null || true
mv "$work/svc-validator.log" "$work/svc-validator-before-rotation.log"
# shellcheck disable=SC2046
start svc-validator "$p_val" --dataset payee --group.id "tributary-validator-$run" \
    --transactional.id "svc-validator-$run" --commit.interval.ms 200 $(kafka validator)
for _ in $(seq 1 300); do [ "$(code "$p_val" /readyz)" = 200 ] && break; sleep 0.2; done
[ "$(code "$p_val" /readyz)" = 200 ] || rot_err+=("the validator restarted with the new password never ready")
rot_ingest "$run-rc" "$work/rot-c.csv" || rot_err+=("ingest of batch c failed")
rwant=$((3 * rrows))
rot_pg() { pg_admin_count "SELECT count(*) FROM public.payee WHERE payee_id LIKE 'r$run-%'"; }
deadline=$((SECONDS + ${SECURE_WAIT_SECS:-120}))
while [ "$(rot_pg)" -lt "$rwant" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
kcat_admin -t payee.valid -f '%k\n' | grep "^r$run-" >"$work/rot.keys" || true
rnv=$(grep -c . "$work/rot.keys" || true)
rnu=$(sort -u "$work/rot.keys" | grep -c . || true)
rnp=$(rot_pg)
if [ ${#rot_err[@]} -eq 0 ] && [ "$rnv" -eq "$rwant" ] && [ "$rnu" -eq "$rwant" ] && [ "$rnp" -eq "$rwant" ]; then
    pass "rotation: ingest and validator passwords rotated while running (old one refused), validator restarted mid-batch: $rwant records exactly once on payee.valid and in PostgreSQL"
else
    fail "rotation: ${rot_err[*]:-} of $rwant records: $rnv on payee.valid ($rnu keys), $rnp in PostgreSQL" \
        "validator: $(grep -v '"level":"\(debug\|info\)"' "$work/svc-validator.log" | tail -2 | cut -c1-300 | tr '\n' ' ')" \
        "ingest: $(tail -2 "$work/rot-ingest.log" | cut -c1-300 | tr '\n' ' ')"
fi

# ---- Redis over TLS through a stunnel sidecar -------------------------------
# hiredis 0.14 speaks no TLS: svc-cache-feeder speaks plaintext to a stunnel
# client on loopback, which speaks TLS (the stack's CA verified, the server's
# IP checked) to the secure Redis's tls-port. One run: the batch's keys in
# Redis under a prefix of their own.
read -r p_tun p_tfeed < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
cat >"$work/stunnel.conf" <<EOF
foreground = yes
pid =
output = $work/stunnel.log
debug = info
[redis]
client = yes
accept = 127.0.0.1:$p_tun
connect = 127.0.0.1:$STACK_SECURE_REDIS_TLS_PORT
CAfile = $ca
verifyChain = yes
checkIP = 127.0.0.1
EOF
tls_err=()
if ! command -v stunnel >/dev/null; then
    tls_err+=("stunnel is not installed (deploy/local/deps.sh: stunnel4)")
else
    stunnel "$work/stunnel.conf" </dev/null >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p_tun") 2>/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2046
    start svc-cache-feeder "$p_tfeed" --dataset payee --group.id "tributary-cache-feeder-$run-tls" \
        --cache.prefix "$cprefix-tls" --redis.host 127.0.0.1 --redis.port "$p_tun" --redis.user cache-feeder \
        --redis.password_file "$sec/redis-cache-feeder.password" $(kafka cache-feeder)
    mv "$work/svc-cache-feeder.log" "$work/tls-feeder.log" 2>/dev/null || true
fi
tls_count() { redis_admin --scan --pattern "$cprefix-tls:payee:$run-*" 2>/dev/null | grep -c . || true; }
deadline=$((SECONDS + ${SECURE_WAIT_SECS:-120}))
while [ ${#tls_err[@]} -eq 0 ] && [ "$(tls_count)" -lt "$rows" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
ntls=$(tls_count)
if [ ${#tls_err[@]} -eq 0 ] && [ "$ntls" -eq "$rows" ] && grep -q 'connected remote server' "$work/stunnel.log" 2>/dev/null &&
        grep -q 'Certificate accepted' "$work/stunnel.log" 2>/dev/null; then
    pass "Redis over TLS: svc-cache-feeder through a stunnel sidecar (CA and IP verified) to tls-port $STACK_SECURE_REDIS_TLS_PORT: $rows keys of the batch in Redis"
else
    fail "Redis over TLS: ${tls_err[*]:-} $ntls of $rows keys" \
        "stunnel: $(tail -3 "$work/stunnel.log" 2>/dev/null | tr '\n' ' ')" \
        "cache-feeder: $(grep -v '"level":"\(debug\|info\)"' "$work/tls-feeder.log" 2>/dev/null | tail -2 | cut -c1-300 | tr '\n' ' ')"
fi

# ---- refusals --------------------------------------------------------------
# Each: the server refuses, the service exits at once with one line naming
# the setting, the server and what was refused (78: a configuration the
# server refuses, as for pg.password; 69: svc-ingest's file not ingested).

printf 'not-the-password' >"$work/wrong.password"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/other-ca.key" -subj "/CN=another CA" \
    -days 2 -out "$work/other-ca.pem" >/dev/null 2>&1

# refused NAME RC PATTERN... -- CMD...: CMD exits RC within 60 s, its stderr
# has a line matching every PATTERN (grep -E), and no secret of the stack.
refused() {
    local name=$1 want=$2 pats=() rc=0 line p
    shift 2
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    timeout 60 "$@" </dev/null >/dev/null 2>"$work/refused.err" || rc=$?
    line=$(grep -v '"level":"\(debug\|info\|warn\)"' "$work/refused.err" | tail -n 1)
    if [ "$rc" != "$want" ]; then
        fail "refusal $name: exit $rc, not $want" "${line:0:400}"; return
    fi
    for p in "${pats[@]}"; do
        grep -Eq -- "$p" <<<"$line" || { fail "refusal $name: the last line does not say /$p/" "${line:0:400}"; return; }
    done
    for p in "$sec"/*; do
        if grep -qF -- "$(cat "$p")" "$work/refused.err"; then
            fail "refusal $name: the output holds the secret of ${p##*/}"; return
        fi
    done
    pass "refusal $name (exit $rc): ${line:0:160}..."
}

val=("$build/bin/svc-validator" --http.port 0 --startup.timeout.ms 20000 --dataset payee
     --group.id "tributary-validator-$run-r" --transactional.id "svc-validator-$run-r")
# shellcheck disable=SC2046
refused "wrong Kafka password" 78 '^svc-validator: configuration error: kafka\.sasl\.password:' \
    'kafka at 127\.0\.0\.1:[0-9]+ refused the SASL authentication of user "validator"' -- \
    "${val[@]}" $(kafka validator "$work/wrong.password")
# shellcheck disable=SC2046
refused "unknown CA" 78 '^svc-validator: configuration error: kafka\.ssl\.ca\.location:' \
    'certificate of kafka at 127\.0\.0\.1:[0-9]+ could not be verified' -- \
    "${val[@]}" $(kafka validator "" "$work/other-ca.pem")
refused "plaintext to the TLS port" 78 '^svc-validator: configuration error: kafka\.security\.protocol:' \
    'kafka at 127\.0\.0\.1:[0-9]+ closed the connection' -- \
    "${val[@]}" --kafka.bootstrap.servers "$STACK_SECURE_KAFKA_BOOTSTRAP"
# shellcheck disable=SC2046
refused "wrong PostgreSQL password" 78 '^svc-persister: configuration error: pg\.password:' \
    'postgres at 127\.0\.0\.1:[0-9]+ refused' 'password authentication failed for user "persister"' -- \
    "$build/bin/svc-persister" --http.port 0 --startup.timeout.ms 20000 --dataset payee --sink postgres \
    --group.id "svc-persister-$run-r" --pg.conninfo "$pgconn" --pg.sslmode verify-full \
    --pg.password_file "$work/wrong.password" $(kafka persister)
# shellcheck disable=SC2046
refused "Redis user without the rights" 78 '^svc-cache-feeder: configuration error: redis\.user' \
    'SCRIPT LOAD as user "recon" refused: NOPERM' -- \
    "$build/bin/svc-cache-feeder" --http.port 0 --startup.timeout.ms 20000 --dataset payee \
    --group.id "tributary-cache-feeder-$run-r" --cache.prefix "$cprefix-r" $(redis recon) \
    $(kafka cache-feeder)
# The ingest principal writing .valid (svc-ingest's former `topic` key names
# the topic): refused by the ACL at once, the transaction aborted, nothing of
# the batch committed on payee.valid.
python3 deploy/local/gen_payees.py --rows 20 --changes 0 --bad-share 0 --prefix "$run-acl-" --seed 5 \
    "$work/acl.csv" "$work/acl-changes.csv" >/dev/null
# shellcheck disable=SC2046
refused "ingest writing .valid (ACL)" 69 '"msg":"file not ingested"' \
    'kafka refused the write at line [0-9]+ .*an ACL' 'payee\.valid: Broker: Topic authorization failed' -- \
    "$build/bin/svc-ingest" --http.port 0 --dataset payee --topic payee.valid --batch.id "$run-acl" \
    $(kafka ingest) "$work/acl.csv"
nacl=$(kcat_admin -t payee.valid -f '%k\n' | grep -c "^$run-acl-" || true)
if [ "$nacl" -eq 0 ]; then pass "refusal ingest writing .valid: nothing of the batch committed on payee.valid"
else fail "refusal ingest writing .valid: $nacl records of the batch committed on payee.valid"; fi

# A key pattern the cache-feeder's ACL does not allow (cache.prefix outside
# tb:*): the scripts load, each write is refused with NOPERM. That is the
# user's ACL, not the records: the feeder pauses (readiness 503 naming it),
# no record goes to the dead-letter topic.
read -r p_np < <(python3 -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dlq_count() { kcat_admin -t payee.dlq -f '%o\n' | grep -c . || true; }
dlq0=$(dlq_count)
# shellcheck disable=SC2046
start svc-cache-feeder "$p_np" --dataset payee --group.id "tributary-cache-feeder-$run-np" \
    --cache.prefix "x$run" $(redis cache-feeder) $(kafka cache-feeder)
mv "$work/svc-cache-feeder.log" "$work/np.log" 2>/dev/null || true
np='redis unavailable: pausing consumption.*NOPERM.*check the ACL of redis.user'
for _ in $(seq 1 60); do
    grep -q "$np" "$work/np.log" 2>/dev/null && break
    sleep 0.5
done
sleep 2
dlq1=$(dlq_count)
body=$(curl -s --max-time 2 "http://127.0.0.1:$p_np/readyz" 2>/dev/null || true)
if grep -q "$np" "$work/np.log" && [ "$(code "$p_np" /readyz)" = 503 ] && [ "$dlq1" -eq "$dlq0" ] &&
        grep -q 'redis: unavailable: redis refused the write script: NOPERM' <<<"$body" &&
        ! grep -q '"msg":"record refused' "$work/np.log"; then
    pass "refusal NOPERM on the writes: cache-feeder paused (its log names redis.user), /readyz 503 (${body:0:90}...), no record refused, nothing to the DLQ"
else
    fail "refusal NOPERM on the writes: /readyz $(code "$p_np" /readyz) '${body:0:200}', DLQ $dlq0 -> $dlq1" \
        "$(grep -v '"level":"info"' "$work/np.log" | tail -2 | cut -c1-300 | tr '\n' ' ')"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
