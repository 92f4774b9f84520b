#!/usr/bin/env bash
# Runs Check test binaries one after the other and prints one closing line:
# "N passed, N failed". Exit status is non-zero when any test failed or a
# binary crashed.
#
# SUITE_BESIDE="bin ..." (optional): these binaries run in a second lane,
# beside the others (one after the other there too); their report follows
# the first lane's, and the closing line counts both. For a long suite that
# mostly waits on servers (svc-persister's); never for one that stops a
# server (the fault suite runs apart, after this).
# SUITE_BESIDE_THEN="command" (optional): a shell command the second lane
# runs after its binaries (suites that print their own verdict, not Check's:
# the secure set's script, the short fuzz run); a non-zero exit counts as one
# failure, named "beside-then", and its output follows the lane's.
set -u
label=$1; shift

# run_lane TALLY BIN...: run each binary, print its verdict, and write
# "passed failed broken-names..." to TALLY.
run_lane() {
    local tally=$1; shift
    local passed=0 failed=0 broken=() bin name out start rc secs line checks fails errs bad
    for bin in "$@"; do
        name=${bin##*/}
        out=$(mktemp)
        start=$(date +%s)
        "$bin" >"$out" 2>&1
        rc=$?
        secs=$(( $(date +%s) - start ))
        # Check prints "NN%: Checks: N, Failures: N, Errors: N"
        line=$(grep -E '^[0-9]+%: Checks: ' "$out" | tail -n 1)
        if [ -n "$line" ]; then
            checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
            fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
            errs=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
            bad=$((fails + errs))
            passed=$((passed + checks - bad))
            failed=$((failed + bad))
        else
            bad=1; failed=$((failed + 1))
        fi
        if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
            broken+=("$name")
            echo "FAIL $name (exit $rc, ${secs}s)"
            # Check's own verdicts first (file:line:F|E:tcase:test:...), so that
            # services' log lines printed after them cannot push them out of view.
            grep -E '^[^ :]+:[0-9]+:[FE]:' "$out" | sed 's/^/  > /'
            sed 's/^/    /' "$out" | tail -n 60
        else
            echo "ok   $name: ${line#*: } (${secs}s)"
        fi
        rm -f "$out"
    done
    echo "$passed $failed ${broken[*]:-}" >"$tally"
}

beside=()
main=()
for bin in "$@"; do
    case " ${SUITE_BESIDE:-} " in
    *" $bin "*) beside+=("$bin") ;;
    *) main+=("$bin") ;;
    esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# run_then TALLY: SUITE_BESIDE_THEN, its status as a one-failure tally.
run_then() {
    local start rc
    start=$(date +%s)
    bash -c "$SUITE_BESIDE_THEN"
    rc=$?
    echo "-- then: exit $rc ($(( $(date +%s) - start ))s)"
    if [ "$rc" -eq 0 ]; then echo "0 0" >"$1"; else echo "0 1 beside-then" >"$1"; fi
}

lane_b=
if [ ${#beside[@]} -gt 0 ] || [ -n "${SUITE_BESIDE_THEN:-}" ]; then
    {
        [ ${#beside[@]} -eq 0 ] || run_lane "$tmp/tally.b" "${beside[@]}"
        [ -z "${SUITE_BESIDE_THEN:-}" ] || run_then "$tmp/tally.t"
    } >"$tmp/out.b" 2>&1 &
    lane_b=$!
fi
run_lane "$tmp/tally.a" "${main[@]}"
if [ -n "$lane_b" ]; then
    wait "$lane_b"
    echo "-- beside: ${beside[*]##*/}${SUITE_BESIDE_THEN:+ (then SUITE_BESIDE_THEN)}"
    cat "$tmp/out.b"
fi

passed=0; failed=0; broken=()
if [ ${#beside[@]} -gt 0 ] && [ ! -s "$tmp/tally.b" ]; then
    failed=$((failed + 1)); broken+=("beside-lane")
fi
if [ -n "${SUITE_BESIDE_THEN:-}" ] && [ ! -s "$tmp/tally.t" ]; then
    failed=$((failed + 1)); broken+=("beside-then")
fi
for t in "$tmp"/tally.*; do
    read -r p f rest <"$t"
    passed=$((passed + p)); failed=$((failed + f))
    [ -n "${rest:-}" ] && broken+=($rest)
done
echo
echo "$label: $passed passed, $failed failed"
[ ${#broken[@]} -eq 0 ] || { echo "failing: ${broken[*]}"; exit 1; }
