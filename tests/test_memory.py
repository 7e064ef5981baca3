"""Eager training must not leak: the tape is freed after each backward by reference
counting alone (no reference cycles), so 10,000 steps keep the process's memory flat."""
import gc

import numpy as np

import frontend as torch
import frontend.nn as nn
import frontend.optim as optim


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_ten_thousand_training_steps_keep_memory_flat():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((16, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, 16))

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    gc.collect()
    gc.disable()  # prove that nothing relies on the cycle collector
    try:
        for _ in range(1000):
            step()
        baseline = _rss_bytes()
        garbage_before = len(gc.get_objects())
        for _ in range(9000):
            step()
        growth = _rss_bytes() - baseline
        objects_growth = len(gc.get_objects()) - garbage_before
    finally:
        gc.enable()
    assert growth < 4 * 2 ** 20, f"RSS grew by {growth / 2 ** 20:.1f} MiB over 9,000 steps"
    assert objects_growth < 1000, f"{objects_growth} more live objects after 9,000 steps"
