#!/usr/bin/env bash
# Builds every built-in plugin (plugins/*) into a WebAssembly component, plus the Python
# example judge (examples/python-judge) when componentize-py is available:
#   $ADVGAME_PLUGIN_DIR/<crate>.wasm   (default $ADVGAME_CACHE/plugins)
# Idempotent and fast when nothing changed: cargo is incremental, encoding takes
# milliseconds and leaves identical files untouched, and the Python example is rebuilt only
# when its inputs' hash changes. Flags: --no-python skips the Python example.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
log() { echo "[build-plugins] $*" >&2; }

python=1
for arg in "$@"; do
  case "$arg" in
    --no-python) python=0 ;;
    *) echo "usage: $0 [--no-python]" >&2; exit 2 ;;
  esac
done

OUT="${ADVGAME_PLUGIN_DIR:-$ADVGAME_CACHE/plugins}"
# Guest builds get their own target dir: different target, different profile settings.
WASM_TARGET_DIR="${ADVGAME_WASM_TARGET_DIR:-$ADVGAME_CACHE/target-wasm}"
mkdir -p "$OUT"
cd "$ADVGAME_ROOT/plugins"

if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# The encoder (native): wraps a core module with wit-bindgen metadata into a component.
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build --quiet --locked --release -p advgame-componentize
ENCODE="$WASM_TARGET_DIR/release/advgame-componentize"

# The sources of registry crates live under $CARGO_HOME, and their paths reach the bytes
# (panic locations): without this, the same plugin built by two users, or in two home
# folders, has two sha256s, and a run or an eval pinned to one refuses the other. One flag,
# so CARGO_ENCODED_RUSTFLAGS (no splitting on spaces in the path).
CARGO_HOME_DIR="$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd)"
WASM_RUSTFLAGS="--remap-path-prefix=$CARGO_HOME_DIR=/cargo"

# One cargo invocation per plugin: each enables exactly one SDK world feature, and cargo
# would otherwise unify the features of all plugins built together.
for manifest in rubric-*/Cargo.toml judge-*/Cargo.toml curriculum-*/Cargo.toml; do
  crate="$(dirname "$manifest")"
  CARGO_TARGET_DIR="$WASM_TARGET_DIR" CARGO_ENCODED_RUSTFLAGS="$WASM_RUSTFLAGS" \
    cargo build --quiet --locked --release --target wasm32-unknown-unknown -p "$crate"
  core="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/${crate//-/_}.wasm"
  out="$OUT/$crate.wasm"
  # Always encode (cheap): an mtime test is fooled when another checkout wrote $OUT.
  before="$(sha256sum "$out" 2>/dev/null || true)"
  "$ENCODE" "$core" "$out" >/dev/null
  if [ "$before" != "$(sha256sum "$out")" ]; then
    log "built $out ($(stat -c %s "$out") bytes)"
  fi
done

if [ "$python" = 1 ]; then
  if [ -x "$ADVGAME_VENV/bin/componentize-py" ]; then
    "$ADVGAME_ROOT/examples/python-judge/build.sh" "$OUT/example-python-judge.wasm"
  else
    log "componentize-py not found in $ADVGAME_VENV: skipping the Python example judge"
  fi
fi
log "plugins in $OUT"
