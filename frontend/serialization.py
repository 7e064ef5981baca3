"""``save`` and ``load`` for state dicts, in Kiln's own safe file format.

Why not pickle, as ``torch.save`` does?  Unpickling runs whatever code the file
names, so opening a checkpoint someone sent you could take over your machine.
A Kiln file can only *describe data*: a JSON document for the structure plus
raw tensor bytes.  Loading parses JSON and copies bytes; it never imports,
calls or evaluates anything named in the file.

What can be saved: nested ``dict`` (``str``/``int``/``float``/``bool``/``None``
keys and tuples of those, key types kept exactly, so an optimizer's integer
parameter ids come back as ints), ``list``, ``tuple``, ``None``, ``bool``,
``int``, ``float`` (including nan and +-inf), ``str``, Kiln tensors of dtype
float16/32/64, int8/16/32/64, uint8 and bool, numpy arrays of those dtypes and
numpy scalars.  ``OrderedDict`` comes back as ``OrderedDict``.  A tensor or
array that appears several times in the object (tied weights) is stored once
and comes back as one shared object.

File layout (all integers little-endian)::

    offset     size  field
    0          8     magic b"KILNSAVE"
    8          4     format version, uint32 (currently 1)
    12         8     header length H, uint64
    20         8     data length D, uint64
    28         H     header: UTF-8 JSON (padded with spaces so data is 64-byte aligned)
    28+H       D     data: every tensor's / array's raw bytes, C order, each 64-byte aligned
    28+H+D     32    SHA-256 of all the bytes before it

The lengths in the fixed prefix tell a truncated file apart from a corrupted
one, and the checksum catches any flipped byte, so both fail with a clear
message instead of producing silently wrong weights.

The header is ``{"root": NODE, "blobs": [BLOB, ...]}``.  A NODE is plain JSON
for ``None``/``bool``/``int``/``str``/finite ``float``/``list``; everything
else is a JSON object tagged by its ``"$"`` key::

    {"$": "dict" | "odict", "items": [[KEY_NODE, NODE], ...]}
    {"$": "tuple", "items": [NODE, ...]}
    {"$": "float", "value": "nan" | "inf" | "-inf"}
    {"$": "blob", "index": i}          # a tensor, array or numpy scalar

Because every user dict is tagged, no user key can ever be mistaken for a tag.
A BLOB is ``{"kind": "tensor"|"ndarray"|"npscalar", "dtype": "float32",
"shape": [2, 3], "offset": o, "nbytes": n}`` (plus ``"requires_grad"`` for
tensors); ``offset`` is relative to the start of the data section.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import secrets
import stat
import struct

import numpy as np

__all__ = ["save", "load", "KilnFileError", "FORMAT_VERSION"]

MAGIC = b"KILNSAVE"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQQ")  # magic, version, header length, data length
_DIGEST_SIZE = hashlib.sha256().digest_size
_ALIGN = 64
_READ_CHUNK = 1 << 24  # read in 16 MiB pieces so a lying length field cannot make us allocate terabytes

# Dtypes a file may contain.  Loading checks names against this list rather
# than handing arbitrary strings to numpy (which would accept e.g. "object").
_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


class KilnFileError(RuntimeError, ValueError):
    """A file (or stream) is not a valid Kiln file: foreign, truncated, corrupted or malformed.

    It is both a ``RuntimeError`` (what ``torch.load`` raises on a bad file) and a
    ``ValueError`` (what it is: bad input), so either ``except`` catches it.
    """


# --------------------------------------------------------------------------- save


def save(obj, f) -> None:
    """Save ``obj`` (e.g. a model's or optimizer's ``state_dict()``) to ``f``.

    ``f`` is a path (``str`` or ``os.PathLike``) or a binary file-like object
    with ``write``.  Writing to a path is atomic: the data goes to a temporary
    file in the same directory, is flushed to disk, and only then renamed over
    ``f``; if anything fails midway, an existing file at ``f`` is left intact
    and the temporary file is removed.  Writing to a file-like object writes
    at its current position and leaves it open.

    Raises ``TypeError`` for an unsupported type, naming the type and where it
    sits in ``obj`` (e.g. ``obj['layers'][2]``), before anything is written.
    """
    header, blobs = _encode_document(obj)
    if isinstance(f, (str, bytes, os.PathLike)):
        _atomic_write(os.fsdecode(f), lambda out: _write_document(out, header, blobs))
    elif hasattr(f, "write"):
        _write_document(f, header, blobs)
    else:
        raise TypeError(f"save: f must be a path or a binary file-like object, got {type(f).__name__}")


class _Encoder:
    """Turns a Python object tree into a JSON-able node tree plus a list of arrays."""

    def __init__(self, tensor_type):
        self.tensor_type = tensor_type
        self.blob_meta = []  # header entries, one per blob
        self.arrays = []  # the contiguous little-endian numpy array of each blob
        self.memo = {}  # id(tensor or ndarray) -> blob index, so shared objects are stored once
        self.keep_alive = []  # objects whose id() is in memo; ids stay unique while they live
        self.active = set()  # ids of containers on the current path, to reject cycles

    def encode(self, obj, path):
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, str):
            return str(obj)  # a str subclass is saved as plain str
        if self.tensor_type is not None and isinstance(obj, self.tensor_type):
            return self._blob(obj, path, "tensor")
        if isinstance(obj, np.ndarray):
            return self._blob(obj, path, "ndarray")
        if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
            return self._blob(obj, path, "npscalar")
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"$": "float", "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self.active:
                raise ValueError(f"save: circular reference at {path}: the object contains itself")
            self.active.add(id(obj))
            try:
                if isinstance(obj, list):
                    return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]
                if isinstance(obj, tuple):
                    return {"$": "tuple", "items": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
                items = [
                    [self.encode_key(k, path), self.encode(v, f"{path}[{k!r}]")] for k, v in obj.items()
                ]
                return {"$": "odict" if isinstance(obj, collections.OrderedDict) else "dict", "items": items}
            finally:
                self.active.discard(id(obj))
        raise TypeError(
            f"save: cannot save an object of type {type(obj).__qualname__} at {path}; supported are "
            "dict, list, tuple, None, bool, int, float, str, Tensor, numpy arrays and numpy scalars"
        )

    def encode_key(self, key, path):
        """Dict keys: hashable scalars and tuples of them, so key types survive the round trip."""
        if key is None or isinstance(key, (bool, int, float, str)) and not isinstance(key, np.generic):
            return self.encode(key, path)
        if isinstance(key, tuple):
            return {"$": "tuple", "items": [self.encode_key(k, path) for k in key]}
        raise TypeError(
            f"save: cannot save a dict key of type {type(key).__qualname__} in {path}; "
            "keys must be str, int, float, bool, None or tuples of those"
        )

    def _blob(self, obj, path, kind):
        if kind != "npscalar" and id(obj) in self.memo:
            return {"$": "blob", "index": self.memo[id(obj)]}
        if kind == "tensor":
            dtype_name = _tensor_dtype_name(obj.dtype)
            array = np.asarray(obj.detach().numpy())
            requires_grad = bool(getattr(obj, "requires_grad", False))
        else:
            array = np.asarray(obj)
            dtype_name = array.dtype.name
        if dtype_name not in _DTYPES:
            raise TypeError(
                f"save: cannot save {kind} of dtype {dtype_name} at {path}; supported dtypes are {', '.join(_DTYPES)}"
            )
        # Normalise to C order and little-endian so the file means the same on every machine.
        # (np.asarray, not np.ascontiguousarray, which would turn a 0-d array into shape (1,).)
        array = np.asarray(array, dtype=np.dtype(dtype_name).newbyteorder("<"), order="C")
        meta = {"kind": kind, "dtype": dtype_name, "shape": list(array.shape), "nbytes": int(array.nbytes)}
        if kind == "tensor":
            meta["requires_grad"] = requires_grad
        index = len(self.blob_meta)
        self.blob_meta.append(meta)
        self.arrays.append(array)
        if kind != "npscalar":
            self.memo[id(obj)] = index
            self.keep_alive.append(obj)
        return {"$": "blob", "index": index}


def _tensor_dtype_name(dtype) -> str:
    """``frontend.float32`` -> ``"float32"``; tolerate dtypes without ``.name`` (``str`` like "frontend.float32")."""
    name = getattr(dtype, "name", None)
    if not isinstance(name, str):
        name = str(dtype).rsplit(".", 1)[-1]
    return name


def _tensor_type():
    """The core's Tensor class, imported late: this module is imported by ``frontend/__init__``."""
    import frontend

    return getattr(frontend, "Tensor", None)


def _encode_document(obj):
    """Build the header bytes (already padded) and the list of arrays to write after it."""
    encoder = _Encoder(_tensor_type())
    root = encoder.encode(obj, "obj")
    offset = 0
    for meta in encoder.blob_meta:
        meta["offset"] = offset
        offset = _align(offset + meta["nbytes"])
    header = json.dumps(
        {"root": root, "blobs": encoder.blob_meta}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")
    # Pad with JSON-insignificant spaces so the data section starts 64-byte aligned in the file.
    header += b" " * (_align(_PREFIX.size + len(header)) - _PREFIX.size - len(header))
    return header, list(zip(encoder.blob_meta, encoder.arrays))


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _write_document(out, header, blobs) -> None:
    """Write prefix, header, data and trailing checksum to ``out``, hashing as we go."""
    data_len = _align(blobs[-1][0]["offset"] + blobs[-1][0]["nbytes"]) if blobs else 0
    digest = hashlib.sha256()

    def write(chunk):
        digest.update(chunk)
        out.write(chunk)

    write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), data_len))
    write(header)
    position = 0
    for meta, array in blobs:
        write(b"\0" * (meta["offset"] - position))
        if array.nbytes:
            write(memoryview(array.reshape(-1).view(np.uint8)))  # no extra copy of the tensor bytes
        position = meta["offset"] + meta["nbytes"]
    write(b"\0" * (data_len - position))
    out.write(digest.digest())


def _atomic_write(path: str, write_contents) -> None:
    """Write a file so that readers see either the old or the complete new contents, never a mix.

    The temporary file is created with ``os.open(..., 0o666)`` so the usual
    umask applies (``tempfile.mkstemp`` would force mode 0600); an existing
    file's mode is kept.  A symlink at ``path`` is followed, as ``open`` would.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as out:
            write_contents(out)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; not possible on every platform, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- load


def load(f, map_location=None, *, weights_only=True):
    """Load an object written by :func:`save` from a path or a binary file-like object.

    Never executes code from the file.  Raises :class:`KilnFileError` (a
    ``RuntimeError`` and ``ValueError``) naming the file and the problem when
    it is not a Kiln file, is truncated, fails its checksum or is malformed.

    ``map_location`` and ``weights_only`` are accepted so code written for
    ``torch.load`` runs unchanged: tensors are always loaded on the CPU, and a
    Kiln file can only hold data, so loading is always "weights only".
    """
    if isinstance(f, (str, bytes, os.PathLike)):
        name = os.fsdecode(f)
        with open(name, "rb") as stream:
            header, data = _read_document(stream, name, whole_file=True)
    elif hasattr(f, "read"):
        name = getattr(f, "name", None)
        name = os.fsdecode(name) if isinstance(name, (str, bytes)) else "<stream>"
        header, data = _read_document(f, name, whole_file=False)
    else:
        raise TypeError(f"load: f must be a path or a binary file-like object, got {type(f).__name__}")
    try:
        return _Decoder(header, data, name).decode_root()
    except RecursionError:
        raise KilnFileError(f"{name}: malformed header: the structure is nested too deeply") from None


def _read_exact(stream, n: int) -> bytes:
    """Read up to ``n`` bytes, fewer only at end of file, without trusting ``n`` for allocation."""
    parts, remaining = [], n
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _foreign_hint(start: bytes) -> str:
    """A guess at what a non-Kiln file is, to make the error actionable."""
    if start.startswith(b"PK\x03\x04"):
        return " (it looks like a zip archive, e.g. a file written by torch.save, which Kiln does not read)"
    if start[:1] == b"\x80":
        return " (it looks like a pickle, e.g. a file written by legacy torch.save, which Kiln never unpickles)"
    if not start:
        return " (it is empty)"
    return ""


def _read_document(stream, name: str, whole_file: bool):
    prefix = _read_exact(stream, _PREFIX.size)
    if not prefix or not (prefix.startswith(MAGIC) or MAGIC.startswith(prefix)):
        raise KilnFileError(f"{name}: not a Kiln file: it does not start with {MAGIC!r}{_foreign_hint(prefix)}")
    if len(prefix) < _PREFIX.size:  # a prefix of the magic, or the magic and part of the lengths
        raise KilnFileError(
            f"{name}: truncated: expected at least {_PREFIX.size} bytes for the file prefix, got {len(prefix)}"
        )
    _, version, header_len, data_len = _PREFIX.unpack(prefix)
    if version != FORMAT_VERSION:
        newer = " (written by a newer Kiln?)" if version > FORMAT_VERSION else ""
        raise KilnFileError(
            f"{name}: unsupported Kiln format version {version}{newer}; this Kiln reads version {FORMAT_VERSION}"
        )
    expected = _PREFIX.size + header_len + data_len + _DIGEST_SIZE
    rest = _read_exact(stream, expected - _PREFIX.size)
    got = _PREFIX.size + len(rest)
    if got < expected:
        raise KilnFileError(f"{name}: truncated: expected {expected} bytes, got {got}")
    if whole_file:
        extra = len(_read_exact(stream, _READ_CHUNK))
        if extra:
            more = "" if extra < _READ_CHUNK else " or more"
            raise KilnFileError(
                f"{name}: unexpected data after the end of the Kiln file: expected {expected} bytes, "
                f"found {extra}{more} more"
            )
    body, stored_digest = rest[:-_DIGEST_SIZE], rest[-_DIGEST_SIZE:]
    digest = hashlib.sha256(prefix)
    digest.update(body)
    if digest.digest() != stored_digest:
        raise KilnFileError(f"{name}: checksum mismatch: the file is corrupted")
    try:
        header = json.loads(body[:header_len].decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise KilnFileError(f"{name}: malformed header: {exc}") from None
    return header, memoryview(body)[header_len:]


def _reject_constant(token):
    raise ValueError(f"non-standard JSON constant {token}")


class _Decoder:
    """Rebuilds the object tree from a validated-checksum header; validates structure as it goes.

    A file with a good checksum can still be hand-crafted, so every node and
    blob entry is checked and anything unexpected is a ``KilnFileError``,
    never an ``IndexError``/``KeyError`` from deep inside.
    """

    def __init__(self, header, data, name):
        self.name = name
        self.data = data
        if not isinstance(header, dict) or "root" not in header or not isinstance(header.get("blobs"), list):
            self.fail("the header must be an object with 'root' and 'blobs'")
        self.header = header
        self.blob_meta = header["blobs"]
        self.loaded = {}  # blob index -> object, so a shared tensor comes back shared

    def fail(self, what):
        raise KilnFileError(f"{self.name}: malformed header: {what}")

    def decode_root(self):
        return self.decode(self.header["root"])

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            self.fail(f"unexpected node {node!r}")
        tag = node.get("$")
        if tag in ("dict", "odict"):
            items = node.get("items")
            if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
                self.fail(f"{tag} items must be a list of [key, value] pairs")
            result = collections.OrderedDict() if tag == "odict" else {}
            for key, value in items:
                result[self.decode_key(key)] = self.decode(value)
            return result
        if tag == "tuple":
            items = node.get("items")
            if not isinstance(items, list):
                self.fail("tuple items must be a list")
            return tuple(self.decode(v) for v in items)
        if tag == "float":
            value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(node.get("value"))
            if value is None:
                self.fail(f"bad float value {node.get('value')!r}")
            return value
        if tag == "blob":
            return self.blob(node.get("index"))
        self.fail(f"unknown node tag {tag!r}")

    def decode_key(self, node):
        key = self.decode(node)
        try:
            hash(key)
        except TypeError:
            self.fail(f"unhashable dict key {key!r}")
        return key

    def blob(self, index):
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.blob_meta):
            self.fail(f"blob index {index!r} out of range")
        if index in self.loaded:
            return self.loaded[index]
        meta = self.blob_meta[index]
        if not isinstance(meta, dict):
            self.fail(f"blob {index} must be an object")
        kind, dtype_name, shape = meta.get("kind"), meta.get("dtype"), meta.get("shape")
        offset, nbytes = meta.get("offset"), meta.get("nbytes")
        if kind not in ("tensor", "ndarray", "npscalar"):
            self.fail(f"blob {index} has unknown kind {kind!r}")
        if dtype_name not in _DTYPES:
            self.fail(f"blob {index} has unsupported dtype {dtype_name!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            self.fail(f"blob {index} has a bad shape {shape!r}")
        dtype = np.dtype(dtype_name).newbyteorder("<")
        count = math.prod(shape)
        if type(offset) is not int or type(nbytes) is not int or nbytes != count * dtype.itemsize:
            self.fail(f"blob {index}: nbytes {nbytes!r} does not match shape {shape} and dtype {dtype_name}")
        if offset < 0 or offset + nbytes > len(self.data):
            self.fail(f"blob {index}: bytes {offset}..{offset + nbytes} lie outside the data section")
        array = np.frombuffer(self.data, dtype=dtype, count=count, offset=offset).reshape(shape)
        array = array.astype(array.dtype.newbyteorder("="), copy=True)  # writable, native byte order
        if kind == "ndarray":
            result = array
        elif kind == "npscalar":
            if shape:
                self.fail(f"blob {index}: a numpy scalar must have shape []")
            result = array[()]
        else:
            result = self.tensor(array, dtype_name, meta.get("requires_grad", False), index)
        self.loaded[index] = result
        return result

    def tensor(self, array, dtype_name, requires_grad, index):
        import frontend

        dtype = getattr(frontend, dtype_name, None)
        if dtype is None:
            raise KilnFileError(f"{self.name}: tensor {index} has dtype {dtype_name}, which this Kiln does not support")
        tensor = frontend.from_numpy(array)
        if _tensor_dtype_name(tensor.dtype) != dtype_name:
            tensor = frontend.tensor(array, dtype=dtype)
        if requires_grad is True:
            tensor.requires_grad_(True)
        elif requires_grad is not False:
            self.fail(f"tensor {index}: requires_grad must be true or false")
        return tensor
