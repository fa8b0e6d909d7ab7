#!/usr/bin/env bash
# hubbub side by side with a peer, same machine, same run, same load
# generator: Bun's built-in uWebSockets server running bench/peer/bun-server.js
# (in-memory, so hubbub runs both with its default SQLite store and with
# `--store memory`). Builds the release binaries, installs Bun into
# ~/.cache/hubbub-tools/bun if missing (npm package `bun@1`, which ships the
# binary), runs every scenario for each server in turn (server pinned to CPU 0,
# bench to CPU 1), keeps each run's JSON summary and prints a table with
# ratios. See docs/benchmarks.md.
#
# Scenarios (SCENARIOS, default all three):
#   fanout  1 room × 1000 clients, 10 senders, 1000 msg/s = 1 M deliveries/s
#   idle    10,000 idle connections in rooms of 100: RSS per connection
#   burst   1 room × 1000 clients, 50 senders each send 40 × 16 KB at once
#
# Environment:
#   RUNS=1          runs per scenario and server (interleaved: hubbub, hubbub
#                   --store memory, bun, then again)
#   DURATION=10s    fan-out sending time
#   IDLE_CLIENTS=10000
#   BURST_CLIENTS=1000  BURST_SENDERS=50  BURST_DRAIN=300s
#   OUT=DIR         where the JSON summaries go (default: a new temp dir)
#   BUN_DIR=~/.cache/hubbub-tools/bun
#
# Example, a quick check that everything works (not a measurement):
#   DURATION=3s IDLE_CLIENTS=2000 BURST_CLIENTS=100 BURST_SENDERS=10 scripts/bench-vs-bun.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=${SCENARIOS:-fanout idle burst}
RUNS=${RUNS:-1}
DURATION=${DURATION:-10s}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
BURST_CLIENTS=${BURST_CLIENTS:-1000}
BURST_SENDERS=${BURST_SENDERS:-50}
BURST_DRAIN=${BURST_DRAIN:-300s}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hubbub-vs-bun.XXXXXX")}
BUN_DIR=${BUN_DIR:-$HOME/.cache/hubbub-tools/bun}
BUN=$BUN_DIR/node_modules/.bin/bun

if ! "$BUN" --version >/dev/null 2>&1; then
    echo "installing bun@1 into $BUN_DIR" >&2
    mkdir -p "$BUN_DIR"
    npm install --prefix "$BUN_DIR" --no-audit --no-fund bun@1 >&2
    "$BUN" --version >/dev/null || {
        echo "bun did not install: its postinstall script must run (no --ignore-scripts)" >&2
        exit 1
    }
fi

cargo build --release -p hubbub -p hubbub-bench >&2
B=target/release/hubbub-bench
S=target/release/hubbub
mkdir -p "$OUT"

# One run: NAME (hubbub, hubbub-memory, bun), SCENARIO, RUN, bench arguments.
run() {
    local name=$1 scenario=$2 n=$3
    shift 3
    local spawn
    case $name in
        hubbub) spawn=(--spawn-server "$S") ;;
        hubbub-memory) spawn=(--spawn-server "$S" --server-arg=--store=memory) ;;
        bun) spawn=(--spawn-cmd "$BUN bench/peer/bun-server.js") ;;
    esac
    echo "== $scenario, $name, run $n: $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$B" "${spawn[@]}" --json "$@" >"$OUT/$scenario--$name--$n.json"
}

for n in $(seq 1 "$RUNS"); do
    for scenario in $SCENARIOS; do
        for name in hubbub hubbub-memory bun; do
            case $scenario in
                fanout) run $name fanout "$n" --clients 1000 --senders 10 --rate 1000 --duration "$DURATION" ;;
                idle) run $name idle "$n" --clients "$IDLE_CLIENTS" --rooms 100 --idle --duration 3s ;;
                burst) run $name burst "$n" --clients "$BURST_CLIENTS" --senders "$BURST_SENDERS" --burst 40 \
                    --text-bytes 16384 --drain "$BURST_DRAIN" ;;
                *) echo "unknown scenario $scenario" >&2; exit 2 ;;
            esac
        done
    done
done

echo "# hubbub vs Bun $("$BUN" --version), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git describe --always --dirty)"
echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); uptime:$(uptime | sed 's/.*load/ load/')"
echo "# JSON summaries: $OUT"
"$BUN" bench/peer/compare.js "$OUT"
