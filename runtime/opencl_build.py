"""OpenCL C source in, built program out, through an in-memory and an on-disk cache.

The disk cache is ``runtime.kernel_cache.DiskCache`` (the LLVM backend's: checksummed
entries, atomic writes, corrupt entries deleted and rebuilt), holding the *program
binary* the driver returns. The key hashes the source, the build options, the device's
platform, name, driver version and OpenCL version, and Kiln's version, so a driver update
or another device never loads a stale binary. A binary the driver refuses (a corrupt
payload that still passed the checksum, or a driver that changed without changing its
version string) is treated like a corrupt entry: rebuilt from source and rewritten.

A source that fails to compile raises ``OpenCLBuildError`` carrying the driver's build
log and the numbered source lines the log points at.
"""
from __future__ import annotations

import re
import threading
import time
import warnings

from . import debug
from .kernel_cache import DiskCache, kiln_version, make_key

BUILD_OPTIONS = "-cl-std=CL1.2"

_lock = threading.RLock()
_programs: dict = {}                 # key -> pyopencl Program
disk_cache = DiskCache()
stats = {"compiled": 0, "from_disk": 0, "from_memory": 0, "compile_s": 0.0, "rejected": 0}


class OpenCLBuildError(RuntimeError):
    """A kernel's OpenCL C did not compile; the message holds the build log."""

    def __init__(self, message, log="", source=""):
        super().__init__(message)
        self.log, self.source = log, source


def program_key(source: str, device, options: str = BUILD_OPTIONS) -> str:
    """The disk-cache key: the code without its comment lines, which name each kernel's
    ops and the user's source lines (``KILN_DEBUG=4``) but do not change the binary.
    (Hashing them too made a model called from another line, or a benchmark's parent
    and child processes, compile everything again.)"""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    return make_key("opencl", code, options, device.fingerprint(), f"kiln={kiln_version()}")


def _log_of(prg, device):
    import pyopencl as cl
    try:
        return prg.get_build_info(device.cl_device, cl.program_build_info.LOG) or ""
    except Exception:  # noqa: BLE001 - the log is best effort
        return ""


def _excerpt(source, log, context=2):
    """The source lines the log's ``<file>:LINE:COL:`` references point at, numbered."""
    lines = source.splitlines()
    wanted = sorted({int(m) for m in re.findall(r":(\d+):\d+:", log)})
    if not wanted:
        return ""
    keep = set()
    for n in wanted[:5]:
        keep.update(range(max(1, n - context), min(len(lines), n + context) + 1))
    return "\n".join(f"{n:5d}{'>' if n in wanted else ' '} {lines[n - 1]}" for n in sorted(keep))


def _from_source(cl, source, device, options, name):
    prg = cl._cl._Program(device.context, source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prg.build(options.encode(), [device.cl_device])
    except Exception as e:  # noqa: BLE001 - pyopencl's RuntimeError
        log = _log_of(prg, device) or str(e)
        excerpt = _excerpt(source, log)
        raise OpenCLBuildError(
            f"OpenCL kernel {name!r} failed to compile on {device.describe()}:\n"
            f"{log.strip()}" + (f"\n\nsource lines:\n{excerpt}" if excerpt else "")
            + "\n(KILN_DEBUG=4 prints the whole OpenCL C of every kernel)", log, source) from None
    return prg


def _from_binary(cl, binary, device, options):
    prg = cl._cl._Program(device.context, [device.cl_device], [binary])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prg.build(options.encode(), [device.cl_device])
    return prg


def build(source: str, device, name: str = "kernel", options: str = BUILD_OPTIONS):
    """A built ``pyopencl.Program`` for ``source`` on ``device`` (cached in memory and on disk)."""
    import pyopencl as cl
    key = program_key(source, device, options)
    with _lock:
        found = _programs.get(key)
        if found is not None:
            stats["from_memory"] += 1
            return found
        prg = None
        binary = disk_cache.load(key)
        if binary is not None:
            try:
                prg = _from_binary(cl, binary, device, options)
                stats["from_disk"] += 1
            except Exception as e:  # noqa: BLE001 - the driver refused the binary
                stats["rejected"] += 1
                debug.log(1, f"opencl program cache: the driver refused the cached binary of "
                             f"{name} ({type(e).__name__}); rebuilding from source")
                prg = None
        if prg is None:
            t0 = time.perf_counter()
            prg = _from_source(cl, source, device, options, name)
            stats["compiled"] += 1
            stats["compile_s"] += time.perf_counter() - t0
            try:
                binaries = prg.get_info(cl.program_info.BINARIES)
                if binaries and binaries[0]:
                    disk_cache.store(key, bytes(binaries[0]))
            except Exception as e:  # noqa: BLE001 - a driver without binaries: memory only
                debug.log(1, f"opencl program cache: no binary to store for {name}: {e}")
        program = cl.Program(prg)
        _programs[key] = program
        return program


def forget_memory_cache():
    """Drop built programs held in memory (tests use this to exercise the disk cache)."""
    with _lock:
        _programs.clear()


__all__ = ["OpenCLBuildError", "build", "program_key", "disk_cache", "stats",
           "forget_memory_cache"]
