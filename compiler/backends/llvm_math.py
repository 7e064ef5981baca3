"""Vectorisable float32 math for generated kernels, as LLVM IR helper functions.

LLVM's ``llvm.exp.f32`` and friends become scalar ``expf`` calls that block the loop
vectoriser, so kernels call these ``internal alwaysinline`` helpers instead: the classic
Cephes range reduction + polynomial forms, written with plain IR instructions that the
vectoriser turns into AVX-512 code. Accuracy is a few ulp (checked against NumPy in
tests/test_codegen_math.py), well inside float32 test tolerances. float64 uses libm.
"""
from __future__ import annotations

import re
import struct


def f32(v: float) -> str:
    """An LLVM float literal (LLVM spells floats as the hex of the equal double)."""
    import numpy as np
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(np.float32(v))))[0]


def f64(v: float) -> str:
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def _poly(lines, x, coeffs, name):
    """Horner: c0*x^(n-1) + ... + c_{n-1}, using fmuladd (fused where profitable)."""
    acc = f32(coeffs[0])
    for i, c in enumerate(coeffs[1:]):
        lines.append(f"  %{name}{i} = call float @llvm.fmuladd.f32(float {acc}, float {x}, "
                     f"float {f32(c)})")
        acc = f"%{name}{i}"
    return acc


def _exp():
    L = ["define internal float @kiln_exp_f32(float %x) alwaysinline nounwind memory(none) {",
         f"  %c0 = call float @llvm.maxnum.f32(float %x, float {f32(-87.33654)})",
         f"  %c = call float @llvm.minnum.f32(float %c0, float {f32(88.3762626647949)})",
         f"  %t = fmul float %c, {f32(1.44269504088896341)}",
         "  %k = call float @llvm.rint.f32(float %t)",
         f"  %r0 = call float @llvm.fmuladd.f32(float %k, float {f32(-0.693359375)}, float %c)",
         f"  %r = call float @llvm.fmuladd.f32(float %k, float {f32(2.12194440e-4)}, float %r0)"]
    p = _poly(L, "%r", [1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2,
                        1.6666665459E-1, 5.0000001201E-1], "p")
    L += ["  %rr = fmul float %r, %r",
          f"  %q0 = call float @llvm.fmuladd.f32(float {p}, float %rr, float %r)",
          f"  %q = fadd float %q0, {f32(1.0)}",
          "  %ki = fptosi float %k to i32",
          "  %kb = add i32 %ki, 127",
          "  %ks = shl i32 %kb, 23",
          "  %scale = bitcast i32 %ks to float",
          "  %y = fmul float %q, %scale",
          f"  %big = fcmp ogt float %x, {f32(88.72283)}",
          "  %y1 = select i1 %big, float 0x7FF0000000000000, float %y",
          f"  %small = fcmp olt float %x, {f32(-103.97208)}",
          "  %y2 = select i1 %small, float 0.0, float %y1",
          "  %nan = fcmp uno float %x, 0.0",
          "  %y3 = select i1 %nan, float %x, float %y2",
          "  ret float %y3", "}"]
    return L


def _log():
    L = ["define internal float @kiln_log_f32(float %x0) alwaysinline nounwind memory(none) {",
         # scale denormals up so the exponent field is meaningful
         f"  %den = fcmp olt float %x0, {f32(1.17549435e-38)}",
         f"  %xs = fmul float %x0, {f32(8388608.0)}",
         "  %x = select i1 %den, float %xs, float %x0",
         "  %eadj = select i1 %den, i32 -23, i32 0",
         "  %bits = bitcast float %x to i32",
         "  %ex = lshr i32 %bits, 23",
         "  %ex8 = and i32 %ex, 255",
         "  %e0 = sub i32 %ex8, 126",
         "  %e1 = add i32 %e0, %eadj",
         "  %mb = and i32 %bits, -2139095041",       # 0x807fffff
         "  %mb2 = or i32 %mb, 1056964608",           # 0x3f000000: mantissa in [0.5, 1)
         "  %m0 = bitcast i32 %mb2 to float",
         f"  %lt = fcmp olt float %m0, {f32(0.707106781186547524)}",
         "  %e2 = sub i32 %e1, 1",
         "  %e = select i1 %lt, i32 %e2, i32 %e1",
         "  %m2 = fadd float %m0, %m0",
         "  %mm = select i1 %lt, float %m2, float %m0",
         f"  %m = fsub float %mm, {f32(1.0)}",
         "  %z = fmul float %m, %m"]
    p = _poly(L, "%m", [7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                        1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1,
                        3.3333331174E-1], "p")
    L += [f"  %y0 = fmul float {p}, %m",
          "  %y1 = fmul float %y0, %z",
          "  %ef = sitofp i32 %e to float",
          f"  %y2 = call float @llvm.fmuladd.f32(float %ef, float {f32(-2.12194440e-4)}, float %y1)",
          f"  %y3 = call float @llvm.fmuladd.f32(float %z, float {f32(-0.5)}, float %y2)",
          "  %y4 = fadd float %m, %y3",
          f"  %y5 = call float @llvm.fmuladd.f32(float %ef, float {f32(0.693359375)}, float %y4)",
          "  %zero = fcmp oeq float %x0, 0.0",
          "  %r1 = select i1 %zero, float 0xFFF0000000000000, float %y5",
          "  %neg = fcmp olt float %x0, 0.0",
          "  %r2 = select i1 %neg, float 0x7FF8000000000000, float %r1",
          "  %inf = fcmp oeq float %x0, 0x7FF0000000000000",
          "  %r3 = select i1 %inf, float %x0, float %r2",
          "  %nan = fcmp uno float %x0, 0.0",
          "  %r4 = select i1 %nan, float %x0, float %r3",
          "  ret float %r4", "}"]
    return L


def _tanh():
    L = ["define internal float @kiln_tanh_f32(float %x) alwaysinline nounwind memory(none) {",
         "  %a = call float @llvm.fabs.f32(float %x)",
         "  %a2 = fadd float %a, %a",
         "  %e = call float @kiln_exp_f32(float %a2)",
         f"  %e1 = fadd float %e, {f32(1.0)}",
         f"  %q = fdiv float {f32(2.0)}, %e1",
         f"  %big = fsub float {f32(1.0)}, %q",
         "  %bigs = call float @llvm.copysign.f32(float %big, float %x)",
         "  %z = fmul float %x, %x"]
    p = _poly(L, "%z", [-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
                        1.33314422036E-1, -3.33332819422E-1], "p")
    L += [f"  %s0 = fmul float {p}, %z",
          "  %small = call float @llvm.fmuladd.f32(float %s0, float %x, float %x)",
          f"  %use = fcmp olt float %a, {f32(0.625)}",
          "  %r = select i1 %use, float %small, float %bigs",
          "  %nan = fcmp uno float %x, 0.0",
          "  %r2 = select i1 %nan, float %x, float %r",
          "  ret float %r2", "}"]
    return L


def _sigmoid():
    return ["define internal float @kiln_sigmoid_f32(float %x) alwaysinline nounwind memory(none) {",
            "  %n = fneg float %x",
            "  %e = call float @kiln_exp_f32(float %n)",
            f"  %d = fadd float %e, {f32(1.0)}",
            f"  %r = fdiv float {f32(1.0)}, %d",
            "  ret float %r", "}"]


def _log1p():
    # log1p(x) = log(u) * x / (u - 1) with u = 1 + x (Goldberg), exact where u == 1
    return ["define internal float @kiln_log1p_f32(float %x) alwaysinline nounwind memory(none) {",
            f"  %u = fadd float %x, {f32(1.0)}",
            "  %l = call float @kiln_log_f32(float %u)",
            f"  %d = fsub float %u, {f32(1.0)}",
            "  %q = fdiv float %x, %d",
            "  %r = fmul float %l, %q",
            f"  %one = fcmp oeq float %u, {f32(1.0)}",
            "  %r1 = select i1 %one, float %x, float %r",
            "  %inf = fcmp oeq float %u, 0x7FF0000000000000",
            "  %r2 = select i1 %inf, float %u, float %r1",
            "  ret float %r2", "}"]


def _erf():
    """|x| <= 0.5: odd Taylor series; else 1 - erfc with Numerical Recipes' erfc
    (relative error < 1.2e-7)."""
    L = ["define internal float @kiln_erf_f32(float %x) alwaysinline nounwind memory(none) {",
         "  %a = call float @llvm.fabs.f32(float %x)",
         "  %z = fmul float %x, %x"]
    c = 1.1283791670955126
    taylor = [c / 9360, -c / 1320, c / 216, -c / 42, c / 10, -c / 3, c]
    p = _poly(L, "%z", taylor, "t")
    L += [f"  %small = fmul float {p}, %x",
          f"  %h = call float @llvm.fmuladd.f32(float %a, float {f32(0.5)}, float {f32(1.0)})",
          f"  %t = fdiv float {f32(1.0)}, %h"]
    q = _poly(L, "%t", [0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
                        -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223], "q")
    L += ["  %nz = fneg float %z",
          f"  %arg = fadd float %nz, {q}",
          "  %ex = call float @kiln_exp_f32(float %arg)",
          "  %erfc = fmul float %t, %ex",
          f"  %big = fsub float {f32(1.0)}, %erfc",
          "  %bigs = call float @llvm.copysign.f32(float %big, float %x)",
          f"  %use = fcmp ole float %a, {f32(0.5)}",
          "  %r = select i1 %use, float %small, float %bigs",
          "  %nan = fcmp uno float %x, 0.0",
          "  %r2 = select i1 %nan, float %x, float %r",
          "  ret float %r2", "}"]
    return L


def _ipow(ty):
    return [f"define internal {ty} @kiln_ipow_{ty}({ty} %b, {ty} %e) nounwind memory(none) {{",
            "entry:",
            f"  %neg = icmp slt {ty} %e, 0",
            "  br i1 %neg, label %done0, label %loop",
            "loop:",
            f"  %r = phi {ty} [1, %entry], [%r2, %step]",
            f"  %bb = phi {ty} [%b, %entry], [%b2, %step]",
            f"  %ee = phi {ty} [%e, %entry], [%e2, %step]",
            f"  %more = icmp sgt {ty} %ee, 0",
            "  br i1 %more, label %step, label %done",
            "step:",
            f"  %bit = and {ty} %ee, 1",
            f"  %odd = icmp ne {ty} %bit, 0",
            f"  %rm = mul {ty} %r, %bb",
            f"  %r2 = select i1 %odd, {ty} %rm, {ty} %r",
            f"  %b2 = mul {ty} %bb, %bb",
            f"  %e2 = ashr {ty} %ee, 1",
            "  br label %loop",
            "done:",
            f"  ret {ty} %r",
            "done0:",
            f"  ret {ty} 0", "}"]


def _check_index():
    """``expr.checked_index``: wrap a negative index, report one out of range in the
    error record (flag, value, size) and read element 0 instead. The report is a branch
    that is never taken on good input."""
    return ["define internal i64 @kiln_check_index(i64 %i, i64 %n, ptr %rec) alwaysinline nounwind {",
            "entry:",
            "  %neg = icmp slt i64 %i, 0",
            "  %wrapped = add i64 %i, %n",
            "  %w = select i1 %neg, i64 %wrapped, i64 %i",
            "  %bad = icmp uge i64 %w, %n",
            "  br i1 %bad, label %report, label %ok, !prof !{!\"branch_weights\", i32 1, i32 100000}",
            "report:",
            "  store i64 1, ptr %rec, align 8",
            "  %pv = getelementptr i64, ptr %rec, i64 1",
            "  store i64 %i, ptr %pv, align 8",
            "  %pn = getelementptr i64, ptr %rec, i64 2",
            "  store i64 %n, ptr %pn, align 8",
            "  ret i64 0",
            "ok:",
            "  ret i64 %w",
            "}"]


HELPERS = {
    "kiln_exp_f32": (_exp, ()),
    "kiln_log_f32": (_log, ()),
    "kiln_tanh_f32": (_tanh, ("kiln_exp_f32",)),
    "kiln_sigmoid_f32": (_sigmoid, ("kiln_exp_f32",)),
    "kiln_log1p_f32": (_log1p, ("kiln_log_f32",)),
    "kiln_erf_f32": (_erf, ("kiln_exp_f32",)),
    "kiln_ipow_i64": (lambda: _ipow("i64"), ()),
    "kiln_ipow_i32": (lambda: _ipow("i32"), ()),
    "kiln_check_index": (_check_index, ()),
}

INTRINSICS = """declare float @llvm.fmuladd.f32(float, float, float)
declare float @llvm.maxnum.f32(float, float)
declare float @llvm.minnum.f32(float, float)
declare float @llvm.rint.f32(float)
declare float @llvm.fabs.f32(float)
declare float @llvm.copysign.f32(float, float)"""


# -- the same helpers on vectors -----------------------------------------------------
VECTOR_LANES = 16
_VECTOR = f"_v{VECTOR_LANES}f32"          # kiln_exp_f32 -> kiln_exp_v16f32
_TYPES = r"(?:float|i32|i1)"
_CONSTANT = r"(?:0x[0-9A-F]+|-?\d+(?:\.\d+)?)"
_BINARY = re.compile(rf"^(\s*%\w+ = (?:[fi]cmp \w+|\w+)) ({_TYPES}) (\S+), (\S+)$")


def widen(lines, lanes=VECTOR_LANES):
    """A float32 helper's IR, computing ``lanes`` points at once: every ``float``, ``i32``
    and ``i1`` value becomes a vector, constants become splats, and calls go to the
    vector forms of intrinsics and helpers. (The helpers use a handful of instruction
    shapes: binary operators and comparisons, whose operands share one type, and
    instructions whose every operand is typed.) The vector helpers are thus the scalar
    ones, not a second copy of the math to keep in step."""
    def splat(ty, operand):      # (the mark keeps the splat's scalar type from widening)
        return f"splat (\x00{ty} {operand})" if re.fullmatch(_CONSTANT, operand) else operand

    out = []
    for line in lines:
        m = _BINARY.match(line)
        if m:
            head, ty, a, b = m.groups()
            line = f"{head} {ty} {splat(ty, a)}, {splat(ty, b)}"
        else:
            line = re.sub(rf"(?<![%@.\w])({_TYPES}) ({_CONSTANT})\b(?!\.)",
                          lambda c: f"{c[1]} {splat(c[1], c[2])}", line)
        line = re.sub(rf"(?<![\x00%@.\w])({_TYPES})\b", rf"<{lanes} x \1>", line)
        line = re.sub(r"@(llvm\.\w+)\.f32\b", rf"@\1.v{lanes}f32", line)
        line = re.sub(r"@(kiln_\w+)_f32\b", rf"@\1_v{lanes}f32", line)
        out.append(line.replace("\x00", ""))
    return out


def _definition(name):
    """``(lines, callees)`` of helper ``name``, scalar or widened."""
    if name.endswith(_VECTOR):
        make, callees = HELPERS[name[:-len(_VECTOR)] + "_f32"]
        return widen(make()), tuple(c[:-4] + _VECTOR for c in callees)
    make, callees = HELPERS[name]
    return make(), callees


def helper_source(used) -> str:
    """Definitions of the helpers in ``used`` and those they call, in a stable order."""
    need, stack = {}, list(used)
    while stack:
        name = stack.pop()
        if name not in need:
            need[name] = _definition(name)
            stack.extend(need[name][1])
    out = []
    for name in sorted(need):            # a deterministic text
        out += need[name][0]
        out.append("")
    return "\n".join(out)


def intrinsic_declarations(used) -> str:
    """The declarations the helpers in ``used`` need (the vector forms too if any helper
    is a vector one)."""
    if any(name.endswith(_VECTOR) for name in used):
        return INTRINSICS + "\n" + "\n".join(widen(INTRINSICS.splitlines()))
    return INTRINSICS
