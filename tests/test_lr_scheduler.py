"""frontend.optim.lr_scheduler checked against torch.optim.lr_scheduler.

Learning rates are plain Python floats computed with the same formulas in the
same order, so the sequences must agree exactly (==, not approximately).
"""

import math
import warnings

import numpy as np
import pytest
import torch

import frontend
import frontend.optim as optim
from frontend.optim import lr_scheduler

STEPS = 20
LRS = (0.1, 0.05)


def make_optimizers(lrs=LRS):
    kp = [frontend.tensor(np.ones(2, np.float32), requires_grad=True) for _ in lrs]
    tp = [torch.ones(2, requires_grad=True) for _ in lrs]
    kopt = optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(kp, lrs)], lr=1.0)
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(tp, lrs)], lr=1.0)
    return kopt, topt


def lrs_of(opt):
    return [g["lr"] for g in opt.param_groups]


def assert_lrs_equal(ours, theirs, msg=""):
    assert len(ours) == len(theirs), msg
    for a, b in zip(ours, theirs):
        assert a == b, msg


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, step_size=4),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 11], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10),
    "CosineAnnealingLR-eta_min-short": lambda m, o: m.CosineAnnealingLR(o, T_max=6, eta_min=0.001),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95**e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 1 / (e + 1), lambda e: e // 4]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.97),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=4),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=8),
}


def run_schedule(make, steps=STEPS, edit_at=None):
    kopt, topt = make_optimizers()
    ksched, tsched = make(lr_scheduler, kopt), make(torch.optim.lr_scheduler, topt)
    assert_lrs_equal(lrs_of(kopt), lrs_of(topt), "after construction")
    assert_lrs_equal(ksched.get_last_lr(), tsched.get_last_lr(), "get_last_lr after construction")
    assert ksched.last_epoch == tsched.last_epoch == 0
    for step in range(steps):
        kopt.step()
        topt.step()
        ksched.step()
        tsched.step()
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt), f"lr at step {step + 1}")
        assert_lrs_equal(ksched.get_last_lr(), tsched.get_last_lr(), f"get_last_lr at step {step + 1}")
        assert ksched.last_epoch == tsched.last_epoch
        if edit_at == step:
            for opt in (kopt, topt):
                opt.param_groups[0]["lr"] = 0.02
    return ksched, tsched


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_sequence_matches_torch(name):
    ksched, tsched = run_schedule(SCHEDULERS[name])
    assert ksched.base_lrs == tsched.base_lrs == list(LRS)


@pytest.mark.parametrize("name", ["StepLR", "ExponentialLR", "CosineAnnealingLR", "MultiStepLR"])
def test_chainable_with_manual_lr_edit(name):
    """Editing group['lr'] mid-schedule composes with the schedule, as in torch."""
    run_schedule(SCHEDULERS[name], edit_at=6)


def test_two_schedulers_on_one_optimizer():
    kopt, topt = make_optimizers()
    scheds = []
    for m, o in ((lr_scheduler, kopt), (torch.optim.lr_scheduler, topt)):
        scheds.append((m.ExponentialLR(o, gamma=0.9), m.MultiStepLR(o, milestones=[3, 7], gamma=0.1)))
    for step in range(STEPS):
        kopt.step()
        topt.step()
        for a, b in zip(*scheds):
            a.step()
            b.step()
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt), f"step {step + 1}")


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ConstantLR", "LinearLR"])
def test_deprecated_epoch_argument_uses_closed_form(name):
    kopt, topt = make_optimizers()
    ksched, tsched = SCHEDULERS[name](lr_scheduler, kopt), SCHEDULERS[name](torch.optim.lr_scheduler, topt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in (3, 7, 4, 12):
            kopt.step()
            topt.step()
            ksched.step(epoch)
            tsched.step(epoch)
            assert_lrs_equal(lrs_of(kopt), lrs_of(topt), f"epoch {epoch}")
            assert ksched.last_epoch == epoch
    with pytest.warns(UserWarning, match="deprecated"):
        ksched.step(1)


def test_sequence_matches_closed_form_cosine():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.CosineAnnealingLR(kopt, T_max=10, eta_min=0.01)
    for t in range(1, 11):
        kopt.step()
        sched.step()
        for base, lr in zip(LRS, sched.get_last_lr()):
            assert lr == pytest.approx(0.01 + (base - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2, rel=1e-9)


# ------------------------------------------------------------ state_dict
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "LinearLR"])
def test_state_dict_resume_equals_uninterrupted(name):
    make = SCHEDULERS[name]
    kopt, topt = make_optimizers()
    ksched, tsched = make(lr_scheduler, kopt), make(torch.optim.lr_scheduler, topt)
    for _ in range(5):
        kopt.step(); topt.step(); ksched.step(); tsched.step()

    sd = ksched.state_dict()
    tsd = tsched.state_dict()
    assert "optimizer" not in sd
    for key in ("base_lrs", "last_epoch", "_step_count", "_last_lr"):
        assert sd[key] == tsd[key], key
    if name == "LambdaLR":
        assert sd["lr_lambdas"] == [None] * len(LRS)

    # Resume: a fresh optimizer gets the optimizer checkpoint, a fresh scheduler
    # the scheduler checkpoint; it must then follow the original exactly.
    resumed_opt, _ = make_optimizers(lrs=(0.9, 0.9))
    resumed_sched = make(lr_scheduler, resumed_opt)
    resumed_opt.load_state_dict(kopt.state_dict())
    resumed_sched.load_state_dict(sd)
    assert resumed_sched.get_last_lr() == ksched.get_last_lr()
    for step in range(10):
        for o, s in ((kopt, ksched), (topt, tsched), (resumed_opt, resumed_sched)):
            o.step()
            s.step()
        assert lrs_of(resumed_opt) == lrs_of(kopt)
        assert resumed_sched.get_last_lr() == ksched.get_last_lr()
        assert_lrs_equal(lrs_of(resumed_opt), lrs_of(topt), f"resumed step {step}")


def test_lambda_state_dict_saves_callable_objects():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate**epoch

    kopt, _ = make_optimizers()
    sched = lr_scheduler.LambdaLR(kopt, lr_lambda=[Decay(0.5), lambda e: 1.0])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.5}, None]
    other_opt, _ = make_optimizers()
    other = lr_scheduler.LambdaLR(other_opt, lr_lambda=[Decay(0.9), lambda e: 1.0])
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].rate == 0.5
    assert "lr_lambdas" in sd  # loading does not consume the caller's dict


def test_resuming_with_last_epoch_requires_initial_lr():
    kopt, _ = make_optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(kopt, step_size=2, last_epoch=4)


def test_resume_with_last_epoch_matches_torch():
    kopt, topt = make_optimizers()
    for opt in (kopt, topt):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    ksched = lr_scheduler.CosineAnnealingLR(kopt, T_max=10, last_epoch=3)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10, last_epoch=3)
    for step in range(8):
        kopt.step(); topt.step(); ksched.step(); tsched.step()
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt), f"step {step}")


def test_constructor_sets_initial_lr_and_base_lrs():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.StepLR(kopt, step_size=2)
    assert [g["initial_lr"] for g in kopt.param_groups] == list(LRS)
    assert sched.base_lrs == list(LRS)
    assert sched.get_last_lr() == list(LRS)


def test_warns_when_scheduler_steps_before_optimizer():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.StepLR(kopt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_no_warning_in_correct_order():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.ExponentialLR(kopt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kopt.step()
        sched.step()
    assert sched.get_last_lr() == [0.05, 0.025]


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=1)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.ReduceLROnPlateau(object())


def test_lambda_list_length_checked():
    kopt, _ = make_optimizers()
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        lr_scheduler.LambdaLR(kopt, lr_lambda=[lambda e: 1.0])


# ------------------------------------------------------------ ReduceLROnPlateau
METRICS = [1.0, 0.9, 0.9, 0.9, 0.95, 0.8999, 0.89, 0.89, 0.89, 0.89, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.69, 0.7, 0.7, 0.7]
RISING = [0.1, 0.2, 0.2, 0.2001, 0.2, 0.3, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6]

PLATEAU_CONFIGS = {
    "defaults": (dict(), METRICS),
    "patience0": (dict(patience=0), METRICS),
    "patience2-factor0.5": (dict(patience=2, factor=0.5), METRICS),
    "cooldown": (dict(patience=1, cooldown=2, factor=0.5), METRICS),
    "threshold-rel-large": (dict(patience=1, threshold=0.05), METRICS),
    "threshold-abs": (dict(patience=1, threshold=0.005, threshold_mode="abs"), METRICS),
    "min_lr-scalar": (dict(patience=0, factor=0.5, min_lr=0.02), METRICS),
    "min_lr-list": (dict(patience=0, factor=0.5, min_lr=[0.03, 0.001]), METRICS),
    "eps-blocks-tiny-updates": (dict(patience=0, factor=0.9, eps=0.004), METRICS),
    "max-rel": (dict(mode="max", patience=1, factor=0.5), RISING),
    "max-abs-cooldown": (dict(mode="max", patience=1, threshold=0.01, threshold_mode="abs", cooldown=1), RISING),
}


@pytest.mark.parametrize("name", list(PLATEAU_CONFIGS))
def test_reduce_lr_on_plateau_matches_torch(name):
    kwargs, metrics = PLATEAU_CONFIGS[name]
    kopt, topt = make_optimizers()
    ksched = lr_scheduler.ReduceLROnPlateau(kopt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    assert ksched.get_last_lr() == tsched.get_last_lr() == list(LRS)
    for step, metric in enumerate(metrics):
        kopt.step()
        topt.step()
        ksched.step(metric)
        tsched.step(metric)
        msg = f"step {step + 1} (metric {metric})"
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt), msg)
        assert_lrs_equal(ksched.get_last_lr(), tsched.get_last_lr(), msg)
        assert (ksched.best, ksched.num_bad_epochs, ksched.cooldown_counter, ksched.last_epoch) == (
            tsched.best,
            tsched.num_bad_epochs,
            tsched.cooldown_counter,
            tsched.last_epoch,
        ), msg


def test_reduce_lr_on_plateau_reduces_at_all():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.ReduceLROnPlateau(kopt, patience=2, factor=0.5)
    for metric in [1.0, 1.0, 1.0, 1.0]:
        sched.step(metric)
    assert sched.get_last_lr() == [0.05, 0.025]


def test_reduce_lr_on_plateau_accepts_tensor_metric():
    kopt, _ = make_optimizers()
    sched = lr_scheduler.ReduceLROnPlateau(kopt, patience=0)
    sched.step(frontend.tensor(1.0))
    sched.step(frontend.tensor(2.0))
    assert sched.best == 1.0
    assert sched.get_last_lr() == pytest.approx([0.01, 0.005])


def test_reduce_lr_on_plateau_state_dict():
    kwargs, metrics = PLATEAU_CONFIGS["cooldown"]
    kopt, topt = make_optimizers()
    ksched = lr_scheduler.ReduceLROnPlateau(kopt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    for metric in metrics[:8]:
        ksched.step(metric)
        tsched.step(metric)
    sd = ksched.state_dict()
    tsd = tsched.state_dict()
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "mode", "threshold",
                "threshold_mode", "patience", "cooldown", "factor", "min_lrs", "eps", "_last_lr"):
        assert sd[key] == tsd[key], key

    resumed_opt, _ = make_optimizers(lrs=(1.0, 1.0))
    resumed_opt.load_state_dict(kopt.state_dict())
    resumed = lr_scheduler.ReduceLROnPlateau(resumed_opt)
    resumed.load_state_dict(sd)
    for metric in metrics[8:]:
        ksched.step(metric)
        tsched.step(metric)
        resumed.step(metric)
        assert lrs_of(resumed_opt) == lrs_of(kopt)
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(factor=1.0), "Factor should be < 1.0"),
        (dict(mode="median"), "mode"),
        (dict(threshold_mode="percent"), "threshold mode"),
        (dict(min_lr=[0.1]), "expected 2 min_lrs"),
    ],
)
def test_reduce_lr_on_plateau_bad_arguments(kwargs, match):
    kopt, _ = make_optimizers()
    with pytest.raises(ValueError, match=match):
        lr_scheduler.ReduceLROnPlateau(kopt, **kwargs)


def test_reduce_lr_on_plateau_new_param_group_with_scalar_min_lr():
    kopt, topt = make_optimizers()
    ksched = lr_scheduler.ReduceLROnPlateau(kopt, patience=0, min_lr=0.001)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0, min_lr=0.001)
    kopt.add_param_group({"params": [frontend.tensor(np.ones(1, np.float32), requires_grad=True)], "lr": 0.3})
    topt.add_param_group({"params": [torch.ones(1, requires_grad=True)], "lr": 0.3})
    for metric in (1.0, 2.0, 3.0):
        ksched.step(metric)
        tsched.step(metric)
        assert_lrs_equal(lrs_of(kopt), lrs_of(topt))
