#!/usr/bin/env bash
# LoRA players vs full fine-tuning, side by side in one run: the quickstart game
# (examples/quickstart.toml) and the same game with LoRA players
# (examples/quickstart-lora.toml), each for STEPS steps without validation or checkpoints,
# under /usr/bin/time. Prints peak RSS and the mean step time (metrics.jsonl `time/step`,
# `time/loss_update`, generation) of each, its CPU time (user + system) and minor page faults
# (both far less sensitive to other jobs on the box than wall time), and the LoRA/full ratios;
# the load average at the start and end of each game; and the peak that `train --memory-plan`
# predicts for each, against the measured one. ADVGAME_HEAP=default measures glibc's own
# heap behaviour instead of the `heap` module's (see BENCHMARKS.md).
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
  cut -d' ' -f1 /proc/loadavg > "$OUTDIR/$name.load"
  /usr/bin/time -f "%M %e %U %S %R" -o "$OUTDIR/$name.time" "$H" train --config "$config" \
    --set algorithm.max_steps="$STEPS" --set validation.eval_steps=0 \
    --set checkpoint.save_steps=0 --set output.dir="$OUTDIR" --set output.name="$name" \
    > "$OUTDIR/$name.log" 2>&1 || { cat "$OUTDIR/$name.log" >&2; exit 1; }
  cut -d' ' -f1 /proc/loadavg >> "$OUTDIR/$name.load"
}
run full examples/quickstart.toml
run lora examples/quickstart-lora.toml

"$ADVGAME_PYTHON" - "$OUTDIR" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
rows = {}
for name in ["full", "lora"]:
    rss_kib, wall, user, system, faults = open(f"{out}/{name}.time").read().split()[-5:]
    metrics = [json.loads(l) for l in open(glob.glob(f"{out}/{name}-*/metrics.jsonl")[0])]
    steps = [m for m in metrics if "time/step" in m]
    mean = lambda k: sum(m[k] for m in steps) / len(steps)
    rows[name] = dict(rss=int(rss_kib) / 1024 / 1024, wall=float(wall), step=mean("time/step"),
                      cpu=float(user) + float(system), faults=int(faults) / 1e6,
                      load=" -> ".join(open(f"{out}/{name}.load").read().split()),
                      update=mean("time/loss_update"),
                      gen=mean("time/attacker_generation") + mean("time/defender_generation"),
                      n=len(steps),
                      plan=float(next(l for l in open(f"{out}/{name}.plan") if l.startswith("peak = "))
                                 .rsplit("=", 1)[1].split()[0]))
print(f"steps per run: {rows['full']['n']}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
      f"ADVGAME_HEAP={os.environ.get('ADVGAME_HEAP', 'unset')}; load average (1 min) during full: "
      f"{rows['full']['load']}, during LoRA: {rows['lora']['load']}")
print("| | full fine-tune | LoRA | LoRA / full |")
print("|---|---|---|---|")
for key, label, fmt in [("rss", "peak RSS, GiB", "{:.2f}"), ("step", "mean step, s", "{:.1f}"),
                        ("gen", "generation per step, s", "{:.1f}"),
                        ("update", "loss and update per step, s", "{:.1f}"),
                        ("wall", "whole process wall, s", "{:.0f}"),
                        ("cpu", "whole process CPU (user + system), s", "{:.0f}"),
                        ("faults", "whole process minor page faults, millions", "{:.2f}")]:
    f, l = rows["full"][key], rows["lora"][key]
    print(f"| {label} | {fmt.format(f)} | {fmt.format(l)} | {l / f:.2f}x |")
print()
print("| | planned peak (`train --memory-plan`), GiB | measured peak RSS, GiB | plan vs measured |")
print("|---|---|---|---|")
for name in ["full", "lora"]:
    r = rows[name]
    print(f"| {name} | {r['plan']:.2f} | {r['rss']:.2f} | {100 * (r['plan'] / r['rss'] - 1):+.1f}% |")
PY
