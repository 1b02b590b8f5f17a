#!/usr/bin/env python3
"""The PyTorch/transformers side of `host/benches/model.rs` (same prompts, same thread count).

Reads a JSON request {"model", "threads", "prompts": [[ids]...], "new_tokens",
"pairs": [[prompt, chosen, rejected]...], "steps", "phase": "generate"|"train"} and prints one
JSON line with seconds, tokens/s and the phase's peak resident memory.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def left_pad(rows, pad):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


def bench_generate(model, req):
    pad = model.generation_config.pad_token_id or 0
    ids, mask = left_pad(req["prompts"], pad)
    n = req["new_tokens"]
    kwargs = dict(do_sample=False, pad_token_id=pad)
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4,
                       **kwargs)
        reset_peak()
        start, cpu_start = time.perf_counter(), time.process_time()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                             min_new_tokens=n, **kwargs)
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    made = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return {"seconds": secs, "tokens": made, "tokens_per_s": made / secs,
            "cpu_seconds": cpu, "tokens_per_cpu_s": made / cpu, "peak_rss_mib": peak_rss_mib()}


def sequence_logprobs(model, prompts, completions):
    """The usual eager recipe (as in TRL's DPO): full logits, log_softmax, gather."""
    rows = [p + c for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    loss_mask = torch.zeros_like(ids, dtype=torch.float)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        mask[i, :len(p) + len(c)] = 1
        loss_mask[i, len(p):len(p) + len(c)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (picked * loss_mask[:, 1:]).sum(-1)


def bench_train(model, req):
    pairs = req["pairs"]
    prompts = [p for p, _, _ in pairs] * 2
    completions = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    model.train()

    def step():
        lp = sequence_logprobs(model, prompts, completions)
        chosen, rejected = lp[: len(pairs)], lp[len(pairs):]
        loss = -F.logsigmoid(0.1 * (chosen - rejected)).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    step()
    reset_peak()
    start = time.perf_counter()
    for _ in range(req["steps"]):
        step()
    secs = (time.perf_counter() - start) / req["steps"]
    return {"seconds_per_step": secs, "peak_rss_mib": peak_rss_mib()}


def main():
    req = json.load(open(sys.argv[1]))
    torch.set_num_threads(req["threads"])
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float32)
    model.eval()
    result = bench_generate(model, req) if req["phase"] == "generate" else bench_train(model, req)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
