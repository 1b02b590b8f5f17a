#!/usr/bin/env bash
# GPU check of the model engine, in two halves:
#
#   scripts/gpu-check.sh prepare   (on the CPU build machine)
#       builds the `gpu_check` example (dev profile: dependencies are optimised) and stages it
#       with the Qwen tokenizer in data/gpu-bundle/ (about 35 MB; carry that folder).
#   scripts/gpu-check.sh run       (on the GPU machine: torch 2.11 + transformers, no network)
#       puts the machine's torch libraries on LD_LIBRARY_PATH, builds random-weight models of
#       the real Qwen2.5-0.5B and 1.5B shapes there, and prints CPU-vs-GPU logit parity, bf16
#       generation and tokens/s (ours vs transformers) as a Markdown table; then LoRA players
#       (bf16 random bases of the Qwen2.5-1.5B and 7B shapes, two adapters + f32 EMA copies):
#       game-update time, tokens/s, peak GPU memory, and whether it fits 80 GB. Under 10 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="$ROOT/data/gpu-bundle"

case "${1:-}" in
  prepare)
    data="${ADVGAME_DATA:-}"   # env.sh resets ADVGAME_DATA to this checkout's data/
    source "$ROOT/scripts/env.sh"
    data="${data:-$ADVGAME_DATA}"
    (cd "$ROOT/host" && cargo build --example gpu_check --example gpu_check_lora)
    mkdir -p "$BUNDLE/qwen3"
    for bin in gpu_check gpu_check_lora; do
      cp "$CARGO_TARGET_DIR/debug/examples/$bin" "$BUNDLE/$bin"
      strip --strip-debug "$BUNDLE/$bin" 2>/dev/null || true
    done
    cp "$data/tokenizers/qwen3/tokenizer.json" "$data/tokenizers/qwen3/tokenizer_config.json" \
      "$BUNDLE/qwen3/"
    du -sh "$BUNDLE"
    echo "carry: data/gpu-bundle   then run: scripts/gpu-check.sh run"
    ;;
  run)
    PY="${PYTHON:-python3}"
    TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    WORK="${GPU_CHECK_WORK:-/tmp/advgame-gpu-check}"
    mkdir -p "$WORK"
    [ -x "$BUNDLE/gpu_check" ] || { echo "no $BUNDLE/gpu_check: run 'scripts/gpu-check.sh prepare' first" >&2; exit 2; }
    "$PY" "$ROOT/scripts/gpu_check.py" "$BUNDLE" "$WORK" | tee "${OUT:-$WORK}/gpu-check.md"
    ;;
  *)
    echo "usage: scripts/gpu-check.sh prepare|run" >&2
    exit 2
    ;;
esac
