"""``frontend.nn.init`` against ``torch.nn.init``: the same gains and fans exactly, and
samples whose range and moments follow PyTorch's formulas."""
import math

import numpy as np
import pytest
import torch

import frontend
import frontend.nn as nn
from frontend.nn import init

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("name", NONLINEARITIES)
def test_calculate_gain_matches_torch(name):
    assert init.calculate_gain(name) == torch.nn.init.calculate_gain(name)


@pytest.mark.parametrize("slope", [0, 0.2, 1, math.sqrt(5)])
def test_leaky_relu_gain_with_slope(slope):
    assert init.calculate_gain("leaky_relu", slope) == torch.nn.init.calculate_gain("leaky_relu", slope)


def test_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity swish"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "a")


@pytest.mark.parametrize("shape", [(3, 4), (6, 3, 5), (8, 4, 3, 3), (2, 3, 2, 2, 2)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(frontend.empty(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(frontend.empty(5))


def _check_uniform(values, bound):
    v = values.reshape(-1).astype(np.float64)
    assert v.min() >= -bound and v.max() <= bound
    assert v.min() < -0.95 * bound and v.max() > 0.95 * bound
    assert abs(v.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(v.mean()) < 0.03 * bound


def _check_normal(values, mean, std):
    v = values.reshape(-1).astype(np.float64)
    assert abs(v.mean() - mean) < 0.03 * std + 1e-12
    assert abs(v.std() - std) < 0.03 * std


def _param(*shape):
    return nn.Parameter(frontend.empty(*shape))


def test_uniform_normal_constant():
    p = _param(200, 300)
    assert init.uniform_(p, -2.0, 3.0) is p
    v = p.detach().numpy()
    assert v.min() >= -2 and v.max() <= 3 and abs(v.mean() - 0.5) < 0.05
    init.normal_(p, 1.5, 0.5)
    _check_normal(p.detach().numpy(), 1.5, 0.5)
    init.constant_(p, 0.3)
    assert np.all(p.detach().numpy() == np.float32(0.3))
    init.zeros_(p)
    assert not p.detach().numpy().any()
    init.ones_(p)
    assert np.all(p.detach().numpy() == 1)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None


def test_eye():
    p = _param(3, 5)
    init.eye_(p)
    np.testing.assert_array_equal(p.detach().numpy(), torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(_param(2, 2, 2))


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier(shape, gain):
    p = _param(*shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(p)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    init.xavier_uniform_(p, gain=gain)
    _check_uniform(p.detach().numpy(), math.sqrt(3) * std)
    init.xavier_normal_(p, gain=gain)
    _check_normal(p.detach().numpy(), 0, std)


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
@pytest.mark.parametrize("a,mode,nonlinearity", [(0, "fan_in", "leaky_relu"),
                                                 (math.sqrt(5), "fan_in", "leaky_relu"),
                                                 (0, "fan_out", "relu"), (0, "fan_in", "tanh")])
def test_kaiming(shape, a, mode, nonlinearity):
    p = _param(*shape)
    fan = init._calculate_fan_in_and_fan_out(p)[0 if mode == "fan_in" else 1]
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    _check_uniform(p.detach().numpy(), math.sqrt(3) * std)
    init.kaiming_normal_(p, a=a, mode=mode, nonlinearity=nonlinearity)
    _check_normal(p.detach().numpy(), 0, std)


def test_kaiming_errors_and_zero_element_warning():
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(_param(3, 3), mode="fan_avg")
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(_param(0, 3))


def test_generator_makes_init_reproducible():
    g = frontend.Generator(5)
    a = init.kaiming_normal_(_param(4, 4), generator=g).detach().numpy().copy()
    g.manual_seed(5)
    b = init.kaiming_normal_(_param(4, 4), generator=g).detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_init_is_not_recorded_and_keeps_dtype():
    p = nn.Parameter(frontend.empty(10, 10, dtype=frontend.float64))
    init.xavier_uniform_(p)
    assert p.dtype == frontend.float64 and p.grad_fn is None and p.is_leaf
    x = frontend.randn(3, 10, dtype=frontend.float64)
    (x @ p).sum().backward()
    assert p.grad is not None
