"""Gradient-safe runtime for generated model code (used by :meth:`va2jax.Model.function`).

The generated module is executed a second time with this module as ``rt`` and with the ``lax`` and
``jnp`` namespaces below. Values are those of :mod:`._rt` wherever a block runs; what changes is
what reverse-mode differentiation sees:

* **untaken lanes** — :func:`guard` gives an operation of a block that does not run an operand
  inside its domain (``where(pred, x, safe)``, the "double where"), so the ``select`` that
  discards the lane gets finite cotangents (without it ``0 · ∞ = NaN``: sqrt of a negative number,
  log 0, 1/0 or exp overflow on the side not taken poisons the gradient);
* **non-finite values** — an operation whose result is ±inf or NaN (``1/0`` in setup for a
  parameter left at 0, say) passes no derivative: ``y = where(bad, stop_gradient(f(x)),
  f(where(bad, safe, x)))``. Such a value is usually used only on a side not taken, where its
  (zero) cotangent would otherwise meet an infinite partial derivative. Forward-mode tangents of a
  non-finite value are 0 instead of inf/NaN. The same holds for ``sqrt(0)`` (finite value,
  infinite slope: BSIM4 takes ``sqrt(p/x)`` with a parameter ``p = 0``, whose zero tangent
  would give 0 · inf = NaN in every direction);
* **loops** — ``lax.scan`` over :data:`MAX_LOOP_ITERATIONS` applications of the body instead of
  ``lax.while_loop`` (which reverse mode cannot differentiate). Lanes that stopped keep their
  carry, so values are the same; a lane still iterating after the bound gets NaN.
"""
from __future__ import annotations

import jax.numpy as _jnp
from jax import lax as _lax

from ._rt import *  # noqa: F401,F403 — every helper not replaced below

#: Iterations a loop may take in the gradient-safe runtime (see :func:`while_loop`).
MAX_LOOP_ITERATIONS = 256


def guard(pred, x, safe):
    """``x`` where ``pred`` (the block runs), else ``safe``, a value inside the operation's domain."""
    if pred is True:
        return x
    return _jnp.where(pred, x, safe)


def while_loop(body, carry):
    """``body`` applied :data:`MAX_LOOP_ITERATIONS` times (``lax.scan``); see the module docstring."""
    out, _ = _lax.scan(lambda c, _: (body(c), None), carry, None, length=MAX_LOOP_ITERATIONS)
    go = out[-1]
    return tuple(_jnp.where(go, _jnp.nan, v) if _jnp.issubdtype(_jnp.result_type(v), _jnp.floating) else v
                 for v in out)


def _finite_grad(fn, safe: float, regular=None):
    """``fn`` whose derivative is cut (0) where its result is not finite, or where
    ``regular(*args)`` is false (a finite value with an infinite partial derivative, like
    ``sqrt(0)``); values unchanged."""
    def op(*args):
        raw = fn(*args)
        if not _jnp.issubdtype(_jnp.result_type(raw), _jnp.floating):
            return raw  # integer multiply
        ok = _jnp.isfinite(raw) if regular is None else _jnp.isfinite(raw) & regular(*args)
        return _jnp.where(ok, fn(*(_jnp.where(ok, a, safe) for a in args)), _lax.stop_gradient(raw))
    op.__name__ = getattr(fn, "__name__", "op")
    return op


class _Namespace:
    """``base`` with some functions replaced."""

    def __init__(self, base, **overrides):
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._base, name)


_SAFE = {"div": 1.0, "mul": 1.0, "pow": 1.0, "rem": 1.0, "atan2": 1.0, "sqrt": 1.0, "log": 1.0,
         "exp": 0.0, "sinh": 0.0, "cosh": 0.0, "tan": 0.0, "asin": 0.0, "acos": 0.0, "atanh": 0.0,
         "acosh": 2.0}
_REGULAR = {"sqrt": lambda x: x > 0}
lax = _Namespace(_lax, **{k: _finite_grad(getattr(_lax, k), v, _REGULAR.get(k)) for k, v in _SAFE.items()})
jnp = _Namespace(_jnp, log10=_finite_grad(_jnp.log10, 1.0), hypot=_finite_grad(_jnp.hypot, 1.0))
