"""``kiln bench``: run the workloads in each mode and print one table per workload.

Modes: ``eager`` (Kiln eager), ``unfused`` (compiled, one kernel per op), ``fused``
(compiled with fusion) and ``torch`` (PyTorch eager, when importable). Compile time is
reported cold (an empty kernel cache) and from the disk cache (a fresh process reusing
the cache the cold compile filled). All ratios come from this one run, whose modes are timed in
interleaved rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from .workloads import WORKLOADS

MODES = ("eager", "unfused", "fused", "torch")


def _libs(mode, backend):
    if mode == "torch":
        import torch
        return torch, None
    import frontend
    if mode == "eager":
        return frontend, None
    fuse = mode == "fused"
    compiled = []

    def compile_fn(f):
        c = frontend.compile(f, backend=backend, fuse=fuse)
        compiled.append(c)
        return c
    compile_fn.compiled = compiled
    return frontend, compile_fn


def _kernels(compile_fn):
    if compile_fn is None:
        return None
    return sum(c.kernel_count() for c in compile_fn.compiled)


def prepare(key, mode, backend, warmup=2):
    """Build one mode's step (timing its first call, which compiles) and warm it up."""
    lib, compile_fn = _libs(mode, backend)
    step = WORKLOADS[key].make(lib, compile_fn)
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    return step, first, _kernels(compile_fn)


ROUNDS = 3        # each mode's timed calls come in this many blocks, modes alternating
SETTLE_S = 0.15   # untimed calls of a mode before its block, at least this long


def measure_modes(key, modes, backend, reps, warmup=2):
    """Time every mode of one workload in interleaved rounds, so that the machine's drift
    over the run (frequency, neighbours on a shared host) affects all modes alike and the
    ratios between them stay meaningful. Before each block a mode runs untimed for
    ``SETTLE_S``: what the previous mode left running (the OpenBLAS workers of NumPy's
    matmul spin ~2**28 cycles after each product, PyTorch's OpenMP workers a few ms)
    goes idle, and the machine is busy with this mode when the clock starts (an idle
    virtual CPU comes back slowly)."""
    prepared = {mode: prepare(key, mode, backend, warmup) for mode in modes}
    times = {mode: [] for mode in modes}
    block = -(-reps // ROUNDS)
    for _ in range(ROUNDS):
        for mode, (step, _, _) in prepared.items():
            if len(modes) > 1:
                settle_until = time.perf_counter() + SETTLE_S
                step()
                while time.perf_counter() < settle_until:
                    step()
            for _ in range(min(block, reps - len(times[mode]))):
                t0 = time.perf_counter()
                step()
                times[mode].append(time.perf_counter() - t0)
    rows = {}
    for mode, (_, first, kernels) in prepared.items():
        median = statistics.median(times[mode])
        rows[mode] = {"median_ms": 1e3 * median, "min_ms": 1e3 * min(times[mode]),
                      "max_ms": 1e3 * max(times[mode]), "kernels": kernels,
                      "compile_s": max(first - median, 0.0) if kernels is not None else None}
    return rows


def measure(key, mode, backend, reps, warmup=2):
    return measure_modes(key, [mode], backend, reps, warmup)[mode]


def _disk_compile_seconds(key, mode, backend, threads):
    """Compile time in a fresh process whose kernel cache the cold compile has filled."""
    cmd = [sys.executable, "-m", "frontend.bench.runner", "--probe", key, "--mode", mode,
           "--backend", backend, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["compile_s"]


def _throughput(workload, ms):
    per_s = 1e3 / ms
    if workload.unit == "GB/s":
        return workload.work * per_s / 1e9
    if workload.unit == "GFLOP/s":
        return workload.work * per_s / 1e9
    return workload.work * per_s


def machine():
    import numpy
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "numpy": numpy.__version__}
    try:
        import llvmlite
        import llvmlite.binding as llvm
        info["llvmlite"] = llvmlite.__version__
        info["cpu"] = llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - machine info is best effort
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def print_table(key, rows):
    w = WORKLOADS[key]
    print(f"\n{key}: {w.title}")
    print(f"  {'mode':8s} {'median ms':>10s} {'min ms':>9s} {'max ms':>9s} {w.unit:>11s} "
          f"{'kernels':>8s} {'compile s':>10s} {'disk s':>7s} {'vs unfused':>11s} {'vs torch':>9s}")
    unfused, torch_ms = rows.get("unfused", {}).get("median_ms"), rows.get("torch", {}).get("median_ms")
    for mode, r in rows.items():
        def fmt(v, spec):
            width = int("".join(c for c in spec.split(".")[0] if c.isdigit()))
            return format(v, spec) if v is not None else "-".rjust(width)
        vs_unfused = f"{unfused / r['median_ms']:.2f}x" if unfused else "-"
        vs_torch = f"{torch_ms / r['median_ms']:.2f}x" if torch_ms else "-"
        print(f"  {mode:8s} {r['median_ms']:10.3f} {r['min_ms']:9.3f} {r['max_ms']:9.3f} "
              f"{_throughput(w, r['median_ms']):11.2f} {fmt(r['kernels'], '8d')} "
              f"{fmt(r['compile_s'], '10.3f')} {fmt(r.get('compile_disk_s'), '7.3f')} "
              f"{vs_unfused:>11s} {vs_torch:>9s}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kiln bench", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", "-w", action="append", choices=sorted(WORKLOADS),
                        help="workload to run (repeatable; default: all)")
    parser.add_argument("--mode", "-m", action="append", choices=MODES,
                        help="mode to run (repeatable; default: all)")
    parser.add_argument("--backend", default="llvm", choices=("llvm", "opencl", "eager"))
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import frontend
    frontend.set_num_threads(args.threads)
    if args.probe:  # the child of _disk_compile_seconds
        r = measure(args.probe, args.mode[0], args.backend, reps=1, warmup=0)
        print(json.dumps({"compile_s": r["compile_s"]}))
        return 0

    try:
        import torch
        torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        have_torch = False
    modes = [m for m in (args.mode or MODES) if m != "torch" or have_torch]
    own_cache = "KILN_CACHE_DIR" not in os.environ
    if own_cache:  # cold compiles really are cold
        os.environ["KILN_CACHE_DIR"] = tempfile.mkdtemp(prefix="kiln-bench-cache-")
    results = {}
    for key in args.workload or sorted(WORKLOADS):
        rows = measure_modes(key, modes, args.backend, args.reps)
        for mode in modes:
            if mode in ("unfused", "fused"):
                rows[mode]["compile_disk_s"] = _disk_compile_seconds(key, mode, args.backend,
                                                                     args.threads)
        results[key] = rows
        print_table(key, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "machine": machine(), "threads": args.threads,
                       "backend": args.backend}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
