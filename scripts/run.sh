#!/usr/bin/env bash
# Builds and runs hubbub: the web bundle, then the release server binary that
# embeds it, serving on http://127.0.0.1:8080 (extra arguments go to the
# server, e.g. `scripts/run.sh --listen 0.0.0.0:8080`). Installs what is
# missing first (scripts/setup.sh); quick when nothing is.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# Status 3: built, but over the bundle's size budget; it runs all the same.
scripts/build-web.sh || [ $? = 3 ]
exec cargo run --release -p hubbub -- "$@"
