"""Eager training-step timings against PyTorch eager, in one run, same thread count.

    python examples/bench_eager.py [--threads 2] [--reps 30]

Workloads (from the foundation issue): an MLP 784-512-512-10 with CrossEntropyLoss and
SGD at batch 128, and the seed LeNet with MSELoss and SGD at batch 64 on 1x32x32.
Prints median milliseconds per step and the Kiln / PyTorch ratio.
"""
import argparse
import statistics
import time

import numpy as np


def mlp(nn):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def lenet(nn, F, flatten):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)
    return Net()


def time_steps(step, reps, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def workloads(lib, nn, F, optim):
    rng = np.random.default_rng(0)
    x_mlp = lib.from_numpy(rng.standard_normal((128, 784)).astype(np.float32))
    y_mlp = lib.from_numpy(rng.integers(0, 10, 128).astype(np.int64))
    x_lenet = lib.from_numpy(rng.standard_normal((64, 1, 32, 32)).astype(np.float32))
    y_lenet = lib.from_numpy(rng.standard_normal((64, 10)).astype(np.float32))

    def make_step(model, loss_fn, x, y):
        opt = optim.SGD(model.parameters(), lr=0.01)

        def step():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        return step

    yield "MLP 784-512-512-10 step, batch 128", make_step(mlp(nn), nn.CrossEntropyLoss(), x_mlp, y_mlp)
    yield "LeNet step, batch 64", make_step(lenet(nn, F, lib.flatten), nn.MSELoss(), x_lenet, y_lenet)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()

    import frontend
    frontend.set_num_threads(args.threads)
    results = {}
    for name, step in workloads(frontend, frontend.nn, frontend.nn.functional, frontend.optim):
        results[name] = {"kiln": time_steps(step, args.reps)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        for name, step in workloads(torch, torch.nn, torch.nn.functional, torch.optim):
            results[name]["torch"] = time_steps(step, args.reps)

    print(f"{'workload':40s} {'kiln ms':>9s} {'torch ms':>9s} {'kiln/torch':>10s}")
    for name, r in results.items():
        t = r.get("torch")
        ratio = f"{r['kiln'] / t:9.2f}x" if t else "      n/a"
        print(f"{name:40s} {r['kiln']:9.2f} {t if t else float('nan'):9.2f} {ratio}")


if __name__ == "__main__":
    main()
