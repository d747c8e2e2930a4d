#!/usr/bin/env bash
# Fuzzing (issue 6, "Fuzzing"; not in CI): runs the proptest targets of tests/fuzz.rs — control
# protocol parser, bounded line reader, config loader, redaction — for a bounded wall-clock time,
# round after round, each round with a fresh random seed and a large case count.
#
#   bash benches/fuzz.sh                    # 5 minutes
#   FUZZ_SECONDS=60 bash benches/fuzz.sh    # a quick look
#   FUZZ_FILTER=protocol bash benches/fuzz.sh
#
# Prints per round the seed, the cases run and the result; at the end the totals per target.
# A failure stops the run: proptest has shrunk it and written its seed to
# tests/fuzz.proptest-regressions (replayed first by every later run, CI included); the
# script prints the minimal failing input and the seed to reproduce it with
# `PROPTEST_RNG_SEED=SEED cargo test --test fuzz NAME`. Turn it into an explicit #[test] at the
# end of tests/fuzz.rs once fixed.
#
# Environment (optional):
#   FUZZ_SECONDS  wall-clock budget (default 300); the round running when it ends finishes
#   FUZZ_CASES    cases per target per round (default 5000)
#   FUZZ_FILTER   only the targets whose name contains this
#   FUZZ_SEED     seed of the first round (then seed+1, …), to replay a run; random otherwise
#   FUZZ_RELEASE  1: build the targets optimized (more cases per second, a longer build)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_BUDGET=${FUZZ_SECONDS:-300}
CASES=${FUZZ_CASES:-5000}
FILTER=${FUZZ_FILTER:-}

die() { printf 'benches/fuzz.sh: %s\n' "$*" >&2; exit 2; }
[[ $SECONDS_BUDGET =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a whole number of seconds"
[[ $CASES =~ ^[1-9][0-9]*$ ]] || die "FUZZ_CASES must be a positive whole number"
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

tmp=$(mktemp -d /tmp/steward-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

profile=()
[ "${FUZZ_RELEASE:-0}" = 1 ] && profile=(--release)
echo "==> building tests/fuzz.rs ${profile[*]:-(debug)}" >&2
cargo test "${profile[@]}" --test fuzz --no-run --message-format=json-render-diagnostics \
    >"$tmp/build.json" 2>"$tmp/build.log" ||
    { cat "$tmp/build.log" >&2; die "build failed"; }
bin=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' "$tmp/build.json" | tail -n 1)
[ -x "$bin" ] || die "test binary not found"

mapfile -t targets < <("$bin" --list 2>/dev/null | sed -n 's/: test$//p' | grep -F -- "$FILTER" | grep -v '^regression_')
[ "${#targets[@]}" -gt 0 ] || die "no target in $bin matches FUZZ_FILTER=$FILTER"

declare -A cases_run=() rounds_run=()
for t in "${targets[@]}"; do cases_run[$t]=0 rounds_run[$t]=0; done
seed=${FUZZ_SEED:-$(od -An -tu8 -N8 /dev/urandom | tr -d ' ')}
# proptest reads the seed as a u64.
[[ $seed =~ ^[0-9]+$ ]] || die "FUZZ_SEED must be a whole number"
start=$SECONDS
round=0
failed=
echo "==> ${#targets[@]} targets, $CASES cases each per round, for ${SECONDS_BUDGET} s" >&2
while [ $((SECONDS - start)) -lt "$SECONDS_BUDGET" ]; do
    round=$((round + 1))
    for t in "${targets[@]}"; do
        [ $((SECONDS - start)) -lt "$SECONDS_BUDGET" ] || break
        t0=$SECONDS
        if PROPTEST_CASES=$CASES PROPTEST_RNG_SEED=$seed PROPTEST_MAX_SHRINK_TIME=60000 \
            "$bin" --exact "$t" --test-threads 1 >"$tmp/out.log" 2>&1; then
            cases_run[$t]=$((cases_run[$t] + CASES))
            rounds_run[$t]=$((rounds_run[$t] + 1))
            printf 'round %3d  %-45s seed %-20s %6d cases  ok    (%d s)\n' "$round" "$t" "$seed" "$CASES" $((SECONDS - t0))
        else
            printf 'round %3d  %-45s seed %-20s FAILED\n' "$round" "$t" "$seed"
            grep -E 'Test failed|minimal failing input|panicked' -A 12 "$tmp/out.log" | head -n 60
            failed=$t failed_seed=$seed
            break 2
        fi
        seed=$(((seed + 1) & 0x7fffffffffffffff))
    done
done

echo
echo "fuzz: $((SECONDS - start)) s, $round rounds"
total=0
for t in "${targets[@]}"; do
    printf '  %-45s %9d cases in %d rounds\n' "$t" "${cases_run[$t]}" "${rounds_run[$t]}"
    total=$((total + cases_run[$t]))
done
echo "  total                                         $total cases"
if [ -n "$failed" ]; then
    echo "  FAILED: $failed (seed $failed_seed); it is saved in tests/fuzz.proptest-regressions; reproduce with:"
    echo "    PROPTEST_CASES=$CASES PROPTEST_RNG_SEED=$failed_seed cargo test --test fuzz -- --exact $failed"
    exit 1
fi
echo "  no failure"
