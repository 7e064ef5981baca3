"""``frontend.printing.format_tensor`` must reproduce ``repr(torch.Tensor)`` exactly.

torch is only the oracle: every case builds a torch tensor, and we check that
formatting its numpy data gives the same string -- exactly when we print the
dtype as ``torch.*``, and modulo suffix line breaks with our ``kiln.*`` prefix
(see ``check``).
"""

import math
import re

import numpy as np
import pytest
import torch

from frontend import printing
from frontend.printing import format_tensor, set_printoptions

DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.bool: "bool",
}


def _grad_suffixes(t):
    if t.grad_fn is not None:
        return [f"grad_fn=<{type(t.grad_fn).__name__}>"]
    if t.requires_grad:
        return ["requires_grad=True"]
    return []


def _format_like(t, prefix, default_dtype_name):
    old, printing.DTYPE_PREFIX = printing.DTYPE_PREFIX, prefix
    try:
        return format_tensor(
            t.detach().numpy(),
            DTYPES[t.dtype],
            suffixes=_grad_suffixes(t),
            default_dtype_name=default_dtype_name,
        )
    finally:
        printing.DTYPE_PREFIX = old


def _unwrap_suffixes(text):
    """Join suffixes that were moved to their own line back onto the previous one."""
    return re.sub(r",\n {7}(?=[a-z_]+=)", ", ", text)


def check(t, default_dtype_name="float32"):
    """Exact match with torch, then the same text (modulo suffix wrapping) for kiln.

    ``dtype=kiln.float64`` is one character shorter than ``dtype=torch.float64``,
    which legitimately moves the suffix line break in rare cases; so the exact
    comparison is done with torch's prefix, and the kiln rendering is compared
    with suffix line breaks removed.
    """
    expected = repr(t)
    got = _format_like(t, "torch.", default_dtype_name)
    assert got == expected, f"\nexpected:\n{expected}\ngot:\n{got}"
    kiln = _format_like(t, printing.DTYPE_PREFIX, default_dtype_name)
    assert _unwrap_suffixes(kiln) == _unwrap_suffixes(
        expected.replace("dtype=torch.", "dtype=" + printing.DTYPE_PREFIX)
    )


@pytest.fixture(autouse=True)
def _reset_printoptions():
    """Both printers share global state; never leak it between tests."""
    yield
    torch.set_printoptions(profile="default")
    set_printoptions(profile="default")


def _rng(seed):
    return np.random.default_rng(seed)


SHAPES = [(), (0,), (0, 3), (3, 0, 2), (1,), (5,), (3, 4), (2, 3, 4), (2, 2, 2, 2),
          (1, 1, 1), (40,), (7, 13), (2000,), (50, 50), (10, 10, 11), (3, 400),
          (1001,), (1000,), (4, 3, 100)]
MAGNITUDES = [1e-12, 1e-5, 1e-4, 1e-3, 0.1, 1.0, 10.0, 123.0, 999.0, 1e4, 1e7, 1e8,
              1e9, 1e20, 1e30]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", MAGNITUDES)
def test_random_floats(shape, dtype, scale):
    data = _rng(hash((shape, scale)) % 2**32).standard_normal(shape) * scale
    check(torch.tensor(data, dtype=dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("high", [2, 10, 1000, 100000, 10**9])
def test_integer_valued_floats(shape, dtype, high):
    data = _rng(high).integers(-high, high, size=shape)
    check(torch.tensor(data, dtype=dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("high", [1, 10, 1000, 2**31 - 1])
def test_integers(shape, dtype, high):
    data = _rng(high).integers(-high, high, size=shape, endpoint=True)
    check(torch.tensor(data, dtype=dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_bools(shape, p):
    check(torch.tensor(_rng(7).random(shape) < p))


SPECIAL_VALUES = [
    [1.0, float("nan")],
    [float("nan"), float("inf"), -float("inf")],
    [1.5, float("inf"), -2.25],
    [1e-8, float("nan"), 3.0],
    [1e10, float("-inf"), 0.0],
    [0.0, -0.0],
    [-0.0, 1.5],
    [-0.0, 2.0, -3.0],
    [0.0, 0.0, 0.0],
    [1e-4, 0.1],
    [9.99999e-5, 0.1],
    [0.001, 1.0],
    [0.001, 1.0001],
    [1e8, 1.0],
    [1e8, 1e6],
    [100000001.0, 1e6],
    [0.5, 0.25, 0.125],
    [1 / 3, 2 / 3, -1.0],
    [123456.789, -0.5],
    [99999.99999],
    [0.99999],
    [-0.00005],
    [1e300, 1e-300],
    [3.4e38, -3.4e38, 1e-38],
    [2.0**60],
    [float("nan")],
    [-float("inf")],
]


@pytest.mark.parametrize("values", SPECIAL_VALUES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["vector", "scalar", "matrix"])
def test_special_values(values, dtype, layout):
    if dtype == torch.float32 and any(abs(v) > 3.5e38 for v in values if math.isfinite(v)):
        pytest.skip("not representable in float32")
    t = torch.tensor(values, dtype=dtype)
    if layout == "scalar":
        for v in t:
            check(v.clone())
    elif layout == "matrix":
        check(t.repeat(3, 1) * torch.tensor([[1.0], [-1.0], [10.0]], dtype=dtype))
    else:
        check(t)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (20,), (0,), (0, 2)], ids=str)
def test_requires_grad_and_grad_fn(shape):
    leaf = torch.tensor(_rng(1).standard_normal(shape), dtype=torch.float32,
                        requires_grad=True)
    check(leaf)
    check(leaf * 2)
    check((leaf + 1).sum())
    check(torch.tensor(_rng(2).standard_normal(shape), requires_grad=True))


def test_suffix_wraps_to_new_line():
    # the row fills the line, so the suffix must go on its own line
    t = torch.tensor([1.2345678] * 9, requires_grad=True)
    check(t)
    check(t.double())
    check(torch.arange(6.0).reshape(2, 3).double().requires_grad_())
    # arbitrary suffixes, checked against torch's own suffix wrapper
    for n in range(0, 80, 3):
        suffixes = ["grad_fn=<" + "X" * n + ">", "requires_grad=True", "a" * (n // 2)]
        for values in ([1.0, 2.0], [[1.5] * 8] * 2):
            body = repr(torch.tensor(values))[: -1]
            expected = torch._tensor_str._add_suffixes(body, suffixes, 7, False)
            got = format_tensor(np.array(values), "float32", suffixes=suffixes)
            assert got == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32])
def test_default_dtype_float64(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for shape in [(3,), (0,), (2, 0), ()]:
            check(torch.ones(shape, dtype=dtype), default_dtype_name="float64")
    finally:
        torch.set_default_dtype(old)


def test_kiln_prefix_wraps_by_its_own_length():
    # "dtype=torch.float64" overflows the 80 columns here, "dtype=kiln.float64" fits
    values = np.full(2000, 1e-7)
    values[-3:] = [-7.68725861e-07, 1.14664009e-07, -8.98296586e-07]
    t = torch.tensor(values)
    torch.set_printoptions(precision=8)
    set_printoptions(precision=8)
    assert repr(t).endswith("e-07],\n       dtype=torch.float64)")
    assert format_tensor(values, "float64").endswith("e-07], dtype=kiln.float64)")
    check(t)


def test_empty_int_and_bool_show_dtype():
    check(torch.tensor([], dtype=torch.int64))
    check(torch.zeros((0, 3), dtype=torch.bool))
    assert format_tensor(np.zeros((0, 3), np.float32), "float32") == "tensor([], size=(0, 3))"
    assert format_tensor(np.zeros(0), "float32") == "tensor([])"


def test_readme_examples():
    assert format_tensor(np.array([1.0, 2.0]), "float32",
                         suffixes=["requires_grad=True"]) == \
        "tensor([1., 2.], requires_grad=True)"
    assert format_tensor(np.array([True, False]), "bool") == "tensor([ True, False])"
    assert format_tensor(np.array(3.5), "float64") == "tensor(3.5000, dtype=kiln.float64)"


OPTIONS = [
    dict(precision=2),
    dict(precision=8),
    dict(precision=0),
    dict(threshold=5),
    dict(threshold=5, edgeitems=1),
    dict(threshold=5, edgeitems=0),
    dict(edgeitems=0),
    dict(linewidth=40),
    dict(linewidth=200),
    dict(linewidth=5),
    dict(sci_mode=True),
    dict(sci_mode=False),
    dict(profile="short"),
    dict(profile="full"),
    dict(profile="full", precision=6, sci_mode=True),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
@pytest.mark.parametrize("shape", [(), (7,), (2000,), (4, 9), (50, 50), (3, 4, 5)], ids=str)
@pytest.mark.parametrize("kind", ["float", "intfloat", "tiny", "int", "bool"])
def test_printoptions(opts, shape, kind):
    rng = _rng(3)
    data = {
        "float": lambda: torch.tensor(rng.standard_normal(shape) * 50, dtype=torch.float32),
        "intfloat": lambda: torch.tensor(rng.integers(-99, 99, shape), dtype=torch.float64),
        "tiny": lambda: torch.tensor(rng.standard_normal(shape) * 1e-6),
        "int": lambda: torch.tensor(rng.integers(-5000, 5000, shape), dtype=torch.int32),
        "bool": lambda: torch.tensor(rng.random(shape) < 0.5),
    }[kind]()
    torch.set_printoptions(**opts)
    set_printoptions(**opts)
    check(data)


def test_printoptions_context_manager_restores():
    before = printing.get_printoptions()
    with printing.printoptions(precision=1, sci_mode=True):
        assert format_tensor(np.array([1.25]), "float32") == "tensor([1.2e+00])"
    assert printing.get_printoptions() == before


def test_set_printoptions_semantics_match_torch():
    # None keeps the old value, except sci_mode, which is always overwritten
    torch.set_printoptions(precision=2, sci_mode=True)
    set_printoptions(precision=2, sci_mode=True)
    torch.set_printoptions(linewidth=100)
    set_printoptions(linewidth=100)
    assert printing.get_printoptions() == torch._tensor_str.get_printoptions()
