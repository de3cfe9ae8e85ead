"""Waveform measurements (oscillation period from level crossings).

A rising crossing of ``level`` between samples ``k`` and ``k+1`` (``v_k < level ≤ v_{k+1}``) is
placed by linear interpolation::

    t_c = t_k + (level − v_k)·(t_{k+1} − t_k)/(v_{k+1} − v_k)

The period is the mean of the differences of consecutive crossings after the first ``skip``
differences (start-up transient).
"""
from __future__ import annotations

import numpy as np

from ..errors import Va2JaxError


def crossings(t: np.ndarray, v: np.ndarray, level: float, rising: bool = True) -> np.ndarray:
    """Times (s) at which ``v`` crosses ``level`` upwards (``rising``) or downwards."""
    t = np.asarray(t, float)
    v = np.asarray(v, float)
    if not rising:
        v, level = -v, -level
    k = np.nonzero((v[:-1] < level) & (v[1:] >= level))[0]
    return t[k] + (level - v[k]) * (t[k + 1] - t[k]) / (v[k + 1] - v[k])


def oscillation_period(t: np.ndarray, v: np.ndarray, level: float, skip: int = 1,
                       min_periods: int = 2) -> tuple[float, np.ndarray]:
    """Mean period (s) of an oscillating waveform and the individual periods it averaged.

    ``skip`` periods after the first rising crossing of ``level`` are discarded (start-up);
    at least ``min_periods`` must remain, else :class:`~va2jax.Va2JaxError`.
    """
    tc = crossings(t, v, level)
    periods = np.diff(tc)[skip:]
    if periods.size < min_periods:
        raise Va2JaxError(f"oscillation period: {len(tc)} rising crossings of {level:g} V; "
                          f"need {min_periods + skip + 1} (run longer or check the oscillator)")
    return float(np.mean(periods)), periods
