# Sourced by every script: one place for the paths and variables that must stay identical
# between local builds, tests and CI (changing a LIBTORCH* variable rebuilds torch-sys).
ADVGAME_CACHE="${ADVGAME_CACHE:-$HOME/.cache/advgame}"
ADVGAME_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ADVGAME_VENV="$ADVGAME_CACHE/torch-2.11.0"
ADVGAME_DATA="$ADVGAME_ROOT/data"
export ADVGAME_CACHE ADVGAME_ROOT ADVGAME_VENV ADVGAME_DATA
export LIBTORCH="$ADVGAME_VENV/lib/python3.11/site-packages/torch"
export LIBTORCH_BYPASS_VERSION_CHECK=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ADVGAME_CACHE/target}"
export ADVGAME_PYTHON="$ADVGAME_VENV/bin/python"
# A second venv with `transformers serve` (a newer transformers than the main venv's pin): the
# OpenAI-compatible server nobody here wrote that the client tests talk to (scripts/setup.sh).
export ADVGAME_SERVE_VENV="$ADVGAME_CACHE/transformers-serve-5.24.0"
# Stable CPU timings on a shared box; tests are small.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# Built-in plugin components (scripts/build-plugins.sh writes them, tests and configs read them).
export ADVGAME_PLUGIN_DIR="${ADVGAME_PLUGIN_DIR:-$ADVGAME_CACHE/plugins}"
