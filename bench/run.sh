#!/usr/bin/env bash
# bench/run.sh [BUILD] — build the benchmarks into BUILD/bench/ (against
# BUILD/lib/libtributary-core.a, which `make BUILD=... all` made), run the
# codec bench, then the producer bench (libcore against kcat) on the local
# broker, and print a summary. See bench/README.md.
#
# Prints figures and ratios; never judges a speed. Exits 1 only when
# something broke (a record lost, altered or refused, a count mismatch), 2
# when it could not run (build failed, broker unreachable).
#
# Environment:
#   BENCH_N_CODEC    operations per codec stage          (200000)
#   BENCH_N_PRODUCE  records produced by each producer   (500000)
#   BENCH_REPEAT     codec: repetitions, fastest kept     (3)
#   BENCH_BROKER     bootstrap broker                    (127.0.0.1:9092)
#   BENCH_ONLY       stages to run, space-separated: codec produce validator
#                    ingest cache_feeder persister latency scale peer, or all
#                    (every stage, what `make bench` runs)   (all)
#   BENCH_KEEP=1     keep the topics and the kcat input file
#   BENCH_BROKER_WAIT  seconds to wait for the broker    (180)
#   BENCH_OUT        output directory                    (bench/out)
#   CC, BENCH_CFLAGS compiler and extra flags
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${1:-build}
cd "$ROOT" || exit 2

N_CODEC=${BENCH_N_CODEC:-200000}
N_PRODUCE=${BENCH_N_PRODUCE:-500000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
ONLY=${BENCH_ONLY:-all}
want() { [ "$ONLY" = all ] || [[ " $ONLY " == *" $1 "* ]]; }
KEEP=${BENCH_KEEP:-0}
BROKER_WAIT=${BENCH_BROKER_WAIT:-180}
OUT=${BENCH_OUT:-$HERE/out}
CC=${CC:-cc}

# kcat -K / -D delimiters (kcat's syntax: \xNN). Bytes that never occur in
# UTF-8 (0xC0, 0xC1, 0xF5-0xFF), all distinct so a delimiter cannot overlap
# itself; NUL is impossible (kcat takes strlen). bench_produce checks that
# kcat's split of the file gives back every record exactly, and fails
# loudly otherwise.
KCAT_KEY_DELIM='\xc0\xf5\xc1\xf6'
KCAT_DELIM='\xfe\xff\xf7\xfd\xfb\xf9\xfa\xf8'
KCAT_PROPS=(-X enable.idempotence=true -X acks=all -X compression.codec=lz4 -X linger.ms=5)

broken=0
note_broken() { echo "BROKEN: $*" >&2; broken=1; }

# ---- build -------------------------------------------------------------------

CORE_A=$BUILD/lib/libtributary-core.a
if [ ! -f "$CORE_A" ]; then
    echo "bench: $CORE_A missing: run 'make BUILD=$BUILD all' first (make bench does)" >&2
    exit 2
fi
# The same packages the top Makefile links every service with.
PKGS=(rdkafka hiredis libcjson avro-c libcurl libmicrohttpd uuid libcrypto zlib)
if ! PKG_CFLAGS=$(pkg-config --cflags "${PKGS[@]}") || ! PKG_LIBS=$(pkg-config --libs "${PKGS[@]}"); then
    echo "bench: pkg-config cannot find: ${PKGS[*]} (make deps)" >&2
    exit 2
fi
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -O2 -g"
mkdir -p "$BUILD/bench"
for b in bench_codec bench_produce; do
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS \
            -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/$b" \
            "bench/$b.c" bench/bench_common.c "$CORE_A" $PKG_LIBS -lpthread -lm; then
        echo "bench: building $b failed" >&2
        exit 2
    fi
done

# svc_srcs DIR: a service's sources but its main.c (what its bench links,
# kept in step with the service as files are split or added)
svc_srcs() { ls "$1"/*.c | grep -v '/main\.c$'; }

# bench_persister (fill, MongoDB helpers): the persister, peer, latency and scale benches
build_bench_persister() {
    # shellcheck disable=SC2086
    $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS $(pkg-config --cflags libmongoc-1.0) \
        -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_persister" \
        bench/bench_persister.c bench/bench_common.c "$CORE_A" $PKG_LIBS \
        $(pkg-config --libs libmongoc-1.0) -lpthread -lm && return 0
    echo "bench: building bench_persister failed" >&2
    return 1
}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/run-$STAMP
mkdir -p "$RUN"
ln -sfn "run-$STAMP" "$OUT/latest"
RESULTS=$RUN/results.tsv
: > "$RESULTS"
{
    echo "bench run $STAMP  build $BUILD  $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)  (other work on the machine skews every figure)"
    echo "  stages: $ONLY"
} | tee "$RUN/summary.txt"

# ---- codec -------------------------------------------------------------------

if want codec; then
    echo
    "$BUILD/bench/bench_codec" -n "$N_CODEC" --repeat "${BENCH_REPEAT:-3}" --results "$RESULTS" 2>&1 | tee "$RUN/codec.txt"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 1 ]; then
        note_broken "codec bench (see $RUN/codec.txt)"
    elif [ "$rc" -ne 0 ]; then
        echo "bench: codec bench could not run (exit $rc)" >&2
        exit 2
    fi
fi

# ---- produce: libcore, then kcat ---------------------------------------------

wait_broker() {
    local deadline=$((SECONDS + BROKER_WAIT)) said=0
    while ! kcat -F none -L -b "$BROKER" -m 5 >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "bench: broker $BROKER unreachable after ${BROKER_WAIT}s: start it with 'make stack-up'" >&2
            return 1
        fi
        [ $said -eq 1 ] || { echo "bench: waiting up to ${BROKER_WAIT}s for broker $BROKER ..."; said=1; }
        sleep 2
    done
}

# Count and check a topic's records with kcat (exact key/value bytes and
# digest, via bench_produce verify).
verify_topic() { # topic label
    timeout 600 kcat -F none -C -b "$BROKER" -t "$1" -o beginning -e -q -f '%K %S %k%s' \
            2>"$RUN/verify-$2.err" |
        "$BUILD/bench/bench_produce" verify --expected "$RUN/expected.txt" --label "$2"
    local st=("${PIPESTATUS[@]}")
    if [ "${st[0]}" -ne 0 ]; then
        note_broken "kcat could not read back $1 (exit ${st[0]}; see $RUN/verify-$2.err)"
        return 1
    elif [ "${st[1]}" -ne 0 ]; then
        note_broken "topic $1 does not hold exactly the $N_PRODUCE records produced"
        return 1
    fi
    return 0
}

if want produce; then
    echo
    command -v kcat >/dev/null || { echo "bench: kcat not installed (make deps)" >&2; exit 2; }
    wait_broker || exit 2
    T_LIB=bench-libcore-$STAMP-$$
    T_KCAT=bench-kcat-$STAMP-$$

    "$BUILD/bench/bench_produce" run --broker "$BROKER" --topic "$T_LIB" --kcat-topic "$T_KCAT" \
        -n "$N_PRODUCE" --out "$RUN" --key-delim "$KCAT_KEY_DELIM" --delim "$KCAT_DELIM" \
        --results "$RESULTS" 2>&1 | tee "$RUN/produce.txt"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 2 ]; then
        echo "bench: producer bench could not run (see $RUN/produce.txt)" >&2
        exit 2
    fi
    [ "$rc" -eq 0 ] || note_broken "libcore producer (see $RUN/produce.txt)"

    if [ -f "$RUN/kcat-input.bin" ] && [ -f "$RUN/expected.txt" ]; then
        # kcat: -l reads the file as delimited messages (without it, a file
        # argument is sent as ONE message). Timed by bash's `time`: wall,
        # and user+sys CPU of the kcat process (all its threads).
        TIMEFORMAT='%R %U %S'
        { time kcat -F none -P -b "$BROKER" -t "$T_KCAT" "${KCAT_PROPS[@]}" \
                -K "$KCAT_KEY_DELIM" -D "$KCAT_DELIM" -l "$RUN/kcat-input.bin" \
                2>"$RUN/kcat-produce.err"; } 2>"$RUN/kcat-time.txt"
        rc=$?
        read -r k_wall k_user k_sys < <(tail -n1 "$RUN/kcat-time.txt")
        [ "$rc" -eq 0 ] || note_broken "kcat producer exited $rc (see $RUN/kcat-produce.err)"
        bytes=$(awk '$1=="key_bytes"{k=$2} $1=="value_bytes"{v=$2} END{print k+v}' "$RUN/expected.txt")
        KCAT_FIG=(-v n="$N_PRODUCE" -v b="$bytes" -v w="$k_wall" -v u="$k_user" -v s="$k_sys")
        awk "${KCAT_FIG[@]}" 'BEGIN{ c = u + s; if (w <= 0) w = 0.001
            printf "produce\tkcat\t%d\t%d\t%.6f\t%.6f\t%.6f\t%.6f\t%.1f\t%.1f\t%.2f\t%.4f\t-\t0\t0\n",
                   n, b, w, c, u, s, n / w, w * 1e9 / n, b / w / 1e6, c * 1e6 / n }' >> "$RESULTS"
        awk "${KCAT_FIG[@]}" 'BEGIN{ c = u + s; if (w <= 0) w = 0.001
            printf "  kcat     %7.0fk rec/s  %5.1f MB/s  %6.3f CPU-s/Mrec (user %.2f s, sys %.2f s; whole process)  wall %.2f s\n",
                   n / w / 1e3, b / w / 1e6, c * 1e6 / n, u, s, w }' | tee -a "$RUN/produce.txt"

        verify_topic "$T_LIB" libcore 2>&1 | tee -a "$RUN/produce.txt"
        [ "${PIPESTATUS[0]}" -eq 0 ] || broken=1
        verify_topic "$T_KCAT" kcat 2>&1 | tee -a "$RUN/produce.txt"
        [ "${PIPESTATUS[0]}" -eq 0 ] || broken=1
    fi
    grep -q '^BROKEN' "$RUN/produce.txt" && broken=1

    if [ "$KEEP" = 1 ] || [ "$broken" -ne 0 ]; then
        echo "  kept: topics $T_LIB $T_KCAT, $RUN/kcat-input.bin"
    else
        "$BUILD/bench/bench_produce" delete --broker "$BROKER" "$T_LIB" "$T_KCAT" ||
            echo "bench: could not delete topics $T_LIB $T_KCAT (harmless)" >&2
        rm -f "$RUN/kcat-input.bin"
    fi
fi

# ---- validator: svc-validator's transactional loop vs kcat consuming ---------
# BENCH_ONLY=validator bench/run.sh BUILD   (BENCH_N_VALIDATOR records, 200000;
# BENCH_VALIDATOR_INTERVALS commit intervals in ms, "50 100 500 1000")
if want validator; then
    echo
    command -v kcat >/dev/null || { echo "bench: kcat not installed (make deps)" >&2; exit 2; }
    wait_broker || exit 2
    N_VAL=${BENCH_N_VALIDATOR:-200000}
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS \
            -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_validator" \
            bench/bench_validator.c bench/bench_common.c $(svc_srcs svc-validator) "$CORE_A" $PKG_LIBS -lpthread -lm; then
        echo "bench: building bench_validator failed" >&2
        exit 2
    fi
    VP=bench-val-$STAMP-$$.
    "$BUILD/bench/bench_validator" fill --broker "$BROKER" --topic "${VP}payee.raw" -n "$N_VAL" ||
        { echo "bench: filling ${VP}payee.raw failed" >&2; exit 2; }
    # The physical limit: kcat reading the same records (read_committed, like the validator).
    TIMEFORMAT='%R %U %S'
    { time kcat -F none -C -b "$BROKER" -t "${VP}payee.raw" -X isolation.level=read_committed \
            -o beginning -e -q -f '%o\n' > "$RUN/kcat-consume.txt" 2>"$RUN/kcat-consume.err"; } \
        2>"$RUN/kcat-consume-time.txt"
    read -r kc_wall kc_user kc_sys < <(tail -n1 "$RUN/kcat-consume-time.txt")
    kc_n=$(wc -l < "$RUN/kcat-consume.txt")
    [ "$kc_n" -eq "$N_VAL" ] || note_broken "kcat read $kc_n of $N_VAL records"
    awk -v n="$kc_n" -v w="$kc_wall" -v u="$kc_user" -v s="$kc_sys" 'BEGIN { if (w <= 0) w = 0.001
        printf "  kcat consume                 %8.0fk rec/s  %6.3f CPU-s/Mrec (whole process, group-less, no transactions)  wall %.2f s\n",
               n / w / 1e3, (u + s) * 1e6 / n, w }' | tee -a "$RUN/validator.txt"
    for iv in ${BENCH_VALIDATOR_INTERVALS:-50 100 500 1000}; do
        "$BUILD/bench/bench_validator" run --broker "$BROKER" --prefix "$VP" -n "$N_VAL" \
            --interval "$iv" --results "$RESULTS" 2>&1 | tee -a "$RUN/validator.txt"
        [ "${PIPESTATUS[0]}" -eq 0 ] || note_broken "validator bench at ${iv} ms"
    done
    awk -F'\t' -v n="$kc_n" -v w="$kc_wall" -v u="$kc_user" -v s="$kc_sys" '
        $1 == "validator" && n > 0 { kr = n / w; kc = (u + s) * 1e6 / n
            printf "  %-28s rec/s vs kcat %.2fx   CPU per record vs kcat %.1fx\n", $2, $9 / kr, ($12 / kc) }' \
        "$RESULTS" | tee -a "$RUN/validator.txt"
    if [ "$KEEP" != 1 ]; then
        "$BUILD/bench/bench_produce" delete --broker "$BROKER" "${VP}payee.raw" "${VP}payee.valid" \
            "${VP}payee.dlq" "${VP}payee.retry" "${VP}audit.events" >/dev/null 2>&1 ||
            echo "bench: could not delete topics ${VP}* (harmless)" >&2
    fi
fi

# ---- ingest: svc-ingest (file -> acknowledged) vs kcat producing the same records
# BENCH_ONLY=ingest bench/run.sh BUILD   (BENCH_N_INGEST rows, 500000). Owner: svc-ingest.
# Both sides: idempotent, acks=all, lz4. svc-ingest also writes one audit
# event per row and a checkpoint per transaction (exactly-once), kcat only
# the records: the ratio prices that work together with parsing and mapping.
if want ingest; then
    echo
    command -v kcat >/dev/null || { echo "bench: kcat not installed (make deps)" >&2; exit 2; }
    [ -x "$BUILD/bin/svc-ingest" ] || { echo "bench: $BUILD/bin/svc-ingest missing (make BUILD=$BUILD all)" >&2; exit 2; }
    wait_broker || exit 2
    N_ING=${BENCH_N_INGEST:-500000}
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS \
            -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_ingest" \
            bench/bench_ingest.c bench/bench_common.c $(svc_srcs svc-ingest) "$CORE_A" $PKG_LIBS -lpthread -lm; then
        echo "bench: building bench_ingest failed" >&2
        exit 2
    fi
    IP=bench-ingest-$STAMP-$$
    CSV=$RUN/ingest-payees.csv
    "$BUILD/bench/bench_ingest" gen -n "$N_ING" --out "$CSV" | tee -a "$RUN/ingest.txt" || exit 2
    "$BUILD/bench/bench_ingest" kcatfile --csv "$CSV" --batch-id "$IP" --out "$RUN/ingest-kcat.bin" \
        --key-delim "$KCAT_KEY_DELIM" --delim "$KCAT_DELIM" > "$RUN/ingest-kcat.txt"
    rc=$?
    [ "$rc" -eq 0 ] || { [ "$rc" -eq 1 ] && note_broken "kcat input for ingest"; [ "$rc" -eq 1 ] || exit 2; }
    n_kc=$(awk '$1=="records"{print $2}' "$RUN/ingest-kcat.txt")
    csv_bytes=$(stat -c %s "$CSV")
    TIMEFORMAT='%R %U %S'
    { time "$BUILD/bin/svc-ingest" --dataset payee --batch.id "$IP" --topic.prefix "$IP." \
            --audit.topic "$IP.audit" --checkpoint.topic "$IP.ckpt" --http.port 0 --progress never \
            --summary.json --log.level warn --kafka.bootstrap.servers "$BROKER" "$CSV" \
            > "$RUN/ingest-summary.json" 2>"$RUN/ingest-svc.err"; } 2>"$RUN/ingest-time.txt"
    rc=$?
    read -r i_wall i_user i_sys < <(tail -n1 "$RUN/ingest-time.txt")
    pub=$(sed -n 's/.*"published":\([0-9]*\).*/\1/p' "$RUN/ingest-summary.json")
    [ "$rc" -eq 0 ] || note_broken "svc-ingest exited $rc (see $RUN/ingest-svc.err)"
    [ "${pub:-0}" = "$N_ING" ] || note_broken "svc-ingest published ${pub:-?} of $N_ING rows"
    { time kcat -F none -P -b "$BROKER" -t "$IP.kcat" "${KCAT_PROPS[@]}" \
            -K "$KCAT_KEY_DELIM" -D "$KCAT_DELIM" -l "$RUN/ingest-kcat.bin" \
            2>"$RUN/ingest-kcat.err"; } 2>"$RUN/ingest-kcat-time.txt"
    rc=$?
    read -r k_wall k_user k_sys < <(tail -n1 "$RUN/ingest-kcat-time.txt")
    [ "$rc" -eq 0 ] || note_broken "kcat producer exited $rc (see $RUN/ingest-kcat.err)"
    got=$(timeout 600 kcat -F none -C -b "$BROKER" -t "$IP.kcat" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
    [ "$got" -eq "$n_kc" ] || note_broken "kcat topic holds $got of $n_kc records"
    awk -v n="$N_ING" -v b="$csv_bytes" -v w="$i_wall" -v u="$i_user" -v s="$i_sys" \
        -v kn="$n_kc" -v kw="$k_wall" -v ku="$k_user" -v ks="$k_sys" 'BEGIN {
        if (w <= 0) w = 0.001; if (kw <= 0) kw = 0.001
        printf "  svc-ingest  %8.0f rows/s  %6.3f CPU-s/Mrow (user %.2f s, sys %.2f s)  %5.1f MB/s of CSV  wall %.2f s  (file -> committed, + audit + checkpoints)\n",
               n / w, (u + s) * 1e6 / n, u, s, b / w / 1e6, w
        printf "  kcat        %8.0f rec/s   %6.3f CPU-s/Mrec (user %.2f s, sys %.2f s)  wall %.2f s  (same encoded records, acks=all)\n",
               kn / kw, (ku + ks) * 1e6 / kn, ku, ks, kw
        printf "  svc-ingest/kcat: rows/s %.2fx (above 1: svc-ingest faster), CPU per row %.2fx (above 1: svc-ingest costlier)\n",
               (n / w) / (kn / kw), ((u + s) / n) / ((ku + ks) / kn)
        printf "ingest\tsvc-ingest\t%d\t%d\t%.6f\t%.6f\t%.6f\t%.6f\t%.1f\t%.1f\t%.2f\t%.4f\tkcat\t%.6f\t%.3f\n",
               n, b, w, u + s, u, s, n / w, w * 1e9 / n, b / w / 1e6, (u + s) * 1e6 / n, kw, w / kw > "/dev/stderr"
    }' 2>>"$RESULTS" | tee -a "$RUN/ingest.txt"
    if [ "$KEEP" != 1 ] && [ "$broken" -eq 0 ]; then
        "$BUILD/bench/bench_produce" delete --broker "$BROKER" "$IP.payee.raw" "$IP.audit" "$IP.ckpt" "$IP.kcat" \
            >/dev/null 2>&1 || echo "bench: could not delete topics $IP.* (harmless)" >&2
        rm -f "$CSV" "$RUN/ingest-kcat.bin"
    fi
fi

# ---- cache_feeder: svc-cache-feeder's Redis path vs redis-benchmark SET -------
# BENCH_ONLY=cache_feeder bench/run.sh BUILD   (BENCH_N_CACHE records, 200000;
# BENCH_CACHE_DEPTH pipeline depth, 100; BENCH_CACHE_INFLIGHT batches left in
# flight while the next is prepared, 2; BENCH_REDIS_HOST/PORT, 127.0.0.1:6379).
# Owner: svc-cache-feeder. The limit: redis-benchmark SET with the same
# pipeline depth and value size, in the same run, against the same server.
if want cache_feeder; then
    echo
    command -v redis-benchmark >/dev/null || { echo "bench: redis-benchmark not installed" >&2; exit 2; }
    N_CF=${BENCH_N_CACHE:-200000}
    D_CF=${BENCH_CACHE_DEPTH:-100}
    K_CF=${BENCH_CACHE_INFLIGHT:-2}
    RH=${BENCH_REDIS_HOST:-127.0.0.1}
    RP=${BENCH_REDIS_PORT:-6379}
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS \
            -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_cache_feeder" \
            bench/bench_cache_feeder.c bench/bench_common.c $(svc_srcs svc-cache-feeder) "$CORE_A" $PKG_LIBS -lpthread -lm; then
        echo "bench: building bench_cache_feeder failed" >&2
        exit 2
    fi
    "$BUILD/bench/bench_cache_feeder" --n "$N_CF" --depth "$D_CF" --inflight "$K_CF" --host "$RH" --port "$RP" \
        --results "$RESULTS" > "$RUN/cache_feeder.txt"
    [ $? -eq 0 ] || note_broken "cache_feeder bench"
    grep -v '^RESULT\|^VALUE_SIZE' "$RUN/cache_feeder.txt"
    vsize=$(awk -F'\t' '$1=="VALUE_SIZE"{print $2}' "$RUN/cache_feeder.txt")
    TIMEFORMAT='%R %U %S'
    # redis-benchmark's keys ("key:<n>", up to N_CF of them) go to a database
    # of their own and are removed after: left in the shared database they
    # pile up run after run and slow every SCAN there (tests' teardowns).
    RB_DB=${BENCH_REDIS_BENCH_DB:-9}
    { time redis-benchmark -h "$RH" -p "$RP" --dbnum "$RB_DB" -t set -n "$N_CF" -P "$D_CF" -d "${vsize:-300}" -r 100000000 \
            -c 1 --csv > "$RUN/redis-benchmark.csv" 2>&1; } 2>"$RUN/redis-benchmark-time.txt"
    redis-cli -h "$RH" -p "$RP" -n "$RB_DB" --scan --pattern 'key:*' |
        awk '{ printf "UNLINK %s\r\n", $0 }' | redis-cli -h "$RH" -p "$RP" -n "$RB_DB" --pipe >/dev/null 2>&1
    read -r rb_wall rb_user rb_sys < <(tail -n1 "$RUN/redis-benchmark-time.txt")
    rb_rps=$(awk -F'"' '$2=="SET"{print $4}' "$RUN/redis-benchmark.csv")
    awk -v n="$N_CF" -v d="$D_CF" -v vs="${vsize:-300}" -v rps="${rb_rps:-0}" -v u="$rb_user" -v s="$rb_sys" \
        -F'\t' 'BEGIN { printf "  redis-benchmark SET -P %d -d %d -c 1   %10.0f ops/s  %7.3f CPU-s/Mrec (client)\n", d, vs, rps, (u + s) * 1e6 / n }
        $1 == "RESULT" && rps > 0 && $2 != "prepare" {
            printf "  cache_feeder %-8s / redis-benchmark SET: ops/s %.2fx, CPU per record %.1fx\n", $2, $3 / rps, $4 / ((u + s) * 1e6 / n) }' \
        "$RUN/cache_feeder.txt" | tee -a "$RUN/cache_feeder.txt"
    # End to end: the svc-cache-feeder binary from Kafka to Redis (audit on),
    # timed from start until every record's version is in Redis.
    if [ -x "$BUILD/bin/svc-cache-feeder" ] && wait_broker; then
        CFP=benchcf$STAMP$$
        "$BUILD/bench/bench_cache_feeder" fill --broker "$BROKER" --topic "$CFP.account_setting.valid" --n "$N_CF" ||
            note_broken "cache_feeder fill"
        t0=$(date +%s.%N)
        "$BUILD/bin/svc-cache-feeder" --dataset account_setting --topic.prefix "$CFP." \
            --cache.prefix "$CFP" --group.id "$CFP" --audit.topic "$CFP.audit" --http.port 0 \
            --redis.host "$RH" --redis.port "$RP" --batch.size "$D_CF" --batch.inflight "$K_CF" --log.level warn \
            --kafka.bootstrap.servers "$BROKER" 2>"$RUN/cache_feeder-svc.err" &
        cfpid=$!
        deadline=$(( $(date +%s) + 600 ))
        got=0
        tf=""
        while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$cfpid" 2>/dev/null; do
            got=$(redis-cli -h "$RH" -p "$RP" HLEN "$CFP#meta:account_setting" 2>/dev/null || echo 0)
            # steady state starts at the first record in Redis (start-up and
            # the group join, ~3 s of group.initial.rebalance.delay.ms, before)
            [ -z "$tf" ] && [ "${got:-0}" -gt 0 ] && { tf=$(date +%s.%N); gf=$got; }
            [ "${got:-0}" -ge "$N_CF" ] && break
            sleep 0.05
        done
        t1=$(date +%s.%N)
        read -r ut st < <(awk '{print $14, $15}' "/proc/$cfpid/stat" 2>/dev/null || echo "0 0")
        kill -TERM "$cfpid" 2>/dev/null; wait "$cfpid"
        [ "${got:-0}" -ge "$N_CF" ] || note_broken "svc-cache-feeder cached ${got:-0} of $N_CF"
        awk -v n="$N_CF" -v t0="$t0" -v t1="$t1" -v tf="${tf:-$t0}" -v gf="${gf:-0}" -v ut="$ut" -v st="$st" -v hz="$(getconf CLK_TCK)" -v rps="${rb_rps:-0}" \
            'BEGIN { w = t1 - t0; printf "  svc-cache-feeder end to end  %10.0f ops/s  %7.3f CPU-s/Mrec (service process, audit on, start-up included)  wall %.2f s\n", n / w, (ut + st) / hz * 1e6 / n, w
                     if (t1 > tf && n > gf) printf "  svc-cache-feeder steady      %10.0f ops/s  (from the first record in Redis to the last, %.2f s)\n", (n - gf) / (t1 - tf), t1 - tf
                     if (rps > 0) printf "  svc-cache-feeder end to end / redis-benchmark SET: ops/s %.2fx\n", n / w / rps
                     if (rps > 0 && t1 > tf && n > gf) printf "  svc-cache-feeder steady / redis-benchmark SET: ops/s %.2fx\n", (n - gf) / (t1 - tf) / rps }' |
            tee -a "$RUN/cache_feeder.txt"
        redis-cli -h "$RH" -p "$RP" --scan --pattern "$CFP*" | xargs -r -n 1000 redis-cli -h "$RH" -p "$RP" UNLINK >/dev/null
        if [ "$KEEP" != 1 ] && [ -x "$BUILD/bench/bench_produce" ]; then
            "$BUILD/bench/bench_produce" delete --broker "$BROKER" "account_setting.valid.$CFP" "$CFP.audit" \
                >/dev/null 2>&1 || true
        fi
    fi
fi

# ---- persister: svc-persister vs psql \copy (PostgreSQL) and insert_many (MongoDB)
# BENCH_ONLY=persister bench/run.sh BUILD   (BENCH_N_PERSISTER rows, 100000;
# BENCH_N_PERSISTER_MONGO documents, 10000). Owner: svc-persister.
if want persister; then
    echo
    wait_broker || exit 2
    build_bench_persister || exit 2
    bench/bench_persister.sh "$BUILD" "$RUN" | tee -a "$RUN/persister.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || note_broken "persister bench"
fi

# ---- latency: end to end at a fixed offered load, through the service modes ----
# BENCH_ONLY=latency bench/run.sh BUILD   (BENCH_LATENCY_RATES "5000 20000 50000",
# BENCH_LATENCY_SECS 10). See bench/bench_latency.sh.
if want latency; then
    echo
    wait_broker || exit 2
    for x in svc-ingest svc-validator svc-persister svc-cache-feeder; do
        [ -x "$BUILD/bin/$x" ] || { echo "bench: $BUILD/bin/$x missing (make BUILD=$BUILD all)" >&2; exit 2; }
    done
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS ${BENCH_CFLAGS:-} -Ilibcore/include $PKG_CFLAGS \
            -DBENCH_PROTO_DIR="\"$ROOT/proto\"" -o "$BUILD/bench/bench_ingest" \
            bench/bench_ingest.c bench/bench_common.c $(svc_srcs svc-ingest) "$CORE_A" $PKG_LIBS -lpthread -lm; then
        echo "bench: building bench_ingest failed" >&2
        exit 2
    fi
    build_bench_persister || exit 2
    bench/bench_latency.sh "$BUILD" "$RUN" 2>&1 | tee "$RUN/latency.txt"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 2 ] && { echo "bench: latency bench could not run (see $RUN/latency.txt)" >&2; exit 2; }
    [ "$rc" -eq 0 ] || note_broken "latency bench"
fi

# ---- scale: svc-persister, one instance and two in one group, 6 partitions ----
# BENCH_ONLY=scale bench/run.sh BUILD   (BENCH_N_SCALE payees, 200000). See bench/bench_scale.sh.
if want scale; then
    echo
    wait_broker || exit 2
    [ -x "$BUILD/bin/svc-persister" ] || { echo "bench: $BUILD/bin/svc-persister missing (make BUILD=$BUILD all)" >&2; exit 2; }
    build_bench_persister || exit 2
    bench/bench_scale.sh "$BUILD" "$RUN" 2>&1 | tee "$RUN/scale.txt"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 2 ] && { echo "bench: scale bench could not run (see $RUN/scale.txt)" >&2; exit 2; }
    [ "$rc" -eq 0 ] || note_broken "scale bench"
fi

# ---- peer: tributary's sinks next to Kafka Connect + Debezium and Python consumers
# BENCH_ONLY=peer bench/run.sh BUILD   (BENCH_N_PEER payees, 200000). The peers are
# installed by bench/peer/install.sh into $STACK_CACHE_DIR/peer (once; it needs the
# registries). See bench/peer/peer.sh.
if want peer; then
    echo
    wait_broker || exit 2
    for x in svc-persister svc-cache-feeder; do
        [ -x "$BUILD/bin/$x" ] || { echo "bench: $BUILD/bin/$x missing (make BUILD=$BUILD all)" >&2; exit 2; }
    done
    build_bench_persister || exit 2
    bench/peer/peer.sh "$BUILD" "$RUN" 2>&1 | tee -a "$RUN/peer.txt"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 2 ] && { echo "bench: peer bench could not run (see $RUN/peer.txt)" >&2; exit 2; }
    [ "$rc" -eq 0 ] || note_broken "peer bench"
    grep -q '^BROKEN' "$RUN/peer.txt" && broken=1
fi

# ---- summary -----------------------------------------------------------------

{
    echo
    echo "== summary (figures, not verdicts: stage/limit = how many times the stage costs"
    echo "   more than its physical limit measured in this run) =="
    awk -F'\t' '
        NR == 1 { next }
        $1 == "codec" {
            if (!hdr1++) printf "  %-12s %12s %10s %11s   %-14s %10s %8s\n", "codec", "rec/s",
                                "us/rec", "CPU-s/Mrec", "limit", "us/rec", "ratio"
            printf "  %-12s %12.0f %10.3f %11.3f   %-14s %10.3f %7.1fx\n", $2, $9, $10 / 1000,
                   $12, $13, $14 * 1e6 / $3, $15
        }
        $1 == "produce" { p[$2] = $0; rate[$2] = $9; mbs[$2] = $11; cpu[$2] = $12; wall[$2] = $5 }
        END {
            if ("libcore" in p || "kcat" in p)
                printf "  %-12s %12s %10s %11s   %8s\n", "produce", "rec/s", "MB/s", "CPU-s/Mrec", "wall s"
            split("libcore kcat", order, " ")
            for (i = 1; i <= 2; i++) {
                k = order[i]
                if (k in p)
                    printf "  %-12s %12.0f %10.1f %11.3f   %8.2f\n", k, rate[k], mbs[k], cpu[k], wall[k]
            }
            if (("libcore" in p) && ("kcat" in p) && rate["kcat"] > 0 && cpu["kcat"] > 0)
                printf "  libcore/kcat: rec/s %.2fx (above 1: libcore faster), CPU per record %.2fx (above 1: libcore costlier)\n",
                       rate["libcore"] / rate["kcat"], cpu["libcore"] / cpu["kcat"]
        }' "$RESULTS"
    for st in validator ingest cache_feeder persister; do
        [ -f "$RUN/$st.txt" ] || continue
        echo "  $st:"
        grep -v '^RESULT\|^VALUE_SIZE\|^BROKEN' "$RUN/$st.txt"
    done
    if [ -f "$RUN/latency.txt" ]; then
        echo "  latency (bench/bench_latency.sh):"
        grep -v '^BROKEN' "$RUN/latency.txt"
    fi
    if [ -f "$RUN/scale.txt" ]; then
        echo "  scaling out (bench/bench_scale.sh):"
        grep -v '^BROKEN' "$RUN/scale.txt"
    fi
    if [ -f "$RUN/peer-report.txt" ]; then
        echo "  peer (bench/peer/peer.sh):"
        cat "$RUN/peer-report.txt"
    fi
    echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "  results: $RESULTS"
    if [ "$broken" -ne 0 ]; then
        echo "  RESULT: BROKEN (see BROKEN lines above)"
    else
        echo "  RESULT: ok (every record checked)"
    fi
} | tee -a "$RUN/summary.txt"

exit "$broken"

