"""frontend.optim checked against torch.optim (foreach=False) as the oracle.

Gradients are assigned to ``.grad`` directly from numpy arrays on both sides,
so these tests exercise only the optimizers, not Kiln's autograd.
"""

import numpy as np
import pytest
import torch

import frontend
import frontend.optim as optim

# Tolerance: 1e-6 relative to each tensor's scale (its largest magnitude).
# Bitwise equality with torch is not attainable: torch's CPU kernels fuse
# multiply-add into FMA (add with alpha, addcmul, lerp) and its float32 sqrt is
# not correctly rounded, so single elements differ by ~1 ulp; where an update
# cancels most of a parameter that ulp is large *relative to the element*.
# Observed worst case over all configs: 2.4e-7 absolute on values of scale ~2.
RTOL = 1e-6


def assert_close(actual, desired, err_msg=""):
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=RTOL * scale, err_msg=err_msg)

SHAPES = [(3, 4), (5,)]
STEPS = 5


# --------------------------------------------------------------------- helpers
def to_numpy(t):
    return np.array(t.detach().numpy(), copy=True)


def initial_arrays(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def gradient_arrays(step, seed=100, shapes=SHAPES):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def kiln_params(arrays):
    return [frontend.tensor(a.copy(), requires_grad=True) for a in arrays]


def torch_params(arrays):
    return [torch.tensor(a.copy(), requires_grad=True) for a in arrays]


def set_grads(params, grads):
    for p, g in zip(params, grads):
        if g is None:
            p.grad = None
        elif isinstance(p, torch.Tensor):
            p.grad = torch.tensor(g.copy())
        else:
            p.grad = frontend.tensor(g.copy())


def assert_params_close(kparams, tparams, msg=""):
    for i, (kp, tp) in enumerate(zip(kparams, tparams)):
        assert_close(to_numpy(kp), tp.detach().numpy(), err_msg=f"param {i} {msg}")


def assert_state_close(kopt, topt, kparams, tparams):
    """Per-parameter optimizer state (buffers and step counts) must match torch's."""
    for i, (kp, tp) in enumerate(zip(kparams, tparams)):
        kstate = kopt.state.get(kp, {})
        tstate = topt.state.get(tp, {})
        assert set(kstate) == set(tstate), f"param {i}: state keys {set(kstate)} != torch {set(tstate)}"
        for key, tval in tstate.items():
            kval = kstate[key]
            assert_close(
                to_numpy(kval) if isinstance(kval, frontend.Tensor) else kval,
                tval.detach().numpy() if isinstance(tval, torch.Tensor) else tval,
                err_msg=f"param {i} state {key!r}",
            )


def make_pair(name, kwargs, arrays=None, groups=None):
    """The same optimizer on identical parameters in Kiln and in torch."""
    arrays = initial_arrays() if arrays is None else arrays
    kp, tp = kiln_params(arrays), torch_params(arrays)
    if groups is None:
        kopt = getattr(optim, name)(kp, **kwargs)
        topt = getattr(torch.optim, name)(tp, foreach=False, **kwargs)
    else:
        # groups: list of (param indices, overrides)
        kopt = getattr(optim, name)([{"params": [kp[i] for i in idx], **o} for idx, o in groups], **kwargs)
        topt = getattr(torch.optim, name)(
            [{"params": [tp[i] for i in idx], **o} for idx, o in groups], foreach=False, **kwargs
        )
    return kp, tp, kopt, topt


def run_steps(kp, tp, kopt, topt, steps, start=0, check_each=True):
    for s in range(start, start + steps):
        grads = gradient_arrays(s)
        set_grads(kp, grads)
        set_grads(tp, grads)
        kopt.step()
        topt.step()
        if check_each:
            assert_params_close(kp, tp, f"after step {s + 1}")


# ------------------------------------------------------- algorithm vs. torch
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.8, weight_decay=0.05, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, maximize=True, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-8)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
]


def config_id(config):
    name, kwargs = config
    return name + "-" + ("-".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults")


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_matches_torch(config):
    name, kwargs = config
    kp, tp, kopt, topt = make_pair(name, kwargs)
    run_steps(kp, tp, kopt, topt, STEPS)
    assert_state_close(kopt, topt, kp, tp)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_round_trip_then_continue(config):
    """Save after 3 steps, load into a fresh optimizer, continue: same as never stopping."""
    name, kwargs = config
    arrays = initial_arrays()
    kp, tp, kopt, topt = make_pair(name, kwargs, arrays)
    run_steps(kp, tp, kopt, topt, 3)

    saved = kopt.state_dict()
    resumed_params = kiln_params([to_numpy(p) for p in kp])
    resumed = getattr(optim, name)(resumed_params, **kwargs)
    resumed.load_state_dict(saved)

    for s in range(3, 3 + STEPS):
        grads = gradient_arrays(s)
        for params, opt in ((kp, kopt), (tp, topt), (resumed_params, resumed)):
            set_grads(params, grads)
            opt.step()
        for a, b in zip(resumed_params, kp):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
        assert_params_close(resumed_params, tp, f"after step {s + 1}")
    assert_state_close(resumed, topt, resumed_params, tp)


# ------------------------------------------------------------ param groups
def test_per_group_options():
    kp, tp, kopt, topt = make_pair(
        "SGD",
        dict(lr=0.1),
        groups=[([0], dict(lr=0.5, momentum=0.9)), ([1], dict(weight_decay=0.2))],
    )
    assert kopt.param_groups[0]["lr"] == 0.5 and kopt.param_groups[1]["lr"] == 0.1
    assert kopt.param_groups[1]["momentum"] == 0
    run_steps(kp, tp, kopt, topt, STEPS)
    assert_state_close(kopt, topt, kp, tp)


def test_per_group_adam_betas_and_amsgrad():
    kp, tp, kopt, topt = make_pair(
        "Adam",
        dict(lr=0.01),
        groups=[([0], dict(betas=(0.5, 0.9), amsgrad=True)), ([1], dict(lr=0.1))],
    )
    run_steps(kp, tp, kopt, topt, STEPS)
    assert_state_close(kopt, topt, kp, tp)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"])
def test_lr_edited_mid_training(name):
    kwargs = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.05}
    kp, tp, kopt, topt = make_pair(name, kwargs)
    run_steps(kp, tp, kopt, topt, 2)
    for opt in (kopt, topt):
        opt.param_groups[0]["lr"] = 0.2
    run_steps(kp, tp, kopt, topt, 3, start=2)
    for opt in (kopt, topt):
        opt.param_groups[0]["lr"] = 0.0
    before = [to_numpy(p) for p in kp]
    run_steps(kp, tp, kopt, topt, 1, start=5)
    if name in ("SGD", "Adam", "RMSprop", "Adagrad", "Adadelta"):
        for b, p in zip(before, kp):  # lr 0 freezes the parameters
            np.testing.assert_array_equal(b, to_numpy(p))


def test_add_param_group():
    arrays = initial_arrays(shapes=[(3, 4), (5,), (2, 2)])
    kp, tp = kiln_params(arrays), torch_params(arrays)
    kopt = optim.Adam(kp[:2], lr=0.01)
    topt = torch.optim.Adam(tp[:2], lr=0.01, foreach=False)
    kopt.add_param_group({"params": kp[2], "lr": 0.1, "amsgrad": True})
    topt.add_param_group({"params": tp[2], "lr": 0.1, "amsgrad": True})
    assert len(kopt.param_groups) == 2
    assert kopt.param_groups[1]["betas"] == (0.9, 0.999)  # filled from defaults
    assert kopt.param_groups[1]["params"][0] is kp[2]
    for s in range(STEPS):
        grads = gradient_arrays(s, shapes=[(3, 4), (5,), (2, 2)])
        set_grads(kp, grads)
        set_grads(tp, grads)
        kopt.step()
        topt.step()
    assert_params_close(kp, tp)
    assert_state_close(kopt, topt, kp, tp)


def test_adagrad_group_added_later_is_initialised():
    arrays = initial_arrays()
    kp = kiln_params(arrays)
    opt = optim.Adagrad([kp[0]], lr=0.1)
    opt.add_param_group({"params": [kp[1]], "initial_accumulator_value": 0.5})
    set_grads(kp, gradient_arrays(0))
    opt.step()
    assert_close(to_numpy(opt.state[kp[1]]["sum"]), 0.5 + gradient_arrays(0)[1] ** 2)


def test_adagrad_state_exists_before_first_step():
    kp, tp, kopt, topt = make_pair("Adagrad", dict(lr=0.1, initial_accumulator_value=0.25))
    assert_state_close(kopt, topt, kp, tp)
    assert sorted(kopt.state_dict()["state"]) == [0, 1]


def test_params_without_grad_are_skipped():
    kp, tp, kopt, topt = make_pair("Adam", dict(lr=0.01))
    for s in range(3):
        grads = gradient_arrays(s)
        grads[1] = None
        set_grads(kp, grads)
        set_grads(tp, grads)
        kopt.step()
        topt.step()
    assert kp[1] not in kopt.state
    np.testing.assert_array_equal(to_numpy(kp[1]), initial_arrays()[1])
    assert_params_close(kp, tp)
    assert_state_close(kopt, topt, kp, tp)


def test_sgd_without_momentum_keeps_no_state():
    kp, tp, kopt, topt = make_pair("SGD", dict(lr=0.1))
    run_steps(kp, tp, kopt, topt, 2)
    assert len(kopt.state) == 0
    assert kopt.state_dict()["state"] == {}


# ------------------------------------------------------------ basic API
def test_defaults_and_param_groups_layout():
    kp = kiln_params(initial_arrays())
    opt = optim.SGD(kp, lr=0.1, momentum=0.9)
    torch_opt = torch.optim.SGD(torch_params(initial_arrays()), lr=0.1, momentum=0.9)
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.9
    assert isinstance(opt.param_groups, list) and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["params"][0] is kp[0] and group["params"][1] is kp[1]
    for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"):
        assert group[key] == torch_opt.param_groups[0][key]


@pytest.mark.parametrize(
    "name, extra",
    [
        ("SGD", {}),
        ("Adam", {}),
        ("AdamW", {}),
        ("RMSprop", {}),
        ("Adagrad", {}),
        ("Adadelta", {}),
    ],
)
def test_default_hyperparameters_match_torch(name, extra):
    kopt = getattr(optim, name)(kiln_params(initial_arrays()), **extra)
    topt = getattr(torch.optim, name)(torch_params(initial_arrays()), **extra)
    for key, value in kopt.defaults.items():
        if key in topt.defaults:
            assert value == topt.defaults[key], key


def test_state_is_keyed_by_parameter():
    kp = kiln_params(initial_arrays())
    opt = optim.Adam(kp, lr=0.01)
    set_grads(kp, gradient_arrays(0))
    opt.step()
    assert kp[0] in opt.state and kp[1] in opt.state
    assert set(opt.state[kp[0]]) == {"step", "exp_avg", "exp_avg_sq"}
    assert tuple(opt.state[kp[0]]["exp_avg"].shape) == SHAPES[0]
    assert float(opt.state[kp[0]]["step"].item()) == 1.0
    assert [p is q for p, q in zip(opt.state, kp)] == [True, True]


def test_zero_grad_sets_to_none_by_default():
    kp = kiln_params(initial_arrays())
    opt = optim.SGD(kp, lr=0.1)
    set_grads(kp, gradient_arrays(0))
    opt.zero_grad()
    assert all(p.grad is None for p in kp)


def test_zero_grad_set_to_none_false_zeroes_in_place():
    kp = kiln_params(initial_arrays())
    opt = optim.SGD(kp, lr=0.1)
    set_grads(kp, gradient_arrays(0))
    opt.zero_grad(set_to_none=False)
    for p, shape in zip(kp, SHAPES):
        assert p.grad is not None
        np.testing.assert_array_equal(to_numpy(p.grad), np.zeros(shape, np.float32))


def test_step_closure_returns_loss():
    kp, tp, kopt, topt = make_pair("SGD", dict(lr=0.1, momentum=0.9))
    calls = []

    def closure_for(params, kind):
        def closure():
            calls.append(kind)
            set_grads(params, gradient_arrays(0))
            return 3.25

        return closure

    assert kopt.step(closure_for(kp, "kiln")) == 3.25
    assert topt.step(closure_for(tp, "torch")) == 3.25
    assert calls == ["kiln", "torch"]
    assert_params_close(kp, tp)
    assert kopt.step() is None


def test_updates_are_in_place():
    kp = kiln_params(initial_arrays())
    opt = optim.Adam(kp, lr=0.01)
    alias = kp[0]
    def version_of(t):
        # torch exposes an int; Kiln a shared counter object with .value
        v = getattr(t, "_version", None)
        return getattr(v, "value", v)

    version = version_of(kp[0])
    set_grads(kp, gradient_arrays(0))
    opt.step()
    assert opt.param_groups[0]["params"][0] is alias
    assert not np.array_equal(to_numpy(alias), initial_arrays()[0])
    assert kp[0].requires_grad and kp[0].grad_fn is None
    if version is not None:
        assert version_of(kp[0]) > version


# ------------------------------------------------------------ bad input
def _leaf():
    return frontend.tensor(np.ones(3, np.float32), requires_grad=True)


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda p: optim.SGD(p, lr=-0.1), "learning rate"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
        (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (lambda p: optim.Adam(p, lr=-1e-3), "learning rate"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda p: optim.Adam(p, eps=-1.0), "epsilon"),
        (lambda p: optim.AdamW(p, betas=(0.9, 1.5)), "beta parameter at index 1"),
        (lambda p: optim.RMSprop(p, lr=-1.0), "learning rate"),
        (lambda p: optim.RMSprop(p, momentum=-0.1), "momentum"),
        (lambda p: optim.RMSprop(p, alpha=-0.1), "alpha"),
        (lambda p: optim.Adagrad(p, lr_decay=-0.1), "lr_decay"),
        (lambda p: optim.Adadelta(p, rho=1.5), "rho"),
        (lambda p: optim.SGD([{"params": p, "lr": -1.0}], lr=0.1), "learning rate"),
        (lambda p: optim.SGD([{"params": p, "nesterov": True}], lr=0.1), "Nesterov"),
    ],
)
def test_invalid_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory([_leaf()])


def test_empty_parameter_list():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam(iter([]))


def test_parameter_given_twice():
    p, q = _leaf(), _leaf()
    with pytest.raises(ValueError, match="index 1"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [q, p]}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1  # rejected group left nothing behind


def test_non_leaf_tensor_rejected():
    p = _leaf()
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_single_tensor_and_non_tensor_rejected():
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(_leaf(), lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([_leaf(), np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD({_leaf()}, lr=0.1)


# ------------------------------------------------------------ state_dict
def test_state_dict_layout_matches_torch():
    kp, tp, kopt, topt = make_pair(
        "Adam", dict(lr=0.01), groups=[([0], dict(amsgrad=True)), ([1], dict(lr=0.1))]
    )
    run_steps(kp, tp, kopt, topt, 2)
    ksd, tsd = kopt.state_dict(), topt.state_dict()
    assert set(ksd) == {"state", "param_groups"}
    assert list(ksd["state"]) == list(tsd["state"]) == [0, 1]
    for kid in ksd["state"]:
        assert set(ksd["state"][kid]) == set(tsd["state"][kid])
    assert [g["params"] for g in ksd["param_groups"]] == [[0], [1]]
    for kg, tg in zip(ksd["param_groups"], tsd["param_groups"]):
        for key, value in kg.items():
            if key in tg and key != "foreach":  # the oracle runs with foreach=False
                assert value == tg[key], key
    step = ksd["state"][0]["step"]
    assert isinstance(step, frontend.Tensor) and tuple(step.shape) == () and float(step.item()) == 2.0


def test_state_dict_ids_span_groups():
    kp = kiln_params(initial_arrays(shapes=[(2,), (3,), (4,)]))
    opt = optim.SGD([{"params": [kp[0], kp[1]]}, {"params": [kp[2]], "lr": 0.5}], lr=0.1, momentum=0.9)
    set_grads(kp, gradient_arrays(0, shapes=[(2,), (3,), (4,)]))
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [tuple(sd["state"][i]["momentum_buffer"].shape) for i in range(3)] == [(2,), (3,), (4,)]


def test_loaded_state_is_deep_copied():
    kp, tp, kopt, topt = make_pair("SGD", dict(lr=0.1, momentum=0.9))
    run_steps(kp, tp, kopt, topt, 2)
    saved = kopt.state_dict()
    other_params = kiln_params([to_numpy(p) for p in kp])
    other = optim.SGD(other_params, lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    loaded_buf = other.state[other_params[0]]["momentum_buffer"]
    expected = to_numpy(loaded_buf)

    # Mutating the source optimizer (whose state the dict references) and the
    # dict itself must not reach the loaded optimizer.
    run_steps(kp, tp, kopt, topt, 1, start=2)
    with frontend.no_grad():
        saved["state"][0]["momentum_buffer"].zero_()
    saved["param_groups"][0]["lr"] = 123.0
    np.testing.assert_array_equal(to_numpy(loaded_buf), expected)
    assert other.param_groups[0]["lr"] == 0.1
    assert other.param_groups[0]["params"][0] is other_params[0]
    assert other.state[other_params[0]]["momentum_buffer"] is not kopt.state[kp[0]]["momentum_buffer"]


def test_load_state_dict_restores_hyperparameters():
    kp = kiln_params(initial_arrays())
    source = optim.Adam(kp, lr=0.01)
    source.param_groups[0]["lr"] = 0.005
    target = optim.Adam(kiln_params(initial_arrays()), lr=0.3)
    target.load_state_dict(source.state_dict())
    assert target.param_groups[0]["lr"] == 0.005


def test_load_state_dict_accepts_numeric_step():
    kp = kiln_params(initial_arrays())
    opt = optim.Adam(kp, lr=0.01)
    set_grads(kp, gradient_arrays(0))
    opt.step()
    sd = opt.state_dict()
    sd = {"state": {k: dict(v, step=1) for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}
    fresh = optim.Adam(kiln_params(initial_arrays()), lr=0.01)
    fresh.load_state_dict(sd)
    step = fresh.state[fresh.param_groups[0]["params"][0]]["step"]
    assert isinstance(step, frontend.Tensor) and float(step.item()) == 1.0


def _snapshot(opt):
    """Comparable copy of an optimizer's full state (values, not references)."""
    sd = opt.state_dict()
    state = {
        k: {kk: to_numpy(vv) if isinstance(vv, frontend.Tensor) else vv for kk, vv in v.items()}
        for k, v in sd["state"].items()
    }
    groups = [dict(g) for g in sd["param_groups"]]
    return state, groups, [[id(p) for p in g["params"]] for g in opt.param_groups]


def _assert_same_snapshot(a, b):
    sa, ga, ia = a
    sb, gb, ib = b
    assert ga == gb and ia == ib
    assert set(sa) == set(sb)
    for k in sa:
        assert set(sa[k]) == set(sb[k])
        for kk in sa[k]:
            np.testing.assert_array_equal(sa[k][kk], sb[k][kk])


def _bad_state_dicts(good):
    def modified(fn):
        sd = {"state": {k: dict(v) for k, v in good["state"].items()}, "param_groups": [dict(g) for g in good["param_groups"]]}
        fn(sd)
        return sd

    extra_group = modified(lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0], params=[7])))
    too_few = modified(lambda sd: sd["param_groups"][0].update(params=[0]))
    unknown_id = modified(lambda sd: sd["state"].update({9: dict(sd["state"][0])}))
    wrong_shape = modified(lambda sd: sd["state"].update({0: dict(sd["state"][1])}))
    dup_id = modified(lambda sd: sd["param_groups"][0].update(params=[0, 0]))
    bad_lr = modified(lambda sd: sd["param_groups"][0].update(lr=-1.0))
    return {
        "group count": (extra_group, "number of parameter groups"),
        "group size": (too_few, "doesn't match the size"),
        "unknown id": (unknown_id, "parameter id 9"),
        "state shape": (wrong_shape, "shape"),
        "duplicate id": (dup_id, "appears twice"),
        "bad lr": (bad_lr, "learning rate"),
        "missing key": ({"state": {}}, "param_groups"),
    }


@pytest.mark.parametrize("case", ["group count", "group size", "unknown id", "state shape", "duplicate id", "bad lr", "missing key"])
def test_load_state_dict_errors_leave_optimizer_unchanged(case):
    kp = kiln_params(initial_arrays())
    opt = optim.Adam(kp, lr=0.01, amsgrad=True)
    set_grads(kp, gradient_arrays(0))
    opt.step()
    donor_params = kiln_params(initial_arrays(seed=1))
    donor = optim.Adam(donor_params, lr=0.02, amsgrad=True)
    for s in range(3):
        set_grads(donor_params, gradient_arrays(s, seed=7))
        donor.step()

    before = _snapshot(opt)
    bad, match = _bad_state_dicts(donor.state_dict())[case]
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    _assert_same_snapshot(before, _snapshot(opt))

    # Still fully usable, and on the same trajectory as an untouched twin.
    twin_params = kiln_params(initial_arrays())
    twin = optim.Adam(twin_params, lr=0.01, amsgrad=True)
    for s in range(2):
        set_grads(twin_params, gradient_arrays(s))
        twin.step()
    set_grads(kp, gradient_arrays(1))
    opt.step()
    for a, b in zip(kp, twin_params):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_adamw_stays_decoupled_after_loading_adam_state():
    kp = kiln_params(initial_arrays())
    adam = optim.Adam(kp, lr=0.01, weight_decay=0.1)
    adamw = optim.AdamW(kiln_params(initial_arrays()), lr=0.01, weight_decay=0.1)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


# ------------------------------------------------------------ with autograd
@pytest.mark.parametrize(
    "name, kwargs",
    [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.05, amsgrad=True)), ("RMSprop", dict(lr=0.01, centered=True))],
)
def test_training_loop_with_autograd_and_closure(name, kwargs):
    """End to end: gradients from Kiln's autograd, step(closure), zero_grad, an lr scheduler."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    xs = rng.standard_normal((8, 3)).astype(np.float32)
    ys = rng.standard_normal((8, 2)).astype(np.float32)

    def setup(lib, opt_module, sched_module):
        w = lib.tensor(w0.copy(), requires_grad=True)
        x, y = lib.tensor(xs.copy()), lib.tensor(ys.copy())
        opt = getattr(opt_module, name)([w], **kwargs)
        sched = sched_module.StepLR(opt, step_size=3, gamma=0.5)

        def closure():
            opt.zero_grad()
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            return loss

        return w, opt, sched, closure

    kw, kopt, ksched, kclosure = setup(frontend, optim, optim.lr_scheduler)
    tw, topt, tsched, tclosure = setup(torch, torch.optim, torch.optim.lr_scheduler)
    for step in range(10):
        kloss, tloss = kopt.step(kclosure), topt.step(tclosure)
        assert kloss.detach().item() == pytest.approx(tloss.detach().item(), rel=1e-5)
        ksched.step()
        tsched.step()
        assert_close(to_numpy(kw), tw.detach().numpy(), err_msg=f"step {step + 1}")
        assert kw.is_leaf and kw.requires_grad
    assert kloss.detach().item() < float(((xs @ w0 - ys) ** 2).mean())


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.1, momentum=0.9, dampening=0.1),
                                    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                                    dict(lr=0.1, maximize=True, weight_decay=1.0)])
def test_sgd_array_path_is_the_tensor_path(kwargs):
    """SGD updates plain parameters straight on their arrays; the result is bit for bit
    what the in-place tensor ops give (the path taken under the tracer), and the
    parameter's version counter still moves, so autograd sees the update."""
    from frontend import tracing_hook
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    fast = [frontend.tensor(v.copy(), requires_grad=True) for v in values]
    slow = [frontend.tensor(v.copy(), requires_grad=True) for v in values]
    fopt, sopt = optim.SGD(fast, **kwargs), optim.SGD(slow, **kwargs)

    class Quiet:      # a handler that makes tracing_hook.active() true: the tensor path
        def __getattr__(self, name):
            return lambda *a, **k: None
    for step in range(3):
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in values]
        for p, q, g in zip(fast, slow, grads):
            p.grad, q.grad = frontend.tensor(g.copy()), frontend.tensor(g.copy())
        before = fast[0]._version.value
        fopt.step()
        assert fast[0]._version.value > before
        prev = tracing_hook.set_handler(Quiet())
        try:
            sopt.step()
        finally:
            tracing_hook.set_handler(prev)
        for p, q in zip(fast, slow):
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
