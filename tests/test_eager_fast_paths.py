"""The eager reference kernels' fast paths give exactly what their general paths give.

Several kernels switch to a faster formulation above a size (``compiler/ops/kernels.py``:
branch-free ``where``, argmax/argmin along a short axis, gather/scatter of one index per
slice; ``fold`` in the memory order of its input, copying disjoint windows; convolution
laid out batch-innermost when the input needs a gradient). The op tests use small shapes, which take the general
paths; these cases use shapes above the thresholds and compare both paths, and the
layers with torch.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import frontend as kiln
import frontend.nn.functional as F
from compiler.ops import REGISTRY


def _bits_equal(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _awkward(rng, shape, dtype):
    """Values with ties, signed zeros and infinities (floats), or many ties (ints)."""
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        x[x > 1.5] = -np.inf
        x[x < -1.8] = np.inf
        x.flat[::7] = 0.0
        x.flat[3::7] = -0.0
        return x
    return rng.integers(-2, 3, shape).astype(dtype)


DTYPES = [np.float32, np.float64, np.int32, np.int64]
SHAPES = [((64, 6, 4, 196), 2), ((3000, 5), 1), ((7, 4000), 0), ((2, 3, 4), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SHAPES)
def test_argmax_argmin_gather_scatter_match_numpy(dtype, shape, axis):
    rng = np.random.default_rng(0)
    x = _awkward(rng, shape, dtype)
    for name, fn in (("argmax", np.argmax), ("argmin", np.argmin)):
        for keepdim in (True, False):
            got = REGISTRY[name].ref(x, axis=axis, keepdim=keepdim)
            want = fn(x, axis=axis, keepdims=keepdim)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want)
    idx = np.argmax(x, axis=axis, keepdims=True)
    want = np.take_along_axis(x, idx, axis=axis)
    for i in (idx, idx - x.shape[axis]):                     # negative indices too
        _bits_equal(REGISTRY["gather"].ref(x, i, axis=axis), want)
        scattered = np.zeros(shape, dtype)
        np.put_along_axis(scattered, idx, want, axis=axis)
        _bits_equal(REGISTRY["scatter_add"].ref(want, i, axis=axis, shape=shape), scattered)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_argmax_with_nan_reports_the_first_nan(dtype):
    x = np.random.default_rng(1).standard_normal((64, 6, 4, 196)).astype(dtype)
    x[3, 2, 1, 5] = x[3, 2, 3, 5] = np.nan
    x[9, 0, 2, 7] = np.nan
    for name, fn in (("argmax", np.argmax), ("argmin", np.argmin)):
        np.testing.assert_array_equal(REGISTRY[name].ref(x, axis=2, keepdim=False),
                                      fn(x, axis=2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_matches_numpy_bitwise(dtype):
    rng = np.random.default_rng(2)
    shape = (64, 6, 28, 28)
    a, b = _awkward(rng, shape, dtype), _awkward(rng, shape, dtype)
    if np.dtype(dtype).kind == "f":
        a.flat[5::11] = np.nan
    cond = rng.standard_normal(shape) > 0
    zero, three = np.zeros((), dtype), np.full((), 3, dtype)
    small_cond = rng.standard_normal((1, 6, 1, 28)) > 0         # broadcast condition
    for c, x, y in ((cond, a, b), (cond, a, zero), (cond, zero, a), (cond, three, a),
                    (small_cond, a, b), (small_cond, three, zero), (cond, a[:, :, ::-1], b.transpose(0, 1, 3, 2))):
        _bits_equal(REGISTRY["where"].ref(c, x, y), np.where(c, x, y))


def test_matmul_small_and_large_paths_agree_with_numpy():
    """Small products run on one BLAS thread, which may round differently in the last bit."""
    rng = np.random.default_rng(3)
    for shape_a, shape_b in (((64, 400), (400, 120)), ((2, 3, 5), (5, 4)),
                             ((512, 512), (512, 128))):     # the last above SMALL_MATMUL
        a = rng.standard_normal(shape_a).astype(np.float32)
        b = rng.standard_normal(shape_b).astype(np.float32)
        np.testing.assert_allclose(REGISTRY["matmul"].ref(a, b), np.matmul(a, b),
                                   rtol=1e-5, atol=1e-4)


def test_fold_in_the_memory_order_of_its_input():
    """A batch-innermost ``cols`` (a conv's input gradient) folds to the same values."""
    rng = np.random.default_rng(4)
    attrs = dict(shape=(64, 6, 14, 14), kernel=(5, 5), stride=(1, 1),
                 padding=((0, 0), (0, 0)), dilation=(1, 1))
    cols = rng.standard_normal((64, 6, 5, 5, 10, 10)).astype(np.float32)
    inner = np.ascontiguousarray(cols.transpose(1, 2, 3, 4, 5, 0)).transpose(5, 0, 1, 2, 3, 4)
    _bits_equal(REGISTRY["fold"].ref(inner, **attrs), REGISTRY["fold"].ref(cols, **attrs))
    padded = dict(attrs, shape=(64, 6, 12, 12), padding=((1, 1), (1, 1)))
    _bits_equal(REGISTRY["fold"].ref(inner, **padded), REGISTRY["fold"].ref(cols, **padded))


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1), dict(groups=2, dilation=2)])
def test_conv2d_both_layouts_match_torch(input_grad, kwargs):
    """Input needing a gradient -> batch-innermost columns; otherwise batch-outer."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 4, 14, 14)).astype(np.float32)
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    tx, tw, tb = (torch.tensor(v, requires_grad=r) for v, r in ((x, input_grad), (w, True),
                                                                 (b, True)))
    kx, kw, kb = (kiln.tensor(v, requires_grad=r) for v, r in ((x, input_grad), (w, True),
                                                                (b, True)))
    to, ko = TF.conv2d(tx, tw, tb, **kwargs), F.conv2d(kx, kw, kb, **kwargs)
    assert ko.is_contiguous()
    np.testing.assert_allclose(ko.detach().numpy(), to.detach().numpy(), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    to.backward(torch.tensor(g))
    ko.backward(kiln.tensor(g))
    pairs = [(kw, tw), (kb, tb)] + ([(kx, tx)] if input_grad else [])
    for k, t in pairs:
        np.testing.assert_allclose(k.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_large_max_pool_ties_after_relu_follow_torch(kwargs):
    """Above the fast-path sizes: values and first-maximum gradient routing as torch."""
    x = np.random.default_rng(6).standard_normal((32, 6, 28, 28)).astype(np.float32)
    x[:, :, :10] = -1.0                                          # all-zero windows after ReLU
    x[:, :, 20:24, 20:24] = 0.5                                  # windows tied at a maximum
    tx = torch.tensor(x, requires_grad=True)
    kx = kiln.tensor(x, requires_grad=True)
    to, ko = TF.max_pool2d(TF.relu(tx), **kwargs), F.max_pool2d(F.relu(kx), **kwargs)
    np.testing.assert_array_equal(ko.detach().numpy(), to.detach().numpy())
    g = np.random.default_rng(7).standard_normal(tuple(to.shape)).astype(np.float32)
    to.backward(torch.tensor(g))
    ko.backward(kiln.tensor(g))
    # overlapping windows add their gradients in another order than torch: rounding only
    np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def _fold_by_adds(cols, shape, kernel, stride, padding, dilation):
    """The general col2im: every window offset added into zeros (the old kernel)."""
    d = len(kernel)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(shape[2:], padding))
    out = np.zeros(tuple(shape[:2]) + padded, cols.dtype)
    outs = cols.shape[2 + d:]
    for offset in np.ndindex(*kernel):
        window = tuple(slice(o * dl, o * dl + st * (n - 1) + 1, st)
                       for o, dl, st, n in zip(offset, dilation, stride, outs))
        out[(slice(None), slice(None)) + window] += cols[(slice(None), slice(None)) + offset]
    crop = tuple(slice(lo, lo + n) for n, (lo, hi) in zip(shape[2:], padding))
    return out[(slice(None), slice(None)) + crop]


@pytest.mark.parametrize("case", [
    # kernel == stride tiling the output (LeNet's pooling): copied into np.empty
    dict(shape=(64, 6, 28, 28), kernel=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0))),
    # disjoint windows leaving gaps and a remainder: copied into zeros
    dict(shape=(8, 3, 29, 31), kernel=(2, 3), stride=(3, 4), padding=((0, 0), (0, 0))),
    # disjoint windows over padding
    dict(shape=(8, 3, 27, 27), kernel=(2, 2), stride=(2, 2), padding=((1, 0), (0, 1))),
    # overlapping windows: the general adds
    dict(shape=(8, 3, 14, 14), kernel=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1))),
])
@pytest.mark.parametrize("batch_inner", [False, True])
def test_fold_disjoint_windows_match_the_adds_bitwise(case, batch_inner):
    """Non-overlapping windows are copied, not added, yet -0.0 still becomes +0.0 (as
    0 + v does, and PyTorch's zero-filled max-pool gradient); the result is C-contiguous."""
    rng = np.random.default_rng(8)
    attrs = dict(case, dilation=(1, 1))
    outs = tuple((n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in
                 zip(case["shape"][2:], case["padding"], case["kernel"], case["stride"]))
    cols = _awkward(rng, case["shape"][:2] + case["kernel"] + outs, np.float32)
    if batch_inner:
        cols = np.ascontiguousarray(np.moveaxis(cols, 0, -1))
        cols = np.moveaxis(cols, -1, 0)
    got = REGISTRY["fold"].ref(cols, **attrs)
    assert got.flags.c_contiguous
    _bits_equal(got, _fold_by_adds(cols, **attrs))


def test_max_pool_kernel_equals_stride_backward_bitwise():
    """LeNet's pooling gradient (disjoint fold + scatter of one index per window) routes
    every gradient, signed zeros included, exactly as PyTorch's does."""
    x = np.random.default_rng(9).standard_normal((64, 6, 28, 28)).astype(np.float32)
    x[:, :, :6] = -1.0                                           # all-zero windows after ReLU
    tx = torch.tensor(x, requires_grad=True)
    kx = kiln.tensor(x, requires_grad=True)
    to, ko = TF.max_pool2d(TF.relu(tx), 2), F.max_pool2d(F.relu(kx), 2)
    g = np.random.default_rng(10).standard_normal(tuple(to.shape)).astype(np.float32)
    g.flat[::5] = -0.0
    to.backward(torch.tensor(g))
    ko.backward(kiln.tensor(g))
    _bits_equal(kx.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_scatter_of_strided_inputs(dtype):
    """``gather`` reads a C-contiguous input with one flat ``take``; other layouts select
    position by position; ``scatter_add`` from a strided gradient. All match NumPy."""
    rng = np.random.default_rng(11)
    base = _awkward(rng, (196, 4, 6, 64), dtype)
    x = base.transpose(3, 2, 1, 0)                               # (64, 6, 4, 196), strided
    assert not x.flags.c_contiguous
    idx = np.argmax(x, axis=2, keepdims=True)
    want = np.take_along_axis(x, idx, axis=2)
    _bits_equal(REGISTRY["gather"].ref(x, idx, axis=2), want)
    _bits_equal(REGISTRY["gather"].ref(np.ascontiguousarray(x), idx, axis=2), want)
    g = want.transpose(3, 2, 1, 0).copy().transpose(3, 2, 1, 0)   # a strided gradient
    scattered = np.zeros(x.shape, dtype)
    np.put_along_axis(scattered, idx, want, axis=2)
    _bits_equal(REGISTRY["scatter_add"].ref(g, idx, axis=2, shape=x.shape), scattered)


def test_conv2d_input_gradient_layout_with_padding_matches_torch():
    """The input is copied batch-innermost before im2col when it needs a gradient; with
    padding (np.pad) and without, values and all gradients match torch."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((64, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    for padding in (0, 2):
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        kx, kw = kiln.tensor(x, requires_grad=True), kiln.tensor(w, requires_grad=True)
        to, ko = TF.conv2d(tx, tw, padding=padding), F.conv2d(kx, kw, padding=padding)
        assert ko.is_contiguous()
        np.testing.assert_allclose(ko.detach().numpy(), to.detach().numpy(), rtol=1e-4,
                                   atol=1e-4)
        g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
        to.backward(torch.tensor(g))
        ko.backward(kiln.tensor(g))
        for k, t in ((kx, tx), (kw, tw)):
            np.testing.assert_allclose(k.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-3)
