"""PyTorch side of the Hessian-vector-product benchmark.

MLP 784-1024-200-100-10 with tanh, batch 100, log-softmax + NLL. The product is the
usual double backward: g = grad(L, params, create_graph=True), then grad(g.v, params).
Prints one JSON object with the median time in milliseconds.
Usage: python3 hvp_anchor.py [--threads 1] [--reps 7] [--dtype float32]
"""
import argparse, json, math, statistics, time
import torch
import torch.nn.functional as F

SIZES = [784, 1024, 200, 100, 10]

def build(dtype):
    torch.manual_seed(0)
    params = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        params.append((torch.randn(b, a, dtype=dtype) / math.sqrt(a)).requires_grad_())
        params.append(torch.zeros(b, dtype=dtype).requires_grad_())
    x = torch.randn(100, SIZES[0], dtype=dtype)
    y = torch.randint(0, SIZES[-1], (100,))
    v = [torch.randn_like(p) for p in params]
    return params, x, y, v

def loss(params, x, y):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i].T + params[2 * i + 1]
        if i < n - 1:
            h = torch.tanh(h)
    return F.nll_loss(F.log_softmax(h, 1), y)

def hvp(params, x, y, v):
    g = torch.autograd.grad(loss(params, x, y), params, create_graph=True)
    gv = sum((gi * vi).sum() for gi, vi in zip(g, v))
    return torch.autograd.grad(gv, params)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    params, x, y, v = build(dtype)
    for _ in range(3):
        hvp(params, x, y, v)
    ts = []
    for _ in range(a.reps):
        t = time.perf_counter()
        hvp(params, x, y, v)
        ts.append(time.perf_counter() - t)
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "dtype": a.dtype,
                      "hvp_ms": statistics.median(ts) * 1e3}), flush=True)

if __name__ == "__main__":
    main()
