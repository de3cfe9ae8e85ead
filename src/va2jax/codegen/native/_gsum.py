"""Sums over a static table of sources as one native kernel: the simulator's stamping of device
outputs into the circuit's vectors and matrices on the CPU.

Given a table ``tab`` (m, size) of indices into a source vector ``src`` (n_src) — an index
``≥ n_src`` means "nothing" — the kernel computes, per row (one system; ``vmap`` folds lanes into
rows), ``out[p] = acc[p] + src[tab[0, p]] + src[tab[1, p]] + …`` left to right, skipping the
"nothing" entries. That is the order in which :func:`va2jax.sim.assembly._gathered` adds the
levels of its gathers (and a scatter-add of the groups in turn adds its updates), so the sums are
the same bit for bit. ``_gathered`` fills each position's real entries first and adds an explicit
``0.0`` for each "nothing" after them; one ``+ 0.0`` at the end gives the same bits (it only turns
a ``−0.0`` into ``+0.0``), so the kernel adds it once where the table has a "nothing". The code is
straight-line (one load and one add per table entry that is not "nothing"), so it costs what the
additions cost: for a 9-stage PSP103 ring (47 unknowns, up to 441 contributions to one Jacobian
entry) it replaces XLA scatter-adds of ≈ 100 µs per Newton iteration. Kernel ABI as
:mod:`._ffi`: ``in`` = ``[acc (size), src (n_src)]``, ``out`` = ``size`` doubles.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable

import numpy as np

from . import _llir as ir

#: Most table entries (loads + adds) one kernel is built for; larger tables keep the XLA path
#: (LLVM's code generation time grows faster than linearly with straight-line code).
MAX_TERMS = 40_000

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)


def terms(tab: np.ndarray, n_src: int) -> int:
    """Number of entries of ``tab`` that name a source (the kernel's additions)."""
    return int(np.count_nonzero(np.asarray(tab) < n_src))


def gather_sum_ir(tab: np.ndarray, n_src: int, symbol: str, with_acc: bool = True) -> str:
    """LLVM IR text of the kernel for ``tab`` (m, size) over ``n_src`` sources (module doc).
    ``with_acc=False``: no ``acc`` input (``in`` = ``src``); each sum starts from its first
    term, as ``DevicePlan.dense`` adds its levels (``0.0`` where there is none)."""
    tab = np.asarray(tab, np.int64)
    m, size = tab.shape
    off = size if with_acc else 0
    mod = ir.Module(name=symbol)
    ptr = ir.PointerType()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [_I64, ptr, ptr, ptr]), name=symbol)
    fn.attributes.add("nounwind")
    nrows, _shared, src, dst = fn.args
    entry, head, body, done = (fn.append_basic_block(x) for x in ("entry", "head", "body", "done"))
    b = ir.IRBuilder(entry)
    b.branch(head)
    b = ir.IRBuilder(head)
    row = b.phi(_I64)
    row.add_incoming(ir.Constant(_I64, 0), entry)
    b.cbranch(b.icmp_signed("<", row, nrows), body, done)
    b = ir.IRBuilder(body)
    base_in = b.gep(src, [b.mul(row, ir.Constant(_I64, off + n_src))])
    base_out = b.gep(dst, [b.mul(row, ir.Constant(_I64, size))])
    loaded: dict[int, ir.Value] = {}

    def source(k: int) -> ir.Value:
        v = loaded.get(k)
        if v is None:
            v = loaded[k] = b.load(b.gep(base_in, [ir.Constant(_I64, off + k)]))
        return v

    zero = ir.Constant(_F64, 0.0)
    for p in range(size):
        v = b.load(b.gep(base_in, [ir.Constant(_I64, p)])) if with_acc else None
        nothing = False
        for lvl in range(m):
            k = int(tab[lvl, p])
            if 0 <= k < n_src:
                v = source(k) if v is None else b.fadd(v, source(k))
            else:
                nothing = True
        if v is None:
            v = zero
        elif nothing:  # the gathers' explicit 0.0 (turns a −0.0 sum into +0.0; once is enough)
            v = b.fadd(v, zero)
        b.store(v, b.gep(base_out, [ir.Constant(_I64, p)]))
    row.add_incoming(b.add(row, ir.Constant(_I64, 1)), body)
    b.branch(head)
    b = ir.IRBuilder(done)
    b.ret_void()
    return str(mod)


def _linear_sum(tab: np.ndarray, n_src: int) -> Callable:
    """The same sums as XLA gathers (``acc`` optional): used for the *tangents* of
    :func:`gather_sum` / :func:`level_sum`, which must be linear JAX operations so that JAX can
    transpose them (reverse mode; a native FFI call has no transpose rule)."""
    import jax.numpy as jnp

    idx = np.where((tab >= 0) & (tab < n_src), tab, n_src)

    def lin(src, acc=None):
        lead = src.shape[:-1]
        z = jnp.concatenate([src, jnp.zeros(lead + (1,), src.dtype)], axis=-1)
        out = acc
        for lvl in range(idx.shape[0]):
            term = z[..., idx[lvl]]
            out = term if out is None else out + term
        return jnp.zeros(lead + (idx.shape[1],), src.dtype) if out is None else out

    return lin


_lock = threading.Lock()
_built: dict[str, Callable] = {}


def gather_sum(tab: np.ndarray, n_src: int) -> Callable:
    """``f(acc (..., size), src (..., n_src)) -> (..., size)`` (see the module doc) through one
    native kernel call (XLA FFI; ``jit``, ``vmap`` and ``lax`` loops; CPU only; forward-mode
    derivatives: the same sum of the tangents). Built once per table and process; at most
    :data:`MAX_TERMS` terms."""
    import jax
    import jax.numpy as jnp

    from ._ffi import jit_ir, native_call

    tab = np.ascontiguousarray(np.asarray(tab, np.int64))
    if terms(tab, n_src) > MAX_TERMS:
        raise ValueError(f"gather_sum: {terms(tab, n_src)} terms, more than {MAX_TERMS}")
    digest = hashlib.sha256(tab.tobytes() + repr((tab.shape, n_src)).encode()).hexdigest()[:16]
    with _lock:
        f = _built.get(digest)
        if f is not None:
            return f
        symbol = f"va2jax_gather_sum_{digest}"
        # code generation at -O0: straight-line loads and adds need no optimisation, and LLVM's
        # fast instruction selection cut the 9-stage PSP103 ring's stamping kernels from ≈ 4 s
        # to 0.2 s per process at an unchanged step time; the sums are the same IEEE additions
        # in the same order at any level (no fast-math)
        addr = jit_ir(gather_sum_ir(tab, n_src, symbol), [symbol], opt=0)[symbol]
    size = tab.shape[1]
    call = native_call(addr, 1, size + n_src, size, label="gather_sum", code_key=symbol)
    shared = np.zeros(1)  # a NumPy constant: embedded, never a hoisted argument

    @jax.custom_jvp
    def core(acc, src):
        lead = acc.shape[:-1]
        rows = jnp.concatenate([acc, jnp.broadcast_to(src, lead + src.shape[-1:])], axis=-1)
        return call(shared, rows.reshape((-1, size + n_src))).reshape(lead + (size,))

    lin = _linear_sum(tab, n_src)

    @core.defjvp
    def _jvp(primals, tangents):  # a sum: the tangent is the same sum of the tangents (XLA)
        acc_t, src_t = tangents
        src_t = jnp.broadcast_to(src_t, acc_t.shape[:-1] + src_t.shape[-1:])
        return core(*primals), lin(src_t, acc_t)

    def f(acc, src):
        return core(jnp.asarray(acc, jnp.float64), jnp.asarray(src, jnp.float64))

    with _lock:
        _built.setdefault(digest, f)
    return _built[digest]


@functools.cache
def available() -> bool:
    """Whether the native kernels can be built here (llvmlite present)."""
    import importlib.util

    return importlib.util.find_spec("llvmlite") is not None


def level_sum(tab: np.ndarray, n_src: int) -> Callable:
    """``f(src (..., n_src)) -> (..., size)``: the sums of :func:`gather_sum` without ``acc``,
    each starting from its first term (``DevicePlan.dense``'s order: ``g0 + g1 + …``, a "nothing"
    giving ``0.0``; real entries come first in each column of ``tab``). One native call, rows =
    the leading axes (CPU only; forward-mode derivatives: the same sums of the tangents)."""
    import jax
    import jax.numpy as jnp

    from ._ffi import jit_ir, native_call

    tab = np.ascontiguousarray(np.asarray(tab, np.int64))
    if terms(tab, n_src) > MAX_TERMS:
        raise ValueError(f"level_sum: {terms(tab, n_src)} terms, more than {MAX_TERMS}")
    digest = hashlib.sha256(b"first" + tab.tobytes() + repr((tab.shape, n_src)).encode()).hexdigest()[:16]
    with _lock:
        f = _built.get(digest)
        if f is not None:
            return f
        symbol = f"va2jax_level_sum_{digest}"
        addr = jit_ir(gather_sum_ir(tab, n_src, symbol, with_acc=False), [symbol], opt=0)[symbol]
    size = tab.shape[1]
    call = native_call(addr, 1, n_src, size, label="level_sum", code_key=symbol)
    shared = np.zeros(1)  # a NumPy constant: embedded, never a hoisted argument

    @jax.custom_jvp
    def core(src):
        lead = src.shape[:-1]
        return call(shared, src.reshape((-1, n_src))).reshape(lead + (size,))

    lin = _linear_sum(tab, n_src)

    @core.defjvp
    def _jvp(primals, tangents):  # the same sums of the tangents, as XLA gathers (transposable)
        return core(*primals), lin(*tangents)

    def f(src):
        return core(jnp.asarray(src, jnp.float64))

    with _lock:
        _built.setdefault(digest, f)
    return _built[digest]
