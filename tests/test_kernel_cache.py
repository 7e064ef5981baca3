"""The on-disk kernel cache: entries verified on load, written atomically, reused by a
new process without code generation, and rebuilt (never executed) when corrupted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from runtime.kernel_cache import DiskCache, make_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_roundtrip_and_key(tmp_path):
    cache = DiskCache(str(tmp_path))
    key = make_key("source", "target")
    assert key != make_key("source", "other target") != make_key("sourcetarget")
    assert cache.load(key) is None
    cache.store(key, b"\x7fELF object bytes")
    assert cache.load(key) == b"\x7fELF object bytes"
    assert [p for p in os.listdir(os.path.dirname(cache.path(key))) if p.startswith(".tmp")] == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "magic"])
def test_damaged_entries_are_detected_and_removed(tmp_path, damage):
    cache = DiskCache(str(tmp_path))
    key = make_key("x")
    cache.store(key, bytes(range(256)) * 10)
    path = cache.path(key)
    blob = bytearray(open(path, "rb").read())
    if damage == "truncate":
        blob = blob[: len(blob) - 100]
    elif damage == "flip":
        blob[-7] ^= 0x40
    elif damage == "empty":
        blob = bytearray()
    else:
        blob[0:8] = b"NOTKILN!"
    open(path, "wb").write(bytes(blob))
    assert cache.load(key) is None
    assert cache.corrupt == 1
    assert not os.path.exists(path)          # discarded, so the rebuild replaces it


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert DiskCache().path("ab" * 32).startswith(str(tmp_path / "elsewhere"))


SCRIPT = textwrap.dedent("""
    import json, numpy as np
    from compiler import dtypes as dt
    from compiler.backends.registry import compile_graph
    from compiler.backends import interpreter
    from compiler.ir import Graph
    from runtime import llvm_jit
    g = Graph("cached")
    x, w = g.add_input("x", (30, 40), dt.float32), g.add_input("w", (40, 20), dt.float32)
    h = g.add_op("matmul", [x, w])
    g.set_outputs([g.add_op("mul", [g.add_op("sigmoid", [h]), h])])
    exe = compile_graph(g, backend="llvm")
    rng = np.random.default_rng(0)
    vals = [rng.standard_normal((30, 40)).astype(np.float32),
            rng.standard_normal((40, 20)).astype(np.float32)]
    ok = np.allclose(exe.run(vals)[0], interpreter.run(g, vals)[0], rtol=1e-4, atol=1e-4)
    print(json.dumps(dict(llvm_jit.stats, corrupt=llvm_jit.disk_cache.corrupt, ok=bool(ok))))
""")


def run_fresh_process(cache_dir):
    env = dict(os.environ, KILN_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_without_codegen_and_corruption_is_rebuilt(tmp_path):
    first = run_fresh_process(tmp_path)
    assert first["ok"] and first["compiled"] >= 2 and first["from_disk"] == 0
    second = run_fresh_process(tmp_path)
    assert second["ok"] and second["compiled"] == 0
    assert second["from_disk"] == first["compiled"]
    entries = sorted(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs
                     if f.endswith(".kobj"))
    assert len(entries) == first["compiled"]
    # damage every entry: truncate some, flip a byte in the others
    for i, path in enumerate(entries):
        blob = bytearray(open(path, "rb").read())
        if i % 2:
            blob = blob[: len(blob) // 2]
        else:
            blob[len(blob) // 2] ^= 0xFF
        open(path, "wb").write(bytes(blob))
    third = run_fresh_process(tmp_path)
    assert third["ok"]
    assert third["corrupt"] == len(entries) and third["compiled"] == len(entries)
    fourth = run_fresh_process(tmp_path)       # and the rebuilt entries are good again
    assert fourth["ok"] and fourth["compiled"] == 0
