"""bench/gpu/ops_torch.py: the PyTorch anchors of bench/bench_cuda_ops.c (BENCHMARKS.md B1, B3, B6),
same shapes, same device, same call of the GPU run.

B1: torch.matmul in BF16 for the h1024 learner's projections (forward, dX, dW) at the same M, N, K.
B6: F.linear (FP32, TF32 off) + log_softmax + gather, forward and forward+backward, at N = 8192,
    C = 1024, V = 32000 / 200064, eager and torch.compile (V = 200064 may not fit eager: the
    [N x V] FP32 logits are 6.6 GB, plus their gradient and the log-softmax output).
B3: one lightning decode step S = lambda S + k^T v; o = q S for B sequences, 16 heads x 128, FP32,
    eager and under a CUDA graph.
CUDA events, warm-up, median of 10. Prints rows like bench_cuda_ops; writes JSON to $OUT/ops_torch.json.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
rows = []


def timed(fn, reps=10):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def row(bench, what, ms, work, unit):
    rate = work / (ms * 1e-3) / 1e12
    print(f"{bench:4s} {what:46s} {ms:9.3f} ms {rate:9.1f} {unit}", flush=True)
    rows.append({"bench": bench, "what": what, "ms": ms, "rate": rate, "unit": unit})


def b1():
    projs = [("qkv 1024->3072", 3072, 1024, 8192), ("o 1024->1024", 1024, 1024, 8192),
             ("expert gate_up 1024->4096 (2048 rows)", 4096, 1024, 2048),
             ("expert down 2048->1024 (2048 rows)", 1024, 2048, 2048)]
    for name, o, i, m in projs:
        w = torch.rand(o, i, device=dev, dtype=torch.bfloat16) * 2 - 1
        x = torch.rand(m, i, device=dev, dtype=torch.bfloat16) * 2 - 1
        dy = torch.rand(m, o, device=dev, dtype=torch.bfloat16) * 2 - 1
        fl = 2.0 * m * o * i
        row("B1", f"{name} fwd torch bf16", timed(lambda: x @ w.t()), fl, "TFLOP/s")
        row("B1", f"{name} dX torch bf16", timed(lambda: dy @ w), fl, "TFLOP/s")
        row("B1", f"{name} dW torch bf16", timed(lambda: dy.t() @ x), fl, "TFLOP/s")


def head_loss(h, w, tgt):
    return torch.gather(F.log_softmax(F.linear(h, w), dim=-1), 1, tgt[:, None]).sum()


def b6():
    n, c = 8192, 1024
    compiled = torch.compile(head_loss)
    for v in (32000, 200064):
        h = (torch.rand(n, c, device=dev) * 2 - 1).requires_grad_()
        w = (torch.rand(v, c, device=dev) * 2 - 1).requires_grad_()
        tgt = torch.randint(0, v, (n,), device=dev)
        fl = 2.0 * n * c * v
        for tag, fn in (("eager", head_loss), ("compiled", compiled)):
            try:
                with torch.no_grad():
                    ms = timed(lambda: fn(h, w, tgt))
                row("B6", f"lm_head fwd N={n} C={c} V={v} torch {tag}", ms, fl, "TFLOP/s")
                ms = timed(lambda: fn(h, w, tgt).backward())
                row("B6", f"lm_head fwd+bwd N={n} C={c} V={v} torch {tag}", ms, 3 * fl, "TFLOP/s")
            except torch.OutOfMemoryError:
                print(f"B6   lm_head V={v} torch {tag}: out of memory", flush=True)
            h.grad = None
            w.grad = None
            torch.cuda.empty_cache()


def b3():
    nh, hs = 16, 128
    for b in (1, 64, 256, 1024):
        s = torch.rand(b, nh, hs, hs, device=dev)
        q, k, v = (torch.rand(b, nh, hs, device=dev) for _ in range(3))
        lam = torch.exp(-0.01 * torch.arange(1, nh + 1, device=dev))[None, :, None, None]

        def step():
            s.mul_(lam).add_(k[..., :, None] * v[..., None, :])
            return torch.einsum("bhd,bhde->bhe", q, s)

        by = 2.0 * b * nh * hs * hs * 4 + b * nh * 4 * hs * 4
        row("B3", f"lightning_decode B={b} 16x128 fp32 torch eager", timed(step), by, "TB/s")
        g = torch.cuda.CUDAGraph()
        st = torch.cuda.Stream()
        st.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(st):
            step()
        torch.cuda.current_stream().wait_stream(st)
        with torch.cuda.graph(g):
            step()
        row("B3", f"lightning_decode B={b} 16x128 fp32 torch graph", timed(g.replay), by, "TB/s")


if __name__ == "__main__":
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}", flush=True)
    b1()
    b3()
    b6()
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "ops_torch.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
