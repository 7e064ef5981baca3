"""The benchmark workloads W1-W6, each written once against a torch-like module object
(``lib`` is ``frontend`` or ``torch``) so Kiln and PyTorch run the very same code."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Workload:
    key: str
    title: str
    unit: str                    # "GB/s", "GFLOP/s" or "samples/s"
    work: float                  # bytes, flops or samples per call, for the throughput
    make: Callable               # (lib, compile_fn or None) -> step() callable


def _arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def w1(lib, compile_fn):
    n = 4_194_304
    x, a, b = (lib.from_numpy(v) for v in _arrays(1, n, n, n))

    def f(x, a, b):
        return x * lib.sigmoid(x) * a + b
    fn = compile_fn(f) if compile_fn else f
    return lambda: fn(x, a, b)


def w2(lib, compile_fn):
    (x,) = (lib.from_numpy(v) for v in _arrays(2, (4096, 1024)))
    F = lib.nn.functional

    def f(x):
        return F.layer_norm(F.softmax(x, dim=-1), (1024,), eps=1e-5)
    fn = compile_fn(f) if compile_fn else f
    return lambda: fn(x)


def mlp(nn):
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def lenet(lib):
    nn, F = lib.nn, lib.nn.functional

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
            x = lib.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)
    return Net()


def _train_step(lib, model, compile_fn, loss_fn, x, y):
    forward = compile_fn(model) if compile_fn else model
    opt = lib.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def w3(lib, compile_fn):
    lib.manual_seed(0)
    x = lib.from_numpy(_arrays(3, (128, 784))[0])
    y = lib.from_numpy(np.random.default_rng(3).integers(0, 10, 128))
    return _train_step(lib, mlp(lib.nn), compile_fn, lib.nn.CrossEntropyLoss(), x, y)


def w4(lib, compile_fn):
    lib.manual_seed(0)
    x, y = (lib.from_numpy(v) for v in _arrays(4, (64, 1, 32, 32), (64, 10)))
    return _train_step(lib, lenet(lib), compile_fn, lib.nn.MSELoss(), x, y)


def w5(lib, compile_fn):
    a, b = (lib.from_numpy(v) for v in _arrays(5, (1024, 1024), (1024, 1024)))

    def f(a, b):
        return a @ b
    fn = compile_fn(f) if compile_fn else f
    return lambda: fn(a, b)


def rnn_cell(lib, input_size, hidden_size):
    """The seed tutorial's vanilla cell: h' = relu(W [x, h] + b)."""
    nn = lib.nn

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.i2h = nn.Linear(input_size + hidden_size, hidden_size)

        def forward(self, x, h):
            return lib.relu(self.i2h(lib.cat((x, h), 1)))
    return Cell()


def w6(lib, compile_fn):
    lib.manual_seed(0)
    steps, batch, n_in, n_hidden = 32, 64, 128, 256
    cell = rnn_cell(lib, n_in, n_hidden)
    fn = compile_fn(cell) if compile_fn else cell
    xs = lib.from_numpy(_arrays(6, (steps, batch, n_in))[0])

    def step():
        cell.zero_grad()
        h = lib.zeros(batch, n_hidden)
        for t in range(steps):
            h = fn(xs[t], h)
        h.sum().backward()
        return h
    return step


WORKLOADS = {
    "W1": Workload("W1", "elementwise x*sigmoid(x)*a+b, 4M float32", "GB/s", 4 * 4_194_304 * 4, w1),
    "W2": Workload("W2", "row softmax + LayerNorm, 4096x1024", "GB/s", 2 * 4096 * 1024 * 4, w2),
    "W3": Workload("W3", "MLP 784-512-512-10 train step, batch 128", "samples/s", 128, w3),
    "W4": Workload("W4", "LeNet train step, batch 64", "samples/s", 64, w4),
    "W5": Workload("W5", "matmul 1024x1024x1024 float32", "GFLOP/s", 2 * 1024 ** 3, w5),
    "W6": Workload("W6", "vanilla ReLU RNN, 32 steps, batch 64, fwd+bwd", "samples/s", 64, w6),
}
