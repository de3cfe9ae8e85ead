"""A small dense linear solve ``A·x = r`` emitted as native code: the simulator's Newton step on
the CPU for circuits of a few unknowns.

``jnp.linalg.solve`` on an ``n × n`` system with ``n ≈ 2–20`` costs 1–2 µs per Newton iteration
on the CPU (LAPACK ``getrf`` and two ``trsm`` custom calls, a permutation gather, XLA's dispatch
of each), several times the arithmetic. Here the whole solve is one kernel with the native ABI
of :mod:`._ffi` (``void k(int64 rows, const double *shared, const double *in, double *out)``),
one system per row — ``in`` = ``[A (n·n, row-major), r (n)]``, ``out`` = ``x (n)`` — so it is
called like a model kernel (:func:`~._ffi.native_call`: one FFI call, ``vmap`` folds the batch
into the rows).

For a fixed ``n`` the code is straight-line (no loops over ``n``; every entry an SSA value), per
row:

1. equilibration, as the JAX path does it: ``s_i = max_j |A_ij|`` (1 where 0), ``A ← A/s_i``,
   ``c_j = max_i |A_ij|`` (1 where 0), ``A ← A/c_j``, ``r ← r/s``;
2. LU with partial pivoting as LAPACK's ``getrf``: at column ``k`` the pivot is the *first* row
   ``i ≥ k`` of largest ``|A_ik|``, rows swapped (by selects), multipliers
   ``l_ik = A_ik · (1/A_kk)`` (``A_ik / A_kk`` where ``|A_kk|`` is below the smallest normal
   number, as ``getrf2``), trailing update ``A_ij ← A_ij − l_ik·A_kj`` and ``r_i ← r_i − l_ik·r_k``
   in order of ``k`` (forward substitution folded into the elimination: the same operations
   on the same values as ``L·y = P·r`` after the factorisation);
3. back substitution column by column (``trsm``'s order): ``x_k = r_k / U_kk``, then
   ``r_i ← r_i − x_k·U_ik`` for ``i < k``; ``x ← x / c``.

A zero pivot (singular matrix, where ``getrf`` reports ``info > 0``) or a non-finite input gives
NaN in every output, which the Newton loop reads as "singular", as it reads LAPACK's non-finite
solution. No fused multiply-add, no fast-math: the IR has no ``contract`` flags, so the code
rounds the same on every x86-64 CPU. LAPACK (OpenBLAS) accumulates the trailing updates in
another order (and may use FMA), so the two agree within rounding, not bit for bit.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np

from . import _llir as ir

#: Largest ``n`` solved natively: the straight-line code grows as ``n³`` (≈ 2·n³/3 multiply-subtracts
#: plus ≈ n³ selects for the row swaps) and LLVM's code generation time faster still: n = 9 takes
#: ≈ 0.3 s, 12 ≈ 0.8 s, 16 ≈ 2 s, 24 ≈ 7 s (loaded 2-core VM). Larger systems use LAPACK.
MAX_N = 12

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_DBL_MIN = 2.2250738585072014e-308  # smallest normal double (LAPACK's dlamch('S'))


def lu_solve_ir(n: int, symbol: str) -> str:
    """LLVM IR text of the solve kernel for ``n`` unknowns (see the module doc)."""
    if not 1 <= n <= MAX_N:
        raise ValueError(f"native dense solve: n = {n} outside 1..{MAX_N}")
    mod = ir.Module(name=symbol)
    ptr = ir.PointerType()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [_I64, ptr, ptr, ptr]), name=symbol)
    fn.attributes.add("nounwind")
    fabs_fn = ir.Function(mod, ir.FunctionType(_F64, [_F64]), name="llvm.fabs.f64")
    nrows, _shared, src, dst = fn.args
    entry, head, body, done = (fn.append_basic_block(x) for x in ("entry", "head", "body", "done"))
    b = ir.IRBuilder(entry)
    b.branch(head)
    b = ir.IRBuilder(head)
    row = b.phi(_I64)
    row.add_incoming(ir.Constant(_I64, 0), entry)
    b.cbranch(b.icmp_signed("<", row, nrows), body, done)
    b = ir.IRBuilder(body)

    def c(v: float) -> ir.Value:
        return ir.Constant(_F64, v)

    def fabs(x: ir.Value) -> ir.Value:
        return b.call(fabs_fn, [x])

    def fmax(a: ir.Value, x: ir.Value) -> ir.Value:  # inputs are finite here (checked below)
        return b.select(b.fcmp_ordered(">", x, a), x, a)

    n_in = n * n + n
    base_in = b.gep(src, [b.mul(row, ir.Constant(_I64, n_in))])
    base_out = b.gep(dst, [b.mul(row, ir.Constant(_I64, n))])

    def load(k: int) -> ir.Value:
        return b.load(b.gep(base_in, [ir.Constant(_I64, k)]))

    A = [[load(i * n + j) for j in range(n)] for i in range(n)]
    r = [load(n * n + i) for i in range(n)]
    inf = c(float("inf"))
    ok = ir.Constant(ir.IntType(1), 1)
    for v in [x for rw in A for x in rw] + r:
        ok = b.and_(ok, b.fcmp_ordered("<", fabs(v), inf))  # false for ±inf and NaN
    # 1. equilibration (row scales, then column scales of the row-scaled matrix)
    zero, one = c(0.0), c(1.0)
    for i in range(n):
        s = fabs(A[i][0])
        for j in range(1, n):
            s = fmax(s, fabs(A[i][j]))
        s = b.select(b.fcmp_ordered(">", s, zero), s, one)
        A[i] = [b.fdiv(x, s) for x in A[i]]
        r[i] = b.fdiv(r[i], s)
    cs = []
    for j in range(n):
        s = fabs(A[0][j])
        for i in range(1, n):
            s = fmax(s, fabs(A[i][j]))
        s = b.select(b.fcmp_ordered(">", s, zero), s, one)
        cs.append(s)
        for i in range(n):
            A[i][j] = b.fdiv(A[i][j], s)
    # 2. LU with partial pivoting, forward substitution folded in
    singular = ir.Constant(ir.IntType(1), 0)
    for k in range(n):
        best, piv = fabs(A[k][k]), ir.Constant(_I64, k)
        for i in range(k + 1, n):
            a = fabs(A[i][k])
            gt = b.fcmp_ordered(">", a, best)  # strictly greater: the first maximum wins
            best = b.select(gt, a, best)
            piv = b.select(gt, ir.Constant(_I64, i), piv)
        if k + 1 < n:
            is_p = {i: b.icmp_signed("==", piv, ir.Constant(_I64, i)) for i in range(k + 1, n)}
            cols = list(range(k, n))
            new_k = []
            for j in cols + [None]:
                v = A[k][j] if j is not None else r[k]
                for i in range(k + 1, n):
                    v = b.select(is_p[i], A[i][j] if j is not None else r[i], v)
                new_k.append(v)
            for i in range(k + 1, n):
                for j in cols:
                    A[i][j] = b.select(is_p[i], A[k][j], A[i][j])
                r[i] = b.select(is_p[i], r[k], r[i])
            for j, v in zip(cols, new_k[:-1]):
                A[k][j] = v
            r[k] = new_k[-1]
        p = A[k][k]
        singular = b.or_(singular, b.fcmp_ordered("==", p, zero))
        rec = b.fdiv(one, p)
        tiny = b.fcmp_ordered("<", fabs(p), c(_DBL_MIN))
        for i in range(k + 1, n):
            lik = b.select(tiny, b.fdiv(A[i][k], p), b.fmul(A[i][k], rec))
            for j in range(k + 1, n):
                A[i][j] = b.fsub(A[i][j], b.fmul(lik, A[k][j]))
            r[i] = b.fsub(r[i], b.fmul(lik, r[k]))
    # 3. back substitution (column-oriented), column scaling undone
    x: list[ir.Value | None] = [None] * n
    for k in range(n - 1, -1, -1):
        x[k] = b.fdiv(r[k], A[k][k])
        for i in range(k):
            r[i] = b.fsub(r[i], b.fmul(x[k], A[i][k]))
    bad = b.or_(singular, b.xor(ok, ir.Constant(ir.IntType(1), 1)))
    nan = c(float("nan"))
    for k in range(n):
        v = b.select(bad, nan, b.fdiv(x[k], cs[k]))
        b.store(v, b.gep(base_out, [ir.Constant(_I64, k)]))
    nxt = b.add(row, ir.Constant(_I64, 1))
    row.add_incoming(nxt, body)
    b.branch(head)
    b = ir.IRBuilder(done)
    b.ret_void()
    return str(mod)


_lock = threading.Lock()


@functools.cache
def _kernel_address(n: int) -> int:
    from ._ffi import jit_ir

    symbol = f"va2jax_dense_solve_{n}"
    with _lock:
        return jit_ir(lu_solve_ir(n, symbol), [symbol], opt=2)[symbol]


@functools.cache
def dense_solve(n: int) -> Callable:
    """``solve(A, r) -> x`` for ``A`` (..., n, n) and ``r`` (..., n) float64, through the native
    kernel (one XLA FFI call; works under ``jit``, ``vmap`` and ``lax`` loops; CPU only).
    Forward-mode derivatives (``jvp``, ``jacfwd``): ``dx = A⁻¹·(dr − dA·x)`` by the same kernel.
    ``n`` at most :data:`MAX_N`. Compiled once per ``n`` and process."""
    import jax
    import jax.numpy as jnp

    from ._ffi import native_call

    # one kernel per n in a process: its name is the same in every process (persistent cache)
    call = native_call(_kernel_address(n), 1, n * n + n, n, label=f"dense_solve_{n}",
                       code_key=f"dense_solve_{n}")
    shared = np.zeros(1)  # a NumPy constant: embedded, never a hoisted argument

    @jax.custom_jvp
    def solve(A, r):
        lead = r.shape[:-1]
        rows = jnp.concatenate([A.reshape(lead + (n * n,)), r], axis=-1)
        return call(shared, rows.reshape((-1, n * n + n))).reshape(lead + (n,))

    @solve.defjvp
    def _jvp(primals, tangents):  # A·x = r  ⇒  A·dx = dr − dA·x (the same solve)
        A, r = primals
        dA, dr = tangents
        x = solve(A, r)
        return x, solve(A, dr - jnp.einsum("...ij,...j->...i", dA, x))

    def entry(A, r):
        return solve(jnp.asarray(A, jnp.float64), jnp.asarray(r, jnp.float64))

    return entry
