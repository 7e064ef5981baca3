"""LLVM IR text in, callable machine code out (llvmlite's MCJIT), through the kernel cache.

One process-wide engine holds every loaded object file; each kernel is its own small
module, so a kernel compiled for one graph is reused by every other graph that prints
the same source (in memory by its key, across processes through ``kernel_cache``).

Optimisation: LLVM's O2 pipeline with loop and SLP vectorisation for the host CPU's own
name and feature list (AVX-512 on the machines we target). O3 made no measurable
difference to Kiln's kernels (the matmul tile is explicit vector code) but tripled the
compile time of matmul kernels (loop strength reduction over its extra unrolling). Generated code does not use
global fast-math: only reductions carry ``reassoc`` (so they vectorise) and the matmul
kernels use explicit FMAs, which is why results match the reference to float32
tolerance rather than bit for bit.
"""
from __future__ import annotations

import threading
import time

import llvmlite
import llvmlite.binding as llvm

from .kernel_cache import DiskCache, kiln_version, make_key

_lock = threading.RLock()
_target = None
_engine = None
_loaded: dict[str, dict[str, int]] = {}     # cache key -> {symbol: address}
disk_cache = DiskCache()
stats = {"compiled": 0, "from_disk": 0, "from_memory": 0, "compile_s": 0.0}


class HostTarget:
    """The host's triple, CPU name and features, and a target machine built for them."""

    def __init__(self):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.triple = llvm.get_process_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_triple(self.triple)
        self.machine = target.create_target_machine(cpu=self.cpu, features=self.features,
                                                    opt=3, reloc="default",
                                                    codemodel="jitdefault", jit=True)

    def has(self, feature: str) -> bool:
        return f"+{feature}" in self.features.split(",")

    @property
    def vector_bits(self) -> int:
        """The widest SIMD register the printers should target."""
        if self.has("avx512f"):
            return 512
        if self.has("avx2") or self.has("avx"):
            return 256
        return 128

    def fingerprint(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|llvmlite={llvmlite.__version__}" \
               f"|llvm={'.'.join(map(str, llvm.llvm_version_info))}|kiln={kiln_version()}"


def host() -> HostTarget:
    global _target
    with _lock:
        if _target is None:
            _target = HostTarget()
        return _target


def _get_engine():
    global _engine
    if _engine is None:
        _engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), host().machine)
    return _engine


OPT_LEVEL = 2


def source_key(source: str, opt_level: int = OPT_LEVEL) -> str:
    """The cache key of a module's source on this host (see ``kernel_cache``)."""
    return make_key(source, host().fingerprint(), f"O{opt_level}")


def compile_to_object(source: str, opt_level: int = OPT_LEVEL) -> bytes:
    """Parse, verify, optimise and emit an object file for ``source``."""
    mod = llvm.parse_assembly(source)
    mod.verify()
    if opt_level:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(host().machine, pto)
        pb.getModulePassManager().run(mod, pb)
    return host().machine.emit_object(mod)


def load(source: str, symbols, key: str | None = None, opt_level: int = OPT_LEVEL) -> dict[str, int]:
    """Addresses of ``symbols`` defined by ``source``: from memory, disk, or a fresh compile.
    ``key`` (from ``source_key``) may leave comments out of the hash."""
    key = key or source_key(source, opt_level)
    with _lock:
        found = _loaded.get(key)
        if found is not None:
            stats["from_memory"] += 1
            return found
        obj = disk_cache.load(key)
        if obj is not None:
            stats["from_disk"] += 1
        else:
            t0 = time.perf_counter()
            obj = compile_to_object(source, opt_level)
            stats["compiled"] += 1
            stats["compile_s"] += time.perf_counter() - t0
            disk_cache.store(key, obj)
        engine = _get_engine()
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        found = {s: engine.get_function_address(s) for s in symbols}
        missing = [s for s, a in found.items() if not a]
        if missing:
            raise RuntimeError(f"compiled module does not define {missing}")
        _loaded[key] = found
        return found


def optimized_ir(source: str, opt_level: int = OPT_LEVEL) -> str:
    """The module after optimisation, for reading what LLVM made of a kernel."""
    mod = llvm.parse_assembly(source)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(host().machine, pto)
    pb.getModulePassManager().run(mod, pb)
    return str(mod)


def assembly(source: str, opt_level: int = OPT_LEVEL) -> str:
    mod = llvm.parse_assembly(optimized_ir(source, opt_level))
    return host().machine.emit_assembly(mod)
