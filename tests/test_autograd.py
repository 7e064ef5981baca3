"""The autograd tape against torch: graph structure, backward/grad semantics, higher-order
derivatives, hooks, grad modes, version counters and custom Functions (both styles)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import frontend as kiln
import frontend.nn.functional as KF
import torch.nn.functional as TF
from frontend.autograd import Function, Variable
from helpers import assert_same, to_kiln, to_numpy

R = np.random.default_rng(7)


def leaves(T, *shapes, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, size=s).astype(dtype) for s in shapes]
    return [T.tensor(a, requires_grad=True) for a in arrays]


# ---------------------------------------------------------------------- graph structure
def signature(t, leaf_ids):
    """The graph below ``t.grad_fn`` as nested tuples of names; AccumulateGrad nodes are
    identified by which leaf their ``.variable`` is."""
    def node_sig(node, depth=0):
        if node is None:
            return None
        name = node.name() if isinstance(node, kiln.autograd.graph.Node) else type(node).__name__
        if name == "AccumulateGrad":
            return ("AccumulateGrad", leaf_ids[id(node.variable)])
        assert depth < 50
        return (name, tuple((node_sig(n, depth + 1), i) for n, i in node.next_functions))
    return node_sig(t.grad_fn)


GRAPHS = [
    ("mul_add", lambda T, x, y: x * y + x),
    ("sub_div", lambda T, x, y: (x - y) / (y * y + 1)),
    ("matmul_relu_sum", lambda T, x, y: (x @ y.t()).relu().sum()),
    ("exp_log_mean", lambda T, x, y: (x.exp() + 1).log().mean()),
    ("sigmoid_tanh", lambda T, x, y: x.sigmoid() * y.tanh()),
    ("neg_pow", lambda T, x, y: -(x ** 2) + y ** 3),
    ("view_slice", lambda T, x, y: x.view(-1)[1:3]),
    ("t_reshape", lambda T, x, y: x.t().reshape(-1)),
    ("cat_stack", lambda T, x, y: T.cat([x, y]) * T.stack([x, y]).sum(0).sum()),
    ("max_dim", lambda T, x, y: x.max(1)[0]),
    ("max_full", lambda T, x, y: x.max() + y.min()),
    ("where", lambda T, x, y: T.where(x > 0, x, y)),
    ("softmax", lambda T, x, y: x.softmax(-1)),
    ("log_softmax", lambda T, x, y: x.log_softmax(0)),
    ("sum_keepdim", lambda T, x, y: x.sum(0, keepdim=True) + y.mean(1, keepdim=True)),
    ("unsqueeze_expand", lambda T, x, y: x.unsqueeze(0).expand(2, 3, 4)),
    ("clone_to", lambda T, x, y: x.clone().to(T.float64)),
    ("index", lambda T, x, y: x[None] + y[[0, 2, 1]]),
    ("detach", lambda T, x, y: x.detach() * y),
    ("transpose_permute", lambda T, x, y: x.transpose(0, 1).permute(1, 0)),
    ("squeeze", lambda T, x, y: x.unsqueeze(1).squeeze(1).squeeze()),
    ("clamp", lambda T, x, y: x.clamp(min=0) + y.clamp(-0.5, 0.5)),
    ("abs_sqrt", lambda T, x, y: (x.abs() + 1).sqrt()),
    ("scalar_rsub", lambda T, x, y: 1 - x),
    ("pow_scalar_base", lambda T, x, y: 2 ** x),
    ("pow_tensor", lambda T, x, y: x.abs() ** y),
    ("mm", lambda T, x, y: T.mm(x, y.t())),
    ("bmm", lambda T, x, y: T.bmm(x.unsqueeze(0), y.t().unsqueeze(0))),
    ("setitem", lambda T, x, y: _setitem(x, y)),
    ("mse_like", lambda T, x, y: ((x - y) ** 2).mean()),
    ("F_mse", lambda T, x, y: (TF if T is torch else KF).mse_loss(x, y)),
    ("var_std_logsumexp", lambda T, x, y: x.var() + y.std(0).sum() + x.logsumexp(1).sum()),
]


def _setitem(x, y):
    g = x.clone()
    g[:, 0] = y[:, 1]
    return g


@pytest.mark.parametrize("fn", [g[1] for g in GRAPHS], ids=[g[0] for g in GRAPHS])
def test_grad_fn_structure(fn):
    sigs = []
    for T in (torch, kiln):
        x, y = leaves(T, (3, 4), (3, 4))
        out = fn(T, x, y)
        sigs.append(signature(out, {id(x): "x", id(y): "y"}))
    assert sigs[1] == sigs[0]


def test_accumulate_grad_variable_is_the_leaf():
    x = kiln.ones(2, requires_grad=True)
    y = x * 2
    node, nr = y.grad_fn.next_functions[0]
    assert node.name() == "AccumulateGrad" and nr == 0 and node.variable is x
    assert y.grad_fn.next_functions[1] == (None, 0)  # the constant 2
    # the same leaf gets the same AccumulateGrad node each time
    assert (x * 3).grad_fn.next_functions[0][0] is node


def test_leaf_and_requires_grad_propagation():
    x = kiln.ones(2, 2, requires_grad=True)
    c = kiln.ones(2, 2)
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    y = x + c
    assert not y.is_leaf and y.requires_grad and y.grad_fn.name() == "AddBackward0"
    z = c * 2
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None
    assert not (x > 0).requires_grad and (x > 0).is_leaf
    assert not x.argmax().requires_grad
    assert not x.detach().requires_grad and x.detach().is_leaf
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="floating point"):
        kiln.tensor([1, 2]).requires_grad_()


# ---------------------------------------------------------------------- backward semantics
def test_seed_basics():
    """The seed tutorial's autograd example."""
    x = Variable(kiln.ones(2, 2), requires_grad=True)
    y = x + 2
    assert y.grad_fn.name() == "AddBackward0"
    z = y * y * 3
    out = z.mean()
    assert repr(out) == "tensor(27., grad_fn=<MeanBackward0>)"
    out.backward()
    assert kiln.allclose(x.grad, kiln.full((2, 2), 4.5))
    assert x.data.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_seed_claims_grad_is_2x():
    x = kiln.randn(3, requires_grad=True)
    y = kiln.randn(3, requires_grad=True)
    out = (x ** 2 + 3 * y).sum()
    out.backward()
    assert kiln.allclose(x.grad, 2 * x)
    assert kiln.allclose(y.grad, kiln.full((3,), 3.0))


def test_backward_non_scalar_needs_gradient():
    x = kiln.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"shape"):
        y.backward(kiln.ones(2))
    y.backward(gradient=kiln.tensor([1.0, 0.5, 0.0]))
    assert x.grad.tolist() == [2.0, 1.0, 0.0]


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        kiln.ones(2).sum().backward()


def test_accumulation_and_retain_graph():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]  # accumulated
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph"):
        y.backward()
    x.grad = None
    z = (x.exp() * 2).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        z.backward()


def test_second_backward_through_unsaved_ops_also_raises():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_grad_accumulates_in_place_into_same_tensor():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    g = x.grad
    (x * 3).sum().backward()
    assert g is x.grad and x.grad.tolist() == [6.0, 6.0]
    x.grad.zero_()
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_backward_dtype_float64():
    x = kiln.tensor([1.0, 2.0], dtype=kiln.float64, requires_grad=True)
    (x.float() * 2).sum().backward()
    assert x.grad.dtype == kiln.float64 and x.grad.tolist() == [2.0, 2.0]


def test_backward_with_inputs_argument():
    x, y = leaves(kiln, (3,), (3,))
    (x * y).sum().backward(inputs=[x])
    assert x.grad is not None and y.grad is None
    assert kiln.allclose(x.grad, y)


# ---------------------------------------------------------------------- higher order
HIGHER = [
    ("cube", lambda T, x: (x ** 3).sum(), 3),
    ("tanh", lambda T, x: x.tanh().sum(), 3),
    ("sigmoid", lambda T, x: x.sigmoid().sum(), 3),
    ("exp_log", lambda T, x: (x.exp() + 1).log().sum(), 3),
    ("softmax", lambda T, x: (x.softmax(-1) * T.arange(4.0)).sum(), 2),
    ("log_softmax", lambda T, x: (x.log_softmax(1) ** 2).sum(), 2),
    ("matmul_chain", lambda T, x: ((x @ x.t()).tanh() @ x).sum(), 2),
    ("div_sqrt", lambda T, x: (x / (x * x + 1).sqrt()).sum(), 2),
    ("logsumexp", lambda T, x: x.logsumexp(1).sum(), 2),
    ("var_std", lambda T, x: x.var(1).sum() + x.std(), 2),
    ("max_mean", lambda T, x: (x.max(1)[0] ** 2).mean() + (x.max() ** 3), 2),
    ("mse", lambda T, x: (TF if T is torch else KF).mse_loss(x ** 2, x.detach() + 1), 2),
    ("pow_tensor", lambda T, x: (x.abs() + 0.5) ** x, 2),
    ("index_cat", lambda T, x: (T.cat([x[1:] ** 2, x[[0, 0]]], 0) ** 2).sum(), 2),
    ("relu_clamp", lambda T, x: (x.relu() ** 3 + x.clamp(-0.5, 0.5) ** 2).sum(), 2),
]


def _higher_grads(T, fn, order, dtype):
    (x,) = leaves(T, (3, 4), dtype=dtype, seed=3)
    out = fn(T, x)
    if out.dim():
        out = out.sum()
    rng = np.random.default_rng(11)
    results = []
    g = out
    for k in range(order):
        v = T.tensor(rng.standard_normal((3, 4)).astype(dtype))
        (gx,) = T.autograd.grad(g, x, create_graph=True)
        results.append(gx)
        g = (gx * v).sum()
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", HIGHER, ids=[h[0] for h in HIGHER])
def test_higher_order(case, dtype):
    _, fn, order = case
    t_grads = _higher_grads(torch, fn, order, dtype)
    k_grads = _higher_grads(kiln, fn, order, dtype)
    for k, (t, kk) in enumerate(zip(t_grads, k_grads)):
        assert kk.requires_grad, f"order {k + 1} gradient is not differentiable"
        assert_same(t, kk, f"order {k + 1}", rtol=1e-4 if dtype == "float32" else 1e-9,
                    atol=1e-4 if dtype == "float32" else 1e-10)


def test_gradgradcheck():
    x = kiln.tensor(R.uniform(-1, 1, (2, 3)), requires_grad=True)
    assert kiln.autograd.gradgradcheck(lambda a: (a.tanh() * a.sigmoid()).sum(1), (x,))
    assert kiln.autograd.gradgradcheck(lambda a: a.softmax(-1), (x,))


def test_create_graph_backward_then_grad():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = kiln.autograd.grad(x.grad.sum(), x)
    assert g2.tolist() == [6.0, 12.0]


# ---------------------------------------------------------------------- autograd.grad
def test_grad_basic_and_grad_outputs():
    x, y = leaves(kiln, (3,), (3,))
    out = x * y
    gx, gy = kiln.autograd.grad(out, (x, y), grad_outputs=kiln.tensor([1.0, 2.0, 3.0]))
    assert isinstance(kiln.autograd.grad((x * 2).sum(), x), tuple)
    assert kiln.allclose(gx, y * kiln.tensor([1.0, 2.0, 3.0]))
    assert kiln.allclose(gy, x * kiln.tensor([1.0, 2.0, 3.0]))
    assert x.grad is None and y.grad is None  # grad() never touches .grad


def test_grad_allow_unused():
    x, y = leaves(kiln, (3,), (3,))
    out = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        kiln.autograd.grad(out, [x, y], retain_graph=True)
    gx, gy = kiln.autograd.grad(out, [x, y], allow_unused=True)
    assert gy is None and gx.tolist() == [2.0, 2.0, 2.0]


def test_grad_non_leaf_inputs_and_multiple_outputs():
    tx, ty = leaves(torch, (3,), (3,))
    kx, ky = leaves(kiln, (3,), (3,))
    results = []
    for T, x, y in ((torch, tx, ty), (kiln, kx, ky)):
        h = x * y            # a non-leaf input
        a = h.exp().sum()
        b = (h * x).sum()
        results.append(T.autograd.grad([a, b], [h, x]))
    for t, k in zip(*results):
        assert_same(t, k)


def test_grad_requires_grad_inputs():
    x = kiln.ones(2)
    y = kiln.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        kiln.autograd.grad((x * y).sum(), [x])


# ---------------------------------------------------------------------- retain_grad, hooks
def test_retain_grad():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    assert h.retains_grad
    out = (h * h).sum()
    out.backward()
    assert h.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]
    h2 = x * 3
    (h2 * h2).sum().backward()
    assert h2.grad is None  # not retained


def test_register_hook_modifies_gradient():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x * 2
    handle = h.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: seen.append(g.tolist()))
    h.sum().backward()
    assert x.grad.tolist() == [20.0, 20.0]
    assert seen == [[20.0, 20.0]]
    handle.remove()
    x.grad = None
    h2 = x * 2
    h2.register_hook(lambda g: g * 10)
    handle2 = h2.register_hook(lambda g: g + 1)
    handle2.remove()
    h2.sum().backward()
    assert x.grad.tolist() == [20.0, 20.0]  # the removed hook did not run


def test_hook_on_leaf_replaces_grad():
    x = kiln.tensor([1.0, -1.0], requires_grad=True)
    x.register_hook(lambda g: g.clamp(min=0))
    (x * kiln.tensor([-3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 4.0]


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="requires_grad|require gradient"):
        kiln.ones(2).register_hook(lambda g: g)


# ---------------------------------------------------------------------- grad modes
def test_no_grad_context_and_decorator():
    x = kiln.ones(2, requires_grad=True)
    with kiln.no_grad():
        y = x * 2
        assert not kiln.is_grad_enabled()
        with kiln.enable_grad():
            z = x * 2
            assert kiln.is_grad_enabled()
        assert not kiln.is_grad_enabled()
    assert kiln.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @kiln.no_grad()
    def f(a):
        return a * 2

    @kiln.no_grad()
    def g(a):
        return f(a)

    assert not f(x).requires_grad and not g(x).requires_grad and kiln.is_grad_enabled()


def test_set_grad_enabled():
    x = kiln.ones(2, requires_grad=True)
    with kiln.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    kiln.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        kiln.set_grad_enabled(True)
    assert kiln.is_grad_enabled()

    @kiln.set_grad_enabled(False)
    def f(a):
        return a * 2
    assert kiln.is_grad_enabled() and not f(x).requires_grad


def test_no_grad_restores_after_exception():
    with pytest.raises(ValueError):
        with kiln.no_grad():
            raise ValueError
    assert kiln.is_grad_enabled()


# ---------------------------------------------------------------------- detach / data
def test_detach_shares_storage():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d[0] = 10.0
    assert x.tolist()[0] == 10.0
    d2 = x.data
    d2.mul_(2)
    assert x.tolist() == [20.0, 4.0] and not d2.requires_grad


def test_detach_in_place():
    x = kiln.ones(2, requires_grad=True)
    y = x * 2
    y.detach_()
    assert y.is_leaf and not y.requires_grad and y.grad_fn is None


def test_data_modification_is_untracked():
    """``.data`` edits bypass the version counter, as in PyTorch."""
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.data.mul_(0)
    y.sum().backward()  # no error: .data is untracked
    assert x.grad.tolist() == [0.0, 0.0]


def test_detach_shares_version_counter():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.detach().zero_()
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


# ---------------------------------------------------------------------- version counters
def test_inplace_on_saved_tensor_raises():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y.sigmoid()
    z.add_(1)  # sigmoid saved its output
    with pytest.raises(RuntimeError, match=r"inplace operation.*version 1; expected version 0"):
        z.sum().backward()


def test_inplace_on_saved_input_raises():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    w = kiln.tensor([3.0, 4.0], requires_grad=True)
    y = x * 1
    z = y * w  # saves y for w's gradient
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_on_unneeded_saved_value_is_fine():
    """Only values the gradient really uses are checked, as in PyTorch."""
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.add_(1)             # MulBackward0 saved y but needs only the constant
    (y * 3).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    x.grad = None
    out = x.clone()
    out[0] = 5.0          # CloneBackward0 needs nothing saved
    out += 1
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]
    x.grad = None
    h = x * 1
    z = h * 3
    h.add_(1)             # z's grad needs only the constant 3
    z.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_inplace_through_a_view_bumps_base_version():
    x = kiln.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x.exp()
    y.view(-1)[:2].detach().zero_()  # a detached view still shares y's version counter
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


def test_composite_input_modified_in_place():
    """First order differentiates the composite's own saved values (right, as torch's);
    create_graph must recompute from the inputs, so an overwritten input raises instead of
    silently differentiating the new values."""
    w = [1.0, -2.0, 0.5]
    results = []
    for T in (torch, kiln):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        s = y.softmax(0)
        y.mul_(3)
        results.append(T.autograd.grad((s * T.tensor(w)).sum(), x)[0])
    assert_same(results[0], results[1])
    x = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    s = y.softmax(0)
    y.mul_(3)
    with pytest.raises(RuntimeError, match=r"inplace operation.*SoftmaxBackward0.*version 1"):
        kiln.autograd.grad((s * kiln.tensor(w)).sum(), x, create_graph=True)


def test_version_counter_values():
    x = kiln.ones(3)
    assert x._version.value == 0
    x.add_(1)
    x[0] = 2
    x.mul_(2)
    assert x._version.value == 3
    v = x.view(3)
    v.zero_()
    assert x._version.value == 4


def test_inplace_on_leaf_requiring_grad_raises():
    x = kiln.ones(2, requires_grad=True)
    for op in (lambda: x.add_(1), lambda: x.mul_(2), lambda: x.zero_(),
               lambda: x.__setitem__(0, 1.0), lambda: x.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op()
    with kiln.no_grad():
        x.add_(1)  # fine under no_grad (how optimizers update parameters)
    assert x.tolist() == [2.0, 2.0]


def test_inplace_records_history():
    tx, = leaves(torch, (3,))
    kx, = leaves(kiln, (3,))
    outs = []
    for x in (tx, kx):
        y = x * 2
        y += 1
        y *= x
        y.sub_(0.5)
        y.div_(2)
        y.clamp_(min=0)
        outs.append(y)
        y.sum().backward()
    assert outs[1].grad_fn.name() == type(outs[0].grad_fn).__name__
    assert_same(outs[0], outs[1])
    assert_same(tx.grad, kx.grad)


# ---------------------------------------------------------------------- in-place on views
def _view_a(T, x, w):
    y = x * 1
    y[1:].mul_(2)                    # in-place through a slice view
    return y


def _view_b(T, x, w):
    y = x * 1
    y.view(-1)[2:6] += w[0]          # reshape view, then slice view
    return y


def _view_c(T, x, w):
    y = x * 1
    y.t()[0].zero_()                 # permute view, then select view
    return y


def _view_d(T, x, w):
    y = x.sigmoid() * 1
    y[0][1:3] = w[1, :2]             # setitem on a view
    return y * y


def _view_e(T, x, w):
    out = T.zeros(3, 4)              # a base without history gains one
    out[0][1:] = w[0, :3]
    out[2].add_(w[1])
    return out


def _view_f(T, x, w):
    y = x * 1
    r = y[0]
    r.mul_(w[0])                     # the view's own history is rebuilt too
    return r * 2 + y.sum(0)


def _view_g(T, x, w):
    y = x * 1
    y[None][0, ..., 1].div_(w[0, :3].abs() + 1)   # None / ellipsis views
    return y


def _stale_base_write(T, x, w):
    y = x * 1
    a = y[:2]                        # a view taken before its base changes in place
    y.mul_(w)
    return a


def _stale_sibling_write(T, x, w):
    y = x * 1
    a, b = y[:2], y[1:]              # overlapping sibling views
    b.mul_(w[1:])
    return a * 1


def _stale_plain_base(T, x, w):
    out = T.zeros(3, 4)
    a = out[:2]                      # a view of a base that gains history later
    out[1:2] = w[0] * 5
    return a


def _stale_view_of_view(T, x, w):
    y = x * 1
    a = y.t()[1:]                    # a view of a view, registered with the root base
    y[:, 2].add_(w[:, 0])
    return a.reshape(-1)


VIEW_INPLACE = [("stale_base_write", _stale_base_write),
                ("stale_sibling_write", _stale_sibling_write),
                ("stale_plain_base", _stale_plain_base),
                ("stale_view_of_view", _stale_view_of_view),
                ("slice_mul", _view_a), ("reshape_slice_iadd", _view_b),
                ("t_select_zero", _view_c), ("setitem_on_view", _view_d),
                ("plain_base", _view_e), ("view_history", _view_f), ("none_ellipsis", _view_g)]


@pytest.mark.parametrize("fn", [v[1] for v in VIEW_INPLACE], ids=[v[0] for v in VIEW_INPLACE])
def test_inplace_on_views_matches_torch(fn):
    results = []
    for T in (torch, kiln):
        x, w = leaves(T, (3, 4), (3, 4))
        out = fn(T, x, w)
        g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
        out.backward(T.tensor(g))
        results.append((out, x.grad, w.grad))
    for t, k in zip(*results):
        if t is None:
            assert k is None or not np.any(to_numpy(k))
        else:
            assert_same(t, k)


def test_view_requires_grad_follows_its_base():
    w = kiln.ones(1, requires_grad=True)
    out = kiln.zeros(3)
    a = out[:2]
    assert not a.requires_grad
    out[2:] = w
    assert a.requires_grad and a.grad_fn is not None  # as torch: history reaches old views


def test_inplace_on_view_base_gets_copyslices():
    x = kiln.ones(2, 3, requires_grad=True)
    y = x * 1
    y[0].mul_(3)
    assert y.grad_fn.name() == "CopySlices"
    tx = torch.ones(2, 3, requires_grad=True)
    ty = tx * 1
    ty[0].mul_(3)
    assert type(ty.grad_fn).__name__ == "CopySlices"
    assert signature(y, {id(x): "x"})[1][0] == signature(ty, {id(tx): "x"})[1][0]


def test_inplace_on_view_of_leaf_raises():
    x = kiln.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf Variable that requires grad"):
        x[0].add_(1)
    with pytest.raises(RuntimeError, match="view of a leaf Variable that requires grad"):
        x.view(-1)[0] = 2.0


def test_inplace_on_view_of_saved_output_raises():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y[0:1].mul_(2)  # exp saved y: its backward must refuse
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_view_second_order():
    for T in (torch, kiln):
        x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * x
        y[1:] *= x[1:]
        (g,) = T.autograd.grad(y.sum(), x, create_graph=True)
        (g2,) = T.autograd.grad(g.sum(), x)
        if T is torch:
            expected = (g.detach().numpy(), g2.numpy())
        else:
            np.testing.assert_allclose(to_numpy(g), expected[0])
            np.testing.assert_allclose(to_numpy(g2), expected[1])


def test_calling_a_node_directly():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    g = x.sum().grad_fn(kiln.tensor(1.0))
    assert isinstance(g, kiln.Tensor) and g.tolist() == [1.0, 1.0]
    w = kiln.tensor([3.0, 4.0], requires_grad=True)
    gx, gw = (x * w).grad_fn(kiln.ones(2))
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------- Variable
def test_variable_wrapper():
    t = kiln.ones(2, 2)
    v = Variable(t, requires_grad=True)
    assert isinstance(v, kiln.Tensor) and v.requires_grad and v.is_leaf
    assert v.data.tolist() == t.tolist()
    v.data[0, 0] = 5.0  # shares storage with the wrapped tensor, as torch's
    assert t.tolist() == [[5.0, 1.0], [1.0, 1.0]] and not t.requires_grad
    v2 = Variable(t)
    assert not v2.requires_grad
    v3 = Variable(kiln.tensor([1.0]), requires_grad=True)
    (v3 * 2).sum().backward()
    assert v3.grad.tolist() == [2.0]


# ---------------------------------------------------------------------- custom Functions
class MulConst(Function):
    @staticmethod
    def forward(ctx, x, y, k):
        ctx.save_for_backward(x, y)
        ctx.k = k
        return x * y * k

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * y * ctx.k if ctx.needs_input_grad[0] else None
        gy = g * x * ctx.k if ctx.needs_input_grad[1] else None
        return gx, gy, None


def test_modern_function():
    x, y = leaves(kiln, (3,), (3,))
    out = MulConst.apply(x, y, 2.0)
    assert out.grad_fn.name() == "MulConstBackward"
    assert [n.name() for n, _ in out.grad_fn.next_functions] == ["AccumulateGrad"] * 2
    out.sum().backward()
    assert kiln.allclose(x.grad, y * 2) and kiln.allclose(y.grad, x * 2)


def test_modern_function_needs_input_grad():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            seen["needs"] = ctx.needs_input_grad
            return g, None

    a = kiln.ones(2, requires_grad=True)
    b = kiln.ones(2)
    Probe.apply(a, b).sum().backward()
    assert seen["needs"] == (True, False)
    assert a.grad.tolist() == [1.0, 1.0]


def test_modern_function_mark_non_differentiable():
    class SortLike(Function):
        @staticmethod
        def forward(ctx, x):
            idx = x.argmax()
            ctx.mark_non_differentiable(idx)
            return x * 2, idx

        @staticmethod
        def backward(ctx, g, gidx):
            return g * 2

    x = kiln.ones(3, requires_grad=True)
    y, i = SortLike.apply(x)
    assert y.requires_grad and not i.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_modern_function_none_grad_and_saved_output():
    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * out

    x = kiln.tensor([0.0, 1.0], requires_grad=True)
    y = Exp.apply(x)
    y.sum().backward()
    assert kiln.allclose(x.grad, x.exp())
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()

    class Zero(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return None

    x.grad = None
    (Zero.apply(x) + x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_modern_function_inplace_on_saved_raises():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = MulConst.apply(h, h, 1.0)
    h.add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


def test_modern_function_gradcheck():
    x, y = (kiln.tensor(R.uniform(-1, 1, 4), requires_grad=True) for _ in range(2))
    assert kiln.autograd.gradcheck(lambda a, b: MulConst.apply(a, b, 3.0), (x, y))


def test_function_without_grad_inputs_records_nothing():
    out = MulConst.apply(kiln.ones(2), kiln.ones(2), 2.0)
    assert out.grad_fn is None and not out.requires_grad


def test_function_create_graph():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2

    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    (g,) = kiln.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    (g2,) = kiln.autograd.grad(g.sum(), x)
    assert g2.tolist() == [6.0, 12.0]


# -- legacy style, EXACTLY as the seed tutorial writes it ----------------------------------
# The tutorial's source, verbatim, run as a user would after swapping the import lines.
TUTORIAL = """
import frontend as torch
from frontend.autograd import Function, Variable

class ReLUF(Function):
    def forward(self, input):
        self.save_for_backward(input)
        output = input.clamp(min=0)
        return output
    def backward(self, output_grad):
        input = self.to_save[0]
        input_grad = output_grad.clone()
        input_grad[input < 0] = 0
        return input_grad
class LinearF(Function):
    def forward(self, input, weight, bias=None):
        self.save_for_backward(input, weight, bias)
        output = torch.mm(input, weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output
    def backward(self, grad_output):
        input, weight, bias = self.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_input = torch.mm(grad_output, weight)
        if self.needs_input_grad[1]:
            grad_weight = torch.mm(grad_output.t(), input)
        if bias is not None and self.needs_input_grad[2]:
            grad_bias = grad_output.sum(0).squeeze(0)
        return grad_input, grad_weight, bias
"""
_tutorial = {}
exec(compile(TUTORIAL, "seed_tutorial.py", "exec"), _tutorial)
ReLUF, LinearF = _tutorial["ReLUF"], _tutorial["LinearF"]


def test_legacy_relu_function():
    vals = np.array([[-1.0, 2.0, -0.5], [0.5, -3.0, 4.0]], np.float32)
    x = Variable(kiln.tensor(vals), requires_grad=True)
    y = ReLUF()(x)
    assert y.grad_fn is not None and y.grad_fn.name() == "ReLUFBackward"
    y.backward(kiln.ones(2, 3))
    tx = torch.tensor(vals, requires_grad=True)
    torch.relu(tx).backward(torch.ones(2, 3))
    assert_same(torch.relu(tx), y)
    assert_same(tx.grad, x.grad)


def test_legacy_linear_function_as_written():
    """The tutorial returns ``bias`` (sic) as the bias gradient; the program must run, and
    input/weight gradients must match torch's own linear."""
    rng = np.random.default_rng(3)
    xi, wi, bi = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (2, 3), (2,)))
    x = Variable(kiln.tensor(xi), requires_grad=True)
    w = Variable(kiln.tensor(wi), requires_grad=True)
    b = Variable(kiln.tensor(bi), requires_grad=True)
    out = LinearF()(x, w, b)
    assert out.grad_fn.name() == "LinearFBackward"
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xi, wi, bi))
    tout = TF.linear(tx, tw, tb)
    assert_same(tout, out, atol=1e-6)
    g = rng.standard_normal((4, 2)).astype(np.float32)
    out.backward(kiln.tensor(g))
    tout.backward(torch.tensor(g))
    assert_same(tx.grad, x.grad, atol=1e-6)
    assert_same(tw.grad, w.grad, atol=1e-6)
    assert b.grad is not None and b.grad.shape == (2,)  # the tutorial's "gradient" is bias


def test_legacy_linear_without_bias_and_no_grad_input():
    x = kiln.randn(4, 3)
    w = kiln.randn(2, 3, requires_grad=True)
    out = LinearF()(x, w)
    out.sum().backward()
    assert kiln.allclose(w.grad, kiln.ones(4, 2).t().mm(x))


def test_legacy_functions_gradcheck():
    x = kiln.tensor(R.uniform(-1, 1, (3, 4)) + 0.05, requires_grad=True)
    assert kiln.autograd.gradcheck(lambda a: ReLUF()(a), (x,))
    xi = kiln.tensor(R.uniform(-1, 1, (3, 4)), requires_grad=True)
    wi = kiln.tensor(R.uniform(-1, 1, (2, 4)), requires_grad=True)
    assert kiln.autograd.gradcheck(lambda a, b: LinearF()(a, b), (xi, wi))


def test_legacy_function_in_a_network():
    """The legacy Functions compose with ordinary ops and each other."""
    x = kiln.randn(5, 3)
    w1 = kiln.randn(4, 3, requires_grad=True)
    w2 = kiln.randn(2, 4, requires_grad=True)
    h = ReLUF()(LinearF()(x, w1))
    loss = (LinearF()(h, w2) ** 2).mean()
    loss.backward()
    tx, tw1, tw2 = to_torch_all(x, w1, w2)
    tl = (TF.linear(TF.linear(tx, tw1).relu(), tw2) ** 2).mean()
    tl.backward()
    assert_same(tl, loss, rtol=1e-5)
    assert_same(tw1.grad, w1.grad, rtol=1e-5, atol=1e-6)
    assert_same(tw2.grad, w2.grad, rtol=1e-5, atol=1e-6)


def to_torch_all(*ks):
    return [torch.tensor(to_numpy(k), requires_grad=k.requires_grad) for k in ks]


def test_function_returning_wrong_gradient_count():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    x, y = leaves(kiln, (2,), (2,))
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(x, y).sum().backward()


def test_to_kiln_roundtrip():
    t = torch.randn(2, 3, dtype=torch.float64)
    assert_same(t, to_kiln(t))
