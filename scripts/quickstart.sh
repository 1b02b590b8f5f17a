#!/usr/bin/env bash
# The README's first command: installs whatever is missing, then plays the AdvGame on the
# embedded default (SmolLM2-135M-Instruct as attacker and defender, heuristic judge plugin)
# on CPU for a few steps, and prints where the trained defender is.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ADVGAME_ROOT"

"$ADVGAME_ROOT/scripts/setup.sh"
"$ADVGAME_ROOT/scripts/build-plugins.sh"
cargo build --locked --bin advgame-host
exec "$CARGO_TARGET_DIR/debug/advgame-host" train --config examples/quickstart.toml "$@"
