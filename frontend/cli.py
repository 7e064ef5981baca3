"""The ``kiln`` command: ``kiln bench [options]`` (see ``kiln bench --help``)."""
from __future__ import annotations

import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kiln bench [options]\n\ncommands:\n  bench   compare eager, compiled "
              "unfused, compiled fused and PyTorch on the standard workloads")
        return 0
    if argv[0] == "bench":
        from .bench.runner import main as bench
        return bench(argv[1:])
    print(f"kiln: unknown command {argv[0]!r}; try 'kiln bench --help'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
