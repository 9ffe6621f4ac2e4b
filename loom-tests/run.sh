#!/usr/bin/env bash
# Runs ringport's loom models: the positive suite, then the suite built with each mutant,
# where every model that is a control of that mutant must watch loom fail (the tests
# assert it), so a passing run means every mutant was caught.
#
# Environment: LOOM_MAX_PREEMPTIONS overrides the models' preemption bound;
# LOOM_TESTS_TIMEOUT bounds each configuration in seconds (default 900), so a model that
# explodes fails loudly instead of hanging CI; RUSTFLAGS is kept and extended.
#
# All configurations share one target directory: cargo hashes RUSTFLAGS into every
# artifact's name, so each configuration keeps its own build beside the others and a
# rerun compiles only what changed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

mutants=(
    typed_publish_relaxed
    typed_release_relaxed
    frame_publish_relaxed
    frame_skip_zero_next
    signal_no_fence
    signal_no_notify
    state_writer_no_fence
    state_reader_no_fence
    state_version_relaxed
    broadcast_writer_no_fence
    signal_no_arm
    mpmc_publish_relaxed
    mpmc_release_relaxed
    pool_loan_relaxed
    pool_unref_relaxed
    pool_no_generation
    port_handover_closes
    priority_bell_unrung
    worker_duty_call_silent
)
limit="${LOOM_TESTS_TIMEOUT:-900}"
base_flags="${RUSTFLAGS:-} --cfg loom"
summary=()
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run_config LABEL RUSTFLAGS [MUTANT]: with a mutant, at least one model must also have
# reported catching it, so a suite whose controls were all removed cannot pass.
run_config() {
    local label=$1 flags=$2 mutant=${3:-}
    local start=$SECONDS status=0
    echo "loom-tests: running $label"
    RUSTFLAGS="$flags" timeout --kill-after=30 "$limit" \
        cargo test -p loom-tests --release -- --nocapture --test-threads=1 2>&1 |
        tee "$log" || status=$?
    local elapsed=$((SECONDS - start)) line
    if [[ $status -eq 0 && -n $mutant ]] && ! grep -q "loom caught $mutant" "$log"; then
        status=1
        line="FAILED   ${elapsed}s  $label (no model is a control for it)"
    fi
    case $status in
        0) line="ok       ${elapsed}s  $label" ;;
        124 | 137) line="TIMEOUT  ${elapsed}s  $label (limit ${limit}s)" ;;
        *) line=${line:-"FAILED   ${elapsed}s  $label (exit $status)"} ;;
    esac
    echo "loom-tests: $line"
    summary+=("$line")
    [[ $status -eq 0 ]]
}

total_start=$SECONDS
run_config "positive suite" "$base_flags" || failed=1
for m in "${mutants[@]}"; do
    run_config "mutant $m (must be caught)" "$base_flags --cfg ringport_mutant=\"$m\"" "$m" ||
        failed=1
done

echo
echo "loom-tests summary:"
printf '  %s\n' "${summary[@]}"
echo "  total $((SECONDS - total_start))s"
exit "$failed"
