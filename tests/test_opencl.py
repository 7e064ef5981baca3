"""The OpenCL backend's own cases (the shared compile suites run on it too, through
test_compile.BACKENDS): awkward sizes, 0-d/size-1/empty tensors, int64 index ops,
float64, device selection and the no-device error, the on-disk program cache, build logs
in errors, and the kernel-by-kernel comparison with the LLVM backend."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import frontend as torch
import frontend.nn as nn
import frontend.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from runtime.opencl_device import OpenCLUnavailableError, device

try:
    DEVICE = device()
except OpenCLUnavailableError:      # the no-device error test below still runs
    DEVICE = None

needs_device = pytest.mark.skipif(DEVICE is None, reason="no usable OpenCL device")


def compiled_result(fn, *args, fuse=True, backend="opencl", **kw):
    """The second call's result (the first call traces and returns eager results)."""
    cf = torch.compile(fn, backend=backend, fuse=fuse, **kw)
    cf(*args)
    return cf(*args)


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(np.asarray(got.detach().numpy(), np.float64),
                               np.asarray(want.detach().numpy(), np.float64), rtol=tol, atol=tol)


def run_python(code, env=None, timeout=240):
    full = dict(os.environ, **(env or {}))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full,
                         capture_output=True, text=True, timeout=timeout)
    return out


# -- shapes ------------------------------------------------------------------------------
@needs_device
@pytest.mark.parametrize("n", [1, 7, 255, 257, 1000, 4097, 70001])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_elementwise_sizes_not_multiples_of_the_work_group(n, fuse):
    def f(x, a):
        return x * torch.sigmoid(x) * a + 1
    x, a = torch.randn(n), torch.randn(n)
    close(compiled_result(f, x, a, fuse=fuse), f(x, a))


def _kernel_infos(cf):
    return [k for e in cf._cache.values() if not isinstance(e, str) for k in e.forward.kernels]


@needs_device
def test_dimension_0_bounds_check_only_where_the_ndrange_overshoots(monkeypatch):
    """A check on get_global_id(0) makes Intel's CPU vectoriser mask the whole body (W1
    ran at half speed): a size that fills whole work-groups has none, any other is split
    on CPU runtimes into unchecked whole groups plus a checked last group launched at a
    global offset (scatter initialisations too). GPUs keep one checked launch."""
    monkeypatch.setenv("KILN_OPENCL_STYLE", "cpu")

    def f(x, a):
        return x * torch.sigmoid(x) * a + 1
    for n, parts in ((4096, 1), (1000, 2), (10, 1)):
        cf = torch.compile(f, backend="opencl")
        x, a = torch.randn(n), torch.randn(n)
        cf(x, a)
        close(cf(x, a), f(x, a))
        (info,) = _kernel_infos(cf)
        launches = info.extra["launches"]
        assert len(launches) == parts, (n, launches)
        checks = info.source.count(f"if (v_i0 >= {n}L) return;")
        assert checks == (0 if n == 4096 else 1), info.source
        assert "for (int u" not in info.source      # no coarsening loop
        if parts == 2:
            (_, g0, l0), (_, g1, l1) = launches
            assert g0 == (768,) and l0 == l1 == (256,) and g1 == (256,)
            assert info.source.index(f">= {n}L") > info.source.index("_tail(")
    # three dimensions, and a scatter kernel's initialisation, both with a split tail
    torch.manual_seed(0)
    emb = nn.Embedding(7, 300)
    idx = torch.tensor([[1, 0, 6], [3, 3, 2]])

    w = torch.randn(3, 1, 300)

    def g(i, y):
        return emb(i).sum(), torch.tanh(y) * w       # broadcast: a 3-d NDRange
    cg = torch.compile(g, backend="opencl")
    y = torch.randn(2, 3, 5, 300)
    cg(idx, y)
    emb.zero_grad()
    loss, t = cg(idx, y)
    loss.backward()
    got = emb.weight.grad.clone()
    emb.zero_grad()
    loss_e, t_e = g(idx, y)
    loss_e.backward()
    close(t, t_e)
    close(got, emb.weight.grad)
    exe = next(e for e in cg._cache.values() if not isinstance(e, str))
    tails = [ln for e in (exe.forward, exe.backward) for k in e.kernels
             for ln in k.extra.get("launches", ()) if ln[0].endswith("_tail")]
    assert {name.split("_")[1] for name, _, _ in tails} >= {"tanh", "index"}
    assert any(len(glob) == 3 for _, glob, _ in tails)


def _streamed_kernel(x, a, b, s):
    y = x * torch.sigmoid(x) * a + b
    return torch.where(y > 0.5, torch.relu(y - s), torch.clamp(y, min=-0.25) / s)


@needs_device
@pytest.mark.parametrize("shape,parts", [((4096,), 1), ((272,), 2), ((3, 5, 32), 1),
                                         ((48, 64), 1)])
def test_large_outputs_use_the_streamed_vector_form(monkeypatch, shape, parts):
    """On CPU runtimes an elementwise kernel writing a large graph output computes 16
    points per work-item as float16 and writes them with one non-temporal store (W1:
    1.5 -> 1.1 ms). Values match the one-point-per-work-item form's: broadcasts
    (``s`` does not vary along the innermost dimension), NaN through max/min and
    comparisons feeding ``where``, a partial last work-group (272 = 17 vectors)."""
    from compiler.backends import opencl, opencl_streaming
    monkeypatch.setenv("KILN_OPENCL_STYLE", "cpu")
    monkeypatch.setattr(opencl_streaming, "STREAM_BYTES", 0)
    torch.manual_seed(0)
    x, a, b = torch.randn(*shape), torch.randn(*shape), torch.randn(*shape)
    s = torch.rand(*shape[:-1], 1) + 0.5
    x.numpy().reshape(-1)[3] = float("nan")
    cf = torch.compile(_streamed_kernel, backend="opencl")
    cf(x, a, b, s)
    got = cf(x, a, b, s)
    (info,) = _kernel_infos(cf)
    assert "float16" in info.extra["kind"] and "kiln_stream_f16(" in info.source, info.source
    assert len(info.extra["launches"]) == parts
    close(got, _streamed_kernel(x, a, b, s))
    assert np.isnan(got.numpy().reshape(-1)[3])
    monkeypatch.setattr(opencl, "stream_lanes", lambda kernel, target: 0)
    scalar = torch.compile(_streamed_kernel, backend="opencl")
    scalar(x, a, b, s)
    want = scalar(x, a, b, s)
    assert "float16" not in _kernel_infos(scalar)[0].source
    # (equal on Intel's runtime; PoCL's vector exp may differ from its scalar one by an ulp)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-6, atol=1e-7)


@needs_device
def test_streamed_vector_form_only_where_it_applies(monkeypatch):
    """Small outputs, an innermost size that is not a multiple of 16 (7x9 is one loop of
    63 points), integer values, GPU
    style and reductions keep their usual forms."""
    from compiler.backends import opencl_streaming
    monkeypatch.setenv("KILN_OPENCL_STYLE", "cpu")
    x = torch.randn(64, 64)

    def kinds(fn, *args):
        cf = torch.compile(fn, backend="opencl")
        cf(*args)
        out = cf(*args)
        close(out, fn(*args))
        return [k.extra["kind"] for k in _kernel_infos(cf)]
    assert not any("float16" in k for k in kinds(torch.tanh, x))          # 16 KiB output
    monkeypatch.setattr(opencl_streaming, "STREAM_BYTES", 0)
    assert all("float16" in k for k in kinds(torch.tanh, x))
    assert not any("float16" in k for k in kinds(torch.tanh, torch.randn(7, 9)))
    assert not any("float16" in k for k in kinds(lambda i: i * 3 + 1, torch.arange(64)))
    assert not any("kiln_stream_f16" in k or "points per work-item" in k
                   for k in kinds(lambda v: v.sum(1), x))               # the row form
    monkeypatch.setenv("KILN_OPENCL_STYLE", "gpu")
    assert not any("float16" in k for k in kinds(torch.tanh, x))


@needs_device
def test_streaming_store_helper_falls_back_off_its_alignment():
    """A non-temporal vector store needs a 64-byte aligned address; elsewhere the helper
    uses an ordinary vector store (a misaligned one would fault)."""
    import pyopencl as cl
    from compiler.backends.opencl_printer import preamble
    src = preamble({"kiln_stream_f16"}, False) + """
    __kernel void put(__global float* out, const long at) {
        kiln_stream_f16((float16)(1.0f) + convert_float16((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8,
                        9, 10, 11, 12, 13, 14, 15)), out + at);
    }"""
    from runtime import opencl_build
    put = cl.Kernel(opencl_build.build(src, DEVICE, name="streaming store test"), "put")
    for at in (0, 1, 16, 21):
        host = np.zeros(64, np.float32)
        buf = cl.Buffer(DEVICE.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                        hostbuf=host)
        put(DEVICE.queue, (1,), (1,), buf, np.int64(at))
        cl.enqueue_copy(DEVICE.queue, host, buf)
        want = np.zeros(64, np.float32)
        want[at:at + 16] = np.arange(1, 17)
        np.testing.assert_array_equal(host, want)


@needs_device
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (5, 33), (37, 100), (9, 1031), (2, 70000)])
def test_row_reductions_of_awkward_sizes(shape):
    def f(x):
        return (F.layer_norm(F.softmax(x, dim=-1), (shape[-1],), eps=1e-5),
                x.max(dim=1)[0], x.argmax(1), x.sum(0), x.mean())
    x = torch.randn(*shape)
    for got, want in zip(compiled_result(f, x), f(x)):
        close(got, want, tol=1e-4)


@needs_device
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 2), (65, 33, 17), (100, 257, 31),
                                   (16, 64, 16), (130, 70, 129)])
def test_matmul_sizes_and_epilogue(m, k, n):
    def f(a, b, bias):
        return torch.relu(a @ b + bias), a.t().t() @ b
    a, b, bias = torch.randn(m, k), torch.randn(k, n), torch.randn(n)
    for got, want in zip(compiled_result(f, a, b, bias), f(a, b, bias)):
        close(got, want, tol=1e-4)


@needs_device
def test_batched_matmul_and_transposed_operands():
    def f(a, b, c):
        return torch.bmm(a, b), a.transpose(1, 2).transpose(1, 2) @ c.transpose(1, 2)
    a, b, c = torch.randn(3, 17, 9), torch.randn(3, 9, 21), torch.randn(3, 5, 9)
    for got, want in zip(compiled_result(f, a, b, c), f(a, b, c)):
        close(got, want, tol=1e-4)


@needs_device
@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (0,), (0, 4)])
def test_zero_dim_size_one_and_empty_tensors(shape):
    def f(x):
        return torch.exp(x) * 2 + 1, (x * x).sum(), torch.relu(x - 0.5)
    x = torch.randn(*shape) if shape else torch.tensor(0.75)
    for got, want in zip(compiled_result(f, x), f(x)):
        close(got, want)


@needs_device
def test_convolution_pooling_and_training_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.0), nn.Linear(3 * 4 * 4, 5))
    cm = torch.compile(model, backend="opencl")
    x, y = torch.randn(4, 2, 9, 9), torch.randint(0, 5, (4,))
    for _ in range(2):
        model.zero_grad()
        loss = F.cross_entropy(cm(x), y)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for g, p in zip(grads, model.parameters()):
        close(g, p.grad, tol=1e-4)


# -- int64 index ops and float64 ---------------------------------------------------------
@needs_device
def test_int64_index_ops_embedding_cross_entropy_argmax_indexing():
    torch.manual_seed(1)
    emb = nn.Embedding(11, 6, padding_idx=0)
    idx = torch.tensor([[1, 0, 10], [3, 3, 7]])
    target = torch.tensor([2, 5])

    def f(i, t):
        h = emb(i).sum(1)
        return F.cross_entropy(h, t), h.argmax(1), h[torch.arange(2), t % 6]
    cf = torch.compile(f, backend="opencl")
    cf(idx, target)
    emb.zero_grad()
    loss, am, g = cf(idx, target)
    loss.backward()
    got_grad = emb.weight.grad.clone()
    emb.zero_grad()
    loss_e, am_e, g_e = f(idx, target)
    loss_e.backward()
    close(loss, loss_e)
    assert am.dtype == torch.int64 and am.tolist() == am_e.tolist()
    close(g, g_e)
    close(got_grad, emb.weight.grad)


@needs_device
def test_float64_where_the_device_supports_it():
    if not DEVICE.fp64:
        pytest.skip("device without cl_khr_fp64 (the error case is tested separately)")

    def f(x, w):
        return torch.tanh(x @ w).sum(1) / 3
    x, w = torch.randn(5, 7).double(), torch.randn(7, 4).double()
    got = compiled_result(f, x, w)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), f(x, w).numpy(), rtol=1e-12, atol=1e-12)


@needs_device
def test_float64_on_a_device_without_fp64_names_the_op_and_dtype(monkeypatch):
    import dataclasses
    from compiler.backends import opencl
    real = opencl.target_for
    monkeypatch.setattr(opencl, "target_for", lambda dev: dataclasses.replace(real(dev), fp64=False))
    cf = torch.compile(lambda x: torch.exp(x) + 1, backend="opencl")
    x = torch.randn(4).double()
    with pytest.raises(opencl.OpenCLUnsupportedError, match=r"float64.*cl_khr_fp64") as info:
        cf(x)
    assert "exp" in str(info.value)
    close(compiled_result(lambda x: torch.exp(x) + 1, x.float()), torch.exp(x.float()) + 1)


# -- devices -----------------------------------------------------------------------------
def test_generated_vendor_directory_keeps_the_system_runtimes(monkeypatch, tmp_path):
    """Pointing OCL_ICD_VENDORS at Kiln's directory replaces the loader's default
    /etc/OpenCL/vendors, so that directory must name the system's runtimes (a GPU
    driver) next to Intel's CPU runtime, or installing the latter would hide the GPU."""
    from runtime import opencl_device as od
    system = tmp_path / "vendors"
    system.mkdir()
    (system / "nvidia.icd").write_text("libnvidia-opencl.so.1\n")
    (system / "empty.icd").write_text("")
    monkeypatch.setattr(od, "SYSTEM_VENDORS", str(system))
    monkeypatch.setattr(od, "_intel_runtime", lambda: str(tmp_path / "libintelocl.so"))
    monkeypatch.setattr(od, "INTEL_DEPENDENCIES", ())
    monkeypatch.setattr(od, "_registered", False)
    monkeypatch.delenv("OCL_ICD_VENDORS", raising=False)
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    directory = od.register_installed_icds()
    named = {f: open(os.path.join(directory, f)).read().strip() for f in os.listdir(directory)}
    assert named["system-nvidia.icd"] == "libnvidia-opencl.so.1"
    assert named["kiln-intel-cpu.icd"].endswith("libintelocl.so")
    assert "system-empty.icd" not in named
    assert os.environ["OCL_ICD_VENDORS"] == directory


@needs_device
def test_device_selection_by_index_and_name():
    code = """
        from runtime.opencl_device import device
        import frontend as torch
        d = device()
        f = torch.compile(lambda x: x * 2, backend="opencl")
        x = torch.ones(3); f(x)
        print(d.index, d.name, f(x).tolist())
    """
    by_index = run_python(code, {"KILN_OPENCL_DEVICE": str(DEVICE.index), "KILN_DEBUG": "1"})
    assert by_index.returncode == 0, by_index.stderr
    assert by_index.stdout.split()[0] == str(DEVICE.index)
    assert "[2.0, 2.0, 2.0]" in by_index.stdout
    assert f"selected by '{DEVICE.index}'" in by_index.stderr
    word = DEVICE.platform.split()[0].strip("()")
    by_name = run_python(code, {"KILN_OPENCL_DEVICE": word})
    assert by_name.returncode == 0, by_name.stderr
    bogus = run_python(code, {"KILN_OPENCL_DEVICE": "no-such-device-xyz"})
    assert bogus.returncode != 0
    assert "matches no OpenCL device" in bogus.stderr and DEVICE.name in bogus.stderr


def test_no_platform_is_a_clear_error_not_a_fallback(tmp_path):
    code = """
        import frontend as torch
        try:
            torch.compile(lambda x: x + 1, backend="opencl")
        except Exception as e:
            print(type(e).__name__, e)
        else:
            print("NO ERROR")
    """
    out = run_python(code, {"OCL_ICD_VENDORS": str(tmp_path / "no-vendors-here")})
    assert out.returncode == 0, out.stderr
    assert "OpenCLUnavailableError" in out.stdout
    assert "pip install intel-opencl-rt intel-cmplr-lib-rt" in out.stdout


# -- the program cache and build errors ----------------------------------------------------
CACHE_PROBE = """
    import json
    import numpy as np
    import frontend as torch
    from runtime import opencl_build
    cf = torch.compile(lambda x, w: torch.relu(x @ w).sum(1), backend="opencl")
    x, w = torch.ones(8, 5), torch.ones(5, 3)
    cf(x, w)
    ok = cf(x, w).tolist() == [15.0] * 8
    print(json.dumps(dict(opencl_build.stats, corrupt=opencl_build.disk_cache.corrupt, ok=ok)))
"""


@needs_device
def test_program_cache_reused_by_a_second_process_and_corruption_rebuilt(tmp_path):
    """The second process calls the function from another line: the kernels' comments
    name that line, but the cache key is the code alone, so it still loads every program
    from disk (it used to compile them all again)."""
    env = {"KILN_CACHE_DIR": str(tmp_path)}

    def probe(shift=0):
        out = run_python("\n" * shift + textwrap.dedent(CACHE_PROBE), env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])
    first = probe()
    assert first["ok"] and first["compiled"] >= 1 and first["from_disk"] == 0
    second = probe(shift=3)
    assert second["ok"] and second["compiled"] == 0 and second["from_disk"] == first["compiled"]
    entries = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs
               if f.endswith(".kobj")]
    assert len(entries) == first["compiled"]
    for path in entries:
        blob = bytearray(open(path, "rb").read())
        blob[len(blob) // 2] ^= 0xFF
        open(path, "wb").write(bytes(blob))
    third = probe()
    assert third["ok"] and third["corrupt"] == len(entries) and third["compiled"] == len(entries)
    fourth = probe()
    assert fourth["ok"] and fourth["compiled"] == 0


@needs_device
def test_a_kernel_that_fails_to_compile_carries_the_build_log():
    from runtime.opencl_build import OpenCLBuildError, build
    source = ("__kernel void broken(__global float* x)\n{\n"
              "    x[get_global_id(0)] = undefined_name + 1.0f;\n}\n")
    with pytest.raises(OpenCLBuildError) as info:
        build(source, DEVICE, name="broken")
    message = str(info.value)
    assert "broken" in message and "undefined_name" in message
    assert "3>" in message          # the numbered source line the log points at


@needs_device
def test_printer_bug_surfaces_as_build_error_naming_the_graph(monkeypatch):
    from compiler.backends import opencl_loops
    from runtime.opencl_build import OpenCLBuildError
    real = opencl_loops.emit_store
    monkeypatch.setattr(opencl_loops, "emit_store",
                        lambda p, s: (real(p, s), p.out.emit("this is not C;")))
    cf = torch.compile(lambda x: x * 3 + 1, backend="opencl")
    with pytest.raises(OpenCLBuildError, match="failed to compile") as info:
        cf(torch.randn(5))
    assert "this is not C" in str(info.value)


# -- debugging -----------------------------------------------------------------------------
@needs_device
def test_debug_level_4_prints_the_opencl_c(monkeypatch, capsys):
    monkeypatch.setenv("KILN_DEBUG", "4")
    compiled_result(lambda x: torch.sigmoid(x) * 2, torch.randn(6))
    err = capsys.readouterr().err
    assert "__kernel void" in err and "sigmoid" in err


@needs_device
def test_debug_level_2_times_each_kernel(monkeypatch, capsys):
    cf = torch.compile(lambda x: (x.exp() * 2).sum(), backend="opencl")
    x = torch.randn(50)
    cf(x)
    monkeypatch.setenv("KILN_DEBUG", "2")
    cf(x)
    assert "GB/s" in capsys.readouterr().err


@needs_device
def test_intermediates_stay_in_the_device_arena():
    cf = torch.compile(lambda x: torch.exp(x).sum(1) * 2, backend="opencl", fuse=False)
    x = torch.randn(30, 40)
    cf(x)
    exe = next(e for e in cf._cache.values() if not isinstance(e, str)).forward
    program = exe.executor.program
    assert len(program.steps) >= 3 and program.arena     # the exp and sum results live there
    assert all(type(s).__name__ == "CLLaunch" for s in program.steps)


@needs_device
def test_opencl_kernels_compared_with_llvm_kernels_one_by_one(monkeypatch):
    from compiler.check import KernelMismatch
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    cm = torch.compile(model, backend="opencl", check="llvm")
    x = torch.randn(5, 6)
    cm(x)
    close(cm(x), model(x))                               # kernels agree: the call passes
    entry = next(e for e in cm._compiled._cache.values() if not isinstance(e, str))
    exe = entry.forward
    kernel = next(k for k in exe.kernels if any(exe.graph.nodes[n]["op"] == "tanh"
                                                 for n in k.nodes))
    original = exe.run

    def miscompiled(inputs, capture=False):
        outputs, produced = original(inputs, capture=True)
        produced[kernel.outputs[0]] = produced[kernel.outputs[0]] + 1
        return (outputs, produced) if capture else outputs
    monkeypatch.setattr(exe, "run", miscompiled)
    with pytest.raises(KernelMismatch) as info:
        cm(x)
    message = str(info.value)
    assert kernel.name in message and "llvm" in message and "tanh" in message


@needs_device
def test_gpu_shaped_kernels_run_correctly_here(monkeypatch):
    """KILN_OPENCL_STYLE=gpu prints what a GPU gets (256-wide groups, halving-tree
    reductions, int index arithmetic, padded matmul tiles): checked on this device."""
    monkeypatch.setenv("KILN_OPENCL_STYLE", "gpu")

    def f(x, w):
        h = torch.relu(x @ w)
        return F.log_softmax(h, dim=1), h.argmax(1), h.sum(0), F.layer_norm(h, (w.shape[1],))
    x, w = torch.randn(37, 300), torch.randn(300, 513)
    cf = torch.compile(f, backend="opencl")
    cf(x, w)
    kinds = [k.extra["kind"] for e in cf._cache.values() if not isinstance(e, str)
             for k in e.forward.kernels]
    assert any("group of 256" in kind for kind in kinds)
    for got, want in zip(cf(x, w), f(x, w)):
        close(got, want, tol=1e-4)


# -- skinny products: few rows, split K ----------------------------------------------------
def _matmul_kinds(cf):
    return [k.extra["kind"] for e in cf._cache.values() if not isinstance(e, str)
            for k in e.forward.kernels if "matmul" in k.extra.get("kind", "")]


def _skinny_case(m, k, n, dtype, batch, epilogue):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    lead = (batch,) if batch else ()
    a = rng.standard_normal(lead + (m, k)).astype(dtype)
    b = rng.standard_normal(lead + (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)

    def f(a, b, bias):
        y = a @ b
        return torch.relu(y + bias) if epilogue else y
    ta, tb, tbias = (torch.from_numpy(v) for v in (a, b, bias))
    cf = torch.compile(f, backend="opencl")
    cf(ta, tb, tbias)
    first, second = cf(ta, tb, tbias).numpy(), cf(ta, tb, tbias).numpy()
    want = a.astype(np.float64) @ b.astype(np.float64)
    if epilogue:
        want = np.maximum(want + bias, 0)
    # K terms of size ~1 each: error grows like sqrt(K) ulps
    tol = (3e-6 if dtype == np.float32 else 1e-13) * np.sqrt(k) * 4
    np.testing.assert_allclose(first, want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(first, second)        # fixed reduction order
    return _matmul_kinds(cf)


SKINNY = [(6, 25, 50176), (1, 9, 4099), (16, 150, 6400),      # few rows, wide N
          (6, 50176, 25), (16, 6400, 150), (3, 20000, 1),      # few rows/columns, long K
          (40, 30000, 7)]                                      # more rows, long K


@needs_device
@pytest.mark.parametrize("m,k,n", SKINNY, ids=[f"{m}x{k}x{n}" for m, k, n in SKINNY])
@pytest.mark.parametrize("epilogue", [False, True], ids=["plain", "bias_relu"])
def test_skinny_matmuls_float32(m, k, n, epilogue):
    from compiler.backends.opencl import target_for
    kinds = _skinny_case(m, k, n, np.float32, 0, epilogue)
    if target_for(DEVICE).explicit_vectors:
        return        # PoCL: opencl_matmul_vec's forms (see test_explicit_vector_matmul_forms)
    if m <= 16:       # a few-rows product keeps all its rows in one work-item: no M padding
        assert any(f"{m}x1 work-items" in kind or f"matmul tile {m}x" in kind for kind in kinds)
    if k >= 9000 and 2 * m * n * k >= 4_000_000:   # too few output tiles: K is split
        assert any("pieces" in kind for kind in kinds), kinds


@needs_device
@pytest.mark.parametrize("m,k,n", [(6, 3000, 25), (5, 9, 3001)])
@pytest.mark.parametrize("epilogue", [False, True], ids=["plain", "bias_relu"])
def test_skinny_matmuls_batched(m, k, n, epilogue):
    _skinny_case(m, k, n, np.float32, 3, epilogue)


@needs_device
@pytest.mark.skipif(DEVICE is None or not DEVICE.fp64, reason="device lacks cl_khr_fp64")
@pytest.mark.parametrize("m,k,n", [(6, 25, 5000), (6, 40000, 25), (20, 30000, 3)])
@pytest.mark.parametrize("epilogue", [False, True], ids=["plain", "bias_relu"])
def test_skinny_matmuls_float64(m, k, n, epilogue):
    _skinny_case(m, k, n, np.float64, 0, epilogue)


@needs_device
def test_split_k_choice_depends_on_the_shape_only():
    from compiler.backends.opencl import target_for
    from compiler.backends.opencl_matmul import split_k
    t = target_for(DEVICE)
    assert split_k(1, 50176, 32, 15_000_000, t)[0] > 1        # a weight gradient splits
    assert split_k(10_000, 1024, 32, 2 * 1024 ** 3, t)[0] == 1  # many tiles: never
    assert split_k(1, 64, 32, 1000, t)[0] == 1                # too small to be worth it
    pieces, per = split_k(1, 50176, 32, 15_000_000, t)
    assert per % 32 == 0 and (pieces - 1) * per < 50176 <= pieces * per


@needs_device
def test_skinny_and_split_k_kernels_gpu_shaped(monkeypatch):
    """The GPU-shaped printing of the few-rows and split-K kernels (bigger groups,
    padded local arrays, int index arithmetic) runs correctly here too."""
    monkeypatch.setenv("KILN_OPENCL_STYLE", "gpu")
    for m, k, n in [(6, 25, 50176), (6, 50176, 25), (16, 6400, 150)]:
        for epilogue in (False, True):
            _skinny_case(m, k, n, np.float32, 0, epilogue)


@needs_device
def test_lenet_convolution_gradients_match_eager_and_repeat_exactly():
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)

    def f(x):
        return F.relu(conv2(F.max_pool2d(F.relu(conv1(x)), 2))).sum()
    x = torch.randn(64, 1, 32, 32)
    cf = torch.compile(f, backend="opencl")
    grads = []
    for _ in range(3):
        for p in (conv1.weight, conv2.weight, conv1.bias, conv2.bias):
            p.grad = None
        cf(x).backward()
        grads.append([p.grad.numpy().copy() for p in (conv1.weight, conv2.weight)])
    for p in (conv1.weight, conv2.weight):
        p.grad = None
    f(x).backward()
    for got, want in zip(grads[-1], (conv1.weight.grad, conv2.weight.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=2e-4, atol=2e-3)
    for g1, g2 in zip(grads[1], grads[2]):
        np.testing.assert_array_equal(g1, g2)


@needs_device
def test_output_buffers_are_reused_only_once_nothing_holds_them():
    """An output's host array (and its wrapped buffer) is reused by the next call only
    when the caller has let go of it and of every view of it: a NumPy view keeps the
    memory's owner alive, not the array handed out, so both are checked."""
    from compiler import dtypes as dt
    from compiler.backends.registry import compile_graph
    from compiler.ir import Graph
    g = Graph("twice")
    x = g.add_input("x", (4, 64), dt.float32)
    g.set_outputs([g.add_op("mul", [x, g.add_const(np.asarray(2.0, np.float32))], {})])
    exe = compile_graph(g, backend="opencl")
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((4, 64)).astype(np.float32) for _ in range(2))
    kept = exe.run([x1])[0][1:]           # only a view of the first result survives
    for _ in range(3):
        exe.run([x2])                     # results dropped at once: these reuse buffers
    np.testing.assert_allclose(kept, x1[1:] * 2.0)
    whole = exe.run([x1])[0]
    again = exe.run([x2])[0]
    np.testing.assert_allclose(whole, x1 * 2.0)
    np.testing.assert_allclose(again, x2 * 2.0)


@needs_device
def test_output_pool_serves_many_live_results_and_reuses_released_ones():
    """A recurrent model holds one result per step until its backward pass: each output
    slot pools the arrays it handed out, and every one that is free again is reused
    (with its wrapped buffer, and the kernel arguments are rebound to it). Results still
    held are never written; the unmapping of the last call's outputs, deferred to the
    next call, leaves them readable."""
    from compiler import dtypes as dt
    from compiler.backends.registry import compile_graph
    from compiler.ir import Graph
    from runtime.opencl_executor import POOL_ENTRIES
    g = Graph("steps")
    x = g.add_input("x", (8, 32), dt.float32)
    g.set_outputs([g.add_op("add", [x, g.add_const(np.asarray(1.0, np.float32))], {})])
    exe = compile_graph(g, backend="opencl")
    inputs = [np.full((8, 32), float(k), np.float32) for k in range(12)]
    held = [exe.run([v])[0] for v in inputs]                   # all alive at once
    for k, out in enumerate(held):
        np.testing.assert_array_equal(out, k + 1.0)
    addresses = {out.ctypes.data for out in held}
    assert len(addresses) == len(held)
    del held, out
    executor = exe.executor
    made = []
    real_output_array = executor._output_array
    executor._output_array = lambda slot: (made.append(slot), real_output_array(slot))[1]
    again = [exe.run([v])[0] for v in inputs[:5]]              # served from the pool
    assert {a.ctypes.data for a in again} <= addresses
    assert not made, "an output array was allocated although the pool had free ones"
    for k, out in enumerate(again):
        np.testing.assert_array_equal(out, k + 1.0)
    many = [exe.run([inputs[0]])[0] for _ in range(POOL_ENTRIES + 3)]   # past the cap
    assert all((m == 1.0).all() for m in many)


@needs_device
def test_system_svm_passes_host_arrays_without_buffer_objects(monkeypatch):
    """With fine-grain system SVM the kernels read and write the host arrays themselves:
    no buffer object per call, any alignment (a view one element in), read-only arrays,
    and ``read`` (the check mode's) sees the kernels' writes."""
    import pyopencl as cl
    from compiler import dtypes as dt
    from compiler.backends.registry import compile_graph
    from compiler.ir import Graph
    if not DEVICE.system_svm:
        pytest.skip("the device has no fine-grain system SVM")
    g = Graph("svm")
    x = g.add_input("x", (1000,), dt.float32)
    y = g.add_op("exp", [x], {})
    g.set_outputs([g.add_op("mul", [y, x], {}), y])
    exe = compile_graph(g, backend="opencl")
    assert exe.executor.svm
    created = []
    real = cl.Buffer
    monkeypatch.setattr(cl, "Buffer", lambda *a, **k: (created.append(a), real(*a, **k))[1])
    base = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    view = base[1:]                                  # 4 bytes past an allocation's start
    for _ in range(3):
        prod, e = exe.run([view])
        np.testing.assert_allclose(e, np.exp(view), rtol=1e-6)
        np.testing.assert_allclose(prod, np.exp(view) * view, rtol=1e-6)
    assert not created
    frozen = np.exp(view)                            # a read-only input is passed as well
    frozen.flags.writeable = False
    np.testing.assert_allclose(exe.run([frozen])[1], np.exp(frozen), rtol=1e-6)
    _, produced = exe.executor.run([view], capture=True)
    assert any(np.allclose(v, np.exp(view) * view, rtol=1e-6) for v in produced.values())


# -- explicit-vector matmuls (CPU runtimes other than Intel's: PoCL) ------------------------
VECTOR_CASES = [  # (a shape, b shape, transpose b, form)
    ((37, 50), (50, 64), False, "rows"),          # M not a multiple of the 8-row tile
    ((5, 64, 33), (5, 33, 48), False, "rows"),    # batched, 48 columns: one vector per item
    ((1024, 1024), (1024, 1024), False, "rows"),
    ((19, 100), (30, 100), True, "dots"),         # x @ W.T: K % 16 = 4, N % 4 = 2
    ((128, 784), (512, 784), True, "dots"),       # the MLP's first Linear
    ((9, 20), (20, 7), False, "staged"),          # 7 columns: neither form applies
    ((6, 60000), (60000, 7), False, "staged"),    # one output tile: K split over groups
]


@needs_device
@pytest.mark.parametrize("a_shape,b_shape,bt,form", VECTOR_CASES,
                         ids=[f"{c[3]}-{'x'.join(map(str, c[0]))}" for c in VECTOR_CASES])
@pytest.mark.parametrize("epilogue", [False, True], ids=["plain", "bias_relu"])
def test_explicit_vector_matmul_forms(monkeypatch, a_shape, b_shape, bt, form, epilogue):
    """KILN_OPENCL_STYLE=vector prints what PoCL gets (9 -> ~130 GFLOP/s for W5 there):
    float16 register tiles per work-item, in the form the operands allow."""
    monkeypatch.setenv("KILN_OPENCL_STYLE", "vector")
    rng = np.random.default_rng(len(a_shape) * 100 + a_shape[-1])
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    n = b_shape[-2] if bt else b_shape[-1]
    bias = rng.standard_normal(n).astype(np.float32)

    def f(a, b, bias):
        y = a @ (b.transpose(-1, -2) if bt else b)
        return torch.relu(y + bias) if epilogue else y
    args = [torch.from_numpy(v) for v in (a, b, bias)]
    cf = torch.compile(f, backend="opencl")
    cf(*args)
    got = cf(*args).numpy()
    want = a.astype(np.float64) @ (np.swapaxes(b, -1, -2) if bt else b).astype(np.float64)
    if epilogue:
        want = np.maximum(want + bias, 0)
    k = a_shape[-1]
    tol = 3e-6 * np.sqrt(k) * 4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    (kind,) = _matmul_kinds(cf)
    assert kind.startswith(f"matmul {form}:"), kind
    assert ("pieces" in kind) == (k >= 9000), kind
    np.testing.assert_array_equal(cf(*args).numpy(), got)     # fixed reduction order


@needs_device
def test_explicit_vector_style_trains_an_mlp_and_a_convnet_like_eager(monkeypatch):
    """Forward and every gradient of a Linear stack (rows and dots forms) and a small
    convnet (staged form for its unfold windows) under the vector style."""
    monkeypatch.setenv("KILN_OPENCL_STYLE", "vector")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 33),
                          nn.Tanh(), nn.Linear(33, 16))
    x = torch.randn(5, 2, 8, 8)
    cm = torch.compile(model, backend="opencl")
    cm(x)
    out = cm(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    want = model(x)
    want.sum().backward()
    close(out, want, 1e-4)
    for g, p in zip(grads, model.parameters()):
        close(g, p.grad, 1e-4)
    entry = next(e for e in cm._compiled._cache.values() if not isinstance(e, str))
    forms = {k.extra["kind"].split(":")[0] for ex in (entry.forward, entry.backward)
             for k in ex.kernels if k.extra.get("kind", "").startswith("matmul")}
    assert {"matmul rows", "matmul dots", "matmul staged"} <= forms, forms


@needs_device
@pytest.mark.parametrize("style", ["vector", "cpu"])
@pytest.mark.parametrize("rows,cols", [(37, 48), (37, 1024), (5, 1024)])
def test_explicit_vector_row_kernels(monkeypatch, style, rows, cols):
    """On CPU runtimes, row reductions whose rows are multiples of 16 run 16 elements
    per work-item as float16, a whole row per work-item when there are enough rows
    (``opencl_rows_vec.ONE_ITEM_ROWS``), else a group per row: softmax then LayerNorm,
    row max/min/sum with a NaN in one row, and their gradients."""
    from compiler.backends import opencl_rows_vec
    monkeypatch.setenv("KILN_OPENCL_STYLE", style)
    torch.manual_seed(0)
    x = torch.randn(rows, cols, requires_grad=True)

    def f(x):
        y = F.layer_norm(F.softmax(x, dim=-1), (cols,), eps=1e-5)
        return y, x.amax(-1), x.amin(-1), x.sum(-1)
    cf = torch.compile(f, backend="opencl")
    cf(x)
    got = cf(x)
    want = f(x)
    for g, w in zip(got, want):
        close(g, w, 1e-5)
    (got[0] * got[0]).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    (want[0] * want[0]).sum().backward()
    close(gx, x.grad, 1e-4)
    kinds = [k.extra["kind"] for e in cf._cache.values() if not isinstance(e, str)
             for k in e.forward.kernels]
    assert any("per row" in k and "float16" in k for k in kinds), kinds
    one_item = rows >= opencl_rows_vec.ONE_ITEM_ROWS * 2 * DEVICE.compute_units
    assert all(("one work-item per row" in k) == one_item for k in kinds if "float16" in k)
    nan = x.detach().clone()
    nan.numpy()[3, 5] = float("nan")
    for g, w in zip(cf(nan)[1:], f(nan)[1:]):
        assert np.array_equal(np.isnan(g.numpy()), np.isnan(w.detach().numpy()))
        np.testing.assert_allclose(g.numpy(), w.detach().numpy(), rtol=1e-5, atol=1e-5,
                                   equal_nan=True)
