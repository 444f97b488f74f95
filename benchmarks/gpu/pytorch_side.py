"""PyTorch's side of benchmarks/gpu/run.sh, on the same device as the .NET runner.

Times, for the MLP 784-1024-200-100-10 (tanh, batch 100) and VGG-11 (ELU, no batch norm,
3x32x32, batch 128 unless told otherwise), float32, fixed synthetic data:
  * the GroupedNewton summary as the author computes it: 1 + 2S nested autograd.grad passes
    with create_graph (canonical partition, one subset per parameter tensor);
  * an SGD step (lr 1e-3, momentum 0.9);
  * a GroupedNewton-avg training step: momentum direction, every 10 steps a summary,
    uniform averaging over the current and previous period, the S-dimensional cubic model
    solved in float64 on the host, per-subset steps; timed past the 3-update warm-up.
Each timed call ends with torch.cuda.synchronize() on a GPU. Prints one JSON object per line:
first the environment, then one per model.
Usage: python3 pytorch_side.py --device cuda:0 [--models mlp,vgg11] [--reps 7] [--warm 2]
       [--mlp-batch 100] [--vgg-batch 128] [--gn-period 10] [--gn-warmup 3] [--threads N]
"""
import argparse, json, platform, statistics, time
import torch
import torch.nn.functional as F


def dercon(params, y, u, start, end, create_graph):
    if not y.requires_grad:
        return torch.zeros(end - start, device=y.device)
    ps = params[start:end]
    gr = torch.autograd.grad(y, ps, create_graph=create_graph, retain_graph=True, allow_unused=True)
    gr = [torch.zeros_like(p) if g is None else g for g, p in zip(gr, ps)]
    return torch.stack([(g * v).sum() for g, v in zip(gr, u[start:end])])


def compute_hg(params, loss, u):
    """ḡ, H̄ and diag D̄ by the author's 1 + 2S passes; returned as host float64 arrays."""
    S = len(params)
    dev = loss.device
    gbar = dercon(params, loss, u, 0, S, True)
    H = torch.zeros(S, S, device=dev)
    o3 = torch.zeros(S, device=dev)
    for i in range(S):
        Hi = dercon(params, gbar[i], u, i, S, True)
        H[i, i:] = Hi.detach()
        H[i:, i] = Hi.detach()
        o3[i] = dercon(params, Hi[0], u, i, i + 1, False)[0].detach()
    return H.double().cpu(), gbar.detach().double().cpu(), o3.double().cpu()


class MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.l = torch.nn.ModuleList([torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        x = x.flatten(1)
        for l in self.l[:-1]:
            x = torch.tanh(l(x))
        return F.log_softmax(self.l[-1](x), 1)


class VGG11(torch.nn.Module):
    """VGG-11 ('A') without batch norm: 3x3 convolutions (padding 1) with ELU, max-pool 2
    after each block, one linear classifier 512 -> 10."""
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]:
            if v == 0:
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(c, v, 3, 1, 1), torch.nn.ELU()]
                c = v
        self.features = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(512, 10)

    def forward(self, x):
        return F.log_softmax(self.fc(self.features(x).flatten(1)), 1)


def solve_cubic(H, g, d, lam, iters=50):
    """argmin over η of −gᵀη + ½ηᵀHη + (λ/6)Σ d_s³|η_s|³ by damped Newton (float64, host)."""
    S = g.shape[0]
    eta = torch.zeros(S, dtype=torch.float64)
    d3 = d ** 3

    def model(e):
        return -(g @ e) + 0.5 * e @ (H @ e) + lam / 6.0 * (d3 * e.abs() ** 3).sum()

    for _ in range(iters):
        grad = -g + H @ eta + 0.5 * lam * d3 * eta.abs() * eta
        hess = H + torch.diag(lam * d3 * eta.abs()) + 1e-12 * torch.eye(S, dtype=torch.float64)
        try:
            step = torch.linalg.solve(hess, grad)
        except RuntimeError:
            step = grad
        t, m0 = 1.0, model(eta)
        while t > 1e-8 and model(eta - t * step) > m0:
            t *= 0.5
        eta = eta - t * step
        if grad.abs().max() < 1e-12:
            break
    return eta


class GroupedNewtonAvg:
    """Momentum direction; every `period` steps a summary averaged uniformly over the
    current and the previous period, the cubic model solved, η ≥ 0, θ_s −= damping·η_s·u_s."""
    def __init__(self, params, damping, lam=1.0, period=10, avg_period=3, warmup=3, momentum=0.9):
        self.params, self.damping, self.lam = params, damping, lam
        self.period, self.avg_period, self.warmup, self.momentum = period, avg_period, warmup, momentum
        self.buf = [torch.zeros_like(p) for p in params]
        self.step_count, self.updates = 0, 0
        self.eta = torch.zeros(len(params), dtype=torch.float64)
        self.use_acc = self.up_acc = None

    def _average(self, x):
        t = self.updates % self.avg_period
        if self.updates == 0:
            self.use_acc, self.up_acc = torch.zeros_like(x), torch.zeros_like(x)
        elif t == 0:
            self.use_acc, self.up_acc = self.up_acc.clone(), torch.zeros_like(x)
        n_up = t + 1
        n_use = (self.avg_period if self.updates >= self.avg_period else 0) + t + 1
        self.up_acc = self.up_acc * (n_up - 1) / n_up + x / n_up
        self.use_acc = self.use_acc * (n_use - 1) / n_use + x / n_use
        self.updates += 1
        return self.use_acc.clone()

    def step(self, loss_fn):
        loss = loss_fn()
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():
            for b, g in zip(self.buf, grads):
                b.mul_(self.momentum).add_(g)
        u = self.buf
        k = self.step_count // self.period
        if self.step_count % self.period == 0:
            S = len(self.params)
            H, g, o3 = compute_hg(self.params, loss_fn(), u)
            avg = self._average(torch.cat([g, H.flatten(), o3]))
            g, H, o3 = avg[:S], avg[S:S + S * S].view(S, S), avg[S + S * S:]
            if k < self.warmup:
                self.step_count += 1
                return loss
            self.eta = solve_cubic(H, g, o3.abs() ** (1.0 / 3.0), self.lam).clamp_min(0.0)
        elif k < self.warmup:
            self.step_count += 1
            return loss
        with torch.no_grad():
            for s, (p, v) in enumerate(zip(self.params, u)):
                p.sub_(v, alpha=float(self.damping * self.eta[s]))
        self.step_count += 1
        return loss


def median_ms(f, sync, warm, reps):
    for _ in range(warm):
        f()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def run(name, dev, batch, reps, warm, period, warmup, sync):
    torch.manual_seed(0)
    if name == "mlp":
        m, X, damping = MLP([784, 1024, 200, 100, 10]), torch.randn(batch, 784), 0.03
    else:
        m, X, damping = VGG11(), torch.randn(batch, 3, 32, 32), 0.3
    m = m.to(dev)
    X = X.to(dev)
    Y = torch.randint(0, 10, (batch,)).to(dev)
    params = list(m.parameters())
    u = [torch.randn_like(p) for p in params]
    loss_fn = lambda: F.nll_loss(m(X), Y)
    summary_ms = median_ms(lambda: compute_hg(params, loss_fn(), u), sync, warm, reps)
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def sgd_step():
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    sgd_ms = median_ms(sgd_step, sync, warm + 1, reps)
    gn = GroupedNewtonAvg(params, damping, period=period, warmup=warmup)
    for _ in range(gn.warmup * gn.period):
        gn.step(loss_fn)

    def block():
        for _ in range(gn.period):
            gn.step(loss_fn)
    gn_ms = median_ms(block, sync, min(warm, 1), max(1, reps // 2)) / gn.period
    return {"model": name, "batch": batch, "S": len(params), "reverse_passes": 1 + 2 * len(params),
            "summary_ms": summary_ms, "sgd_step_ms": sgd_ms, "gn_avg_step_ms": gn_ms, "gn_period": gn.period}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="mlp,vgg11")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--mlp-batch", type=int, default=100)
    ap.add_argument("--vgg-batch", type=int, default=128)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--gn-period", type=int, default=10)
    ap.add_argument("--gn-warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    dev = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if dev.type == "cuda":
        # full float32 precision, as the .NET runner's shim sets for its own kernels
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = lambda: torch.cuda.synchronize(dev)
    else:
        sync = lambda: None
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(dev),
           "threads": torch.get_num_threads(), "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
        env["tf32"] = False
    print(json.dumps({"environment": env}), flush=True)
    for name in a.models.split(","):
        batch = a.mlp_batch if name == "mlp" else a.vgg_batch
        print(json.dumps(run(name, dev, batch, a.reps, a.warm, a.gn_period, a.gn_warmup, sync)), flush=True)


if __name__ == "__main__":
    main()
