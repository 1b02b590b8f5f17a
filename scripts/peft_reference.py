#!/usr/bin/env python3
"""Reference computations with the `peft` library, called by the LoRA parity tests.

  logits         --model BASE --adapter DIR --input IN.json --out OUT.safetensors
                 Loads BASE with transformers, the adapter with
                 `PeftModel.from_pretrained(base, DIR)`, and writes f32 "logits" [B, T, V] for
                 IN: {"input_ids": [[...]], "attention_mask": [[...]]} (positions are
                 cumsum(mask) - 1, as model_reference.py computes them).
  random-adapter --model BASE --out DIR --seed S [--r R --lora-alpha A --target-modules q_proj,..]
                 Builds a LoRA adapter with `get_peft_model`, fills every lora_A / lora_B with
                 seeded normal values (std 0.1, so B is not PEFT's zero init and the adapter
                 changes the logits), and saves it with `save_pretrained(DIR)`.
"""

import argparse
import json

import torch


def load_base(path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def cmd_logits(args):
    from peft import PeftModel
    from safetensors.torch import save_file

    with open(args.input) as f:
        req = json.load(f)
    ids = torch.tensor(req["input_ids"], dtype=torch.long)
    mask = torch.tensor(req["attention_mask"], dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    model = PeftModel.from_pretrained(load_base(args.model), args.adapter)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    save_file({"logits": logits.float().contiguous()}, args.out)


def cmd_random_adapter(args):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=args.r,
        lora_alpha=args.lora_alpha,
        lora_dropout=0.0,
        target_modules=args.target_modules.split(","),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(load_base(args.model), config)
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.save_pretrained(args.out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["logits", "random-adapter"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter")
    parser.add_argument("--input")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--r", type=int, default=4)
    parser.add_argument("--lora-alpha", type=float, default=8.0)
    parser.add_argument(
        "--target-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )
    args = parser.parse_args()
    if args.command == "logits":
        cmd_logits(args)
    else:
        cmd_random_adapter(args)


if __name__ == "__main__":
    main()
