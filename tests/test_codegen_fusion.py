"""Fusion, memory planning and the debug hooks of the LLVM backend, on the graphs the
workloads produce: W1, softmax, LayerNorm, an MLP and a LeNet forward, and backward
graphs from the autodiff pass. Kernel counts pin down what fuses (tinygrad style)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import dtypes as dt
from compiler.autodiff import add_backward, partition
from compiler.backends import interpreter
from compiler.backends.registry import compile_graph
from compiler.ir import Graph
from runtime.threads import get_num_threads, set_num_threads

F32 = dt.float32
RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    import os
    old = os.environ.get("KILN_CACHE_DIR")
    os.environ["KILN_CACHE_DIR"] = str(tmp_path_factory.mktemp("kiln-cache"))
    yield
    if old is None:
        os.environ.pop("KILN_CACHE_DIR", None)
    else:
        os.environ["KILN_CACHE_DIR"] = old


class Builder:
    """Frontend-style composites written with graph nodes (as the tracer records them)."""

    def __init__(self, name):
        self.g = Graph(name)

    def input(self, name, shape, dtype=F32):
        return self.g.add_input(name, shape, dtype)

    def const(self, v, dtype=F32):
        return self.g.add_const(np.asarray(v, dtype.np))

    def __getattr__(self, op):
        return lambda *args, **attrs: self.g.add_op(op, list(args), attrs)

    def shape(self, n):
        return self.g.nodes[n]["shape"]

    def softmax(self, x, axis):
        m = self.amax(x, axes=(axis,), keepdim=True)
        finite = self.where(self.eq(m, self.const(-np.inf)), self.const(0.0), m)
        e = self.exp(self.sub(x, finite))
        return self.div(e, self.sum(e, axes=(axis,), keepdim=True))

    def layer_norm(self, x, eps=1e-5):
        axes = (len(self.shape(x)) - 1,)
        mean = self.mean(x, axes=axes, keepdim=True)
        c = self.sub(x, mean)
        var = self.mean(self.mul(c, c), axes=axes, keepdim=True)
        inv = self.div(self.const(1.0), self.sqrt(self.add(var, self.const(eps))))
        return self.mul(c, inv)

    def linear(self, x, w, b):
        return self.add(self.matmul(x, self.permute(w, perm=(1, 0))), b)

    def conv2d(self, x, w, b):
        n, c = self.shape(x)[:2]
        o, _, kh, kw = self.shape(w)
        cols = self.unfold(x, kernel=(kh, kw), stride=(1, 1), padding=((0, 0), (0, 0)),
                           dilation=(1, 1), pad_value=0.0)
        out_sp = self.shape(cols)[4:]
        cols = self.reshape(cols, shape=(n, 1, c * kh * kw, math.prod(out_sp)))
        wm = self.reshape(w, shape=(1, o, c * kh * kw))
        y = self.reshape(self.matmul(wm, cols), shape=(n, o) + tuple(out_sp))
        return self.add(y, self.reshape(b, shape=(o, 1, 1)))

    def max_pool2d(self, x, k):
        n, c, h, w = self.shape(x)
        win = self.unfold(x, kernel=(k, k), stride=(k, k), padding=((0, 0), (0, 0)),
                          dilation=(1, 1), pad_value=float("-inf"))
        out = self.shape(win)[4:]
        win = self.reshape(win, shape=(n, c, k * k, math.prod(out)))
        arg = self.argmax(win, axis=2, keepdim=True)
        return self.reshape(self.gather(win, arg, axis=2), shape=(n, c) + tuple(out))


def run_both(g, inputs, tol=dict(rtol=2e-5, atol=2e-5)):
    want = interpreter.run(g, inputs)
    exes = {}
    for fuse in (True, False):
        exe = compile_graph(g, backend="llvm", fuse=fuse)
        got = exe.run(inputs)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, err_msg=f"{g.name} fuse={fuse}", **tol)
        assert not exe.opaque_kernels, exe.opaque_kernels
        exes[fuse] = exe
    assert exes[False].num_kernels == len(g.op_nodes())
    return exes[True], exes[False]


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def test_w1_one_kernel_fused_one_per_op_unfused():
    b = Builder("w1")
    x, a, c = b.input("x", (1000,)), b.input("a", (1000,)), b.input("b", (1000,))
    b.g.set_outputs([b.add(b.mul(b.mul(x, b.sigmoid(x)), a), c)])
    fused, unfused = run_both(b.g, [rand(1000), rand(1000), rand(1000)])
    assert fused.num_kernels == 1
    assert fused.kernels[0].name.startswith("fused_")
    assert "sigmoid" in fused.kernels[0].name
    assert unfused.num_kernels == 4


def test_softmax_and_layernorm_are_single_kernels():
    for shape, axis in [((64, 300), 1), ((5, 6, 7), 1), ((33,), 0)]:
        b = Builder("softmax")
        x = b.input("x", shape)
        b.g.set_outputs([b.softmax(x, axis)])
        fused, _ = run_both(b.g, [rand(*shape, scale=3)])
        assert fused.num_kernels <= 2
    b = Builder("w2")
    x = b.input("x", (40, 1024))
    b.g.set_outputs([b.layer_norm(b.softmax(x, 1))])
    fused, unfused = run_both(b.g, [rand(40, 1024)], tol=dict(rtol=1e-4, atol=1e-4))
    assert fused.num_kernels == 1
    assert unfused.num_kernels > 10


def test_mlp_forward_has_no_more_kernels_than_matmuls():
    b = Builder("mlp")
    x = b.input("x", (16, 784))
    params = []
    h = x
    for i, (fi, fo) in enumerate([(784, 512), (512, 512), (512, 10)]):
        w, bias = b.input(f"w{i}", (fo, fi)), b.input(f"b{i}", (fo,))
        params += [rand(fo, fi, scale=0.05), rand(fo)]
        h = b.linear(h, w, bias)
        if i < 2:
            h = b.relu(h)
    b.g.set_outputs([h])
    fused, _ = run_both(b.g, [rand(16, 784)] + params, tol=dict(rtol=1e-4, atol=1e-4))
    assert fused.num_kernels <= 3
    assert all(k.name.startswith("matmul") for k in fused.kernels)


def lenet_forward(batch=4):
    b = Builder("lenet")
    x = b.input("x", (batch, 1, 32, 32))
    shapes = {"c1w": (6, 1, 5, 5), "c1b": (6,), "c2w": (16, 6, 5, 5), "c2b": (16,),
              "f1w": (120, 400), "f1b": (120,), "f2w": (84, 120), "f2b": (84,),
              "f3w": (10, 84), "f3b": (10,)}
    p = {k: b.input(k, s) for k, s in shapes.items()}
    h = b.max_pool2d(b.relu(b.conv2d(x, p["c1w"], p["c1b"])), 2)
    h = b.max_pool2d(b.relu(b.conv2d(h, p["c2w"], p["c2b"])), 2)
    h = b.reshape(h, shape=(batch, 400))
    h = b.relu(b.linear(h, p["f1w"], p["f1b"]))
    h = b.relu(b.linear(h, p["f2w"], p["f2b"]))
    b.g.set_outputs([b.linear(h, p["f3w"], p["f3b"])])
    values = [rand(batch, 1, 32, 32)] + [rand(*s, scale=0.2) for s in shapes.values()]
    return b.g, values


def test_lenet_forward_convolutions_read_windows_in_place():
    g, values = lenet_forward()
    fused, _ = run_both(g, values, tol=dict(rtol=1e-4, atol=1e-4))
    # conv+bias+relu, pool, conv+bias+relu, pool, three linear layers
    assert fused.num_kernels == 7, [k.name for k in fused.kernels]
    matmuls = [k for k in fused.kernel_ir if type(k).__name__ == "MatmulKernel"]
    assert len(matmuls) == 5


def backward_graph(g, wrt_names):
    """Forward + backward of sum(outputs[0]) w.r.t. the named inputs, partitioned."""
    out = g.outputs[0]
    wrt = [i for i in g.inputs if g.nodes[i]["attrs"]["name"] in wrt_names]
    grad_inputs, grads = add_backward(g, [out], wrt)
    return partition(g, [out], grad_inputs, grads)


def test_backward_graphs_compile_without_opaque_kernels():
    g, values = lenet_forward(batch=2)
    names = [g.nodes[i]["attrs"]["name"] for i in g.inputs]
    part = backward_graph(g, names)
    fwd_in = values
    want_fwd = interpreter.run(part.forward, fwd_in)
    fused_f, _ = run_both(part.forward, fwd_in, tol=dict(rtol=1e-4, atol=1e-4))
    saved = want_fwd[part.num_user_outputs:]
    grad_out = [rand(*g.nodes[g.outputs[0]]["shape"])]
    fused_b, _ = run_both(part.backward, saved + grad_out, tol=dict(rtol=1e-3, atol=1e-3))
    assert fused_b.num_kernels <= 0.4 * len(part.backward.op_nodes())
    names = [k.name for k in fused_b.kernels]
    assert not any(n.startswith("permute") for n in names), names   # transposes fused


def test_mlp_training_graph_matches_and_fuses():
    b = Builder("mlp_step")
    x = b.input("x", (32, 50))
    w1, b1, w2, b2 = b.input("w1", (40, 50)), b.input("b1", (40,)), b.input("w2", (10, 40)), b.input("b2", (10,))
    h = b.relu(b.linear(x, w1, b1))
    y = b.linear(h, w2, b2)
    b.g.set_outputs([b.sum(b.mul(y, y), axes=(0, 1), keepdim=False)])
    part = backward_graph(b.g, ["w1", "b1", "w2", "b2"])
    vals = [rand(32, 50), rand(40, 50, scale=0.1), rand(40), rand(10, 40, scale=0.1), rand(10)]
    fwd = interpreter.run(part.forward, vals)
    run_both(part.forward, vals, tol=dict(rtol=1e-4, atol=1e-4))
    bwd_inputs = fwd[part.num_user_outputs:] + [np.ones((), np.float32)]
    fused, unfused = run_both(part.backward, bwd_inputs, tol=dict(rtol=1e-4, atol=1e-3))
    assert fused.num_kernels < unfused.num_kernels


def test_results_do_not_depend_on_thread_count():
    b = Builder("threads")
    x, w = b.input("x", (300, 200)), b.input("w", (200, 300))
    b.g.set_outputs([b.softmax(b.matmul(x, w), 1), b.sum(x, axes=(0,), keepdim=False)])
    vals = [rand(300, 200), rand(200, 300, scale=0.1)]
    exe = compile_graph(b.g, backend="llvm")
    old = get_num_threads()
    try:
        set_num_threads(1)
        one = exe.run(vals)
        set_num_threads(2)
        two = exe.run(vals)
    finally:
        set_num_threads(old)
    for a, c in zip(one, two):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7)


def test_memory_plan_reuses_dead_intermediates():
    b = Builder("chain")
    x = b.input("x", (4096,))
    h = x
    for _ in range(8):
        h = b.exp(b.neg(h))
    b.g.set_outputs([h])
    exe = compile_graph(b.g, backend="llvm", fuse=False)
    x = rand(4096)
    np.testing.assert_allclose(exe.run([x])[0], interpreter.run(b.g, [x])[0], rtol=1e-5)
    assert exe.memory.naive_bytes >= 14 * 4096 * 4
    assert exe.memory.arena_bytes <= 2 * 4096 * 4


def test_capture_returns_every_kernel_output():
    b = Builder("capture")
    x = b.input("x", (8, 16))
    s = b.softmax(x, 1)
    b.g.set_outputs([b.mul(s, s)])
    exe = compile_graph(b.g, backend="llvm", fuse=False)
    vals = [rand(8, 16)]
    out, produced = exe.run(vals, capture=True)
    for k in exe.kernels:
        for n in k.outputs:
            assert n in produced
    np.testing.assert_allclose(out[0], interpreter.run(b.g, vals)[0], rtol=1e-5, atol=1e-6)


def test_debug_levels_report_kernels_fusion_and_ir(monkeypatch, capfd):
    b = Builder("debugged")
    x, w = b.input("x", (4, 5)), b.input("w", (5, 3))
    b.g.set_outputs([b.sum(b.exp(b.matmul(x, w)), axes=(1,), keepdim=False)])
    monkeypatch.setenv("KILN_DEBUG", "4")
    exe = compile_graph(b.g, backend="llvm")
    exe.run([rand(4, 5), rand(5, 3)])
    err = capfd.readouterr().err
    assert "refused:" in err and "a matmul kernel cannot also hold a reduction" in err
    assert "define i64 @matmul" in err and "; kernel matmul_exp_0" in err
    assert "GFLOP/s" in err and "GB/s" in err


def test_inputs_are_checked():
    b = Builder("checked")
    x = b.input("x", (3, 4))
    b.g.set_outputs([b.neg(x)])
    exe = compile_graph(b.g, backend="llvm")
    with pytest.raises(ValueError, match="shape"):
        exe.run([np.zeros((4, 3), np.float32)])
    np.testing.assert_array_equal(exe.run([np.ones((3, 4))])[0], -np.ones((3, 4), np.float32))


def test_column_reductions_vectorise_across_columns():
    """Batch-norm style statistics over the batch axis: accumulators per column."""
    b = Builder("bn_stats")
    x = b.input("x", (96, 40))
    mean = b.mean(x, axes=(0,), keepdim=True)
    c = b.sub(x, mean)
    var = b.mean(b.mul(c, c), axes=(0,), keepdim=True)
    b.g.set_outputs([b.reshape(mean, shape=(40,)), b.reshape(var, shape=(40,)),
                     b.sum(b.relu(x), axes=(0,), keepdim=False)])
    fused, _ = run_both(b.g, [rand(96, 40)])
    assert any("column loops" in k.source for k in fused.kernels)
    b = Builder("conv_bias_grad")
    g = b.input("g", (8, 6, 10, 10))
    b.g.set_outputs([b.sum(g, axes=(0, 2, 3), keepdim=False)])
    run_both(b.g, [rand(8, 6, 10, 10)])


def test_expensive_row_values_are_kept_not_recomputed():
    b = Builder("w2")
    x = b.input("x", (16, 256))
    b.g.set_outputs([b.layer_norm(b.softmax(x, 1))])
    fused, _ = run_both(b.g, [rand(16, 256)], tol=dict(rtol=1e-4, atol=1e-4))
    src = fused.kernels[0].source
    assert "row buffer" in src
    assert src.count("call float @kiln_exp_f32") == 1


def test_window_loops_are_split_instead_of_divided():
    from compiler.kernel_ir.printer import to_text
    b = Builder("pool")
    x = b.input("x", (2, 3, 28, 28))
    b.g.set_outputs([b.max_pool2d(b.relu(x), 2)])
    fused, _ = run_both(b.g, [rand(2, 3, 28, 28)])
    text = to_text(fused.kernel_ir[0])
    assert "// 14" not in text and "% 14" not in text


def test_unplaceable_epilogue_is_moved_out_not_wrong():
    """A matmul result read back permuted cannot be stored from the matmul's own loops:
    that node gets its own kernel, the rest stays fused, results stay right."""
    b = Builder("evict")
    x, w = b.input("x", (2, 5, 7), ), b.input("w", (7, 4))
    y = b.relu(b.matmul(x, w))
    b.g.set_outputs([y, b.permute(y, perm=(1, 0, 2))])
    fused, _ = run_both(b.g, [rand(2, 5, 7), rand(7, 4)])
    assert fused.num_kernels == 2


def test_outputs_held_by_the_caller_are_never_overwritten():
    """Output memory is recycled only once the caller has dropped the previous result."""
    b = Builder("recycle")
    x = b.input("x", (300,))
    b.g.set_outputs([b.neg(x)])
    exe = compile_graph(b.g, backend="llvm")
    first = exe.run([np.full(300, 1, np.float32)])[0]
    view = exe.run([np.full(300, 2, np.float32)])[0][:5]      # a view keeps its base alive
    third = exe.run([np.full(300, 3, np.float32)])[0]
    assert first[0] == -1 and view[0] == -2 and third[0] == -3


def test_large_outputs_stream_past_the_cache(monkeypatch):
    """Graph outputs above STREAM_BYTES are computed into an L1 tile and written with
    non-temporal vector stores (head to the first 64-byte boundary, vectors, tail);
    intermediates that a later kernel reads keep ordinary stores. The threshold is
    lowered so every size and misalignment is exercised on small arrays."""
    from compiler.backends import llvm_streaming
    if not llvm_streaming.STREAMING:
        pytest.skip("streaming stores are only printed for x86-64")
    monkeypatch.setattr(llvm_streaming, "STREAM_BYTES", 0)
    offsets = set()
    for n in (1, 15, 17, 1000, 1024, 2 * 1024 + 5):
        for dtype in (F32, dt.float64, dt.int64, dt.int32):
            b = Builder(f"w1_{n}_{dtype.name}")
            x, a, c = (b.input(k, (n,), dtype) for k in "xac")
            b.g.set_outputs([b.add(b.mul(b.mul(x, b.abs(x)), a), c)])
            arrays = [(RNG.standard_normal(n) * 9).astype(dtype.np) for _ in range(3)]
            fused, unfused = run_both(b.g, arrays)
            if n > 1:   # (a single element has no loop left to stream)
                assert "!nontemporal" in fused.kernels[0].source
                streamed = ["!nontemporal" in k.source for k in unfused.kernels]
                assert streamed == [False, False, False, True], streamed  # the output's only
            # a view shifted by one element: the head before the first aligned vector
            got = fused.run([v[1:] for v in (np.concatenate([[0], v]) for v in arrays)])
            np.testing.assert_allclose(got[0], interpreter.run(b.g, arrays)[0], rtol=1e-6)
            offsets.add(got[0].ctypes.data % 64)
    assert offsets - {0}, "no output started off a 64-byte boundary: the head went untested"
    for shape in ((3, 7), (40, 1023), (5, 2048)):
        b = Builder("w2_streamed")
        x = b.input("x", shape)
        b.g.set_outputs([b.layer_norm(b.softmax(x, 1))])
        fused, _ = run_both(b.g, [rand(*shape)], tol=dict(rtol=1e-4, atol=1e-4))
        source = fused.kernels[0].source     # each row in the vector form (llvm_vector)
        assert fused.num_kernels == 1 and "!nontemporal" in source
        assert "store <16 x float>" in source and "alloca" not in source


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0, 100.0,
                    -100.0, 1e-45, 3.4e38, 0.5, -0.5, 0.625, -0.625], np.float32)
VECTOR_UNARY = [("exp", None), ("log", (0.01, 5)), ("log1p", (-0.9, 5)), ("sqrt", (0, 9)),
                ("sin", None), ("cos", None), ("tanh", None), ("sigmoid", None), ("erf", None),
                ("abs", None), ("neg", None), ("floor", None), ("trunc", None), ("relu", None)]


def streamed_vector_check(b, arrays, tol=dict(rtol=2e-5, atol=2e-5)):
    """Run ``b.g`` fused and unfused with every output streamed, on the arrays as given
    and shifted off their alignment by one element; the fused kernel must have used the
    explicit-vector form."""
    fused, _ = run_both(b.g, arrays, tol)
    source = fused.kernels[-1].source       # (no stack tile: straight from the registers)
    assert "store <16 x float>" in source and "!nontemporal" in source, fused.kernels[-1].name
    assert "alloca" not in source, fused.kernels[-1].name
    shifted = [np.concatenate([v[:1], v])[1:] for v in arrays]
    with np.errstate(all="ignore"):
        want = interpreter.run(b.g, shifted)
    np.testing.assert_allclose(fused.run(shifted)[0], want[0], **tol)


@pytest.mark.parametrize("op,domain", VECTOR_UNARY)
def test_streamed_unary_ops_in_vector_registers(monkeypatch, op, domain):
    """A float32 elementwise kernel with a streamed output is printed in ``<16 x float>``
    registers (``llvm_vector``: the math helpers widened by ``llvm_math.widen``), with a
    scalar head up to the output's 64-byte boundary and a scalar tail. Sizes around one
    vector, special values, and an output off its alignment."""
    from compiler.backends import llvm_streaming
    if not llvm_streaming.STREAMING:
        pytest.skip("streaming stores are only printed for x86-64")
    monkeypatch.setattr(llvm_streaming, "STREAM_BYTES", 0)
    lo, hi = domain or (-4, 4)
    for n in (16, 17, 40, 1000, 2 * 1024 + 5):
        x = RNG.uniform(lo, hi, n).astype(np.float32)
        if n > 100 and domain is None:
            x[:len(SPECIAL)] = SPECIAL
        b = Builder(f"vector_{op}_{n}")
        b.g.set_outputs([getattr(b, op)(b.input("x", (n,)))])
        streamed_vector_check(b, [x])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
def test_streamed_binary_ops_and_broadcasts_in_vector_registers(monkeypatch, op):
    """Binary ops with both operands moving along the lanes, and with one broadcast (a
    single element), then a ``where`` on a comparison."""
    from compiler.backends import llvm_streaming
    if not llvm_streaming.STREAMING:
        pytest.skip("streaming stores are only printed for x86-64")
    monkeypatch.setattr(llvm_streaming, "STREAM_BYTES", 0)
    for xs, ys in (((1000,), (1000,)), ((1000,), (1,))):
        x, y = rand(*xs, scale=2), rand(*ys, scale=2)
        if op == "pow":
            x = np.abs(x) + 0.1
        b = Builder(f"vector_{op}")
        vx, vy = b.input("x", xs), b.input("y", ys)
        r = getattr(b, op)(vx, vy)
        b.g.set_outputs([b.where(b.gt(vx, b.const(0.5)), r, b.mul(vx, b.const(3.0)))])
        streamed_vector_check(b, [x, y], tol=dict(rtol=1e-5, atol=1e-5))


def test_vector_form_only_for_float32_with_one_streamed_store(monkeypatch):
    """float64 and int outputs, casts, and kernels that stream two outputs keep the
    stack-tile form (``llvm_streaming.emit_streamed_range``)."""
    from compiler.backends import llvm_streaming
    if not llvm_streaming.STREAMING:
        pytest.skip("streaming stores are only printed for x86-64")
    monkeypatch.setattr(llvm_streaming, "STREAM_BYTES", 0)
    cases = []
    b = Builder("two_outputs")
    x = b.input("x", (1000,))
    e = b.exp(x)
    b.g.set_outputs([e, b.add(e, x)])
    cases.append((b, [rand(1000)]))
    for dtype in (dt.float64, dt.int64):
        b = Builder(f"vector_{dtype.name}")
        x = b.input("x", (1000,), dtype)
        b.g.set_outputs([b.mul(x, x)])
        cases.append((b, [(rand(1000) * 9).astype(dtype.np)]))
    b = Builder("vector_cast")
    x = b.input("x", (1000,), dt.int64)
    b.g.set_outputs([b.cast(x, dtype=F32)])
    cases.append((b, [np.arange(1000)]))
    for b, arrays in cases:
        fused, _ = run_both(b.g, arrays)
        assert fused.num_kernels == 1, b.g.name
        source = fused.kernels[0].source
        assert "!nontemporal" in source and "alloca" in source, b.g.name    # a stack tile


@pytest.mark.parametrize("stride", [1, 2])
def test_implicit_gemm_conv_packs_window_runs(stride):
    """A stride-1 convolution's B panels are packed as runs of consecutive input elements
    (masked vector copies, llvm_packing.RunCopy); stride 2 leaves runs of one, which are
    gathered as before. Both match PyTorch, forward and gradients."""
    import torch
    import frontend
    import frontend.nn.functional as F
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 19, 23)).astype(np.float32)
    w = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)

    def f(x, w, b):
        return F.relu(F.conv2d(x, w, b, stride=stride))
    compiled = frontend.compile(f)
    kx, kw, kb = (frontend.tensor(v.copy(), requires_grad=True) for v in (x, w, b))
    tx, tw, tb = (torch.tensor(v.copy(), requires_grad=True) for v in (x, w, b))
    for _ in range(2):     # the first call traces (eager); the second runs compiled code
        for t in (kx, kw, kb):
            t.grad = None
        out = compiled(kx, kw, kb)
        out.sum().backward()
    ref = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, stride=stride))
    ref.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-4)
    for k, t in ((kx, tx), (kw, tw), (kb, tb)):
        np.testing.assert_allclose(k.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)
    entry = next(iter(compiled._cache.values()))
    texts = [k.source for k in entry.forward.kernels if "matmul" in k.name]
    assert texts
    if stride == 1:
        assert any("llvm.masked.load" in t for t in texts)


# -- split-K: few output tiles, long K -------------------------------------------------------
def _split_k_graph(bshape, m, n, k, dtype, epilogue):
    b = Builder("split_k")
    a = b.input("a", bshape + (m, k), dtype)
    w = b.input("w", bshape + (k, n), dtype)
    y = b.matmul(a, w)
    inputs = [(RNG.standard_normal(bshape + (m, k))).astype(dtype.np),
              (RNG.standard_normal(bshape + (k, n))).astype(dtype.np)]
    if epilogue:
        c = b.input("c", (n,), dtype)
        y = b.relu(b.add(y, c))
        inputs.append(RNG.standard_normal(n).astype(dtype.np))
    b.g.set_outputs([y])
    return b.g, inputs


@pytest.mark.parametrize("bshape,m,n,k,dtype,epilogue", [
    ((), 6, 25, 50176, dt.float32, False),        # LeNet conv1 weight gradient's shape
    ((), 16, 150, 6400, dt.float32, True),        # conv2's, with a bias + ReLU epilogue
    ((2,), 5, 7, 60000, dt.float32, True),        # batched: two tasks, each split
    ((), 6, 25, 50176, dt.float64, True),
    ((3,), 9, 20, 20000, dt.float64, False),
])
def test_split_k_matches_and_is_independent_of_thread_count(bshape, m, n, k, dtype, epilogue):
    """Too few output tiles to share and a long K: K is cut into pieces whose partial
    products are reduced in a fixed order, so 1 and 2 threads give identical bits."""
    from compiler.backends import llvm_matmul
    g, inputs = _split_k_graph(bshape, m, n, k, dtype, epilogue)
    exe = compile_graph(g, backend="llvm")
    assert exe.num_kernels == 1
    assert "K split in" in exe.kernels[0].source.splitlines()[0]
    assert exe.executor.program.workspace_bytes > 0
    want = inputs[0].astype(np.float64) @ inputs[1].astype(np.float64)
    if epilogue:
        want = np.maximum(want + inputs[2], 0)
    old = get_num_threads()
    try:
        results = []
        for threads in (1, 2, 1, 2):
            set_num_threads(threads)
            results.append(exe.run(inputs)[0].copy())
    finally:
        set_num_threads(old)
    for r in results[1:]:
        assert np.array_equal(r, results[0])
    tol = 1e-4 if dtype is dt.float32 else 1e-10
    np.testing.assert_allclose(results[0], want, rtol=tol, atol=tol * math.sqrt(k))
    # the same kernel without the split agrees to rounding
    old_flag, llvm_matmul.SPLIT_K = llvm_matmul.SPLIT_K, False
    try:
        plain = compile_graph(g, backend="llvm")
    finally:
        llvm_matmul.SPLIT_K = old_flag
    assert "K split" not in plain.kernels[0].source.splitlines()[0]
    assert plain.executor.program.workspace_bytes == 0
    np.testing.assert_allclose(plain.run(inputs)[0], results[0], rtol=tol, atol=tol * math.sqrt(k))


def test_split_k_only_when_tiles_are_few():
    from compiler.backends.llvm_matmul import split_k_pieces
    assert split_k_pieces(tasks=1, slices=98, flops=15_000_000, max_threads=4) == 8
    assert split_k_pieces(tasks=4, slices=98, flops=60_000_000, max_threads=4) == 1
    assert split_k_pieces(tasks=1, slices=1, flops=15_000_000, max_threads=4) == 1
    assert split_k_pieces(tasks=1, slices=20, flops=1_000_000, max_threads=4) == 1
    assert split_k_pieces(tasks=2, slices=3, flops=60_000_000, max_threads=4) == 3


def test_split_k_weight_gradient_of_a_convolution():
    """The weight gradient of a stride-1 convolution over a batch: an unfold window read
    by runs, a long K cut into pieces; compared with PyTorch on 1 and 2 threads."""
    import torch
    import frontend
    import frontend.nn.functional as F
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)

    def f(x, w, b):
        return F.relu(F.conv2d(x, w, b)).sum()
    compiled = frontend.compile(f)
    tw = torch.tensor(w, requires_grad=True)
    torch.relu(torch.nn.functional.conv2d(torch.tensor(x), tw, torch.tensor(b))).sum().backward()
    grads = []
    old = get_num_threads()
    try:
        for threads in (1, 2, 1, 2):
            set_num_threads(threads)
            kw = frontend.tensor(w.copy(), requires_grad=True)
            compiled(frontend.tensor(x), kw, frontend.tensor(b)).backward()
            grads.append(kw.grad.numpy().copy())
    finally:
        set_num_threads(old)
    for gr in grads[2:]:       # calls 2.. run compiled code (the first traces eagerly)
        assert np.array_equal(gr, grads[1])
        np.testing.assert_allclose(gr, tw.grad.numpy(), rtol=1e-4, atol=1e-3)
    entry = next(iter(compiled._cache.values()))
    heads = [k.source.splitlines()[0] for k in entry.backward.kernels if "matmul" in k.name]
    assert any("K split in" in h for h in heads), heads


def test_traced_convolution_input_gradient_folds_along_memory_order():
    """A traced conv2d keeps the batch outside its columns (eager lays it innermost for
    NumPy's sake): the compiled fold of the input gradient then reads along the output's
    innermost loop instead of gathering with a stride of the batch size."""
    import frontend
    from compiler.kernel_ir import expr as ex
    from compiler.kernel_ir.kernels import LoopKernel
    conv = frontend.nn.Conv2d(6, 4, 3)
    compiled = frontend.compile(conv)
    x = frontend.randn(8, 6, 12, 12, requires_grad=True)
    for _ in range(2):
        compiled(x).sum().backward()
    entry = next(iter(compiled._compiled._cache.values()))
    folds = [k for k in entry.backward.kernel_ir if isinstance(k, LoopKernel)
             and any(entry.backward.graph.nodes[n]["op"] == "fold" for n in k.nodes)]
    assert folds
    for k in folds:
        inner = k.outer[-1]
        for load in ex.loads([s.value for ph in k.phases for s in ph.stores]):
            assert load.args[1].coeff(inner) in (0, 1), (k.name, load.text)
