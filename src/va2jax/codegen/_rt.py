"""Runtime helpers used by generated model code: exact Verilog-A/OpenVAF semantics in JAX.

Each helper reproduces the semantics of the OpenVAF opcode it stands for (LLVM lowering), so that
generated code agrees with the OSDI library to the last bits where XLA's arithmetic allows.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

F64 = np.float64
I32 = np.int32
BOOL = np.bool_


def ifcast(x):
    """int → real."""
    return jnp.asarray(x).astype(jnp.float64)


def bfcast(x):
    """bool → real (1.0 / 0.0)."""
    return jnp.asarray(x).astype(jnp.float64)


def bicast(x):
    """bool → int."""
    return jnp.asarray(x).astype(jnp.int32)


def ibcast(x):
    """int → bool (``x != 0``)."""
    return jnp.asarray(x) != 0


def fbcast(x):
    """real → bool: LLVM ``fcmp one x, 0`` (false for NaN)."""
    x = jnp.asarray(x)
    return (x < 0.0) | (x > 0.0)


def fne(a, b):
    """Ordered not-equal (LLVM ``fcmp one``): false when either operand is NaN."""
    return (a < b) | (a > b)


def ficast(x):
    """real → int like ``llvm.lround``: round half away from zero (exact, no ``x + 0.5`` error)."""
    x = jnp.asarray(x, jnp.float64)
    ax = jnp.abs(x)
    fl = jnp.floor(ax)
    r = jnp.where(ax - fl >= 0.5, fl + 1.0, fl)
    return (jnp.sign(x) * r).astype(jnp.int32)


def idiv(a, b):
    """C integer division (truncates toward zero); division by zero gives 0 instead of trapping."""
    a = jnp.asarray(a, jnp.int32)
    b = jnp.asarray(b, jnp.int32)
    safe = jnp.where(b == 0, jnp.int32(1), b)
    return jnp.where(b == 0, jnp.int32(0), lax.div(a, safe))


def irem(a, b):
    """C remainder (sign of the dividend); remainder by zero gives 0 instead of trapping."""
    a = jnp.asarray(a, jnp.int32)
    b = jnp.asarray(b, jnp.int32)
    safe = jnp.where(b == 0, jnp.int32(1), b)
    return jnp.where(b == 0, jnp.int32(0), lax.rem(a, safe))


def ishl(a, b):
    return lax.shift_left(jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32))


def ishr(a, b):
    return lax.shift_right_arithmetic(jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32))


def clog2(x):
    """``$clog2`` of an integer: ceil(log2(x)) for x > 0, else 0."""
    x = jnp.asarray(x, jnp.int32)
    r = jnp.ceil(jnp.log2(jnp.maximum(x, 1).astype(jnp.float64))).astype(jnp.int32)
    return jnp.where(x > 0, r, jnp.int32(0))


# OSDI analysis bits (osdi_0_5.h)
ANALYSIS_BITS = {"noise": 1024, "dc": 2048, "ac": 4096, "tran": 8192, "ic": 16384,
                 "static": 32768, "nodeset": 65536}


def analysis(flags, name: str):
    """``analysis("name")``: whether the OSDI analysis flags include that analysis."""
    bit = ANALYSIS_BITS.get(name.lower())
    if bit is None:
        return jnp.asarray(False)
    return (jnp.asarray(flags, jnp.int32) & bit) != 0


def any_active(carry):
    """``while_loop`` condition: some lane (instance) still iterates (last carry entry)."""
    return jnp.any(carry[-1])


def keep_finished(old, new):
    """Loop body result where lanes that had stopped keep their previous carry."""
    go = old[-1]
    return tuple(jnp.where(go, n, o) for n, o in zip(new, old))  # batched carry: broadcasting where


def broadcast_carry(carry, inp=None):
    """Give every carry entry the batch shape (a ``while_loop`` carry keeps its shapes): the
    common shape of the carry and of the function's inputs ``inp`` (batch-native code)."""
    arrs = [jnp.asarray(c) for c in carry]
    shapes = [a.shape for a in arrs]
    if inp is not None:
        shapes += [jnp.shape(v) for v in inp.values()]
    shape = jnp.broadcast_shapes(*shapes)
    return tuple(jnp.broadcast_to(a, shape) for a in arrs)


def select(c, a, b):
    """``c ? a : b`` for one instance (``lax.select``; Python booleans short-circuit)."""
    if c is True:
        return a
    if c is False:
        return b
    c = jnp.asarray(c, bool)
    if jnp.shape(a) == jnp.shape(b) == c.shape:
        return lax.select(c, a, b)
    return jnp.where(c, a, b)


def not_(x):
    """Logical not of a boolean."""
    return lax.bitwise_not(jnp.asarray(x, bool))
