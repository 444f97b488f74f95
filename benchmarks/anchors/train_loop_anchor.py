"""PyTorch side of the train-loop benchmark: the training loop on Fashion-MNIST (60k, float32,
batch 100, PyTorch's default initialisation) with the MLP 784-1024-200-100-10 (tanh) or
LeNet-5 (1x28x28), for
  sgd     SGD with momentum 0.9, lr 0.01 (torch.optim.SGD);
  gn-avg  GroupedNewton with uniform averaging as in the paper's final runs: u is the
          heavy-ball buffer of the minibatch gradients (lr 1, momentum 0.9); every 10 steps
          the summaries (g, H, diag D) on the next batch of an unshuffled cycle over the
          training set, computed with nested torch.autograd.grad (1 + 2S reverse passes,
          canonical partition); uniform averaging over the current and previous period of 3
          updates; 3 updates of warm-up; anisotropic cubic regularisation (lambda_int 1);
          relu on the rates; damping .03 (the paper's MLP value; its CNN value .3 makes
          LeNet-5 diverge within the first hundred steps, in both loops).
The batches follow the order given by --order (the int32 permutation our loader uses), so
both loops see the same batches. Prints one JSON object: per-step wall times of the timed
steps, minor page faults per timed step and the peak resident memory.
Usage: python3 train_loop_anchor.py --model mlp --algo sgd --threads 1 --warm 40 --steps 50
                                    --data /usr/share/datasets/fashion-mnist --order order.bin
"""
import argparse, gzip, json, math, os, resource, struct, time
import numpy as np
import torch
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def idx_file(folder, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(folder, stem))


def peak_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.l = torch.nn.ModuleList([torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        x = x.flatten(1)
        for l in self.l[:-1]:
            x = torch.tanh(l(x))
        return self.l[-1](x)


class LeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 6, 5); self.c2 = torch.nn.Conv2d(6, 16, 5)
        self.f1 = torch.nn.Linear(16 * 4 * 4, 120); self.f2 = torch.nn.Linear(120, 84); self.f3 = torch.nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.max_pool2d(torch.tanh(self.c2(x)), 2)
        x = x.flatten(1)
        x = torch.tanh(self.f1(x)); x = torch.tanh(self.f2(x))
        return self.f3(x)


# ---- GroupedNewton's summaries: the reference's dercon / compute_Hg

def dercon(params, y, u, start, end, create_graph):
    if not y.requires_grad:
        return torch.zeros(end - start)
    ps = params[start:end]
    gr = torch.autograd.grad(y, ps, create_graph=create_graph, retain_graph=True, allow_unused=True)
    gr = [torch.zeros_like(p) if g is None else g for g, p in zip(gr, ps)]
    return torch.stack([(g * v).sum() for g, v in zip(gr, u[start:end])])


def compute_hg(params, loss, u):
    S = len(params)
    gbar = dercon(params, loss, u, 0, S, True)
    H = torch.zeros(S, S); o3 = torch.zeros(S)
    for i in range(S):
        Hi = dercon(params, gbar[i], u, i, S, True)
        H[i, i:] = Hi.detach(); H[i:, i] = Hi.detach()
        o3[i] = dercon(params, Hi[0], u, i, i + 1, False)[0].detach()
    return H, gbar.detach(), o3


# ---- the reference's cubic solver (nesterov_lrs), float64, with a Brent root finder

def brentq(f, a, b, xtol=2e-12, rtol=8.881784197001252e-16, maxiter=100):
    fa, fb = f(a), f(b)
    if fa * fb > 0:
        return None
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc, d, e = a, fa, b - a, b - a
    for _ in range(maxiter):
        if fb * fc > 0:
            c, fc, d, e = a, fa, b - a, b - a
        if abs(fc) < abs(fb):
            a, b, c, fa, fb, fc = b, c, b, fb, fc, fb
        tol = 2 * rtol * abs(b) + 0.5 * xtol
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                p, q = 2 * m * s, 1 - s
            else:
                q, r = fa / fc, fb / fc
                p = s * (2 * m * q * (q - r) - (b - a) * (r - 1))
                q = (q - 1) * (r - 1) * (s - 1)
            if p > 0:
                q = -q
            else:
                p = -p
            if 2 * p < min(3 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d, e = m, m
        else:
            d, e = m, m
        a, fa = b, fb
        b += d if abs(d) > tol else (tol if m > 0 else -tol)
        fb = f(b)
    return b


def nesterov_lrs(H, g, d, lam, threshold=1e-5):
    H = H.astype(np.float64); g = g.astype(np.float64); d = d.astype(np.float64)
    D, D2 = np.diag(d), np.diag(d * d)

    def f(x):
        return np.linalg.norm(D @ np.linalg.solve(H + 0.5 * lam * x * D2, g)) - x

    h_pd = bool(np.all(np.linalg.eigvalsh(H) > 0))
    if not h_pd and lam == 0:
        return None
    if h_pd:
        x0 = 0.0
    elif np.all(d > threshold):
        dinv = np.diag(1.0 / d)
        lmin = np.linalg.eigvalsh(dinv @ H @ dinv).min()
        x0 = (2.0 / lam) * abs(min(0.0, lmin))
    else:
        def fn(x):
            return np.linalg.eigvalsh(H + 0.5 * lam * x * D2).min()
        b = 1.0
        prev = fn(b)
        while fn(b) <= 0:
            b *= 3
            cur = fn(b)
            if cur < prev:
                return None
            prev = cur
        x0 = brentq(fn, 0.0, b, maxiter=200)
        if x0 is None:
            return None
    try:
        fx0 = f(x0)
    except np.linalg.LinAlgError:
        x0 *= 1.001
        fx0 = f(x0)
    if not fx0 > 0:
        return None
    x1 = x0 + 1.0
    while f(x1) >= 0:
        x1 *= 3
    r = brentq(f, x0, x1)
    if r is None:
        return None
    return np.linalg.solve(H + 0.5 * lam * r * D2, g)


class UniformAverage:
    """Mean of the samples since the start of the previous period (two separate accumulators)."""

    def __init__(self, period):
        self.p, self.k, self.use, self.up = period, 0, None, None

    def add(self, x):
        t = self.k % self.p
        if self.k == 0:
            self.use, self.up = np.zeros_like(x), np.zeros_like(x)
        elif t == 0:
            self.use, self.up = self.up.copy(), np.zeros_like(x)
        n_up = t + 1
        n_use = (self.p if self.k >= self.p else 0) + t + 1
        self.up = self.up * (n_up - 1) / n_up + x / n_up
        self.use = self.use * (n_use - 1) / n_use + x / n_use
        self.k += 1
        return self.use.copy()


class GroupedNewtonAvg:
    def __init__(self, params, damping, hg_batches, period_hg=10, avg_period=3, warmup=3, lam=1.0, momentum=0.9):
        self.params, self.damping, self.hg = params, damping, hg_batches
        self.period, self.warmup, self.lam, self.mom = period_hg, warmup, lam, momentum
        self.avg = UniformAverage(avg_period)
        self.step_counter, self.updates = 0, 0
        S = len(params)
        self.curr = np.zeros(S)
        self.lrs = np.zeros(S)
        self.buf = None

    def updater(self):
        with torch.no_grad():
            if self.buf is None:
                self.buf = [p.grad.detach().clone() for p in self.params]
            else:
                for b, p in zip(self.buf, self.params):
                    b.mul_(self.mom).add_(p.grad)
        return self.buf

    def apply(self, u):
        with torch.no_grad():
            for p, v, lr in zip(self.params, u, self.lrs):
                if lr != 0.0:
                    p.add_(v, alpha=-float(lr))

    def step(self, model):
        S = len(self.params)
        warmup_ended = self.step_counter // self.period >= self.warmup
        if self.step_counter % self.period != 0:
            if warmup_ended:
                self.apply(self.updater())
            self.step_counter += 1
            return
        u = self.updater()
        x, y = next(self.hg)
        H, g, o3 = compute_hg(self.params, F.cross_entropy(model(x), y), u)
        packed = np.concatenate([g.numpy().astype(np.float64), H.numpy().astype(np.float64).ravel(), o3.numpy().astype(np.float64)])
        avg = self.avg.add(packed)
        g, H, o3 = avg[:S], avg[S:S + S * S].reshape(S, S), avg[S + S * S:]
        if not warmup_ended:
            self.step_counter += 1
            return
        if np.all(np.isfinite(avg)):
            eta = nesterov_lrs(H, g, np.abs(o3) ** (1.0 / 3.0), self.lam)
        else:
            eta = None
        if eta is None:
            eta = self.curr.copy()
        self.curr = eta  # mom_lrs = 0 in the final runs
        self.lrs = self.damping * np.maximum(self.curr, 0.0)
        self.apply(u)
        self.updates += 1
        self.step_counter += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--algo", default="sgd")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warm", type=int, default=40)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--order", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(read_idx(idx_file(a.data, "train-images-idx3-ubyte")).astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(read_idx(idx_file(a.data, "train-labels-idx1-ubyte")).astype(np.int64))
    n = x.shape[0]
    order = torch.from_numpy(np.fromfile(a.order, dtype="<i4").astype(np.int64)) if a.order else torch.randperm(n)
    model = MLP([784, 1024, 200, 100, 10]) if a.model == "mlp" else LeNet()
    params = list(model.parameters())

    def hg_batches():
        while True:
            for i in range(0, n, 100):
                yield x[i:i + 100], y[i:i + 100]

    if a.algo == "sgd":
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        step = lambda: opt.step()
    elif a.algo == "gn-avg":
        gn = GroupedNewtonAvg(params, 0.03, hg_batches())
        step = lambda: gn.step(model)
    else:
        raise SystemExit("unknown --algo " + a.algo)

    total = a.warm + a.steps
    times = []
    faults0 = 0
    cpu0 = 0.0
    pos = 0
    losses = []
    for k in range(total):
        if k == a.warm:
            faults0 = minor_faults()
            cpu0 = time.process_time()
        t = time.perf_counter()
        if pos + 100 > n:
            pos = 0
        idx = order[pos:pos + 100]
        pos += 100
        for p in params:
            p.grad = None
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        step()
        l = loss.item()
        if k >= a.warm:
            times.append((time.perf_counter() - t) * 1e3)
            losses.append(l)
    faults = (minor_faults() - faults0) / max(1, a.steps)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / max(1, a.steps)
    print(json.dumps({"side": "pytorch", "torch": torch.__version__, "model": a.model, "algo": a.algo,
                      "threads": a.threads, "steps_ms": times, "cpu_ms_per_step": cpu_ms, "minflt_per_step": faults,
                      "peak_mib": peak_mib(), "mean_loss": sum(losses) / max(1, len(losses))}), flush=True)


if __name__ == "__main__":
    main()
