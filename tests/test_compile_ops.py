"""The op table of test_ops.py, compiled: every case traced, compiled (fused and unfused,
on every backend) and compared with eager Kiln for the output and every input gradient.

The second call of each compiled function is the one checked: the first call traces
(and returns eager results); the second runs the compiled forward and backward graphs.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import frontend as kiln
from test_compile import BACKENDS
from test_ops import CASES


def _inputs(case):
    arrays = case.arrays(np.float32)
    tensors = []
    for a in arrays:
        t = kiln.from_numpy(np.array(a, copy=True))
        if case.grad and t.dtype.is_floating_point:
            t.requires_grad_(True)
        tensors.append(t)
    return tensors


def _outputs(out):
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _outputs(x)]
    return [out] if isinstance(out, kiln.Tensor) else []


def _run(fn, tensors):
    for t in tensors:
        t.grad = None
    outs = _outputs(fn(*tensors))
    diff = [o for o in outs if o.requires_grad]
    if diff:
        rng = np.random.default_rng(7)
        grads = [kiln.from_numpy(rng.standard_normal(o.shape).astype(o.dtype.np)) for o in diff]
        kiln.autograd.backward(diff, grads)
    return ([o.detach().numpy().copy() for o in outs],
            [None if t.grad is None else t.grad.numpy().copy() for t in tensors])


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_compiled_op_matches_eager(case, backend, fuse):
    eager_fn = functools.partial(case.fn, kiln)
    compiled = kiln.compile(eager_fn, backend=backend, fuse=fuse)
    want_out, want_grads = _run(eager_fn, _inputs(case))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data-dependent cases (bool masks) fall back to eager
        tensors = _inputs(case)
        _run(compiled, tensors)
        got_out, got_grads = _run(compiled, tensors)
    tol = dict(rtol=case.rtol or 1e-4, atol=case.atol or 1e-5)
    assert len(got_out) == len(want_out)
    for got, want in zip(got_out, want_out):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tol)
    for got, want in zip(got_grads, want_grads):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got, want, **tol)
