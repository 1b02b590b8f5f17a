#!/usr/bin/env bash
# The README's second command: installs whatever is missing, builds the guest plugins and the
# test fixtures, then runs every check CI runs (format, lints, all tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ADVGAME_ROOT"
log() { echo "[test] $*" >&2; }

"$ADVGAME_ROOT/scripts/setup.sh"
"$ADVGAME_ROOT/scripts/build-plugins.sh"
"$ADVGAME_ROOT/scripts/check-plugins.sh"
"$ADVGAME_PYTHON" "$ADVGAME_ROOT/scripts/make_fixtures.py"

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
cargo test --workspace --locked -- --test-threads="${ADVGAME_TEST_THREADS:-2}" 2>&1 | tee "$report"
# One closing line over every test binary (cargo prints one `test result` line per binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$report"
