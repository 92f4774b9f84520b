#!/usr/bin/env bash
# Runs Check test binaries one after the other and prints one closing line:
# "N passed, N failed". Exit status is non-zero when any test failed or a
# binary crashed.
set -u
label=$1; shift
passed=0; failed=0; broken=()
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
echo
echo "$label: $passed passed, $failed failed"
[ ${#broken[@]} -eq 0 ] || { echo "failing: ${broken[*]}"; exit 1; }
