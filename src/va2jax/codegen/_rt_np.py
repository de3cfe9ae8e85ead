"""NumPy flavour of the generated code's namespace: ``jnp``, ``lax`` and ``rt`` for eager,
compile-free execution on batches (arrays of shape (N,)).

Setup (OpenVAF's init function) runs once per parameter set, so compiling it with XLA costs far
more than it saves; va2jax runs the same generated source with these NumPy stand-ins instead.
IEEE double arithmetic is identical; every transcendental function (``exp``, ``log``, ``pow``,
``sin``, ...) is the C library's, called element by element, as in the OSDI library itself.
Float errors (overflow, 0/0) produce inf/NaN silently, as in C.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import types

import numpy as np

from ._rt_ops import make_ops

F64 = np.float64
I32 = np.int32
BOOL = np.bool_

# The C library the OSDI libraries are linked against (glibc's libm on Linux): their calls of
# exp, log, pow, sin, ... resolve to it, in this process too.
_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")

# CPython's ``math`` functions that call the C function of the same name for every finite
# argument (special arguments follow C99 Annex F, as glibc does) — a call without ctypes overhead.
# ``math.hypot`` is CPython's own algorithm, not C's ``hypot``: hypot goes through ctypes.
_VIA_MATH = {"exp": math.exp, "log": math.log, "log10": math.log10, "pow": math.pow,
             "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
             "acos": math.acos, "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh,
             "cosh": math.cosh, "tanh": math.tanh, "asinh": math.asinh, "acosh": math.acosh,
             "atanh": math.atanh}


def _libm(name: str, nargs: int = 1):
    """The C library's ``name`` (double → double, or (double, double) → double) element-wise on
    NumPy arrays (broadcast; result float64 of the broadcast shape).

    Always the C function, for every argument: NumPy's own SIMD kernels (``log``/``exp`` on
    AVX-512F, SVML-based ``power``, ``tanh``, ``log10``, ... on AVX-512 or AVX2) are not glibc's and
    round differently by an ulp on some arguments, which Jacobian cancellation turns into relative
    errors up to 1e-10 (docs/conformance-triage.md). Where every element has the same bits (setup
    of instances sharing a model card) the function is called once. Where CPython's wrapper
    raises (pole, domain or overflow error) the element is computed by the C function through
    ctypes, which returns C's ±inf/NaN.
    """
    c_fn = getattr(_LIBM, name)
    c_fn.restype = ctypes.c_double
    c_fn.argtypes = [ctypes.c_double] * nargs
    fast = _VIA_MATH.get(name, c_fn)

    def safe(*a):
        try:
            return fast(*a)
        except (ValueError, OverflowError):
            return c_fn(*a)

    def call(*args):
        arrs = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in args))
        shape = arrs[0].shape
        flat = [a.ravel() for a in arrs]
        if flat[0].size > 1 and all((f.view(np.uint64) == f.view(np.uint64)[0]).all() for f in flat):
            return np.full(shape, safe(*(float(f[0]) for f in flat)))
        cols = [f.tolist() for f in flat]
        try:
            out = list(map(fast, *cols))
        except (ValueError, OverflowError):
            out = list(map(safe, *cols))
        return np.array(out, dtype=np.float64).reshape(shape)

    call.__name__ = name
    call.__qualname__ = f"libm.{name}"
    return call


# sqrt, floor, ceil, abs, fmod are exact (correctly rounded or exact by definition) in NumPy and C.
jnp = types.SimpleNamespace(
    where=np.where, sqrt=np.sqrt, exp=_libm("exp"), log=_libm("log"), log10=_libm("log10"),
    floor=np.floor, ceil=np.ceil, sin=_libm("sin"), cos=_libm("cos"), tan=_libm("tan"),
    arcsin=_libm("asin"), arccos=_libm("acos"), arctan=_libm("atan"), sinh=_libm("sinh"),
    cosh=_libm("cosh"), tanh=_libm("tanh"), arcsinh=_libm("asinh"), arccosh=_libm("acosh"),
    arctanh=_libm("atanh"), abs=np.abs, power=_libm("pow", 2), arctan2=_libm("atan2", 2),
    hypot=_libm("hypot", 2), logical_not=np.logical_not, invert=np.invert, fmod=np.fmod,
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
