"""Why decode steps on CPU use transposed weight copies (host/src/model/decoder.rs, DecodeLayout).

Times one projection of a decode step, y = x W^T with x [rows, in] and W [out, in] as stored,
two ways: `torch.nn.functional.linear(x, W)` (what the stored layout gives) and `x @ T` with
T = W^T made contiguous once (the decode layout), for SmolLM2-135M's shapes. Reports process
CPU time per call (best of 3 rounds), which other jobs on a shared machine hardly disturb
when run with one thread.

    OMP_NUM_THREADS=1 $ADVGAME_PYTHON scripts/bench_decode_gemm.py
"""
import time

import torch

F = torch.nn.functional


def cpu_us(f, reps):
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(reps):
            f()
        best = min(best, (time.process_time() - start) / reps)
    return best * 1e6


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("| rows | W (out x in) | linear(x, W), us | x @ W^T-contiguous, us | speed-up |")
    print("|---|---|---|---|---|")
    for rows in (8, 32, 360):
        for out, inp in ((576, 576), (1536, 576), (576, 1536), (49152, 576)):
            w = torch.randn(out, inp) * 0.02
            t = w.t().contiguous()
            x = torch.randn(rows, inp)
            reps = max(2, int(3e8 / (out * inp * rows)))
            a = cpu_us(lambda: F.linear(x, w), reps)
            b = cpu_us(lambda: x @ t, reps)
            print(f"| {rows} | {out} x {inp} | {a:.0f} | {b:.0f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
