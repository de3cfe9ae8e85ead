"""SPICE3 limiting functions: hand-derived values from their definitions."""
from __future__ import annotations

import math

import pytest

from va2jax.limiting import fetlim, limitlog, limvds, pnjlim

VT = 0.025852
VCRIT = 0.6


def test_pnjlim_small_step_passes():
    assert pnjlim(0.5, 0.49, VT, VCRIT) == (0.5, False)


def test_pnjlim_large_forward_step_log_compressed():
    v, ch = pnjlim(1.5, 0.7, VT, VCRIT)
    assert ch and v == pytest.approx(0.7 + VT * math.log(1 + 0.8 / VT), rel=1e-15)


def test_pnjlim_from_reverse_bias():
    v, ch = pnjlim(1.0, -0.2, VT, VCRIT)
    assert ch and v == pytest.approx(VT * math.log(1.0 / VT), rel=1e-15)


def test_pnjlim_negative_clamp():
    assert pnjlim(-10.0, 0.5, VT, VCRIT) == (-1.5, True)
    assert pnjlim(-10.0, -1.0, VT, VCRIT) == (-3.0, True)
    assert pnjlim(-0.5, 0.5, VT, VCRIT) == (-0.5, False)


def test_pnjlim_init():
    assert pnjlim(3.0, 0.0, VT, VCRIT, init=True) == (VCRIT, True)


def test_fetlim_regions():
    vto = 0.5
    # off, increasing past vto+0.5 -> clamp to vto+0.5
    assert fetlim(3.0, 0.0, vto) == (1.0, True)
    # middle region increasing -> at most vto+4
    assert fetlim(10.0, 1.0, vto) == (4.5, True)
    # middle region decreasing -> at least vto-0.5
    assert fetlim(-5.0, 1.0, vto) == (0.0, True)
    # on (vold >= vto+3.5), staying on with a big step: vold + (|2(vold-vto)|+2)
    assert fetlim(100.0, 5.0, vto) == (5.0 + 11.0, True)
    # small change passes through
    assert fetlim(1.1, 1.0, vto) == (1.1, False)


def test_limvds():
    assert limvds(10.0, 1.0) == (4.0, True)
    assert limvds(-3.0, 1.0) == (-0.5, True)
    assert limvds(30.0, 4.0) == (14.0, True)
    assert limvds(1.0, 4.0) == (2.0, True)
    assert limvds(3.0, 4.0) == (3.0, False)


def test_limitlog():
    assert limitlog(1.0, 0.5, 100.0) == (1.0, False)
    v, ch = limitlog(1100.0, 0.0, 100.0)
    assert ch and v == pytest.approx(100.0 + math.log10(11.0), rel=1e-15)
    v, ch = limitlog(-1100.0, 0.0, 100.0)
    assert ch and v == pytest.approx(-100.0 - math.log10(11.0), rel=1e-15)
