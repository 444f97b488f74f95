"""PyTorch side of the one-epoch benchmark: Fashion-MNIST (60k) with the MLP
784-1024-200-100-10 (tanh), SGD (lr 0.01, momentum 0.9), batch 100, float32, shuffled.
Prints one JSON object: epoch seconds and peak resident memory (MiB).
Usage: python3 epoch_anchor.py --data /usr/share/datasets/fashion-mnist [--threads 1]
"""
import argparse, gzip, json, os, struct, time
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
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows * cols)
    return np.frombuffer(data, np.uint8, offset=8)

def peak_mib():
    # VmHWM belongs to this process's own address space (reset by exec); getrusage's
    # ru_maxrss would include the high-water mark inherited from the parent at fork
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    x = torch.from_numpy(read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    load_s = time.perf_counter() - t0
    sizes = [784, 1024, 200, 100, 10]
    layers = torch.nn.ModuleList([torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])])
    opt = torch.optim.SGD(layers.parameters(), lr=0.01, momentum=0.9)
    def forward(b):
        h = b
        for l in layers[:-1]:
            h = torch.tanh(l(h))
        return layers[-1](h)
    t0 = time.perf_counter()
    perm = torch.randperm(x.shape[0])
    total = 0.0
    for i in range(0, x.shape[0], 100):
        idx = perm[i:i + 100]
        opt.zero_grad()
        loss = F.cross_entropy(forward(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.item()
    epoch_s = time.perf_counter() - t0
    peak = peak_mib()
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "load_s": load_s, "epoch_s": epoch_s,
                      "peak_mib": peak, "mean_loss": total / (x.shape[0] / 100)}), flush=True)

if __name__ == "__main__":
    main()
