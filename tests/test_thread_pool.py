"""The runtime's worker pool: posts, cancellations and waking a worker that slept.

Workers wait for their next post in one native call (spinning a while, then sleeping on
a semaphore), so these check the hand-shake itself: every call returns, the caller's
share always runs, a worker runs each post at most once, and a worker that went to
sleep (a pause longer than its spin) is woken by the next post."""
from __future__ import annotations

import threading
import time

from runtime.thread_pool import WORKER_SPIN_CYCLES, ThreadPool


def _run_calls(pool, pauses):
    seen = []          # (call, tid) pairs
    lock = threading.Lock()
    for call, pause in enumerate(pauses):
        def job(tid, call=call):
            with lock:
                seen.append((call, tid))
            time.sleep(0.003 if tid == 0 else 0)    # give the worker time to join
        pool.run(job, 2)
        time.sleep(pause)
    return seen


def test_posts_are_run_once_and_the_caller_always_runs():
    pool = ThreadPool()
    spin_s = WORKER_SPIN_CYCLES / 1e9       # an upper bound: the counter ticks >= 1 GHz
    pauses = [0.0, 0.0, 0.001, spin_s * 5, 0.0, spin_s * 5, 0.002, 0.0] * 4
    done = []
    t = threading.Thread(target=lambda: done.append(_run_calls(pool, pauses)), daemon=True)
    t.start()
    t.join(timeout=60)
    assert done, "a pool call never returned (lost wake-up or deadlock)"
    seen = done[0]
    assert len(set(seen)) == len(seen), "a worker ran one post twice"
    assert {c for c, tid in seen if tid == 0} == set(range(len(pauses)))
    assert any(tid == 1 for _, tid in seen), "the worker never ran, even when it had time"
    woke = {c for c, tid in seen if tid == 1}
    after_sleep = {i + 1 for i, p in enumerate(pauses[:-1]) if p >= spin_s * 5}
    assert woke & after_sleep, "a worker that went to sleep was never woken by a post"
