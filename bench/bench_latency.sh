#!/usr/bin/env bash
# bench/bench_latency.sh BUILD OUTDIR — end-to-end latency at a fixed offered
# load (bench/run.sh, BENCH_ONLY=latency, runs it). For each rate R of
# BENCH_LATENCY_RATES ("5000 20000 50000" records/s): a fresh pipeline
# (topic prefix, schema, cache prefix) of svc-ingest serve (spool folder,
# spool.poll.ms 10), svc-validator, svc-persister (PostgreSQL) and
# svc-cache-feeder (Redis); once the four are up, one CSV file of
# R x PERIOD/1000 payees is renamed into the spool every
# BENCH_LATENCY_PERIOD_MS (1000) ms for BENCH_LATENCY_SECS (10) seconds —
# ingest's service mode takes a stream as files (docs/svc-ingest.md). Why not
# a file every 100 ms: svc-ingest spends ~0.5 s on each file before its first
# line (it reads the checkpoint topic from the beginning, with a consumer of
# its own, for the batch's checkpoint), so 10 files/s pile up in the spool;
# the output prints that per-file time from the files' summaries. When
# every record is stored, p50/p99/p99.9 are read from each sink's own
# histogram tributary_end_to_end_latency_seconds (tb.ingest.ts, set when
# svc-ingest reads the line, to the sink's committed write; libcore's
# core_sink), interpolated linearly inside a bucket as Prometheus'
# histogram_quantile does (buckets 5, 10, 25, 50, 100, 250 ms ...: a quantile
# is exact only to its bucket). The resident memory of each service (VmRSS)
# is sampled with every file and every 0.2 s while the records drain; the
# output prints its median over the run (steady) and the process's own peak
# (VmHWM, read before it stops), against issue 12's target: steady < 64 MB
# with the default batch sizes.
# Env: BENCH_LATENCY_RATES, BENCH_LATENCY_SECS, BENCH_BROKER, BENCH_PG,
#      BENCH_REDIS_HOST/PORT
set -uo pipefail
BUILD=$1
OUT=$2
RATES=${BENCH_LATENCY_RATES:-5000 20000 50000}
SECS=${BENCH_LATENCY_SECS:-10}
PERIOD=${BENCH_LATENCY_PERIOD_MS:-1000}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
PGC=${BENCH_PG:-host=127.0.0.1 port=5432 dbname=tributary user=tributary password=tributary}
RH=${BENCH_REDIS_HOST:-127.0.0.1}
RP=${BENCH_REDIS_PORT:-6379}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export TB_PROTO_DIR=$ROOT/proto TB_LOG_LEVEL=warn
P_ING=18911 P_VAL=18912 P_PER=18913 P_CF=18914
B=$BUILD/bin

metrics() { curl -s "http://127.0.0.1:$1/metrics"; }
ready() { curl -sf "http://127.0.0.1:$1/readyz" >/dev/null; }
# quantiles PORT: "count p50 p99 p999" (seconds) of the end-to-end histogram
quantiles() {
    metrics "$1" | awk '
        /^tributary_end_to_end_latency_seconds_bucket\{/ {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
            c[le] += $2; if (!(le in seen)) { seen[le] = 1; k[++nk] = le } }
        END {
            if (!nk) { print "0 0 0 0"; exit }
            # bounds in ascending order (+Inf last)
            for (i = 1; i <= nk; i++) for (j = i + 1; j <= nk; j++)
                if ((k[j] == "+Inf" ? 1e99 : k[j] + 0) < (k[i] == "+Inf" ? 1e99 : k[i] + 0)) { t = k[i]; k[i] = k[j]; k[j] = t }
            total = c["+Inf"]
            printf "%d", total
            split("0.5 0.99 0.999", qs, " ")
            for (q = 1; q <= 3; q++) {
                want = qs[q] * total; prev = 0; lo = 0; v = "inf"
                for (i = 1; i <= nk; i++) {
                    hi = k[i] == "+Inf" ? "inf" : k[i] + 0
                    if (c[k[i]] >= want) {
                        if (hi == "inf") v = lo; else if (c[k[i]] == prev) v = hi
                        else v = lo + (hi - lo) * (want - prev) / (c[k[i]] - prev)
                        break
                    }
                    prev = c[k[i]]; lo = hi
                }
                printf " %s", v
            }
            printf "\n"
        }'
}
# status_kb PID FIELD: a /proc/PID/status field in kB (0 once gone)
status_kb() { awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# rss_sample FILE PID...: append "PID VmRSS-kB" of each to FILE
rss_sample() {
    local f=$1 p; shift
    for p in "$@"; do echo "$p $(status_kb "$p" VmRSS)" >>"$f"; done
}
# rss_line FILE NAME PID PEAK-kB: "NAME median / peak" in MB
rss_line() {
    awk -v p="$3" -v name="$2" -v peak="$4" '$1 == p && $2 > 0 { v[++n] = $2 }
        END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              med = n ? v[int((n + 1) / 2)] : 0
              printf "%s %.1f / %.1f%s", name, med / 1024, peak / 1024, med >= 65536 ? " (over)" : "" }' "$1"
}
rows_of() { # PORT METRIC: records the service counted
    metrics "$1" | awk -v m="$2" 'index($0, m "{") == 1 || index($0, m " ") == 1 { s += $NF } END { printf "%d\n", s }'
}

echo "  end-to-end latency, svc-ingest serve -> svc-validator -> svc-persister / svc-cache-feeder;"
echo "  offered load: one file of R x ${PERIOD}/1000 payees every ${PERIOD} ms for ${SECS} s; quantiles from each sink's histogram"
echo "  targets: p99 < 100 ms at 20k/s (seeds 000/003); ours: p99 < 50 ms"
rc=0
for R in $RATES; do
    TAG=lat${R}_$(date +%s)_$$
    D=$OUT/latency-$TAG
    SP=$D/spool
    mkdir -p "$SP" "$D/chunks"
    PER=$((R * PERIOD / 1000))
    NF=$((SECS * 1000 / PERIOD))
    N=$((PER * NF))
    # the input, made before any clock: N payees in NF files of PER lines each
    "$BUILD/bench/bench_ingest" gen -n "$N" --out "$D/all.csv" --seed "$R" >/dev/null || { rc=2; break; }
    # split into files of PER records each, header first; a record may span
    # lines (a quoted field with a line break): it ends where its quotes pair
    awk -v per="$PER" -v dir="$D/chunks" '
        NR == 1 { hdr = $0; next }
        { if (!open_q) { if (k % per == 0) { if (f) close(f); f = sprintf("%s/c%05d.csv", dir, k / per); print hdr > f }
                         k++ }
          print > f
          t = $0; nq = gsub(/"/, "", t); if (nq % 2) open_q = !open_q }' "$D/all.csv"
    rm -f "$D/all.csv"
    SCH=$TAG
    psql "$PGC" -qc "CREATE SCHEMA \"$SCH\"" || { rc=2; break; }
    # every topic exists before the services start, as in a running system: a
    # consumer subscribed to a topic not yet created waits for librdkafka's
    # metadata refresh (tens of seconds) before it fetches anything
    for t in payee.raw payee.valid payee.dlq payee.retry audit ckpt; do
        "$BUILD/bench/bench_persister" fill --broker "$BROKER" --topic "$TAG.$t" -n 0 || { rc=2; break 2; }
    done
    common=(--topic.prefix "$TAG." --audit.topic "$TAG.audit" --kafka.bootstrap.servers "$BROKER")
    "$B/svc-ingest" serve --dataset payee --spool.dir "$SP" --spool.poll.ms 10 --checkpoint.topic "$TAG.ckpt" \
        --http.port "$P_ING" "${common[@]}" 2>"$D/ingest.err" &
    p1=$!
    "$B/svc-validator" --dataset payee --group.id "v$TAG" --http.port "$P_VAL" "${common[@]}" 2>"$D/validator.err" &
    p2=$!
    "$B/svc-persister" --dataset payee --sink postgres --create.tables --pg.schema "$SCH" --pg.password tributary \
        --group.id "p$TAG" --http.port "$P_PER" "${common[@]}" 2>"$D/persister.err" &
    p3=$!
    "$B/svc-cache-feeder" --dataset payee --cache.prefix "$TAG" --group.id "c$TAG" --redis.host "$RH" \
        --redis.port "$RP" --http.port "$P_CF" "${common[@]}" 2>"$D/cache_feeder.err" &
    p4=$!
    ok=0
    for _ in $(seq 600); do
        ready $P_ING && ready $P_VAL && ready $P_PER && ready $P_CF && { ok=1; break; }
        sleep 0.1
    done
    if [ $ok -ne 1 ]; then
        echo "BROKEN: the pipeline for ${R}/s never became ready (see $D/*.err)" >&2
        rc=1
    else
        # ready is not yet joined: give the three consumer groups their assignment
        sleep 2
        la0=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s%N)
        i=0
        for f in "$D"/chunks/c*.csv; do
            i=$((i + 1))
            target=$((t0 + (i - 1) * PERIOD * 1000000))
            nowns=$(date +%s%N)
            [ "$nowns" -lt "$target" ] && sleep "$(awk -v d=$((target - nowns)) 'BEGIN { printf "%.3f", d / 1e9 }')"
            mv "$f" "$SP/.payee-$i.tmp" && mv "$SP/.payee-$i.tmp" "$SP/payee-$i.csv"
            rss_sample "$D/rss" $p1 $p2 $p3 $p4
        done
        t_off=$(date +%s%N)
        deadline=$((SECONDS + 300))
        while [ $SECONDS -lt $deadline ]; do
            np=$(psql "$PGC" -Atc "SELECT count(*) FROM \"$SCH\".payee" 2>/dev/null || echo 0)
            nc=$(redis-cli -h "$RH" -p "$RP" HLEN "$TAG#meta:payee" 2>/dev/null || echo 0)
            [ "${np:-0}" -ge "$N" ] && [ "${nc:-0}" -ge "$N" ] && break
            rss_sample "$D/rss" $p1 $p2 $p3 $p4
            sleep 0.2
        done
        t_done=$(date +%s%N)
        la1=$(cut -d' ' -f1-3 /proc/loadavg)
        # svc-ingest's own time per file (its summaries): median and largest
        read -r fmed fmax < <(sed -n 's/.*"seconds":\([0-9.e+-]*\).*/\1/p' "$SP"/done/*.summary.json |
            sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f %.3f\n", v[int((NR + 1) / 2)], v[NR]; else print "0 0" }')
        rss="    RSS (MB, steady median / peak; target steady < 64 MB):"
        rss="$rss $(rss_line "$D/rss" svc-ingest $p1 "$(status_kb $p1 VmHWM)"),"
        rss="$rss $(rss_line "$D/rss" svc-validator $p2 "$(status_kb $p2 VmHWM)"),"
        rss="$rss $(rss_line "$D/rss" svc-persister $p3 "$(status_kb $p3 VmHWM)"),"
        rss="$rss $(rss_line "$D/rss" svc-cache-feeder $p4 "$(status_kb $p4 VmHWM)")"
        read -r pn p50 p99 p999 < <(quantiles $P_PER)
        read -r cn c50 c99 c999 < <(quantiles $P_CF)
        [ "${np:-0}" -ge "$N" ] || { echo "BROKEN: ${R}/s: PostgreSQL holds ${np:-0} of $N rows" >&2; rc=1; }
        [ "${nc:-0}" -ge "$N" ] || { echo "BROKEN: ${R}/s: Redis holds ${nc:-0} of $N keys" >&2; rc=1; }
        awk -v r="$R" -v n="$N" -v t0="$t0" -v to="$t_off" -v td="$t_done" -v la0="$la0" -v la1="$la1" \
            -v pn="$pn" -v p50="$p50" -v p99="$p99" -v p999="$p999" \
            -v cn="$cn" -v c50="$c50" -v c99="$c99" -v c999="$c999" -v fmed="$fmed" -v fmax="$fmax" -v nf="$NF" -v per_s="$(awk -v p="$PERIOD" 'BEGIN { print p / 1000 }')" 'BEGIN {
            off = n / ((to - t0) / 1e9 + per_s); thr = n / ((td - t0) / 1e9)
            printf "  %6d/s offered (%.0f/s offered in fact, %.0f/s through both sinks, first file to last record stored; load average %s at start, %s at end)\n", r, off, thr, la0, la1
            printf "    svc-ingest per file (%d files): median %.0f ms, largest %.0f ms\n", nf, fmed * 1e3, fmax * 1e3
            printf "    svc-persister     %7d rows  p50 %7.1f ms  p99 %7.1f ms  p99.9 %7.1f ms\n", pn, p50 * 1e3, p99 * 1e3, p999 * 1e3
            printf "    svc-cache-feeder  %7d keys  p50 %7.1f ms  p99 %7.1f ms  p99.9 %7.1f ms\n", cn, c50 * 1e3, c99 * 1e3, c999 * 1e3
            if (r == 20000) {
                worst = p99 > c99 ? p99 : c99
                printf "    at 20k/s: p99 %.1f ms against 100 ms (seeds 000/003): %s; against ours, 50 ms: %s\n", worst * 1e3,
                       worst < 0.1 ? "under" : "over", worst < 0.05 ? "under" : "over"
            } }'
        echo "$rss"
    fi
    for p in $p1 $p2 $p3 $p4; do kill -TERM "$p" 2>/dev/null; done
    wait $p1 $p2 $p3 $p4 2>/dev/null
    PGOPTIONS='-c client_min_messages=warning' psql "$PGC" -qc "DROP SCHEMA \"$SCH\" CASCADE"
    redis-cli -h "$RH" -p "$RP" --scan --pattern "$TAG*" | xargs -r -n 1000 redis-cli -h "$RH" -p "$RP" UNLINK >/dev/null
    "$BUILD/bench/bench_produce" delete --broker "$BROKER" "$TAG.payee.raw" "$TAG.payee.valid" "$TAG.payee.dlq" \
        "$TAG.payee.retry" "$TAG.audit" "$TAG.ckpt" >/dev/null 2>&1 || true
    [ $rc -eq 0 ] && [ "${BENCH_KEEP:-0}" != 1 ] && rm -rf "$D"
done
exit $rc
