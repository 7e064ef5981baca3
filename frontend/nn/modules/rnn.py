"""Recurrent layers (RNN, LSTM, GRU) and their cells, with PyTorch's parameters.

Names, shapes and gate orders are PyTorch's (``weight_ih_l0``, ``bias_hh_l1_reverse``;
LSTM gates i, f, g, o; GRU gates r, z, n with ``n = tanh(W_in x + b_in + r * (W_hn h +
b_hn))``), so PyTorch state dicts load unchanged. A layer projects the whole input
sequence through ``W_ih`` with one matmul, then loops over time in Python with one
``h @ W_hh^T`` per step; every step is ordinary tensor ops, so autograd (and the
compiler's tracer, which unrolls the loop) need nothing special.
"""
from __future__ import annotations

import math
import numbers
import warnings

from compiler import dtypes as dt
from ...autograd.grad_mode import no_grad
from ...ops import shape as S
from ...ops.creation import _resolve_dtype, empty, zeros
from ...tensor import Tensor
from ..parameter import Parameter
from .module import Module

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# -- one time step: (input projection, hidden projection, state) -> new state --------------
def _rnn_tanh_step(xg, hg, h):
    return (xg + hg).tanh()


def _rnn_relu_step(xg, hg, h):
    return (xg + hg).relu()


def _lstm_step(xg, hg, state):
    _, c = state
    i, f, g, o = S.chunk(xg + hg, 4, -1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def _gru_step(xg, hg, h):
    xr, xz, xn = S.chunk(xg, 3, -1)
    hr, hz, hn = S.chunk(hg, 3, -1)
    r = (xr + hr).sigmoid()
    z = (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (1 - z) * n + z * h


STEPS = {"RNN_TANH": _rnn_tanh_step, "RNN_RELU": _rnn_relu_step, "LSTM": _lstm_step,
         "GRU": _gru_step}


def _project(x, w_t, b):
    y = x @ w_t
    return y if b is None else y + b


def _check_sizes(name, input_size, hidden_size):
    for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name}: {what} must be a positive integer, got {v!r}")


def _check_dtype(name, x, like):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x.dtype != like.dtype:
        raise RuntimeError(f"{name}: input must have the type {like.dtype}, got type {x.dtype}")


def _new_parameter(shape, dtype):
    return Parameter(empty(shape, dtype=dtype))


def _reset_uniform(module):
    """PyTorch's init for every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    with no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)


# -- multi-layer recurrent networks ---------------------------------------------------------
class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, device=None,
                 dtype=None):
        super().__init__()
        name = "LSTM" if mode == "LSTM" else "GRU" if mode == "GRU" else "RNN"
        _check_sizes(name, input_size, hidden_size)
        if not isinstance(num_layers, numbers.Integral) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be greater than zero, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if proj_size:
            raise ValueError(f"{name}: proj_size is not supported by Kiln (got {proj_size})")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          f"non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}")
        self.mode = mode
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias = int(num_layers), bool(bias)
        self.batch_first, self.dropout = bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), 0
        dtype = _resolve_dtype(dtype) or dt.default_float
        gate_size = GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_in)),
                          ("weight_hh", (gate_size, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                for pname, shape in shapes:
                    setattr(self, pname + suffix, _new_parameter(shape, dtype))
                    self._flat_weights_names.append(pname + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def flatten_parameters(self):
        """A no-op kept for PyTorch scripts (cuDNN weight packing does not apply here)."""

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in self._layer_names(layer, direction)]
                for layer in range(self.num_layers) for direction in range(self._directions)]

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def _layer_names(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        return [n + suffix for n in names]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward ----------------------------------------------------------------------
    def _name(self):
        return type(self).__name__

    def _check_input(self, input):
        name = self._name()
        _check_dtype(name, input, self.weight_ih_l0)
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")
        seq_dim = 1 if self.batch_first and input.ndim == 3 else 0
        if input.shape[seq_dim] == 0:
            raise RuntimeError(f"{name}: expected a non-empty sequence, got input of size "
                               f"{list(input.shape)}")

    def _initial_state(self, hx, input, batch, unbatched):
        """Zeros by default; a given state is checked against PyTorch's expected sizes."""
        name = self._name()
        expected = (self.num_layers * self._directions, batch, self.hidden_size)
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = zeros(expected, dtype=input.dtype)
            return (h0, zeros(expected, dtype=input.dtype)) if lstm else h0
        if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        parts = tuple(hx) if lstm else (hx,)
        want = 2 if unbatched else 3
        for p in parts:
            _check_dtype(name, p, input)
            if p.ndim != want:
                kind = "unbatched 2-D" if unbatched else "batched 3-D"
                raise RuntimeError(f"{name}: for {kind} input, hx should also be {want}-D but "
                                   f"got {p.ndim}-D tensor")
        out = []
        for i, p in enumerate(parts):
            p = S.unsqueeze(p, 1) if unbatched else p
            if tuple(p.shape) != expected:
                which = f"hidden[{i}]" if lstm else "hidden"
                got = list(p.shape[:1]) + list(p.shape[2:]) if unbatched else list(p.shape)
                want_shape = (expected[0], expected[2]) if unbatched else expected
                raise RuntimeError(f"{name}: Expected {which} size {want_shape}, got {got}")
            out.append(p)
        return tuple(out) if lstm else out[0]

    def _run_direction(self, x, state, layer, direction):
        w_ih, w_hh, *b = (getattr(self, n) for n in self._layer_names(layer, direction))
        b_ih, b_hh = b if b else (None, None)
        steps, batch = x.shape[:2]
        xw = _project(S.reshape(x, steps * batch, x.shape[2]), w_ih.t(), b_ih)
        xw = S.unbind(S.reshape(xw, steps, batch, xw.shape[-1]), 0)
        w_hh_t, step = w_hh.t(), STEPS[self.mode]
        outs = [None] * steps
        for t in (reversed(range(steps)) if direction else range(steps)):
            h = state[0] if self.mode == "LSTM" else state
            state = step(xw[t], _project(h, w_hh_t, b_hh), state)
            outs[t] = state[0] if self.mode == "LSTM" else state
        return S.stack(outs, 0), state

    def forward(self, input, hx=None):
        self._check_input(input)
        unbatched = input.ndim == 2
        if unbatched:
            x = S.unsqueeze(input, 1)
        else:
            x = S.transpose(input, 0, 1) if self.batch_first else input
        state = self._initial_state(hx, input, x.shape[1], unbatched)
        lstm = self.mode == "LSTM"
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                i = layer * self._directions + direction
                init = (state[0][i], state[1][i]) if lstm else state[i]
                out, last = self._run_direction(x, init, layer, direction)
                outputs.append(out)
                final_h.append(last[0] if lstm else last)
                if lstm:
                    final_c.append(last[1])
            x = outputs[0] if len(outputs) == 1 else S.cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                from ..functional import dropout
                x = dropout(x, self.dropout, True)
        h_n = S.stack(final_h, 0)
        c_n = S.stack(final_c, 0) if lstm else None
        if unbatched:
            x, h_n = S.squeeze(x, 1), S.squeeze(h_n, 1)
            c_n = S.squeeze(c_n, 1) if lstm else None
        elif self.batch_first:
            x = S.transpose(x, 0, 1)
        return (x, (h_n, c_n)) if lstm else (x, h_n)


class RNN(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


# -- single cells ---------------------------------------------------------------------------
class RNNCellBase(Module):
    _mode = ""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        dtype = _resolve_dtype(dtype) or dt.default_float
        gate_size = GATES[self._mode] * hidden_size
        self.weight_ih = _new_parameter((gate_size, input_size), dtype)
        self.weight_hh = _new_parameter((gate_size, hidden_size), dtype)
        if bias:
            self.bias_ih = _new_parameter((gate_size,), dtype)
            self.bias_hh = _new_parameter((gate_size,), dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _check(self, input, hx):
        """Batch the input and state: returns (input, state parts, was_unbatched)."""
        name = type(self).__name__
        _check_dtype(name, input, self.weight_ih)
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got "
                               f"{input.shape[-1]} expected {self.input_size}")
        unbatched = input.ndim == 1
        x = S.unsqueeze(input, 0) if unbatched else input
        count = 2 if self._mode == "LSTM" else 1
        if hx is None:
            return x, [zeros((x.shape[0], self.hidden_size), dtype=x.dtype)] * count, unbatched
        parts = list(hx) if self._mode == "LSTM" else [hx]
        if len(parts) != count:
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0)")
        out = []
        for i, p in enumerate(parts):
            _check_dtype(name, p, x)
            if p.ndim != input.ndim:
                raise RuntimeError(f"{name}: hidden state must be {input.ndim}-D like the input, "
                                   f"got {p.ndim}-D")
            p = S.unsqueeze(p, 0) if unbatched else p
            if p.shape[0] != x.shape[0]:
                raise RuntimeError(f"{name}: Input batch size {x.shape[0]} doesn't match "
                                   f"hidden{i} batch size {p.shape[0]}")
            if p.shape[1] != self.hidden_size:
                raise RuntimeError(f"{name}: hidden{i} has inconsistent hidden_size: got "
                                   f"{p.shape[1]}, expected {self.hidden_size}")
            out.append(p)
        return x, out, unbatched

    def _cell(self, input, hx):
        x, parts, unbatched = self._check(input, hx)
        xg = _project(x, self.weight_ih.t(), self.bias_ih)
        hg = _project(parts[0], self.weight_hh.t(), self.bias_hh)
        state = STEPS[self._mode](xg, hg, tuple(parts) if len(parts) == 2 else parts[0])
        if not unbatched:
            return state
        return tuple(S.squeeze(s, 0) for s in state) if len(parts) == 2 else S.squeeze(state, 0)

    def forward(self, input, hx=None):
        return self._cell(input, hx)


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, bias, device, dtype)


class LSTMCell(RNNCellBase):
    _mode = "LSTM"


class GRUCell(RNNCellBase):
    _mode = "GRU"
