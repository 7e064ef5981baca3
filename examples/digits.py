"""scikit-learn's handwritten digits (1,797 8x8 images, bundled: nothing is downloaded),
shaped the way each example's model wants them."""
from __future__ import annotations

import os

import numpy as np


def quick() -> bool:
    """Tests run the examples with ``KILN_EXAMPLE_QUICK=1``: fewer epochs, same claims."""
    return os.environ.get("KILN_EXAMPLE_QUICK") == "1"


def load(size: int = 8, seed: int = 0):
    """Return ``(x_train, y_train, x_test, y_test)`` as NumPy arrays.

    Images are scaled to [0, 1], upsampled by an integer factor and zero-padded to
    ``size`` x ``size`` (LeNet wants 32x32: 8x8 -> 24x24 -> padded by 4), with shape
    (N, 1, size, size); labels are int64. The split is a fixed 80/20 shuffle.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    factor = max(1, size // 8)
    if factor > 1:
        images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    pad = size - images.shape[1]
    if pad < 0:
        raise ValueError(f"size {size} is smaller than the 8x8 digits")
    lo = pad // 2
    images = np.pad(images, ((0, 0), (lo, pad - lo), (lo, pad - lo)))
    x = images[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return x[:split], y[:split], x[split:], y[split:]


def batches(x, y, batch_size, rng):
    order = rng.permutation(len(x))
    for start in range(0, len(x) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]
