# deploy/local/stack-secure.sh — the secure set of the local stack, sourced by
# stack.sh (`stack.sh up --secure`): beside the plain servers, on other ports,
#   - Kafka (its own KRaft node and data) with one SASL_SSL listener
#     (SCRAM-SHA-512, credentials added at format time), the controller on
#     mutual TLS, StandardAuthorizer, allow.everyone.if.no.acl.found=false,
#     super user User:admin, ACLs per service principal;
#   - Redis with one ACL user per service, the default user off;
#   - PostgreSQL, a second cluster: hostssl + scram-sha-256 only, one role per
#     sink with the least privileges it needs.
# Certificates: a local CA and one server certificate (127.0.0.1, localhost)
# made with openssl once, under $STACK_DIR/secure/tls, reused on each start.
# Secrets: one file per credential under $STACK_DIR/secure/secrets (0600).
#
# Env: STACK_SECURE_KAFKA_PORT (19093; its controller on +1)
#      STACK_SECURE_REDIS_PORT (16380)  STACK_SECURE_PG_PORT (15433)
#      STACK_SECURE_DATASETS (the datasets of proto/*.rules.json): the
#      topics the ACLs name.

SEC_KAFKA_PORT=${STACK_SECURE_KAFKA_PORT:-19093}
SEC_KAFKA_CTL_PORT=$(( SEC_KAFKA_PORT + 1 ))
SEC_REDIS_PORT=${STACK_SECURE_REDIS_PORT:-16380}
SEC_REDIS_TLS_PORT=${STACK_SECURE_REDIS_TLS_PORT:-16381}
SEC_PG_PORT=${STACK_SECURE_PG_PORT:-15433}
SEC_DIR=$STACK_DIR/secure
SEC_TLS=$SEC_DIR/tls
SEC_SECRETS=$SEC_DIR/secrets
SEC_KAFKA_DIR=$SEC_DIR/kafka
SEC_KAFKA_PIDFILE=$RUN_DIR/secure-kafka.pid
SEC_KAFKA_OUT=$LOG_DIR/kafka-secure.out
SEC_REDIS_DIR=$SEC_DIR/redis
SEC_REDIS_PIDFILE=$RUN_DIR/secure-redis.pid
SEC_PG_DB=tributary
# The service principals (Kafka users, Redis users; PostgreSQL roles for the
# sinks and recon) and the administrator of the tests.
SEC_PRINCIPALS="admin ingest validator cache-feeder persister recon"
SEC_SERVER_CN=tributary-secure-server

sec_datasets() {
    if [ -n "${STACK_SECURE_DATASETS:-}" ]; then echo "$STACK_SECURE_DATASETS"; return 0; fi
    local f names=""
    for f in "$REPO"/proto/*.rules.json; do
        [ -e "$f" ] || continue
        f=${f##*/}; names+="${names:+ }${f%.rules.json}"
    done
    echo "$names"
}

# sec_secret NAME: path of the secret file NAME (made on first use: 32
# random alphanumerics, mode 0600).
sec_secret() {
    local f=$SEC_SECRETS/$1
    if [ ! -s "$f" ]; then
        ( umask 077; mkdir -p "$SEC_SECRETS"
          openssl rand -base64 48 | LC_ALL=C tr -dc 'A-Za-z0-9' | cut -c1-32 | tr -d '\n' >"$f.tmp" &&
          [ "$(wc -c <"$f.tmp")" -ge 30 ] && mv "$f.tmp" "$f" ) ||
            die "secure: could not write $f"
    fi
    echo "$f"
}
sec_password() { cat "$(sec_secret "$1")"; }

# ---- certificates -----------------------------------------------------------

# sec_tls: the CA (ca.pem, ca.key) and the server certificate (server.pem,
# server.key, PKCS#8) signed by it for 127.0.0.1 and localhost; kafka.pem is
# the broker's PEM key store (key then certificate). Made once.
sec_tls() {
    need openssl
    mkdir -p "$SEC_TLS"
    chmod 700 "$SEC_DIR" "$SEC_TLS" 2>/dev/null || true
    [ -s "$SEC_TLS/kafka.pem" ] && [ -s "$SEC_TLS/server.pem" ] && [ -s "$SEC_TLS/ca.pem" ] && return 0
    local log=$LOG_DIR/secure-tls.log
    say "secure: making a local CA and the server certificate in $SEC_TLS"
    (
        set -e
        umask 077
        cd "$SEC_TLS"
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key
        openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=tributary local CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -out ca.pem
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key
        openssl req -new -key server.key -subj "/CN=$SEC_SERVER_CN" -out server.csr
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
            -days 825 -extfile server.ext -out server.pem
        cat server.key server.pem >kafka.pem
        rm -f server.csr server.ext ca.srl
        chmod 600 ca.key server.key kafka.pem
        chmod 644 ca.pem server.pem
    ) >"$log" 2>&1 || { tail_log "$log"; die "secure: openssl could not make the certificates (log: $log)"; }
}

# ---- Kafka (SASL_SSL, SCRAM-SHA-512, ACLs) ---------------------------------

sec_kafka_pid() { pidfile_pid "$SEC_KAFKA_PIDFILE" "$SEC_KAFKA_DIR/server.properties"; }
sec_kafka_alive() { sec_kafka_pid >/dev/null; }

# sec_kafka_client_props USER FILE: a Java client configuration for USER.
sec_kafka_client_props() {
    ( umask 077
      cat >"$2" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="$(sec_password "kafka-$1.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$SEC_TLS/ca.pem
EOF
    )
}

# sec_kafka_rotate USER: a new SCRAM-SHA-512 password for the service
# principal USER, while everything runs: the broker's credential is altered
# first (ConfigCommand as admin), then the secret file is replaced at once
# (a new 0600 file renamed over it) and USER's Java client file rewritten.
# Connections already authenticated stay up (the broker sets no
# connections.max.reauth.ms); a service reads its *_file at start, so restart
# it to connect with the new password (docs/SECURITY.md, "Rotation"). Not for
# admin: the broker's own server.properties holds that one.
sec_kafka_rotate() {
    local u=${1:-} f new
    case " $SEC_PRINCIPALS " in
        *" $u "*) [ "$u" != admin ] || die "kafka-rotate: not the admin (the broker's server.properties holds it)" ;;
        *) die "kafka-rotate: no such principal '$u' (one of: $SEC_PRINCIPALS)" ;;
    esac
    f=$SEC_SECRETS/kafka-$u.password
    [ -s "$f" ] || die "kafka-rotate: $f missing: is the secure set up?"
    ( umask 077
      openssl rand -base64 48 | LC_ALL=C tr -dc 'A-Za-z0-9' | cut -c1-32 | tr -d '\n' >"$f.new" ) ||
        die "kafka-rotate: could not write $f.new"
    new=$(cat "$f.new")
    [ "${#new}" -ge 30 ] || { rm -f "$f.new"; die "kafka-rotate: short random password"; }
    kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
        kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$SEC_KAFKA_PORT" \
        --command-config "$SEC_DIR/admin.properties" --alter --entity-type users --entity-name "$u" \
        --add-config "SCRAM-SHA-512=[iterations=4096,password=$new]" >>"$LOG_DIR/kafka-secure-rotate.log" 2>&1 ||
        { rm -f "$f.new"; tail_log "$LOG_DIR/kafka-secure-rotate.log"; die "kafka-rotate: altering the credential of $u failed"; }
    mv "$f.new" "$f"
    sec_kafka_client_props "$u" "$SEC_DIR/kafka-$u.properties"
    say "secure kafka: the password of $u rotated (the broker's credential, $f); restart the services that use it"
}

# sec_kafka_answers: the admin gets metadata over SASL_SSL with the CA verified.
sec_kafka_answers() {
    local out
    out=$(timeout 10 kcat -b "127.0.0.1:$SEC_KAFKA_PORT" -X security.protocol=SASL_SSL \
        -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=admin \
        -X sasl.password="$(sec_password kafka-admin.password)" \
        -X ssl.ca.location="$SEC_TLS/ca.pem" -L -m 3 2>/dev/null) || return 1
    grep -qE '^ +broker 1 at ' <<<"$out"
}

sec_kafka_write_config() {
    mkdir -p "$SEC_KAFKA_DIR/data" "$LOG_DIR/kafka-secure"
    ( umask 077
      cat >"$SEC_KAFKA_DIR/server.properties" <<EOF
# Generated by deploy/local/stack.sh up --secure at each start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$SEC_KAFKA_CTL_PORT
listeners=SASL_SSL://127.0.0.1:$SEC_KAFKA_PORT,CONTROLLER://127.0.0.1:$SEC_KAFKA_CTL_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$SEC_KAFKA_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
log.dirs=$SEC_KAFKA_DIR/data

# TLS: the stack's server certificate, its CA as the trust store. The
# controller listener takes only clients with a certificate of that CA (the
# broker itself: principal User:CN=$SEC_SERVER_CN).
ssl.keystore.type=PEM
ssl.keystore.location=$SEC_TLS/kafka.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SEC_TLS/ca.pem
ssl.endpoint.identification.algorithm=https
listener.name.controller.ssl.client.auth=required

# SASL/SCRAM on the broker listener (credentials in the metadata log, added
# at format time); the broker's own connections as admin.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(sec_password kafka-admin.password)";

# ACLs: nothing without one; admin and the broker are super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=$SEC_SERVER_CN

num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
log.segment.bytes=67108864
log.retention.hours=168
EOF
    )
}

sec_kafka_start() {
    if sec_kafka_alive; then SEC_KAFKA_STARTED=0; return 0; fi
    local p
    for p in "$SEC_KAFKA_PORT" "$SEC_KAFKA_CTL_PORT"; do
        port_open "$p" && die "port $p (secure Kafka) is already used by $(port_owner "$p"); stop it or set STACK_SECURE_KAFKA_PORT"
    done
    need java
    need kcat
    kafka_fetch_libs
    sec_kafka_write_config
    if [ ! -f "$SEC_KAFKA_DIR/data/meta.properties" ]; then
        local cid args=() u
        cid=$(kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
            kafka.tools.StorageTool random-uuid 2>>"$SEC_KAFKA_OUT" | tr -d '[:space:]') ||
            { tail_log "$SEC_KAFKA_OUT"; die "secure Kafka: could not generate a cluster id"; }
        for u in $SEC_PRINCIPALS; do
            args+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(sec_password "kafka-$u.password")]")
        done
        # The output names no password (StorageTool prints the folders it formats).
        kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
            kafka.tools.StorageTool format -t "$cid" -c "$SEC_KAFKA_DIR/server.properties" \
            "${args[@]}" >>"$SEC_KAFKA_OUT" 2>&1 ||
            { tail_log "$SEC_KAFKA_OUT"; die "secure Kafka: formatting the storage failed"; }
        rm -f "$SEC_KAFKA_DIR/acls.done"
    fi
    start_bg "$SEC_KAFKA_PIDFILE" "$SEC_KAFKA_OUT" \
        java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR/kafka-secure" \
        -Dlog4j.configuration="file:$HERE/kafka-log4j.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$SEC_KAFKA_DIR/server.properties"
    SEC_KAFKA_STARTED=1
    SEC_KAFKA_T0=$(now)
}

# sec_acl ARGS...: one kafka-acls run as admin (AclCommand).
sec_acl() {
    kafka_java -Dlog4j.configuration="file:$HERE/kafka-tools-log4j.properties" \
        kafka.admin.AclCommand --bootstrap-server "127.0.0.1:$SEC_KAFKA_PORT" \
        --command-config "$SEC_DIR/admin.properties" --add --force "$@" >>"$LOG_DIR/kafka-secure-acls.log" 2>&1 ||
        { tail_log "$LOG_DIR/kafka-secure-acls.log"; die "secure Kafka: kafka-acls $* failed"; }
}

# sec_topic_args SUFFIX...: --topic D.SUFFIX for each dataset D.
sec_topic_args() {
    local d s
    for d in $(sec_datasets); do
        for s in "$@"; do printf -- '--topic\n%s.%s\n' "$d" "$s"; done
    done
}

# sec_kafka_acls: the ACLs of each service principal (once per data folder
# and dataset list; acls.done records what was made).
sec_kafka_acls() {
    local spec="v2 $(sec_datasets)"
    [ "$(cat "$SEC_KAFKA_DIR/acls.done" 2>/dev/null)" = "$spec" ] && return 0
    sec_kafka_client_props admin "$SEC_DIR/admin.properties"
    local t0 a
    t0=$(now)
    : >"$LOG_DIR/kafka-secure-acls.log"
    # ingest: writes (and auto-creates) <dataset>.raw and audit.events, in
    # transactions named tributary-ingest-<batch>; keeps its checkpoints in
    # tributary.ingest.checkpoints and reads them back (group
    # tributary-ingest-ckpt-<batch>).
    mapfile -t a < <(sec_topic_args raw)
    sec_acl --allow-principal User:ingest --operation Write --operation Describe --operation Create \
        "${a[@]}" --topic audit.events
    sec_acl --allow-principal User:ingest --operation Write --operation Describe --operation Create \
        --operation Read --topic tributary.ingest.checkpoints
    sec_acl --allow-principal User:ingest --operation Write --operation Describe \
        --transactional-id tributary-ingest- --resource-pattern-type prefixed
    sec_acl --allow-principal User:ingest --operation Read --operation Describe \
        --group tributary-ingest-ckpt- --resource-pattern-type prefixed
    # validator: reads .raw and .retry, writes .valid, .retry, .dlq and
    # audit.events (transactional, svc-validator-<instance>), group tributary-validator.
    mapfile -t a < <(sec_topic_args raw retry)
    sec_acl --allow-principal User:validator --operation Read --operation Describe "${a[@]}"
    mapfile -t a < <(sec_topic_args valid retry dlq)
    sec_acl --allow-principal User:validator --operation Write --operation Describe --operation Create \
        "${a[@]}" --topic audit.events
    sec_acl --allow-principal User:validator --operation Write --operation Describe \
        --transactional-id svc-validator- --resource-pattern-type prefixed
    sec_acl --allow-principal User:validator --operation Read --operation Describe \
        --group tributary-validator --resource-pattern-type prefixed
    # cache-feeder and persister: read .valid, write .dlq and audit.events.
    mapfile -t a < <(sec_topic_args valid)
    sec_acl --allow-principal User:cache-feeder --allow-principal User:persister \
        --operation Read --operation Describe "${a[@]}"
    mapfile -t a < <(sec_topic_args dlq)
    sec_acl --allow-principal User:cache-feeder --allow-principal User:persister \
        --operation Write --operation Describe --operation Create "${a[@]}" --topic audit.events
    sec_acl --allow-principal User:cache-feeder --operation Read --operation Describe \
        --group tributary-cache-feeder --resource-pattern-type prefixed
    sec_acl --allow-principal User:persister --operation Read --operation Describe \
        --group svc-persister- --resource-pattern-type prefixed
    # recon: reads audit.events and .raw, group tributary-recon (and -payloads).
    mapfile -t a < <(sec_topic_args raw)
    sec_acl --allow-principal User:recon --operation Read --operation Describe "${a[@]}" --topic audit.events
    sec_acl --allow-principal User:recon --operation Read --operation Describe \
        --group tributary-recon --resource-pattern-type prefixed
    echo "$spec" >"$SEC_KAFKA_DIR/acls.done"
    say "secure Kafka: ACLs of ingest, validator, cache-feeder, persister, recon made ($(( $(now) - t0 ))s)"
}

sec_kafka_wait() {
    wait_until "secure kafka (127.0.0.1:$SEC_KAFKA_PORT)" "$SEC_KAFKA_OUT:$LOG_DIR/kafka-secure/server.log" \
        sec_kafka_alive sec_kafka_answers
    sec_kafka_acls
    started_or_up "secure kafka" "${SEC_KAFKA_STARTED:-0}" \
        "127.0.0.1:$SEC_KAFKA_PORT (SASL_SSL, SCRAM-SHA-512; $(( $(now) - ${SEC_KAFKA_T0:-0} ))s)"
}

sec_kafka_stop() {
    local pid
    if pid=$(sec_kafka_pid); then stop_pid kafka-secure "$pid"; say "secure kafka: stopped"; fi
    rm -f "$SEC_KAFKA_PIDFILE"
}

# ---- Redis (ACL users, default off) ----------------------------------------

sec_redis_pid() { pidfile_pid "$SEC_REDIS_PIDFILE" redis-server; }
sec_redis_alive() { sec_redis_pid >/dev/null; }
sec_redis_answers() {
    local r
    r=$(REDISCLI_AUTH=$(sec_password redis-admin.password) timeout 5 redis-cli --no-auth-warning \
        -h 127.0.0.1 -p "$SEC_REDIS_PORT" --user admin ping 2>&1) || return 1
    [ "$r" = PONG ]
}

# sec_redis_user NAME RULES: an ACL line with the password's SHA-256 (the
# configuration holds no password in clear).
sec_redis_user() {
    local h
    h=$(printf '%s' "$(sec_password "redis-$1.password")" | sha256sum | cut -d' ' -f1)
    echo "user $1 on #$h $2"
}

sec_redis_start() {
    need redis-server
    need redis-cli
    if sec_redis_alive; then SEC_REDIS_STARTED=0; return 0; fi
    port_open "$SEC_REDIS_PORT" && die "port $SEC_REDIS_PORT (secure Redis) is used by $(port_owner "$SEC_REDIS_PORT"); set STACK_SECURE_REDIS_PORT"
    port_open "$SEC_REDIS_TLS_PORT" && die "port $SEC_REDIS_TLS_PORT (secure Redis, TLS) is used by $(port_owner "$SEC_REDIS_TLS_PORT"); set STACK_SECURE_REDIS_TLS_PORT"
    mkdir -p "$SEC_REDIS_DIR/data"
    # cache-feeder: its two scripts (SCRIPT LOAD, EVALSHA; the scripts call
    # HMGET, HGET, HSET, SET, MSET, DEL, PEXPIRE) on its keys tb:*.
    # recon: reads only (HMGET, HGETALL, MGET) on tb:*.
    ( umask 077
      cat >"$SEC_REDIS_DIR/redis.conf" <<EOF
# Generated by deploy/local/stack.sh up --secure at each start; edits are overwritten.
bind 127.0.0.1
port $SEC_REDIS_PORT
# TLS beside the plain port (Debian's redis-server has it built in); hiredis
# 0.14 speaks no TLS: a client goes through a stunnel sidecar (docs/SECURITY.md).
tls-port $SEC_REDIS_TLS_PORT
tls-cert-file $SEC_TLS/server.pem
tls-key-file $SEC_TLS/server.key
tls-ca-cert-file $SEC_TLS/ca.pem
tls-auth-clients no
protected-mode yes
daemonize yes
pidfile $SEC_REDIS_PIDFILE
logfile $LOG_DIR/redis-secure.log
dir $SEC_REDIS_DIR/data
# Snapshots, no AOF: Redis 7.0 with the default user off refuses its own
# AOF's MULTI/EXEC on load (NOPERM) and would start empty (docs/svc-cache-feeder.md).
appendonly no
save 3600 1 300 100 60 10000
user default off resetkeys -@all
$(sec_redis_user admin '~* &* +@all')
$(sec_redis_user cache-feeder 'resetchannels ~tb:* -@all +ping +select +script|load +evalsha +eval +hmget +hget +hset +set +mset +del +pexpire')
$(sec_redis_user recon 'resetchannels ~tb:* -@all +ping +select +hmget +hgetall +mget')
EOF
    )
    redis-server "$SEC_REDIS_DIR/redis.conf" >>"$LOG_DIR/redis-secure.log" 2>&1 ||
        { tail_log "$LOG_DIR/redis-secure.log"; die "secure redis-server failed to start"; }
    await_pidfile "secure redis-server ($SEC_REDIS_PIDFILE)" "$LOG_DIR/redis-secure.log" sec_redis_alive
    SEC_REDIS_STARTED=1
}

sec_redis_wait() {
    wait_until "secure redis (127.0.0.1:$SEC_REDIS_PORT)" "$LOG_DIR/redis-secure.log" sec_redis_alive sec_redis_answers
    started_or_up "secure redis" "${SEC_REDIS_STARTED:-0}" "127.0.0.1:$SEC_REDIS_PORT (ACL users, default off)"
}

sec_redis_stop() {
    local pid
    if pid=$(sec_redis_pid); then stop_pid redis-secure "$pid"; say "secure redis: stopped"; fi
    rm -f "$SEC_REDIS_PIDFILE"
}

# ---- PostgreSQL (second cluster: hostssl + scram-sha-256) ------------------

sec_pg_paths() {
    pg_setup_paths
    SEC_PG_ROOT=$(pg_root)-secure
    SEC_PG_DATA=$SEC_PG_ROOT/data
    SEC_PG_SOCK=$SEC_PG_ROOT/run
    if [ $(( ${#SEC_PG_SOCK} + 16 )) -gt 107 ]; then SEC_PG_SOCK=/tmp/tributary-pg-$SEC_PG_PORT; fi
    SEC_PG_LOG=$SEC_PG_ROOT/log/postgresql.log
}
sec_pg_pid() {
    [ -r "$SEC_PG_DATA/postmaster.pid" ] || return 1
    pidfile_pid "$SEC_PG_DATA/postmaster.pid" postgres
}
sec_pg_alive() { sec_pg_pid >/dev/null; }
sec_pg_psql() {
    pg_as_owner "$PG_BIN/psql" -X -qtA -v ON_ERROR_STOP=1 -h "$SEC_PG_SOCK" -p "$SEC_PG_PORT" -U postgres -d "${SEC_PSQL_DB:-postgres}" "$@"
}
sec_pg_socket_answers() { [ "$(sec_pg_psql -c 'SELECT 1' 2>/dev/null)" = 1 ]; }
# sec_pg_answers: role persister over TLS (verify-full) with its password.
sec_pg_answers() {
    local r
    r=$(PGPASSWORD=$(sec_password pg-persister.password) PGCONNECT_TIMEOUT=3 timeout 10 "$PG_BIN/psql" -X -qtA \
        "host=127.0.0.1 port=$SEC_PG_PORT user=persister dbname=$SEC_PG_DB sslmode=verify-full sslrootcert=$SEC_TLS/ca.pem" \
        -c 'SELECT 42' 2>/dev/null) || return 1
    [ "$r" = 42 ]
}

sec_pg_start() {
    sec_pg_paths
    if sec_pg_alive; then SEC_PG_STARTED=0; return 0; fi
    port_open "$SEC_PG_PORT" && die "port $SEC_PG_PORT (secure PostgreSQL) is used by $(port_owner "$SEC_PG_PORT"); set STACK_SECURE_PG_PORT"
    mkdir -p "$SEC_PG_ROOT/log" "$SEC_PG_SOCK"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$SEC_PG_ROOT" "$SEC_PG_ROOT/log" "$SEC_PG_SOCK"
    chmod 700 "$SEC_PG_ROOT"
    if [ ! -f "$SEC_PG_DATA/PG_VERSION" ]; then
        say "secure postgresql: initdb in $SEC_PG_DATA"
        pg_as_owner "$PG_BIN/initdb" -D "$SEC_PG_DATA" -U postgres --encoding=UTF8 --no-locale \
            --auth-local=peer --auth-host=reject >"$SEC_PG_ROOT/log/initdb.log" 2>&1 ||
            { tail_log "$SEC_PG_ROOT/log/initdb.log"; die "secure postgresql: initdb failed"; }
    fi
    # The server's own copies of the certificate (PostgreSQL wants its key
    # owned by its user, mode 0600). Over TCP: TLS and SCRAM only.
    install -m 600 "$SEC_TLS/server.key" "$SEC_PG_DATA/server.key"
    install -m 644 "$SEC_TLS/server.pem" "$SEC_PG_DATA/server.crt"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$SEC_PG_DATA/server.key" "$SEC_PG_DATA/server.crt"
    cat >"$SEC_PG_DATA/pg_hba.conf" <<EOF
# Generated by deploy/local/stack.sh up --secure at each start; edits are overwritten.
# The administrator over the Unix socket only (its folder is the server's, 0700).
local   all       postgres                  peer map=stack
hostssl $SEC_PG_DB persister,recon 127.0.0.1/32 scram-sha-256
host    all       all        0.0.0.0/0      reject
host    all       all        ::/0           reject
EOF
    printf 'stack %s postgres\nstack postgres postgres\n' "$(id -un)" >"$SEC_PG_DATA/pg_ident.conf"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$SEC_PG_DATA/pg_hba.conf" "$SEC_PG_DATA/pg_ident.conf"
    pg_as_owner "$PG_BIN/pg_ctl" -D "$SEC_PG_DATA" -l "$SEC_PG_LOG" -w -t "$WAIT_SECS" \
        -o "-c port=$SEC_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$SEC_PG_SOCK -c ssl=on -c ssl_min_protocol_version=TLSv1.2 -c password_encryption=scram-sha-256" \
        start >/dev/null 2>&1 || { tail_log "$SEC_PG_LOG"; die "secure postgresql did not start (log: $SEC_PG_LOG)"; }
    SEC_PG_STARTED=1
}

# sec_pg_provision: database tributary (owned by postgres), roles persister
# (writes: CREATE on the database and on schema public, owns the tables it creates) and
# recon (SELECT on them; CREATE and TEMPORARY on the database for its own state
# schema and its pg_temp functions); passwords from the secrets; no other rights.
sec_pg_provision() {
    local pp rp
    pp=$(sec_password pg-persister.password)
    rp=$(sec_password pg-recon.password)
    sec_pg_psql >/dev/null <<EOF
SET password_encryption = 'scram-sha-256';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'persister') THEN CREATE ROLE persister LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recon') THEN CREATE ROLE recon LOGIN; END IF;
END \$\$;
ALTER ROLE persister LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$pp';
ALTER ROLE recon LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$rp';
EOF
    if [ "$(sec_pg_psql -c "SELECT 1 FROM pg_database WHERE datname = '$SEC_PG_DB'")" != 1 ]; then
        sec_pg_psql -c "CREATE DATABASE $SEC_PG_DB" >/dev/null
    fi
    SEC_PSQL_DB=$SEC_PG_DB sec_pg_psql >/dev/null <<EOF
REVOKE ALL ON DATABASE $SEC_PG_DB FROM PUBLIC;
GRANT CONNECT ON DATABASE $SEC_PG_DB TO persister, recon;
-- svc-persister --create.tables runs CREATE SCHEMA IF NOT EXISTS, which
-- PostgreSQL checks against CREATE on the database even when the schema exists.
-- Its batches go through a temporary table (COPY, then one upsert).
GRANT CREATE, TEMPORARY ON DATABASE $SEC_PG_DB TO persister;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO persister;
GRANT USAGE ON SCHEMA public TO recon;
-- svc-recon creates and owns its state schema (CREATE SCHEMA IF NOT EXISTS is
-- checked against CREATE on the database first); --verify-sinks defines its
-- hashing functions in pg_temp. It owns nothing else: SELECT on the rest.
GRANT CREATE, TEMPORARY ON DATABASE $SEC_PG_DB TO recon;
ALTER DEFAULT PRIVILEGES FOR ROLE persister IN SCHEMA public GRANT SELECT ON TABLES TO recon;
EOF
}

sec_pg_wait() {
    sec_pg_paths
    wait_until "secure postgresql (socket)" "$SEC_PG_LOG" sec_pg_alive sec_pg_socket_answers
    sec_pg_provision || { tail_log "$SEC_PG_LOG"; die "secure postgresql: could not create the roles and database"; }
    wait_until "secure postgresql (persister over TLS)" "$SEC_PG_LOG" sec_pg_alive sec_pg_answers
    started_or_up "secure postgresql" "${SEC_PG_STARTED:-0}" "127.0.0.1:$SEC_PG_PORT (hostssl, scram-sha-256)"
}

sec_pg_stop() {
    sec_pg_paths
    if sec_pg_alive; then
        pg_ctl_stop "$SEC_PG_DATA"
        say "secure postgresql: stopped"
    fi
}

# ---- commands --------------------------------------------------------------

sec_up() {
    local t0
    t0=$(now)
    mkdir -p "$SEC_DIR"
    chmod 700 "$SEC_DIR"
    local u
    for u in $SEC_PRINCIPALS; do sec_secret "kafka-$u.password" >/dev/null; done
    for u in admin cache-feeder recon; do sec_secret "redis-$u.password" >/dev/null; done
    for u in persister recon; do sec_secret "pg-$u.password" >/dev/null; done
    sec_tls
    sec_kafka_start
    sec_redis_start
    sec_pg_start
    sec_redis_wait
    sec_pg_wait
    sec_kafka_wait
    for u in $SEC_PRINCIPALS; do sec_kafka_client_props "$u" "$SEC_DIR/kafka-$u.properties"; done
    say "secure set up in $(( $(now) - t0 ))s; 'stack.sh env --secure' prints where its secrets are"
}

sec_down() {
    sec_kafka_stop
    sec_redis_stop
    sec_pg_stop
}

sec_status() {
    local bad=0 pid
    sec_pg_paths
    if pid=$(sec_kafka_pid) && sec_kafka_answers; then status_line kafka-secure up "127.0.0.1:$SEC_KAFKA_PORT" "$pid"
    else status_line kafka-secure down "127.0.0.1:$SEC_KAFKA_PORT" "${pid:-}"; bad=1; fi
    pid=
    if pid=$(sec_redis_pid) && sec_redis_answers; then status_line redis-secure up "127.0.0.1:$SEC_REDIS_PORT" "$pid"
    else status_line redis-secure down "127.0.0.1:$SEC_REDIS_PORT" "${pid:-}"; bad=1; fi
    pid=
    if pid=$(sec_pg_pid) && sec_pg_answers; then status_line pg-secure up "127.0.0.1:$SEC_PG_PORT" "$pid"
    else status_line pg-secure down "127.0.0.1:$SEC_PG_PORT" "${pid:-}"; bad=1; fi
    return $bad
}

# sec_env: where the secure set is and where its secrets are (never the
# secrets themselves).
sec_env() {
    local u v
    cat <<EOF
STACK_SECURE_KAFKA_BOOTSTRAP=127.0.0.1:$SEC_KAFKA_PORT
STACK_SECURE_KAFKA_SECURITY_PROTOCOL=SASL_SSL
STACK_SECURE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
STACK_SECURE_CA=$SEC_TLS/ca.pem
STACK_SECURE_REDIS_HOST=127.0.0.1
STACK_SECURE_REDIS_PORT=$SEC_REDIS_PORT
STACK_SECURE_REDIS_TLS_PORT=$SEC_REDIS_TLS_PORT
STACK_SECURE_PG_CONNINFO='host=127.0.0.1 port=$SEC_PG_PORT dbname=$SEC_PG_DB sslmode=verify-full sslrootcert=$SEC_TLS/ca.pem'
STACK_SECURE_SECRETS=$SEC_SECRETS
EOF
    for u in $SEC_PRINCIPALS; do
        v=${u//-/_}; v=${v^^}
        echo "STACK_SECURE_KAFKA_${v}_PASSWORD_FILE=$SEC_SECRETS/kafka-$u.password"
    done
    for u in admin cache-feeder recon; do
        v=${u//-/_}; v=${v^^}
        echo "STACK_SECURE_REDIS_${v}_PASSWORD_FILE=$SEC_SECRETS/redis-$u.password"
    done
    for u in persister recon; do
        v=${u^^}
        echo "STACK_SECURE_PG_${v}_PASSWORD_FILE=$SEC_SECRETS/pg-$u.password"
    done
}
