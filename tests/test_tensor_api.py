"""The Tensor API against torch: creation and dtype inference, attributes, repr, Python
protocols, in-place ops and views, threads, and every "clear error" case."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import frontend as kiln
from helpers import assert_same, dtype_name, to_numpy


def same_dtype(t, k):
    assert dtype_name(k.dtype) == dtype_name(t.dtype), f"{k.dtype} != {t.dtype}"


# ---------------------------------------------------------------------- creation
TENSOR_DATA = [
    [1, 2, 3], [1.0, 2, 3], [True, False], 3, 3.5, True, [], [[1, 2], [3, 4]],
    [[1.5], [2.0]], [[]], (1, 2), [np.float64(1.5)], [np.int32(2)], [np.int32(2), 5],
    [np.float64(1.5), 2.0], [np.float32(1.5), 2], [np.int64(1), True], [np.bool_(True)],
    np.float64(2.0), [1, np.float32(2)],
]


@pytest.mark.parametrize("data", TENSOR_DATA, ids=repr)
def test_tensor_dtype_inference(data):
    t, k = torch.tensor(data), kiln.tensor(data)
    same_dtype(t, k)
    assert_same(t, k)


@pytest.mark.parametrize("np_dtype", ["float32", "float64", "int64", "int32", "bool"])
def test_tensor_from_numpy_array_keeps_dtype(np_dtype):
    a = np.array([[1, 0], [2, 3]]).astype(np_dtype)
    k = kiln.tensor(a)
    assert_same(torch.tensor(a), k)
    a[0, 0] = 7  # tensor() copies
    assert k.tolist()[0][0] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool"])
def test_tensor_explicit_dtype(dtype):
    data = [[0, 1.5], [2, 3]]
    if dtype == "bool":
        data = [[0, 1], [2, 0]]
    assert_same(torch.tensor(data, dtype=getattr(torch, dtype)),
                kiln.tensor(data, dtype=getattr(kiln, dtype if dtype != "bool" else "bool")))


def test_tensor_from_tensor_list_and_requires_grad():
    k = kiln.tensor([kiln.tensor(1.0), kiln.tensor(2.0)])
    assert k.tolist() == [1.0, 2.0] and k.dtype == kiln.float32
    r = kiln.tensor([1.0, 2.0], requires_grad=True)
    assert r.requires_grad and r.is_leaf


FULL_ARANGE = [
    ("full_int", lambda T: T.full((2, 3), 1)),
    ("full_float", lambda T: T.full((2, 3), 1.5)),
    ("full_bool", lambda T: T.full((2,), True)),
    ("full_dtype", lambda T: T.full([2], 7, dtype=T.float64)),
    ("arange_int", lambda T: T.arange(5)),
    ("arange_start", lambda T: T.arange(2, 7)),
    ("arange_step", lambda T: T.arange(0, 10, 3)),
    ("arange_neg_step", lambda T: T.arange(5, 0, -2)),
    ("arange_float", lambda T: T.arange(0, 1, 0.25)),
    ("arange_float_start", lambda T: T.arange(1.0, 4)),
    ("arange_dtype", lambda T: T.arange(5, dtype=T.float64)),
    ("arange_empty", lambda T: T.arange(0)),
    ("zeros_args", lambda T: T.zeros(5, 3)), ("zeros_tuple", lambda T: T.zeros((5, 3))),
    ("zeros_list", lambda T: T.zeros([2, 3], dtype=T.int64)),
    ("zeros_0d", lambda T: T.zeros(())), ("ones", lambda T: T.ones(2, dtype=T.bool)),
    ("ones_empty", lambda T: T.ones(0, 3)),
    ("zeros_like", lambda T: T.zeros_like(T.ones(2, 3, dtype=T.int32))),
    ("ones_like", lambda T: T.ones_like(T.zeros(2, dtype=T.float64))),
    ("ones_like_dtype", lambda T: T.ones_like(T.zeros(2), dtype=T.int64)),
    ("eye", lambda T: T.eye(3)), ("eye_rect", lambda T: T.eye(2, 3)),
    ("eye_dtype", lambda T: T.eye(2, dtype=T.int64)),
    ("empty_shape", lambda T: T.empty(2, 3).shape),
    ("linspace", lambda T: T.linspace(0, 1, 5)),
]


@pytest.mark.parametrize("fn", [c[1] for c in FULL_ARANGE], ids=[c[0] for c in FULL_ARANGE])
def test_creation_functions(fn):
    t, k = fn(torch), fn(kiln)
    if isinstance(t, torch.Size):
        assert tuple(k) == tuple(t)
        return
    assert_same(t, k)


def test_empty_and_random_shapes_dtypes():
    assert kiln.empty(2, 3).dtype == kiln.float32 and kiln.empty((2, 3)).shape == (2, 3)
    for fn in (kiln.randn, kiln.rand):
        for args in ((3,), (2, 3), ((2, 3),), ([4],)):
            x = fn(*args)
            expected = args[0] if isinstance(args[0], (tuple, list)) else args
            assert x.shape == tuple(expected) and x.dtype == kiln.float32
    assert kiln.randn(2, dtype=kiln.float64).dtype == kiln.float64
    r = kiln.rand(1000)
    assert 0 <= r.min().item() and r.max().item() < 1
    n = kiln.randn(4000)
    assert abs(n.mean().item()) < 0.1 and abs(n.std().item() - 1) < 0.1
    i = kiln.randint(0, 10, (3, 4))
    assert i.shape == (3, 4) and i.dtype == kiln.int64
    assert 0 <= i.min().item() and i.max().item() < 10
    j = kiln.randint(5, (100,))
    assert j.dtype == kiln.int64 and 0 <= j.min().item() and j.max().item() < 5
    assert kiln.randn(2, 3, requires_grad=True).requires_grad


def test_manual_seed_reproducible():
    kiln.manual_seed(42)
    a = (kiln.randn(3), kiln.rand(2), kiln.randint(0, 100, (4,)), kiln.empty(3).normal_())
    kiln.manual_seed(42)
    b = (kiln.randn(3), kiln.rand(2), kiln.randint(0, 100, (4,)), kiln.empty(3).normal_())
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    kiln.manual_seed(43)
    assert kiln.randn(3).tolist() != a[0].tolist()


def test_legacy_tensor_constructor():
    x = kiln.Tensor(5, 3)
    assert x.shape == (5, 3) and x.dtype == kiln.float32 and not x.requires_grad
    assert kiln.Tensor(kiln.Size([2, 2])).shape == (2, 2)
    assert kiln.Tensor((2, 2)).tolist() == [2.0, 2.0]  # a tuple is data, as in torch
    y = kiln.Tensor([1, 2])
    assert y.dtype == kiln.float32 and y.tolist() == [1.0, 2.0]
    assert isinstance(x, kiln.Tensor) and isinstance(x + 1, kiln.Tensor)


def test_from_numpy_shares_memory():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    k = kiln.from_numpy(a)
    assert k.dtype == kiln.float32 and k.shape == (2, 3)
    a[0, 0] = 100
    assert k[0, 0].item() == 100
    k[1, 2] = -1
    assert a[1, 2] == -1
    k.add_(1)
    assert a[0, 0] == 101
    assert kiln.from_numpy(np.array([1, 2])).dtype == kiln.int64
    assert np.shares_memory(k.numpy(), a)
    with pytest.raises(TypeError, match="ndarray"):
        kiln.from_numpy([1, 2])


# ---------------------------------------------------------------------- attributes
def test_attributes():
    t = torch.zeros(2, 3, 4)
    k = kiln.zeros(2, 3, 4)
    assert isinstance(k.shape, tuple) and isinstance(k.shape, kiln.Size)
    assert k.shape == t.shape and k.size() == t.size() and k.size(1) == 3 and k.size(-1) == 4
    assert repr(k.shape) == repr(t.shape).replace("torch.", "kiln.")
    assert k.dim() == 3 and k.ndim == 3 and k.numel() == 24 and k.shape.numel() == 24
    assert k.dtype == kiln.float32 and k.T.shape == (4, 3, 2)
    assert kiln.zeros(2, 3).T.shape == (3, 2)
    assert k.is_leaf and not k.requires_grad and k.grad is None and k.grad_fn is None
    assert kiln.tensor(5).dim() == 0 and kiln.tensor(5).shape == () and kiln.tensor(5).numel() == 1
    with pytest.raises(IndexError, match=r"Dimension out of range.*\[-3, 2\].*3"):
        k.size(3)
    assert kiln.float32 is kiln.float and kiln.int64 is kiln.long
    assert kiln.zeros(2).is_floating_point() and not kiln.zeros(2, dtype=kiln.int64).is_floating_point()


def test_requires_grad_attribute_and_method():
    x = kiln.zeros(2)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad


# ---------------------------------------------------------------------- repr
REPRS = [
    ("row_grad", lambda T: T.tensor([[1.0, 2.0]], requires_grad=True) + 0),
    ("requires_grad", lambda T: T.tensor([1.0, -2.5], requires_grad=True)),
    ("int", lambda T: T.tensor([1, 2, 3])),
    ("int32", lambda T: T.tensor([1, 2], dtype=T.int32)),
    ("float64", lambda T: T.tensor([1.5, 2.0], dtype=T.float64)),
    ("bool", lambda T: T.tensor([True, False])),
    ("scalar", lambda T: T.tensor(3.25)),
    ("scalar_grad", lambda T: (T.tensor([1.0, 2.0], requires_grad=True) ** 2).sum()),
    ("mean_grad", lambda T: T.ones(2, 2, requires_grad=True).mean()),
    ("empty", lambda T: T.zeros(0)),
    ("empty_2d", lambda T: T.zeros(2, 0)),
    ("matrix", lambda T: T.arange(12.0).reshape(3, 4) / 3),
    ("large", lambda T: T.arange(2000.0)),
    ("sci", lambda T: T.tensor([1e-8, 1.0, 1e8])),
    ("view_grad", lambda T: T.ones(2, 3, requires_grad=True).view(3, 2)),
    ("inf_nan", lambda T: T.tensor([float("inf"), float("nan"), 1.0])),
]


@pytest.mark.parametrize("fn", [r[1] for r in REPRS], ids=[r[0] for r in REPRS])
def test_repr_matches_torch(fn):
    assert repr(fn(kiln)) == repr(fn(torch)).replace("torch.", "kiln.")
    assert str(fn(kiln)) == str(fn(torch)).replace("torch.", "kiln.")


def test_repr_seed_example():
    x = kiln.tensor([[0.0, 1.0]], requires_grad=True)
    assert repr(x + 1) == "tensor([[1., 2.]], grad_fn=<AddBackward0>)"


# ---------------------------------------------------------------------- Python protocols
def test_len_iter_item_tolist():
    k = kiln.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(k) == 3
    rows = list(k)
    assert len(rows) == 3 and rows[1].tolist() == [3, 4]
    assert [r.item() for r in kiln.tensor([1.5, 2.5])] == [1.5, 2.5]
    assert kiln.tensor([[7]]).item() == 7 and isinstance(kiln.tensor(2.5).item(), float)
    assert isinstance(kiln.tensor(3).item(), int) and isinstance(kiln.tensor(True).item(), bool)
    assert k.tolist() == [[1, 2], [3, 4], [5, 6]] and kiln.tensor(2.0).tolist() == 2.0
    with pytest.raises(TypeError, match="0-d"):
        len(kiln.tensor(1.0))
    with pytest.raises(TypeError, match="0-d"):
        iter(kiln.tensor(1.0))
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        k.item()
    assert float(kiln.tensor([2.5])) == 2.5 and int(kiln.tensor(3)) == 3
    assert [10, 20, 30][kiln.tensor(1)] == 20  # __index__


def test_bool_of_tensor():
    assert bool(kiln.tensor([1.0])) and not bool(kiln.tensor(0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(kiln.tensor([1, 2]))


def test_numpy_conversion():
    k = kiln.tensor([1.0, 2.0])
    a = k.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    a[0] = 5  # shares memory, as torch
    assert k[0].item() == 5
    g = kiln.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        g.numpy()
    assert g.detach().numpy().tolist() == [1.0]
    assert np.asarray(kiln.tensor([1, 2])).dtype == np.int64


# ---------------------------------------------------------------------- in-place
INPLACE = [
    ("add_", lambda x: x.add_(2)), ("add_tensor", lambda x: x.add_(x * 0 + 1)),
    ("add_alpha", lambda x: x.add_(x * 0 + 1, alpha=3)),
    ("sub_", lambda x: x.sub_(1.5)), ("mul_", lambda x: x.mul_(3)), ("div_", lambda x: x.div_(4)),
    ("zero_", lambda x: x.zero_()), ("fill_", lambda x: x.fill_(7)),
    ("clamp_", lambda x: x.clamp_(-0.5, 0.5)), ("clamp_min", lambda x: x.clamp_(min=0)),
    ("iadd", lambda x: _aug(x, "iadd", 2)), ("isub", lambda x: _aug(x, "isub", 2)),
    ("imul", lambda x: _aug(x, "imul", 3)), ("idiv", lambda x: _aug(x, "itruediv", 2)),
    ("iadd_bcast", lambda x: _aug(x, "iadd", x[0] * 2)),
    ("setitem_row", lambda x: x.__setitem__(0, 9.0)),
    ("setitem_mask", lambda x: x.__setitem__(x < 0, 0)),
    ("setitem_slice_tensor", lambda x: x.__setitem__((slice(None), 1), x[:, 0] + 1)),
    ("copy_", lambda x: x.copy_(x.flip(0))),
    ("copy_bcast", lambda x: x.copy_(x[1].clone())),
]


def _aug(x, op, other):
    import operator
    y = x
    y = getattr(operator, op)(y, other)
    assert y is x, "augmented assignment must be in place"
    return y


@pytest.mark.parametrize("fn", [c[1] for c in INPLACE], ids=[c[0] for c in INPLACE])
def test_inplace_ops(fn):
    a = np.random.default_rng(0).uniform(-2, 2, (3, 4)).astype(np.float32)
    t, k = torch.tensor(a), kiln.tensor(a)
    out_t, out_k = fn(t), fn(k)
    assert_same(t, k)
    if isinstance(out_t, torch.Tensor):
        assert out_k is k, "in-place methods return self"


def test_inplace_dtype_rules():
    i = kiln.tensor([1, 2, 3])
    i.add_(2)
    i.mul_(kiln.tensor([1, 2, 3], dtype=kiln.int32))
    assert i.tolist() == [3, 8, 15] and i.dtype == kiln.int64
    with pytest.raises(RuntimeError, match=r"result type float32 can't be cast to the desired "
                                           r"output type int64"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.div_(2)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += kiln.tensor([0.5, 0.5, 0.5])
    f = kiln.tensor([1.0, 2.0])
    f.add_(kiln.tensor([1, 1]))  # int into float is fine
    f.mul_(kiln.tensor([1.0, 1.0], dtype=kiln.float64))  # float64 into float32 is fine
    assert f.tolist() == [2.0, 3.0] and f.dtype == kiln.float32
    with pytest.raises(RuntimeError, match=r"doesn't match the broadcast shape"):
        f.add_(kiln.ones(2, 2))
    b = kiln.tensor([True, False])
    with pytest.raises(RuntimeError, match="can't be cast"):
        b.add_(1)
    i[0] = 2.7  # setitem casts like torch (truncation)
    assert i.tolist()[0] == 2


def test_uniform_normal_in_place():
    x = kiln.empty(1000)
    assert x.uniform_(2, 3) is x
    assert 2 <= x.min().item() and x.max().item() < 3
    x.normal_(5, 0.1)
    assert abs(x.mean().item() - 5) < 0.05
    y = kiln.zeros(3, dtype=kiln.float64).uniform_()
    assert y.dtype == kiln.float64


def test_views_share_storage_with_base():
    x = kiln.zeros(3, 4)
    row = x[1]
    row.add_(1)
    assert x[1].tolist() == [1.0] * 4
    x.view(-1)[2] = 5.0
    assert x[0, 2].item() == 5.0
    col = x.t()[3]
    col.fill_(-1)
    assert x[:, 3].tolist() == [-1.0] * 3
    x.mul_(2)  # a base write is visible through views made before
    assert row.tolist() == [2.0, 2.0, 2.0, -2.0]
    e = x.unsqueeze(0)
    e[0, 0, 0] = 42
    assert x[0, 0].item() == 42
    s = x[:, ::2]
    s.zero_()
    assert x[0].tolist() == [0.0, 0.0, 0.0, -2.0]
    r = x.reshape(12)  # contiguous: reshape is a view
    r[0] = 3
    assert x[0, 0].item() == 3
    with pytest.raises(RuntimeError, match="clone"):
        kiln.zeros(3).expand(2, 3).add_(1)  # overlapping memory


def test_clone_and_detach_storage():
    x = kiln.ones(2)
    c = x.clone()
    c.add_(1)
    assert x.tolist() == [1.0, 1.0]
    d = x.detach()
    d.add_(1)
    assert x.tolist() == [2.0, 2.0]
    assert x.contiguous() is x


# ---------------------------------------------------------------------- threads, allclose
def test_num_threads():
    n = kiln.get_num_threads()
    assert isinstance(n, int) and n >= 1
    try:
        kiln.set_num_threads(1)
        assert kiln.get_num_threads() == 1
        for bad in (0, -1, 1.5, "2", True):
            with pytest.raises((ValueError, TypeError), match="positive integer"):
                kiln.set_num_threads(bad)
        assert kiln.get_num_threads() == 1
    finally:
        kiln.set_num_threads(n)
    assert kiln.get_num_threads() == n


def test_allclose():
    a = kiln.tensor([1.0, 2.0])
    assert kiln.allclose(a, a + 1e-9)
    assert not kiln.allclose(a, a + 1e-3)
    assert kiln.allclose(a, a + 1e-3, atol=1e-2)
    assert kiln.allclose(a, kiln.tensor([1.0, 2.0001]), rtol=1e-3)
    assert isinstance(kiln.allclose(a, a), bool)
    nan = kiln.tensor([float("nan")])
    assert not kiln.allclose(nan, nan) and kiln.allclose(nan, nan, equal_nan=True)


# ---------------------------------------------------------------------- clear errors
X = lambda: kiln.ones(2, 3)  # noqa: E731
Y = lambda: kiln.ones(4, 5)  # noqa: E731

SHAPE_MISMATCH = [
    ("add", lambda: X() + Y()), ("sub", lambda: X() - Y()), ("mul", lambda: X() * Y()),
    ("div", lambda: X() / Y()), ("pow", lambda: X() ** Y()), ("eq", lambda: X() == Y()),
    ("lt", lambda: X() < Y()), ("ge", lambda: X() >= Y()),
    ("maximum", lambda: kiln.maximum(X(), Y())),
    ("where", lambda: kiln.where(X() > 0, X(), Y())),
    ("add_fn", lambda: kiln.add(X(), Y())),
]


@pytest.mark.parametrize("fn", [c[1] for c in SHAPE_MISMATCH], ids=[c[0] for c in SHAPE_MISMATCH])
def test_binary_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(RuntimeError) as e:
        fn()
    msg = str(e.value)
    assert "(2, 3)" in msg and "(4, 5)" in msg, msg
    assert "broadcast" in msg


MATMUL_ERRORS = [
    ("matmul", lambda: X() @ X(), r"2x3 and 2x3"),
    ("mm", lambda: kiln.mm(X(), Y()), r"2x3 and 4x5"),
    ("mm_dims", lambda: kiln.mm(kiln.ones(3), X()), r"2-D"),
    ("bmm_dims", lambda: kiln.bmm(X(), X()), r"\(2, 3\)"),
    ("bmm_batch", lambda: kiln.bmm(kiln.ones(2, 2, 3), kiln.ones(3, 3, 2)), r"2.*3"),
    ("dot", lambda: kiln.ones(3) @ kiln.ones(4), r"3.*4"),
    ("matmul_0d", lambda: kiln.tensor(1.0) @ X(), r"at least 1D"),
    ("matmul_dtypes", lambda: kiln.ones(2, 3, dtype=kiln.int64) @ kiln.ones(3, 2),
     r"same dtype.*int64 != float32"),
    ("dot_dtypes", lambda: kiln.ones(3, dtype=kiln.float64) @ kiln.ones(3),
     r"same dtype.*float64 != float32"),
    ("batched_bcast", lambda: kiln.ones(2, 2, 3) @ kiln.ones(3, 3, 4), r"\(2,\).*\(3,\)|broadcast"),
    ("cat", lambda: kiln.cat([X(), Y()]), r"\(2, 3\).*\(4, 5\)"),
    ("cat_ndim", lambda: kiln.cat([X(), kiln.ones(3)]), r"same number of dimensions"),
    ("stack", lambda: kiln.stack([X(), Y()]), r"\(2, 3\).*\(4, 5\)"),
    ("expand", lambda: X().expand(4, 5), r"\(2, 3\).*\(4, 5\)"),
    ("expand_as", lambda: X().expand_as(Y()), r"\(2, 3\).*\(4, 5\)"),
    ("inplace_bcast", lambda: X().add_(kiln.ones(4, 2, 3)), r"\[2, 3\].*\[4, 2, 3\]"),
    ("setitem_shape", lambda: X().__setitem__(0, kiln.ones(4)), r"\(4,\).*\(3,\)"),
    ("mask_shape", lambda: X()[kiln.tensor([True, False, True])], r"mask.*\[3\].*\[2\]"),
]


@pytest.mark.parametrize("case", MATMUL_ERRORS, ids=[c[0] for c in MATMUL_ERRORS])
def test_shape_errors(case):
    _, fn, pattern = case
    with pytest.raises((RuntimeError, IndexError)) as e:
        fn()
    import re
    assert re.search(pattern, str(e.value)), str(e.value)


DIM_ERRORS = [
    ("sum", lambda: X().sum(2), r"\[-2, 1\].*2"), ("sum_neg", lambda: X().sum(-3), r"\[-2, 1\].*-3"),
    ("mean", lambda: X().mean(5), r"\[-2, 1\].*5"),
    ("max", lambda: X().max(2), r"\[-2, 1\].*2"), ("argmax", lambda: X().argmax(3), r"\[-2, 1\]"),
    ("softmax", lambda: X().softmax(2), r"\[-2, 1\].*2"),
    ("log_softmax", lambda: X().log_softmax(-3), r"\[-2, 1\].*-3"),
    ("transpose", lambda: X().transpose(0, 2), r"\[-2, 1\].*2"),
    ("unsqueeze", lambda: X().unsqueeze(3), r"\[-3, 2\].*3"),
    ("squeeze", lambda: X().squeeze(2), r"\[-2, 1\].*2"),
    ("cat", lambda: kiln.cat([X(), X()], 2), r"\[-2, 1\].*2"),
    ("stack", lambda: kiln.stack([X(), X()], 3), r"\[-3, 2\].*3"),
    ("flatten", lambda: X().flatten(0, 2), r"\[-2, 1\].*2"),
    ("size", lambda: X().size(2), r"\[-2, 1\].*2"),
    ("permute", lambda: X().permute(0, 2), r"\[-2, 1\].*2"),
    ("split", lambda: X().split(1, 2), r"\[-2, 1\].*2"),
    ("var", lambda: X().var(2), r"\[-2, 1\].*2"),
    ("logsumexp", lambda: X().logsumexp(2), r"\[-2, 1\].*2"),
    ("dup_dims", lambda: X().sum((0, 0)), r"multiple times"),
    ("permute_dup", lambda: X().permute(0, 0), r"duplicate"),
]


@pytest.mark.parametrize("case", DIM_ERRORS, ids=[c[0] for c in DIM_ERRORS])
def test_bad_dims_name_dim_and_range(case):
    _, fn, pattern = case
    with pytest.raises((IndexError, RuntimeError)) as e:
        fn()
    import re
    assert re.search(pattern, str(e.value)), str(e.value)


INDEX_ERRORS = [
    ("int", lambda: X()[2], r"index 2 is out of bounds for dimension 0 with size 2"),
    ("neg_int", lambda: X()[-3], r"index -3 is out of bounds for dimension 0 with size 2"),
    ("second_dim", lambda: X()[0, 3], r"index 3 is out of bounds for dimension 1 with size 3"),
    ("tensor", lambda: X()[kiln.tensor([0, 5])], r"5.*size 2|size 2.*5"),
    ("list", lambda: X()[:, [1, 3]], r"3.*size 3|size 3.*3"),
    ("too_many", lambda: X()[0, 0, 0], r"too many indices"),
    ("float_index", lambda: X()[kiln.tensor([0.5])], r"long, int, byte or bool"),
    ("select", lambda: X().select(1, 3), r"index 3.*size"),
    ("setitem", lambda: X().__setitem__(5, 1.0), r"index 5 is out of bounds"),
    ("setitem_tensor", lambda: X().__setitem__(kiln.tensor([7]), 1.0), r"7.*size 2|size 2.*7"),
    ("two_ellipsis", lambda: X()[..., ...], r"single ellipsis"),
]


@pytest.mark.parametrize("case", INDEX_ERRORS, ids=[c[0] for c in INDEX_ERRORS])
def test_index_errors_name_index_and_size(case):
    _, fn, pattern = case
    with pytest.raises(IndexError) as e:
        fn()
    import re
    assert re.search(pattern, str(e.value)), str(e.value)


VIEW_ERRORS = [
    ("numel", lambda: X().view(5), r"shape '\[5\]' is invalid for input of size 6"),
    ("numel_reshape", lambda: X().reshape(4, 2), r"shape '\[4, 2\]' is invalid for input of size 6"),
    ("two_infer", lambda: X().view(-1, -1), r"only one dimension can be inferred"),
    ("infer_bad", lambda: X().view(-1, 4), r"shape '\[-1, 4\]' is invalid for input of size 6"),
    ("strides", lambda: X().t().view(6), r"view size is not compatible.*reshape"),
    ("negative", lambda: X().view(-2, 3), r"invalid shape dimension -2"),
]


@pytest.mark.parametrize("case", VIEW_ERRORS, ids=[c[0] for c in VIEW_ERRORS])
def test_view_errors(case):
    _, fn, pattern = case
    with pytest.raises(RuntimeError) as e:
        fn()
    import re
    assert re.search(pattern, str(e.value)), str(e.value)


DTYPE_ERRORS = [
    ("mean_int", lambda: kiln.tensor([1, 2]).mean(), RuntimeError, r"mean\(\).*Long|int64"),
    ("requires_grad_int", lambda: kiln.tensor([1, 2], requires_grad=True), RuntimeError,
     r"floating point"),
    ("where_cond", lambda: kiln.where(kiln.ones(2), kiln.ones(2), kiln.ones(2)), RuntimeError,
     r"bool"),
    ("neg_bool", lambda: -kiln.tensor([True]), RuntimeError, r"bool"),
    ("add_string", lambda: kiln.ones(2) + "a", TypeError, r"str"),
    ("matmul_list", lambda: kiln.ones(2) @ [1, 2], TypeError, r"list"),
    ("unknown_device", lambda: kiln.ones(2).to("complex64"), RuntimeError, r"complex64"),
    ("pow_int_neg", lambda: kiln.tensor([2]) ** -1, RuntimeError,
     r"[Ii]ntegers to negative integer powers"),
    ("masked_fill_float_mask", lambda: kiln.ones(2).masked_fill(kiln.ones(2), 0.0), RuntimeError,
     r"bool"),
    ("var_int", lambda: kiln.tensor([1, 2]).var(), RuntimeError, r"floating point"),
    ("clamp_none", lambda: kiln.ones(2).clamp(), RuntimeError, r"min.*max"),
    ("randint_range", lambda: kiln.randint(5, 5, (2,)), RuntimeError, r"from=5.*to=5"),
    ("negative_size", lambda: kiln.zeros(-1, 2), RuntimeError, r"negative dimension -1"),
    ("from_numpy_float16", lambda: kiln.from_numpy(np.zeros(2, np.float16)), TypeError,
     r"float16"),
    ("tensor_ragged", lambda: kiln.tensor([[1, 2], [3]]), ValueError, r"tensor"),
    ("len_0d", lambda: len(kiln.tensor(1)), TypeError, r"0-d"),
    ("bad_grad_shape", lambda: setattr(kiln.ones(2, requires_grad=True), "grad", kiln.ones(3)),
     RuntimeError, r"\(3,\) vs \(2,\)"),
]


@pytest.mark.parametrize("case", DTYPE_ERRORS, ids=[c[0] for c in DTYPE_ERRORS])
def test_bad_input_errors(case):
    _, fn, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        fn()


def test_errors_match_torch_exception_types():
    """Where PyTorch raises IndexError / RuntimeError / TypeError, we raise the same class."""
    cases = [
        lambda T: T.ones(2, 3)[2], lambda T: T.ones(2, 3).sum(2), lambda T: T.ones(2) + T.ones(3),
        lambda T: T.ones(2, 3).view(5), lambda T: T.ones(2, 3).t().view(6),
        lambda T: T.ones(2, 3)[0, 0, 0], lambda T: len(T.tensor(1.0)),
        lambda T: T.tensor([1, 2]).mean(), lambda T: T.ones(2).backward(),
        lambda T: T.tensor([1]).add_(0.5),
    ]
    for fn in cases:
        kinds = []
        for T in (torch, kiln):
            try:
                fn(T)
                kinds.append(None)
            except Exception as e:  # noqa: BLE001
                kinds.append(type(e).__name__)
        assert kinds[1] == kinds[0], kinds


def test_to_numpy_helper_copies():
    k = kiln.ones(2)
    a = to_numpy(k)
    a[0] = 3
    assert k.tolist() == [1.0, 1.0]
