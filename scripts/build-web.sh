#!/usr/bin/env bash
# Builds the web app's release bundle into web/dist with trunk, offline, with
# wasm-opt from the npm package binaryen first on PATH, minifies the JS glue
# with terser (npm; scripts/setup.sh installs both), then prints the size of
# the wasm and the js, raw and gzipped: wasm + js gzipped is the bundle
# figure, whose budget is 150 KB (150,000 bytes): over it, the script
# fails with status 3 (after building and printing the sizes).
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

# A panic's message names its source file, and the path of the crates.io
# sources on this machine (~/.cargo/registry/src/index.crates.io-<hash>/)
# is most of each name: the wasm names them from the crate's directory on
# (`yew-0.23.0/src/...`). For the wasm target only (cargo's
# target.<triple>.rustflags; a RUSTFLAGS set by hand wins over it). Cargo
# keeps these builds apart from a bare `trunk build --release`'s, so the
# first run after a checkout builds the dependencies once more.
remap=""
for src in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
    remap="$remap --remap-path-prefix=$src="
done
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-}$remap"

# The wasm is built with the `web-release` cargo profile (whole-program LTO,
# one codegen unit, abort on panic, opt-level z; see the workspace
# Cargo.toml), which web/index.html names for release builds.
trunk build --release --offline "$@"

sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

# wasm-bindgen names each of the wasm's ~200 imports after the JS it calls
# plus a hash (`__wbg_focus_d5e2fdbdb56416f0`), once in the wasm and once in
# the glue: ~4 KB gzipped of names. wasm-opt shortens them, the exports and
# the import module in the wasm (with one more -Oz, which the short names
# let shrink a little further) and prints what it renamed;
# scripts/wasm-names.cjs renames the same in the glue, or stops the build if
# the glue is not as expected. This pass reads the wasm's target features
# section to know the features it may use, and then strips it (index.html's
# params keep it for this reason). index.html's `integrity` of both files
# is then recomputed (the browser refuses a file whose hash differs).
# Both wasm-opt runs (index.html's params and this one) take
# --low-memory-unused: the wasm's lowest 1 KB is never addressed, so
# wasm-opt may fold a constant added to a pointer into the load's or
# store's offset. Rust's wasm32 linker puts the 1 MB stack first, growing
# down from 1 MB, and the data after it: only a stack within 1 KB of
# overflowing would reach there. −1,539 bytes gzipped.
# This run also orders the functions by their code: scripts/wasm-order.cjs
# names each after its place in an order where alike functions follow each
# other, --reorder-functions-by-name sorts them (the names go again on
# output), and gzip finds each one's likeness to its neighbours. −3,340
# bytes gzipped.
wasms=(web/dist/*_bg.wasm)
[ ${#wasms[@]} = 1 ] || {
    echo "build-web: expected one wasm in web/dist, found ${#wasms[@]}" >&2
    exit 1
}
wasm="${wasms[0]}"
names="$(mktemp)"
trap 'rm -f "$names"' EXIT
glue="${wasm%_bg.wasm}.js"
# Replaces index.html's integrity `$1` (of a file since changed) with `$2`'s.
reintegrity() {
    grep -qF "integrity=\"$1\"" web/dist/index.html || {
        echo "build-web: web/dist/index.html has no integrity $1 for $2" >&2
        exit 1
    }
    sed -i "s|integrity=\"$1\"|integrity=\"$(sri "$2")\"|" web/dist/index.html
}
wasm_sri=$(sri "$wasm")
glue_sri=$(sri "$glue")
node scripts/wasm-order.cjs "$wasm" "$wasm.named"
wasm-opt "$wasm.named" -Oz --low-memory-unused --reorder-functions-by-name \
    --minify-imports-and-exports-and-modules --strip-target-features \
    --output "$wasm.min" >"$names"
rm "$wasm.named"
mv "$wasm.min" "$wasm"
node scripts/wasm-names.cjs "$names" "$glue"
reintegrity "$wasm_sri" "$wasm"
reintegrity "$glue_sri" "$glue"

# wasm-bindgen's JS glue is part of the budget and trunk's own minifier cannot
# parse it, so terser minifies it here; index.html's `integrity` for it is
# then recomputed (the browser refuses a module whose hash differs).
terser="$TOOLS_DIR/node_modules/terser/bin/terser"
[ -f "$terser" ] || {
    echo "build-web: terser is missing; run scripts/setup.sh" >&2
    exit 1
}
for js in web/dist/*.js; do
    before=$(sri "$js")
    node "$terser" "$js" --module --compress --mangle --output "$js.min"
    mv "$js.min" "$js"
    reintegrity "$before" "$js"
done

# trunk names the wasm and the glue after wasm-bindgen's output, before
# wasm-opt and terser ran: a new wasm-opt or terser would change the bytes
# under the same name, which the server marks immutable (a returning browser
# would then fail the integrity check on its cached copy). Name them after
# the bytes served instead.
base=$(basename "$wasm" _bg.wasm) # hubbub-web-0123456789abcdef
served="${base%-*}-$(cat "web/dist/$base.js" "$wasm" | sha256sum | cut -c1-16)"
if [ "$served" != "$base" ]; then
    mv "web/dist/$base.js" "web/dist/$served.js"
    mv "$wasm" "web/dist/${served}_bg.wasm"
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

# The budget: a bundle over it fails the script with status 3 (and so
# scripts/test.sh); web/dist is complete all the same, and scripts/run.sh
# runs it with a warning.
budget=150000
if [ "$total_gz" -gt "$budget" ]; then
    echo "build-web: the bundle is $total_gz bytes gzipped (wasm + js), over its budget of $budget bytes by $((total_gz - budget))" >&2
    exit 3
fi
