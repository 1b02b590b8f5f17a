#!/usr/bin/env bash
# Builds the example Python judge into a component: ./build.sh OUT.wasm
# Skips the build (13 s) when OUT was built from the same app.py and WIT files (a hash of
# them is kept next to OUT).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/env.sh"
out="${1:?usage: build.sh OUT.wasm}"
stamp="$out.inputs"
inputs="$(cat "$here/app.py" "$ADVGAME_ROOT"/wit/*.wit | sha256sum | cut -d' ' -f1)"
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
"$ADVGAME_VENV/bin/componentize-py" -d "$ADVGAME_ROOT/wit" -w judge-plugin \
  componentize app -p "$here" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$inputs" > "$stamp"
echo "[python-judge] built $out ($(stat -c %s "$out") bytes)" >&2
