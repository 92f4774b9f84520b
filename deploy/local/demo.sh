#!/usr/bin/env bash
# The demo on the local stack: start the five services, show that each is
# healthy and ready (the real broker answers), round-trip sample payees
# through Kafka, Redis, PostgreSQL and FerretDB, then stop the services with
# SIGTERM and show that each exited 0.
#
# Usage: deploy/local/demo.sh [BUILD_DIR]   (make demo does deps, stack-up, build first)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
export TB_PROTO_DIR="$PWD/proto"
logdir=${STACK_DIR:-$PWD/.stack}/demo
mkdir -p "$logdir"

services=(svc-ingest svc-validator svc-cache-feeder svc-persister svc-recon)
ports=(8081 8082 8083 8084 8085)
pids=()

stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

for i in "${!services[@]}"; do
    svc=${services[$i]}
    args=(--http.port "${ports[$i]}" --shutdown.grace.ms 5000)
    [ "$svc" = svc-recon ] || args+=(--dataset payee)
    "$build/bin/$svc" "${args[@]}" 2>"$logdir/$svc.log" &
    pids+=($!)
done

printf '\n%-18s %-6s %-8s %s\n' service port healthz readyz
for i in "${!services[@]}"; do
    port=${ports[$i]}
    ready=""
    for _ in $(seq 1 100); do
        ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
        [ "$ready" = 200 ] && break
        sleep 0.2
    done
    health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
    printf '%-18s %-6s %-8s %s\n' "${services[$i]}" "$port" "$health" "$ready"
done

echo
echo "metrics of svc-validator (first lines):"
curl -s http://127.0.0.1:8082/metrics | grep -v '^#' | head -n 5

echo
echo "round trip of sample payees through Kafka, Redis, PostgreSQL and FerretDB:"
CK_FORK=yes TRIBUTARY_BUILD="$build" "$build/tests/integration/test_roundtrip"

echo
echo "stopping with SIGTERM:"
trap - EXIT
for i in "${!services[@]}"; do
    kill -TERM "${pids[$i]}"
    rc=0
    wait "${pids[$i]}" || rc=$?
    printf '%-18s exit %d\n' "${services[$i]}" "$rc"
done
echo "service logs (JSON lines): $logdir"
