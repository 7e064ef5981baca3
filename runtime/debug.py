"""``KILN_DEBUG=N``: one place that reads the level and prints debug lines to stderr.

1 = each compile and each cache miss with its reason; 2 = one line per kernel run with
time, GB/s and GFLOP/s; 3 = fusion groups and refused fusions with reasons; 4 = the
generated code (LLVM IR / OpenCL C); 5 = the traced and the optimised graphs.
"""
from __future__ import annotations

import os
import sys


def level() -> int:
    raw = os.environ.get("KILN_DEBUG", "0") or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"KILN_DEBUG must be an integer from 0 to 5, got {raw!r}") from None


def log(at_level: int, message: str) -> None:
    if level() >= at_level:
        print(f"[kiln] {message}", file=sys.stderr, flush=True)
