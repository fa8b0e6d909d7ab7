#!/usr/bin/env bash
# Installs what building (and, with --browser, testing) hubbub needs on a
# Debian machine that has only Rust: the wasm32 target, trunk, wasm-bindgen-cli
# (the exact version web/Cargo.toml pins), wasm-opt from the npm package
# binaryen (Debian's is too old for current rustc output), and with --browser
# Chromium and its WebDriver for the end-to-end test, plus axe-core (npm), which
# that test runs in the page to check accessibility. Every tool is checked by
# version; what is already right is left alone, so a second run takes seconds.
#
#   scripts/setup.sh            # build tools only
#   scripts/setup.sh --browser  # also chromium + chromium-driver (apt), axe-core (npm)
#   scripts/setup.sh --postgres # also PostgreSQL's server (apt), for the tests
#                               # that start a throwaway one (server/tests/postgres.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130 # = the `wasm-bindgen = "=..."` pin in web/Cargo.toml
BINARYEN_VERSION=132         # = `wasm_opt = "version_..."` in Trunk.toml
TERSER_VERSION=5.51.4        # minifies wasm-bindgen's JS glue (scripts/build-web.sh)
AXE_VERSION=4.14.1           # axe-core, injected by server/tests/browser.rs
TOOLS_DIR="${HUBBUB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hubbub-tools}"

browser=false
postgres=false
for arg in "$@"; do
    case "$arg" in
        --browser) browser=true ;;
        --postgres) postgres=true ;;
        -h | --help)
            sed -n '2,15p' "$0"
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument $arg" >&2
            exit 2
            ;;
    esac
done

say() { echo "setup: $*"; }
export PATH="$HOME/.cargo/bin:$PATH"

# apt-get, as root or through sudo; `apt-get update` at most once per run.
apt_updated=false
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || {
            echo "setup: need root (or sudo) to apt-get install $*" >&2
            exit 1
        }
        sudo="sudo"
    fi
    if ! $apt_updated; then
        $sudo apt-get update -qq
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

# --- Rust: the wasm target ------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

# --- trunk ------------------------------------------------------------------
if [ "$(trunk --version 2>/dev/null || true)" != "trunk $TRUNK_VERSION" ]; then
    say "installing trunk $TRUNK_VERSION (cargo install; takes a few minutes once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
fi

# --- wasm-bindgen-cli ---------------------------------------------------------
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked --force ||
        cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# --- wasm-opt from npm's binaryen ----------------------------------------------
wasm_opt="$TOOLS_DIR/node_modules/binaryen/bin/wasm-opt"
if ! "$wasm_opt" --version 2>/dev/null | grep -q "version $BINARYEN_VERSION\b"; then
    if ! command -v npm >/dev/null; then
        say "installing nodejs and npm (apt) for binaryen"
        apt_install nodejs npm
    fi
    say "installing binaryen@$BINARYEN_VERSION (npm) into $TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "binaryen@$BINARYEN_VERSION"
    "$wasm_opt" --version | grep -q "version $BINARYEN_VERSION\b" || {
        echo "setup: $wasm_opt is not binaryen $BINARYEN_VERSION" >&2
        exit 1
    }
fi

# --- terser (npm), for the JS glue of the web bundle -----------------------------
terser="$TOOLS_DIR/node_modules/terser/bin/terser"
if [ "$(node "$terser" --version 2>/dev/null || true)" != "terser $TERSER_VERSION" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    say "installing terser@$TERSER_VERSION (npm) into $TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "terser@$TERSER_VERSION"
fi

# --- crates, so trunk's offline build finds them --------------------------------
cargo fetch --locked --quiet 2>/dev/null || cargo fetch --quiet

# --- the browser for the end-to-end test -------------------------------------------
if $browser; then
    chromium_major=$(chromium --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)
    driver_major=$(chromedriver --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)
    if [ -z "$chromium_major" ] || [ "$chromium_major" != "$driver_major" ]; then
        say "installing chromium and chromium-driver (apt)"
        apt_install chromium chromium-driver
    fi
    axe="$TOOLS_DIR/node_modules/axe-core/axe.min.js"
    if ! grep -q "axe v$AXE_VERSION\b" "$axe" 2>/dev/null; then
        command -v npm >/dev/null || apt_install nodejs npm
        say "installing axe-core@$AXE_VERSION (npm) into $TOOLS_DIR"
        mkdir -p "$TOOLS_DIR"
        npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "axe-core@$AXE_VERSION"
    fi
fi

# --- PostgreSQL's server for the database tests ----------------------------------
# Debian keeps initdb and pg_ctl in /usr/lib/postgresql/VERSION/bin; the tests
# find them there and start a server of their own (nothing is started here).
if $postgres && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing postgresql (apt)"
    apt_install postgresql
fi

say "ok"
