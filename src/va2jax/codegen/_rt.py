"""Runtime helpers used by generated model code: exact Verilog-A/OpenVAF semantics in JAX.

Each helper reproduces the semantics of the OpenVAF opcode it stands for (LLVM lowering), so that
generated code agrees with the OSDI library to the last bits where XLA's arithmetic allows.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from ._rt_ops import make_ops

F64 = np.float64
I32 = np.int32
BOOL = np.bool_
















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








def any_active(carry):
    """``while_loop`` condition: some lane (instance) still iterates (last carry entry)."""
    return jnp.any(carry[-1])


def guard(pred, x, safe):
    """Operand ``x`` of an operation in a block that runs where ``pred`` holds: ``x`` itself here;
    the gradient-safe runtime (:mod:`._rt_grad`) puts ``safe`` in the lanes that do not run."""
    return x


def while_loop(body, carry):
    """A loop of generated code: ``lax.while_loop`` while some lane's flag (last carry entry) is
    set; ``body`` keeps the carry of lanes that stopped (:func:`keep_finished`)."""
    return lax.while_loop(any_active, body, carry)


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


_ops = make_ops(jnp)
ifcast, bfcast, bicast, ibcast, fbcast = _ops.ifcast, _ops.bfcast, _ops.bicast, _ops.ibcast, _ops.fbcast
fne, ficast, clog2, analysis = _ops.fne, _ops.ficast, _ops.clog2, _ops.analysis
keep_finished, broadcast_carry = _ops.keep_finished, _ops.broadcast_carry
