"""Independent-source waveforms (dc, pulse, sine, pwl, exp; VACASK's am, fm) and their breakpoints.

Values are computed in plain Python/NumPy between Newton solves: the source vector is an input of
the jitted Newton step, so waveforms never trigger recompilation.

Parameter names follow VACASK's ``vsource``/``isource`` (the SPICE reader maps ``PULSE(...)`` etc.
onto them):

* ``pulse``: ``val0 val1 delay rise fall width period``; one period is
  ``val0 → (rise) → val1 for width → (fall) → val0``.
* ``sine``: ``v = sinedc + ampl·sin(2π·freq·(t−delay) + phase)·exp(−damp·(t−delay))`` for
  ``t ≥ delay`` (``sinephase`` in degrees), ``sinedc + ampl·sin(phase)`` before.
* ``pwl``: ``wave=[t0 v0 t1 v1 …]`` linear interpolation, constant outside; VACASK's
  ``offset scale stretch delay`` shape the points (:func:`_pwl_shaped`).
* ``exp``: SPICE EXP(val0 val1 td1 tau1 td2 tau2).
* ``am``/``fm`` (VACASK netlists): :meth:`Waveform._modulated`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .expr import Value


@dataclass
class Waveform:
    """A source waveform. ``kind`` in {dc, pulse, sine, pwl, exp}; ``dc`` is the op value."""

    kind: str
    dc: float = 0.0
    p: dict[str, float] = field(default_factory=dict)
    wave: np.ndarray | None = None  # pwl points, shape (k, 2)
    mag: float = 0.0  # AC magnitude
    phase: float = 0.0  # AC phase, degrees
    m: float = 1.0  # the factor :func:`scaled` applied (a swept ``dc`` is multiplied by it)

    def value(self, t: float) -> float:
        """Source value at time ``t`` (seconds)."""
        k = self.kind
        p = self.p
        if k == "dc":
            return self.dc
        if k == "pulse":
            v0, v1 = p.get("val0", 0.0), p.get("val1", 0.0)
            td, tr, tf = p.get("delay", 0.0), p.get("rise", 0.0), p.get("fall", 0.0)
            pw, per = p.get("width", math.inf), p.get("period", math.inf)
            if t < td:
                return v0
            tt = t - td
            if per > 0 and math.isfinite(per):
                tt = math.fmod(tt, per)
                # guard against fmod putting an exact period end at ~per
                if per - tt < 1e-12 * per:
                    tt = 0.0
            if tt < tr:
                return v0 + (v1 - v0) * tt / tr
            if tt <= tr + pw:
                return v1
            if tt < tr + pw + tf:
                return v1 + (v0 - v1) * (tt - tr - pw) / tf
            return v0
        if k == "sine":
            off, a, f = p.get("sinedc", 0.0), p.get("ampl", 0.0), p.get("freq", 0.0)
            td, damp = p.get("delay", 0.0), p.get("damp", 0.0)
            ph = math.radians(p.get("sinephase", 0.0))
            if t < td:
                return off + a * math.sin(ph)
            tt = t - td
            return off + a * math.sin(2 * math.pi * f * tt + ph) * math.exp(-damp * tt)
        if k in ("am", "fm"):
            return float(self._modulated(max(t - p.get("delay", 0.0), 0.0), math))
        if k == "pwl":
            w = self.wave
            assert w is not None
            return float(np.interp(t, w[:, 0], w[:, 1]))
        if k == "exp":
            v0, v1 = p.get("val0", 0.0), p.get("val1", 0.0)
            td1, tau1 = p.get("td1", 0.0), p.get("tau1", 1.0)
            td2, tau2 = p.get("td2", td1 + tau1), p.get("tau2", tau1)
            v = v0
            if t > td1:
                v += (v1 - v0) * (1 - math.exp(-(t - td1) / tau1))
            if t > td2:
                v += (v0 - v1) * (1 - math.exp(-(t - td2) / tau2))
            return v
        raise AssertionError(k)

    def jax_value(self, t):  # noqa: ANN001, ANN201 - traced scalar in, traced scalar out
        """Same as :meth:`value` but traceable by JAX (``t`` a traced scalar)."""
        import jax.numpy as jnp

        k = self.kind
        p = self.p
        if k == "dc":
            return jnp.asarray(self.dc, dtype=jnp.float64) + 0.0 * t
        if k == "pulse":
            v0, v1 = p.get("val0", 0.0), p.get("val1", 0.0)
            td, tr, tf = p.get("delay", 0.0), p.get("rise", 0.0), p.get("fall", 0.0)
            pw, per = p.get("width", math.inf), p.get("period", math.inf)
            tt = t - td
            if per > 0 and math.isfinite(per):
                tt = jnp.where(tt >= 0, jnp.mod(tt, per), tt)
            rise = v0 + (v1 - v0) * tt / (tr if tr > 0 else 1.0)
            fall = v1 + (v0 - v1) * (tt - tr - pw) / (tf if tf > 0 else 1.0)
            big = 1e300
            pw_ = pw if math.isfinite(pw) else big
            return jnp.where(tt < 0, v0, jnp.where(tt < tr, rise, jnp.where(
                tt <= tr + pw_, v1, jnp.where(tt < tr + pw_ + tf, fall, v0))))
        if k == "sine":
            off, a, f = p.get("sinedc", 0.0), p.get("ampl", 0.0), p.get("freq", 0.0)
            td, damp = p.get("delay", 0.0), p.get("damp", 0.0)
            ph = math.radians(p.get("sinephase", 0.0))
            tt = jnp.maximum(t - td, 0.0)
            return off + a * jnp.sin(2 * math.pi * f * tt + ph) * jnp.exp(-damp * tt)
        if k in ("am", "fm"):
            return self._modulated(jnp.maximum(t - p.get("delay", 0.0), 0.0), jnp)
        if k == "pwl":
            w = self.wave
            assert w is not None
            return jnp.interp(t, jnp.asarray(w[:, 0]), jnp.asarray(w[:, 1]))
        if k == "exp":
            v0, v1 = p.get("val0", 0.0), p.get("val1", 0.0)
            td1, tau1 = p.get("td1", 0.0), p.get("tau1", 1.0)
            td2, tau2 = p.get("td2", td1 + tau1), p.get("tau2", tau1)
            v = v0 + jnp.where(t > td1, (v1 - v0) * (1 - jnp.exp(-(t - td1) / tau1)), 0.0)
            return v + jnp.where(t > td2, (v0 - v1) * (1 - jnp.exp(-(t - td2) / tau2)), 0.0)
        raise AssertionError(k)

    def _modulated(self, tt, xp):  # noqa: ANN001, ANN202 - float or traced scalar
        """VACASK's ``am``/``fm`` at ``tt`` = time since ``delay`` (≥ 0): carrier
        ``sinedc + ampl·sin(2π·freq·tt + φ)``, modulation ``modindex·sin(2π·modfreq·tt + φm)``
        (``φ`` = ``sinephase``, ``φm`` = ``modphase``, degrees) multiplies the amplitude by
        ``1 + m(tt)`` (am) or adds ``m(tt)`` to the carrier's phase (fm)."""
        p = self.p
        ph = math.radians(p.get("sinephase", 0.0))
        mod = p.get("modindex", 0.5) * xp.sin(2 * math.pi * p.get("modfreq", 1e3) * tt
                                              + math.radians(p.get("modphase", 0.0)))
        arg = 2 * math.pi * p.get("freq", 1e3) * tt + ph
        if self.kind == "am":
            return p.get("sinedc", 0.0) + p.get("ampl", 1.0) * xp.sin(arg) * (1 + mod)
        return p.get("sinedc", 0.0) + p.get("ampl", 1.0) * xp.sin(arg + mod)

    def breakpoints(self, stop: float) -> list[float]:
        """Times in ``[0, stop]`` where the waveform has a corner (the step control lands on them)."""
        out: list[float] = []
        if self.kind == "pulse":
            p = self.p
            td, tr, tf = p.get("delay", 0.0), p.get("rise", 0.0), p.get("fall", 0.0)
            pw, per = p.get("width", math.inf), p.get("period", math.inf)
            corners = [0.0, tr, tr + pw, tr + pw + tf]
            base = td
            count = 0
            while base <= stop and count < 1_000_000:
                out.extend(base + c for c in corners if math.isfinite(c) and base + c <= stop)
                if not (per > 0 and math.isfinite(per)):
                    break
                base += per
                count += 1
        elif self.kind == "pwl" and self.wave is not None:
            out.extend(float(t) for t in self.wave[:, 0] if 0 <= t <= stop)
        elif self.kind in ("sine", "exp", "am", "fm"):
            for key in ("delay", "td1", "td2"):
                if key in self.p and 0 < self.p[key] <= stop:
                    out.append(self.p[key])
        return out


#: VACASK's defaults of the waveform parameters (lib/devvisrc.cpp), by source type
_VACASK_DEFAULTS = {"pulse": {"val0": 0.0, "val1": 1.0, "rise": 1e-9, "fall": 0.0, "width": 0.0,
                              "period": 0.0, "delay": 0.0},
                    "sine": {"sinedc": 0.0, "ampl": 1.0, "freq": 1e3, "delay": 0.0},
                    "exp": {"val0": 0.0, "val1": 1.0, "delay": 0.0, "td2": 0.0},
                    "am": {"sinedc": 0.0, "ampl": 1.0, "freq": 1e3, "delay": 0.0,
                           "modfreq": 1e3, "modphase": 0.0, "modindex": 0.5}}
_VACASK_DEFAULTS["fm"] = _VACASK_DEFAULTS["am"]
#: SPICE source types VACASK does not have (its lib/devvisrc.cpp: "Unknown transient waveform
#: type")
_VACASK_PLANNED = {"sffm"}
#: VACASK's pwl parameters va2jax does not apply yet: ``period`` (the installed VACASK repeats
#: the wave with it, but the segment after the last point does not lead to the first point's
#: value), and the mirror's later ``pwlperiod twidth allbrkpts reltol`` (the installed VACASK:
#: "Parameter ... not found")
_PWL_PLANNED = {"period", "pwlperiod", "twidth", "allbrkpts", "reltol"}


def _vacask_params(low: dict[str, Value], kind: str, where: str) -> dict[str, Value]:
    """VACASK's meaning of the parameters: its defaults; ``theta`` the sine's damping (1/s);
    an ``exp`` rising from ``delay`` and falling from ``delay + td2``; a pulse with
    ``period=0`` is not periodic, with ``fall=0`` stays at ``val1`` after its rise.
    ``sinephase`` (a va2jax name) sets the sine's phase; VACASK's ``phase`` is the AC phase
    only."""
    from ..errors import Va2JaxError

    if kind in _VACASK_PLANNED:
        raise Va2JaxError(f"{where}: unknown source type {kind!r} (VACASK's: dc, sine, pulse, "
                          "exp, pwl, am, fm)")
    for k in sorted((_PWL_PLANNED - ({"period"} if kind != "pwl" else set())) & set(low)):
        raise Va2JaxError(f"{where}: pwl parameter {k!r} not supported yet")
    out = {**_VACASK_DEFAULTS.get(kind, {}), **low}
    if "theta" in out:
        out["damp"] = out.pop("theta")
    if kind == "exp":
        d = float(out.get("delay", 0.0))
        out["td1"] = d
        out["td2"] = d + float(out["td2"])
        out.setdefault("tau1", 0.0)
        out.setdefault("tau2", 0.0)
        for tau in ("tau1", "tau2"):
            if float(out[tau]) <= 0:
                raise Va2JaxError(f"{where}: exp source needs {tau} > 0")
    if kind == "pulse" and float(out["period"]) <= 0:
        out["period"] = math.inf
    if kind == "pulse" and float(out["fall"]) <= 0:  # no fall: stays on top (to the period's end)
        out["width"] = math.inf
    return out


def make_waveform(params: dict[str, Value], where: str, vacask: bool = False) -> Waveform:
    """Build a :class:`Waveform` from VACASK-style source parameters (already evaluated);
    ``vacask``: with VACASK's defaults and meanings (:func:`_vacask_params`), else the SPICE
    reader's (its cards give every value).

    Raises :class:`va2jax.errors.Va2JaxError` naming ``where`` for an unknown ``type``.
    """
    from ..errors import Va2JaxError

    low = {k.lower(): v for k, v in params.items()}
    raw = str(low.get("type", "dc"))
    kind = raw.lower()
    if vacask and raw != kind:  # VACASK's type names (lib/devvisrc.cpp) are matched exactly
        raise Va2JaxError(f"{where}: unknown source type {raw!r} (VACASK's names are "
                          f"case-sensitive: {kind!r})")
    if not vacask:
        kind = {"sin": "sine"}.get(kind, kind)
    if vacask and "type" in low:
        low = _vacask_params(low, kind, where)
    if kind not in ("dc", "pulse", "sine", "pwl", "exp") and not (vacask and kind in ("am", "fm")):
        raise Va2JaxError(f"{where}: unknown source type {kind!r} (dc, pulse, sine, pwl, exp"
                          + (", am, fm)" if vacask else ")"))
    nums = {k: float(v) for k, v in low.items() if isinstance(v, (int, float))}
    wf = Waveform(kind=kind, p=nums, mag=nums.get("mag", 0.0), phase=nums.get("phase", 0.0))
    if kind == "pwl":
        w = low.get("wave")
        if not isinstance(w, list) or len(w) < 2 or len(w) % 2:
            raise Va2JaxError(f"{where}: pwl source needs wave=[t0 v0 t1 v1 ...]")
        arr = np.asarray(w, dtype=float).reshape(-1, 2)
        steps = np.diff(arr[:, 0])
        if np.any(steps < 0):
            raise Va2JaxError(f"{where}: pwl times must not decrease")
        if vacask and np.any(steps == 0):  # VACASK: "Pwl scale is not strictly monotonic"
            raise Va2JaxError(f"{where}: pwl times must increase strictly (VACASK); a jump is two "
                              "points a short time apart")
        if vacask and len(arr) < 2:  # VACASK: "Pwl waveform needs at least two points."
            raise Va2JaxError(f"{where}: pwl source needs at least two points (VACASK)")
        wf.wave = _pwl_shaped(arr, nums, where)
    if "dc" in nums and not (vacask and kind != "dc"):  # VACASK: a waveform's op is its t=0
        wf.dc = nums["dc"]
    else:
        wf.dc = wf.value(0.0) if kind != "dc" else 0.0
    return wf


def _pwl_shaped(arr: np.ndarray, nums: dict[str, float], where: str) -> np.ndarray:
    """VACASK's pwl shaping of the points ``(t_i, v_i)`` (``arr``, shape (k, 2)): point ``i``
    lies at time ``stretch·t_i + delay`` (s) with value ``offset + scale·v_i``; defaults
    ``stretch=1 delay=0 offset=0 scale=1``. Applied to the points, so every evaluation of the
    wave (``value``, ``jax_value``, the native step kernel) and its breakpoints follow.
    ``slopetol`` (≥ 0) is checked only: the installed VACASK keeps every point as a breakpoint
    whatever its value, as va2jax does."""
    from ..errors import Va2JaxError

    stretch = nums.get("stretch", 1.0)
    if not stretch > 0:  # VACASK: "Waveform stretch must be >0."
        raise Va2JaxError(f"{where}: pwl stretch must be > 0, got {stretch:g}")
    if not nums.get("slopetol", 0.0) >= 0:  # VACASK: "Parameter slopetol must be >=0."
        raise Va2JaxError(f"{where}: pwl slopetol must be >= 0, got {nums['slopetol']:g}")
    out = arr.copy()
    if stretch != 1.0 or "delay" in nums:
        out[:, 0] = stretch * arr[:, 0] + nums.get("delay", 0.0)
    if "scale" in nums or "offset" in nums:
        out[:, 1] = nums.get("offset", 0.0) + nums.get("scale", 1.0) * arr[:, 1]
    return out


def scaled(wf: Waveform, m: float) -> Waveform:
    """``wf`` times ``m`` (an isource's ``$mfactor``: ``m`` sources in parallel): every value
    level, the op value and the AC magnitude; times and rates unchanged."""
    if m == 1.0:
        return wf
    levels = {"val0", "val1", "sinedc", "ampl"}
    p = {k: (v * m if k in levels else v) for k, v in wf.p.items()}
    wave = None if wf.wave is None else wf.wave * np.array([1.0, m])
    return Waveform(wf.kind, wf.dc * m, p, wave, wf.mag * m, wf.phase, wf.m * m)
