"""The LLVM backend against the reference interpreter: every op alone and in chains,
fused and unfused, plus kernel counts that pin down what fusion does.

Graphs are built directly with ``Graph.add_input``/``add_op``; each case runs the same
random inputs through ``compiler.backends.interpreter.run`` (NumPy reference kernels)
and through ``compile_graph(..., backend="llvm")``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import dtypes as dt
from compiler.backends import interpreter
from compiler.backends.registry import compile_graph
from compiler.ir import Graph

F32, F64, I64, I32, B = dt.float32, dt.float64, dt.int64, dt.int32, dt.bool_
RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """A fresh kernel cache: tests must not depend on what an earlier run left on disk."""
    import os
    old = os.environ.get("KILN_CACHE_DIR")
    os.environ["KILN_CACHE_DIR"] = str(tmp_path_factory.mktemp("kiln-cache"))
    yield
    if old is None:
        os.environ.pop("KILN_CACHE_DIR", None)
    else:
        os.environ["KILN_CACHE_DIR"] = old


def random(shape, dtype, low=None, high=None):
    if dtype is B:
        return RNG.random(shape) < 0.5
    if dtype.category == dt.INT:
        return RNG.integers(-5 if low is None else low, 6 if high is None else high,
                            size=shape).astype(dtype.np)
    x = RNG.standard_normal(shape) * 2
    if low is not None:
        x = RNG.uniform(low, high, size=shape)
    return np.asarray(x, dtype.np)


def tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype in (F32,) else dict(rtol=1e-10, atol=1e-12)


def check(graph, inputs, fuse=(True, False), expect_kernels=None, tol=None):
    """Compile ``graph`` and compare every output with the interpreter; return executables.

    Long float32 sums (matmul) differ from NumPy's by rounding order: pass ``tol``."""
    want = interpreter.run(graph, inputs)
    out = []
    for f in fuse:
        exe = compile_graph(graph, backend="llvm", fuse=f)
        got = exe.run([np.array(x) for x in inputs])
        for g, w in zip(got, want):
            w = np.asarray(w)
            assert np.shape(g) == w.shape, (graph.name, f, np.shape(g), w.shape)
            assert np.asarray(g).dtype == w.dtype, (graph.name, f, np.asarray(g).dtype, w.dtype)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, equal_nan=True, err_msg=f"{graph.name} fuse={f}",
                                           **(tol or tolerance(dt.from_numpy(w.dtype))))
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"{graph.name} fuse={f}")
        if f is False:
            assert exe.num_kernels == len(graph.op_nodes()), (graph.name, exe.num_kernels)
        if expect_kernels is not None and f is True:
            assert exe.num_kernels == expect_kernels, (graph.name, [k.name for k in exe.kernels])
        assert not exe.opaque_kernels, (graph.name, exe.opaque_kernels)
        out.append(exe)
    return out


def one_op(op, specs, attrs=None, arrays=None, name=None):
    """Graph with inputs ``specs`` = [(shape, dtype)] and a single op; random inputs."""
    g = Graph(name or op)
    ids = [g.add_input(f"x{i}", shape, dtype) for i, (shape, dtype) in enumerate(specs)]
    g.set_outputs([g.add_op(op, ids, attrs or {})])
    if arrays is None:
        arrays = [random(shape, dtype) for shape, dtype in specs]
    return g, arrays


# -- elementwise ---------------------------------------------------------------------------
UNARY = [("neg", None), ("exp", None), ("log", (0.01, 5)), ("log1p", (-0.9, 5)),
         ("sqrt", (0, 9)), ("sin", None), ("cos", None), ("tanh", None), ("sigmoid", None),
         ("erf", None), ("abs", None), ("sign", None), ("relu", None), ("floor", None),
         ("trunc", None), ("stop_gradient", None), ("copy", None)]


@pytest.mark.parametrize("op,domain", UNARY)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_unary_float(op, domain, dtype):
    for shape in [(37,), (), (1,), (3, 1, 17)]:
        lo, hi = domain or (None, None)
        g, xs = one_op(op, [(shape, dtype)], arrays=[random(shape, dtype, lo, hi)])
        check(g, xs)


@pytest.mark.parametrize("op", ["neg", "abs", "sign", "relu", "copy", "floor"])
@pytest.mark.parametrize("dtype", [I64, I32])
def test_unary_int(op, dtype):
    g, xs = one_op(op, [((5, 7), dtype)])
    check(g, xs)


def test_unary_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0, 100.0,
                  -100.0, 1e-45, 3.4e38], np.float32)
    for op in ["exp", "tanh", "sigmoid", "erf", "abs", "sign", "relu", "sqrt", "log", "log1p"]:
        g, _ = one_op(op, [(x.shape, F32)])
        with np.errstate(all="ignore"):
            check(g, [x], fuse=(True,))


BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"]
SHAPES = [((37,), (37,)), ((3, 1, 5), (4, 5)), ((), (6,)), ((1,), ()), ((2, 3), (1, 1)),
          ((), ())]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("dtype", [F32, F64, I64])
def test_binary(op, dtype):
    for sa, sb in SHAPES:
        a, b = random(sa, dtype), random(sb, dtype)
        if op == "pow":
            if dtype.category == dt.INT:
                a, b = random(sa, dtype, 0, 4), random(sb, dtype, 0, 4)
            else:
                a = np.abs(a) + np.asarray(0.1, dtype.np)
        if op == "div" and dtype.category == dt.INT:
            b = np.where(b == 0, 3, b).astype(dtype.np)
        g, xs = one_op(op, [(sa, dtype), (sb, dtype)], arrays=[a, b])
        check(g, xs)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"])
@pytest.mark.parametrize("dtype", [F32, I64, B])
def test_compare_and_logical(op, dtype):
    a, b = random((4, 6), dtype), random((6,), dtype)
    if dtype is not B:
        b[:3] = a[0, :3]           # some ties
    g, xs = one_op(op, [((4, 6), dtype), ((6,), dtype)], arrays=[a, b])
    check(g, xs)


def test_logical_not_where_clamp():
    g, xs = one_op("logical_not", [((9,), B)])
    check(g, xs)
    g, xs = one_op("logical_not", [((9,), F32)])
    check(g, xs)
    g, xs = one_op("where", [((3, 1), B), ((4,), F32), ((3, 4), F32)])
    check(g, xs)
    g, xs = one_op("where", [((), B), ((2, 2), I64), ((), I64)])
    check(g, xs)
    for lo, hi in [(-0.5, 0.5), (None, 1.0), (0.0, None)]:
        g, xs = one_op("clamp", [((5, 5), F32)], {"lo": lo, "hi": hi})
        check(g, xs)
    g, xs = one_op("clamp", [((7,), I64)], {"lo": -2, "hi": 3})
    check(g, xs)


CASTS = [(F32, I64), (I64, F32), (F32, B), (B, F32), (F64, F32), (F32, F64), (I64, I32),
         (I32, I64), (B, I64), (I64, B), (F64, I32)]


@pytest.mark.parametrize("src,dst", CASTS)
def test_cast(src, dst):
    g, xs = one_op("cast", [((3, 5), src)], {"dtype": dst})
    check(g, xs)


# -- reductions ----------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("dtype", [F32, F64, I64])
def test_reduce(op, dtype):
    if op == "mean" and dtype is I64:
        pytest.skip("mean of integers is not a frontend operation")
    for shape, axes in [((5, 37), (1,)), ((5, 37), (0,)), ((4, 3, 6), (0, 2)), ((4, 3, 6), (0, 1, 2)),
                        ((7,), (0,)), ((3, 1), (1,)), ((2, 3, 4), (1,))]:
        for keepdim in (True, False):
            g, xs = one_op(op, [(shape, dtype)], {"axes": axes, "keepdim": keepdim})
            check(g, xs)


def test_reduce_bool_and_empty():
    g, xs = one_op("sum", [((4, 5), B)], {"axes": (1,), "keepdim": False})
    check(g, xs)
    g, xs = one_op("sum", [((3, 0), F32)], {"axes": (1,), "keepdim": True})
    check(g, xs)
    x = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 0.0]], np.float32)
    for op in ("amax", "amin"):
        g, _ = one_op(op, [((2, 3), F32)], {"axes": (1,), "keepdim": False})
        check(g, [x])


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reduce(op):
    for shape, axis in [((5, 37), 1), ((5, 37), 0), ((4, 3, 6), None), ((4, 3, 6), 1), ((8,), 0),
                        ((), None), ((3, 1), 1)]:
        for keepdim in (True, False):
            for dtype in (F32, I64):
                x = random(shape, dtype)
                if dtype is I64 and x.size:
                    x = x % 3              # many ties: the first one must win
                g, xs = one_op(op, [(shape, dtype)], {"axis": axis, "keepdim": keepdim},
                               arrays=[x])
                check(g, xs)
    x = np.array([[1.0, np.nan, 5.0, np.nan], [2.0, 2.0, 1.0, 0.0]], np.float32)
    g, _ = one_op(op, [((2, 4), F32)], {"axis": 1, "keepdim": False})
    check(g, [x])


# -- movement ------------------------------------------------------------------------------
def test_reshape_permute_expand():
    g, xs = one_op("reshape", [((4, 6), F32)], {"shape": (2, 3, 4)})
    check(g, xs)
    g, xs = one_op("permute", [((2, 3, 4), F32)], {"perm": (2, 0, 1)})
    check(g, xs)
    g, xs = one_op("expand", [((3, 1), F32)], {"shape": (2, 3, 5)})
    check(g, xs)
    g, xs = one_op("expand", [((), I64)], {"shape": (4,)})
    check(g, xs)


def test_cat_and_pad():
    g = Graph("cat")
    a, b, c = (g.add_input(n, s, F32) for n, s in (("a", (2, 3)), ("b", (2, 1)), ("c", (2, 4))))
    g.set_outputs([g.add_op("cat", [a, b, c], {"axis": 1})])
    check(g, [random((2, 3), F32), random((2, 1), F32), random((2, 4), F32)])
    g, xs = one_op("cat", [((3, 2), I64), ((1, 2), I64)], {"axis": 0})
    check(g, xs)
    g, xs = one_op("pad", [((3, 4), F32)], {"pads": ((1, 2), (0, 3)), "value": -1.5})
    check(g, xs)
    g, xs = one_op("pad", [((2, 2, 2), I64)], {"pads": ((0, 0), (2, 0), (1, 1)), "value": 7})
    check(g, xs)


BASIC_SPECS = [
    (("int", 1),),
    (("slice", 1, None, 2),),
    (("slice", None, None, -1), ("int", -1)),
    (("none",), ("slice", 2, 5, 1), ("none",)),
    (("slice", None, None, 1), ("slice", 4, 0, -2)),
]


@pytest.mark.parametrize("spec", BASIC_SPECS)
def test_basic_index_and_adjoints(spec):
    shape = (6, 7)
    g, xs = one_op("index", [(shape, F32)], {"spec": spec})
    check(g, xs)
    out_shape = g.nodes[g.outputs[0]]["shape"]
    g, xs = one_op("index_backward", [(out_shape, F32)], {"spec": spec, "shape": shape})
    check(g, xs)
    g, xs = one_op("index_put", [(shape, F32), (out_shape[-1:] if out_shape else (), F32)],
                   {"spec": spec})
    check(g, xs)


def test_advanced_index_gather_scatter():
    idx = np.array([3, 0, -1, 3], np.int64)
    g, _ = one_op("index", [((5, 4), F32), ((4,), I64)], {"spec": (("tensor",),)})
    check(g, [random((5, 4), F32), idx])
    g, _ = one_op("index", [((3, 5, 4), F32), ((2, 1), I64)],
                  {"spec": (("slice", None, None, 1), ("tensor",))})
    check(g, [random((3, 5, 4), F32), np.array([[1], [4]], np.int64)])
    g, _ = one_op("index", [((5, 6), F32), ((3,), I64), ((3,), I64)],
                  {"spec": (("tensor",), ("tensor",))})
    check(g, [random((5, 6), F32), np.array([0, 4, 2]), np.array([5, 0, 1])])
    # index tensors separated by a slice: their dims go first
    g, _ = one_op("index", [((4, 3, 5), F32), ((2,), I64), ((2,), I64)],
                  {"spec": (("tensor",), ("slice", None, None, 1), ("tensor",))})
    check(g, [random((4, 3, 5), F32), np.array([0, 3]), np.array([4, 1])])
    # adjoints with repeated indices accumulate
    g, _ = one_op("index_backward", [((4, 3), F32), ((4,), I64)],
                  {"spec": (("tensor",),), "shape": (5, 3)})
    check(g, [random((4, 3), F32), idx])
    g, _ = one_op("index_put", [((5, 3), F32), ((3,), F32), ((2,), I64)], {"spec": (("tensor",),)})
    check(g, [random((5, 3), F32), random((3,), F32), np.array([4, 1])])
    x, i = random((4, 6), F32), RNG.integers(0, 6, size=(4, 2))
    g, _ = one_op("gather", [((4, 6), F32), ((4, 2), I64)], {"axis": 1})
    check(g, [x, i])
    for n in (1, 20):   # small index axis: unrolled; large: the scatter kernel
        g, _ = one_op("scatter_add", [((3, n), F32), ((3, n), I64)], {"axis": 1, "shape": (3, 6)})
        check(g, [random((3, n), F32), RNG.integers(0, 6, size=(3, n))])


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    ((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1)),
    ((3, 2), (2, 1), ((1, 1), (0, 2)), (1, 2)),
])
def test_unfold_fold(kernel, stride, padding, dilation):
    x_shape = (2, 3, 7, 8)
    attrs = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation)
    g, xs = one_op("unfold", [(x_shape, F32)], dict(attrs, pad_value=0.0))
    check(g, xs)
    cols = g.nodes[g.outputs[0]]["shape"]
    g, xs = one_op("fold", [(cols, F32)], dict(attrs, shape=x_shape))
    check(g, xs)


# -- matmul --------------------------------------------------------------------------------
def matmul_tol(k):
    """float32 dot products of length k with O(1) terms: rounding grows like sqrt(k)."""
    return dict(rtol=1e-5, atol=2e-6 * k)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (37, 53, 71), (8, 48, 256), (130, 97, 600),
                                   (5, 300, 3)])
def test_matmul_sizes(m, n, k):
    g, xs = one_op("matmul", [((m, k), F32), ((k, n), F32)])
    check(g, xs, tol=matmul_tol(k))


def test_matmul_batched_transposed_and_dtypes():
    g, xs = one_op("matmul", [((3, 9, 5), F32), ((5, 7), F32)])
    check(g, xs)
    g, xs = one_op("matmul", [((2, 1, 9, 5), F64), ((3, 5, 7), F64)])
    check(g, xs)
    g, xs = one_op("matmul", [((4, 6), I64), ((6, 3), I64)])
    check(g, xs)
    # transposed operands: permute nodes fold into the operand addressing
    g = Graph("mm_t")
    a, b = g.add_input("a", (40, 30), F32), g.add_input("b", (20, 40), F32)
    at = g.add_op("permute", [a], {"perm": (1, 0)})
    bt = g.add_op("permute", [b], {"perm": (1, 0)})
    g.set_outputs([g.add_op("matmul", [at, bt])])
    check(g, [random((40, 30), F32), random((20, 40), F32)], expect_kernels=1)


def test_matmul_epilogue_and_prologue():
    """x @ W.T + b then ReLU: one kernel; the ReLU-backward mask feeds a matmul inline."""
    g = Graph("linear_relu")
    x, w, b = g.add_input("x", (33, 20), F32), g.add_input("w", (17, 20), F32), g.add_input("b", (17,), F32)
    y = g.add_op("matmul", [x, g.add_op("permute", [w], {"perm": (1, 0)})])
    g.set_outputs([g.add_op("relu", [g.add_op("add", [y, b])])])
    check(g, [random((33, 20), F32), random((17, 20), F32), random((17,), F32)], expect_kernels=1)
    g = Graph("masked")
    out, gr, w = g.add_input("out", (33, 17), F32), g.add_input("g", (33, 17), F32), g.add_input("w", (17, 20), F32)
    zero = g.add_const(np.array(0, np.float32))
    mask = g.add_op("where", [g.add_op("gt", [out, zero]), gr, zero])
    g.set_outputs([g.add_op("matmul", [mask, w])])
    check(g, [random((33, 17), F32), random((33, 17), F32), random((17, 20), F32)], expect_kernels=1)


def test_matmul_deep_k_uses_partial_sums():
    g, xs = one_op("matmul", [((20, 700), F32), ((700, 50), F32)])
    check(g, xs, tol=matmul_tol(700))
    g = Graph("deep_epilogue")
    a, b, c = g.add_input("a", (9, 1000), F32), g.add_input("b", (1000, 30), F32), g.add_input("c", (30,), F32)
    g.set_outputs([g.add_op("tanh", [g.add_op("add", [g.add_op("matmul", [a, b]), c])])])
    check(g, [random((9, 1000), F32) * 0.05, random((1000, 30), F32) * 0.05, random((30,), F32)])
