# How far float32 summaries (ḡ, H̄, diag D̄) lie from float64, for the reference algorithm
# (1 + 2S nested autograd passes, benchmarks/gpu/pytorch_side.py): the MLP 784-1024-200-100-10
# (tanh) on a Fashion-MNIST batch of 100, random weights, u = the float64 gradient rounded to
# float32. Prints the reference's errors (largest absolute error over the largest magnitude)
# and writes the inputs and the float64 truth for float32-summary-ours.fsx.
#   /usr/bin/python3 benchmarks/accuracy/float32-summary-reference.py OUTDIR SEED
#   dotnet fsi benchmarks/accuracy/float32-summary-ours.fsx OUTDIR
import gzip, os, sys, json, numpy as np, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'gpu'))
import pytorch_side as ps
torch.set_num_threads(1)
out = sys.argv[1]; seed = int(sys.argv[2])
with gzip.open('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz') as f:
    imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
with gzip.open('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz') as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
rng = np.random.default_rng(seed)
idx = rng.choice(len(imgs), 100, replace=False)
x = (imgs[idx].astype(np.float64) / 255.0 - 0.2860) / 0.3530
y = labels[idx].astype(np.int64)
sizes = [784, 1024, 200, 100, 10]
params = []
for i in range(4):
    params.append(rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i], sizes[i + 1])))
    params.append(rng.normal(0, 0.1, (sizes[i + 1],)))
def loss_of(ps_, xx, yy):
    h = xx
    for i in range(4):
        h = h @ ps_[2 * i] + ps_[2 * i + 1]
        if i < 3: h = torch.tanh(h)
    return torch.nn.functional.cross_entropy(h, yy)
def summary(dtype, u64):
    torch.set_default_dtype(dtype)
    p = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in params]
    xx = torch.tensor(x, dtype=dtype); yy = torch.tensor(y)
    u = [torch.tensor(a, dtype=dtype) for a in u64]
    loss = loss_of(p, xx, yy)
    H, g, d = ps.compute_hg(p, loss, u)
    return g.numpy(), H.numpy(), d.numpy()
# u: the float64 gradient, rounded to float32 so both dtypes see the same direction
p64 = [torch.tensor(a, requires_grad=True) for a in params]
l = loss_of(p64, torch.tensor(x), torch.tensor(y))
u64 = [gr.detach().numpy().astype(np.float32).astype(np.float64) for gr in torch.autograd.grad(l, p64)]
params = [a.astype(np.float32).astype(np.float64) for a in params]  # exact in float32 too
x = x.astype(np.float32).astype(np.float64)
g64, H64, d64 = summary(torch.float64, u64)
g32, H32, d32 = summary(torch.float32, u64)
def rel(a, b): return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
res = {"seed": seed, "ref_g": rel(g32, g64), "ref_H": rel(H32, H64), "ref_D": rel(d32, d64)}
# inputs for our side: raw float64 files
np.concatenate([a.ravel() for a in params]).tofile(out + '/params.bin')
np.concatenate([a.ravel() for a in u64]).tofile(out + '/u.bin')
x.tofile(out + '/x.bin'); y.astype(np.int32).tofile(out + '/y.bin')
np.concatenate([g64, H64.ravel(), d64]).tofile(out + '/truth.bin')
print(json.dumps(res))
