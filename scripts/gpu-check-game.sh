#!/usr/bin/env bash
# GPU check of the training loop (`--device cuda`, bf16): builds random-weight models of
# Qwen2.5-0.5B shape ON the GPU machine (no download: the shape is a config, the tokenizer is
# the tiny-qwen2 fixture's), plays a few AdvGame steps with the heuristic judge, and reports
# the step time breakdown and the peak GPU memory. Run from the repository root:
#   scripts/gpu-check-game.sh [BINARY] [OUT_DIR]
# BINARY defaults to target/release/advgame-host (build it on the CPU machine and carry it);
# the plugins (scripts/build-plugins.sh output) are looked up in ADVGAME_PLUGIN_DIR.
set -euo pipefail
BIN="${1:-target/release/advgame-host}"
OUT="${2:-${OUT:-/tmp/gpu-check-game}}"
DATA="${ADVGAME_DATA:-data}"
PY="${ADVGAME_PYTHON:-python3}"
mkdir -p "$OUT"
TORCH_LIB="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"

MODEL="$OUT/qwen2.5-0.5b-shape"
"$PY" - "$DATA/fixtures/tiny-qwen2" "$MODEL" <<'PY'
import sys, shutil, os, torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
src, out = sys.argv[1], sys.argv[2]
cfg = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                  max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, bos_token_id=151643, eos_token_id=[151645, 151643],
                  pad_token_id=151643)
torch.manual_seed(0)
Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(out)
AutoTokenizer.from_pretrained(src).save_pretrained(out)
for f in ("chat_template.jinja", "generation_config.json"):
    if os.path.exists(os.path.join(src, f)):
        shutil.copy(os.path.join(src, f), os.path.join(out, f))
print("built", out)
PY

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu-mem.log" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
START=$(date +%s)
"$BIN" train --config examples/quickstart.toml --device cuda \
  --set models.dtype=bf16 \
  --set "models.attacker=\"$MODEL\"" --set "models.defender=\"$MODEL\"" \
  --set algorithm.steps=3 --set algorithm.seeds_per_category=8 \
  --set game.attacker_max_tokens=128 --set game.defender_max_tokens=128 \
  --set validation.every=0 --set "output.dir=\"$OUT/runs\"" 2>&1 | tee "$OUT/train.log"
END=$(date +%s)
kill $SMI 2>/dev/null || true
PEAK=$(sort -n "$OUT/gpu-mem.log" | tail -1)
echo "wall ${END}-${START} = $((END - START)) s; peak GPU memory ${PEAK} MiB" | tee "$OUT/summary.txt"
"$PY" - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, glob
for path in glob.glob(sys.argv[1] + "/runs/*/metrics.jsonl"):
    for line in open(path):
        m = json.loads(line)
        print(m["step"], {k: round(v, 3) for k, v in m.items() if k.startswith("time/")})
PY
