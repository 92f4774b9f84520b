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
#   BENCH_ONLY       codec | produce | all               (all)
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

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/run-$STAMP
mkdir -p "$RUN"
ln -sfn "run-$STAMP" "$OUT/latest"
RESULTS=$RUN/results.tsv
: > "$RESULTS"
{
    echo "bench run $STAMP  build $BUILD  $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)  (other work on the machine skews every figure)"
} | tee "$RUN/summary.txt"

# ---- codec -------------------------------------------------------------------

if [ "$ONLY" = all ] || [ "$ONLY" = codec ]; then
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

if [ "$ONLY" = all ] || [ "$ONLY" = produce ]; then
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
    echo "  results: $RESULTS"
    if [ "$broken" -ne 0 ]; then
        echo "  RESULT: BROKEN (see BROKEN lines above)"
    else
        echo "  RESULT: ok (every record checked)"
    fi
} | tee -a "$RUN/summary.txt"

exit "$broken"
