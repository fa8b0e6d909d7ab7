#!/usr/bin/env bash
# Builds the web app's release bundle into web/dist with trunk, offline, with
# wasm-opt from the npm package binaryen first on PATH, minifies the JS glue
# with terser (npm; scripts/setup.sh installs both), then prints the size of
# the wasm and the js, raw and gzipped: wasm + js gzipped is the bundle
# figure, whose budget is 150 KB (150,000 bytes).
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

# The wasm is built with the `web-release` cargo profile (whole-program LTO,
# one codegen unit, abort on panic, opt-level z; see the workspace
# Cargo.toml), which web/index.html names for release builds.
trunk build --release --offline "$@"

# wasm-bindgen's JS glue is part of the budget and trunk's own minifier cannot
# parse it, so terser minifies it here; index.html's `integrity` for it is
# then recomputed (the browser refuses a module whose hash differs).
terser="$TOOLS_DIR/node_modules/terser/bin/terser"
[ -f "$terser" ] || {
    echo "build-web: terser is missing; run scripts/setup.sh" >&2
    exit 1
}
sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }
for js in web/dist/*.js; do
    before=$(sri "$js")
    grep -qF "integrity=\"$before\"" web/dist/index.html || {
        echo "build-web: web/dist/index.html has no integrity $before for $js" >&2
        exit 1
    }
    node "$terser" "$js" --module --compress --mangle --output "$js.min"
    mv "$js.min" "$js"
    sed -i "s|integrity=\"$before\"|integrity=\"$(sri "$js")\"|" web/dist/index.html
done

# trunk names the wasm and the glue after wasm-bindgen's output, before
# wasm-opt and terser ran: a new wasm-opt or terser would change the bytes
# under the same name, which the server marks immutable (a returning browser
# would then fail the integrity check on its cached copy). Name them after
# the bytes served instead.
wasms=(web/dist/*_bg.wasm)
[ ${#wasms[@]} = 1 ] || {
    echo "build-web: expected one wasm in web/dist, found ${#wasms[@]}" >&2
    exit 1
}
base=$(basename "${wasms[0]}" _bg.wasm) # hubbub-web-0123456789abcdef
served="${base%-*}-$(cat "web/dist/$base.js" "${wasms[0]}" | sha256sum | cut -c1-16)"
if [ "$served" != "$base" ]; then
    mv "web/dist/$base.js" "web/dist/$served.js"
    mv "${wasms[0]}" "web/dist/${served}_bg.wasm"
    sed -i "s|/$base\([._]\)|/$served\1|g" web/dist/index.html
fi

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
