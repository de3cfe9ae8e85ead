"""Model.setup refuses the parameter values (and temperatures) that the OSDI library built from the
same source refuses, naming parameter, value and bound; both paths must agree value by value."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from va2jax import Va2JaxError, compile_va
from va2jax.osdi import OsdiInitError, compile_va_to_osdi, load_library

VA = Path(__file__).resolve().parents[1] / "data" / "va" / "bounds.va"
DIODE = Path(__file__).resolve().parents[2] / "src" / "va2jax" / "data" / "diode.va"

NAN, INF = math.nan, math.inf
# (parameter, probe values): on, just inside and just outside every bound, NaN and ±inf
PROBES = {
    "is": [1e-14, 0.0, -1e-14, NAN, INF],
    "m": [0.0, 0.9, 0.95, -1e-3, 0.45, NAN],
    "g": [0.0, 1.0, -0.0, NAN],
    "h": [-4.0, 4.0, 4.5, 1.99, 2.0, 2.5, 3.0, -1.0, -0.99, NAN],
    "q": [0.0, 4.0, 4.01, -1.0],
    "c": [1e-15, 1e-9, 1.1e-9, 0.9e-15],
    "lvl": [0, 2, 3, -1],
    "free": [NAN, -INF, 1e300],
    "mac": [0.0, 1.0, 1.5, -0.5],
    "cond": [0.0, 5.0, 5.1, 1e-300],
}


def test_string_sets_not_checked(both):
    """String sets are not checked: OpenVAF's compiled check accepts only the set's first value
    (``mode="slow"`` is refused by the OSDI library although the source allows it)."""
    model, osdi = both
    assert _osdi_refuses(osdi, {"mode": "slow"}) and not _osdi_refuses(osdi, {"mode": "fast"})
    assert _ours_refuses(model, {"mode": "slow"}) is None


@pytest.fixture(scope="module")
def both():
    osdi = load_library(compile_va_to_osdi(VA, opt_level=0)).module("bounds")
    return compile_va(VA), osdi


def _osdi_refuses(osdi, params: dict, temperature: float = 300.15) -> bool:
    try:
        osdi.instance(params, temperature=temperature)
    except (OsdiInitError, Va2JaxError):
        return True
    return False


def _ours_refuses(model, params: dict, temperature: float = 300.15) -> str | None:
    try:
        model.setup(params, temperature=temperature)
    except Va2JaxError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", sorted(PROBES))
def test_same_values_refused(both, name):
    model, osdi = both
    for v in PROBES[name]:
        ref = _osdi_refuses(osdi, {name: v})
        msg = _ours_refuses(model, {name: v})
        assert (msg is not None) == ref, (name, v, msg)
        if msg is not None:  # parameter, value and bound named
            assert f"parameter {name} = {v!r}" in msg and "out of bounds (" in msg, msg


def test_expression_bound_uses_the_other_parameter(both):
    model, osdi = both
    for pmax, q in ((3.0, 5.9), (3.0, 6.1), (1.0, 2.5)):
        p = {"pmax": pmax, "q": q}
        assert (_ours_refuses(model, p) is not None) == _osdi_refuses(osdi, p), p


def test_defaults_checked_with_model_level_values(both):
    """OpenVAF checks defaults too: DEP's default 2 against a given LIM; a model parameter's bound
    sees model-level values only (MD from [0:LI] ignores the instance parameter LI given)."""
    model, osdi = both
    for p in ({"lim": 1.0}, {"lim": 2.5}, {"li": 0.1}, {"li": 0.1, "md": 0.9}, {"md": 1.5}):
        msg = _ours_refuses(model, p)
        assert (msg is not None) == _osdi_refuses(osdi, p), (p, msg)
    assert "parameter dep = 2.0 (its default) is out of bounds" in _ours_refuses(model, {"lim": 1.0})


def test_batch_names_the_instance(both):
    model, _ = both
    with pytest.raises(Va2JaxError, match=r"parameter m = 0\.95 is out of bounds \(from \[0:0\.9\]\) \(instance 2\)"):
        model.setup({"m": np.array([0.1, 0.2, 0.95])})


@pytest.mark.parametrize("temperature", [-5.0, 0.0, NAN, INF])
def test_temperature_refused_by_both(both, temperature):
    model, osdi = both
    assert _osdi_refuses(osdi, {}, temperature)
    msg = _ours_refuses(model, {}, temperature)
    assert msg is not None and "temperature" in msg


def test_bundled_diode():
    """The issue's reproducers on va2jax's own diode: IS=-1e-14, N=-1, IS=NaN, M=1 refused."""
    model = compile_va(DIODE)
    osdi = load_library(compile_va_to_osdi(DIODE, opt_level=0)).module(model.name)
    for p in ({"is": -1e-14}, {"n": -1.0}, {"is": NAN}, {"m": 1.0}, {"m": 0.95}, {"xti": NAN}):
        assert (_ours_refuses(model, p) is not None) == _osdi_refuses(osdi, p), p


def test_bound_naming_a_per_instance_parameter_broadcasts():
    """A scalar value whose bound names a parameter given per instance (vbic_1p3, bsimbulk: the
    whole setup failed with a NumPy broadcast error): the mask has the instances' shape and
    marks exactly the instances where ``lo < value`` fails (the formula, per instance)."""
    from va2jax.mir import violations
    from va2jax.mir._bounds import Bound

    lo = np.array([0.5, 1.5, 2.5, 0.9])
    bad, text = violations(np.asarray(1.0), (Bound("from", "from (lo:inf)", lo="lo", hi="inf",
                                                    lo_incl=False, hi_incl=False),), {"lo": lo})
    assert bad.shape == lo.shape and list(bad) == list(~(lo < 1.0)) and "lo" in text
