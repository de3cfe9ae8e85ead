"""Generated JAX code vs the OSDI library built by ``openvaf-r`` from the same Verilog-A source.

For K parameter sets × N random operating points, both paths evaluate resistive and reactive
residuals and Jacobians; per output we report the largest absolute error and the largest relative
error ``|jax - osdi| / max(|jax|, |osdi|)`` over the entries whose magnitude exceeds the absolute
floor ``ABS_FLOOR`` (entries below it must agree to within ``ABS_FLOOR`` absolutely). A run passes
when every relative error is ≤ ``REL_TOL`` (1e-12) and every sub-floor entry within the floor, and
both paths agree on which entries are non-finite and how (NaN, +inf, −inf). Non-finite reference
entries are counted in ``nonfinite_reference`` and reported by the CLI (they are compared by kind
only); a run with no points is refused.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import Va2JaxError

REL_TOL = 1e-12
ABS_FLOOR = 1e-20
OUTPUTS = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react")


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_file` (JSON-ready through :meth:`as_json`)."""

    file: str
    module: str
    points: int
    param_sets: list[dict[str, Any]]
    max_rel_err: dict[str, float]
    max_abs_err: dict[str, float]
    passed: bool
    openvaf_r_seconds: float = math.nan
    va2jax_seconds: float = math.nan
    worst: dict[str, Any] = field(default_factory=dict)
    #: with ``keep=True``: arrays for plots (bias sweeps, both paths' outputs, relative errors)
    data: dict[str, Any] | None = field(default=None, repr=False)
    #: ``openvaf-r -O`` level of the OSDI reference (``None``: openvaf-r's default, 3)
    reference_opt_level: int | None = None
    #: per output, how many reference entries were NaN or ±inf (compared by kind only)
    nonfinite_reference: dict[str, int] = field(default_factory=dict)
    #: noise comparison: ``"none"`` (no noise sources), ``"compared"`` (max errors under the key
    #: ``noise``), or why it was not compared (a source va2jax cannot compute: not a failure)
    noise: str = "none"
    #: number of noise sources of the module
    noise_sources: int = 0
    #: how many of them had a non-zero OSDI density at some compared point (the others, e.g.
    #: flicker sources with the default kf = 0, were compared at 0 only)
    noise_nonzero: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "module": self.module, "points": self.points,
                "max_rel_err": self.max_rel_err, "max_abs_err": self.max_abs_err,
                "passed": self.passed, "openvaf_r_seconds": self.openvaf_r_seconds,
                "va2jax_seconds": self.va2jax_seconds, "param_sets": self.param_sets,
                "reference_opt_level": self.reference_opt_level,
                "nonfinite_reference": self.nonfinite_reference, "noise": self.noise,
                "noise_sources": self.noise_sources, "noise_nonzero": self.noise_nonzero}


def _compare(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None = None,
             floor: float = ABS_FLOOR) -> tuple[float, float, bool, Any]:
    """(max rel err above floor, max abs err, ok, index of worst) for arrays a (jax) and b (osdi).

    ``scale`` (optional, same shape): Σ|terms| of entries that are sums over collapsed nodes; the
    relative error of a floating-point sum is measured against it (a sum of terms that cancel
    carries the rounding error of its largest term, whatever order it is added in).
    """
    fa, fb = np.isfinite(a), np.isfinite(b)
    # non-finite entries must match in kind: NaN with NaN, +inf with +inf, -inf with -inf
    ok = bool(np.array_equal(fa, fb) and np.array_equal(np.isnan(a), np.isnan(b))
              and np.array_equal(np.isposinf(a), np.isposinf(b)))
    both = fa & fb
    with np.errstate(invalid="ignore"):
        diff = np.where(both, np.abs(a - b), 0.0)
    mag = np.where(both, np.maximum(np.abs(a), np.abs(b)), 0.0)
    if scale is not None:
        mag = np.where(both & np.isfinite(scale), np.maximum(mag, np.abs(scale)), mag)
    big = mag > floor
    rel = np.where(big, diff / np.where(big, mag, 1.0), 0.0)
    small_bad = (~big) & (diff > floor)
    max_rel = float(rel.max()) if rel.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    ok = ok and max_rel <= REL_TOL and not bool(small_bad.any())
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else None
    return max_rel, max_abs, ok, worst


def random_voltages(node_kinds: list[str], n: int, rng: np.random.Generator, vmax: float = 1.0) -> np.ndarray:
    """N random operating points: node voltages uniform in ±vmax V, flow unknowns ±1 mA."""
    cols = []
    for k in node_kinds:
        if k == "BranchCurrent":
            cols.append(rng.uniform(-1e-3, 1e-3, n))
        else:
            cols.append(rng.uniform(-vmax, vmax, n))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def _param_sets(osdi_mod, base: dict[str, Any], k: int, rng: np.random.Generator, temp: float
                ) -> list[tuple[dict[str, Any], float]]:
    """K parameter sets: ``base`` at ``temp``, then variations accepted by OSDI's own setup."""
    from ..osdi import OsdiInitError

    sets = [(dict(base), temp)]
    reals = []
    for p in osdi_mod.params:
        if p.type != "real" or p.length != 0:
            continue
        try:
            inst = osdi_mod.instance(dict(base), temperature=temp)
            val = inst.get(p.name) if p.kind == "instance" else inst.model.get(p.name)
        except Exception:
            continue
        if isinstance(val, float) and math.isfinite(val) and val != 0.0:
            reals.append((p.name, val))
        if len(reals) > 400:
            break
    tries = 0
    while len(sets) < k and tries < 20 * k:
        tries += 1
        cand = dict(base)
        base_lower = {b.lower(): b for b in base}
        for name, val in reals:
            if name.lower() in base_lower:
                bk = base_lower[name.lower()]
                if not isinstance(base[bk], str):
                    cand[bk] = float(base[bk]) * rng.uniform(0.9, 1.1)
            elif rng.random() < 0.3:
                cand[name] = val * rng.uniform(0.9, 1.1)
        t = temp + rng.uniform(-40.0, 60.0)
        try:
            osdi_mod.instance(cand, temperature=t)
        except (OsdiInitError, Va2JaxError):
            continue
        sets.append((cand, t))
    return sets


#: Parameters that switch noise sources on (flicker coefficient, parasitic resistances) and are 0
#: by default in many models: the extra ``noise`` parameter set gives them these values, so that
#: more sources are compared at non-zero densities (only where OSDI's setup accepts them).
#: The integer switches turn on BSIM4's/BSIM-BULK's gate and body resistor networks (BSIM4's body
#: noise is five same-named sources in voltage contributions).
NOISE_PARAMS = {"kf": 1e-20, "rs": 10.0, "rd": 10.0, "rsh": 10.0, "nrs": 1.0, "nrd": 1.0,
                "rb": 50.0, "rbm": 10.0, "rc": 10.0, "re": 2.0, "rg": 5.0, "rgo": 5.0,
                "rshg": 10.0, "rsw": 5.0, "rbx": 10.0, "rbi": 10.0, "rcx": 5.0, "rci": 5.0,
                "rgatemod": 1, "rbodymod": 1}


#: values that mean "left at its default of 0": 0, and the "not given" sentinels of the Berkeley
#: BSIM Verilog-A sources (``bsim4v8.va``'s ``kf`` defaults to -12345789, ``rbodymod`` to -9999999)
_UNSET = (0, -9999999, -12345789)


def _noise_param_set(omod, base: dict[str, Any], temp: float) -> dict[str, Any] | None:
    """``base`` plus the :data:`NOISE_PARAMS` the module has as parameters of the value's type
    (real, or integer for an ``int`` value) left at 0 or unset (:data:`_UNSET`; each kept only if
    OSDI's setup accepts it); ``None`` when none applies."""
    from ..osdi import OsdiInitError

    lower = {k.lower() for k in base}
    try:
        inst = omod.instance(dict(base), temperature=temp)
    except (OsdiInitError, Va2JaxError):
        return None
    extra: dict[str, Any] = {}
    for name, val in NOISE_PARAMS.items():
        try:
            p = omod.find_param(name)
        except Va2JaxError:
            continue
        if (p.type != ("int" if isinstance(val, int) else "real") or p.length
                or p.name.lower() in lower or p.kind == "opvar"):
            continue
        try:
            cur = inst.get(p.name) if p.kind == "instance" else inst.model.get(p.name)
        except Va2JaxError:
            continue
        if cur not in _UNSET:
            continue
        try:
            omod.instance({**base, **extra, p.name: val}, temperature=temp)
        except (OsdiInitError, Va2JaxError):
            continue
        extra[p.name] = val
    return {**base, **extra} if extra else None


def validate_file(path: str | Path, *, points: int = 100, param_sets: int = 3, seed: int = 0,
                  params: Mapping[str, Any] | None = None, temperature: float = 300.15,
                  module: str | None = None, vmax: float = 1.0, backend: str = "jax",
                  sweeps: bool = False, sweep_points: int = 21, keep: bool = False,
                  include_dirs=(), defines: Mapping[str, Any] | None = None,
                  reference_opt_level: int | None = None, noise: bool = True) -> ValidationResult:
    """Compare va2jax and OSDI for one Verilog-A file (see module docstring).

    ``sweeps=True`` adds region-covering bias sweeps (±2 V, ``sweep_points`` per sweep; see
    :mod:`va2jax.validate._sweeps`) to the ``points`` random points of every parameter set, and
    parameter sets covering temperature (−40/27/150 °C), geometry and polarity before the
    ``param_sets - 1`` random ones. ``keep=True`` keeps the arrays needed for plots in ``data``.

    ``noise=True`` (modules with noise sources): at every point of every parameter set, at a
    random frequency log-uniform in 1 Hz–10 GHz, :meth:`Model.noise` against OSDI's
    ``load_noise`` after an eval with CALC_NOISE (output ``noise``; relative error over every
    non-zero density — densities are ~1e-20 A²/Hz, so no absolute floor), plus one more
    parameter set ``noise`` with :data:`NOISE_PARAMS` (flicker coefficient, parasitic
    resistances) where the module leaves them at 0. The frequencies come from their own random
    stream: the other outputs' points do not change.
    """
    from ..codegen import compile_va
    from ..osdi import compile_va_to_osdi, eval_batch, load_library

    path = Path(path)
    t0 = time.perf_counter()
    so = compile_va_to_osdi(path, include_dirs, defines, opt_level=reference_opt_level)
    t_osdi = time.perf_counter() - t0
    lib = load_library(so)
    t0 = time.perf_counter()
    model = compile_va(path, module, include_dirs=include_dirs, defines=defines)
    model.request_scales()
    omod = lib.module(model.ir.osdi_name or model.name)
    if tuple(omod.node_names) != tuple(model.nodes):
        raise Va2JaxError(f"{path}: node lists differ: OSDI {omod.node_names} vs va2jax {model.nodes}")
    rng = np.random.default_rng(seed)
    base = dict(params or {})
    for k in base:
        model.canonical_param(k)
        omod.find_param(k)
    sets = _param_sets(omod, base, param_sets, rng, temperature)
    labels = ["defaults"] + [f"random {i}" for i in range(1, len(sets))]
    bias = None
    if sweeps:
        from ._sweeps import bias_sweeps, region_param_sets

        named = region_param_sets(omod, base, temperature)
        labels = [n for n, _p, _t in named] + labels[1:]
        sets = [(p, t) for _n, p, t in named] + sets[1:]
        bias = bias_sweeps(model.nodes, model.node_kinds, model.num_terminals, n=sweep_points)
    max_rel = {o: 0.0 for o in OUTPUTS}
    max_abs = {o: 0.0 for o in OUTPUTS}
    passed = True
    worst: dict[str, Any] = {}
    first = True
    data: dict[str, Any] | None = {"bias": bias, "rel": {o: [] for o in OUTPUTS}, "sets": labels,
                                   "failed_sets": [], "nodes": model.nodes} if keep else None
    total = 0
    nonfinite = {o: 0 for o in OUTPUTS}
    noise_status = "none"
    if noise and model.noise_sources:
        try:
            bad = list(model.noise_unsupported().items())
            noise_status = (f"not compared: source {bad[0][0]!r}: {bad[0][1]}" if bad else "compared")
        except Va2JaxError as exc:
            noise_status = f"not compared: {str(exc).splitlines()[0]}"
    if noise_status == "compared":
        max_rel["noise"] = max_abs["noise"] = 0.0
        nonfinite["noise"] = 0
        if data is not None:
            data["rel"]["noise"] = []
    nrng = np.random.default_rng([seed, 19])
    if noise_status == "compared":
        extra_set = _noise_param_set(omod, base, temperature)
        if extra_set is not None:  # drawn after the other sets: their points do not change
            sets.append((extra_set, temperature))
            labels.append("noise")
    nz_seen = np.zeros(len(model.noise_sources), bool)
    for si, (ps, temp) in enumerate(sets):
        V = random_voltages(list(model.node_kinds), points, rng, vmax)
        if bias is not None:
            V = np.concatenate([bias.V, V])
        if len(V) == 0:
            raise Va2JaxError(f"{path}: no operating points to compare (points={points}; give "
                              "points >= 1 or sweeps)")
        total += len(V)
        ref = eval_batch(omod, V, ps, temperature=temp)
        npts = len(V)
        pj = {k: np.full(npts, v) if not isinstance(v, str) else v for k, v in ps.items()}
        st = model.setup(pj, temperature=np.full(npts, temp), backend="numpy")
        with np.errstate(all="ignore"):
            res = model.eval(st, V, backend=backend)
        out, scales = res.as_dict(), res.scales
        if first:
            t_jax = time.perf_counter() - t0
            first = False
            if data is not None:
                data["V"] = V
                data["ref"] = {o: ref[o] for o in OUTPUTS}
                data["out"] = {o: np.asarray(out[o]) for o in OUTPUTS}
        set_ok = True
        for o in OUTPUTS:
            sc = np.asarray(scales[o]) if o in scales else None
            r, a, ok, w = _compare(np.asarray(out[o]), ref[o], sc)
            nonfinite[o] += int(np.size(ref[o]) - np.count_nonzero(np.isfinite(ref[o])))
            if data is not None:
                data["rel"][o].append(_rel_errors(np.asarray(out[o]), ref[o], sc))
            if r >= max_rel[o]:
                max_rel[o] = r
                if w is not None:
                    worst[o] = {"index": [int(x) for x in w], "set": labels[si], "params": ps,
                                "temperature": temp}
            max_abs[o] = max(max_abs[o], a)
            passed = passed and ok
            set_ok = set_ok and ok
        if noise_status == "compared":
            freq = 10.0 ** nrng.uniform(0.0, 10.0, npts)
            inst = omod.instance(dict(ps), temperature=temp)
            nref = np.array([inst.noise(float(freq[i]), V[i]).density for i in range(npts)])
            with np.errstate(all="ignore"):
                nout = np.asarray(model.noise(V, freq, ps, temperature=temp, backend=backend))
            nz_seen |= (np.nan_to_num(nref) != 0).any(axis=0)
            r, a, ok, w = _compare(nout, nref, floor=0.0)
            nonfinite["noise"] += int(np.size(nref) - np.count_nonzero(np.isfinite(nref)))
            if data is not None:
                data["rel"]["noise"].append(_rel_errors(nout, nref, None, floor=0.0))
            if r >= max_rel["noise"]:
                max_rel["noise"] = r
                if w is not None:
                    worst["noise"] = {"index": [int(x) for x in w], "set": labels[si], "params": ps,
                                      "temperature": temp, "freq": float(freq[w[0]])}
            max_abs["noise"] = max(max_abs["noise"], a)
            passed = passed and ok
            set_ok = set_ok and ok
        if data is not None and not set_ok:
            data["failed_sets"].append(labels[si])
    return ValidationResult(str(path), model.name, total,
                            [dict(p, temperature=t) for p, t in sets], max_rel, max_abs, passed,
                            t_osdi, t_jax, worst, data, reference_opt_level,
                            {o: n for o, n in nonfinite.items() if n}, noise_status,
                            len(model.noise_sources), int(nz_seen.sum()))


def _rel_errors(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None,
                floor: float = ABS_FLOOR) -> np.ndarray:
    """Relative errors of the finite entries above the floor (as in :func:`_compare`), flat."""
    both = np.isfinite(a) & np.isfinite(b)
    mag = np.where(both, np.maximum(np.abs(a), np.abs(b)), 0.0)
    if scale is not None:
        mag = np.where(both & np.isfinite(scale), np.maximum(mag, np.abs(scale)), mag)
    big = mag > floor
    with np.errstate(invalid="ignore"):
        return (np.abs(a - b)[big] / mag[big]).astype(np.float64)
