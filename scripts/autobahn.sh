#!/usr/bin/env bash
# Proves hubbub's own WebSocket layer (server/src/ws.rs, server/src/conn.rs)
# against the Autobahn testsuite: builds the echo server (the same layer,
# every message sent back; `cargo run -p hubbub --example echo`), runs
# `wstest -m fuzzingclient` against it on 127.0.0.1 for case groups 1-7, 9
# and 10 (12 and 13 test compression, which hubbub never negotiates), prints
# a table of the results and fails if any case FAILED.
#
# The suite is Python 2 only: it is installed once, pinned
# (scripts/autobahn-requirements.txt), under ~/.cache/hubbub-tools/autobahn
# for the Python 2.7 of pyenv (HUBBUB_PYTHON2 to use another). The full
# reports land in target/autobahn/reports (open index.html).
#
# HUBBUB_AUTOBAHN_CASES='["1.*"]' runs other cases (a JSON list);
# HUBBUB_AUTOBAHN_TIMEOUT bounds the run (seconds, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."

PY2="${HUBBUB_PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python}"
TOOLS="$HOME/.cache/hubbub-tools/autobahn"
REQUIREMENTS=scripts/autobahn-requirements.txt
CASES="${HUBBUB_AUTOBAHN_CASES:-[\"1.*\", \"2.*\", \"3.*\", \"4.*\", \"5.*\", \"6.*\", \"7.*\", \"9.*\", \"10.*\"]}"
RUN_TIMEOUT="${HUBBUB_AUTOBAHN_TIMEOUT:-900}"
OUT="$PWD/target/autobahn"

if [ ! -x "$PY2" ]; then
    echo "autobahn: no Python 2.7 at $PY2 (pyenv install 2.7.18, or set HUBBUB_PYTHON2)" >&2
    exit 1
fi

# Install the suite once per version of the pins.
stamp="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
LIB="$TOOLS/lib-$stamp"
if [ ! -f "$LIB/.installed" ]; then
    echo "== installing the Autobahn testsuite into $LIB"
    rm -rf "$LIB"
    "$PY2" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --no-deps --target "$LIB" -r "$REQUIREMENTS"
    touch "$LIB/.installed"
fi
# `wstest`, run from where pip put it: --target skips .pth files (zope's
# namespace package needs one), site.addsitedir reads them.
WSTEST="import site, sys
site.addsitedir(sys.argv[1])
sys.argv = ['wstest'] + sys.argv[2:]
from autobahntestsuite.wstest import run
run()"

echo "== building the echo server"
cargo build --quiet -p hubbub --example echo
ECHO=target/debug/examples/echo

rm -rf "$OUT"
mkdir -p "$OUT"
"$ECHO" 127.0.0.1:0 >"$OUT/echo.out" 2>"$OUT/echo.log" &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 100); do
    url="$(sed -n 's/^hubbub echo listening on //p' "$OUT/echo.out")"
    [ -n "$url" ] && break
    kill -0 "$echo_pid" 2>/dev/null || { cat "$OUT/echo.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "autobahn: the echo server did not start" >&2; exit 1; }

cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/reports",
  "servers": [{"agent": "hubbub", "url": "$url"}],
  "cases": $CASES,
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON

echo "== wstest -m fuzzingclient against $url (cases $CASES)"
started=$(date +%s)
if ! timeout "$RUN_TIMEOUT" "$PY2" -W ignore -c "$WSTEST" "$LIB" \
    -m fuzzingclient -s "$OUT/fuzzingclient.json" >"$OUT/wstest.log" 2>&1; then
    tail -20 "$OUT/wstest.log" >&2
    echo "autobahn: wstest failed or ran over ${RUN_TIMEOUT}s (log: $OUT/wstest.log)" >&2
    exit 1
fi
echo "   took $(($(date +%s) - started))s"

# One row per case group: how many cases got each verdict. A case FAILED
# if its behaviour did, or its closing behaviour did (FAILED, UNCLEAN);
# other closing notes (WRONG CODE, FAILED BY CLIENT) are listed.
"$PY2" - "$OUT/reports/index.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["hubbub"]
verdicts = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
key = lambda case: [int(part) for part in case.split(".")]
groups = {}
failed = []
for case in sorted(results, key=key):
    result = results[case]
    verdict = result["behavior"]
    if result["behaviorClose"] in ("FAILED", "UNCLEAN") or verdict not in verdicts:
        verdict = "FAILED"
    if verdict == "FAILED":
        failed.append(case)
    elif verdict == "NON-STRICT":
        print("non-strict: %s" % case)
    if result["behaviorClose"] not in ("OK", "INFORMATIONAL", "FAILED", "UNCLEAN"):
        print("closing %s: %s" % (result["behaviorClose"], case))
    row = groups.setdefault(key(case)[0], dict((v, 0) for v in verdicts))
    row[verdict] += 1
print("| group | cases | " + " | ".join(verdicts) + " |")
print("|---|---|" + "---|" * len(verdicts))
total = dict((v, 0) for v in verdicts)
for group in sorted(groups):
    row = groups[group]
    for v in verdicts:
        total[v] += row[v]
    print("| %d | %d | %s |" % (group, sum(row.values()), " | ".join(str(row[v]) for v in verdicts)))
print("| all | %d | %s |" % (sum(total.values()), " | ".join(str(total[v]) for v in verdicts)))
if failed:
    print("autobahn: FAILED: " + ", ".join(failed))
    sys.exit(1)
PY
echo "autobahn: no case failed (reports: $OUT/reports/index.html)"
