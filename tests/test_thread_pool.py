"""The runtime's worker pool: posts, cancellations and waking a worker that slept.

Workers live in one native call (spinning a while for the next post, then sleeping on a
semaphore), so these check the hand-shake through a real compiled graph: every call
returns the right values, and a worker that went to sleep (a pause longer than its spin)
is woken by the next post and takes part (its state word says "done", not "cancelled")."""
from __future__ import annotations

import threading
import time

import numpy as np

from compiler import dtypes as dt
from compiler.backends.registry import compile_graph
from compiler.ir import Graph
from runtime.thread_pool import WORKER_SPIN_CYCLES, pool
from runtime.threads import get_num_threads, set_num_threads


def _graph(n):
    g = Graph("pool")
    x = g.add_input("x", (n,), dt.float32)
    g.set_outputs([g.add_op("exp", [g.add_op("sin", [x], {})], {})])
    return g


def test_posts_run_once_and_sleeping_workers_wake():
    n = 1 << 21                              # enough work that a woken worker joins in
    exe = compile_graph(_graph(n), backend="llvm")
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    want = np.exp(np.sin(x))
    old = get_num_threads()
    set_num_threads(2)
    spin_s = WORKER_SPIN_CYCLES / 1e9        # an upper bound: the counter ticks >= 1 GHz
    phases = []                              # (pause before the call, worker's phase after)
    try:
        def calls():
            for pause in [0.0, 0.0, spin_s * 5, 0.0, spin_s * 5, 0.001] * 5:
                time.sleep(pause)
                np.testing.assert_allclose(exe.run([x])[0], want, rtol=1e-5)
                phases.append((pause, int(pool()._workers[0].state[0]) % 4))
        t = threading.Thread(target=calls, daemon=True)
        t.start()
        t.join(timeout=120)
        assert len(phases) == 30, "a pool call never returned (lost wake-up or deadlock)"
    finally:
        set_num_threads(old)
    assert all(ph in (2, 3) for _, ph in phases), phases        # done or cancelled, no other
    assert any(ph == 2 for pause, ph in phases if pause > spin_s), \
        "a worker that went to sleep never took part after being woken"
