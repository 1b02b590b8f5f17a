#!/usr/bin/env python3
"""GPU side of scripts/gpu-check.sh: builds random-weight models of the real Qwen2.5-0.5B and
1.5B shapes (no weights travel), times transformers' bf16 `generate`, runs our `gpu_check`
binary on the same prompts and prints a Markdown table for BENCHMARKS.md. Then the LoRA check:
`gpu_check_lora` on random bf16 bases of the Qwen2.5-1.5B and 7B shapes (only config.json is
written; the binary draws the weights on the GPU), two adapter sets + f32 EMA copies, one
game update per player and EMA sampling, with peak GPU memory sampled by nvidia-smi.

usage: gpu_check.py BUNDLE_DIR WORK_DIR
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SHAPES = {
    "Qwen2.5-0.5B": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "Qwen2.5-1.5B": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
}
PROMPTS = [
    "What is the capital of France?", "Write a short poem about the sea.",
    "Explain how a bicycle stays upright.", "Give me three tips for learning a language.",
    "What is the difference between weather and climate?", "Summarise Romeo and Juliet.",
    "How do vaccines work?", "Suggest a name for a friendly robot.",
]
NEW_TOKENS = 128
LORA_SHAPES = {
    "Qwen2.5-1.5B": SHAPES["Qwen2.5-1.5B"],
    "Qwen2.5-7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}
# The game's lengths (paper: attacker and defender outputs up to ~512 tokens); batch = one
# micro-batch of the update (per_device_train_batch_size).
LORA_ARGS = ["--r", "16", "--batch", "8", "--prompt-len", "256", "--completion-len", "512",
             "--new-tokens", "128", "--steps", "3"]
GPU_BUDGET_GIB = 80
# GPU_CHECK_DRY_RUN=1: the same steps on the CPU with tiny shapes, to test this script.
DRY = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
DEVICE = "cpu" if DRY else "cuda"
if DRY:
    SHAPES = {k: dict(v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4) for k, v in SHAPES.items()}
    LORA_SHAPES = {k: dict(v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)
                   for k, v in LORA_SHAPES.items()}
    LORA_ARGS = ["--r", "4", "--batch", "2", "--prompt-len", "16", "--completion-len", "16",
                 "--new-tokens", "8", "--steps", "1", "--device", "cpu"]
    NEW_TOKENS = 8


def build(name, shape, tokenizer_dir, out: Path):
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    if (out / "model.safetensors").is_file():
        return
    cfg = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                      rms_norm_eps=1e-6, bos_token_id=151643, eos_token_id=151645,
                      pad_token_id=151643, use_sliding_window=False, torch_dtype="bfloat16",
                      **shape)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)


def hf_generate(model_dir, prompts):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(DEVICE).eval()
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), 151643, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(DEVICE), mask.to(DEVICE)
    kw = dict(do_sample=False, pad_token_id=151643)
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, **kw)
        if not DRY:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, **kw)
        if not DRY:
            torch.cuda.synchronize()
        secs = time.perf_counter() - start
    made = (out.shape[1] - width) * len(prompts)
    first = out[0, width:].tolist()
    del model
    if not DRY:
        torch.cuda.empty_cache()
    return made / secs, first


def lora_config(shape, out: Path):
    from transformers import Qwen2Config

    out.mkdir(parents=True, exist_ok=True)
    cfg = Qwen2Config(vocab_size=151936 if shape["hidden_size"] < 3584 else 152064,
                      max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=151643, eos_token_id=151645, pad_token_id=151643,
                      use_sliding_window=False, torch_dtype="bfloat16", **shape)
    cfg.to_json_file(out / "config.json")


def gpu_memory_mib():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", "0"], capture_output=True, text=True, timeout=5).stdout
        return int(out.strip().splitlines()[0])
    except Exception:
        return None


def lora_check(bundle: Path, work: Path):
    import threading

    rows = []
    for name, shape in LORA_SHAPES.items():
        model_dir = work / f"lora-{name}"
        lora_config(shape, model_dir)
        idle = gpu_memory_mib()
        peak = [idle or 0]
        done = threading.Event()

        def poll():
            while not done.is_set():
                m = gpu_memory_mib()
                if m is not None:
                    peak[0] = max(peak[0], m)
                time.sleep(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            out = subprocess.run([str(bundle / "gpu_check_lora"), "--model", str(model_dir)]
                                 + LORA_ARGS, capture_output=True, text=True)
        finally:
            done.set()
            poller.join()
        if out.returncode != 0:
            rows.append((name, None, out.stderr.strip().splitlines()[-1:] or ["failed"]))
            print(out.stderr, file=sys.stderr, flush=True)
            continue
        report = json.loads(out.stdout.strip().splitlines()[-1])
        report["peak_gpu_mib"] = None if idle is None else peak[0] - idle
        rows.append((name, report, None))
        print(json.dumps({"lora": name, "report": report}), file=sys.stderr, flush=True)
    print()
    print(f"LoRA game update, bf16 base + 2 adapters (r 16) + 2 f32 EMA adapters; args {' '.join(LORA_ARGS)}")
    print("| base (random weights) | adapter params / player | update s (both players) | "
          "update tok/s | EMA sampling tok/s | peak GPU GiB | fits 80 GB |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for name, r, err in rows:
        if r is None:
            ok = False
            print(f"| {name} | failed: {err[0]} | | | | | no |")
            continue
        peak = r["peak_gpu_mib"]
        gib = "n/a" if peak is None else f"{peak / 1024:.1f}"
        fits = "n/a" if peak is None else ("yes" if peak / 1024 <= GPU_BUDGET_GIB else "no")
        print(f"| {name} | {r['adapter_parameters_per_player'] / 1e6:.1f}M | "
              f"{r['game_update_seconds']:.2f} | {r['game_update_tokens_per_s']:.0f} | "
              f"{r['sample_tokens_per_s']:.0f} | {gib} | {fits} |")
        ok = ok and r["logprobs_finite"] and r["ema_moved"]
    return ok


def main():
    bundle, work = Path(sys.argv[1]), Path(sys.argv[2])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundle / "qwen3")
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=True,
                                       add_generation_prompt=True) for p in PROMPTS]
    (work / "prompts.json").write_text(json.dumps(prompts))
    rows = []
    for name, shape in SHAPES.items():
        model_dir = work / name
        t0 = time.time()
        build(name, shape, bundle / "qwen3", model_dir)
        print(f"[gpu-check] built {name} in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        hf_tps, hf_first = hf_generate(model_dir, prompts)
        ours = subprocess.run([str(bundle / "gpu_check"), "--model", str(model_dir), "--prompts",
                               str(work / "prompts.json"), "--new-tokens", str(NEW_TOKENS)]
                              + (["--device", "cpu"] if DRY else []),
                              check=True, capture_output=True, text=True)
        report = json.loads(ours.stdout.strip().splitlines()[-1])
        same = sum(1 for a, b in zip(report["first_row_tokens"], hf_first) if a == b)
        rows.append((name, report, hf_tps, same))
        print(json.dumps({"model": name, "ours": report, "hf_tokens_per_s": hf_tps}),
              file=sys.stderr, flush=True)
    gpu = "dry run on CPU" if DRY else torch.cuda.get_device_name(0)
    print(f"GPU: {gpu}, torch {torch.__version__}")
    print("| model (random weights) | f32 CPU vs CUDA max abs / rel | bf16 CUDA vs f32 CPU max "
          "rel | bf16 argmax agreement | ours bf16 tok/s | transformers bf16 tok/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, r, hf_tps, same in rows:
        print(f"| {name} | {r['f32_cpu_vs_cuda_max_abs']:.2e} / {r['f32_cpu_vs_cuda_max_rel']:.1e}"
              f" | {r['bf16_cuda_vs_f32_cpu_max_rel']:.1e} | {r['bf16_argmax_agreement']:.3f} | "
              f"{r['bf16_generate_tokens_per_s']:.0f} | {hf_tps:.0f} | "
              f"{r['bf16_generate_tokens_per_s'] / hf_tps:.2f}x |")
    ok = all(r["f32_cpu_vs_cuda_max_rel"] < 1e-3 and r["bf16_logprobs_finite"]
             for _, r, _, _ in rows)
    ok = lora_check(bundle, work) and ok
    print("RESULT:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
