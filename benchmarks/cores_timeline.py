#!/usr/bin/env python3
"""Where the threads of one multi-core evaluator call go: per call, per thread, the rows computed,
the busy time, and the CPUs it ran on (issue 15, done-when 2: why the all-core paths lose).

The model's ``eval_dense`` kernel is wrapped by a small LLVM IR kernel with the same ABI that calls
it and then appends (thread id, CPU at start and end, cycle counter at start and end, rows) to a log;
the evaluator is built on the wrapper, so the very handler and thread pool of the real path run. On
a machine where other processes keep every core busy this shows e.g. two pool threads sharing one
CPU (each busy the whole call at half speed) or one thread holding back the end of the call.

Usage::

    python benchmarks/cores_timeline.py [--model psp103] [--path jit|flat|eager] [--calls 8]

Linux on x86-64 only (``syscall(SYS_gettid)``, ``sched_getcpu``, the time-stamp counter). A
measurement, not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

import model_bench as mb  # noqa: E402 (after sys.path is set)

SYS_GETTID = 186  # x86-64
LOG_WORDS = 1 << 18


def wrapper_ir(kernel: int, syscall: int, getcpu: int) -> str:
    """``wrap(n, shared, in, out)``: ``kernel(n, shared, in, out)``, then one log record of 4 words:
    tid | cpu_start << 40 | cpu_end << 48, tsc_start, tsc_end, n."""
    return f"""
@log = global [{LOG_WORDS} x i64] zeroinitializer
@idx = global i64 0
declare i64 @llvm.readcyclecounter()
define void @wrap(i64 %n, ptr %sh, ptr %in, ptr %out) {{
  %gcf = inttoptr i64 {getcpu} to ptr
  %cpu0 = call i32 %gcf()
  %t0 = call i64 @llvm.readcyclecounter()
  %kf = inttoptr i64 {kernel} to ptr
  call void %kf(i64 %n, ptr %sh, ptr %in, ptr %out)
  %t1 = call i64 @llvm.readcyclecounter()
  %scf = inttoptr i64 {syscall} to ptr
  %tid = call i64 %scf(i64 {SYS_GETTID})
  %cpu1 = call i32 %gcf()
  %c0 = zext i32 %cpu0 to i64
  %c1 = zext i32 %cpu1 to i64
  %c0s = shl i64 %c0, 40
  %c1s = shl i64 %c1, 48
  %w0 = or i64 %tid, %c0s
  %word = or i64 %w0, %c1s
  %i = atomicrmw add ptr @idx, i64 4 monotonic
  %ok = icmp slt i64 %i, {LOG_WORDS - 4}
  br i1 %ok, label %w, label %e
w:
  %p0 = getelementptr i64, ptr @log, i64 %i
  store i64 %word, ptr %p0
  %p1 = getelementptr i64, ptr %p0, i64 1
  store i64 %t0, ptr %p1
  %p2 = getelementptr i64, ptr %p0, i64 2
  store i64 %t1, ptr %p2
  %p3 = getelementptr i64, ptr %p0, i64 3
  store i64 %n, ptr %p3
  br label %e
e:
  ret void
}}
"""


def tsc_hz() -> float:
    """Time-stamp counter ticks per second, measured against ``perf_counter`` over 0.2 s."""
    import llvmlite.binding as llvm

    mod = llvm.parse_assembly("declare i64 @llvm.readcyclecounter()\n"
                              "define i64 @tsc() {\n  %t = call i64 @llvm.readcyclecounter()\n  ret i64 %t\n}\n")
    eng = llvm.create_mcjit_compiler(mod, llvm.Target.from_default_triple().create_target_machine())
    eng.finalize_object()
    tsc = ctypes.CFUNCTYPE(ctypes.c_int64)(eng.get_function_address("tsc"))
    t0, c0 = time.perf_counter(), tsc()
    time.sleep(0.2)
    hz = (tsc() - c0) / (time.perf_counter() - t0)
    tsc_hz.engine = eng  # keep the code alive
    return hz


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="psp103")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--path", choices=("jit", "flat", "eager"), default="jit")
    ap.add_argument("--calls", type=int, default=8)
    args = ap.parse_args(argv)
    import jax
    import llvmlite.binding as llvm

    from va2jax import compile_va
    from va2jax.codegen.native import _backend as nb

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    key, va, params, vrange = mb.resolve_model(args.model)
    m = compile_va(va)
    n = args.n
    st = m.setup({k: np.full(n, v) for k, v in params.items()}, temperature=np.full(n, mb.TEMPERATURE))
    V = mb.make_voltages(["A" if kd == "BranchCurrent" else "V" for kd in m.node_kinds], n, vrange)
    k = nb.plan(m).kernel
    libc = ctypes.CDLL(None)
    addr = {s: ctypes.cast(getattr(libc, s), ctypes.c_void_p).value for s in ("syscall", "sched_getcpu")}
    mod = llvm.parse_assembly(wrapper_ir(k.eval_dense_address, addr["syscall"], addr["sched_getcpu"]))
    mod.verify()
    eng = llvm.create_mcjit_compiler(mod, llvm.Target.from_default_triple().create_target_machine(opt=2))
    eng.finalize_object()
    log = (ctypes.c_int64 * LOG_WORDS).from_address(eng.get_global_value_address("log"))
    idx = ctypes.c_int64.from_address(eng.get_global_value_address("idx"))
    object.__setattr__(k, "eval_dense_address", eng.get_function_address("wrap"))  # this process only
    f = m.evaluator(st)
    fj = jax.jit(f)
    run = {"jit": lambda: jax.block_until_ready(fj(V)),
           "flat": lambda: f.jitted(f.consts, V, None, False).block_until_ready(),
           "eager": lambda: f(V)}[args.path]
    run()
    hz = tsc_hz()
    print(f"{key}, {n} instances, path {args.path}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    for _ in range(args.calls):
        idx.value = 0
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
        L = np.array(log[:idx.value], dtype=np.int64).reshape(-1, 4)
        start = L[:, 1].min()
        parts = []
        for tid in dict.fromkeys((L[:, 0] & 0xFFFFFFFFFF).tolist()):
            R = L[(L[:, 0] & 0xFFFFFFFFFF) == tid]
            try:
                name = Path(f"/proc/{os.getpid()}/task/{tid}/comm").read_text().strip()
            except OSError:
                name = "?"
            cpus = sorted(set(((R[:, 0] >> 40) & 255).tolist()) | set(((R[:, 0] >> 48) & 255).tolist()))
            first, last = (R[:, 1].min() - start) / hz * 1e3, (R[:, 2].max() - start) / hz * 1e3
            busy = (R[:, 2] - R[:, 1]).sum() / hz * 1e3
            parts.append(f"{name}[{tid}]: {int(R[:, 3].sum())} rows, {first:.1f}–{last:.1f} ms, busy {busy:.1f} ms,"
                         f" CPUs {cpus}")
        print(f"call {wall * 1e3:6.1f} ms | " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
