#!/usr/bin/env bash
# The README's first command: installs whatever is missing, then plays the AdvGame on the
# embedded default (SmolLM2-135M-Instruct as attacker and defender, heuristic judge plugin)
# on CPU for a few steps, and prints where the trained defender is. It ends with an eval of
# the base and the trained defender on held-out seeds (a subset, to stay within a few CPU
# minutes) and prints the paths of the side-by-side report and plot.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ADVGAME_ROOT"

"$ADVGAME_ROOT/scripts/setup.sh"
"$ADVGAME_ROOT/scripts/build-plugins.sh"
cargo build --locked --bin advgame-host
H="$CARGO_TARGET_DIR/debug/advgame-host"
"$H" train --config examples/quickstart.toml "$@"

# The run just finished is the newest quickstart-NNN; its last checkpoint holds the defender.
run_dir=$(ls -d runs/quickstart-[0-9]* 2>/dev/null | sort | tail -n 1)
ckpt=$(ls -d "$run_dir"/checkpoints/step-* 2>/dev/null | sort | tail -n 1)
if [ -z "$ckpt" ] || [ ! -d "$ckpt/defender" ]; then
  echo "quickstart: no trained defender checkpoint under $run_dir; skipping the eval" >&2
  exit 0
fi
out="evals/$(basename "$run_dir")"
# Held-out seeds (HarmBench / Alpaca, never trained on); the subset and the answer length
# keep both targets within a few CPU minutes (measured: see BENCHMARKS.md).
"$H" eval \
  --target base=data/models/SmolLM2-135M-Instruct \
  --target trained="$ckpt/defender" \
  --data data/seeds/harmful_val.jsonl --data data/seeds/benign_val.jsonl \
  --max-per-category "${QUICKSTART_EVAL_PER_CATEGORY:-12}" --max-new-tokens 48 --batch-size 12 \
  --judge refusal-heuristic --out "$out"
