#!/usr/bin/env bash
# Builds the web app's release bundle into web/dist with trunk, offline, with
# wasm-opt from the npm package binaryen first on PATH (scripts/setup.sh
# installs it), then prints the size of the wasm and the js, raw and gzipped.
# The release server binary embeds web/dist (server/src/assets.rs): build the
# bundle first, then the server.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR="${HUBBUB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hubbub-tools}"
export PATH="$TOOLS_DIR/node_modules/binaryen/bin:$HOME/.cargo/bin:$PATH"

for tool in trunk wasm-bindgen wasm-opt; do
    command -v "$tool" >/dev/null || {
        echo "build-web: $tool is missing; run scripts/setup.sh" >&2
        exit 1
    }
done

# Size over speed for the wasm, set here rather than in the workspace's
# release profile so the server keeps its own: whole-program LTO, one codegen
# unit, abort on panic (no unwinding tables) and opt-level z for every crate
# of the bundle. These only reach the wasm32 build trunk runs.
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z

trunk build --release --offline "$@"

# rust-embed cannot see files appear in web/dist: make cargo rebuild the
# module that embeds them.
touch server/src/assets.rs

size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
echo "web bundle (web/dist):"
for f in web/dist/*.wasm web/dist/*.js web/dist/*.css; do
    [ -e "$f" ] || continue
    printf '  %-44s %8d bytes raw %8d bytes gzipped\n' "$(basename "$f")" "$(size "$f")" "$(gz "$f")"
done
total_raw=0
total_gz=0
for f in web/dist/*.wasm web/dist/*.js; do
    total_raw=$((total_raw + $(size "$f")))
    total_gz=$((total_gz + $(gz "$f")))
done
printf '  %-44s %8d bytes raw %8d bytes gzipped\n' "wasm + js" "$total_raw" "$total_gz"
