#!/usr/bin/env bash
# Fuzzes the wire protocol with cargo-fuzz (libFuzzer): each target runs for
# SECONDS (default 60), then its executions, exec/s and coverage are printed.
# Not part of scripts/test.sh; the property tests in shared/tests cover the
# same properties quickly on every test run.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   targets: decode_client server_frame
#
# cargo-fuzz needs unstable compiler flags; on the stable toolchain this sets
# RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER=none skips AddressSanitizer if it will not
# build (faster, but catches less). The growing corpus is kept in
# fuzz/corpus/TARGET, logs in fuzz/logs, crashing inputs in fuzz/artifacts/TARGET
# (reproduce one with `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_client server_frame)
fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}

status=0
mkdir -p fuzz/logs
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${secs}s (sanitizer: $sanitizer)"
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/logs/$target.log"
    # -a: debug assertions (integer overflow and the like) in the fuzzed code.
    cargo fuzz run -a --sanitizer "$sanitizer" "$target" \
        "$root/fuzz/corpus/$target" "$root/fuzz/seeds/$target" -- \
        -max_total_time="$secs" -max_len=4096 -dict="$root/fuzz/protocol.dict" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)
    echo "$target: executions ${execs:-?}, exec/s ${rate:-?}"
    echo "$target: ${done_line:-no DONE line; see $log}"
    if [ "$status" -ne 0 ]; then
        echo "$target: FAILED (exit $status); see $log and fuzz/artifacts/$target" >&2
        tail -n 40 "$log" >&2
        exit "$status"
    fi
done
