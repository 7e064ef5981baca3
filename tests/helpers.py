"""Shared test harness: run one expression on torch (the oracle) and on Kiln, compare.

``helper_test_op`` follows tinygrad's: given shapes (or explicit arrays) and a lambda,
it builds identical inputs for both frameworks, runs the lambda on each, and compares
value, shape and dtype of every output and every input gradient (backward with the
same random upstream gradient). A lambda written with tensor methods usually works on
both unchanged; free functions take a ``kiln_fn`` with the module swapped.
"""
from __future__ import annotations

import numpy as np
import torch

import frontend as kiln
from frontend import autograd as kiln_autograd

F32_TOL = dict(rtol=1e-5, atol=1e-6)
F64_TOL = dict(rtol=1e-10, atol=1e-12)

TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
    "int32": torch.int32, "bool": torch.bool,
}
KILN_DTYPES = {
    "float32": kiln.float32, "float64": kiln.float64, "int64": kiln.int64,
    "int32": kiln.int32, "bool": kiln.bool,
}


def dtype_name(dtype):
    """Framework-neutral dtype name: 'float32', 'int64', 'bool', ..."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    return dtype.name


# -- conversion -----------------------------------------------------------------------------
def to_numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().numpy().copy()
    if isinstance(t, kiln.Tensor):
        return np.array(t.detach().numpy(), copy=True)
    return np.asarray(t)


def to_kiln(t, requires_grad=None):
    """A Kiln leaf with the same values and dtype as torch tensor ``t`` (a copy)."""
    k = kiln.tensor(to_numpy(t))
    rg = t.requires_grad if requires_grad is None else requires_grad
    return k.requires_grad_(True) if rg else k


def to_torch(k, requires_grad=None):
    """A torch leaf with the same values and dtype as Kiln tensor ``k`` (a copy)."""
    t = torch.from_numpy(to_numpy(k))
    rg = k.requires_grad if requires_grad is None else requires_grad
    return t.requires_grad_(True) if rg else t


def strided_copy(array, layout="contiguous"):
    """A fresh copy of ``array``; 'transposed' / 'sliced' make it a NON-CONTIGUOUS view."""
    array = np.asarray(array)
    if layout == "transposed" and array.ndim >= 2:
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(array, -1, -2)), -1, -2)
    if layout == "sliced" and array.ndim >= 1:
        return np.repeat(array, 2, axis=-1)[..., ::2]  # every second element of a wider base
    return np.array(array, copy=True)


def make_pair(array, requires_grad, layout="contiguous"):
    """The same data as a torch leaf and a Kiln leaf, each with its own memory and the
    layout asked for (both ``from_numpy``s keep NumPy's strides)."""
    t = torch.from_numpy(strided_copy(array, layout))
    k = kiln.from_numpy(strided_copy(array, layout))
    if requires_grad:
        t.requires_grad_(True)
        k.requires_grad_(True)
    return t, k


def random_array(shape, dtype="float32", low=-2.0, high=2.0, rng=None):
    rng = rng or np.random.default_rng(0)
    if dtype in ("float32", "float64"):
        return rng.uniform(low, high, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.random(size=shape) < 0.5
    return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)


# -- comparison -----------------------------------------------------------------------------
def tolerances(dtype, rtol=None, atol=None):
    base = F64_TOL if dtype_name(dtype) == "float64" else F32_TOL
    return dict(rtol=base["rtol"] if rtol is None else rtol,
                atol=base["atol"] if atol is None else atol)


def assert_same(t, k, what="output", rtol=None, atol=None, check_dtype=True):
    """Value, shape and dtype of a Kiln tensor against a torch tensor."""
    assert isinstance(k, kiln.Tensor), f"{what}: expected a Kiln Tensor, got {type(k).__name__}"
    assert tuple(k.shape) == tuple(t.shape), \
        f"{what}: shape {tuple(k.shape)} != torch's {tuple(t.shape)}"
    if check_dtype:
        assert dtype_name(k.dtype) == dtype_name(t.dtype), \
            f"{what}: dtype {dtype_name(k.dtype)} != torch's {dtype_name(t.dtype)}"
    a, b = to_numpy(k), to_numpy(t)
    if b.dtype.kind in "biu":
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        tol = tolerances(t.dtype, rtol, atol)
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), equal_nan=True,
                                   err_msg=what, **tol)


def _flatten_outputs(out):
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _flatten_outputs(x)]
    return [out]


def grad_fn_name(t):
    """``grad_fn.name()`` for Kiln and torch alike (torch's class name minus module)."""
    if t.grad_fn is None:
        return None
    return t.grad_fn.name()


# -- the harness ----------------------------------------------------------------------------
def helper_test_op(shapes, torch_fn, kiln_fn=None, *, vals=None, dtype="float32", low=-2.0,
                   high=2.0, rtol=None, atol=None, grad_rtol=None, grad_atol=None,
                   forward_only=False, requires_grad=None, layout="contiguous",
                   check_grad_fn=False, seed=0, reference64=False, gradcheck=False):
    """Run ``torch_fn`` on torch tensors and ``kiln_fn`` (default: the same lambda) on
    Kiln tensors built from identical data; compare outputs and every input gradient.

    ``shapes``: list of shapes for random inputs of ``dtype`` in [low, high); or
    ``vals``: list of explicit arrays / nested lists (their own dtypes).
    ``requires_grad``: per-input flags (default: every floating input, unless forward_only).
    ``reference64``: run torch in float64 on the same (float32) data and compare Kiln's
    float32 results with that exact reference (for cases where torch's own float32 rounding
    is the larger error); Kiln's float dtypes must still be the inputs' dtypes.
    ``gradcheck``: also run ``frontend.autograd.gradcheck`` on ``kiln_fn`` in float64 on the
    same values (finite differences; keep such inputs small and away from kinks).
    Returns the (torch, kiln) output pairs for extra checks.
    """
    kiln_fn = kiln_fn or torch_fn
    rng = np.random.default_rng(seed)
    if vals is None:
        vals = [random_array(s, dtype, low, high, rng) for s in shapes]
    arrays = [np.asarray(v) if not isinstance(v, np.ndarray) else v for v in vals]
    arrays = [a.astype(np.float32) if a.dtype == np.float64 and not isinstance(v, np.ndarray)
              else a for a, v in zip(arrays, vals)]  # Python floats -> default dtype
    if requires_grad is None:
        requires_grad = [not forward_only and a.dtype.kind == "f" for a in arrays]
    pairs = [make_pair(a, rg, layout) for a, rg in zip(arrays, requires_grad)]
    if reference64:
        pairs = [(t.detach().double().requires_grad_(t.requires_grad)
                  if t.is_floating_point() else t, k) for t, k in pairs]
    t_in = [p[0] for p in pairs]
    k_in = [p[1] for p in pairs]

    t_out = torch_fn(*t_in)
    k_out = kiln_fn(*k_in)
    t_outs, k_outs = _flatten_outputs(t_out), _flatten_outputs(k_out)
    assert len(t_outs) == len(k_outs), f"{len(k_outs)} outputs, torch has {len(t_outs)}"
    for i, (t, k) in enumerate(zip(t_outs, k_outs)):
        if isinstance(t, torch.Tensor):
            if reference64 and t.is_floating_point():
                assert dtype_name(k.dtype) == dtype_name(k_in[0].dtype), f"output {i}: dtype"
            assert_same(t, k, f"output {i}", rtol, atol, check_dtype=not reference64)
            assert k.requires_grad == t.requires_grad, \
                f"output {i}: requires_grad {k.requires_grad} != torch's {t.requires_grad}"
            if check_grad_fn:
                assert grad_fn_name(k) == (type(t.grad_fn).__name__ if t.grad_fn else None), \
                    f"output {i}: grad_fn {grad_fn_name(k)} != torch's {t.grad_fn}"
        else:
            assert k == t, f"output {i}: {k!r} != torch's {t!r}"

    if gradcheck:
        kiln_gradcheck(kiln_fn, vals=arrays, requires_grad=requires_grad)
    if forward_only or not any(requires_grad):
        return list(zip(t_outs, k_outs))
    diff = [(t, k) for t, k in zip(t_outs, k_outs)
            if isinstance(t, torch.Tensor) and t.requires_grad]
    if not diff:
        return list(zip(t_outs, k_outs))
    upstream = [rng.standard_normal(tuple(t.shape)).astype(to_numpy(k).dtype) for t, k in diff]
    torch.autograd.backward([t for t, _ in diff],
                            [torch.from_numpy(u).to(t.dtype) for u, (t, _) in zip(upstream, diff)])
    kiln_autograd.backward([k for _, k in diff], [kiln.tensor(u) for u in upstream])
    for i, (t, k) in enumerate(zip(t_in, k_in)):
        if not requires_grad[i]:
            continue
        if t.grad is None:
            assert k.grad is None or not np.any(to_numpy(k.grad)), \
                f"input {i}: Kiln has a gradient where torch has none"
            continue
        assert k.grad is not None, f"input {i}: no gradient (torch has one)"
        assert_same(t.grad, k.grad, f"grad of input {i}", grad_rtol or rtol, grad_atol or atol,
                    check_dtype=not reference64)
        assert k.grad.dtype == k.dtype, f"input {i}: grad dtype {k.grad.dtype} != {k.dtype}"
    return list(zip(t_outs, k_outs))


def kiln_gradcheck(fn, shapes=None, vals=None, low=-2.0, high=2.0, seed=0, atol=1e-5,
                   rtol=1e-3, requires_grad=None):
    """``frontend.autograd.gradcheck`` in float64 on random (or given) inputs."""
    rng = np.random.default_rng(seed)
    if vals is None:
        vals = [random_array(s, "float64", low, high, rng) for s in shapes]
    arrays = [np.array(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
              for v in vals]
    if requires_grad is None:
        requires_grad = [a.dtype.kind == "f" for a in arrays]
    inputs = [kiln.tensor(a, requires_grad=bool(rg)) for a, rg in zip(arrays, requires_grad)]
    assert kiln_autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=atol, rtol=rtol)
