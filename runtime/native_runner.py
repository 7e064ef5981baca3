"""The native loop that runs a segment of kernels on several threads.

Written once, by hand, in LLVM IR. Work is shared *dynamically*: every kernel cuts its
work into chunks and each thread claims the next chunk with an atomic increment
(``claim``) and counts it done (``finish``). Before moving to kernel k+1 a thread
waits until every chunk of kernel k is finished, by whichever thread. So a thread the
OS descheduled (a 2-core machine shared with other jobs) delays nobody: the others
take its chunks, and a worker that wakes up after the segment is done skips it
entirely (``kiln_worker_begin`` fails and it never touches the segment).

Kernel signature: ``i64 kernel(ptr table, ptr slots, ptr claim, ptr finish, ptr scratch)``
returns its chunk count. ``table[slots[i]]`` is the address of its i-th buffer.

Runner: ``kiln_run_list(launches, n, table, counters, scratch)`` with launch =
``{fn, slots}`` and 16 words of ``counters`` per launch (claim at word 0, finish at
word 8: separate cache lines), zeroed before the segment starts.

Worker hand-shake, per worker state word ``4*generation + phase`` (phase 0 posted,
1 started, 2 done, 3 cancelled): the main thread posts, runs its share, then
``kiln_main_finish`` either cancels a worker that has not started or waits for it.
A worker thread lives in ``kiln_worker_loop``, one native call that never takes the
GIL: it waits for a post (``kiln_worker_wait``: spins for a while, then sleeps on a
POSIX semaphore, one ``sem_post`` per post), runs the posted segment, and waits again.
The spin matters: a training step runs a few segments with short eager stretches
between them, and waking a sleeping thread costs tens of microseconds (on a virtual
machine whose idle CPU halts, often far more), so the main thread would run the next
segment alone. Never taking the GIL matters too: a worker that needed it after waking
would stall the main thread's Python code, or wait for it.
"""
from __future__ import annotations

import ctypes

from . import llvm_jit


class Launch(ctypes.Structure):
    _fields_ = [("fn", ctypes.c_void_p), ("slots", ctypes.c_void_p)]


COUNTER_WORDS = 16           # per launch: claim at word 0, finish at word 8
SPINS_BEFORE_YIELD = 2000

SOURCE = r"""
; Kiln native runner: dynamic chunk sharing and the worker hand-shake.
declare i32 @sched_yield()
declare void @llvm.x86.sse2.pause()

define internal void @kiln_wait_at_least(ptr %p, i64 %target) {
entry:
  br label %spin
spin:
  %n = phi i64 [0, %entry], [%n1, %pause], [0, %yield]
  %now = load atomic i64, ptr %p acquire, align 8
  %ok = icmp sge i64 %now, %target
  br i1 %ok, label %done, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %n1 = add i64 %n, 1
  %tired = icmp ugt i64 %n1, SPINS
  br i1 %tired, label %yield, label %spin
yield:
  %r = call i32 @sched_yield()
  br label %spin
done:
  ret void
}

define void @kiln_run_list(ptr %launches, i64 %n, ptr %table, ptr %counters, ptr %scratch) {
entry:
  %any = icmp sgt i64 %n, 0
  br i1 %any, label %loop, label %exit
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %lp = getelementptr { ptr, ptr }, ptr %launches, i64 %i
  %fn = load ptr, ptr %lp, align 8
  %sp = getelementptr { ptr, ptr }, ptr %launches, i64 %i, i32 1
  %slots = load ptr, ptr %sp, align 8
  %cw = mul i64 %i, 16
  %claim = getelementptr i64, ptr %counters, i64 %cw
  %fw = add i64 %cw, 8
  %finish = getelementptr i64, ptr %counters, i64 %fw
  %chunks = call i64 %fn(ptr %table, ptr %slots, ptr %claim, ptr %finish, ptr %scratch)
  call void @kiln_wait_at_least(ptr %finish, i64 %chunks)
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %exit
exit:
  ret void
}

define i64 @kiln_worker_begin(ptr %state, i64 %gen) {
entry:
  %posted = mul i64 %gen, 4
  %started = add i64 %posted, 1
  %r = cmpxchg ptr %state, i64 %posted, i64 %started acq_rel acquire
  %ok = extractvalue { i64, i1 } %r, 1
  %v = zext i1 %ok to i64
  ret i64 %v
}

define void @kiln_worker_end(ptr %state, i64 %gen) {
entry:
  %g4 = mul i64 %gen, 4
  %done = add i64 %g4, 2
  store atomic i64 %done, ptr %state release, align 8
  ret void
}

define void @kiln_main_finish(ptr %state, i64 %gen) {
entry:
  %posted = mul i64 %gen, 4
  %cancel = add i64 %posted, 3
  %r = cmpxchg ptr %state, i64 %posted, i64 %cancel acq_rel acquire
  %ok = extractvalue { i64, i1 } %r, 1
  br i1 %ok, label %exit, label %wait
wait:
  %done = add i64 %posted, 2
  call void @kiln_wait_at_least(ptr %state, i64 %done)
  br label %exit
exit:
  ret void
}

declare i64 @llvm.readcyclecounter()
declare i32 @sem_wait(ptr)

define void @kiln_worker_wait(ptr %state, i64 %gen, i64 %cycles, ptr %sem) {
entry:
  %start = call i64 @llvm.readcyclecounter()
  %g4 = mul i64 %gen, 4
  %next = add i64 %g4, 4
  br label %spin
spin:
  %now = load atomic i64, ptr %state acquire, align 8
  %posted = icmp sge i64 %now, %next
  br i1 %posted, label %take, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %t = call i64 @llvm.readcyclecounter()
  %elapsed = sub i64 %t, %start
  %late = icmp ugt i64 %elapsed, %cycles
  br i1 %late, label %take, label %spin
take:
  %r = call i32 @sem_wait(ptr %sem)
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %done, label %take
done:
  ret void
}

; A worker thread's whole life, in one native call (it never takes the GIL): wait for a
; post, claim it, run the posted segment with its own scratch, report it done. The post
; lives in the worker's state words: 1 launches, 2 n, 3 table, 4 counters, 5 scratch
; base, 6 scratch stride, 7 the worker's tid; word 0 is 4*generation + phase.
define void @kiln_worker_loop(ptr %state, ptr %sem, i64 %cycles) {
entry:
  br label %wait
wait:
  %gen = phi i64 [0, %entry], [%g, %claim], [%g, %run]
  call void @kiln_worker_wait(ptr %state, i64 %gen, i64 %cycles, ptr %sem)
  %now = load atomic i64, ptr %state acquire, align 8
  %g = udiv i64 %now, 4
  br label %claim
claim:
  %ok = call i64 @kiln_worker_begin(ptr %state, i64 %g)
  %go = icmp ne i64 %ok, 0
  br i1 %go, label %run, label %wait
run:
  %p1 = getelementptr i64, ptr %state, i64 1
  %launches = load ptr, ptr %p1, align 8
  %p2 = getelementptr i64, ptr %state, i64 2
  %n = load i64, ptr %p2, align 8
  %p3 = getelementptr i64, ptr %state, i64 3
  %table = load ptr, ptr %p3, align 8
  %p4 = getelementptr i64, ptr %state, i64 4
  %counters = load ptr, ptr %p4, align 8
  %p5 = getelementptr i64, ptr %state, i64 5
  %base = load i64, ptr %p5, align 8
  %p6 = getelementptr i64, ptr %state, i64 6
  %stride = load i64, ptr %p6, align 8
  %p7 = getelementptr i64, ptr %state, i64 7
  %tid = load i64, ptr %p7, align 8
  %off = mul i64 %tid, %stride
  %addr = add i64 %base, %off
  %scratch = inttoptr i64 %addr to ptr
  call void @kiln_run_list(ptr %launches, i64 %n, ptr %table, ptr %counters, ptr %scratch)
  call void @kiln_worker_end(ptr %state, i64 %g)
  br label %wait
}
""".replace("SPINS", str(SPINS_BEFORE_YIELD))

_functions = None


def functions():
    """ctypes functions ``run_list, worker_begin, worker_end, main_finish, worker_wait,
    worker_loop`` (compiled,
    or loaded from the kernel cache, once per process)."""
    global _functions
    if _functions is None:
        names = ["kiln_run_list", "kiln_worker_begin", "kiln_worker_end", "kiln_main_finish",
                 "kiln_worker_wait", "kiln_worker_loop"]
        addr = llvm_jit.load(SOURCE, names)
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        _functions = (
            ctypes.CFUNCTYPE(None, vp, i64, vp, vp, vp)(addr["kiln_run_list"]),
            ctypes.CFUNCTYPE(i64, vp, i64)(addr["kiln_worker_begin"]),
            ctypes.CFUNCTYPE(None, vp, i64)(addr["kiln_worker_end"]),
            ctypes.CFUNCTYPE(None, vp, i64)(addr["kiln_main_finish"]),
            ctypes.CFUNCTYPE(None, vp, i64, i64, vp)(addr["kiln_worker_wait"]),
            ctypes.CFUNCTYPE(None, vp, vp, i64)(addr["kiln_worker_loop"]),
        )
    return _functions


def run_list():
    return functions()[0]
