#!/usr/bin/env bash
# LoRA players vs full fine-tuning, side by side in one run: the quickstart game
# (examples/quickstart.toml) and the same game with LoRA players
# (examples/quickstart-lora.toml), each for STEPS steps without validation or checkpoints,
# under /usr/bin/time. Prints peak RSS and the mean step time (metrics.jsonl `time/step`,
# `time/loss_update`, generation) of each, and the LoRA/full ratios; and the peak that
# `train --memory-plan` predicts for each, against the measured one.
#   scripts/bench-lora.sh            # dev build (dependencies opt-level 2), 3 steps each
#   BENCH_STEPS=5 scripts/bench-lora.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ADVGAME_ROOT"
STEPS="${BENCH_STEPS:-3}"
cargo build --locked --bin advgame-host
H="$CARGO_TARGET_DIR/debug/advgame-host"
OUTDIR="$(mktemp -d)"
trap 'rm -rf "$OUTDIR"' EXIT

run() { # NAME CONFIG
  local name="$1" config="$2"
  "$H" train --config "$config" --memory-plan --set validation.eval_steps=0 \
    --set checkpoint.save_steps=0 > "$OUTDIR/$name.plan" 2>&1
  /usr/bin/time -f "%M %e" -o "$OUTDIR/$name.time" "$H" train --config "$config" \
    --set algorithm.max_steps="$STEPS" --set validation.eval_steps=0 \
    --set checkpoint.save_steps=0 --set output.dir="$OUTDIR" --set output.name="$name" \
    > "$OUTDIR/$name.log" 2>&1 || { cat "$OUTDIR/$name.log" >&2; exit 1; }
}
run full examples/quickstart.toml
run lora examples/quickstart-lora.toml

"$ADVGAME_PYTHON" - "$OUTDIR" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
rows = {}
for name in ["full", "lora"]:
    rss_kib, wall = open(f"{out}/{name}.time").read().split()
    metrics = [json.loads(l) for l in open(glob.glob(f"{out}/{name}-*/metrics.jsonl")[0])]
    steps = [m for m in metrics if "time/step" in m]
    mean = lambda k: sum(m[k] for m in steps) / len(steps)
    rows[name] = dict(rss=int(rss_kib) / 1024 / 1024, wall=float(wall), step=mean("time/step"),
                      update=mean("time/loss_update"),
                      gen=mean("time/attacker_generation") + mean("time/defender_generation"),
                      n=len(steps),
                      plan=float(next(l for l in open(f"{out}/{name}.plan") if l.startswith("peak = "))
                                 .rsplit("=", 1)[1].split()[0]))
print(f"steps per run: {rows['full']['n']}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
print("| | full fine-tune | LoRA | LoRA / full |")
print("|---|---|---|---|")
for key, label, fmt in [("rss", "peak RSS, GiB", "{:.2f}"), ("step", "mean step, s", "{:.1f}"),
                        ("gen", "generation per step, s", "{:.1f}"),
                        ("update", "loss and update per step, s", "{:.1f}"),
                        ("wall", "whole process wall, s", "{:.0f}")]:
    f, l = rows["full"][key], rows["lora"][key]
    print(f"| {label} | {fmt.format(f)} | {fmt.format(l)} | {l / f:.2f}x |")
print()
print("| | planned peak (`train --memory-plan`), GiB | measured peak RSS, GiB | plan vs measured |")
print("|---|---|---|---|")
for name in ["full", "lora"]:
    r = rows[name]
    print(f"| {name} | {r['plan']:.2f} | {r['rss']:.2f} | {100 * (r['plan'] / r['rss'] - 1):+.1f}% |")
PY
