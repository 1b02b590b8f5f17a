#!/usr/bin/env bash
# Builds the example Python judge into a component: ./build.sh OUT.wasm
# Skips the build (13 s) when OUT is newer than app.py and every WIT file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../scripts/env.sh"
out="${1:?usage: build.sh OUT.wasm}"
fresh=1
[ -f "$out" ] || fresh=0
for src in "$here/app.py" "$ADVGAME_ROOT"/wit/*.wit; do
  [ "$fresh" = 1 ] && [ "$src" -nt "$out" ] && fresh=0
done
if [ "$fresh" = 1 ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
"$ADVGAME_VENV/bin/componentize-py" -d "$ADVGAME_ROOT/wit" -w judge-plugin \
  componentize app -p "$here" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "[python-judge] built $out ($(stat -c %s "$out") bytes)" >&2
