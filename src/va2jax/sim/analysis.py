"""Analyses on an :class:`~.engine.Engine`: DC operating point, DC sweep, AC and (re-exported from
:mod:`.tran`) transient.

Transient integration of ``dq/dt`` at ``t_{k+1}`` (step ``h = t_{k+1} − t_k``)::

    BE     q' = (q_{k+1} − q_k)/h
    trap   q' = 2(q_{k+1} − q_k)/h − q'_k
    gear2  q' = [(1+2ω)/(1+ω)·q_{k+1} − (1+ω)·q_k + ω²/(1+ω)·q_{k−1}]/h,   ω = h/h_prev

Step control: local truncation error from divided differences of the solution
(``BE: h²x''/2``, ``trap: h³x'''/12``, ``gear2: 2h³x'''/9``), normalised by
``lteratio·(reltol·|x| + vntol)``; a step is rejected when the ratio exceeds 1 or Newton fails
(then ``h ← h/8``). Steps land on source breakpoints; the step after a breakpoint uses BE.

AC: ``(Jf + jωJq)·X = U`` around the operating point.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import Va2JaxError
from .engine import (  # noqa: F401
    ConvergenceError,
    Engine,
    OpSolution,
    OpStatus,
    Options,
    dc_op,
    is_singular_error,
    loop_compiler_options,
    make_newton,
)
from .results import Result, Stats
from .tran import run_tran  # noqa: F401  (re-exported)

__all__ = ["ConvergenceError", "Engine", "Options", "Result", "Stats", "run_op", "run_dc_sweep",
           "run_ac", "run_tran"]


def run_op(eng: Engine, name: str) -> Result:
    t0 = time.perf_counter()
    b = eng.sys.source_vector(None, dc=True)
    x = eng.op(b)
    st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "op", None, None, list(eng.sys.names), x[None, :], st)


def run_dc_sweep(eng: Engine, name: str, source: str, values: np.ndarray) -> Result:
    """Sweep the ``dc`` value of independent source ``source`` over ``values``."""
    src = [s for s in eng.sys.sources if s.name.lower() == source.lower()]
    if not src:
        from ..errors import suggest

        raise Va2JaxError(f"analysis {name}: sweep of unknown source {source!r}"
                          + suggest(source, [s.name for s in eng.sys.sources]))
    s = src[0]
    old = s.wave.dc
    t0 = time.perf_counter()
    out = []
    x = None
    try:
        for v in values:
            s.wave.dc = float(v)
            b = eng.sys.source_vector(None, dc=True)
            x = eng.op(b, x, what=f"dc sweep {name} at {source}={v:g}")
            out.append(x)
    finally:
        s.wave.dc = old
    st = Stats(points=len(values), newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "dc", source, np.asarray(values, float), list(eng.sys.names), np.array(out), st)


def run_ac(eng: Engine, name: str, freqs: np.ndarray, x_op: np.ndarray | None = None) -> Result:
    """Small-signal AC: ``(Jf + jωJq)·X = U`` around the DC operating point (``x_op`` when
    given: VACASK's ``nodeset``)."""
    t0 = time.perf_counter()
    b = eng.sys.source_vector(None, dc=True)
    x = eng.op(b) if x_op is None else np.asarray(x_op, float)
    _, _, Jf, Jq = eng.jacobians(x)
    u = eng.sys.ac_vector()
    out = np.empty((len(freqs), eng.sys.n), complex)
    if eng.sparse:  # Jf, Jq: values on the sparse pattern
        import klujax

        Ai, Aj, _ = eng.pattern
        for k, f in enumerate(freqs):
            out[k] = np.asarray(klujax.solve(Ai, Aj, Jf + 2j * np.pi * f * Jq, u))
            if not np.all(np.isfinite(out[k])):
                raise ConvergenceError(f"ac {name}: singular matrix at f={f:g} Hz")
        st = Stats(points=len(freqs), newton_iterations=eng.iterations,
                   run_s=time.perf_counter() - t0)
        return Result(name, "ac", "frequency", np.asarray(freqs, float), list(eng.sys.names), out, st)
    from .._blas import single_threaded

    for k, f in enumerate(freqs):
        A = Jf + 2j * np.pi * f * Jq
        try:
            with single_threaded(eng.sys.n):
                out[k] = np.linalg.solve(A, u)
        except np.linalg.LinAlgError:
            raise ConvergenceError(f"ac {name}: singular matrix at f={f:g} Hz") from None
    st = Stats(points=len(freqs), newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "ac", "frequency", np.asarray(freqs, float), list(eng.sys.names), out, st)

