#!/usr/bin/env bash
# hubbub as a cluster on this machine: a throwaway PostgreSQL (initdb into a
# temp dir, a free loopback port, as the postgres user when run as root),
# NODES hubbub nodes on it with --cluster, and hubbub-bench spreading its
# clients over them (--addr a,b,c; CPU and memory summed over the nodes).
# Everything is stopped and removed at the end. See docs/benchmarks.md.
#
# Scenarios (SCENARIOS, default both):
#   fanout   one room of CLIENTS (1000) members spread over the nodes,
#            RATE (100) messages/s in: 100k deliveries/s
#   durable  many small rooms: 400 clients, 200 rooms, 400 senders,
#            DURABLE_RATE (20000) messages/s in, each stored in PostgreSQL
#
# Environment: NODES=3 DURATION=10s CLIENTS=1000 RATE=100 DURABLE_RATE=20000
#              OUT=DIR (JSON summaries; default a new temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-1000}
RATE=${RATE:-100}
DURABLE_RATE=${DURABLE_RATE:-20000}
SCENARIOS=${SCENARIOS:-fanout durable}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hubbub-cluster.XXXXXX")}
mkdir -p "$OUT"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL's server is missing: scripts/setup.sh --postgres" >&2; exit 1; }
cargo build --release -p hubbub -p hubbub-bench >&2

as_pg=()
dir=$(mktemp -d /tmp/hubbub-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale C >/dev/null
# fsync stays on: acks wait for a durable commit, as in production.
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null

run_scenario() {
    local name=$1
    shift
    local db="bench_$name"
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -q -c "CREATE DATABASE $db"
    local addrs=() node_pids=()
    for n in $(seq 1 "$NODES"); do
        local log="$OUT/$name-node$n.log"
        HUBBUB_LOG=warn target/release/hubbub --listen 127.0.0.1:0 \
            --database "postgres://postgres@127.0.0.1:$port/$db" --cluster --node-id "n$n" \
            --rate 1000000 --burst 1000000 --max-conns-per-ip 1000000 >"$log" 2>&1 &
        node_pids+=($!)
        pids+=($!)
        for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
        addrs+=("$(sed -n 's/.*listening on http:\/\///p' "$log" | head -1)")
    done
    local joined_addrs joined_pids
    joined_addrs=$(IFS=,; echo "${addrs[*]}")
    joined_pids=$(IFS=,; echo "${node_pids[*]}")
    echo "== $name: $NODES nodes ($joined_addrs), $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    target/release/hubbub-bench --addr "$joined_addrs" --server-pid "$joined_pids" --json "$@" \
        >"$OUT/$name.json"
    for pid in "${node_pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1]));
        const l = s.latency, v = s.server || {};
        console.log(`${process.argv[2]}: sent ${s.sent}, delivered ${s.delivered}/${s.expected}, lost ${s.lost}, duplicates ${s.duplicates}, ` +
          `p50 ${(l.p50_us/1000).toFixed(1)} ms, p99 ${(l.p99_us/1000).toFixed(1)} ms, ` +
          `nodes CPU ${(v.cpu_fraction*100).toFixed(0)} % of a core (user ${v.user_seconds} s, system ${v.system_seconds} s), load ${s.loadavg}`);
    ' "$OUT/$name.json" "$name"
}

for scenario in $SCENARIOS; do
    case $scenario in
        fanout) run_scenario fanout --clients "$CLIENTS" --senders 10 --rate "$RATE" --duration "$DURATION" ;;
        durable) run_scenario durable --clients 400 --rooms 200 --senders 400 --rate "$DURABLE_RATE" --duration "$DURATION" ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
done
echo "JSON summaries in $OUT" >&2
