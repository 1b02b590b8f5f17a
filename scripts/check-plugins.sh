#!/usr/bin/env bash
# CI checks for the guest workspace (plugins/), which the root `cargo fmt/clippy/test` do not
# see: rustfmt, clippy -D warnings per plugin (wasm32 target, one world feature each), and
# the native unit tests of the SDK and the heuristic judge.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
log() { echo "[check-plugins] $*" >&2; }
cd "$ADVGAME_ROOT/plugins"
export CARGO_TARGET_DIR="${ADVGAME_WASM_TARGET_DIR:-$ADVGAME_CACHE/target-wasm}"

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy (wasm32, per plugin)"
cargo clippy --quiet --locked --release -p advgame-componentize -- -D warnings
for manifest in rubric-*/Cargo.toml judge-*/Cargo.toml curriculum-*/Cargo.toml; do
  crate="$(dirname "$manifest")"
  cargo clippy --quiet --locked --release --target wasm32-unknown-unknown -p "$crate" -- -D warnings
done
log "unit tests (native)"
cargo test --quiet --locked -p advgame-plugin-sdk -p judge-refusal-heuristic
# Separately: one world feature per build (features of crates built together unify).
cargo test --quiet --locked -p curriculum-adaptive
cargo test --quiet --locked -p curriculum-lookalike
