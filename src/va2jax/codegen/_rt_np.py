"""NumPy flavour of the generated code's namespace: ``jnp``, ``lax`` and ``rt`` for eager,
compile-free execution on batches (arrays of shape (N,)).

Setup (OpenVAF's init function) runs once per parameter set, so compiling it with XLA costs far
more than it saves; va2jax runs the same generated source with these NumPy stand-ins instead.
IEEE double arithmetic is identical; ``exp``/``log``/``pow`` come from the C library, as in the
OSDI library itself. Float errors (overflow, 0/0) produce inf/NaN silently, as in C.
"""
from __future__ import annotations

import math
import types

import numpy as np

from ._rt_ops import make_ops

F64 = np.float64
I32 = np.int32
BOOL = np.bool_

def _libm(np_fn, math_fn, nargs: int = 1):
    """``np_fn`` when it agrees bit for bit with the C library (what OSDI libraries call) on a
    probe of arguments, else an element-wise call of ``math_fn`` (CPython's wrapper of the C
    library function). NumPy ships its own SIMD kernels for some functions (``tanh`` on AVX2;
    ``exp``/``log`` on AVX-512), which differ from glibc by an ulp on some arguments."""
    rng = np.random.default_rng(1234)
    probe = [rng.uniform(-30.0, 30.0, 4096)] if nargs == 1 else [rng.uniform(0.01, 30.0, 4096),
                                                                 rng.uniform(-5.0, 5.0, 4096)]
    if math_fn in (math.log, math.log10, math.sqrt):
        probe = [np.abs(probe[0]) + 1e-3]
    elif math_fn in (math.asin, math.acos, math.atanh):
        probe = [np.tanh(probe[0] / 30.0)]
    elif math_fn is math.acosh:
        probe = [np.abs(probe[0]) + 1.0]
    with np.errstate(all="ignore"):
        fast = np_fn(*probe)
    ref = np.array([math_fn(*args) for args in zip(*probe)])
    if np.array_equal(fast, ref):
        return np_fn
    ufunc = np.frompyfunc(_c_semantics(math_fn, np_fn), nargs, 1)

    def call(*args):
        return np.asarray(ufunc(*args), dtype=np.float64)

    call.__name__ = getattr(np_fn, "__name__", "libm")
    return call


def _c_semantics(fn, np_fn):
    """``fn`` element-wise; where CPython raises (domain/pole/overflow errors), the C result
    (NaN, ±inf) as NumPy computes it for that special argument."""
    def f(*a):
        try:
            return fn(*(float(x) for x in a))
        except (ValueError, OverflowError):
            with np.errstate(all="ignore"):
                return float(np_fn(*(np.float64(x) for x in a)))
    return f


jnp = types.SimpleNamespace(
    where=np.where, sqrt=np.sqrt, exp=_libm(np.exp, math.exp), log=_libm(np.log, math.log),
    log10=_libm(np.log10, math.log10), floor=np.floor,
    ceil=np.ceil, sin=_libm(np.sin, math.sin), cos=_libm(np.cos, math.cos),
    tan=_libm(np.tan, math.tan), arcsin=_libm(np.arcsin, math.asin),
    arccos=_libm(np.arccos, math.acos), arctan=_libm(np.arctan, math.atan),
    sinh=_libm(np.sinh, math.sinh), cosh=_libm(np.cosh, math.cosh), tanh=_libm(np.tanh, math.tanh),
    arcsinh=_libm(np.arcsinh, math.asinh), arccosh=_libm(np.arccosh, math.acosh),
    arctanh=_libm(np.arctanh, math.atanh), abs=np.abs, power=_libm(np.power, math.pow, 2),
    arctan2=_libm(np.arctan2, math.atan2, 2),
    hypot=np.hypot, logical_not=np.logical_not, invert=np.invert, fmod=np.fmod,
)


def _while_loop(cond, body, carry):
    while cond(carry):
        carry = body(carry)
    return carry


# Transcendental functions come from ``jnp`` above (checked against the C library); the
# generated code calls them through ``lax``.
lax = types.SimpleNamespace(
    while_loop=_while_loop, add=np.add, sub=np.subtract, mul=np.multiply, div=np.true_divide,
    lt=np.less, le=np.less_equal, gt=np.greater, ge=np.greater_equal, eq=np.equal, ne=np.not_equal,
    bitwise_and=np.bitwise_and, bitwise_or=np.bitwise_or, bitwise_xor=np.bitwise_xor,
    bitwise_not=np.invert, pow=jnp.power, atan2=jnp.arctan2, rem=np.fmod, sqrt=np.sqrt,
    exp=jnp.exp, log=jnp.log, floor=np.floor, ceil=np.ceil, sin=jnp.sin, cos=jnp.cos,
    tan=jnp.tan, asin=jnp.arcsin, acos=jnp.arccos, atan=jnp.arctan, sinh=jnp.sinh,
    cosh=jnp.cosh, tanh=jnp.tanh, asinh=jnp.arcsinh, acosh=jnp.arccosh, atanh=jnp.arctanh,
    abs=np.abs, neg=np.negative,
)


def select(c, a, b):
    return np.where(c, a, b)


def guard(pred, x, safe):
    """Operand of an operation in a conditional block: unchanged (see ``_rt.guard``)."""
    return x


def while_loop(body, carry):
    """A loop of generated code (see ``_rt.while_loop``)."""
    return _while_loop(any_active, body, carry)


def not_(x):
    return np.logical_not(x)


def idiv(a, b):
    a = np.asarray(a, np.int32)
    b = np.asarray(b, np.int32)
    safe = np.where(b == 0, 1, b)
    q = np.abs(a) // np.abs(safe) * np.sign(a) * np.sign(safe)
    return np.where(b == 0, 0, q).astype(np.int32)


def irem(a, b):
    a = np.asarray(a, np.int32)
    b = np.asarray(b, np.int32)
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.fmod(a, safe)).astype(np.int32)


def ishl(a, b):
    return np.left_shift(np.asarray(a, np.int32), np.asarray(b, np.int32))


def ishr(a, b):
    return np.right_shift(np.asarray(a, np.int32), np.asarray(b, np.int32))


def any_active(carry):
    return bool(np.any(carry[-1]))


_ops = make_ops(np)
ifcast, bfcast, bicast, ibcast, fbcast = _ops.ifcast, _ops.bfcast, _ops.bicast, _ops.ibcast, _ops.fbcast
fne, ficast, clog2, analysis = _ops.fne, _ops.ficast, _ops.clog2, _ops.analysis
keep_finished, broadcast_carry = _ops.keep_finished, _ops.broadcast_carry
