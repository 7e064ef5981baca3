"""Layers of ``frontend.nn`` against ``torch.nn`` as the oracle.

Every module is run on both sides with copied weights: outputs, the input gradient and
every parameter gradient must match (float32 and float64), as must grad_fn names,
running statistics and reprs. Functionals are also gradchecked in float64.
"""
import math

import numpy as np
import pytest
import torch

import frontend
import frontend.nn as nn
import frontend.nn.functional as F
from frontend.autograd import gradcheck

DTYPES = {"float32": (np.float32, 1e-5), "float64": (np.float64, 1e-10)}


# ------------------------------------------------------------------------- helpers
def rand(*shape, dtype=np.float32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def pair(array, requires_grad=False):
    """The same data as a Kiln tensor and a torch tensor (separate copies)."""
    return (frontend.tensor(array.copy(), requires_grad=requires_grad),
            torch.tensor(array.copy(), requires_grad=requires_grad))


def close(k, t, tol, what=""):
    expected = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    actual = k.detach().numpy() if isinstance(k, frontend.Tensor) else np.asarray(k)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} vs {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def copy_weights(kmod, tmod):
    kmod.load_state_dict({k: v.detach().numpy().copy() for k, v in tmod.state_dict().items()})


def run_both(kmod, tmod, arrays, tol, grad_fn=True, seed=1):
    """Forward both modules on the same inputs, backward the same random cotangent, and
    compare outputs, grad_fn names, input gradients and every parameter gradient."""
    kin, tin = zip(*(pair(a, requires_grad=a.dtype.kind == "f") for a in arrays))
    kout, tout = kmod(*kin), tmod(*tin)
    close(kout, tout, tol, "output")
    if grad_fn:
        assert kout.grad_fn.name() == tout.grad_fn.name()
    cot = rand(*tout.shape, dtype=arrays[0].dtype, seed=seed)
    kout.backward(frontend.tensor(cot))
    tout.backward(torch.tensor(cot))
    for i, (k, t) in enumerate(zip(kin, tin)):
        if t.requires_grad:
            close(k.grad, t.grad, tol, f"grad of input {i}")
    tparams = dict(tmod.named_parameters())
    assert [n for n, _ in kmod.named_parameters()] == list(tparams)
    for name, p in kmod.named_parameters():
        if tparams[name].grad is None:
            assert p.grad is None, name
        else:
            close(p.grad, tparams[name].grad, tol, f"grad of {name}")
    return kout, tout


def build(kmod, tmod, dtype):
    """Cast both modules to ``dtype`` and give the Kiln one torch's weights."""
    if dtype == np.float64:
        kmod, tmod = kmod.double(), tmod.double()
    copy_weights(kmod, tmod)
    return kmod, tmod


# ------------------------------------------------------------------- reprs and params
REPRS = [
    ("Linear", (400, 120), {}), ("Linear", (3, 4), {"bias": False}),
    ("Bilinear", (2, 3, 4), {}), ("Identity", (3,), {"a": 4}),
    ("Flatten", (), {}), ("Flatten", (0, 2), {}), ("Unflatten", (1, (2, 5)), {}),
    ("ReLU", (), {}), ("ReLU", (True,), {}), ("ReLU6", (), {}), ("ReLU6", (True,), {}),
    ("LeakyReLU", (), {}), ("LeakyReLU", (0.2, True), {}), ("Sigmoid", (), {}),
    ("Tanh", (), {}), ("Softmax", (), {"dim": 1}), ("Softmax", (), {}), ("Softmin", (1,), {}),
    ("LogSoftmax", (), {"dim": 1}), ("GELU", (), {}), ("GELU", ("tanh",), {}),
    ("ELU", (), {}), ("ELU", (0.5, True), {}), ("Softplus", (), {}), ("Softplus", (2, 10), {}),
    ("SiLU", (), {}), ("SiLU", (True,), {}), ("Hardtanh", (), {}),
    ("Hardtanh", (-2, 2, True), {}), ("LogSigmoid", (), {}),
    ("Dropout", (), {}), ("Dropout", (0.2, True), {}), ("Dropout1d", (), {}),
    ("Dropout2d", (0.3,), {}), ("Dropout3d", (), {}),
    ("BatchNorm1d", (4,), {}), ("BatchNorm2d", (6,), {}),
    ("BatchNorm2d", (6,), {"momentum": None, "affine": False, "track_running_stats": False}),
    ("BatchNorm3d", (3,), {"eps": 1e-3}), ("BatchNorm1d", (4,), {"bias": False}),
    ("LayerNorm", (10,), {}), ("LayerNorm", ([4, 5],), {"elementwise_affine": False}),
    ("LayerNorm", (3,), {"bias": False}),
    ("Embedding", (10, 3), {}), ("Embedding", (10, 3), {"padding_idx": 0}),
    ("Embedding", (10, 3), {"padding_idx": -1, "max_norm": 1.0}),
]


@pytest.mark.parametrize("name,args,kwargs", REPRS, ids=[f"{r[0]}{i}" for i, r in enumerate(REPRS)])
def test_repr_and_parameters_match_torch(name, args, kwargs):
    k, t = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(k) == repr(t)
    kp = [(n, tuple(p.shape), p.dtype.name) for n, p in k.named_parameters()]
    tp = [(n, tuple(p.shape), str(p.dtype)[6:]) for n, p in t.named_parameters()]
    assert kp == tp
    kb = [(n, tuple(b.shape), b.dtype.name) for n, b in k.named_buffers()]
    tb = [(n, tuple(b.shape), str(b.dtype)[6:]) for n, b in t.named_buffers()]
    assert kb == tb
    assert list(k.state_dict()) == list(t.state_dict())


def test_seed_tutorial_reprs():
    assert repr(nn.Linear(400, 120)) == "Linear(in_features=400, out_features=120, bias=True)"
    assert repr(nn.Dropout(0.5)) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.BatchNorm2d(6)) == repr(torch.nn.BatchNorm2d(6))


# ------------------------------------------------------------------ initialisation
def _uniform_stats(values, bound):
    values = values.reshape(-1)
    assert values.min() >= -bound and values.max() <= bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert abs(values.mean()) < 0.05 * bound


def test_linear_default_init_is_pytorch_uniform():
    m = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    _uniform_stats(m.weight.detach().numpy(), bound)
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    assert m.weight.requires_grad and m.bias.requires_grad and m.weight.is_leaf
    m64 = nn.Linear(3, 2, dtype=frontend.float64)
    assert m64.weight.dtype == frontend.float64 and m64.bias.dtype == frontend.float64


def test_bilinear_embedding_norm_default_init():
    b = nn.Bilinear(100, 30, 40)
    _uniform_stats(b.weight.detach().numpy(), 1 / math.sqrt(100))
    e = nn.Embedding(500, 64, padding_idx=3)
    w = e.weight.detach().numpy()
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.std() - 1) < 0.03 and abs(rest.mean()) < 0.03
    bn = nn.BatchNorm1d(5)
    assert np.all(bn.weight.detach().numpy() == 1) and np.all(bn.bias.detach().numpy() == 0)
    assert np.all(bn.running_var.numpy() == 1) and bn.num_batches_tracked.dtype == frontend.int64
    ln = nn.LayerNorm((2, 3))
    assert np.all(ln.weight.detach().numpy() == 1) and np.all(ln.bias.detach().numpy() == 0)


# ------------------------------------------------------------------ linear layers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,), (2, 1, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, shape, bias):
    np_dtype, tol = DTYPES[dtype]
    k, t = build(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), np_dtype)
    run_both(k, t, [rand(*shape, dtype=np_dtype)], tol)


def test_linear_grad_fn_structure_is_pytorchs():
    k = nn.Linear(4, 3)
    y = k(frontend.randn(2, 4, requires_grad=True))
    assert y.grad_fn.name() == "AddmmBackward0"
    names = [n.name() if n else None for n, _ in y.grad_fn.next_functions]
    assert names == ["AccumulateGrad", "AccumulateGrad", "TBackward0"]
    assert nn.Linear(4, 3, bias=False)(frontend.randn(2, 4)).grad_fn.name() == "MmBackward0"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_torch(dtype, bias):
    np_dtype, tol = DTYPES[dtype]
    k, t = build(nn.Bilinear(3, 2, 4, bias=bias), torch.nn.Bilinear(3, 2, 4, bias=bias), np_dtype)
    run_both(k, t, [rand(5, 3, dtype=np_dtype), rand(5, 2, dtype=np_dtype, seed=3)], tol)
    run_both(k, t, [rand(2, 5, 3, dtype=np_dtype), rand(2, 5, 2, dtype=np_dtype, seed=3)], tol,
             grad_fn=False)


def test_linear_wrong_feature_size_names_shapes_and_changes_nothing():
    m = nn.Linear(4, 2)
    before = m.weight.detach().numpy().copy()
    x = frontend.randn(3, 5, requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        m(x)
    msg = str(e.value)
    assert "(3, 5)" in msg and "(2, 4)" in msg and "expects 4" in msg
    assert np.array_equal(m.weight.detach().numpy(), before)
    assert m.weight.grad is None and x.grad is None


def test_linear_dtype_mismatch_is_clear():
    with pytest.raises(RuntimeError, match="float64.*float32|share a dtype"):
        nn.Linear(4, 2)(frontend.randn(3, 4, dtype=frontend.float64))


def test_identity_flatten_unflatten():
    x = rand(2, 3, 4, 5)
    for k, t in [(nn.Identity(), torch.nn.Identity()), (nn.Flatten(), torch.nn.Flatten()),
                 (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)), (nn.Flatten(-2), torch.nn.Flatten(-2)),
                 (nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1)))]:
        run_both(k, t, [x], 0, grad_fn=False)


# ------------------------------------------------------------------------ activations
ACTIVATIONS = [("ReLU", ()), ("ReLU6", ()), ("LeakyReLU", ()), ("LeakyReLU", (0.2,)),
               ("Sigmoid", ()), ("Tanh", ()), ("Softmax", (1,)), ("Softmax", (-1,)),
               ("Softmin", (1,)), ("LogSoftmax", (1,)), ("GELU", ()), ("GELU", ("tanh",)),
               ("ELU", ()), ("ELU", (0.5,)), ("Softplus", ()), ("Softplus", (2.0, 1.0)),
               ("SiLU", ()), ("Hardtanh", ()), ("Hardtanh", (-0.5, 2.0)), ("LogSigmoid", ())]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,args", ACTIVATIONS, ids=[f"{a[0]}{a[1]}" for a in ACTIVATIONS])
def test_activation_modules_match_torch(dtype, name, args):
    np_dtype, tol = DTYPES[dtype]
    x = rand(4, 6, 3, dtype=np_dtype, scale=3)
    run_both(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), [x], tol, grad_fn=False)


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax", "Sigmoid", "Tanh", "LogSigmoid",
                                  "Softplus", "SiLU"])
def test_activations_finite_at_extreme_inputs(name):
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4], [1e4, 1e4, -1e4, 3.0, -3.0]], np.float32)
    args = (1,) if "Softmax" in name else ()
    kout, tout = run_both(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), [x], 1e-5,
                          grad_fn=False)
    assert np.all(np.isfinite(kout.detach().numpy()))


def test_inplace_relu_module():
    x = frontend.randn(3, 4)
    y = nn.ReLU(inplace=True)(x)
    assert y is x and float(x.min()) >= 0


# ---------------------------------------------------------------------------- dropout
def test_dropout_statistics_and_scaling():
    frontend.manual_seed(0)
    x = frontend.ones(200, 500)
    for p in (0.2, 0.5, 0.9):
        y = F.dropout(x, p).numpy()
        assert abs((y == 0).mean() - p) < 0.01
        np.testing.assert_allclose(y[y != 0], np.float32(1) / np.float32(1 - p), rtol=1e-6)


def test_dropout_gradient_is_mask_times_scale():
    x = frontend.randn(50, 40, requires_grad=True)
    y = F.dropout(x, 0.3)
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    kept = y.detach().numpy() != 0
    expected = np.where(kept, np.float32(1 / 0.7), 0).astype(np.float32)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_dropout_fresh_mask_per_call_and_seeded():
    x = frontend.ones(1000)
    a, b = F.dropout(x, 0.5).numpy(), F.dropout(x, 0.5).numpy()
    assert not np.array_equal(a, b)
    frontend.manual_seed(7)
    c = F.dropout(x, 0.5).numpy()
    frontend.manual_seed(7)
    assert np.array_equal(c, F.dropout(x, 0.5).numpy())


def test_dropout_eval_p0_p1():
    x = frontend.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    m = nn.Dropout(0.5)
    m.eval()
    assert m(x) is x
    m.train()
    assert m(x) is not x
    y = F.dropout(x, 1.0)
    assert np.all(y.detach().numpy() == 0)
    y.sum().backward()
    assert np.all(x.grad.numpy() == 0)


def test_dropout_inplace_and_bad_p():
    x = frontend.ones(100)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x and np.any(x.numpy() == 0) and np.any(x.numpy() == 2)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"between 0 and 1, but got {p}"):
            F.dropout(x, p)
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(p)


@pytest.mark.parametrize("fn,shape,lead", [(F.dropout1d, (4, 30, 7), 2), (F.dropout1d, (30, 7), 1),
                                           (F.dropout2d, (4, 30, 3, 5), 2),
                                           (F.dropout3d, (2, 30, 2, 3, 4), 2),
                                           (F.dropout3d, (30, 2, 3, 4), 1)])
def test_channel_dropout_zeros_whole_channels(fn, shape, lead):
    y = fn(frontend.ones(*shape), 0.5).numpy()
    channels = y.reshape(int(np.prod(shape[:lead])), -1)
    assert np.all((channels == 0).all(1) | (channels == 2).all(1))
    assert 0 < (channels[:, 0] == 0).mean() < 1


@pytest.mark.parametrize("cls,shape", [(nn.Dropout, (2, 3)), (nn.Dropout1d, (2, 3, 4)),
                                       (nn.Dropout2d, (2, 3, 4, 5)),
                                       (nn.Dropout3d, (2, 3, 4, 5, 6))])
def test_dropout_modules_respect_mode(cls, shape):
    m = cls(0.5)
    x = frontend.randn(*shape)
    assert m(x) is not x
    assert m.eval()(x) is x


# ---------------------------------------------------------------------- batch norm
BN_CASES = [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (4, 3, 5, 2)),
            ("BatchNorm3d", (2, 3, 2, 3, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape", BN_CASES, ids=[c[0] + str(len(c[1])) for c in BN_CASES])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"affine": False},
                                    {"track_running_stats": False}, {"bias": False},
                                    {"momentum": 0.3, "eps": 1e-3}],
                         ids=["default", "cumulative", "no-affine", "untracked", "no-bias", "custom"])
def test_batchnorm_train_steps_then_eval_match_torch(dtype, name, shape, kwargs):
    np_dtype, tol = DTYPES[dtype]
    k, t = build(getattr(nn, name)(3, **kwargs), getattr(torch.nn, name)(3, **kwargs), np_dtype)
    for step in range(4):
        x = rand(*shape, dtype=np_dtype, seed=10 + step, scale=2) + step
        k.zero_grad()
        t.zero_grad()
        run_both(k, t, [x], tol * 10)
        for buf, tbuf in zip(k.buffers(), t.buffers()):
            close(buf, tbuf, tol, "running statistics")
    k.eval()
    t.eval()
    run_both(k, t, [rand(*shape, dtype=np_dtype, seed=99)], tol * 10)


def test_batchnorm_running_var_is_unbiased():
    x = rand(6, 2, seed=4)
    bn = nn.BatchNorm1d(2, momentum=1.0)
    bn(frontend.tensor(x))
    np.testing.assert_allclose(bn.running_var.numpy(), x.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), x.mean(0), rtol=1e-5, atol=1e-7)
    assert int(bn.num_batches_tracked) == 1


def test_batchnorm_errors_and_grad_fn():
    with pytest.raises(ValueError, match="expected 4D input \\(got 3D input\\)"):
        nn.BatchNorm2d(3)(frontend.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(frontend.randn(2, 3, 4, 5))
    bn = nn.BatchNorm1d(5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(frontend.randn(1, 5))
    assert int(bn.num_batches_tracked) == 0  # rejected input changes nothing
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements.*\\(5,\\)"):
        F.batch_norm(frontend.randn(4, 3), frontend.zeros(5), frontend.ones(5))
    y = nn.BatchNorm2d(3)(frontend.randn(2, 3, 4, 4, requires_grad=True))
    assert y.grad_fn.name() == "NativeBatchNormBackward0"
    assert len(y.grad_fn.next_functions) == 3


# ---------------------------------------------------------------------- layer norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kwargs", [(5, {}), ((3, 5), {}), (5, {"bias": False}),
                                          ((3, 5), {"elementwise_affine": False}),
                                          (5, {"eps": 1e-2})])
def test_layernorm_matches_torch(dtype, shape, kwargs):
    np_dtype, tol = DTYPES[dtype]
    k, t = build(nn.LayerNorm(shape, **kwargs), torch.nn.LayerNorm(shape, **kwargs), np_dtype)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(torch.randn(p.shape, dtype=p.dtype))
    copy_weights(k, t)
    run_both(k, t, [rand(4, 3, 5, dtype=np_dtype, scale=3)], tol * 10)


def test_layernorm_shape_error():
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\].*\[\*, 4\].*\[3, 5\]"):
        F.layer_norm(frontend.randn(3, 5), (4,))


# ------------------------------------------------------------------------ embedding
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(dtype, padding_idx):
    np_dtype, tol = DTYPES[dtype]
    k, t = build(nn.Embedding(10, 3, padding_idx=padding_idx),
                 torch.nn.Embedding(10, 3, padding_idx=padding_idx), np_dtype)
    with torch.no_grad():
        t.weight.add_(1.0)  # a non-zero padding row must still be returned as is
    copy_weights(k, t)
    idx = np.array([[1, 2, 2, 9], [0, 2, 5, 1]], np.int64)
    run_both(k, t, [idx], tol)
    if padding_idx is not None:
        assert np.all(k.weight.grad.numpy()[padding_idx % 10] == 0)


def test_embedding_errors():
    w = frontend.randn(10, 3, requires_grad=True)
    with pytest.raises(IndexError, match="index 10 is out of range.*num_embeddings=10"):
        F.embedding(frontend.tensor([1, 10]), w)
    with pytest.raises(IndexError, match="index -1 .*num_embeddings=10"):
        F.embedding(frontend.tensor([-1]), w)
    with pytest.raises(RuntimeError, match="int64 or int32.*float32"):
        F.embedding(frontend.tensor([1.0]), w)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(5, 2, padding_idx=5)
    assert w.grad is None


def test_embedding_from_pretrained_and_max_norm():
    w = rand(6, 4, scale=3)
    k = nn.Embedding.from_pretrained(frontend.tensor(w.copy()))
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w.copy()))
    assert not k.weight.requires_grad and repr(k) == repr(t)
    k2 = nn.Embedding.from_pretrained(frontend.tensor(w.copy()), freeze=False, max_norm=1.5)
    t2 = torch.nn.Embedding.from_pretrained(torch.tensor(w.copy()), freeze=False, max_norm=1.5)
    idx = np.array([0, 3, 3, 5])
    run_both(k2, t2, [idx], 1e-5)
    close(k2.weight, t2.weight, 1e-5, "renormalised weight")


def test_one_hot_matches_torch():
    x = np.array([[0, 2], [1, 4]])
    close(F.one_hot(frontend.tensor(x)), torch.nn.functional.one_hot(torch.tensor(x)), 0)
    close(F.one_hot(frontend.tensor(x), 6), torch.nn.functional.one_hot(torch.tensor(x), 6), 0)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(frontend.tensor([1, 5]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(frontend.tensor([1, -1]))


# --------------------------------------------------------------------------- padding
PADS = [((1, 2), "constant"), ((1, 2, 0, 1), "constant"), ((-1, 2, 1, -2), "constant"),
        ((1, 1, 1, 1, 1, 1), "constant"), ((2, 1), "reflect"), ((1, 2, 2, 0), "reflect"),
        ((-1, 2), "reflect"), ((2, 3), "replicate"), ((1, 0, 3, 2), "replicate"),
        ((1, 2), "circular"), ((2, 1, 1, 2), "circular")]


# every pad on 3-D and 4-D inputs, except the non-constant combinations PyTorch rejects
PAD_CASES = [(pad, mode, ndim) for pad, mode in PADS for ndim in (3, 4)
             if mode == "constant" or ndim in (len(pad) // 2 + 1, len(pad) // 2 + 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad,mode,ndim", PAD_CASES, ids=[f"{m}{p}-{n}d" for p, m, n in PAD_CASES])
def test_pad_matches_torch(dtype, pad, mode, ndim):
    np_dtype, tol = DTYPES[dtype]
    x = rand(*(2, 3, 4, 5)[4 - ndim:], dtype=np_dtype)
    kx, tx = pair(x, requires_grad=True)
    kwargs = {"value": 1.5} if mode == "constant" else {}
    ky = F.pad(kx, pad, mode=mode, **kwargs)
    ty = torch.nn.functional.pad(tx, pad, mode=mode, **kwargs)
    close(ky, ty, tol)
    assert ky.grad_fn.name() == ty.grad_fn.name().replace("torch::autograd::", "")
    cot = rand(*ty.shape, dtype=np_dtype, seed=5)
    ky.backward(frontend.tensor(cot))
    ty.backward(torch.tensor(cot))
    close(kx.grad, tx.grad, tol)


def test_pad_errors():
    x = frontend.randn(1, 2, 5)
    with pytest.raises(RuntimeError, match="divisible by 2"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(RuntimeError, match="padding length 8 and input of dimension 3"):
        F.pad(x, (1,) * 8)
    with pytest.raises(RuntimeError, match=r"padding \(5, 1\) at dimension 2"):
        F.pad(x, (5, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode 'foo'"):
        F.pad(x, (1, 1), mode="foo")
    with pytest.raises(NotImplementedError, match="Padding size 2 is not supported for 1D"):
        F.pad(frontend.randn(5), (1, 1), mode="replicate")
    with pytest.raises(RuntimeError, match="negative output size"):
        F.pad(x, (-3, -3))


# ----------------------------------------------------------------------- normalize
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1), (float("inf"), 1)])
def test_normalize_matches_torch(p, dim):
    x = rand(4, 5, dtype=np.float64)
    x[1] = 0  # a zero vector: finite output and zero gradient, as in torch
    kx, tx = pair(x, requires_grad=True)
    ky, ty = F.normalize(kx, p, dim), torch.nn.functional.normalize(tx, p, dim)
    close(ky, ty, 1e-10)
    assert ky.grad_fn.name() == ty.grad_fn.name() == "DivBackward0"
    cot = rand(4, 5, dtype=np.float64, seed=2)
    ky.backward(frontend.tensor(cot))
    ty.backward(torch.tensor(cot))
    close(kx.grad, tx.grad, 1e-10)


# ------------------------------------------------------------------------ gradcheck
def _seeded_dropout(fn, seed=3):
    def call(x):
        frontend.manual_seed(seed)
        return fn(x, 0.4)
    return call


def _g(*shape, seed=0, requires_grad=True):
    return frontend.tensor(rand(*shape, dtype=np.float64, seed=seed), requires_grad=requires_grad)


GRADCHECKS = {
    "linear": lambda: (F.linear, (_g(3, 4), _g(2, 4, seed=1), _g(2, seed=2))),
    "linear_nd": lambda: (F.linear, (_g(2, 2, 4), _g(3, 4, seed=1))),
    "bilinear": lambda: (F.bilinear, (_g(3, 2), _g(3, 3, seed=1), _g(2, 2, 3, seed=2),
                                      _g(2, seed=3))),
    "dropout": lambda: (_seeded_dropout(F.dropout), (_g(4, 5),)),
    "dropout2d": lambda: (_seeded_dropout(F.dropout2d), (_g(2, 3, 2, 2),)),
    "batch_norm_train": lambda: (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        (_g(4, 3, 2), _g(3, seed=1), _g(3, seed=2))),
    "batch_norm_eval": lambda: (
        lambda x, w, b: F.batch_norm(x, frontend.tensor([0.1, -0.2, 0.3], dtype=frontend.float64),
                                     frontend.tensor([1.5, 0.5, 2.0], dtype=frontend.float64), w, b),
        (_g(4, 3, 2), _g(3, seed=1), _g(3, seed=2))),
    "layer_norm": lambda: (lambda x, w, b: F.layer_norm(x, (2, 3), w, b),
                           (_g(2, 2, 3), _g(2, 3, seed=1), _g(2, 3, seed=2))),
    "normalize": lambda: (F.normalize, (_g(3, 4),)),
    # (padding_idx is left out: its row's zero gradient is deliberately not the derivative)
    "embedding": lambda: (lambda w: F.embedding(frontend.tensor([[0, 2], [2, 3]]), w), (_g(4, 3),)),
    "pad_constant": lambda: (lambda x: F.pad(x, (1, -1, 2, 0), value=0.5), (_g(2, 3, 4),)),
    "pad_reflect": lambda: (lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), (_g(1, 3, 4),)),
    "pad_replicate": lambda: (lambda x: F.pad(x, (2, 3), mode="replicate"), (_g(2, 2, 3),)),
    "pad_circular": lambda: (lambda x: F.pad(x, (1, 2), mode="circular"), (_g(2, 2, 3),)),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_functional_gradcheck(name):
    fn, inputs = GRADCHECKS[name]()
    assert gradcheck(fn, inputs)


def test_double_backward_through_linear_and_layer_norm():
    from frontend.autograd import gradgradcheck
    assert gradgradcheck(F.linear, (_g(2, 3), _g(2, 3, seed=1), _g(2, seed=2)))
    assert gradgradcheck(lambda x: F.layer_norm(x, (3,)), (_g(2, 3),))
