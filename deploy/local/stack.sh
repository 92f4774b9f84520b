#!/usr/bin/env bash
# deploy/local/stack.sh — the local stack of real servers on loopback:
# Kafka (KRaft, 1 or 3 nodes), Redis, PostgreSQL, MariaDB, FerretDB (MongoDB wire
# protocol, stored in that PostgreSQL: database ferretdb) and Apicurio
# Registry (a Schema Registry with the Confluent API, stored in that
# PostgreSQL: database registry). No containers: Debian's binaries, Kafka's
# jars and Apicurio's Quarkus app from Maven Central, FerretDB built from
# its Go module.
#
# Usage: stack.sh up [--kafka-nodes N] [--secure]  start what is not running, wait until all answer
#                                          (--secure: also the secure set, stack-secure.sh)
#        stack.sh down [--purge]           stop all, the secure set too (data kept; --purge removes it)
#        stack.sh status [--secure]        one line per server; exit 1 if any is down
#        stack.sh env [--secure]           connection settings as shell assignments
#                                          (--secure: the secure set's, and where its secrets are)
#        stack.sh kafka-stop N [--kill]    stop Kafka node N (1..nodes); --kill = SIGKILL
#        stack.sh kafka-start N            start Kafka node N again, wait until it answers
#        stack.sh redis-stop | redis-start | pg-stop | pg-start | ferretdb-stop | ferretdb-start
#        stack.sh mariadb-stop | mariadb-start          MariaDB alone (outage tests)
#        stack.sh registry-stop | registry-start      the Schema Registry alone
#        stack.sh kafka-rotate USER        the secure Kafka: a new SCRAM password for service principal
#                                          USER (broker credential, then its secret file; stack-secure.sh)
#        stack.sh kafka-class CLASS [ARGS] run a Kafka tool class with the broker's class path
#                                          (e.g. org.apache.kafka.tools.TopicCommand --list ...)
#
# Env (defaults):  STACK_DIR ($repo/.stack)  STACK_CACHE_DIR ($STACK_DIR/cache)
#   STACK_KAFKA_NODES (1)  STACK_KAFKA_PORT (9092; node i listens on PORT+2(i-1),
#   its controller on that +1)  STACK_KAFKA_VERSION (3.9.1)  STACK_KAFKA_HEAP (512m)
#   STACK_REDIS_PORT (6379)  STACK_PG_PORT (5432)  STACK_MONGO_PORT (27017)
#   STACK_MARIADB_PORT (3306)
#   STACK_FERRETDB_VERSION (v1.24.0)  STACK_WAIT_SECS (90)  STACK_PURGE (0)
#   STACK_REGISTRY (1; 0: `up` leaves the registry out)  STACK_REGISTRY_PORT (18081)
#   STACK_REGISTRY_MGMT_PORT (18091)  STACK_REGISTRY_VERSION (3.3.3)
#   STACK_REGISTRY_HEAP (384m)  STACK_REGISTRY_JAVA (Temurin 25's java: Apicurio 3 needs >= 21)
#   The secure set: STACK_SECURE_KAFKA_PORT (19093)  STACK_SECURE_REDIS_PORT (16380)
#   STACK_SECURE_PG_PORT (15433)  STACK_SECURE_DATASETS (proto/*.rules.json's)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

STACK_DIR=${STACK_DIR:-$REPO/.stack}
STACK_CACHE_DIR=${STACK_CACHE_DIR:-$STACK_DIR/cache}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
KAFKA_VERSION=${STACK_KAFKA_VERSION:-3.9.1}
KAFKA_HEAP=${STACK_KAFKA_HEAP:-512m}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
PG_PORT=${STACK_PG_PORT:-5432}
MARIADB_PORT=${STACK_MARIADB_PORT:-3306}
MONGO_PORT=${STACK_MONGO_PORT:-27017}
FERRETDB_VERSION=${STACK_FERRETDB_VERSION:-v1.24.0}
WAIT_SECS=${STACK_WAIT_SECS:-90}
REGISTRY_ON=${STACK_REGISTRY:-1}
REGISTRY_PORT=${STACK_REGISTRY_PORT:-18081}
REGISTRY_MGMT_PORT=${STACK_REGISTRY_MGMT_PORT:-18091}
REGISTRY_VERSION=${STACK_REGISTRY_VERSION:-3.3.3}
REGISTRY_HEAP=${STACK_REGISTRY_HEAP:-384m}
REGISTRY_JAVA=${STACK_REGISTRY_JAVA:-/usr/lib/jvm/temurin-25-jdk-amd64/bin/java}
STOP_SECS=${STACK_STOP_SECS:-30}

RUN_DIR=$STACK_DIR/run
LOG_DIR=$STACK_DIR/logs
KAFKA_LIBS=$STACK_CACHE_DIR/kafka-$KAFKA_VERSION/libs
FERRETDB_BIN=$STACK_CACHE_DIR/ferretdb-$FERRETDB_VERSION/ferretdb
REGISTRY_HOME=$STACK_CACHE_DIR/apicurio-registry-$REGISTRY_VERSION

PG_USER=tributary
PG_PASSWORD=tributary
PG_DB=tributary
MARIADB_USER=tributary
MARIADB_PASSWORD=tributary
MARIADB_DB=tributary

# Go >= 1.22 for FerretDB: prefer the toolchain in /usr/local/go.
export PATH="/usr/local/go/bin:$PATH"

# ---- helpers ---------------------------------------------------------------

say()  { printf 'stack: %s\n' "$*"; }
warn() { printf 'stack: WARNING: %s\n' "$*" >&2; }
die()  { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# tail_log FILE[:FILE...]: show the end of logs on stderr (for failures).
tail_log() {
    local f files
    IFS=: read -r -a files <<<"$1"
    for f in "${files[@]}"; do
        if [ -s "$f" ]; then
            printf -- '---- last lines of %s ----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
            printf -- '----\n' >&2
        fi
    done
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: run 'make deps' (deploy/local/deps.sh) first"
}

now() { date +%s; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# port_owner PORT: "pid N (name)" of the listener, or "unknown process".
port_owner() {
    local line
    line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -1 || true)
    if [[ $line =~ \"([^\"]+)\",pid=([0-9]+) ]]; then
        echo "pid ${BASH_REMATCH[2]} (${BASH_REMATCH[1]})"
    else
        echo "an unknown process"
    fi
}

# pid_matches PID PATTERN: PID is alive and its command line contains PATTERN.
pid_matches() {
    local pid=$1 pattern=$2 cmd
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$pattern"* ]]
}

# pidfile_pid FILE PATTERN: print the pid in FILE if that process is running.
pidfile_pid() {
    local pid
    [ -r "$1" ] || return 1
    pid=$(head -1 "$1" 2>/dev/null | tr -dc '0-9')
    pid_matches "$pid" "$2" || return 1
    echo "$pid"
}

# stop_pid NAME PID [SIGNAL]: SIGTERM (or SIGNAL), wait up to STOP_SECS, then SIGKILL.
stop_pid() {
    local name=$1 pid=$2 sig=${3:-TERM} deadline
    kill -"$sig" "$pid" 2>/dev/null || return 0
    deadline=$(( $(now) + STOP_SECS ))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(now)" -ge "$deadline" ]; then
            warn "$name (pid $pid) did not stop within ${STOP_SECS}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
}

# wait_until NAME LOGS ALIVE_FN PROBE_FN [ARGS...]: poll PROBE_FN ARGS until it
# succeeds; fail early when ALIVE_FN says the process died, or at the deadline.
# started_or_up NAME STARTED WHERE: the closing line of a server's wait
# ("NAME: started on WHERE" when this run started it, else "already up").
started_or_up() {
    if [ "$2" = 1 ]; then say "$1: started on $3"; else say "$1: already up"; fi
}

# await_pidfile NAME LOG PIDCHECK: a daemonizing server writes its pid file a
# moment after the parent exits; wait up to 10 s for PIDCHECK to find it.
await_pidfile() {
    local deadline=$(( $(now) + 10 ))
    until "$3" >/dev/null; do
        [ "$(now)" -lt "$deadline" ] || { tail_log "$2"; die "$1 did not write its pid file"; }
        sleep 0.1
    done
}

wait_until() {
    local name=$1 log=$2 alive=$3 probe=$4
    shift 4
    local deadline=$(( $(now) + WAIT_SECS ))
    while ! "$probe" "$@"; do
        if ! "$alive" "$@"; then
            tail_log "$log"
            die "$name exited during start-up (logs: ${log//:/ })"
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            tail_log "$log"
            die "$name did not answer within ${WAIT_SECS}s (logs: ${log//:/ })"
        fi
        sleep 0.5
    done
}

always() { return 0; }

# status_line NAME STATE ADDR [PID | NOTE]
status_line() {
    local who=${4:-}
    [[ $who =~ ^[0-9]+$ ]] && who="pid $who"
    printf '%-12s %-5s %-18s %s\n' "$1" "$2" "$3" "$who"
}

# pidfile_stop NAME PIDFILE: stop the server NAME_pid names (stop_pid) and
# forget its pid file.
pidfile_stop() {
    local name=$1 pidfile=$2 pid
    if pid=$("${name}_pid"); then
        stop_pid "$name" "$pid"
        say "$name: stopped"
    fi
    rm -f "$pidfile"
}

# server_status NAME LABEL PORT: one status line from NAME_pid and
# NAME_answers (up with its pid, up but not ours, or down); 1 when down.
server_status() {
    local name=$1 label=$2 port=$3 pid
    if pid=$("${name}_pid") && "${name}_answers"; then
        status_line "$label" up "127.0.0.1:$port" "$pid"
    elif [ -z "${pid:-}" ] && "${name}_answers"; then
        status_line "$label" up "127.0.0.1:$port" "(not started by stack.sh)"
    else
        status_line "$label" down "127.0.0.1:$port" "${pid:-}"; return 1
    fi
}

# start_bg PIDFILE LOG CMD...: start CMD detached (own session, no terminal).
start_bg() {
    local pidfile=$1 log=$2
    shift 2
    setsid nohup "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

# ---- Kafka -----------------------------------------------------------------

kafka_port()      { echo $(( KAFKA_PORT + 2 * ($1 - 1) )); }
kafka_ctl_port()  { echo $(( KAFKA_PORT + 2 * ($1 - 1) + 1 )); }
kafka_mode_dir()  { echo "$STACK_DIR/kafka/${1}node"; }
kafka_pidfile()   { echo "$RUN_DIR/kafka-$1.pid"; }
kafka_nodes_file=$STACK_DIR/kafka/nodes

# kafka_recorded_nodes: node count of the last `up` (empty if none).
kafka_recorded_nodes() { cat "$kafka_nodes_file" 2>/dev/null || true; }

kafka_pid() { pidfile_pid "$(kafka_pidfile "$1")" kafka.Kafka; }

# kafka_running_nodes: node count recorded, if any node of it runs.
kafka_running_nodes() {
    local n i
    n=$(kafka_recorded_nodes)
    [ -n "$n" ] || return 0
    for (( i = 1; i <= n; i++ )); do
        if kafka_pid "$i" >/dev/null; then echo "$n"; return 0; fi
    done
}

# kafka_broker_count PORT: brokers listed in a metadata answer from PORT (0 if none).
kafka_broker_count() {
    local out
    out=$(timeout 10 kcat -b "127.0.0.1:$1" -L -m 3 2>/dev/null) || { echo 0; return 0; }
    grep -cE '^ +broker [0-9]+ at ' <<<"$out" || true
}

kafka_java() {
    java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -cp "$KAFKA_LIBS/*" "$@"
}

# kafka_fetch_libs: the broker's jars, fetched once per version with Maven.
kafka_fetch_libs() {
    [ -f "$KAFKA_LIBS/.complete" ] && return 0
    need mvn
    need java
    local tmp=$KAFKA_LIBS.tmp log=$LOG_DIR/maven.log
    say "fetching Kafka $KAFKA_VERSION jars from Maven Central (log: $log)"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -Dkafka.version="$KAFKA_VERSION" >"$log" 2>&1; then
        tail_log "$log"
        die "Maven could not fetch Kafka $KAFKA_VERSION (org.apache.kafka:kafka_2.13)"
    fi
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "Maven ran but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.complete"
}

# kafka_write_config NODES I: server.properties of node I in an NODES-node cluster.
kafka_write_config() {
    local nodes=$1 i=$2 dir voters="" j rf isr
    dir=$(kafka_mode_dir "$nodes")/node$i
    mkdir -p "$dir/data" "$LOG_DIR/kafka-$i"
    for (( j = 1; j <= nodes; j++ )); do
        voters+="${voters:+,}$j@127.0.0.1:$(kafka_ctl_port "$j")"
    done
    if [ "$nodes" -ge 3 ]; then rf=3; isr=2; else rf=$nodes; isr=1; fi
    cat >"$dir/server.properties" <<EOF
# Generated by deploy/local/stack.sh at each start; edits are overwritten.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$i"),CONTROLLER://127.0.0.1:$(kafka_ctl_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$i")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data

num.partitions=6
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=12
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true

# A small dev box: fewer threads, smaller segments.
num.network.threads=2
num.io.threads=4
log.segment.bytes=67108864
log.retention.hours=168
EOF
    echo "$dir"
}

# kafka_start_node NODES I: start node I (format its storage the first time).
kafka_start_node() {
    local nodes=$1 i=$2 dir mode_dir port cid out
    port=$(kafka_port "$i")
    if kafka_pid "$i" >/dev/null; then return 0; fi
    if port_open "$port"; then
        die "port $port (Kafka node $i) is already used by $(port_owner "$port"); stop it or set STACK_KAFKA_PORT"
    fi
    if port_open "$(kafka_ctl_port "$i")"; then
        die "port $(kafka_ctl_port "$i") (Kafka node $i's controller) is already used by $(port_owner "$(kafka_ctl_port "$i")"); stop it or set STACK_KAFKA_PORT"
    fi
    mode_dir=$(kafka_mode_dir "$nodes")
    dir=$(kafka_write_config "$nodes" "$i")
    out=$LOG_DIR/kafka-$i.out
    if [ ! -f "$mode_dir/cluster.id" ]; then
        kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
            kafka.tools.StorageTool random-uuid >"$mode_dir/cluster.id.tmp" 2>>"$out" ||
            { tail_log "$out"; die "Kafka: could not generate a cluster id"; }
        mv "$mode_dir/cluster.id.tmp" "$mode_dir/cluster.id"
    fi
    cid=$(tr -d '[:space:]' <"$mode_dir/cluster.id")
    if [ ! -f "$dir/data/meta.properties" ]; then
        kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
            kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" >>"$out" 2>&1 ||
            { tail_log "$out"; die "Kafka: formatting the storage of node $i failed"; }
    fi
    start_bg "$(kafka_pidfile "$i")" "$out" \
        java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR/kafka-$i" \
        -Dlog4j.configuration="file:$HERE/kafka-log4j.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
}

kafka_alive_node() { kafka_pid "$1" >/dev/null; }
# kafka_node_answers I: node I answers a metadata request and lists itself.
kafka_node_answers() {
    local out
    out=$(timeout 10 kcat -b "127.0.0.1:$(kafka_port "$1")" -L -m 3 2>/dev/null) || return 1
    grep -qE "^ +broker $1 at " <<<"$out"
}
# kafka_all_listed NODES I: node I's metadata lists all NODES brokers.
kafka_all_listed() { [ "$(kafka_broker_count "$(kafka_port "$2")")" -ge "$1" ]; }
kafka_alive_any() { kafka_pid "$2" >/dev/null; }

kafka_up() {
    local nodes=$1 i started=()
    need java
    need kcat
    mkdir -p "$STACK_DIR/kafka"
    KAFKA_T0=$(now)
    kafka_fetch_libs
    echo "$nodes" >"$kafka_nodes_file"
    for (( i = 1; i <= nodes; i++ )); do
        if kafka_pid "$i" >/dev/null; then continue; fi
        if port_open "$(kafka_port "$i")" && kafka_node_answers "$i"; then
            warn "kafka-$i: 127.0.0.1:$(kafka_port "$i") already served by $(port_owner "$(kafka_port "$i")"), not started by stack.sh: left alone"
            continue
        fi
        kafka_start_node "$nodes" "$i"
        started+=("$i")
    done
    KAFKA_STARTED=("${started[@]}")
}

kafka_wait() {
    local nodes=$1 i
    for (( i = 1; i <= nodes; i++ )); do
        wait_until "kafka-$i (127.0.0.1:$(kafka_port "$i"))" "$LOG_DIR/kafka-$i.out:$LOG_DIR/kafka-$i/server.log" \
            kafka_alive_node kafka_node_answers "$i"
    done
    wait_until "kafka cluster ($nodes brokers)" "$LOG_DIR/kafka-1.out:$LOG_DIR/kafka-1/server.log" \
        kafka_alive_any kafka_all_listed "$nodes" 1
    if [ ${#KAFKA_STARTED[@]} -gt 0 ]; then
        say "kafka: node(s) ${KAFKA_STARTED[*]} started, $nodes broker(s) answer ($(( $(now) - KAFKA_T0 ))s after start)"
    else
        say "kafka: already up ($nodes broker(s))"
    fi
}

kafka_stop_all() {
    local pids=() names=() f pid i
    for f in "$RUN_DIR"/kafka-*.pid; do
        [ -e "$f" ] || continue
        if pid=$(pidfile_pid "$f" kafka.Kafka); then
            i=${f##*/kafka-}; i=${i%.pid}
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid"); names+=("kafka-$i")
        fi
        rm -f "$f"
    done
    # All nodes get SIGTERM at once (a lone last node of a quorum can hang in
    # controlled shutdown); stop_pid then waits and kills stragglers.
    for i in "${!pids[@]}"; do
        stop_pid "${names[$i]}" "${pids[$i]}"
    done
    [ ${#pids[@]} -eq 0 ] || say "kafka: stopped ${names[*]}"
}

kafka_node_arg() {
    local n i=${1:-}
    n=$(kafka_recorded_nodes)
    [ -n "$n" ] || die "Kafka was never started here (no $kafka_nodes_file): run 'stack.sh up' first"
    [[ $i =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le "$n" ] ||
        die "kafka node must be 1..$n (the cluster has $n node(s)), got '${i}'"
    echo "$n"
}

cmd_kafka_stop() {
    local i=${1:-} sig=TERM n pid
    [ "${2:-}" = --kill ] && sig=KILL
    n=$(kafka_node_arg "$i")
    if pid=$(kafka_pid "$i"); then
        stop_pid "kafka-$i" "$pid" "$sig"
        say "kafka-$i stopped (SIG$sig)"
    else
        say "kafka-$i was not running"
    fi
    rm -f "$(kafka_pidfile "$i")"
    : "$n"
}

cmd_kafka_start() {
    local i=${1:-} n
    n=$(kafka_node_arg "$i")
    need kcat
    kafka_fetch_libs
    if kafka_pid "$i" >/dev/null; then
        say "kafka-$i already running"
    else
        kafka_start_node "$n" "$i"
    fi
    wait_until "kafka-$i (127.0.0.1:$(kafka_port "$i"))" "$LOG_DIR/kafka-$i.out:$LOG_DIR/kafka-$i/server.log" \
        kafka_alive_node kafka_node_answers "$i"
    say "kafka-$i up on 127.0.0.1:$(kafka_port "$i")"
}

kafka_status() {
    local n i pid bad=0 port
    n=$(kafka_recorded_nodes)
    n=${n:-${REQ_NODES:-1}}
    for (( i = 1; i <= n; i++ )); do
        port=$(kafka_port "$i")
        if pid=$(kafka_pid "$i") && kafka_node_answers "$i"; then
            status_line "kafka-$i" up "127.0.0.1:$port" "$pid"
        elif [ -z "${pid:-}" ] && [ "$(kafka_broker_count "$port")" -gt 0 ]; then
            status_line "kafka-$i" up "127.0.0.1:$port" "(not started by stack.sh)"
        else
            status_line "kafka-$i" down "127.0.0.1:$port" "${pid:-}"
            bad=1
        fi
        pid=
    done
    return $bad
}

cmd_kafka_class() {
    [ $# -ge 1 ] || die "usage: stack.sh kafka-class CLASS [ARGS...]"
    need java
    kafka_fetch_libs >&2
    exec java -Xmx256m -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

# ---- Redis -----------------------------------------------------------------

REDIS_DIR=$STACK_DIR/redis
REDIS_PIDFILE=$RUN_DIR/redis.pid

redis_pid() { pidfile_pid "$REDIS_PIDFILE" redis-server; }
redis_answers() {
    local r
    r=$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1) || return 1
    # NOAUTH: a test has set a password on the default user; the server is up.
    [[ $r == PONG || $r == *NOAUTH* ]]
}
redis_alive() { redis_pid >/dev/null; }

redis_start() {
    need redis-server
    need redis-cli
    if redis_pid >/dev/null; then REDIS_STARTED=0; return 0; fi
    if port_open "$REDIS_PORT"; then
        if redis_answers; then
            warn "redis: 127.0.0.1:$REDIS_PORT already served by $(port_owner "$REDIS_PORT"), not started by stack.sh: left alone"
            REDIS_STARTED=0; return 0
        fi
        die "port $REDIS_PORT (Redis) is used by $(port_owner "$REDIS_PORT"); stop it or set STACK_REDIS_PORT"
    fi
    mkdir -p "$REDIS_DIR/data"
    cat >"$REDIS_DIR/redis.conf" <<EOF
# Generated by deploy/local/stack.sh at each start; edits are overwritten.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_PIDFILE
logfile $LOG_DIR/redis.log
dir $REDIS_DIR/data
appendonly yes
appendfsync everysec
save 3600 1 300 100
EOF
    redis-server "$REDIS_DIR/redis.conf" >>"$LOG_DIR/redis.log" 2>&1 ||
        { tail_log "$LOG_DIR/redis.log"; die "redis-server failed to start"; }
    await_pidfile "redis-server ($REDIS_PIDFILE)" "$LOG_DIR/redis.log" redis_pid
    REDIS_STARTED=1
}

redis_wait() {
    wait_until "redis (127.0.0.1:$REDIS_PORT)" "$LOG_DIR/redis.log" redis_alive_or_foreign redis_answers
    started_or_up redis "${REDIS_STARTED:-0}" "127.0.0.1:$REDIS_PORT"
}
redis_alive_or_foreign() { redis_alive || port_open "$REDIS_PORT"; }

redis_stop() { pidfile_stop redis "$REDIS_PIDFILE"; }

redis_status() { server_status redis redis "$REDIS_PORT"; }

# ---- PostgreSQL ------------------------------------------------------------

pg_bindir() {
    if [ -n "${STACK_PG_BIN:-}" ]; then echo "$STACK_PG_BIN"; return 0; fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: run 'make deps'"
    echo "$d"
}

# pg_as_owner CMD...: run as the OS user that owns the cluster (postgres when
# we are root: PostgreSQL refuses to run as root).
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# pg_root: folder of our cluster. $STACK_DIR/pg, unless the postgres user
# cannot reach it (e.g. STACK_DIR under /root): then a folder in /var/tmp,
# linked from $STACK_DIR/pg.
pg_root() {
    local link=$STACK_DIR/pg
    if [ -L "$link" ]; then readlink "$link"; return 0; fi
    [ -d "$STACK_DIR" ] || { echo "$link"; return 0; }
    if [ -d "$link" ] || [ "$(id -u)" -ne 0 ]; then echo "$link"; return 0; fi
    if runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
        echo "$link"
    else
        local alt
        alt=/var/tmp/tributary-stack-pg-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-8)
        mkdir -p "$alt"
        ln -s "$alt" "$link"
        echo "$alt"
    fi
}

pg_setup_paths() {
    PG_BIN=$(pg_bindir)
    PG_ROOT=$(pg_root)
    PG_DATA=$PG_ROOT/data
    PG_SOCK=$PG_ROOT/run
    # Unix socket paths are limited to 107 bytes.
    if [ $(( ${#PG_SOCK} + 16 )) -gt 107 ]; then PG_SOCK=/tmp/tributary-pg-$PG_PORT; fi
    PG_LOG=$PG_ROOT/log/postgresql.log
}

pg_pid() {
    [ -r "$PG_DATA/postmaster.pid" ] || return 1
    pidfile_pid "$PG_DATA/postmaster.pid" postgres
}
pg_alive() { pg_pid >/dev/null; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
# pg_answers: a real query as role tributary over TCP.
pg_answers() {
    local r
    r=$(PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 timeout 10 "$PG_BIN/psql" -X -qtA \
        "host=127.0.0.1 port=$PG_PORT user=$PG_USER dbname=$PG_DB" -c 'SELECT 42' 2>/dev/null) || return 1
    [ "$r" = 42 ]
}
pg_superuser_psql() {
    pg_as_owner "$PG_BIN/psql" -X -qtA -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_init() {
    mkdir -p "$PG_ROOT/log" "$PG_SOCK"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$PG_ROOT" "$PG_ROOT/log" "$PG_SOCK"
    chmod 700 "$PG_ROOT"
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    say "postgresql: initdb in $PG_DATA"
    pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_ROOT/log/initdb.log" 2>&1 ||
        { tail_log "$PG_ROOT/log/initdb.log"; die "postgresql: initdb failed"; }
}

pg_start() {
    pg_setup_paths
    if pg_alive; then PG_STARTED=0; return 0; fi
    if port_open "$PG_PORT"; then
        if pg_answers; then
            warn "postgresql: 127.0.0.1:$PG_PORT already served by $(port_owner "$PG_PORT") (not started by stack.sh) and role $PG_USER works: left alone"
            PG_STARTED=0; return 0
        fi
        die "port $PG_PORT (PostgreSQL) is used by $(port_owner "$PG_PORT"); stop it (Debian's cluster: pg_ctlcluster 15 main stop) or set STACK_PG_PORT"
    fi
    pg_init
    ln -sfn "$PG_LOG" "$LOG_DIR/postgresql.log"
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECS" \
        -o "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_SOCK" \
        start >/dev/null 2>&1 || { tail_log "$PG_LOG"; die "postgresql did not start (log: $PG_LOG)"; }
    PG_STARTED=1
}

# pg_provision: role and database tributary (idempotent).
pg_provision() {
    pg_superuser_psql >/dev/null <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
EOF
    if [ "$(pg_superuser_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
        pg_superuser_psql -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
    fi
}

pg_wait() {
    wait_until "postgresql (127.0.0.1:$PG_PORT)" "$PG_LOG" pg_alive_or_foreign pg_ready
    if [ "${PG_STARTED:-0}" = 1 ] || ! pg_answers; then
        pg_alive || die "postgresql: role $PG_USER does not work on a server not started by stack.sh"
        pg_provision || { tail_log "$PG_LOG"; die "postgresql: could not create role/database $PG_USER"; }
    fi
    wait_until "postgresql (query as $PG_USER)" "$PG_LOG" pg_alive_or_foreign pg_answers
    started_or_up postgresql "${PG_STARTED:-0}" "127.0.0.1:$PG_PORT"
}
pg_alive_or_foreign() { pg_alive || port_open "$PG_PORT"; }

# pg_ctl_stop DATA: stop the cluster in DATA (fast, then immediate).
pg_ctl_stop() {
    pg_as_owner "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t "$STOP_SECS" stop >/dev/null 2>&1 ||
        pg_as_owner "$PG_BIN/pg_ctl" -D "$1" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
}

pg_stop() {
    pg_setup_paths
    if pg_alive; then
        pg_ctl_stop "$PG_DATA"
        say "postgresql: stopped"
    fi
}

pg_status() {
    pg_setup_paths
    server_status pg postgresql "$PG_PORT"
}

# ---- MariaDB ---------------------------------------------------------------
# Debian's mariadbd (10.11) with its data under $STACK_DIR/mariadb, created on
# the first start (mariadb-install-db); never the system service (its
# /etc/mysql options are not read: --no-defaults).

MARIADB_ROOT=$STACK_DIR/mariadb
MARIADB_DATA=$MARIADB_ROOT/data
MARIADB_PIDFILE=$RUN_DIR/mariadb.pid
MARIADB_LOG=$LOG_DIR/mariadb.log

# mariadb_sock: its Unix socket (the provisioning's way in; 107 bytes at most).
mariadb_sock() {
    local s=$MARIADB_ROOT/mariadb.sock
    if [ ${#s} -gt 100 ]; then s=/tmp/tributary-mariadb-$MARIADB_PORT.sock; fi
    echo "$s"
}
# mariadb_os_user: the OS user mariadbd runs as (mysql when we are root).
mariadb_os_user() { if [ "$(id -u)" -eq 0 ]; then echo mysql; else id -un; fi; }

mariadb_pid() { pidfile_pid "$MARIADB_PIDFILE" mariadbd; }
mariadb_alive() { mariadb_pid >/dev/null; }
mariadb_alive_or_foreign() { mariadb_alive || port_open "$MARIADB_PORT"; }
# mariadb_answers: a real query as user tributary over TCP.
mariadb_answers() {
    local r
    r=$(timeout 10 mariadb --no-defaults --connect-timeout=3 -h 127.0.0.1 -P "$MARIADB_PORT" \
        -u "$MARIADB_USER" -p"$MARIADB_PASSWORD" -N -B -e 'SELECT 42' "$MARIADB_DB" 2>/dev/null) || return 1
    [ "$r" = 42 ]
}
# mariadb_socket_answers: the server answers its administrator on the socket.
mariadb_socket_answers() {
    timeout 10 mariadb --no-defaults -S "$(mariadb_sock)" -u "$(id -un)" -N -B -e 'SELECT 1' >/dev/null 2>&1
}

mariadb_init() {
    mkdir -p "$MARIADB_ROOT"
    [ "$(id -u)" -ne 0 ] || chown "$(mariadb_os_user)": "$MARIADB_ROOT"
    [ -d "$MARIADB_DATA/mysql" ] && return 0
    need mariadb-install-db
    say "mariadb: mariadb-install-db in $MARIADB_DATA"
    rm -rf "$MARIADB_DATA"
    mariadb-install-db --no-defaults --datadir="$MARIADB_DATA" --user="$(mariadb_os_user)" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$MARIADB_ROOT/install-db.log" 2>&1 ||
        { tail_log "$MARIADB_ROOT/install-db.log"; die "mariadb: mariadb-install-db failed"; }
}

mariadb_start() {
    need mariadbd
    need mariadb
    if mariadb_alive; then MARIADB_STARTED=0; return 0; fi
    if port_open "$MARIADB_PORT"; then
        if mariadb_answers; then
            warn "mariadb: 127.0.0.1:$MARIADB_PORT already served by $(port_owner "$MARIADB_PORT") (not started by stack.sh) and user $MARIADB_USER works: left alone"
            MARIADB_STARTED=0; return 0
        fi
        die "port $MARIADB_PORT (MariaDB) is used by $(port_owner "$MARIADB_PORT"); stop it (Debian's service: service mariadb stop) or set STACK_MARIADB_PORT"
    fi
    mariadb_init
    # A small dev box: a small buffer pool, no DNS lookups of clients.
    start_bg "$MARIADB_PIDFILE" "$MARIADB_LOG" \
        "$(command -v mariadbd)" --no-defaults --datadir="$MARIADB_DATA" --user="$(mariadb_os_user)" \
        --bind-address=127.0.0.1 --port="$MARIADB_PORT" --socket="$(mariadb_sock)" \
        --pid-file="$MARIADB_ROOT/mariadbd.pid" --skip-name-resolve \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
        --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --max-connections=200
    MARIADB_STARTED=1
}

# mariadb_provision: database and user tributary (idempotent), as the
# administrator mariadb-install-db made (root or the OS user, socket auth).
mariadb_provision() {
    timeout 30 mariadb --no-defaults -S "$(mariadb_sock)" -u "$(id -un)" >/dev/null <<EOSQL
CREATE DATABASE IF NOT EXISTS $MARIADB_DB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'127.0.0.1' IDENTIFIED BY '$MARIADB_PASSWORD';
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'localhost' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MARIADB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$MARIADB_USER'@'localhost';
EOSQL
}

mariadb_wait() {
    if [ "${MARIADB_STARTED:-0}" = 1 ] || ! mariadb_answers; then
        mariadb_alive || die "mariadb: user $MARIADB_USER does not work on a server not started by stack.sh"
        wait_until "mariadb (socket $(mariadb_sock))" "$MARIADB_LOG" mariadb_alive mariadb_socket_answers
        mariadb_provision || { tail_log "$MARIADB_LOG"; die "mariadb: could not create database/user $MARIADB_USER"; }
    fi
    wait_until "mariadb (127.0.0.1:$MARIADB_PORT)" "$MARIADB_LOG" mariadb_alive_or_foreign mariadb_answers
    started_or_up mariadb "${MARIADB_STARTED:-0}" "127.0.0.1:$MARIADB_PORT"
}

mariadb_stop() { pidfile_stop mariadb "$MARIADB_PIDFILE"; }

mariadb_status() { server_status mariadb mariadb "$MARIADB_PORT"; }

# ---- FerretDB --------------------------------------------------------------

FERRETDB_DIR=$STACK_DIR/ferretdb
FERRETDB_PIDFILE=$RUN_DIR/ferretdb.pid

# find_go: a Go toolchain >= 1.22 (FerretDB's go.mod).
find_go() {
    local g v minor
    for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
        [ -n "$g" ] && [ -x "$g" ] || continue
        v=$("$g" env GOVERSION 2>/dev/null) || continue
        v=${v#go1.}; minor=${v%%[!0-9]*}
        [ "${minor:-0}" -ge 22 ] && { echo "$g"; return 0; }
    done
    return 1
}

ferretdb_binary_ok() { [ -x "$FERRETDB_BIN" ] && "$FERRETDB_BIN" --version >/dev/null 2>&1; }

# ferretdb_build_steps GO TMP: fetch the module source, build the binary.
# Runs in a subshell with its output in the build log; every step checked.
ferretdb_build_steps() {
    local go=$1 tmp=$2 mod=github.com/FerretDB/FerretDB json dir
    cd "$tmp" || return 1
    json=$(GOTOOLCHAIN=local "$go" mod download -json "$mod@$FERRETDB_VERSION") ||
        { echo "go mod download $mod@$FERRETDB_VERSION failed:"; echo "$json"; return 1; }
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
    [ -d "$dir" ] || { echo "go mod download gave no source folder:"; echo "$json"; return 1; }
    cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src" && cd "$tmp/src" || return 1
    # The binary panics at start without build/version/version.txt (normally
    # written from git by FerretDB's task file).
    echo "$FERRETDB_VERSION" >build/version/version.txt || return 1
    echo "tributary-stack" >build/version/package.txt || return 1
    mkdir -p "$(dirname "$FERRETDB_BIN")" || return 1
    GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$go" build -trimpath -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb ||
        return 1
    mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
}

# ferretdb_build: build FerretDB from its module source once per version
# (`go install ...@version` does not work through this proxy; go mod download does).
ferretdb_build() {
    ferretdb_binary_ok && return 0
    local go log=$LOG_DIR/ferretdb-build.log tmp rc=0
    go=$(find_go) || die "FerretDB: no Go >= 1.22 found (PATH, /usr/local/go/bin); Debian's golang-go is too old"
    say "building FerretDB $FERRETDB_VERSION with $("$go" env GOVERSION) (about a minute; log: $log)"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/tributary-ferretdb.XXXXXX")
    ( ferretdb_build_steps "$go" "$tmp" ) >"$log" 2>&1 || rc=$?
    rm -rf "$tmp"
    if [ $rc -ne 0 ]; then tail_log "$log"; die "FerretDB $FERRETDB_VERSION build failed (log: $log)"; fi
    ferretdb_binary_ok || { tail_log "$log"; die "FerretDB built but '$FERRETDB_BIN --version' fails"; }
}

ferretdb_pid() { pidfile_pid "$FERRETDB_PIDFILE" "$FERRETDB_BIN"; }
ferretdb_alive() { ferretdb_pid >/dev/null; }
# mongo_ping PORT: send {ping: 1} to admin as an OP_MSG (MongoDB wire
# protocol) and check the reply says ok: 1. Hand-made, so no driver is needed.
mongo_ping() {
    timeout 10 python3 - "$1" <<'EOF'
import socket, struct, sys

def cstr(s):
    return s.encode() + b"\x00"

body = (b"\x10" + cstr("ping") + struct.pack("<i", 1)
        + b"\x02" + cstr("$db") + struct.pack("<i", len("admin") + 1) + cstr("admin"))
doc = struct.pack("<i", 4 + len(body) + 1) + body + b"\x00"
payload = struct.pack("<I", 0) + b"\x00" + doc            # flagBits, section kind 0
msg = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload  # OP_MSG

with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.sendall(msg)
    buf = b""
    while len(buf) < 4 or len(buf) < struct.unpack("<i", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed before the reply was complete")
        buf += chunk
length, _, response_to, opcode = struct.unpack("<iiii", buf[:16])
if opcode != 2013 or response_to != 1:
    sys.exit("unexpected reply: opcode %d, responseTo %d" % (opcode, response_to))
reply = buf[21:length]
ok = (b"\x01ok\x00" + struct.pack("<d", 1.0) in reply
      or b"\x10ok\x00" + struct.pack("<i", 1) in reply)
sys.exit(0 if ok else "reply without ok: 1: %r" % reply)
EOF
}

# ferretdb_answers: a real MongoDB-protocol ping (python3), else just TCP.
ferretdb_answers() {
    port_open "$MONGO_PORT" || return 1
    if command -v python3 >/dev/null 2>&1; then
        mongo_ping "$MONGO_PORT" >/dev/null 2>&1
    fi
}

# FerretDB keeps its data in the stack's PostgreSQL, database ferretdb
# (its PostgreSQL handler). Not SQLite: FerretDB 1.24 on SQLite commits
# every statement on its own and was found to leave a database locked after
# a client died in the middle of a write. Consequence: `stack.sh pg-stop`
# also takes FerretDB's storage away (FerretDB answers, its queries fail).
FERRETDB_PG_DB=ferretdb

# ferretdb_provision: the database for FerretDB (idempotent), and three
# settings on it, all for FerretDB 1.24's PostgreSQL backend:
#  - it looks documents up by _id as `_jsonb->'_id' @> $2`, which its own
#    btree index on (_jsonb->'_id') cannot serve: every update, delete and
#    find by _id scans the collection. An event trigger gives each table it
#    creates a GIN index on that expression (jsonb_path_ops serves @>);
#  - plan_cache_mode=force_custom_plan: the key is a parameter
#    (`_jsonb->$1`); only a custom plan matches the index expression;
#  - synchronous_commit=off: FerretDB commits each updated document on its
#    own; like MongoDB's default (w:1 without j) a crash of PostgreSQL may
#    lose the last fraction of a second of acknowledged writes, never
#    corrupt them. A local test stack only.
ferretdb_provision() {
    pg_setup_paths
    if [ "$(pg_superuser_psql -c "SELECT 1 FROM pg_database WHERE datname = '$FERRETDB_PG_DB'")" != 1 ]; then
        pg_superuser_psql -c "CREATE DATABASE $FERRETDB_PG_DB OWNER $PG_USER" >/dev/null
    fi
    pg_superuser_psql -c "ALTER DATABASE $FERRETDB_PG_DB SET synchronous_commit = off" >/dev/null
    pg_superuser_psql -c "ALTER DATABASE $FERRETDB_PG_DB SET plan_cache_mode = force_custom_plan" >/dev/null
    pg_superuser_psql -d "$FERRETDB_PG_DB" >/dev/null <<'EOF'
CREATE OR REPLACE FUNCTION tb_ferretdb_id_index() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid, c.relname, n.nspname FROM pg_event_trigger_ddl_commands() d
           JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE d.command_tag = 'CREATE TABLE' AND c.relkind = 'r'
  LOOP
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = r.oid AND attname = '_jsonb') THEN
      EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb -> ''_id'') jsonb_path_ops)',
                     left(r.relname, 52) || '_tb_id_gin', r.nspname, r.relname);
    END IF;
  END LOOP;
END $f$;
DO $d$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'tb_ferretdb_id_index') THEN
    CREATE EVENT TRIGGER tb_ferretdb_id_index ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
      EXECUTE FUNCTION tb_ferretdb_id_index();
  END IF;
END $d$;
EOF
}

# ferretdb_old_handler: the running FerretDB was started with another
# backend (an earlier stack.sh ran it on SQLite).
ferretdb_old_handler() {
    local pid
    pid=$(ferretdb_pid) || return 1
    ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--handler=postgresql"
}

ferretdb_start() {
    if ferretdb_alive && ferretdb_old_handler; then
        say "ferretdb: running on another backend (SQLite): restarting it on PostgreSQL"
        ferretdb_stop
    fi
    if ferretdb_alive; then FERRETDB_STARTED=0; return 0; fi
    if port_open "$MONGO_PORT"; then
        warn "mongo: 127.0.0.1:$MONGO_PORT is already served by $(port_owner "$MONGO_PORT"), not started by stack.sh: left alone"
        FERRETDB_STARTED=0; return 0
    fi
    ferretdb_binary_ok || die "FerretDB binary missing: $FERRETDB_BIN"
    ferretdb_provision || die "ferretdb: could not prepare database $FERRETDB_PG_DB in PostgreSQL"
    mkdir -p "$FERRETDB_DIR/state"
    start_bg "$FERRETDB_PIDFILE" "$LOG_DIR/ferretdb.log" \
        "$FERRETDB_BIN" --listen-addr="127.0.0.1:$MONGO_PORT" --handler=postgresql \
        --postgresql-url="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$FERRETDB_PG_DB" \
        --state-dir="$FERRETDB_DIR/state" \
        --telemetry=disable --debug-addr=- --log-level=warn --no-log-uuid
    FERRETDB_STARTED=1
}

ferretdb_wait() {
    wait_until "ferretdb (127.0.0.1:$MONGO_PORT)" "$LOG_DIR/ferretdb.log" ferretdb_alive_or_foreign ferretdb_answers
    started_or_up ferretdb "${FERRETDB_STARTED:-0}" "127.0.0.1:$MONGO_PORT"
}
ferretdb_alive_or_foreign() { ferretdb_alive || port_open "$MONGO_PORT"; }

ferretdb_stop() { pidfile_stop ferretdb "$FERRETDB_PIDFILE"; }

ferretdb_status() { server_status ferretdb ferretdb "$MONGO_PORT"; }

# ---- Schema Registry (Apicurio) ---------------------------------------------

# Apicurio Registry 3 (Apache-2.0): the Quarkus app from Maven Central
# (io.apicurio:apicurio-registry-app, classifier all, a tar.gz), run with a
# Java >= 21. Its storage is SQL on the stack's PostgreSQL (database
# registry), so schemas and ids survive a restart; its Confluent-compatible
# API is under /apis/ccompat/v7; global compatibility BACKWARD (Apicurio's
# default is NONE).
REGISTRY_PIDFILE=$RUN_DIR/registry.pid
REGISTRY_PG_DB=registry
REGISTRY_API=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7

registry_fetch() {
    [ -f "$REGISTRY_HOME/.complete" ] && return 0
    need mvn
    local tmp=$REGISTRY_HOME.tmp log=$LOG_DIR/maven-registry.log
    say "fetching Apicurio Registry $REGISTRY_VERSION from Maven Central (log: $log)"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -B -q dependency:copy \
            -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
            -DoutputDirectory="$tmp" >"$log" 2>&1; then
        tail_log "$log"
        die "Maven could not fetch io.apicurio:apicurio-registry-app:$REGISTRY_VERSION (tar.gz, all)"
    fi
    tar xzf "$tmp/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz" -C "$tmp" ||
        die "could not unpack apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
    rm -f "$tmp/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
    [ -f "$tmp/quarkus-run.jar" ] || die "Apicurio unpacked without quarkus-run.jar in $tmp"
    rm -rf "$REGISTRY_HOME"
    mv "$tmp" "$REGISTRY_HOME"
    touch "$REGISTRY_HOME/.complete"
}

registry_pid() { pidfile_pid "$REGISTRY_PIDFILE" "$REGISTRY_HOME/quarkus-run.jar"; }
registry_alive() { registry_pid >/dev/null; }
registry_alive_or_foreign() { registry_alive || port_open "$REGISTRY_PORT"; }
# registry_answers: the Confluent API lists subjects.
registry_answers() {
    [ "$(timeout 5 curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_API/subjects" 2>/dev/null)" = 200 ]
}

registry_provision() {
    pg_setup_paths
    if [ "$(pg_superuser_psql -c "SELECT 1 FROM pg_database WHERE datname = '$REGISTRY_PG_DB'")" != 1 ]; then
        pg_superuser_psql -c "CREATE DATABASE $REGISTRY_PG_DB OWNER $PG_USER" >/dev/null
    fi
}

registry_start() {
    if registry_alive; then REGISTRY_STARTED=0; return 0; fi
    if port_open "$REGISTRY_PORT"; then
        if registry_answers; then
            warn "registry: 127.0.0.1:$REGISTRY_PORT already served by $(port_owner "$REGISTRY_PORT"), not started by stack.sh: left alone"
            REGISTRY_STARTED=0; return 0
        fi
        die "port $REGISTRY_PORT (Schema Registry) is used by $(port_owner "$REGISTRY_PORT"); stop it or set STACK_REGISTRY_PORT"
    fi
    port_open "$REGISTRY_MGMT_PORT" &&
        die "port $REGISTRY_MGMT_PORT (the registry's management port) is used by $(port_owner "$REGISTRY_MGMT_PORT"); set STACK_REGISTRY_MGMT_PORT"
    [ -x "$REGISTRY_JAVA" ] || die "registry: $REGISTRY_JAVA not found (Apicurio 3 needs Java >= 21; set STACK_REGISTRY_JAVA)"
    registry_fetch
    registry_provision || die "registry: could not prepare database $REGISTRY_PG_DB in PostgreSQL"
    # A small pool (its default keeps 20 connections open), C1 only (starts faster).
    start_bg "$REGISTRY_PIDFILE" "$LOG_DIR/registry.log" \
        "$REGISTRY_JAVA" -Xms64m -Xmx"$REGISTRY_HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
        -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=postgresql \
        -Dapicurio.datasource.url="jdbc:postgresql://127.0.0.1:$PG_PORT/$REGISTRY_PG_DB" \
        -Dapicurio.datasource.username="$PG_USER" -Dapicurio.datasource.password="$PG_PASSWORD" \
        -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
        -Dapicurio.datasource.jdbc.max-size=10 \
        -Dquarkus.log.level=WARN -Dquarkus.log.category.io.apicurio.level=INFO \
        -jar "$REGISTRY_HOME/quarkus-run.jar"
    REGISTRY_T0=$(now)
    REGISTRY_STARTED=1
}

# registry_configure: global compatibility BACKWARD (kept in its storage).
registry_configure() {
    local out
    out=$(timeout 10 curl -s -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
        --data '{"compatibility":"BACKWARD"}' -w ' %{http_code}' "$REGISTRY_API/config" 2>&1) ||
        die "registry: could not set global compatibility BACKWARD: $out"
    [[ $out == *' 200' ]] || die "registry: setting compatibility BACKWARD answered: $out"
}

registry_wait() {
    wait_until "registry (127.0.0.1:$REGISTRY_PORT)" "$LOG_DIR/registry.log" registry_alive_or_foreign registry_answers
    registry_configure
    started_or_up registry "${REGISTRY_STARTED:-0}" \
        "127.0.0.1:$REGISTRY_PORT ($REGISTRY_API, BACKWARD; $(( $(now) - ${REGISTRY_T0:-0} ))s)"
}

registry_stop() { pidfile_stop registry "$REGISTRY_PIDFILE"; }

registry_status() { server_status registry registry "$REGISTRY_PORT"; }

# ---- the secure set (SASL_SSL Kafka, Redis ACL users, PostgreSQL hostssl) ----

# shellcheck source=stack-secure.sh
. "$HERE/stack-secure.sh"

# ---- commands --------------------------------------------------------------

prepare_dirs() { mkdir -p "$STACK_DIR" "$RUN_DIR" "$LOG_DIR" "$STACK_CACHE_DIR"; }

# resolve_nodes: node count for `up` (flag > env > the running cluster > 1).
resolve_nodes() {
    local running req=${REQ_NODES:-${STACK_KAFKA_NODES:-}}
    running=$(kafka_running_nodes)
    if [ -z "$req" ]; then req=${running:-1}; fi
    [[ $req =~ ^[1-5]$ ]] || die "--kafka-nodes must be 1..5 (1 or 3 are the tested ones), got '$req'"
    if [ -n "$running" ] && [ "$running" != "$req" ]; then
        die "Kafka runs with $running node(s), $req asked: run 'stack.sh down' first"
    fi
    echo "$req"
}

cmd_up() {
    local nodes t0 build_pid=""
    t0=$(now)
    prepare_dirs
    nodes=$(resolve_nodes)
    # The FerretDB build (the slow part of a cold start) runs while Kafka
    # and the databases start.
    if ! ferretdb_binary_ok; then
        ferretdb_build &
        build_pid=$!
    fi
    KAFKA_STARTED=()
    kafka_up "$nodes"
    redis_start
    pg_start
    mariadb_start
    if [ -n "$build_pid" ]; then
        wait "$build_pid" || die "FerretDB build failed (log: $LOG_DIR/ferretdb-build.log)"
    fi
    redis_wait
    pg_wait
    mariadb_wait
    ferretdb_start # on PostgreSQL: after pg_wait
    [ "$REGISTRY_ON" = 0 ] || registry_start # on PostgreSQL too; starts while the rest is awaited
    ferretdb_wait
    kafka_wait "$nodes"
    [ "$REGISTRY_ON" = 0 ] || registry_wait
    say "up in $(( $(now) - t0 ))s; 'stack.sh env' prints the connection settings"
    [ "${SECURE:-0}" = 0 ] || sec_up
}

cmd_down() {
    [ -d "$STACK_DIR" ] || { say "nothing to stop ($STACK_DIR does not exist)"; return 0; }
    sec_down
    registry_stop
    ferretdb_stop
    kafka_stop_all
    redis_stop
    mariadb_stop
    pg_stop
    if [ "${PURGE:-0}" = 1 ]; then
        local pgroot
        pgroot=$(pg_root)
        [ "$pgroot" = "$STACK_DIR/pg" ] || rm -rf "$pgroot"
        [ "$pgroot-secure" = "$STACK_DIR/pg-secure" ] || rm -rf "$pgroot-secure"
        # Downloads and builds (cache/) survive a purge; rm -rf the folder for all.
        find "$STACK_DIR" -mindepth 1 -maxdepth 1 ! -path "$STACK_CACHE_DIR" -exec rm -rf {} +
        say "purged data and logs in $STACK_DIR (kept $STACK_CACHE_DIR)"
    fi
}

cmd_status() {
    local bad=0
    kafka_status || bad=1
    redis_status || bad=1
    pg_status || bad=1
    mariadb_status || bad=1
    ferretdb_status || bad=1
    if [ "$REGISTRY_ON" != 0 ] || registry_alive; then registry_status || bad=1; fi
    if [ "${SECURE:-0}" = 1 ] || sec_kafka_alive || sec_redis_alive; then sec_status || bad=1; fi
    return $bad
}

cmd_env() {
    local n i bs=""
    if [ "${SECURE:-0}" = 1 ]; then sec_env; return 0; fi
    n=$(kafka_recorded_nodes); n=${n:-1}
    for (( i = 1; i <= n; i++ )); do bs+="${bs:+,}127.0.0.1:$(kafka_port "$i")"; done
    cat <<EOF
STACK_KAFKA_BOOTSTRAP=$bs
STACK_REDIS_HOST=127.0.0.1
STACK_REDIS_PORT=$REDIS_PORT
STACK_PG_CONNINFO='host=127.0.0.1 port=$PG_PORT user=$PG_USER password=$PG_PASSWORD dbname=$PG_DB'
STACK_MONGO_URI=mongodb://127.0.0.1:$MONGO_PORT/
STACK_MARIADB_HOST=127.0.0.1
STACK_MARIADB_PORT=$MARIADB_PORT
STACK_MARIADB_USER=$MARIADB_USER
STACK_MARIADB_PASSWORD=$MARIADB_PASSWORD
STACK_MARIADB_DATABASE=$MARIADB_DB
STACK_REGISTRY_URL=$REGISTRY_API
EOF
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-2}"
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    REQ_NODES=""
    SECURE=0
    PURGE=${STACK_PURGE:-0}
    local args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --kafka-nodes) [ $# -ge 2 ] || die "--kafka-nodes needs a number"; REQ_NODES=$2; shift 2 ;;
            --kafka-nodes=*) REQ_NODES=${1#*=}; shift ;;
            --purge) PURGE=1; shift ;;
            --secure) SECURE=1; shift ;;
            *) args+=("$1"); shift ;;
        esac
    done
    case $cmd in
        up)             cmd_up ;;
        down)           cmd_down ;;
        status)         cmd_status ;;
        env)            cmd_env ;;
        kafka-stop)     prepare_dirs; cmd_kafka_stop "${args[@]}" ;;
        kafka-start)    prepare_dirs; cmd_kafka_start "${args[@]}" ;;
        kafka-class)    prepare_dirs; cmd_kafka_class "${args[@]}" ;;
        kafka-rotate)   prepare_dirs; sec_kafka_alive || die "kafka-rotate: the secure Kafka is not running"; sec_kafka_rotate "${args[@]}" ;;
        redis-stop)     redis_stop ;;
        redis-start)    prepare_dirs; redis_start; redis_wait ;;
        pg-stop)        pg_stop ;;
        pg-start)       prepare_dirs; pg_start; pg_wait ;;
        mariadb-stop)   mariadb_stop ;;
        mariadb-start)  prepare_dirs; mariadb_start; mariadb_wait ;;
        ferretdb-stop)  ferretdb_stop ;;
        ferretdb-start) prepare_dirs; ferretdb_build; pg_setup_paths; pg_wait; ferretdb_start; ferretdb_wait ;;
        registry-stop)  registry_stop ;;
        registry-start) prepare_dirs; pg_setup_paths; pg_wait; registry_start; registry_wait ;;
        -h|--help|help) usage 0 ;;
        "")             usage 2 ;;
        *)              printf 'stack: unknown command: %s\n\n' "$cmd" >&2; usage 2 >&2 ;;
    esac
}

main "$@"
