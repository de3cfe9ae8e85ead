#!/usr/bin/env python3
"""Cost of calling a native kernel from JAX through the XLA FFI (``codegen/native/_ffi.py``).

Synthetic kernels written in LLVM IR and compiled in-process (llvmlite):

* ``step``: one row, ``out = in * 0.5 + 1`` — a trivial kernel, so the figures are the crossing cost;
* ``diode``: ``i = a·is·(exp(v/vt) − 1)``, ``g = a·is·exp(v/vt)/vt`` per row — a little real work.

Prints:

1. one FFI call inside a compiled ``lax.fori_loop`` and ``lax.while_loop`` (µs per iteration, minus
   the same loop doing the arithmetic in XLA instead — the crossing's own cost — and total);
2. a jitted batch-1 call from Python (``f(shared, x).block_until_ready()``), median µs;
3. the same through the differentiable wrapper (``native_jvp``), primal only;
4. how many threads ran the rows of one 512-row call of a slow kernel (the pool split at work);
5. ``diode`` at 16,384 rows: one thread vs XLA's thread pool (ns per row).

Wall-clock numbers on a shared machine are noisy; each figure is a median of repeats.

Usage::

    python benchmarks/ffi_bench.py [--iters 100000] [--repeats 7]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

STEP_IR = r"""
define void @step(i64 %n, ptr %sh, ptr %in, ptr %out) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %done
body:
  %p = getelementptr double, ptr %in, i64 %i
  %x = load double, ptr %p
  %h = fmul double %x, 0.5
  %y = fadd double %h, 1.0
  %q = getelementptr double, ptr %out, i64 %i
  store double %y, ptr %q
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}
"""

DIODE_IR = r"""
declare double @exp(double)
define void @diode(i64 %n, ptr %sh, ptr %in, ptr %out) {
entry:
  %is = load double, ptr %sh
  %vtp = getelementptr double, ptr %sh, i64 1
  %vt = load double, ptr %vtp
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %done
body:
  %k = mul i64 %i, 2
  %k1 = add i64 %k, 1
  %pv = getelementptr double, ptr %in, i64 %k
  %v = load double, ptr %pv
  %pa = getelementptr double, ptr %in, i64 %k1
  %a = load double, ptr %pa
  %x = fdiv double %v, %vt
  %e = call double @exp(double %x)
  %em1 = fsub double %e, 1.0
  %ais = fmul double %a, %is
  %cur = fmul double %ais, %em1
  %ge = fmul double %ais, %e
  %g = fdiv double %ge, %vt
  %po = getelementptr double, ptr %out, i64 %k
  store double %cur, ptr %po
  %pg = getelementptr double, ptr %out, i64 %k1
  store double %g, ptr %pg
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}
"""


def _thread_id_ir(pthread_self: int, usleep: int) -> str:
    """A kernel writing, per row, the id of the thread that ran it (after sleeping 50 µs)."""
    return f"""
define void @tid(i64 %n, ptr %sh, ptr %in, ptr %out) {{
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %done
body:
  %u = call i32 inttoptr (i64 {usleep} to ptr)(i32 50)
  %t = call i64 inttoptr (i64 {pthread_self} to ptr)()
  %d = sitofp i64 %t to double
  %q = getelementptr double, ptr %out, i64 %i
  store double %d, ptr %q
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}}
"""


def _bare_handler_ir(h) -> str:
    """A handler that answers the metadata query and does nothing else: XLA's own FFI dispatch cost,
    the floor under any handler (its result buffer is left unwritten; only for timing)."""
    ext = h.field("XLA_FFI_CallFrame", "extension_start").offset
    md = h.field("XLA_FFI_Metadata_Extension", "metadata").offset
    av = h.field("XLA_FFI_Metadata", "api_version").offset
    f = {k: av + h.field("XLA_FFI_Api_Version", k).offset for k in ("struct_size", "major_version", "minor_version")}
    tr = h.field("XLA_FFI_Metadata", "traits").offset
    return f"""
define ptr @bare(ptr %cf) {{
entry:
  %pe = getelementptr i8, ptr %cf, i64 {ext}
  %e = load ptr, ptr %pe
  %isnull = icmp eq ptr %e, null
  br i1 %isnull, label %run, label %meta
meta:
  %pm = getelementptr i8, ptr %e, i64 {md}
  %m = load ptr, ptr %pm
  %p0 = getelementptr i8, ptr %m, i64 {f["struct_size"]}
  store i64 {h.struct("XLA_FFI_Api_Version").struct_size}, ptr %p0
  %p1 = getelementptr i8, ptr %m, i64 {f["major_version"]}
  store i32 {h.const("XLA_FFI_API_MAJOR")}, ptr %p1
  %p2 = getelementptr i8, ptr %m, i64 {f["minor_version"]}
  store i32 {h.const("XLA_FFI_API_MINOR")}, ptr %p2
  %p3 = getelementptr i8, ptr %m, i64 {tr}
  store i32 0, ptr %p3
  ret ptr null
run:
  ret ptr null
}}
"""


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100_000, help="loop iterations (default 100000)")
    ap.add_argument("--calls", type=int, default=3000, help="Python calls per repeat (default 3000)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    from va2jax.codegen.native import _ffi

    t0 = time.perf_counter()
    addr = _ffi.jit_ir(STEP_IR + DIODE_IR, ["step", "diode"])
    step = _ffi.native_call(addr["step"], 0, 1, 1, label="step")
    t_build = time.perf_counter() - t0
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs; kernels + one handler built and registered "
          f"in {t_build * 1e3:.0f} ms")
    shared0 = jnp.zeros(0)
    x1 = jnp.ones((1, 1))
    n = args.iters

    def loop(body):
        f = jax.jit(lambda x: jax.lax.fori_loop(0, n, lambda i, x: body(x), x))
        f(x1).block_until_ready()
        return _median_time(lambda: f(x1).block_until_ready(), args.repeats) / n * 1e6

    def wloop(body):
        def run(x):
            return jax.lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, body(c[1])), (0, x))[1]
        f = jax.jit(run)
        f(x1).block_until_ready()
        return _median_time(lambda: f(x1).block_until_ready(), args.repeats) / n * 1e6

    bare_addr = _ffi.jit_ir(_bare_handler_ir(_ffi.c_header()), ["bare"])["bare"]
    jax.ffi.register_ffi_target("va2jax_bench_bare", jax.ffi.pycapsule(bare_addr), platform="cpu", api_version=1)
    native = lambda x: step(shared0, x)
    bare = lambda x: jax.ffi.ffi_call("va2jax_bench_bare",
                                      jax.ShapeDtypeStruct(x.shape, x.dtype))(shared0, x)
    in_xla = lambda x: x * 0.5 + 1.0
    for name, runner in (("fori_loop", loop), ("while_loop", wloop)):
        t_nat, t_bare, t_xla = runner(native), runner(bare), runner(in_xla)
        print(f"{name:10s}: FFI call {t_nat:.3f} µs/iter (bare do-nothing handler {t_bare:.3f}), same loop "
              f"without a call {t_xla:.3f} µs/iter -> crossing {t_nat - t_xla:.3f} µs")

    f = jax.jit(step)
    f(shared0, x1).block_until_ready()
    reps = [_median_time(lambda: [f(shared0, x1).block_until_ready() for _ in range(args.calls)], 1) / args.calls
            for _ in range(args.repeats)]
    print(f"jitted batch-1 call from Python: {statistics.median(reps) * 1e6:.2f} µs per call")
    h = jax.jit(in_xla)
    h(x1).block_until_ready()
    reps = [_median_time(lambda: [h(x1).block_until_ready() for _ in range(args.calls)], 1) / args.calls
            for _ in range(args.repeats)]
    print(f"  (a jitted x*0.5+1 in XLA, for scale: {statistics.median(reps) * 1e6:.2f} µs per call)")

    g = jax.jit(_ffi.native_jvp(step, voltage_cols=[0], residual_cols=[], jacobian=[]))
    g(shared0, x1, x1).block_until_ready()
    reps = [_median_time(lambda: [g(shared0, x1, x1).block_until_ready() for _ in range(args.calls)], 1)
            / args.calls for _ in range(args.repeats)]
    print(f"same through native_jvp (primal):  {statistics.median(reps) * 1e6:.2f} µs per call")

    shared = jnp.array([1e-14, 0.025852])
    rng = np.random.default_rng(0)
    rows = jnp.asarray(np.stack([rng.uniform(-0.5, 0.8, 16384), rng.uniform(0.5, 2, 16384)], -1))
    one = jax.jit(_ffi.native_call(addr["diode"], 2, 2, 2, label="diode", min_rows_per_task=10**9))
    many = jax.jit(_ffi.native_call(addr["diode"], 2, 2, 2, label="diode", min_rows_per_task=64))
    assert np.array_equal(np.asarray(one(shared, rows)), np.asarray(many(shared, rows)))
    libc = ctypes.CDLL(None)
    tid_addr = _ffi.jit_ir(_thread_id_ir(*(ctypes.cast(getattr(libc, k), ctypes.c_void_p).value
                                           for k in ("pthread_self", "usleep"))), ["tid"])["tid"]
    tid = jax.jit(_ffi.native_call(tid_addr, 0, 1, 1, label="tid", min_rows_per_task=8))
    ids = np.asarray(tid(shared0, jnp.zeros((512, 1))))
    print(f"threads that ran rows of one 512-row call (50 µs per row): {np.unique(ids).size}")
    for label, fn in (("one thread", one), ("thread pool", many)):
        fn(shared, rows).block_until_ready()
        t = _median_time(lambda fn=fn: [fn(shared, rows).block_until_ready() for _ in range(50)], args.repeats) / 50
        print(f"diode, 16384 rows, {label:11s}: {t * 1e6:8.1f} µs per call, {t / 16384 * 1e9:.2f} ns per row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
