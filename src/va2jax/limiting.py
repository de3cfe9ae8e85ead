"""SPICE3 junction/FET voltage limiting (``$limit``) as pure scalar maths — no ctypes, no JAX.

The OSDI loader registers these functions in a library's ``OSDI_LIM_TABLE``; the JAX code
generator reuses the same definitions, so both paths limit identically. Written from the SPICE3
(Berkeley ``devsup.c``) / ngspice definitions of ``DEVpnjlim``, ``DEVfetlim``, ``DEVlimvds`` and
``DEVlimitlog``; the ngspice refinements are used where they differ from SPICE3f5 (negative
junction-voltage limiting in ``pnjlim``; ``vtstlo = |vold - vto| + 1`` in ``fetlim``). No global
"voltagelimit" clamp is applied (VACASK's default leaves it off too).

OpenVAF calls a limiting function as ``f(init, *check, vnew, vold, *extra)``: ``vnew`` is the
voltage of this Newton iteration, ``vold`` the (limited) value of the previous one, ``extra`` the
remaining ``$limit`` arguments; ``init`` is true when the simulator requested ``INIT_LIM`` (first
iteration). Each function below returns ``(v_limited, changed)``; the ``init`` values follow VACASK
(``pnjlim``: ``vcrit``; ``fetlim``: ``vto + 0.1``; ``limvds``: 0.1 V; ``limitlog``: 0).
"""
from __future__ import annotations

import math


def pnjlim(vnew: float, vold: float, vt: float, vcrit: float, init: bool = False) -> tuple[float, bool]:
    """Limit a PN-junction voltage step (V).

    Above ``vcrit`` (V) with a step larger than ``2*vt`` (``vt`` = thermal voltage, V) the step is
    compressed logarithmically; a reverse-bias step below ``-1 - vold`` (``vold > 0``) or
    ``2*vold - 1`` (``vold <= 0``) is clamped there. Returns ``(v, changed)``.
    """
    if init:
        return vcrit, True
    if vnew > vcrit and abs(vnew - vold) > vt + vt:
        if vold > 0:
            arg = 1.0 + (vnew - vold) / vt
            if arg > 0:
                return vold + vt * math.log(arg), True
            return vcrit, True
        return vt * math.log(vnew / vt), True
    if vnew < 0:
        arg = -vold - 1.0 if vold > 0 else 2.0 * vold - 1.0
        if vnew < arg:
            return arg, True
    return vnew, False


def typedpnjlim(vnew: float, vold: float, vt: float, vcrit: float, type_: float,
                init: bool = False) -> tuple[float, bool]:
    """:func:`pnjlim` of ``type_ * vnew`` (``type_`` = +1 / -1 device polarity); VACASK extension."""
    if init:
        return vcrit, True
    return pnjlim(type_ * vnew, vold, vt, vcrit)


def fetlim(vnew: float, vold: float, vto: float, init: bool = False) -> tuple[float, bool]:
    """Limit a FET gate-source voltage step (V) around the threshold ``vto`` (V).

    Returns ``(v, changed)``; ``changed`` is true when the result differs from ``vnew``.
    """
    if init:
        return vto + 0.1, True
    v = vnew
    vtsthi = abs(2.0 * (vold - vto)) + 2.0
    vtstlo = abs(vold - vto) + 1.0
    vtox = vto + 3.5
    delv = v - vold
    if vold >= vto:
        if vold >= vtox:
            if delv <= 0:  # going off
                if v >= vtox:
                    if -delv > vtstlo:
                        v = vold - vtstlo
                else:
                    v = max(v, vto + 2.0)
            elif delv >= vtsthi:  # staying on
                v = vold + vtsthi
        elif delv <= 0:  # middle region, decreasing
            v = max(v, vto - 0.5)
        else:  # middle region, increasing
            v = min(v, vto + 4.0)
    else:  # off
        if delv <= 0:
            if -delv > vtsthi:
                v = vold - vtsthi
        else:
            vtemp = vto + 0.5
            if v <= vtemp:
                if delv > vtstlo:
                    v = vold + vtstlo
            else:
                v = vtemp
    return v, v != vnew


def limvds(vnew: float, vold: float, init: bool = False) -> tuple[float, bool]:
    """Limit a FET drain-source voltage step (V). Returns ``(v, changed)``."""
    if init:
        return 0.1, True
    v = vnew
    if vold >= 3.5:
        if v > vold:
            v = min(v, 3.0 * vold + 2.0)
        elif v < 3.5:
            v = max(v, 2.0)
    elif v > vold:
        v = min(v, 4.0)
    else:
        v = max(v, -0.5)
    return v, v != vnew


def limitlog(vnew: float, vold: float, lim_tol: float, init: bool = False) -> tuple[float, bool]:
    """Damp a step larger than ``lim_tol`` logarithmically (``log10``), e.g. a temperature rise (K).

    NaN inputs pass through unchanged (ngspice instead resets to 0 once with a warning).
    Returns ``(v, changed)``.
    """
    if init:
        return 0.0, True
    if vnew > vold + lim_tol:
        return vold + lim_tol + math.log10((vnew - vold) / lim_tol), True
    if vnew < vold - lim_tol:
        return vold - lim_tol - math.log10((vold - vnew) / lim_tol), True
    return vnew, False


#: Limiting functions by the name a model passes to ``$limit``, with the number of extra arguments
#: (after ``vnew`` and ``vold``) that OpenVAF records in ``OSDI_LIM_TABLE``.
LIMIT_FUNCTIONS = {
    "pnjlim": (pnjlim, 2),
    "typedpnjlim": (typedpnjlim, 3),
    "fetlim": (fetlim, 1),
    "limvds": (limvds, 0),
    "limitlog": (limitlog, 1),
    "limlog": (limitlog, 1),
}
