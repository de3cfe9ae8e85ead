"""Verilog-A/OpenVAF semantics written once for any array namespace (``numpy`` or ``jax.numpy``).

:mod:`._rt` (JAX) and :mod:`._rt_np` (NumPy) take these from :func:`make_ops` and add what differs
between the two (integer division through ``lax``, ``select``, loop conditions).
"""
from __future__ import annotations

from types import SimpleNamespace

from ..osdi import flags as _osdi_flags

#: OSDI analysis bits (osdi_0_5.h), name → bit
ANALYSIS_BITS = _osdi_flags.ANALYSIS_BITS


def make_ops(xp) -> SimpleNamespace:
    """The namespace-independent helpers for ``xp``."""

    def ifcast(x):
        """int → real."""
        return xp.asarray(x).astype(xp.float64)

    def bicast(x):
        """bool → int."""
        return xp.asarray(x).astype(xp.int32)

    def ibcast(x):
        """int → bool (``x != 0``)."""
        return xp.asarray(x) != 0

    def fbcast(x):
        """real → bool: LLVM ``fcmp one x, 0`` (false for NaN)."""
        x = xp.asarray(x)
        return (x < 0.0) | (x > 0.0)

    def fne(a, b):
        """Ordered not-equal (LLVM ``fcmp one``): false when either operand is NaN."""
        a = xp.asarray(a)
        return (a < b) | (a > b)

    def ficast(x):
        """real → int like ``llvm.lround``: half away from zero (exact, no ``x + 0.5`` error)."""
        x = xp.asarray(x, xp.float64)
        ax = xp.abs(x)
        fl = xp.floor(ax)
        r = xp.where(ax - fl >= 0.5, fl + 1.0, fl)
        return (xp.sign(x) * r).astype(xp.int32)

    def clog2(x):
        """``$clog2`` of an integer: ceil(log2(x)) for x > 0, else 0."""
        x = xp.asarray(x, xp.int32)
        r = xp.ceil(xp.log2(xp.maximum(x, 1).astype(xp.float64))).astype(xp.int32)
        return xp.where(x > 0, r, xp.int32(0)).astype(xp.int32)

    def analysis(flags, name: str):
        """``analysis("name")``: whether the OSDI analysis flags include that analysis."""
        bit = ANALYSIS_BITS.get(name.lower())
        if bit is None:
            return xp.asarray(False)
        return (xp.asarray(flags, xp.int32) & bit) != 0

    def keep_finished(old, new):
        """Loop body result where lanes (instances) that had stopped keep their previous carry."""
        go = old[-1]
        return tuple(xp.where(go, n, o) for n, o in zip(new, old))

    def broadcast_carry(carry, inp=None):
        """Give every carry entry the batch shape (a ``while_loop`` carry keeps its shapes): the
        common shape of the carry and of the function's inputs ``inp`` (batch-native code)."""
        arrs = [xp.asarray(c) for c in carry]
        shapes = [a.shape for a in arrs] + ([xp.shape(v) for v in inp.values()] if inp is not None else [])
        shape = xp.broadcast_shapes(*shapes)
        return tuple(xp.array(xp.broadcast_to(a, shape)) for a in arrs)

    return SimpleNamespace(ifcast=ifcast, bfcast=ifcast, bicast=bicast, ibcast=ibcast, fbcast=fbcast,
                           fne=fne, ficast=ficast, clog2=clog2, analysis=analysis,
                           keep_finished=keep_finished, broadcast_carry=broadcast_carry)
