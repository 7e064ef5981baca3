"""Every public tensor op of API.md against torch: values, shapes, dtypes and gradients.

One table row per case (OpInfo style). A case's function takes the module first
(``lambda T, a, b: T.where(a > 0, a, b)``) and runs once with ``T = torch`` and once with
``T = frontend``; inputs are identical. Each row runs in float32 (contiguous), float64,
on NON-CONTIGUOUS inputs (transposed and sliced views), and through float64 gradcheck.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import frontend as kiln
from helpers import _flatten_outputs, assert_same, helper_test_op, kiln_gradcheck, make_pair

R = np.random.default_rng(1234)


def rnd(*shape, low=-2.0, high=2.0):
    return R.uniform(low, high, size=shape).astype(np.float32)


def idx(*values):
    return np.array(values, dtype=np.int64)


class Case:
    def __init__(self, name, fn, shapes=None, vals=None, low=-2.0, high=2.0, rtol=None,
                 atol=None, grad=True, gradcheck=True, float64=True, noncontig=True,
                 grad_fn=True):
        self.name, self.fn, self.shapes, self.vals = name, fn, shapes, vals
        self.low, self.high, self.rtol, self.atol = low, high, rtol, atol
        self.grad, self.gradcheck, self.float64 = grad, gradcheck and grad, float64
        self.noncontig, self.grad_fn = noncontig, grad_fn

    def fns(self):
        return functools.partial(self.fn, torch), functools.partial(self.fn, kiln)

    def arrays(self, dtype):
        if self.vals is not None:
            return [np.asarray(v).astype(dtype) if np.asarray(v).dtype.kind == "f" else
                    np.asarray(v) for v in self.vals]
        rng = np.random.default_rng(0)
        return [rng.uniform(self.low, self.high, size=s).astype(dtype) for s in self.shapes]


POS = dict(low=0.5, high=2.0)
NONZERO = dict(low=0.5, high=2.0)

CASES = [
    # ---------------------------------------------------------------- arithmetic
    Case("add", lambda T, a, b: a + b, [(3, 4), (3, 4)]),
    Case("add_bcast_row", lambda T, a, b: a + b, [(3, 4), (4,)]),
    Case("add_bcast_outer", lambda T, a, b: a + b, [(3, 1), (1, 4)]),
    Case("add_bcast_3d", lambda T, a, b: a + b, [(2, 3, 4), (3, 1)]),
    Case("add_0d", lambda T, a, b: a + b, [(), (3, 4)]),
    Case("add_0d_0d", lambda T, a, b: a + b, [(), ()]),
    Case("add_size1", lambda T, a, b: a + b, [(1, 1), (2, 1, 3)]),
    Case("add_empty", lambda T, a, b: a + b, [(0, 4), (4,)]),
    Case("add_scalar_r", lambda T, a: a + 2), Case("add_scalar_l", lambda T, a: 2.5 + a),
    Case("add_alpha", lambda T, a, b: T.add(a, b, alpha=2), [(3, 4), (4,)]),
    Case("sub", lambda T, a, b: a - b, [(3, 4), (3, 1)]),
    Case("sub_scalar_r", lambda T, a: a - 1.5), Case("rsub_scalar", lambda T, a: 1.5 - a),
    Case("mul", lambda T, a, b: a * b, [(3, 4), (1, 4)]),
    Case("mul_same_input", lambda T, a: a * a), Case("mul_scalar_l", lambda T, a: 3 * a),
    Case("mul_scalar_r", lambda T, a: a * -0.5), Case("mul_0d", lambda T, a, b: a * b, [(2, 3), ()]),
    Case("div", lambda T, a, b: a / b, [(3, 4), (4,)], **NONZERO),
    Case("div_scalar_r", lambda T, a: a / 4), Case("rdiv_scalar", lambda T, a: 2 / a, **NONZERO),
    Case("div_fn", lambda T, a, b: T.div(a, b), [(2, 3), (2, 3)], **NONZERO),
    Case("pow_scalar", lambda T, a: a ** 2), Case("pow_scalar_3", lambda T, a: a ** 3),
    Case("pow_half", lambda T, a: a ** 0.5, **POS), Case("pow_neg", lambda T, a: a ** -1, **POS),
    Case("rpow", lambda T, a: 2 ** a), Case("pow_tensor", lambda T, a, b: a ** b, [(3, 4), (4,)], **POS),
    Case("pow_method", lambda T, a: a.pow(2)), Case("pow_fn", lambda T, a, b: T.pow(a, b),
                                                     [(2, 3), (2, 3)], **POS),
    Case("pow_zero_base", lambda T, a, b: a ** b, vals=[[0.0, 1.0, 2.0], [2.0, 0.5, 3.0]],
         gradcheck=False),
    Case("neg", lambda T, a: -a), Case("neg_method", lambda T, a: a.neg()),
    Case("neg_fn", lambda T, a: T.neg(a)), Case("pos", lambda T, a: +a, grad_fn=False),
    Case("matmul_2d", lambda T, a, b: a @ b, [(3, 4), (4, 5)], rtol=1e-5, atol=1e-5),
    Case("matmul_vec_mat", lambda T, a, b: a @ b, [(4,), (4, 5)], atol=1e-5, grad_fn=False),
    Case("matmul_mat_vec", lambda T, a, b: a @ b, [(3, 4), (4,)], atol=1e-5, grad_fn=False),
    Case("matmul_dot", lambda T, a, b: T.matmul(a, b), [(4,), (4,)], atol=1e-5, grad_fn=False),
    Case("matmul_batched", lambda T, a, b: T.matmul(a, b), [(2, 3, 4), (4, 5)], atol=1e-5,
         grad_fn=False),
    Case("matmul_batched_both", lambda T, a, b: a @ b, [(2, 3, 4), (2, 4, 5)], atol=1e-5,
         grad_fn=False),
    Case("matmul_batched_bcast", lambda T, a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)], atol=1e-5,
         grad_fn=False),
    Case("matmul_vec_batched", lambda T, a, b: a @ b, [(4,), (2, 4, 5)], atol=1e-5, grad_fn=False),
    Case("matmul_batched_vec", lambda T, a, b: a @ b, [(2, 3, 4), (4,)], atol=1e-5, grad_fn=False),
    Case("matmul_empty", lambda T, a, b: a @ b, [(0, 4), (4, 5)]),
    Case("matmul_empty_inner", lambda T, a, b: a @ b, [(3, 0), (0, 5)]),
    Case("mm", lambda T, a, b: T.mm(a, b), [(3, 4), (4, 2)], atol=1e-5),
    Case("mm_method", lambda T, a, b: a.mm(b.t()), [(3, 4), (2, 4)], atol=1e-5),
    Case("bmm", lambda T, a, b: T.bmm(a, b), [(2, 3, 4), (2, 4, 5)], atol=1e-5),
    # ---------------------------------------------------------------- comparisons
    *[Case(f"cmp_{n}", (lambda op: lambda T, a, b: op(a, b))(op), [(3, 4), (4,)], grad=False)
      for n, op in [("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b),
                    ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b),
                    ("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b)]],
    Case("cmp_scalar", lambda T, a: (a > 0, a <= 0.5, a == 1, 0 < a), grad=False),
    Case("cmp_ties", lambda T, a, b: (a == b, a <= b, T.eq(a, b)),
         vals=[[1.0, 2.0, 3.0], [1.0, 0.0, 3.0]], grad=False),
    # ---------------------------------------------------------------- unary math
    Case("exp", lambda T, a: a.exp()), Case("exp_fn", lambda T, a: T.exp(a)),
    Case("log", lambda T, a: a.log(), **POS), Case("log_fn", lambda T, a: T.log(a), **POS),
    Case("sqrt", lambda T, a: a.sqrt(), **POS), Case("abs", lambda T, a: a.abs()),
    Case("abs_zero", lambda T, a: a.abs(), vals=[[-1.0, 0.0, 2.0]], gradcheck=False),
    Case("relu", lambda T, a: a.relu()), Case("relu_fn", lambda T, a: T.relu(a)),
    Case("relu_zero", lambda T, a: a.relu(), vals=[[-1.0, 0.0, 2.0]], gradcheck=False),
    Case("sigmoid", lambda T, a: a.sigmoid()), Case("sigmoid_fn", lambda T, a: T.sigmoid(a)),
    Case("tanh", lambda T, a: a.tanh()), Case("tanh_fn", lambda T, a: T.tanh(a)),
    Case("log1p", lambda T, a: a.log1p(), **POS), Case("sin", lambda T, a: a.sin()),
    Case("cos", lambda T, a: a.cos()), Case("sign", lambda T, a: a.sign()),
    Case("square", lambda T, a: a.square()), Case("rsqrt", lambda T, a: a.rsqrt(), **POS,
                                                  grad_fn=False),
    Case("reciprocal", lambda T, a: a.reciprocal(), **NONZERO, grad_fn=False),
    Case("unary_0d", lambda T, a: a.exp() + a.tanh() * a.sigmoid(), [()]),
    Case("unary_empty", lambda T, a: a.exp().sigmoid(), [(0, 3)]),
    # ---------------------------------------------------------------- clamp
    Case("clamp_min", lambda T, a: a.clamp(min=-0.5)),
    Case("clamp_max", lambda T, a: a.clamp(max=0.5)),
    Case("clamp_both", lambda T, a: a.clamp(-0.5, 0.5)),
    Case("clamp_fn", lambda T, a: T.clamp(a, min=0)),
    Case("clamp_boundary", lambda T, a: a.clamp(0.0, 1.0), vals=[[-1.0, 0.0, 0.5, 1.0, 2.0]],
         gradcheck=False),
    Case("clamp_int", lambda T, a: a.clamp(min=0), vals=[idx(-2, 0, 3)], grad=False),
    Case("clamp_int_float_bound", lambda T, a: a.clamp(min=0.5), vals=[idx(-2, 0, 3)],
         grad=False),
    Case("clamp_tensor_bounds", lambda T, a, lo, hi: a.clamp(lo, hi), [(3, 4), (4,), (3, 1)],
         gradcheck=False, grad_fn=False),
    # ---------------------------------------------------------------- softmax
    Case("softmax_last", lambda T, a: a.softmax(-1)),
    Case("softmax_0", lambda T, a: T.softmax(a, 0)),
    Case("softmax_3d", lambda T, a: a.softmax(dim=1), [(2, 3, 4)]),
    Case("softmax_0d", lambda T, a: a.softmax(0), [()]),
    Case("log_softmax_last", lambda T, a: a.log_softmax(-1)),
    Case("log_softmax_0", lambda T, a: T.log_softmax(a, dim=0)),
    Case("log_softmax_3d", lambda T, a: a.log_softmax(2), [(2, 3, 4)]),
    # ---------------------------------------------------------------- sum / mean
    Case("sum", lambda T, a: a.sum()), Case("sum_fn", lambda T, a: T.sum(a)),
    Case("sum_dim0", lambda T, a: a.sum(0)), Case("sum_dim1", lambda T, a: a.sum(dim=1)),
    Case("sum_neg_dim", lambda T, a: a.sum(-1), [(2, 3, 4)]),
    Case("sum_keepdim", lambda T, a: a.sum(1, keepdim=True), [(2, 3, 4)]),
    Case("sum_tuple", lambda T, a: a.sum((0, 2)), [(2, 3, 4)]),
    Case("sum_tuple_neg_keep", lambda T, a: a.sum(dim=(-1, 0), keepdim=True), [(2, 3, 4)]),
    Case("sum_dtype", lambda T, a: a.sum(dtype=T.float64)),
    Case("sum_empty_dims", lambda T, a: (a.sum(dim=()), a.mean(dim=[]))),
    Case("sum_dim_dtype", lambda T, a: T.sum(a, 0, dtype=T.float64)),
    Case("sum_0d", lambda T, a: a.sum(), [()]), Case("sum_0d_dim", lambda T, a: a.sum(0), [()]),
    Case("sum_empty", lambda T, a: a.sum(), [(0, 3)]),
    Case("sum_empty_dim", lambda T, a: a.sum(0), [(0, 3)]),
    Case("sum_int", lambda T, a: (a.sum(), a.sum(0)), vals=[idx(1, 2, 3)], grad=False),
    Case("sum_int32", lambda T, a: a.sum(), vals=[np.array([1, 2], np.int32)], grad=False),
    Case("sum_bool", lambda T, a: (a > 0).sum(), grad=False),
    Case("mean", lambda T, a: a.mean()), Case("mean_fn", lambda T, a: T.mean(a, 1)),
    Case("mean_dim", lambda T, a: a.mean(-2, keepdim=True), [(2, 3, 4)]),
    Case("mean_tuple", lambda T, a: a.mean((0, 1)), [(2, 3, 4)]),
    Case("mean_dtype", lambda T, a: a.mean(dtype=T.float64)),
    Case("mean_empty", lambda T, a: a.mean(), [(0,)], gradcheck=False),
    # ---------------------------------------------------------------- max / min / argmax
    Case("max", lambda T, a: a.max()), Case("max_fn", lambda T, a: T.max(a)),
    Case("min", lambda T, a: a.min()),
    Case("max_dim", lambda T, a: a.max(1)), Case("max_dim_fn", lambda T, a: T.max(a, dim=0)),
    Case("max_dim_keep", lambda T, a: a.max(-1, keepdim=True), [(2, 3, 4)]),
    Case("min_dim", lambda T, a: a.min(0)), Case("min_dim_keep", lambda T, a: a.min(1, True)),
    Case("max_dim_fields", lambda T, a: (a.max(1).values, a.max(1).indices)),
    Case("max_ties", lambda T, a: a.max(), vals=[[[1.0, 3.0], [3.0, 2.0]]], gradcheck=False),
    Case("min_ties", lambda T, a: a.min(), vals=[[[1.0, 3.0], [1.0, 2.0]]], gradcheck=False),
    Case("max_dim_ties", lambda T, a: a.max(1), vals=[[[3.0, 3.0, 1.0], [0.0, 2.0, 2.0]]],
         gradcheck=False),
    Case("min_dim_ties", lambda T, a: a.min(0), vals=[[[3.0, 1.0], [3.0, 1.0]]],
         gradcheck=False),
    Case("max_0d", lambda T, a: (a.max(), a.max(0)), [()]),
    Case("max_binary", lambda T, a, b: T.max(a, b), [(3, 4), (4,)], grad_fn=False),
    Case("argmax", lambda T, a: a.argmax(), grad=False),
    Case("argmax_dim", lambda T, a: (T.argmax(a, 1), a.argmax(0, keepdim=True)), grad=False),
    Case("argmax_ties", lambda T, a: (a.argmax(), a.argmax(1)),
         vals=[[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]], grad=False),
    Case("argmin", lambda T, a: (a.argmin(), a.argmin(-1)), grad=False),
    Case("amax", lambda T, a: (a.amax(0), a.amin(dim=(0, 1))), [(2, 3, 4)], grad_fn=False),
    Case("maximum_ties", lambda T, a, b: (T.maximum(a, b), T.minimum(a, b)),
         vals=[[1.0, 2.0, 3.0], [1.0, 0.0, 4.0]], gradcheck=False),
    # ---------------------------------------------------------------- cat / stack / where
    Case("cat", lambda T, a, b: T.cat([a, b]), [(2, 3), (4, 3)]),
    Case("cat_dim1", lambda T, a, b, c: T.cat((a, b, c), dim=1), [(2, 3), (2, 1), (2, 2)]),
    Case("cat_neg", lambda T, a, b: T.cat([a, b], -1), [(2, 2, 3), (2, 2, 1)]),
    Case("cat_empty", lambda T, a, b: T.cat([a, b]), [(0, 3), (2, 3)]),
    Case("cat_legacy_empty", lambda T, a, b: T.cat([a, b]), [(0,), (2, 3)]),
    Case("cat_single", lambda T, a: T.cat([a], 1)),
    Case("stack", lambda T, a, b: T.stack([a, b]), [(2, 3), (2, 3)]),
    Case("stack_dim1", lambda T, a, b: T.stack((a, b), 1), [(2, 3), (2, 3)]),
    Case("stack_neg", lambda T, a, b: T.stack([a, b], dim=-1), [(2, 3), (2, 3)]),
    Case("stack_0d", lambda T, a, b: T.stack([a, b]), [(), ()]),
    Case("where", lambda T, a, b: T.where(a > 0, a, b), [(3, 4), (3, 4)]),
    Case("where_bcast", lambda T, a, b: T.where(b > 0, a, b), [(3, 4), (4,)]),
    Case("where_scalar", lambda T, a: T.where(a > 0, a, 0.0)),
    Case("where_scalar_l", lambda T, a: T.where(a > 0, 1.0, a)),
    Case("where_method", lambda T, a, b: a.where(a < 0, b), [(3, 4), (3, 1)], grad_fn=False),
    # ---------------------------------------------------------------- shape
    Case("flatten", lambda T, a: a.flatten(), [(2, 3, 4)]),
    Case("flatten_fn", lambda T, a: T.flatten(a, 1), [(2, 3, 4)]),
    Case("flatten_mid", lambda T, a: a.flatten(0, 1), [(2, 3, 4)]),
    Case("flatten_0d", lambda T, a: a.flatten(), [()]),
    Case("view", lambda T, a: a.view(4, 3), noncontig=False),
    Case("view_infer", lambda T, a: a.view(-1), noncontig=False),
    Case("view_tuple", lambda T, a: a.view((2, -1, 2)), noncontig=False),
    Case("view_size1", lambda T, a: a.view(1, 3, 1, 4), noncontig=False),
    Case("reshape", lambda T, a: a.reshape(6, 2)),
    Case("reshape_infer", lambda T, a: a.reshape(-1, 3), [(2, 3, 4)]),
    Case("reshape_fn", lambda T, a: T.reshape(a, (12,))),
    Case("reshape_empty", lambda T, a: a.reshape(3, 0), [(0, 3)]),
    Case("t", lambda T, a: a.t()), Case("t_fn", lambda T, a: T.t(a)),
    Case("t_1d", lambda T, a: a.t() * 2, [(3,)]),
    Case("T", lambda T, a: a.T, [(2, 3, 4)], grad_fn=False),
    Case("transpose", lambda T, a: a.transpose(0, 2), [(2, 3, 4)]),
    Case("transpose_neg", lambda T, a: T.transpose(a, -1, 0)),
    Case("permute", lambda T, a: a.permute(2, 0, 1), [(2, 3, 4)]),
    Case("permute_tuple", lambda T, a: a.permute((1, 0, 2)), [(2, 3, 4)]),
    Case("permute_neg", lambda T, a: T.permute(a, (-1, 0, 1)), [(2, 3, 4)]),
    Case("unsqueeze", lambda T, a: a.unsqueeze(0)),
    Case("unsqueeze_end", lambda T, a: a.unsqueeze(-1)),
    Case("unsqueeze_mid", lambda T, a: T.unsqueeze(a, 1)),
    Case("unsqueeze_0d", lambda T, a: a.unsqueeze(0), [()]),
    Case("squeeze", lambda T, a: a.squeeze(), [(1, 3, 1, 2)]),
    Case("squeeze_dim", lambda T, a: a.squeeze(0), [(1, 3, 1, 2)]),
    Case("squeeze_dim_nop", lambda T, a: a.squeeze(1), [(1, 3, 1, 2)]),
    Case("squeeze_neg", lambda T, a: T.squeeze(a, -2), [(1, 3, 1, 2)]),
    Case("expand", lambda T, a: a.expand(3, 4), [(3, 1)]),
    Case("expand_new_dims", lambda T, a: a.expand(2, 3, 4), [(4,)]),
    Case("expand_minus1", lambda T, a: a.expand(2, -1, 4), [(3, 1)]),
    Case("expand_as", lambda T, a, b: a.expand_as(b), [(1, 4), (3, 4)]),
    Case("expand_0d", lambda T, a: a.expand(2, 3), [()]),
    # ---------------------------------------------------------------- getitem
    Case("index_int", lambda T, a: a[1]), Case("index_neg_int", lambda T, a: a[-1]),
    Case("index_2ints", lambda T, a: a[1, -2]),
    Case("index_slice", lambda T, a: a[1:3]), Case("index_slice_step", lambda T, a: a[::2]),
    Case("index_slice_2d", lambda T, a: a[1:, ::2]),
    Case("index_slice_neg", lambda T, a: a[-2:, :-1]),
    Case("index_slice_oob", lambda T, a: a[1:100]),
    Case("index_slice_empty", lambda T, a: a[2:1]),
    Case("index_none", lambda T, a: a[None]),
    Case("index_none_mid", lambda T, a: a[:, None, 1]),
    Case("index_ellipsis", lambda T, a: a[..., 1], [(2, 3, 4)]),
    Case("index_ellipsis_mid", lambda T, a: a[0, ..., 1:], [(2, 3, 4)]),
    Case("index_ellipsis_none", lambda T, a: a[..., None], [(2, 3)]),
    Case("index_tensor", lambda T, a, i: a[i], vals=[rnd(4, 3), idx(0, 2, 2)]),
    Case("index_tensor_dup_grad", lambda T, a, i: a[i] * 2, vals=[rnd(3), idx(1, 1, 1, 0)]),
    Case("index_tensor_neg", lambda T, a, i: a[i], vals=[rnd(4, 3), idx(-1, 0)]),
    Case("index_tensor_2d", lambda T, a, i: a[i], vals=[rnd(4, 3), np.array([[0, 1], [3, 3]])]),
    Case("index_tensor_dim1", lambda T, a, i: a[:, i], vals=[rnd(4, 3), idx(2, 0)]),
    Case("index_two_tensors", lambda T, a, i, j: a[i, j],
         vals=[rnd(4, 3), idx(0, 3, 3), idx(2, 1, 1)]),
    Case("index_int_and_tensor", lambda T, a, i: a[0, i], vals=[rnd(4, 3), idx(1, 2)]),
    Case("index_0d_tensor", lambda T, a, i: a[i], vals=[rnd(4, 3), np.array(2)]),
    Case("index_list", lambda T, a: a[[0, 2]]),
    Case("index_mask", lambda T, a: a[a > 0]),
    Case("index_mask_row", lambda T, a, m: a[m], vals=[rnd(3, 2), np.array([True, False, True])]),
    Case("index_mask_dim1", lambda T, a: a[:, a[0] > 0]),
    Case("index_mask_empty", lambda T, a: a[a > 100]),
    Case("index_empty_tensor", lambda T, a, i: a[i], vals=[rnd(4, 3), np.zeros(0, np.int64)]),
    Case("getitem_chain", lambda T, a: a[1:][0][::2], [(3, 5)]),
    # ---------------------------------------------------------------- setitem
    Case("setitem_mask_zero", lambda T, a: _set(a, lambda g: g.__setitem__(a < 0, 0))),
    Case("setitem_int", lambda T, a: _set(a, lambda g: g.__setitem__(1, 5.0))),
    Case("setitem_slice_tensor", lambda T, a, b: _set(a, lambda g: g.__setitem__(
        (slice(None), slice(1, 3)), b)), [(3, 4), (3, 2)]),
    Case("setitem_bcast", lambda T, a, b: _set(a, lambda g: g.__setitem__(0, b)), [(3, 4), (4,)]),
    Case("setitem_index", lambda T, a, i: _set(a, lambda g: g.__setitem__(i, -1.0)),
         vals=[rnd(4, 3), idx(0, 2)]),
    Case("setitem_ellipsis", lambda T, a, b: _set(a, lambda g: g.__setitem__(
        (Ellipsis, 0), b)), [(2, 3), (2,)]),
    Case("setitem_no_grad_tensor", lambda T, a: _grad_mask(T, a), grad=False),
    # ---------------------------------------------------------------- conversions
    Case("float", lambda T, a: a.long().float(), grad=False),
    Case("long", lambda T, a: a.long(), grad=False),
    Case("to_float64", lambda T, a: a.to(T.float64) * 2),
    Case("to_float64_kw", lambda T, a: a.to(dtype=T.float64)),
    Case("to_same", lambda T, a: a.to(T.float32) + 0, float64=False, gradcheck=False),
    Case("double_float", lambda T, a: a.double().float(), gradcheck=False),
    Case("to_int", lambda T, a: (a.int(), a.to(T.int64), a.to(T.bool)), grad=False),
    Case("type_as", lambda T, a, b: a.type_as(b.double()) + b, [(3, 4), (3, 4)]),
    Case("type_as_int", lambda T, a, b: a.type_as(b), vals=[rnd(3), idx(1, 2)], grad=False),
    Case("bool_to_float", lambda T, a: (a > 0).float() * a),
    Case("clone", lambda T, a: a.clone()), Case("clone_fn", lambda T, a: T.clone(a) * 2),
    Case("contiguous", lambda T, a: a.t().contiguous(), grad_fn=False),
    Case("detach", lambda T, a: a.detach() * a, gradcheck=False),  # FD sees through detach
    # ---------------------------------------------------------------- extras
    Case("var", lambda T, a: a.var()), Case("var_dim", lambda T, a: a.var(1)),
    Case("var_biased", lambda T, a: a.var(0, unbiased=False, keepdim=True)),
    Case("var_correction", lambda T, a: T.var(a, dim=1, correction=0)),
    Case("std", lambda T, a: a.std()), Case("std_dim", lambda T, a: a.std(-1, keepdim=True)),
    Case("std_fn", lambda T, a: T.std(a, 0, unbiased=False)),
    Case("logsumexp", lambda T, a: a.logsumexp(1)),
    Case("logsumexp_fn", lambda T, a: T.logsumexp(a, dim=(0, 1), keepdim=True)),
    Case("logsumexp_3d", lambda T, a: a.logsumexp(-1), [(2, 3, 4)]),
    Case("split", lambda T, a: a.split(2), [(5, 3)]),
    Case("split_sections", lambda T, a: T.split(a, [1, 3], dim=1)),
    Case("chunk", lambda T, a: a.chunk(2, 1), [(3, 5)]),
    Case("chunk_fn", lambda T, a: T.chunk(a, 3), [(5, 2)]),
    Case("unbind", lambda T, a: a.unbind(1)), Case("unbind_fn", lambda T, a: T.unbind(a)),
    Case("flip", lambda T, a: a.flip(0)), Case("flip_multi", lambda T, a: T.flip(a, (0, 1))),
    Case("repeat", lambda T, a: a.repeat(2, 1)), Case("repeat_new", lambda T, a: a.repeat(2, 1, 3)),
    Case("prod", lambda T, a: a.prod(), [(2, 3)]), Case("prod_dim", lambda T, a: a.prod(1)),
    Case("prod_zero", lambda T, a: a.prod(), vals=[[2.0, 0.0, 3.0]]),
    Case("narrow", lambda T, a: a.narrow(1, 1, 2)), Case("select", lambda T, a: a.select(1, -1)),
    Case("movedim", lambda T, a: a.movedim(0, 2), [(2, 3, 4)]),
    Case("masked_fill", lambda T, a: a.masked_fill(a > 0, 0.5)),
    Case("remainder", lambda T, a: (a % 0.75, a // 0.5), grad=False),
    Case("remainder_int", lambda T, a: (a % 3, a // 2), vals=[idx(-5, 4, 7)], grad=False),
    Case("addcmul", lambda T, a, b, c: a.addcmul(b, c, value=0.5), [(3, 4), (3, 4), (4,)],
         grad_fn=False),
    Case("lerp", lambda T, a, b: a.lerp(b, 0.25), [(3, 4), (3, 4)], grad_fn=False),
    Case("isnan_isinf", lambda T, a: (a.log().isnan(), (a / 0).isinf()), grad=False),
    Case("all_any", lambda T, a: ((a > 0).all(), (a > 0).any(), (a > 0).any(1)), grad=False),
    Case("logical", lambda T, a, b: (~(a > 0), (a > 0) & (b > 0), (a > 0) | (b > 0),
                                     (a > 0) ^ (b > 0)), [(3, 4), (3, 4)], grad=False),
    Case("size1_chain", lambda T, a: (a.unsqueeze(1).expand(3, 2, 4) * 2).sum(1), [(3, 4)]),
]


def _set(a, assign):
    g = a.clone()
    assign(g)
    return g


def _grad_mask(T, a):
    g = a.detach().clone()
    g[a < 0] = 0
    return g


for _c in CASES:
    if _c.shapes is None and _c.vals is None:
        _c.shapes = [(3, 4)]

CASE_IDS = [c.name for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case names"


def _run(case, dtype="float32", layout="contiguous"):
    torch_fn, kiln_fn = case.fns()
    helper_test_op(None, torch_fn, kiln_fn, vals=case.arrays(dtype), rtol=case.rtol,
                   atol=case.atol, forward_only=not case.grad, layout=layout,
                   check_grad_fn=case.grad_fn)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_op_float32(case):
    _run(case)


@pytest.mark.parametrize("case", [c for c in CASES if c.float64], ids=lambda c: c.name)
def test_op_float64(case):
    _run(case, "float64")


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
@pytest.mark.parametrize("case", [c for c in CASES if c.noncontig], ids=lambda c: c.name)
def test_op_noncontiguous(case, layout):
    _run(case, layout=layout)


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=lambda c: c.name)
def test_gradcheck(case):
    arrays = case.arrays("float64")
    kiln_gradcheck(functools.partial(case.fn, kiln), vals=arrays)


# ---------------------------------------------------------------------- dtype promotion
def _t(T, v, dtype):
    return T.tensor(v, dtype=getattr(T, dtype))


PROMOTION = [
    ("int_plus_float_scalar", lambda T: _t(T, [1, 2], "int64") + 1.5),
    ("float_scalar_plus_int", lambda T: 2.5 * _t(T, [1, 2], "int64")),
    ("int_plus_int_scalar", lambda T: _t(T, [1, 2], "int32") + 3),
    ("int_div_int", lambda T: _t(T, [1, 2], "int64") / _t(T, [2, 4], "int64")),
    ("int_div_scalar", lambda T: _t(T, [1, 3], "int64") / 2),
    ("scalar_div_int", lambda T: 1 / _t(T, [1, 3], "int32")),
    ("int32_plus_int64", lambda T: _t(T, [1, 2], "int32") + _t(T, [1, 2], "int64")),
    ("bool_plus_bool", lambda T: _t(T, [True, False], "bool") + _t(T, [True, True], "bool")),
    ("bool_times_bool", lambda T: _t(T, [True, False], "bool") * _t(T, [True, True], "bool")),
    ("bool_plus_int_scalar", lambda T: _t(T, [True, False], "bool") + 1),
    ("bool_times_float_scalar", lambda T: _t(T, [True, False], "bool") * 0.5),
    ("bool_plus_int_tensor", lambda T: _t(T, [True, False], "bool") + _t(T, [3, 4], "int32")),
    ("f64_0d_plus_f32", lambda T: _t(T, 2.0, "float64") + _t(T, [1.0, 2.0], "float32")),
    ("f32_0d_plus_f64", lambda T: _t(T, 2.0, "float32") + _t(T, [1.0, 2.0], "float64")),
    ("int64_times_0d_float", lambda T: _t(T, [1, 2], "int64") * _t(T, 0.5, "float32")),
    ("int64_times_0d_double", lambda T: _t(T, [1, 2], "int64") * _t(T, 0.5, "float64")),
    ("int_0d_plus_float", lambda T: _t(T, 3, "int64") + _t(T, [0.5], "float32")),
    ("f32_plus_f64", lambda T: _t(T, [1.0], "float32") + _t(T, [2.0], "float64")),
    ("0d_int_plus_0d_float", lambda T: _t(T, 3, "int64") + _t(T, 0.5, "float64")),
    ("0d_i32_plus_int_scalar", lambda T: _t(T, 3, "int32") + 4),
    ("int_pow_2", lambda T: _t(T, [1, 2, 3], "int64") ** 2),
    ("int_pow_float", lambda T: _t(T, [1, 2, 3], "int64") ** 0.5),
    ("scalar_pow_int", lambda T: 2 ** _t(T, [1, 2, 3], "int64")),
    ("float_scalar_pow_int", lambda T: 2.0 ** _t(T, [1, 2, 3], "int64")),
    ("neg_int", lambda T: -_t(T, [1, -2], "int32")),
    ("abs_int", lambda T: _t(T, [1, -2], "int64").abs()),
    ("exp_int", lambda T: _t(T, [0, 1], "int64").exp()),
    ("sqrt_int", lambda T: T.sqrt(_t(T, [1, 4], "int32"))),
    ("sigmoid_bool", lambda T: _t(T, [True, False], "bool").sigmoid()),
    ("relu_int", lambda T: _t(T, [-1, 2], "int64").relu()),
    ("where_int_float", lambda T: T.where(_t(T, [True, False], "bool"), _t(T, [1, 2], "int64"),
                                          _t(T, [0.5, 1.5], "float32"))),
    ("where_int_scalar", lambda T: T.where(_t(T, [True, False], "bool"), _t(T, [1, 2], "int64"),
                                           0.5)),
    ("cat_int_float", lambda T: T.cat([_t(T, [1, 2], "int64"), _t(T, [0.5], "float32")])),
    ("stack_int_double", lambda T: T.stack([_t(T, [1, 2], "int32"), _t(T, [0.5, 1], "float64")])),
    ("cmp_int_float", lambda T: _t(T, [1, 2], "int64") < _t(T, [1.5, 1.5], "float32")),
    ("eq_int_scalar_float", lambda T: _t(T, [1, 2], "int64") == 1.0),
    ("sum_bool", lambda T: _t(T, [True, True, False], "bool").sum()),
    ("sum_int32", lambda T: _t(T, [1, 2], "int32").sum(0)),
    ("matmul_int", lambda T: _t(T, [[1, 2]], "int64") @ _t(T, [[3], [4]], "int64")),
    ("matmul_int_float", lambda T: _t(T, [[1, 2]], "int64").float() @ _t(T, [[3.0], [4.0]], "float32")),
    ("max_int", lambda T: (_t(T, [[1, 5], [7, 2]], "int64").max(), _t(T, [[1, 5], [7, 2]], "int64").max(1))),
    ("floordiv_int", lambda T: _t(T, [-7, 7], "int64") // 2),
    ("clamp_int", lambda T: _t(T, [-7, 7], "int64").clamp(-3, 3)),
    ("float_plus_bool_tensor", lambda T: _t(T, [0.5], "float64") + _t(T, [True], "bool")),
    ("int_tensor_times_bool_scalar", lambda T: _t(T, [1, 2], "int32") * True),
]


@pytest.mark.parametrize("fn", [p[1] for p in PROMOTION], ids=[p[0] for p in PROMOTION])
def test_promotion(fn):
    t_outs, k_outs = _flatten_outputs(fn(torch)), _flatten_outputs(fn(kiln))
    assert len(t_outs) == len(k_outs)
    for t, k in zip(t_outs, k_outs):
        assert_same(t, k)


# ---------------------------------------------------------------------- grad through promotion
def test_grad_through_int_promotion():
    helper_test_op(None, lambda a, i: a * i + i, vals=[rnd(3), idx(1, 2, 3)], gradcheck=True)


def test_harness_gradcheck_option_catches_a_wrong_gradient():
    from frontend.autograd import Function, GradcheckError

    class WrongExp(Function):
        @staticmethod
        def forward(ctx, x):
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            return g * 2

    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        helper_test_op(None, lambda a: a.exp(), lambda a: WrongExp.apply(a), vals=[rnd(3)],
                       forward_only=True, requires_grad=[True], gradcheck=True)


def test_grad_through_float64_0d():
    helper_test_op(None, lambda a, b: a * b, vals=[rnd(3), np.array(2.0)],
                   requires_grad=[True, True])


def test_max_dim_grad_goes_to_index():
    """max(dim) routes the whole gradient to the returned index (ties: torch's choice)."""
    helper_test_op(None, lambda a: a.max(1)[0] * 3, vals=[np.array([[1.0, 1.0], [2.0, 2.0]])])


def test_clone_of_noncontiguous_keeps_values():
    t, k = make_pair(rnd(3, 4), False, "transposed")
    assert_same(t.clone(), k.clone())
    assert not k.is_contiguous()
    assert_same(t.contiguous(), k.contiguous())
    assert k.contiguous().is_contiguous()
    assert_same(t.reshape(-1), k.reshape(-1))  # reshape of a non-viewable tensor copies


@pytest.mark.parametrize("view", ["transpose", "permute", "slice", "expand", "plain"])
def test_clone_preserves_memory_order_as_torch(view):
    """clone() keeps a dense tensor's memory order (PyTorch's preserve_format); a slice
    keeps its axis order compactly; an expanded (overlapping) tensor comes back
    contiguous. contiguous() is always C order."""
    import frontend
    views = {"transpose": lambda x: x.transpose(0, 2), "permute": lambda x: x.permute(1, 0, 2),
             "slice": lambda x: x[:, :, ::2], "expand": lambda x: x[:1].expand(3, 3, 4),
             "plain": lambda x: x}
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = views[view](torch.from_numpy(a.copy())).clone()
    k = views[view](frontend.from_numpy(a.copy())).clone()
    assert k.stride() == t.stride() and k.is_contiguous() == t.is_contiguous()
    np.testing.assert_array_equal(k.numpy(), t.numpy())
    assert views[view](frontend.from_numpy(a.copy())).contiguous().is_contiguous()
