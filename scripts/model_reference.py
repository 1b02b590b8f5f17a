#!/usr/bin/env python3
"""Reference computations with transformers, called by the model-engine parity tests.

Every subcommand reads a JSON request file and writes its answer to --out (JSON, or
safetensors for logits), so the Rust tests compare against exactly what transformers does:

  logits    --model DIR --input IN.json --out OUT.safetensors
            IN: {"input_ids": [[...]], "attention_mask": [[...]]}; positions are
            cumsum(mask) - 1 as in generate(); writes f32 "logits" [B, T, V]. With
            "models": [DIR, ...] in IN, runs each folder instead of --model (one process for a
            whole matrix of config variants) and writes "logits.0", "logits.1", ...
  generate  --model DIR --input IN.json --out OUT.json --max-new-tokens N
            IN: [{"system": str|null, "user": str, "prefill": str|null}, ...]; greedy, batched,
            left-padded; OUT: [{"prompt": str, "prompt_ids": [...], "new_ids": [...]}]
            (new ids cut after the first eos).
  template  --model DIR --input IN.json --out OUT.json
            IN: [{"messages": [...], "add_generation_prompt": bool, "model": DIR?}] (an item's
            "model" overrides --model); OUT: [str, ...], or {"error": str} for an item whose
            template fails to compile or render
  logprobs  --model DIR --input IN.json --out OUT.json
            IN: [[prompt_ids, completion_ids], ...]; each item unpadded on its own;
            OUT: [{"sum": float, "tokens": [float, ...]}]
"""

import argparse
import json

import torch


def load_model(path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def cmd_logits(args, req):
    from safetensors.torch import save_file

    ids = torch.tensor(req["input_ids"], dtype=torch.long)
    mask = torch.tensor(req["attention_mask"], dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    models = req.get("models")
    out = {}
    for i, path in enumerate(models or [args.model]):
        model = load_model(path)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        out["logits" if models is None else f"logits.{i}"] = logits.float().contiguous()
    save_file(out, args.out)


def chat_messages(item):
    messages = []
    if item.get("system") is not None:
        messages.append({"role": "system", "content": item["system"]})
    messages.append({"role": "user", "content": item["user"]})
    return messages


def cmd_generate(args, req):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    model = load_model(args.model)
    prompts = []
    for item in req:
        text = tok.apply_chat_template(chat_messages(item), tokenize=False,
                                       add_generation_prompt=True)
        prompts.append(text + (item.get("prefill") or ""))
    enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    with torch.no_grad():
        out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             max_new_tokens=args.max_new_tokens, do_sample=False,
                             pad_token_id=model.generation_config.pad_token_id)
    result = []
    width = enc["input_ids"].shape[1]
    for row, prompt in enumerate(prompts):
        new = out[row, width:].tolist()
        for i, t in enumerate(new):
            if t in eos:
                new = new[: i + 1]
                break
        prompt_ids = [t for t, m in zip(enc["input_ids"][row].tolist(),
                                        enc["attention_mask"][row].tolist()) if m]
        result.append({"prompt": prompt, "prompt_ids": prompt_ids, "new_ids": new})
    return result


def cmd_template(args, req):
    from transformers import AutoTokenizer

    out = []
    for item in req:
        try:
            tok = AutoTokenizer.from_pretrained(item.get("model", args.model))
            out.append(tok.apply_chat_template(
                item["messages"], tokenize=False,
                add_generation_prompt=item["add_generation_prompt"]))
        except Exception as e:  # noqa: BLE001 - the test compares failures too
            out.append({"error": f"{type(e).__name__}: {e}"})
    return out


def cmd_logprobs(args, req):
    model = load_model(args.model)
    result = []
    for prompt, completion in req:
        ids = torch.tensor([prompt + completion], dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        tokens = [logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(completion)]
        result.append({"sum": sum(tokens), "tokens": tokens})
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["logits", "generate", "template", "logprobs"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    with open(args.input) as f:
        req = json.load(f)
    answer = globals()["cmd_" + args.command](args, req)
    if answer is not None:
        with open(args.out, "w") as f:
            json.dump(answer, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
