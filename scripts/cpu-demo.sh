#!/usr/bin/env bash
# The CPU demo of issue 13: trains SmolLM2-135M-Instruct's defender with
# examples/cpu-demo.toml once per training seed (CPU_DEMO_SEEDS, default "0 1 2"), then
# evaluates the base model and every trained defender on the full held-out seeds (200
# harmful + 99 benign, never trained on; greedy, 48 new tokens, heuristic judge), writes
# OUT/report.md, report.json and the PNG plots (OUT = CPU_DEMO_OUT, default evals/cpu-demo),
# and prints OUT/summary.md: per seed the change in harmful refusal and benign compliance with
# McNemar p-values, then mean and spread over seeds.
#
# Idempotent: a seed whose run already finished (runs/cpu-demo-seedN-NNN with a checkpoint)
# is not trained again, and the eval resumes from OUT/responses.jsonl. Extra arguments go to
# `train` (e.g. --set algorithm.max_steps=3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ADVGAME_ROOT"

"$ADVGAME_ROOT/scripts/setup.sh"
"$ADVGAME_ROOT/scripts/build-plugins.sh"
cargo build --locked --bin advgame-host
H="$CARGO_TARGET_DIR/debug/advgame-host"

newest_checkpoint() { # $1 = run name: the newest run's last checkpoint, or nothing
  local run
  run=$(ls -d runs/"$1"-[0-9]* 2>/dev/null | sort | tail -n 1)
  [ -n "$run" ] && ls -d "$run"/checkpoints/step-* 2>/dev/null | sort | tail -n 1
  return 0
}

targets=(--target base=data/models/SmolLM2-135M-Instruct)
for seed in ${CPU_DEMO_SEEDS:-0 1 2}; do
  name="cpu-demo-seed$seed"
  ckpt=$(newest_checkpoint "$name")
  if [ -z "$ckpt" ] || [ ! -d "$ckpt/defender" ]; then
    start=$(date +%s)
    "$H" train --config examples/cpu-demo.toml \
      --set algorithm.seed="$seed" --set output.name="$name" "$@"
    echo "cpu-demo: seed $seed trained in $(($(date +%s) - start)) s (wall)"
    ckpt=$(newest_checkpoint "$name")
  fi
  targets+=(--target "seed$seed=$ckpt/defender")
done

out="${CPU_DEMO_OUT:-evals/cpu-demo}"
"$H" eval "${targets[@]}" \
  --data data/seeds/harmful_val.jsonl --data data/seeds/benign_val.jsonl \
  --max-new-tokens 48 --batch-size 32 --examples 4 --judge refusal-heuristic --out "$out"
python3 "$ADVGAME_ROOT/scripts/cpu_demo_summary.py" "$out"
