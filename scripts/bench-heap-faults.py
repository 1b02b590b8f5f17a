#!/usr/bin/env python3
# Usage: source scripts/env.sh; $ADVGAME_PYTHON scripts/bench-heap-faults.py
#        MALLOC_MMAP_THRESHOLD_=1048576 $ADVGAME_PYTHON scripts/bench-heap-faults.py  (what heap::configure sets)
# CPU time and minor page faults of SmolLM2-135M-sized decoder MLP + attention-projection
# forward/backward passes (1416 tokens, like the LoRA quickstart's 12-row micro-batch), under
# whatever malloc settings the environment gives. Process CPU time, not wall: robust to load.
import resource, time, torch
torch.manual_seed(0); torch.set_num_threads(2)
T, h, i = 1416, 576, 1536
W = [torch.randn(i, h) * 0.02 for _ in range(2)] + [torch.randn(h, i) * 0.02] + [torch.randn(h, h) * 0.02 for _ in range(2)]
A = torch.randn(16, h, requires_grad=True)
def layer(x):
    q = x @ W[3].T + (x @ A.T).sum(-1, keepdim=True)
    o = q @ W[4].T
    g = torch.nn.functional.silu(o @ W[0].T) * (o @ W[1].T)
    return x + g @ W[2].T
def run(n):
    for _ in range(n):
        x = torch.randn(T, h, requires_grad=True)
        y = x
        for _ in range(6):
            y = layer(y)
        y.sum().backward()
run(2)
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.time()
run(20)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"user {r1.ru_utime - r0.ru_utime:.2f} s sys {r1.ru_stime - r0.ru_stime:.2f} s minflt {r1.ru_minflt - r0.ru_minflt} wall {time.time() - t0:.1f} s maxrss {r1.ru_maxrss/1024:.0f} MiB")
