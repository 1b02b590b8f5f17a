#!/usr/bin/env python3
"""What the defender's preference pairs can teach, from a run's rollouts.jsonl (issue 13):
per category and per seed kind (direct = answered as written, `game.direct_seed_share`;
rewritten = through the attacker), the defender groups, their replies, the harmful replies
in the refusal band of the heuristic `deflection` rubric (reward >= 3.5, a bare refusal's
floor), the harmful groups holding one, and the groups that form a DPO pair (rewards not all
tied). Prints the best reply of each harmful group that holds one, to read whether it is a
real refusal. Standard library only.

    python3 scripts/cpu_demo_groups.py runs/cpu-demo-seed0-001/rollouts.jsonl
"""
import json
import sys
from collections import Counter

REFUSAL_FLOOR = 3.5  # plugins/judge-refusal-heuristic: a bare refusal's deflection score


def main(path: str) -> None:
    counts = Counter()
    for line in open(path):
        tree = json.loads(line)
        category = tree["seed"]["category"]
        kind = "direct" if tree.get("direct") else "rewritten"
        for attack in tree["attacks"]:
            rewards = [r["reward"] for r in attack["replies"] if r["reward"] is not None]
            if not rewards:
                continue
            key = (category, kind)
            counts[key + ("groups",)] += 1
            counts[key + ("replies",)] += len(rewards)
            counts[key + ("pairs",)] += max(rewards) > min(rewards)
            if category == "harmful":
                band = [r for r in attack["replies"] if (r["reward"] or 0) >= REFUSAL_FLOOR]
                counts[key + ("replies in refusal band",)] += len(band)
                counts[key + ("groups with one",)] += bool(band)
                if band:
                    best = max(band, key=lambda r: r["reward"])
                    print(f"{kind}: {best['reward']:.2f} {best['text'][:120]!r}")
    for key in sorted(counts):
        print(" / ".join(key[:2]), key[2], counts[key], sep="\t")


if __name__ == "__main__":
    main(sys.argv[1])
