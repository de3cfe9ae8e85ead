"""The NumPy backend's transcendental functions are the C library's, bit for bit, on every CPU.

OSDI libraries built by openvaf-r call glibc's ``exp``, ``log``, ``pow``, ``sin``, ``hypot``, ...
(their undefined symbols), so the generated NumPy code must compute exactly those values. NumPy's
own SIMD kernels differ from glibc by an ulp on some arguments, depending on the CPU: on AVX-512F
``np.log`` differs on about 2 % of the arguments in [0.9, 1.1] (an import-time probe over
[0.001, 30] found none of them, and bsim3v3/bsim4v8 then differed from the ``-O0`` OSDI build).
Expected values: glibc called through ctypes, argument by argument.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import pytest

from va2jax.codegen import _rt_np

LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")

# (name in the generated code's ``jnp``, name in ``lax`` or None, C function, number of arguments)
FUNCS = [
    ("exp", "exp", "exp", 1), ("log", "log", "log", 1), ("log10", None, "log10", 1),
    ("sin", "sin", "sin", 1), ("cos", "cos", "cos", 1), ("tan", "tan", "tan", 1),
    ("arcsin", "asin", "asin", 1), ("arccos", "acos", "acos", 1), ("arctan", "atan", "atan", 1),
    ("sinh", "sinh", "sinh", 1), ("cosh", "cosh", "cosh", 1), ("tanh", "tanh", "tanh", 1),
    ("arcsinh", "asinh", "asinh", 1), ("arccosh", "acosh", "acosh", 1),
    ("arctanh", "atanh", "atanh", 1), ("power", "pow", "pow", 2), ("arctan2", "atan2", "atan2", 2),
    ("hypot", None, "hypot", 2),
]

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324,
           2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 709.78, 710.0,
           -745.2, -746.0, 1e-300, 1.0000000000000002, 0.9999999999999999, 1.0053927602949004]


def _wide(rng: np.random.Generator, n: int) -> np.ndarray:
    """Arguments over the whole double range: both signs, magnitudes log-uniform in
    [1e-310, 1e308], uniform near ±1 (where NumPy's AVX-512F log differs) and in [-40, 40]."""
    mag = 10.0 ** rng.uniform(-310.0, 308.0, n)
    near1 = 1.0 + rng.uniform(-0.1, 0.1, n)
    mid = rng.uniform(-40.0, 40.0, n)
    x = np.concatenate([mag, near1, mid, np.array(SPECIAL)])
    sign = np.where(rng.random(x.size) < 0.5, -1.0, 1.0)
    return np.concatenate([x, sign * x])


def _c(name: str, *cols: np.ndarray) -> np.ndarray:
    fn = getattr(LIBM, name)
    fn.restype = ctypes.c_double
    fn.argtypes = [ctypes.c_double] * len(cols)
    return np.array([fn(*a) for a in zip(*(c.tolist() for c in cols))], dtype=np.float64)


def _assert_bits(got, want, what):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, what
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=what)
    bad = (got.view(np.uint64) != want.view(np.uint64)) & ~nan  # +0 vs -0 counts
    assert not bad.any(), f"{what}: {int(bad.sum())} differ, e.g. at flat indices {np.flatnonzero(bad)[:3]}"


@pytest.mark.parametrize("jname, lname, cname, nargs", FUNCS, ids=[f[2] for f in FUNCS])
def test_function_is_glibc_bit_for_bit(jname, lname, cname, nargs):
    rng = np.random.default_rng(20261206)
    x = _wide(rng, 3000)
    cols = [x] if nargs == 1 else [x, rng.permutation(x)]
    if cname == "pow":  # also integer, half-integer and small exponents of positive bases
        y = np.concatenate([np.round(rng.uniform(-20, 20, x.size // 2)),
                            np.round(rng.uniform(-20, 20, x.size - x.size // 2)) / 2])
        cols = [np.concatenate([cols[0], np.abs(x)]), np.concatenate([cols[1], y])]
    want = _c(cname, *cols)
    with np.errstate(all="ignore"):
        _assert_bits(getattr(_rt_np.jnp, jname)(*cols), want, f"jnp.{jname}")
        if lname is not None:
            _assert_bits(getattr(_rt_np.lax, lname)(*cols), want, f"lax.{lname}")


def test_log_near_one_regression():
    """The case that broke bsim3v3/bsim4v8 on AVX-512 machines: log of arguments close to 1."""
    x = 1.0 + np.random.default_rng(5).uniform(-0.1, 0.1, 20000)
    _assert_bits(_rt_np.lax.log(x), _c("log", x), "lax.log near 1")
    _assert_bits(_rt_np.lax.log(np.array([1.0053927602949004])),
                 _c("log", np.array([1.0053927602949004])), "log(1.0053927602949004)")


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 4)])
def test_shapes_broadcasting_and_uniform_arguments(shape):
    """Result shape is the broadcast shape (as a NumPy ufunc's); arrays whose elements all have
    the same bits (one call of the C function) give the same values as element-wise calls."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 3.0, shape)
    got = _rt_np.jnp.power(x, 1.5)
    assert np.shape(got) == shape
    _assert_bits(got, _c("pow", np.ravel(x), np.full(x.size, 1.5)).reshape(shape), "pow")
    same = np.full(shape, 1.0053927602949004)
    _assert_bits(_rt_np.jnp.log(same), _c("log", np.ravel(same)).reshape(shape), "log uniform")
    # +0.0 and -0.0 compare equal but are different arguments: atan2(±0, -1) = ±pi
    z = np.array([0.0, -0.0, 0.0])
    _assert_bits(_rt_np.jnp.arctan2(z, -1.0), _c("atan2", z, np.full(3, -1.0)), "atan2 signed 0")
    ints = np.array([1, 2, 3], np.int32)
    _assert_bits(_rt_np.jnp.exp(ints), _c("exp", ints.astype(np.float64)), "exp of int32")
