#!/usr/bin/env bash
# short.sh DIR SECONDS NAME... — the short fuzz run of `make test`: each
# harness DIR/NAME replays its seed corpus (tests/fuzz/corpus/NAME, read
# only) and then fuzzes for SECONDS; new inputs go to DIR/work/NAME, a crash
# to DIR/NAME-crash-*. FUZZ_ENV and FUZZ_OPTS come from the Makefile.
# Prints one line per harness and "fuzz: N passed, N failed"; exits 1 when
# any harness found a crash, a leak or a broken invariant.
set -u
dir=$1 secs=$2; shift 2
passed=0 failed=0
for name in "$@"; do
    mkdir -p "$dir/work/$name"
    log="$dir/$name.short.log"
    start=$(date +%s)
    # shellcheck disable=SC2086
    env $FUZZ_ENV "$dir/$name" $FUZZ_OPTS -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$dir/$name-" "$dir/work/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name: ${runs:-?} runs, ${cov:-cov: ?} (${took}s)"
    else
        failed=$((failed + 1))
        echo "FAIL $name (exit $rc, ${took}s): log $log"
        grep -E 'ERROR|invariant broken|SUMMARY|Test unit written' "$log" | head -n 20 | sed 's/^/  > /'
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
