#!/usr/bin/env bash
# Runs every check and test of hubbub: formatting, lints (server and wasm),
# the release web bundle, then all unit, integration and browser tests, and
# the Autobahn WebSocket conformance suite (scripts/autobahn.sh) when the
# Python 2.7 it needs is there.
# Installs what is missing first (scripts/setup.sh); quick when nothing is.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --browser --postgres

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (server, protocol)"
cargo clippy --all-targets -- -D warnings

echo "== cargo clippy (client core, wasm32: no I/O, no std clock)"
cargo clippy -p hubbub-client --target wasm32-unknown-unknown -- -D warnings

echo "== cargo clippy (web, wasm32)"
cargo clippy -p hubbub-web --target wasm32-unknown-unknown -- -D warnings

echo "== web bundle"
scripts/build-web.sh

echo "== cargo test"
cargo test --workspace --exclude hubbub-web

echo "== cargo test (web app logic, native)"
cargo test -p hubbub-web

echo "== autobahn (RFC 6455 conformance of the WebSocket layer)"
if [ -x "${HUBBUB_PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python}" ]; then
    scripts/autobahn.sh
else
    echo "autobahn: skipped (no python2.7 under pyenv)"
fi
