"""frontend.compile: tracing, caching, autograd integration, fallbacks and errors.

Every test runs on each available backend; compiled results are compared with eager
execution of the same code."""
import os
import warnings

import numpy as np
import pytest

import frontend as torch
import frontend.nn as nn
import frontend.nn.functional as F
from frontend.autograd import Function

BACKENDS = ["eager"]
try:
    import compiler.backends.llvm  # noqa: F401
    BACKENDS.append("llvm")
except ImportError:
    pass
try:    # only where an OpenCL device can build and run kernels (see runtime/opencl_device.py)
    from runtime.opencl_device import OpenCLUnavailableError, device as _opencl_device
except ImportError:
    _opencl_device = None
if _opencl_device is not None:
    try:
        _opencl_device()
        BACKENDS.append("opencl")
    except OpenCLUnavailableError:
        pass


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=[True, False], ids=["fused", "unfused"])
def fuse(request):
    return request.param


def test_function_matches_eager_and_caches(backend, fuse):
    def f(x, a, b):
        return x * torch.sigmoid(x) * a + b
    cf = torch.compile(f, backend=backend, fuse=fuse)
    x, a, b = torch.randn(7), torch.randn(7), torch.randn(7)
    for _ in range(3):
        close(cf(x, a, b), f(x, a, b))
    assert cf.cache_info() == (2, 1, 1)
    cf(torch.randn(9), torch.randn(9), torch.randn(9))       # new shape: a miss
    cf(x.double(), a.double(), b.double())                    # new dtype: a miss
    assert cf.cache_info().misses == 3 and cf.cache_info().size == 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_and_min_propagate_nan_as_eager_does(backend, fuse, dtype):
    """max/min reductions (row-wise and across rows), maximum, relu and clamp return NaN
    where an input is NaN, as PyTorch does; the OpenCL helpers test ``a != a`` for it."""
    if backend == "opencl" and dtype == "float64" and not _opencl_device().fp64:
        pytest.skip("device lacks cl_khr_fp64")

    def f(x, y):
        return (x.amax(-1), x.amin(0), torch.maximum(x, y), torch.relu(x),
                torch.clamp(x, -0.5, 0.5), F.softmax(x, -1))
    x = torch.randn(6, 40, dtype=getattr(torch, dtype))
    y = torch.randn(6, 40, dtype=getattr(torch, dtype))
    x.numpy()[1, 7] = float("nan")
    y.numpy()[2, 3] = float("nan")
    cf = torch.compile(f, backend=backend, fuse=fuse)
    cf(x, y)
    for got, want in zip(cf(x, y), f(x, y)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6,
                                   equal_nan=True)
        assert np.array_equal(np.isnan(got.numpy()), np.isnan(want.numpy()))


def test_python_scalars_are_specialised(backend):
    cf = torch.compile(lambda x, k: x * k, backend=backend)
    x = torch.randn(3)
    close(cf(x, 2.0), x * 2.0)
    close(cf(x, 3.0), x * 3.0)
    assert cf.cache_info().misses == 2


def test_module_forward_backward_and_optimizer_updates(backend, fuse):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(model, backend=backend, fuse=fuse)
    assert list(compiled.parameters()) == list(model.parameters())
    x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.zero_grad()
        eager_loss = F.cross_entropy(model(x), y)
        eager_loss.backward()
        close(loss, eager_loss)
        for g, p in zip(grads, model.parameters()):
            close(g, p.grad)
        opt.step()   # in-place update: the next compiled call must see it
    assert compiled.cache_info() == (3, 1, 1)


def test_train_eval_and_grad_mode_are_part_of_the_signature(backend):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(2, 4)
    compiled(x)
    compiled.eval()
    close(compiled(x), model(x))          # eval: dropout is the identity
    with torch.no_grad():
        compiled(x)
    assert compiled.cache_info().misses == 3


def test_dropout_draws_a_fresh_mask_every_call(backend):
    compiled = torch.compile(nn.Dropout(0.5), backend=backend)
    x = torch.ones(1000)
    outs = [compiled(x).numpy().copy() for _ in range(3)]
    assert compiled.cache_info().hits == 2
    assert not np.array_equal(outs[1], outs[2])
    for o in outs:
        assert set(np.unique(o)) <= {0.0, 2.0} and 0.4 < (o > 0).mean() < 0.6


def test_batchnorm_running_statistics_are_written_back(backend):
    torch.manual_seed(0)
    bn_eager, bn = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    compiled = torch.compile(bn, backend=backend)
    for _ in range(3):
        x = torch.randn(8, 3) * 3 + 1
        close(compiled(x), bn_eager(x))
    close(bn.running_mean, bn_eager.running_mean)
    close(bn.running_var, bn_eager.running_var)
    assert bn.num_batches_tracked.item() == bn_eager.num_batches_tracked.item() == 3


class ReLUF(Function):
    def forward(self, input):
        self.save_for_backward(input)
        return input.clamp(min=0)

    def backward(self, output_grad):
        input = self.to_save[0]
        input_grad = output_grad.clone()
        input_grad[input < 0] = 0
        return input_grad * 2  # deliberately not the true gradient: must be the user's


def test_custom_function_backward_is_the_users(backend):
    def f(x):
        return ReLUF()(x).sum()
    cf = torch.compile(f, backend=backend)
    x = torch.randn(6, requires_grad=True)
    for _ in range(2):
        x.grad = None
        cf(x).backward()
        np.testing.assert_allclose(x.grad.numpy(), 2.0 * (x.detach().numpy() > 0))


def test_data_dependent_control_flow(backend):
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x * 3
    strict = torch.compile(f, backend=backend, fullgraph=True)
    with pytest.raises(Exception) as info:
        strict(torch.ones(3))
    message = str(info.value)
    assert "test_compile.py" in message and "frontend.where" in message and "bool()" in message
    lenient = torch.compile(f, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        close(lenient(torch.ones(3)), torch.ones(3) * 2)
        close(lenient(-torch.ones(3)), -torch.ones(3) * 3)   # eager fallback: both branches
    assert sum("data-dependent" in str(w.message) for w in caught) == 1


def test_item_in_forward_is_reported(backend):
    cf = torch.compile(lambda x: x * x.max().item(), backend=backend, fullgraph=True)
    with pytest.raises(Exception, match="item"):
        cf(torch.randn(3))


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(ValueError, match="llvm.*opencl.*eager"):
        torch.compile(lambda x: x, backend="tpu")


def test_wrong_input_shape_names_shapes_and_model_stays_usable(backend):
    model = nn.Linear(4, 2)
    compiled = torch.compile(model, backend=backend)
    good = torch.randn(3, 4)
    compiled(good)
    with pytest.raises(RuntimeError, match=r"\(3, 5\).*expects 4"):
        compiled(torch.randn(3, 5))
    close(compiled(good), model(good))
    assert compiled.cache_info().size == 1


def test_create_graph_through_compiled_graph_raises(backend):
    model = nn.Linear(3, 1)
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(2, 3, requires_grad=True)
    compiled(x)
    out = compiled(x).sum()
    with pytest.raises(RuntimeError, match="create_graph"):
        torch.autograd.grad(out, x, create_graph=True)


def test_kiln_eager_disables_compilation(backend, monkeypatch):
    monkeypatch.setenv("KILN_EAGER", "1")
    cf = torch.compile(lambda x: x + 1, backend=backend)
    out = cf(torch.ones(2))
    assert out.tolist() == [2.0, 2.0] and cf.cache_info() == (0, 0, 0)


def test_captured_tensors_are_read_at_every_call(backend):
    table = torch.ones(3)
    cf = torch.compile(lambda x: x + table, backend=backend)
    x = torch.zeros(3)
    cf(x)
    table.add_(1)
    assert cf(x).tolist() == [2.0, 2.0, 2.0]


def test_recompiling_warns_once_naming_the_changing_dimension(backend):
    cf = torch.compile(lambda x: x * 2, backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 12):
            cf(torch.ones(n))
    recompiles = [w for w in caught if "recompiled" in str(w.message)]
    assert len(recompiles) == 1 and "dimension 0" in str(recompiles[0].message)


def test_debug_level_1_explains_cache_misses(backend, monkeypatch, capsys):
    monkeypatch.setenv("KILN_DEBUG", "1")
    cf = torch.compile(lambda x: x.exp(), backend=backend)
    cf(torch.ones(2, 3))
    cf(torch.ones(2, 4))
    err = capsys.readouterr().err
    assert "first call" in err and "dimension 1 changed 3 -> 4" in err


def test_compiled_calls_chain_through_their_own_arguments(backend):
    """A recurrent cell called in a loop: each call's backward must reach the previous
    call's output (the *current* arguments), not the tensors seen while tracing."""
    torch.manual_seed(0)
    cell = nn.Linear(5, 3)
    compiled = torch.compile(lambda x, h: torch.relu(cell(torch.cat((x, h), 1))), backend=backend)
    xs = torch.randn(6, 2, 2)
    for fn in (compiled, lambda x, h: torch.relu(cell(torch.cat((x, h), 1)))):
        cell.zero_grad()
        h = torch.zeros(2, 3)
        for t in range(6):
            h = fn(xs[t], h)
        h.sum().backward()
        if fn is compiled:
            grads = [p.grad.clone() for p in cell.parameters()]
    for g, p in zip(grads, cell.parameters()):
        close(g, p.grad)


def test_check_mode_names_the_wrong_kernel_and_its_source_line(backend, monkeypatch):
    def f(x):
        y = x.exp()
        return y * 2 + 1
    cf = torch.compile(f, backend=backend, check=True)
    x = torch.randn(4)
    cf(x)
    close(cf(x), f(x))  # correct kernels pass the check
    # corrupt what the executable computes for the `mul` node, as a miscompiled kernel would
    entry = next(e for e in cf._cache.values() if not isinstance(e, str))
    exe = entry.forward
    kernel = next(k for k in exe.kernels if any(exe.graph.nodes[n]["op"] == "mul"
                                                 for n in k.nodes))
    original = exe.run

    def miscompiled(inputs, capture=False):
        outputs, produced = original(inputs, capture=True)
        produced[kernel.outputs[0]] = produced[kernel.outputs[0]] + 1
        return (outputs, produced) if capture else outputs
    monkeypatch.setattr(exe, "run", miscompiled)
    from compiler.check import KernelMismatch
    with pytest.raises(KernelMismatch) as info:
        cf(x)
    message = str(info.value)
    assert kernel.name in message and "mul" in message and "test_compile.py" in message


def test_structured_outputs_keep_their_types(backend):
    cf = torch.compile(lambda x: (x.max(1), [x * 2, {"s": x.sum()}]), backend=backend)
    x = torch.randn(3, 4)
    cf(x)
    (values, indices), [doubled, d] = cf(x)
    assert type(cf(x)[0]).__name__ == "values_indices"
    close(values, x.max(1).values)
    assert indices.tolist() == x.max(1).indices.tolist()
    close(doubled, x * 2)
    close(d["s"], x.sum())


def test_gradient_that_is_a_constant(backend):
    """sign()'s gradient is zero whatever the upstream gradient: folded to a constant."""
    cf = torch.compile(lambda a: a.sign() * 3, backend=backend)
    x = torch.randn(5, requires_grad=True)
    cf(x)
    cf(x).sum().backward()
    assert x.grad.tolist() == [0.0] * 5


def test_gradients_kept_without_copy_never_alias(backend):
    """Compiled gradients may be kept as .grad without a copy; two parameters whose
    gradients are the same value must still get separate buffers, and a later in-place
    update of one .grad must leave the other (and the next call) untouched."""
    a = nn.Parameter(torch.ones(4))
    b = nn.Parameter(torch.ones(4))
    cf = torch.compile(lambda x: (x * a + x * b).sum(), backend=backend)
    x = torch.randn(4)
    for _ in range(3):
        a.grad = b.grad = None
        cf(x).backward()
        close(a.grad, x)
        close(b.grad, x)
        a.grad.zero_()
        close(b.grad, x)


def test_optimizer_updates_in_place_are_seen(backend):
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.5, momentum=0.9)
    cf = torch.compile(lambda: (p * p).sum(), backend=backend)
    ref = nn.Parameter(torch.ones(3))
    ref_opt = torch.optim.SGD([ref], lr=0.5, momentum=0.9)
    for _ in range(4):
        opt.zero_grad()
        cf().backward()
        opt.step()
        ref_opt.zero_grad()
        (ref * ref).sum().backward()
        ref_opt.step()
        close(p, ref)


class Cube(Function):
    """Modern style, with a deliberately scaled backward to prove the user's rule is used."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x * ctx.k, None


def test_modern_custom_function_is_traced_with_its_backward(backend):
    cf = torch.compile(lambda x: Cube.apply(x, 10.0).sum(), backend=backend)
    x = torch.randn(5, requires_grad=True)
    for _ in range(2):
        x.grad = None
        cf(x).backward()
        close(x.grad, 30 * x.detach() * x.detach())
    assert cf.cache_info().hits == 1


def test_debug_level_5_prints_traced_and_optimised_graphs(backend, monkeypatch, capsys):
    monkeypatch.setenv("KILN_DEBUG", "5")
    cf = torch.compile(lambda x: (x * 1.0).exp().sum(), backend=backend)
    cf(torch.ones(3, requires_grad=True))
    err = capsys.readouterr().err
    assert "traced graph" in err and "optimised forward graph" in err
    assert "optimised backward graph" in err and "test_compile.py" in err  # source lines


@pytest.mark.parametrize("fuse, kernels", [(True, 1), (False, 4)])
def test_w1_kernel_counts_through_compile(fuse, kernels):
    if "llvm" not in BACKENDS:
        pytest.skip("the llvm backend is not available")
    cf = torch.compile(lambda x, a, b: x * torch.sigmoid(x) * a + b, fuse=fuse)
    x, a, b = torch.randn(1000), torch.randn(1000), torch.randn(1000)
    cf(x, a, b)
    assert cf.kernel_count() == kernels


def test_replacing_a_parameter_retraces(backend):
    model = nn.Linear(3, 2)
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(4, 3)
    compiled(x)
    compiled(x)
    model.weight = nn.Parameter(torch.randn(2, 3))     # a new object, same shape
    model.bias = nn.Parameter(torch.zeros(2))
    close(compiled(x), model(x))
    close(compiled(x), model(x))
    assert compiled.cache_info().misses == 2 and compiled.cache_info().size == 1
    torch.nn.Linear(5, 5)  # other modules changing must not drop this one's graphs
    compiled(x)
    assert compiled.cache_info().misses == 2


def _setitem(x, i, v):
    y = x.clone()
    y[i] = v
    return y


OUT_OF_RANGE = [
    # (function, good arguments, bad arguments, offending index, dimension size)
    ("index", lambda x, i: x[i] * 2,
     lambda: (torch.randn(5, 3), torch.tensor([0, 4, -5])),
     lambda: (torch.randn(5, 3), torch.tensor([0, -6, 1])), -6, 5),
    ("setitem", _setitem,
     lambda: (torch.zeros(4, 2), torch.tensor([3, 0]), torch.ones(2, 2)),
     lambda: (torch.zeros(4, 2), torch.tensor([4, 0]), torch.ones(2, 2)), 4, 4),
    ("cross_entropy", lambda x, t: F.cross_entropy(x, t),
     lambda: (torch.randn(3, 4), torch.tensor([0, 3, 1])),
     lambda: (torch.randn(3, 4), torch.tensor([0, 7, 1])), 7, 4),
]


@pytest.mark.parametrize("name,fn,good,bad,value,size", OUT_OF_RANGE,
                         ids=[c[0] for c in OUT_OF_RANGE])
def test_out_of_range_index_raises_and_the_callable_stays_usable(backend, fuse, name, fn, good,
                                                                  bad, value, size):
    """Compiled kernels cannot stop at a bad index: they report it in the graph's error
    record, and the call raises IndexError as eager mode does (naming the index and the
    size), instead of reading a clamped element."""
    compiled = torch.compile(fn, backend=backend, fuse=fuse)
    args = good()
    compiled(*args)                       # traces (eagerly)
    close(compiled(*args), fn(*args))     # runs compiled
    with pytest.raises(IndexError, match=rf"index {value} is out of (bounds|range)"):
        compiled(*bad())
    close(compiled(*args), fn(*args))     # the error record was reset


def test_out_of_range_embedding_index_raises_with_its_size(backend):
    emb = nn.Embedding(10, 3)
    compiled = torch.compile(emb, backend=backend)
    good = torch.tensor([[1, 9], [0, 2]])
    compiled(good)
    compiled(good).sum().backward()
    with pytest.raises(IndexError, match=r"index 12 .*size 10|index 12 is out of range"):
        compiled(torch.tensor([[1, 12], [0, 2]]))
    close(compiled(good), emb(good))
