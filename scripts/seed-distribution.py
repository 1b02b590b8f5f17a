#!/usr/bin/env python3
"""Seed distribution of AdvGame runs, from their rollouts.jsonl: how often each seed was
drawn, how many distinct seeds, and the attacker reward on the drawn seeds, per category.
Used to compare curricula (uniform vs adaptive) on the same config:
    python3 scripts/seed-distribution.py runs/quickstart-001 runs/adaptive-001
"""
import collections
import json
import sys
from pathlib import Path


def summarise(run: Path):
    draws = collections.defaultdict(collections.Counter)
    rewards = collections.defaultdict(list)
    steps = set()
    for line in (run / "rollouts.jsonl").open():
        tree = json.loads(line)
        steps.add(tree["step"])
        cat = tree["seed"]["category"]
        draws[cat][tree["seed"]["id"]] += 1
        rs = [a["reward"] for a in tree["attacks"] if a["reward"] is not None]
        if rs:
            rewards[cat].append(sum(rs) / len(rs))
    print(f"{run}: {len(steps)} steps")
    for cat in sorted(draws):
        c = draws[cat]
        total = sum(c.values())
        top = ", ".join(f"{k} x{n}" for k, n in c.most_common(3))
        mean = sum(rewards[cat]) / len(rewards[cat]) if rewards[cat] else float("nan")
        print(f"  {cat}: {total} draws of {len(c)} distinct seeds (most drawn: {top}); "
              f"mean attacker reward on drawn seeds {mean:.2f}")


for arg in sys.argv[1:]:
    summarise(Path(arg))
