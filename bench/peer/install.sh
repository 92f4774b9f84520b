#!/usr/bin/env bash
# bench/peer/install.sh — install the peers of BENCH_ONLY=peer from the
# registries into the stack's cache dir, once (a .complete marker makes it
# idempotent; a second run does nothing):
#   $CACHE/peer/connect-3.9.1/libs       Kafka Connect standalone worker (Maven Central)
#   $CACHE/peer/plugins/debezium-connector-jdbc   Debezium JDBC sink 3.1.2.Final, no Jackson
#   $CACHE/peer/venv                     Python consumers' venv (PyPI): confluent-kafka,
#                                        fastavro, redis, psycopg[binary]
# CACHE = $STACK_CACHE_DIR, else $repo/.stack/cache. Needs the registries:
# run it outside a loopback-only network namespace (bench/run.sh calls it and
# says so when it cannot fetch).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
CACHE=${STACK_CACHE_DIR:-$ROOT/.stack/cache}
P=$CACHE/peer
CONNECT_VERSION=3.9.1
mkdir -p "$P" || exit 2
log=$P/install.log

fetch() { # pom outdir what
    [ -f "$2/.complete" ] && return 0
    echo "peer: fetching $3 from Maven Central (log: $log)"
    rm -rf "$2.tmp" && mkdir -p "$2.tmp" || return 1
    if ! mvn -B -q -f "$HERE/$1" dependency:copy-dependencies -DoutputDirectory="$2.tmp" >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "peer: Maven could not fetch $3" >&2
        return 1
    fi
    rm -rf "$2" && mv "$2.tmp" "$2" && touch "$2/.complete"
}
fetch pom-connect.xml "$P/connect-$CONNECT_VERSION/libs" "Kafka Connect $CONNECT_VERSION" || exit 2
fetch pom-debezium.xml "$P/plugins/debezium-connector-jdbc" "debezium-connector-jdbc" || exit 2
if ls "$P/plugins/debezium-connector-jdbc" | grep -q '^jackson-'; then
    echo "peer: a Jackson jar is in the Debezium plugin dir: the worker's must be the only one" >&2
    exit 2
fi

if [ ! -f "$P/venv/.complete" ]; then
    echo "peer: creating the Python venv from PyPI (log: $log)"
    rm -rf "$P/venv"
    if ! python3 -m venv "$P/venv" >>"$log" 2>&1 ||
       ! "$P/venv/bin/pip" install -q confluent-kafka fastavro redis 'psycopg[binary]' >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "peer: pip could not install the Python consumers' packages" >&2
        exit 2
    fi
    touch "$P/venv/.complete"
fi
exit 0
