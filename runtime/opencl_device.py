"""Which OpenCL device Kiln runs on, and the one context and queue it uses there.

``device()`` enumerates every platform's devices, orders them GPU first (then other
accelerators, then CPUs, Intel's CPU runtime first among those; otherwise in the order
the platforms list them), and *probes* each
candidate by building a tiny kernel: a device whose compiler cannot build (PoCL 3.0's
LLVM 14 does not know recent CPUs and fails with "unknown target CPU 'generic'") is
skipped, with its build log kept for the report. ``KILN_OPENCL_DEVICE`` (or the
``select`` argument) picks a device by index into that order or by a substring of its
platform or device name. The choice and the skipped devices are printed at
``KILN_DEBUG>=1``.

Intel's CPU runtime (``pip install intel-opencl-rt intel-cmplr-lib-rt``) installs
``libintelocl.so`` into ``<sys.prefix>/lib`` but registers it nowhere pyopencl's bundled
ICD loader looks. Before the first platform query, and only when the user has not set
``OCL_ICD_VENDORS`` themselves, ``register_installed_icds`` writes a vendors directory
naming it, pyopencl's bundled PoCL and every runtime registered in
``/etc/OpenCL/vendors`` (GPU drivers, a distribution's PoCL), and points
``OCL_ICD_VENDORS`` at it.

No usable device is an ``OpenCLUnavailableError`` that says what to install; the
backend never falls back to the CPU backend silently.
"""
from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field

from . import debug

INSTALL_HINT = (
    "install an OpenCL runtime: on a CPU, `pip install intel-opencl-rt intel-cmplr-lib-rt` "
    "(Intel's CPU runtime, also fine on AMD CPUs; Kiln registers it automatically), or the "
    "pocl-binary-distribution wheel (`pip install 'pyopencl[pocl]'`) on a CPU its LLVM "
    "knows; on a GPU, the vendor's driver with its OpenCL ICD")

PROBE_SOURCE = "__kernel void kiln_probe(__global float* x) { x[get_global_id(0)] += 1.0f; }\n"

# libraries libintelocl.so links against; loaded by path first so the ICD loader's dlopen
# finds them even where the runtime's own RUNPATH does not point at them
INTEL_DEPENDENCIES = ("libintlc.so.5", "libimf.so", "libsvml.so", "libirng.so",
                      "libtbb.so.12", "libtbbmalloc.so.2", "libcommon_clang.so")


class OpenCLUnavailableError(RuntimeError):
    """No OpenCL device can run Kiln's kernels here (the message says what to install)."""


@dataclass
class Device:
    """One probed OpenCL device with its context and in-order queue, and the limits the
    printers size kernels by."""

    index: int                    # position in the preference order
    cl_device: object
    platform: str
    name: str
    kind: str                     # "gpu" | "accelerator" | "cpu" | "other"
    driver: str
    version: str
    max_work_group_size: int
    max_work_item_sizes: tuple
    local_mem_size: int
    local_mem_is_real: bool       # dedicated local memory (GPUs) rather than cache-backed
    compute_units: int
    fp64: bool
    unified_memory: bool          # host and device share memory: buffers can wrap host arrays
    base_align: int               # bytes; host pointers wrapped zero-copy must be aligned so
    system_svm: bool = False      # fine-grain system SVM: kernels take any host pointer
    context: object = None
    queue: object = None
    extra: dict = field(default_factory=dict)

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    def fingerprint(self) -> str:
        """What a compiled program binary depends on (for the disk cache key)."""
        return f"{self.platform}|{self.name}|{self.driver}|{self.version}"

    def describe(self) -> str:
        return f"{self.name!r} on {self.platform!r} ({self.kind}, driver {self.driver})"


# -- making installed runtimes visible to pyopencl's ICD loader ----------------------------
def _intel_runtime():
    for lib in (os.path.join(sys.prefix, "lib"), os.path.join(sys.prefix, "lib64")):
        path = os.path.join(lib, "libintelocl.so")
        if os.path.isfile(path):
            return os.path.realpath(path)
    return None


def _bundled_pocl():
    """The absolute path of the PoCL library shipped inside pyopencl's wheel, if any."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("pyopencl")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    libs = os.path.join(os.path.dirname(spec.origin), ".libs")
    icd = os.path.join(libs, "pocl.icd")
    try:
        with open(icd) as f:
            name = f.read().strip()
    except OSError:
        found = sorted(glob.glob(os.path.join(libs, "libpocl*.so*")))
        return found[0] if found else None
    path = name if os.path.isabs(name) else os.path.join(libs, name)
    return path if os.path.isfile(path) else None


SYSTEM_VENDORS = "/etc/OpenCL/vendors"     # where drivers register (GPUs, distro PoCL)


def _system_icds():
    """{file name: library} of the system's registered runtimes: ``OCL_ICD_VENDORS``
    replaces the loader's default directory, so the directory Kiln writes must name
    them too, or installing Intel's CPU runtime would hide the machine's GPU."""
    entries = {}
    for path in sorted(glob.glob(os.path.join(SYSTEM_VENDORS, "*.icd"))):
        try:
            with open(path) as f:
                lib = f.read().strip()
        except OSError:
            continue
        if lib:
            entries["system-" + os.path.basename(path)] = lib
    return entries


def _vendors_dir(entries):
    """A directory of ``.icd`` files for ``entries`` ({file name: library path}), written
    once per distinct content next to the kernel cache (a temporary directory if that is
    not writable)."""
    from .kernel_cache import default_dir
    text = "".join(f"{k}={v}\n" for k, v in sorted(entries.items()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    for base in (os.path.join(default_dir(), "opencl-vendors"), None):
        try:
            if base is None:
                directory = tempfile.mkdtemp(prefix="kiln-opencl-vendors-")
            else:
                directory = os.path.join(base, digest)
                os.makedirs(directory, exist_ok=True)
            for name, lib in entries.items():
                path = os.path.join(directory, name)
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
                with os.fdopen(fd, "w") as f:
                    f.write(lib + "\n")
                os.replace(tmp, path)
            return directory
        except OSError:
            continue
    return None


_registered = False


def register_installed_icds() -> str | None:
    """Point ``OCL_ICD_VENDORS`` at a directory naming Intel's CPU runtime when it is
    installed in this environment; returns the directory (None if nothing was done).

    Must run before pyopencl's first platform query (the loader reads the variable once).
    A user's own ``OCL_ICD_VENDORS`` is always respected."""
    global _registered
    if _registered or "OCL_ICD_VENDORS" in os.environ:
        return None
    _registered = True
    intel = _intel_runtime()
    if intel is None:
        return None
    lib_dir = os.path.dirname(intel)
    for dep in INTEL_DEPENDENCIES:
        path = os.path.join(lib_dir, dep)
        if os.path.exists(path):
            try:
                # RTLD_LOCAL is enough: the dynamic linker matches DT_NEEDED entries against
                # loaded libraries by soname, and Intel's libm replacements stay out of the
                # global symbol scope of everything loaded later
                ctypes.CDLL(path, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
            except OSError as e:
                debug.log(1, f"opencl: could not preload {path}: {e}")
    entries = {"kiln-intel-cpu.icd": intel}
    pocl = _bundled_pocl()
    if pocl:
        entries["kiln-pocl.icd"] = pocl
    entries.update(_system_icds())
    directory = _vendors_dir(entries)
    if directory is not None:
        os.environ["OCL_ICD_VENDORS"] = directory
        debug.log(1, f"opencl: registered Intel's CPU runtime {intel} via OCL_ICD_VENDORS={directory}")
    return directory


# -- enumeration, probing, selection ------------------------------------------------------
KIND_RANK = {"gpu": 0, "accelerator": 1, "cpu": 2, "other": 3}


def _kind(cl, dev):
    t = dev.type
    if t & cl.device_type.GPU:
        return "gpu"
    if t & cl.device_type.ACCELERATOR:
        return "accelerator"
    if t & cl.device_type.CPU:
        return "cpu"
    return "other"


def _candidates(cl):
    """Every device of every platform, in preference order, without duplicates (a loader
    that reads two vendor directories may list one runtime twice)."""
    try:
        platforms = cl.get_platforms()
    except Exception as e:  # noqa: BLE001 - pyopencl raises LogicError/RuntimeError here
        raise OpenCLUnavailableError(
            f"no OpenCL platform found ({e}). Kiln's backend='opencl' needs one: "
            f"{INSTALL_HINT}.") from None
    seen, found = set(), []
    for p in platforms:
        try:
            devices = p.get_devices()
        except Exception:  # noqa: BLE001 - a platform with no devices
            continue
        for d in devices:
            key = (p.name.strip(), p.version.strip(), d.name.strip(), d.driver_version.strip())
            if key in seen:
                continue
            seen.add(key)
            found.append((p, d))
    found.sort(key=lambda pd: _preference(cl, *pd))
    return found


def _preference(cl, p, d):
    """Sort key: GPUs, then accelerators, then CPUs; among CPU runtimes Intel's first (a
    kernel launch costs 8 us there against 40 us on PoCL 3.1 on the same machine, and a
    program builds several times faster), then the platforms' own order."""
    kind = _kind(cl, d)
    return KIND_RANK[kind], 0 if kind == "cpu" and "intel" in p.name.lower() else 1


def _thread_limit():
    """``KILN_NUM_THREADS`` also bounds Intel's CPU runtime (its TBB pool reads
    ``CL_CONFIG_CPU_TBB_NUM_WORKERS`` once, when the runtime starts)."""
    n = os.environ.get("KILN_NUM_THREADS", "").strip()
    if n.isdigit() and int(n) > 0:
        os.environ.setdefault("CL_CONFIG_CPU_TBB_NUM_WORKERS", n)


def _describe_raw(cl, p, d):
    return f"{d.name.strip()!r} on {p.name.strip()!r} ({_kind(cl, d)})"


def _probe(cl, d):
    """None if ``d`` builds and runs a tiny kernel, else the reason (with the build log)."""
    try:
        ctx = cl.Context([d])
        prg = cl._cl._Program(ctx, PROBE_SOURCE)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prg.build(b"", [d])
        except Exception as e:  # noqa: BLE001 - pyopencl's RuntimeError carries the log
            try:
                text = prg.get_build_info(d, cl.program_build_info.LOG) or str(e)
            except Exception:  # noqa: BLE001
                text = str(e)
            log = text.strip().splitlines()
            keep = [line for line in log if "error" in line.lower()] or log
            return "cannot build kernels: " + " | ".join(keep[:4])
        import numpy as np
        q = cl.CommandQueue(ctx)
        x = np.zeros(4, np.float32)
        buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=x)
        cl.Kernel(cl.Program(prg), "kiln_probe")(q, (4,), None, buf)
        cl.enqueue_copy(q, x, buf)
        q.finish()
        if not (x == 1).all():
            return "the probe kernel computed a wrong result"
        return None
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def _matches(selector, index, p, d):
    if selector.isdigit():
        return int(selector) == index
    s = selector.lower()
    return s in d.name.lower() or s in p.name.lower() or s in p.vendor.lower()


def _make_device(cl, index, p, d) -> Device:
    ext = d.extensions.split()
    local_real = d.local_mem_type == cl.device_local_mem_type.LOCAL
    try:
        unified = bool(d.host_unified_memory)
    except Exception:  # noqa: BLE001 - removed from some OpenCL 2.x headers
        unified = _kind(cl, d) == "cpu"
    try:
        system_svm = bool(d.svm_capabilities & cl.device_svm_capabilities.FINE_GRAIN_SYSTEM)
    except Exception:  # noqa: BLE001 - an OpenCL 1.x device
        system_svm = False
    dev = Device(index=index, cl_device=d, platform=p.name.strip(), name=d.name.strip(),
                 kind=_kind(cl, d), driver=d.driver_version.strip(), version=d.version.strip(),
                 max_work_group_size=int(d.max_work_group_size),
                 max_work_item_sizes=tuple(int(s) for s in d.max_work_item_sizes),
                 local_mem_size=int(d.local_mem_size), local_mem_is_real=local_real,
                 compute_units=int(d.max_compute_units),
                 fp64="cl_khr_fp64" in ext or bool(getattr(d, "double_fp_config", 0)),
                 unified_memory=unified, base_align=max(int(d.mem_base_addr_align) // 8, 64),
                 system_svm=system_svm and os.environ.get("KILN_OPENCL_SVM", "1") != "0")
    dev.context = cl.Context([d])
    dev.queue = cl.CommandQueue(dev.context)
    return dev


_lock = threading.Lock()
_chosen: dict = {}


def device(select: str | int | None = None) -> Device:
    """The device Kiln uses (probed and chosen once per selector per process)."""
    if select is None:
        select = os.environ.get("KILN_OPENCL_DEVICE", "").strip() or None
    key = None if select is None else str(select).strip()
    with _lock:
        if key in _chosen:
            return _chosen[key]
        register_installed_icds()
        _thread_limit()
        try:
            import pyopencl as cl
        except ImportError as e:
            raise OpenCLUnavailableError(
                f"backend='opencl' needs pyopencl, which is not importable ({e}); "
                f"`pip install 'pyopencl[pocl]'` and {INSTALL_HINT}.") from None
        candidates = _candidates(cl)
        listing = [f"  [{i}] {_describe_raw(cl, p, d)}" for i, (p, d) in enumerate(candidates)]
        if key is not None:
            picked = [(i, p, d) for i, (p, d) in enumerate(candidates) if _matches(key, i, p, d)]
            if not picked:
                raise OpenCLUnavailableError(
                    f"KILN_OPENCL_DEVICE={key!r} matches no OpenCL device; the devices here "
                    f"are:\n" + ("\n".join(listing) or "  (none)"))
        else:
            picked = [(i, p, d) for i, (p, d) in enumerate(candidates)]
        skipped = []
        for i, p, d in picked:
            reason = _probe(cl, d)
            if reason is None:
                dev = _make_device(cl, i, p, d)
                dev.extra["skipped"] = skipped
                debug.log(1, f"opencl: using device [{i}] {dev.describe()}"
                             + (f" (selected by {key!r})" if key is not None else
                                " (the first usable in the order GPU, accelerator, CPU)"))
                for what, why in skipped:
                    debug.log(1, f"opencl: skipped {what}: {why}")
                _chosen[key] = dev
                return dev
            skipped.append((f"[{i}] {_describe_raw(cl, p, d)}", reason))
        why = "\n".join(f"  {what}: {reason}" for what, reason in skipped) or "  (no devices)"
        pocl_cpu = any("unknown target CPU" in r for _, r in skipped)
        hint = (" PoCL's compiler (LLVM 14 in pocl-binary-distribution 3.0) does not know this "
                "CPU, so it cannot build kernels here." if pocl_cpu else "")
        raise OpenCLUnavailableError(
            f"no usable OpenCL device for backend='opencl':\n{why}\n{hint} To fix it, "
            f"{INSTALL_HINT}. Set KILN_DEBUG=1 to see the device search.")


def devices_report() -> str:
    """A readable list of every device and whether it is usable (for docs and debugging)."""
    register_installed_icds()
    import pyopencl as cl
    lines = []
    for i, (p, d) in enumerate(_candidates(cl)):
        reason = _probe(cl, d)
        lines.append(f"[{i}] {_describe_raw(cl, p, d)}: {'usable' if reason is None else reason}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m runtime.opencl_device [SELECTOR]``: list every device and whether it is
    usable; with a selector, also print the device it picks and exit 1 if none (how
    ``make test`` decides to run the OpenCL tests on PoCL as well)."""
    args = sys.argv[1:] if argv is None else argv
    print(devices_report())
    if not args:
        return 0
    try:
        print(f"{args[0]!r} selects {device(args[0]).describe()}")
    except OpenCLUnavailableError as e:
        print(f"{args[0]!r} selects no usable device: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Device", "OpenCLUnavailableError", "device", "devices_report",
           "register_installed_icds", "INSTALL_HINT"]
