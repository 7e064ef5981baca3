"""Compiled machine code, cached in memory and on disk.

Disk entries live under ``KILN_CACHE_DIR`` (default: ``$XDG_CACHE_HOME/kiln`` or
``~/.cache/kiln``), one file per key. The key hashes everything that changes the code:
the kernel source, the target triple, CPU name and features, llvmlite's and Kiln's
versions and this file's ``FORMAT_VERSION``. Unlike JAX's and PyTorch's "trusted"
caches we verify every entry: a file carries a magic tag, its payload length and a
SHA-256 of the payload, so a truncated or corrupted entry is detected, deleted and
rebuilt, never loaded. Writes go to a temporary file first and are published with
``os.replace``, so readers never see half an entry, even with concurrent writers.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile

from . import debug

FORMAT_VERSION = 1
MAGIC = b"KILNOBJ\x00"
_HEADER = struct.Struct("<8sIQ32s")      # magic, format version, payload length, sha256


def kiln_version() -> str:
    try:
        from importlib.metadata import version
        return version("kiln")
    except Exception:   # running from a source tree that is not installed
        return "0.1.0+src"


def default_dir() -> str:
    env = os.environ.get("KILN_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kiln")


def make_key(*parts: str) -> str:
    """A hex digest over ``parts`` plus the format version (length-prefixed, so unambiguous)."""
    h = hashlib.sha256()
    for p in (f"format={FORMAT_VERSION}",) + tuple(parts):
        b = p.encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


class DiskCache:
    """Checksummed, atomically written files of bytes, addressed by a hex key."""

    def __init__(self, directory: str | None = None):
        self._directory = directory
        self.hits = self.misses = self.corrupt = 0

    @property
    def directory(self) -> str:
        # resolved on use, so KILN_CACHE_DIR set after import still counts
        return self._directory or default_dir()

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".kobj")

    def load(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError:
            self.misses += 1
            return None
        payload = self._verify(blob)
        if payload is None:
            self.corrupt += 1
            debug.log(1, f"kernel cache: corrupt entry {path} discarded; rebuilding")
            try:
                os.remove(path)
            except OSError:
                pass
            return None
        self.hits += 1
        return payload

    @staticmethod
    def _verify(blob: bytes) -> bytes | None:
        if len(blob) < _HEADER.size:
            return None
        magic, fmt, length, digest = _HEADER.unpack_from(blob)
        payload = blob[_HEADER.size:]
        if magic != MAGIC or fmt != FORMAT_VERSION or length != len(payload):
            return None
        if hashlib.sha256(payload).digest() != digest:
            return None
        return payload

    def store(self, key: str, payload: bytes) -> None:
        path = self.path(key)
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".kobj")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(header)
                    f.write(payload)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
                raise
        except OSError as e:   # a read-only or full disk must not break compilation
            debug.log(1, f"kernel cache: could not write {path}: {e}")
