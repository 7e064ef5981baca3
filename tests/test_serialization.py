"""Tests for frontend.save / frontend.load (frontend/serialization.py).

PyTorch is used only as an oracle: to produce real model and optimizer state
dicts, and foreign files written by torch.save.
"""

import collections
import hashlib
import io
import json
import math
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import frontend
from frontend import serialization
from frontend.serialization import KilnFileError, load, save

DTYPES = [
    ("float32", np.float32),
    ("float64", np.float64),
    ("int64", np.int64),
    ("int32", np.int32),
    ("bool", np.bool_),
]


def values(t):
    return t.detach().numpy()


def kiln_dtype(name):
    return getattr(frontend, name)


def make_tensor(np_dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    array = np.asarray(rng.standard_normal(shape) * 10).astype(np_dtype)  # asarray: keep 0-d an array
    return frontend.from_numpy(array)


def roundtrip(obj, tmp_path, name="obj.kiln"):
    path = tmp_path / name
    save(obj, path)
    return load(path)


def assert_same_tensor(loaded, original):
    assert isinstance(loaded, frontend.Tensor)
    assert loaded.dtype == original.dtype
    assert tuple(loaded.shape) == tuple(original.shape)
    np.testing.assert_array_equal(values(loaded), values(original))
    assert loaded.requires_grad == original.requires_grad


def build_file(header, data=b"", version=1):
    """A file in Kiln's layout with a *valid* checksum, to test what the loader does past the checksum."""
    header_bytes = json.dumps(header).encode()
    body = struct.pack("<8sIQQ", b"KILNSAVE", version, len(header_bytes), len(data)) + header_bytes + data
    return body + hashlib.sha256(body).digest()


# --------------------------------------------------------------------------- round trips


def test_public_api_is_wired_into_frontend():
    # The contract is frontend.save / frontend.load (frontend/__init__ must import them).
    assert frontend.save is save
    assert frontend.load is load


def test_roundtrip_nested_python_structure(tmp_path):
    obj = {
        "none": None,
        "bools": [True, False],
        "ints": [0, -7, 2**70, -(2**63)],
        "floats": [0.0, -0.0, 1.5, 1e-300, 1e300, 0.1, math.inf, -math.inf],
        "str": "ünïcødé ✓ \"quoted\" \n newline",
        "empty": {"list": [], "tuple": (), "dict": {}, "str": ""},
        "tuple": (1, (2.0, "three"), [None]),
        0: "int key",
        -3: "negative int key",
        2.5: "float key",
        True: "bool key",  # distinct from 1 only in type; 1 is not a key here
        None: "None key",
        (1, "a"): "tuple key",
        "nested": [{"deep": [[[{"deeper": (1,)}]]]}],
        "$": {"$": "dict", "items": []},  # user data that looks like the format's own tags
    }
    loaded = roundtrip(obj, tmp_path)
    assert loaded == obj
    # == treats 1 == 1.0 == True; check the key and value types are exact too.
    assert [type(k) for k in loaded] == [type(k) for k in obj]
    assert type(loaded["tuple"]) is tuple and type(loaded["tuple"][1]) is tuple
    assert type(loaded["tuple"][2]) is list
    assert [type(v) for v in loaded["bools"] + loaded["ints"] + loaded["floats"]] == [bool] * 2 + [int] * 4 + [
        float
    ] * 8
    assert math.copysign(1.0, loaded["floats"][1]) == -1.0


def test_nan_roundtrips(tmp_path):
    loaded = roundtrip({"nan": math.nan}, tmp_path)
    assert isinstance(loaded["nan"], float) and math.isnan(loaded["nan"])


def test_ordered_dict_type_and_order_preserved(tmp_path):
    obj = collections.OrderedDict([("b", 1), ("a", 2), ("c", 3)])
    loaded = roundtrip(obj, tmp_path)
    assert type(loaded) is collections.OrderedDict
    assert list(loaded.items()) == [("b", 1), ("a", 2), ("c", 3)]
    plain = roundtrip({"z": 1, "y": 2}, tmp_path, "plain.kiln")
    assert type(plain) is dict and list(plain) == ["z", "y"]


@pytest.mark.parametrize("name,np_dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (5,), (2, 3, 4)])
def test_tensor_roundtrip_every_dtype_and_shape(tmp_path, name, np_dtype, shape):
    tensor = make_tensor(np_dtype, shape)
    assert tensor.dtype == kiln_dtype(name)
    loaded = roundtrip({"t": tensor}, tmp_path)["t"]
    assert_same_tensor(loaded, tensor)
    assert loaded.dtype == kiln_dtype(name)


def test_tensor_values_are_exact_including_special_floats(tmp_path):
    array = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3.4028235e38], dtype=np.float32)
    loaded = roundtrip(frontend.from_numpy(array.copy()), tmp_path)
    assert values(loaded).tobytes() == array.tobytes()  # bit-exact, incl. -0.0 and nan


def test_requires_grad_roundtrips(tmp_path):
    w = frontend.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = frontend.tensor([0.5, -0.5])
    loaded = roundtrip({"w": w, "b": b}, tmp_path)
    assert loaded["w"].requires_grad is True
    assert loaded["b"].requires_grad is False
    assert_same_tensor(loaded["w"], w)


def test_non_contiguous_tensors(tmp_path):
    base = make_tensor(np.float32, (3, 4))
    transposed = base.t()
    strided = frontend.from_numpy(np.arange(24, dtype=np.int64).reshape(4, 6)[:, ::2])
    loaded = roundtrip({"t": transposed, "s": strided}, tmp_path)
    assert tuple(loaded["t"].shape) == (4, 3)
    np.testing.assert_array_equal(values(loaded["t"]), values(base).T)
    np.testing.assert_array_equal(values(loaded["s"]), np.arange(24).reshape(4, 6)[:, ::2])
    assert loaded["s"].dtype == frontend.int64


def test_loaded_tensors_are_independent_of_the_file(tmp_path):
    path = tmp_path / "t.kiln"
    save({"t": frontend.tensor([1.0, 2.0])}, path)
    first, second = load(path)["t"], load(path)["t"]
    values(first)[0] = 100.0  # must be a writable private copy
    assert values(second)[0] == 1.0


def test_shared_tensor_stored_once_and_loaded_shared(tmp_path):
    weight = make_tensor(np.float32, (64, 64))
    path = tmp_path / "tied.kiln"
    save({"encoder": weight, "decoder": weight}, path)
    loaded = load(path)
    assert loaded["encoder"] is loaded["decoder"]
    assert os.path.getsize(path) < 2 * 64 * 64 * 4  # not written twice


def test_numpy_arrays_and_scalars(tmp_path):
    obj = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "t": np.arange(6, dtype=np.float64).reshape(2, 3).T,  # non-contiguous
        "big_endian": np.array([1, 2, 3], dtype=">i4"),
        "zero_d": np.array(7, dtype=np.int64),
        "bool": np.array([True, False]),
        "scalar": np.float32(2.5),
        "int_scalar": np.int64(-3),
    }
    loaded = roundtrip(obj, tmp_path)
    for key in ["f32", "t", "big_endian", "zero_d", "bool"]:
        assert isinstance(loaded[key], np.ndarray)
        assert loaded[key].shape == obj[key].shape
        assert loaded[key].dtype == obj[key].dtype.newbyteorder("=")
        np.testing.assert_array_equal(loaded[key], obj[key])
    assert type(loaded["scalar"]) is np.float32 and loaded["scalar"] == 2.5
    assert type(loaded["int_scalar"]) is np.int64 and loaded["int_scalar"] == -3


def test_model_and_optimizer_state_dict_from_torch(tmp_path):
    """A real torch model + Adam state dict, converted to Kiln tensors, survives save/load exactly."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model.register_buffer("steps", torch.tensor(5, dtype=torch.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()

    def to_kiln(x):
        if isinstance(x, torch.Tensor):
            return frontend.from_numpy(x.detach().numpy().copy())
        if isinstance(x, dict):
            return type(x)((k, to_kiln(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return type(x)(to_kiln(v) for v in x)
        return x

    reference = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}
    loaded = roundtrip(to_kiln(reference), tmp_path)

    assert type(loaded["model"]) is collections.OrderedDict
    assert list(loaded["model"]) == ["steps", "0.weight", "0.bias", "2.weight", "2.bias"]  # torch's order
    for key, expected in reference["model"].items():
        got = loaded["model"][key]
        assert got.dtype == (frontend.int64 if key == "steps" else frontend.float32)
        assert tuple(got.shape) == tuple(expected.shape)
        np.testing.assert_array_equal(values(got), expected.numpy())

    state = loaded["optimizer"]["state"]
    assert sorted(state) == [0, 1, 2, 3] and all(type(k) is int for k in state)
    for index, entry in reference["optimizer"]["state"].items():
        for name, expected in entry.items():
            np.testing.assert_array_equal(values(state[index][name]), expected.numpy())
            assert tuple(state[index][name].shape) == tuple(expected.shape)
    group = loaded["optimizer"]["param_groups"][0]
    expected_group = reference["optimizer"]["param_groups"][0]
    assert group == expected_group  # lr, betas (a tuple), eps, flags, params [0, 1, 2, 3]
    assert type(group["betas"]) is tuple
    assert loaded["epoch"] == 3


# --------------------------------------------------------------------------- paths and streams


def test_path_types_and_file_objects(tmp_path):
    obj = {"x": frontend.tensor([1, 2, 3])}
    save(obj, str(tmp_path / "a.kiln"))
    np.testing.assert_array_equal(values(load(str(tmp_path / "a.kiln"))["x"]), [1, 2, 3])

    with open(tmp_path / "b.kiln", "wb") as f:
        save(obj, f)
    with open(tmp_path / "b.kiln", "rb") as f:
        np.testing.assert_array_equal(values(load(f)["x"]), [1, 2, 3])

    buffer = io.BytesIO()
    save(obj, buffer)
    save({"second": 2}, buffer)  # two records back to back in one stream
    buffer.seek(0)
    np.testing.assert_array_equal(values(load(buffer)["x"]), [1, 2, 3])
    assert load(buffer) == {"second": 2}


def test_load_accepts_torch_style_keywords(tmp_path):
    path = tmp_path / "k.kiln"
    save([1, 2], path)
    assert load(path, map_location="cpu", weights_only=True) == [1, 2]


def test_bad_destination_types():
    with pytest.raises(TypeError, match="path or a binary file-like"):
        save({}, 42)
    with pytest.raises(TypeError, match="path or a binary file-like"):
        load(42)


def test_file_is_aligned_and_starts_with_magic(tmp_path):
    path = tmp_path / "m.kiln"
    save({"a": frontend.tensor([1.0]), "b": frontend.tensor([2, 3])}, path)
    raw = path.read_bytes()
    assert raw[:8] == b"KILNSAVE"
    header_len = struct.unpack("<Q", raw[12:20])[0]
    assert (28 + header_len) % 64 == 0  # data section is 64-byte aligned for future mmap


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.kiln"
    save({"w": make_tensor(np.float32, (16, 16)), "step": 4, "name": "net"}, path)
    return path


@pytest.mark.parametrize("keep", [5, 8, 20, 27, 28, 100, -33, -1])
def test_truncated_file(tmp_path, good_file, keep):
    raw = good_file.read_bytes()
    cut = tmp_path / "cut.kiln"
    cut.write_bytes(raw[:keep])
    with pytest.raises(KilnFileError, match="truncated") as info:
        load(cut)
    assert str(cut) in str(info.value)
    if keep > 28 or keep < 0:
        assert f"expected {len(raw)} bytes, got {len(raw[:keep])}" in str(info.value)


def test_truncated_stream(good_file):
    raw = good_file.read_bytes()
    with pytest.raises(KilnFileError, match=f"<stream>: truncated: expected {len(raw)} bytes"):
        load(io.BytesIO(raw[: len(raw) // 2]))


def test_error_is_runtime_and_value_error(good_file, tmp_path):
    bad = tmp_path / "bad.kiln"
    bad.write_bytes(good_file.read_bytes()[:40])
    with pytest.raises(RuntimeError):
        load(bad)
    with pytest.raises(ValueError):
        load(bad)


def test_torch_zip_file_is_foreign(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(KilnFileError, match="not a Kiln file.*zip archive.*torch.save") as info:
        load(path)
    assert str(path) in str(info.value)


def test_torch_legacy_pickle_file_is_foreign(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(KilnFileError, match="not a Kiln file.*pickle"):
        load(path)


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 100, b"hello, world\n" * 10, bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))]
)
def test_other_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    with pytest.raises(KilnFileError, match="not a Kiln file"):
        load(path)


@pytest.mark.parametrize("where", ["version", "header", "data", "checksum"])
def test_corrupted_byte_detected(tmp_path, good_file, where):
    raw = bytearray(good_file.read_bytes())
    header_len = struct.unpack("<Q", raw[12:20])[0]
    position = {"version": 9, "header": 40, "data": 28 + header_len + 100, "checksum": len(raw) - 1}[where]
    raw[position] ^= 0x01
    bad = tmp_path / "corrupt.kiln"
    bad.write_bytes(bytes(raw))
    with pytest.raises(KilnFileError, match="checksum mismatch|unsupported Kiln format version") as info:
        load(bad)
    assert str(bad) in str(info.value)


def test_trailing_garbage_after_file(tmp_path, good_file):
    bad = tmp_path / "trailing.kiln"
    bad.write_bytes(good_file.read_bytes() + b"junk")
    with pytest.raises(KilnFileError, match="unexpected data after the end.*4 more"):
        load(bad)


def test_newer_format_version_rejected(tmp_path):
    path = tmp_path / "v2.kiln"
    path.write_bytes(build_file({"root": 1, "blobs": []}, version=2))
    with pytest.raises(KilnFileError, match="unsupported Kiln format version 2.*newer"):
        load(path)


def test_well_formed_crafted_file_loads(tmp_path):
    # Guards the helper below: the same construction with a sane header loads.
    path = tmp_path / "crafted.kiln"
    data = np.array([1.0, 2.0], dtype="<f4").tobytes()
    blob = {"kind": "tensor", "dtype": "float32", "shape": [2], "offset": 0, "nbytes": 8, "requires_grad": False}
    path.write_bytes(build_file({"root": {"$": "blob", "index": 0}, "blobs": [blob]}, data))
    np.testing.assert_array_equal(values(load(path)), [1.0, 2.0])


@pytest.mark.parametrize(
    "header,data",
    [
        ({"root": 1}, b""),  # no blobs table
        ([1, 2], b""),
        ({"root": {"$": "eval", "code": "print(1)"}, "blobs": []}, b""),
        ({"root": {"$": "blob", "index": 3}, "blobs": []}, b""),
        ({"root": {"$": "float", "value": "1e999"}, "blobs": []}, b""),
        ({"root": {"$": "dict", "items": [[[1, 2], 3]]}, "blobs": []}, b""),  # unhashable key
        (
            {"root": {"$": "blob", "index": 0}, "blobs": [{"kind": "ndarray", "dtype": "object", "shape": [1], "offset": 0, "nbytes": 8}]},
            b"\0" * 8,
        ),
        (
            {"root": {"$": "blob", "index": 0}, "blobs": [{"kind": "tensor", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16}]},
            b"\0" * 8,  # bytes outside the data section
        ),
        (
            {"root": {"$": "blob", "index": 0}, "blobs": [{"kind": "tensor", "dtype": "float32", "shape": [3], "offset": 0, "nbytes": 8}]},
            b"\0" * 16,  # nbytes does not match shape
        ),
        (
            {"root": {"$": "blob", "index": 0}, "blobs": [{"kind": "tensor", "dtype": "float32", "shape": [-1], "offset": 0, "nbytes": 4}]},
            b"\0" * 8,
        ),
    ],
)
def test_malformed_header_with_valid_checksum(tmp_path, header, data):
    path = tmp_path / "crafted.kiln"
    path.write_bytes(build_file(header, data))
    with pytest.raises(KilnFileError, match="malformed header"):
        load(path)


def test_header_that_is_not_json(tmp_path):
    body = struct.pack("<8sIQQ", b"KILNSAVE", 1, 5, 0) + b"{nope"
    path = tmp_path / "notjson.kiln"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(KilnFileError, match="malformed header"):
        load(path)


# --------------------------------------------------------------------------- never unpickles


class _Boom:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_load_never_unpickles(tmp_path, good_file, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("load must never unpickle")

    for module in (pickle, __import__("_pickle")):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, forbidden, raising=False)
    assert isinstance(load(good_file), dict)

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(str(marker)))
    for content in (payload, b"KILNSAVE" + payload):
        evil = tmp_path / "evil.pt"
        evil.write_bytes(content)
        with pytest.raises(KilnFileError):
            load(evil)
    assert not marker.exists()


def test_serialization_module_does_not_use_pickle():
    source = open(serialization.__file__, encoding="utf-8").read()
    assert "import pickle" not in source and "_pickle" not in source


# --------------------------------------------------------------------------- unsupported objects


@pytest.mark.parametrize(
    "obj,type_name,where",
    [
        ({"layers": [1, 2, {3}]}, "set", "obj['layers'][2]"),
        ([object()], "object", "obj[0]"),
        ({"c": 1 + 2j}, "complex", "obj['c']"),
        ({"b": b"bytes"}, "bytes", "obj['b']"),
        ({0: {"fn": len}}, "builtin_function_or_method", "obj[0]['fn']"),
        ({"a": np.array(["x", "y"])}, "dtype", "obj['a']"),
    ],
)
def test_unsupported_value_names_type_and_path(tmp_path, obj, type_name, where):
    path = tmp_path / "x.kiln"
    with pytest.raises(TypeError) as info:
        save(obj, path)
    message = str(info.value)
    assert where in message and type_name in message
    assert not path.exists()


def test_unsupported_dict_key(tmp_path):
    with pytest.raises(TypeError, match="dict key of type frozenset in obj\\['outer'\\]"):
        save({"outer": {frozenset([1]): 1}}, tmp_path / "x.kiln")


def test_circular_reference_rejected(tmp_path):
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="circular reference at obj\\[1\\]"):
        save(loop, tmp_path / "x.kiln")


def test_same_list_twice_is_not_a_cycle(tmp_path):
    shared = [1, 2]
    assert roundtrip({"a": shared, "b": shared}, tmp_path) == {"a": [1, 2], "b": [1, 2]}


# --------------------------------------------------------------------------- atomic writes


def leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.kiln"
    save({"version": "old", "w": frontend.tensor([1.0, 2.0])}, path)
    old_bytes = path.read_bytes()

    real_write_document = serialization._write_document

    def crash_midway(out, header, blobs):
        class HalfWriter:
            written = 0

            def write(self, chunk):
                out.write(bytes(chunk)[:10])
                HalfWriter.written += 1
                if HalfWriter.written == 3:
                    raise OSError(28, "No space left on device")

        real_write_document(HalfWriter(), header, blobs)

    monkeypatch.setattr(serialization, "_write_document", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        save({"version": "new", "w": make_tensor(np.float32, (100, 100))}, path)

    assert path.read_bytes() == old_bytes
    assert load(path)["version"] == "old"
    assert leftovers(tmp_path, "ckpt.kiln") == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failure_at_commit_leaves_old_file_and_no_temp(tmp_path, monkeypatch, failing):
    path = tmp_path / "ckpt.kiln"
    save({"version": "old"}, path)
    old_bytes = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(5, f"simulated {failing} failure")

    monkeypatch.setattr(serialization.os, failing, fail)
    with pytest.raises(OSError, match="simulated"):
        save({"version": "new"}, path)
    monkeypatch.undo()

    assert path.read_bytes() == old_bytes
    assert leftovers(tmp_path, "ckpt.kiln") == []


def test_keyboard_interrupt_mid_write_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.kiln"
    save({"version": "old"}, path)

    def interrupted(out, header, blobs):
        out.write(b"KILNSAVE partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write_document", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"version": "new"}, path)
    monkeypatch.undo()
    assert load(path) == {"version": "old"}
    assert leftovers(tmp_path, "ckpt.kiln") == []


def test_unsupported_object_does_not_touch_existing_file(tmp_path):
    path = tmp_path / "ckpt.kiln"
    save({"version": "old"}, path)
    with pytest.raises(TypeError):
        save({"version": "new", "bad": {1, 2}}, path)
    assert load(path) == {"version": "old"}
    assert leftovers(tmp_path, "ckpt.kiln") == []


def test_overwrite_replaces_contents(tmp_path):
    path = tmp_path / "ckpt.kiln"
    save({"v": 1}, path)
    save({"v": 2}, path)
    assert load(path) == {"v": 2}
    assert leftovers(tmp_path, "ckpt.kiln") == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_file_mode_follows_umask_and_existing_mode(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    fresh = tmp_path / "fresh.kiln"
    save({}, fresh)
    assert (fresh.stat().st_mode & 0o777) == (0o666 & ~umask)  # not mkstemp's 0600

    existing = tmp_path / "existing.kiln"
    save({}, existing)
    os.chmod(existing, 0o640)
    save({"again": True}, existing)
    assert (existing.stat().st_mode & 0o777) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_save_through_symlink_updates_target(tmp_path):
    target = tmp_path / "real.kiln"
    link = tmp_path / "link.kiln"
    save({"v": 1}, target)
    link.symlink_to(target)
    save({"v": 2}, link)
    assert link.is_symlink()
    assert load(target) == {"v": 2}
