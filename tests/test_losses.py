"""Losses of ``frontend.nn`` against ``torch.nn`` as the oracle: every loss, every
reduction, float32 and float64, values and gradients (input and, where PyTorch defines
one, target), grad_fn names, extreme inputs, module forms, errors and gradcheck."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import frontend
import frontend.nn as nn
import frontend.nn.functional as F
from frontend.autograd import gradcheck

DTYPES = {"float32": (np.float32, 2e-5), "float64": (np.float64, 1e-10)}
REDUCTIONS = ["mean", "sum", "none"]


def rand(*shape, dtype=np.float32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def uniform(*shape, dtype=np.float32, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def classes(*shape, n, seed=0):
    return np.random.default_rng(seed).integers(0, n, shape).astype(np.int64)


def to_kiln(a, requires_grad=False):
    if a is None:
        return None
    return frontend.tensor(a.copy(), requires_grad=requires_grad and a.dtype.kind == "f")


def to_torch(a, requires_grad=False):
    if a is None:
        return None
    return torch.tensor(a.copy(), requires_grad=requires_grad and a.dtype.kind == "f")


def close(k, t, tol, what=""):
    expected = t.detach().numpy()
    actual = k.detach().numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} vs {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def compare(kfn, tfn, arrays, tol, grad_of=(0,), grad_fn=None, **kwargs):
    """Call both functions on the same arrays (kwargs may hold arrays too), backward a
    random cotangent, and compare values, grad_fn names and gradients of ``grad_of``."""
    kin = [to_kiln(a, i in grad_of) for i, a in enumerate(arrays)]
    tin = [to_torch(a, i in grad_of) for i, a in enumerate(arrays)]
    kkw = {k: to_kiln(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tkw = {k: to_torch(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kout, tout = kfn(*kin, **kkw), tfn(*tin, **tkw)
    close(kout, tout, tol, "loss")
    if grad_fn is not None:
        assert kout.grad_fn.name() == tout.grad_fn.name() == grad_fn
    cot = rand(*tout.shape, dtype=tout.detach().numpy().dtype, seed=7) if tout.ndim else None
    kout.backward(None if cot is None else frontend.tensor(cot))
    tout.backward(None if cot is None else torch.tensor(cot))
    for i in grad_of:
        close(kin[i].grad, tin[i].grad, tol, f"grad of argument {i}")
    return kout, tout


# ------------------------------------------------------------------ regression losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,node,kwargs", [
    ("mse_loss", "MseLossBackward0", {}), ("l1_loss", None, {}),
    ("smooth_l1_loss", "SmoothL1LossBackward0", {}),
    ("smooth_l1_loss", "SmoothL1LossBackward0", {"beta": 0.3}),
    ("smooth_l1_loss", None, {"beta": 0.0}),
    ("huber_loss", "HuberLossBackward0", {}), ("huber_loss", "HuberLossBackward0", {"delta": 0.4})])
def test_regression_losses_match_torch(dtype, reduction, name, node, kwargs):
    np_dtype, tol = DTYPES[dtype]
    x, y = rand(4, 5, dtype=np_dtype), rand(4, 5, dtype=np_dtype, seed=1)
    x[0, 0] = y[0, 0]  # a zero difference: the subgradient must match torch's too
    compare(getattr(F, name), getattr(TF, name), [x, y], tol, grad_of=(0, 1),
            grad_fn=node if reduction != "none" or node else None, reduction=reduction, **kwargs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_regression_losses(reduction, name):
    x, y, w = rand(3, 4), rand(3, 4, seed=1), uniform(3, 4, seed=2)
    compare(getattr(F, name), getattr(TF, name), [x, y], 2e-5, reduction=reduction, weight=w)


def test_regression_loss_names_and_broadcast_warning():
    x = frontend.randn(3, 5, requires_grad=True)
    assert F.l1_loss(x, frontend.randn(3, 5)).grad_fn.name() == "MeanBackward0"
    with pytest.warns(UserWarning, match=r"target size .*\[5\].* input size .*\[3, 5\]"):
        F.mse_loss(x, frontend.randn(5))
    with pytest.raises(RuntimeError, match=r"\(4,\).*\(3, 5\)"):
        F.mse_loss(x, frontend.randn(4))
    assert x.grad is None


# ---------------------------------------------------------------------- nll / ce
CLASS_CASES = [((6, 5), (6,)), ((5,), ()), ((3, 4, 2), (3, 2)), ((2, 4, 3, 2), (2, 3, 2)),
               ((2, 3, 2, 2, 2), (2, 2, 2, 2))]


def _targets(tshape, n, ignore=False, seed=0):
    t = classes(*tshape, n=n, seed=seed)
    if ignore and t.size > 1:
        t.reshape(-1)[1] = -100
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,tshape", CLASS_CASES, ids=[str(c[0]) for c in CLASS_CASES])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_and_nll_match_torch(dtype, reduction, shape, tshape, weighted, ignore):
    np_dtype, tol = DTYPES[dtype]
    n = shape[0 if len(shape) == 1 else 1]
    x, t = rand(*shape, dtype=np_dtype, scale=2), _targets(tshape, n, ignore)
    w = uniform(n, dtype=np_dtype, seed=3, low=0.5, high=2) if weighted else None
    compare(F.cross_entropy, TF.cross_entropy, [x, t], tol, reduction=reduction, weight=w)
    kout, tout = compare(F.nll_loss, TF.nll_loss, [x, t], tol, reduction=reduction, weight=w)
    assert kout.grad_fn.name() == tout.grad_fn.name()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,tshape", CLASS_CASES[:4], ids=[str(c[0]) for c in CLASS_CASES[:4]])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_label_smoothing(dtype, reduction, shape, tshape, weighted):
    np_dtype, tol = DTYPES[dtype]
    n = shape[0 if len(shape) == 1 else 1]
    x, t = rand(*shape, dtype=np_dtype), _targets(tshape, n, ignore=True)
    w = uniform(n, dtype=np_dtype, seed=3, low=0.5, high=2) if weighted else None
    compare(F.cross_entropy, TF.cross_entropy, [x, t], tol, reduction=reduction, weight=w,
            label_smoothing=0.15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 3, 4)])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weight": True}])
def test_cross_entropy_probability_targets(dtype, reduction, shape, options):
    np_dtype, tol = DTYPES[dtype]
    n = shape[0 if len(shape) == 1 else 1]
    x = rand(*shape, dtype=np_dtype)
    p = np.exp(rand(*shape, dtype=np.float64, seed=4))
    p = (p / p.sum(0 if len(shape) == 1 else 1, keepdims=True)).astype(np_dtype)
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = uniform(n, dtype=np_dtype, seed=3, low=0.5, high=2)
    compare(F.cross_entropy, TF.cross_entropy, [x, p], tol, grad_of=(0, 1), reduction=reduction,
            **kwargs)


def test_cross_entropy_graph_is_nll_of_log_softmax():
    x = frontend.randn(3, 5, requires_grad=True)
    loss = F.cross_entropy(x, frontend.tensor([1, 0, 4]))
    assert loss.grad_fn.name() == "NllLossBackward0"
    (child, _), = loss.grad_fn.next_functions
    assert child.name() == "LogSoftmaxBackward0"


def test_all_targets_ignored_gives_nan_like_torch():
    x = rand(3, 5)
    t = np.full(3, -100)
    k = F.cross_entropy(frontend.tensor(x), frontend.tensor(t))
    assert np.isnan(k.item()) and np.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(t)).item())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_extreme_logits_float32(reduction):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [5e3, 1e4, -1e4], [0.0, 1e-3, -1e4]],
                 np.float32)
    t = np.array([1, 2, 0, 2])
    kout, _ = compare(F.cross_entropy, TF.cross_entropy, [x, t], 1e-5, reduction=reduction)
    assert np.all(np.isfinite(kout.detach().numpy()))


def test_class_target_errors_name_the_problem():
    x = frontend.randn(3, 5, requires_grad=True)
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds.*5 classes"):
        F.cross_entropy(x, frontend.tensor([1, 0, 5]))
    with pytest.raises(IndexError, match=r"Target -3 is out of bounds.*5 classes"):
        F.nll_loss(x, frontend.tensor([1, 0, -3]))
    with pytest.raises(RuntimeError, match=r"float32 target of shape \(3,\).*\(3, 5\)"):
        F.cross_entropy(x, frontend.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(RuntimeError, match="int64.*float32"):
        F.nll_loss(x, frontend.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match=r"target of shape \(3,\).*input of shape \(3, 5\).*\(2,\)"):
        F.cross_entropy(x, frontend.tensor([1, 0]))
    with pytest.raises(RuntimeError, match="must be floating point, got int64"):
        F.cross_entropy(x, frontend.zeros(3, 5, dtype=frontend.int64))
    with pytest.raises(RuntimeError, match="all 5 classes.*\\[4\\]"):
        F.nll_loss(x, frontend.tensor([1, 0, 2]), weight=frontend.ones(4))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(x, frontend.tensor([1, 0, 2]), label_smoothing=1.5)
    assert x.grad is None


# ------------------------------------------------------------------------ binary losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (4, 3), (3,)])
def test_binary_cross_entropy_matches_torch(dtype, reduction, weight_shape):
    np_dtype, tol = DTYPES[dtype]
    x, y = uniform(4, 3, dtype=np_dtype, low=0.05, high=0.95), uniform(4, 3, dtype=np_dtype, seed=1)
    w = None if weight_shape is None else uniform(*weight_shape, dtype=np_dtype, seed=2)
    compare(F.binary_cross_entropy, TF.binary_cross_entropy, [x, y], tol, grad_of=(0, 1),
            grad_fn="BinaryCrossEntropyBackward0", reduction=reduction, weight=w)


def test_binary_cross_entropy_clamps_log_like_torch():
    x = np.array([0.0, 1.0, 1e-45, 0.5, 1.0, 0.0], np.float32)
    y = np.array([0.3, 0.6, 0.2, 0.5, 1.0, 0.0], np.float32)
    kx = frontend.tensor(x, requires_grad=True)
    k = F.binary_cross_entropy(kx, frontend.tensor(y), reduction="none")
    t = TF.binary_cross_entropy(torch.tensor(x), torch.tensor(y), reduction="none")
    close(k, t, 1e-5)
    k.sum().backward()
    assert np.all(np.isfinite(kx.grad.numpy()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", [{}, {"weight": (3,)}, {"pos_weight": (3,)},
                                     {"weight": (4, 3), "pos_weight": (3,)}])
def test_bce_with_logits_matches_torch(dtype, reduction, weights):
    np_dtype, tol = DTYPES[dtype]
    x, y = rand(4, 3, dtype=np_dtype, scale=3), uniform(4, 3, dtype=np_dtype, seed=1)
    kwargs = {k: uniform(*s, dtype=np_dtype, seed=5, low=0.5, high=3) for k, s in weights.items()}
    compare(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, [x, y], tol,
            grad_of=(0, 1), grad_fn="BinaryCrossEntropyWithLogitsBackward0", reduction=reduction,
            **kwargs)


@pytest.mark.parametrize("pos_weight", [False, True])
def test_bce_with_logits_extreme_inputs_float32(pos_weight):
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4, 1e4], np.float32)
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0], np.float32)
    kwargs = {"pos_weight": np.full(8, 2.5, np.float32)} if pos_weight else {}
    kout, _ = compare(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                      [x, y], 1e-5, reduction="none", **kwargs)
    assert np.all(np.isfinite(kout.detach().numpy()))


def test_binary_loss_errors():
    x = frontend.rand(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\)"):
        F.binary_cross_entropy(x, frontend.rand(3, 1))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\)"):
        F.binary_cross_entropy_with_logits(x, frontend.rand(3, 1))
    with pytest.raises(RuntimeError, match="input should be between 0 and 1, got 2.0"):
        F.binary_cross_entropy(x * 0 + 2, frontend.rand(3))
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(x, frontend.tensor([0.5, 2.0, 0.1]))
    assert x.grad is None


# ------------------------------------------------------------------------ reductions
@pytest.mark.parametrize("fn", [F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss,
                                F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_bad_reduction_names_it(fn):
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        fn(frontend.rand(3), frontend.rand(3), reduction="avg")


def test_bad_reduction_for_class_losses_and_modules():
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match="'total' is not|total is not a valid value"):
            fn(frontend.randn(3, 4), frontend.tensor([0, 1, 2]), reduction="total")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="avg")


def test_legacy_size_average_and_reduce():
    x, y = rand(3, 4), rand(3, 4, seed=1)
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k = F.mse_loss(frontend.tensor(x), frontend.tensor(y), size_average, reduce)
            t = TF.mse_loss(torch.tensor(x), torch.tensor(y), size_average, reduce)
        close(k, t, 1e-6)


# --------------------------------------------------------------------------- modules
MODULES = [
    ("MSELoss", {}, "regression"), ("L1Loss", {"reduction": "sum"}, "regression"),
    ("SmoothL1Loss", {"beta": 0.5}, "regression"), ("HuberLoss", {"delta": 2.0}, "regression"),
    ("CrossEntropyLoss", {}, "classes"), ("CrossEntropyLoss", {"label_smoothing": 0.1}, "classes"),
    ("CrossEntropyLoss", {"weight": True, "ignore_index": 1, "reduction": "none"}, "classes"),
    ("NLLLoss", {"weight": True}, "classes"), ("BCELoss", {"weight": True}, "probabilities"),
    ("BCEWithLogitsLoss", {"pos_weight": True, "reduction": "sum"}, "logits"),
]


def _module_inputs(kind):
    if kind == "classes":
        return [rand(6, 4), classes(6, n=4)]
    if kind == "probabilities":
        return [uniform(6, 4, low=0.05, high=0.95), uniform(6, 4, seed=1)]
    return [rand(6, 4), rand(6, 4, seed=1) if kind == "regression" else uniform(6, 4, seed=1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs,kind", MODULES, ids=[f"{m[0]}{i}" for i, m in enumerate(MODULES)])
def test_loss_modules_match_torch(dtype, name, kwargs, kind):
    np_dtype, tol = DTYPES[dtype]
    arrays = [a.astype(np_dtype) if a.dtype.kind == "f" else a for a in _module_inputs(kind)]
    weights = {k: uniform(4, dtype=np_dtype, seed=9, low=0.5, high=2) for k, v in kwargs.items()
               if v is True}
    kk = {**kwargs, **{k: frontend.tensor(v) for k, v in weights.items()}}
    tk = {**kwargs, **{k: torch.tensor(v) for k, v in weights.items()}}
    kmod, tmod = getattr(nn, name)(**kk), getattr(torch.nn, name)(**tk)
    assert repr(kmod) == repr(tmod)
    assert list(kmod.state_dict()) == list(tmod.state_dict())
    compare(kmod, tmod, arrays, tol)


# ------------------------------------------------------------------------ gradcheck
def _g(*shape, seed=0, low=None):
    a = uniform(*shape, dtype=np.float64, seed=seed, low=low, high=1 - low) if low is not None \
        else rand(*shape, dtype=np.float64, seed=seed)
    return frontend.tensor(a, requires_grad=True)


_T = frontend.tensor([1, 0, 3])
_W = frontend.tensor([0.5, 1.0, 2.0, 1.5], dtype=frontend.float64)
GRADCHECKS = {
    "mse": (lambda x, y: F.mse_loss(x, y), (_g(3, 2), _g(3, 2, seed=1))),
    "l1": (lambda x, y: F.l1_loss(x, y, reduction="none"), (_g(3, 2), _g(3, 2, seed=1))),
    "smooth_l1": (lambda x, y: F.smooth_l1_loss(x, y, beta=0.5), (_g(3, 2), _g(3, 2, seed=1))),
    "huber": (lambda x, y: F.huber_loss(x, y, delta=0.5, reduction="sum"),
              (_g(3, 2), _g(3, 2, seed=1))),
    "cross_entropy": (lambda x: F.cross_entropy(x, _T, weight=_W, label_smoothing=0.1),
                      (_g(3, 4),)),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, _T, reduction="none"), (_g(3, 4),)),
    "cross_entropy_kdim": (lambda x: F.cross_entropy(x, frontend.tensor([[1, 3], [0, 2]])),
                           (_g(2, 4, 2),)),
    "cross_entropy_probs": (lambda x, p: F.cross_entropy(x, p), (_g(3, 4), _g(3, 4, seed=1, low=0.1))),
    "nll": (lambda x: F.nll_loss(x, frontend.tensor([1, -100, 3]), weight=_W), (_g(3, 4),)),
    "bce": (lambda x, y: F.binary_cross_entropy(x, y), (_g(3, 2, low=0.1), _g(3, 2, seed=1, low=0.1))),
    "bce_logits": (lambda x, y: F.binary_cross_entropy_with_logits(
        x, y, pos_weight=frontend.tensor([2.0, 0.5], dtype=frontend.float64)),
        (_g(3, 2), _g(3, 2, seed=1, low=0.1))),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_loss_gradcheck(name):
    fn, inputs = GRADCHECKS[name]
    assert gradcheck(fn, inputs)


# ---------------------------------------------- the eager cross entropy's closed-form nodes
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_eager_cross_entropy_double_backward_matches_torch(reduction, weighted):
    """The eager (N, C) cross entropy uses closed-form NumPy nodes; with create_graph its
    gradient is recorded, so a second derivative matches PyTorch's."""
    x, t = rand(6, 5, dtype=np.float64), classes(6, n=5)
    t[2] = -100                                     # an ignored row
    w = uniform(5, dtype=np.float64, low=0.5) if weighted else None
    kx, tx = to_kiln(x, True), to_torch(x, True)
    kw, tw = to_kiln(w), to_torch(w)
    kl = F.cross_entropy(kx, frontend.tensor(t), weight=kw, reduction=reduction)
    tl = TF.cross_entropy(tx, torch.tensor(t), weight=tw, reduction=reduction)
    close(kl, tl, 1e-10, "loss")
    g = rand(*kl.shape, dtype=np.float64, seed=3) if reduction == "none" else np.float64(1.5)
    kg, = frontend.autograd.grad(kl, kx, frontend.tensor(g), create_graph=True)
    tg, = torch.autograd.grad(tl, tx, torch.tensor(g), create_graph=True)
    close(kg, tg, 1e-10, "grad")
    v = rand(6, 5, dtype=np.float64, seed=4)
    kgg, = frontend.autograd.grad((kg * frontend.tensor(v)).sum(), kx)
    tgg, = torch.autograd.grad((tg * torch.tensor(v)).sum(), tx)
    close(kgg, tgg, 1e-10, "second derivative")


def test_eager_cross_entropy_backward_twice_raises_and_matches_composite_values():
    x, t = rand(8, 4), classes(8, n=4)
    kx = to_kiln(x, True)
    loss = F.cross_entropy(kx, frontend.tensor(t))
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    # the composite path (what the tracer records) gives the same value and gradient
    kx2 = to_kiln(x, True)
    logp = F.log_softmax(kx2, 1)
    ref = F.nll_loss(logp, frontend.tensor(t))
    ref.backward()
    assert loss.item() == ref.item()
    np.testing.assert_allclose(kx.grad.numpy(), kx2.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_compiled_cross_entropy_matches_eager():
    x, t = rand(8, 4), classes(8, n=4)

    def f(x, t):
        return F.cross_entropy(x * 2, t)
    compiled = frontend.compile(f)
    for _ in range(2):
        kx, ex = to_kiln(x, True), to_kiln(x, True)
        c, e = compiled(kx, frontend.tensor(t)), f(ex, frontend.tensor(t))
        c.backward()
        e.backward()
        np.testing.assert_allclose(c.item(), e.item(), rtol=1e-6)
        np.testing.assert_allclose(kx.grad.numpy(), ex.grad.numpy(), rtol=1e-5, atol=1e-7)
