"""ngspice's ``.noise V(out[,ref]) src dec|oct|lin n fstart fstop [pts_per_summary]``.

The densities are those of the VACASK-style analysis (:func:`._noise_analysis._solve`: every
source's density at the output, the power gain ``G(f)`` from a unit excitation of ``src``); what
differs is ngspice's frequency grid, its units and its integration (``src/spicelib/analysis``
``noisean.c``, ``ninteg.c``):

* **frequencies**: ``f₀ = fstart``, then ``f ← f·δ`` (``dec``: ``δ = 10^(1/n)``, ``oct``:
  ``2^(1/n)``) or ``f ← f + δ`` (``lin``: ``δ = (fstop − fstart)/(n − 1)``) while
  ``f ≤ fstop + tol``, ``tol = δ·fstop·reltol`` (``lin``: ``δ·reltol``); ``fstart = fstop``
  (within 3 ulps) or ``lin 1``: that single frequency, and no integrated plot;
* plot ``noiseK`` *Noise Spectral Density Curves*: ``frequency``, ``onoise_spectrum`` =
  ``√S_out`` (V/√Hz), ``inoise_spectrum`` = ``√(S_out/max(G, 1e-20))`` (V/√Hz for a voltage
  source input, A/√Hz for a current source); with ``pts_per_summary = k > 0`` also
  ``onoise_INST_SRC`` and ``onoise_INST`` per instance (√ of its part of ``S_out``), and only
  every k-th frequency (the first, the (k+1)-th, …) is written, as ngspice does;
* plot ``noiseK+1`` *Integrated Noise* (when ``fstart ≠ fstop``): ``v(onoise_total)`` =
  ``√∫S_out df`` (V), ``v(inoise_total)`` (``i(…)`` for a current source input) and, with a
  summary, ``onoise_total_INST_SRC``/``inoise_total_INST_SRC``/``…_INST`` per source and
  instance. ngspice integrates every source separately, as a power law ``a·f^b`` between
  consecutive frequencies through the two densities (``b`` from the logarithms of the
  densities floored at 1e-38; ``b`` within 1e-10 of 0: rectangle with the upper density;
  ``b + 1`` within 1e-10 of 0: ``a·ln(f₂/f₁)``), and the input-referred one with the gain of the
  interval's upper frequency at both ends: ``∫ = 1/max(G(f₂), 1e-20) · ∫_{f₁}^{f₂} S``.
  The same is done here.

Source names: the model's own (va2jax's resistors: ``thermal`` and a zero ``1overf`` as
ngspice's); instances in netlist order, which is not ngspice's (its device-type order, models and
instances last-declared first).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .netlist import AnalysisDecl, NetlistError
from .results import Result, Stats

#: ngspice's noisedef.h: floor under a density before its logarithm, under the power gain,
#: the slope thresholds of the integration
_MINLOG, _MINGAIN, _THRESH = 1e-38, 1e-20, 1e-10
#: more frequencies than this is taken as a mistake (ngspice would loop for hours)
_MAX_POINTS = 10_000_000

#: ngspice's own names of the noise sources of the devices the SPICE reader maps to the
#: corpus' SPICE models (``src/spicelib/devices/*/…noi*.c``): separator after the instance name
#: and the order of its sources; a model's ``flicker`` is ngspice's ``1overf`` everywhere
_NGSPICE_NAMES = {
    "sp_bsim4v8": (".", ("rd", "rs", "rg", "rbps", "rbpd", "rbpb", "rbsb", "rbdb", "id", "1overf",
                         "igs", "igd", "igb", "corl")),
    "sp_bsim3v3": (".", ()),
}

def ngspice_frequencies(mode: str, n: int, f0: float, f1: float, reltol: float) -> np.ndarray:
    """ngspice's noise frequencies (see the module docstring); ``f0``, ``f1`` > 0, ``n`` ≥ 1."""
    single = (mode == "lin" and n == 1) or abs(f0 - f1) <= 3 * math.ulp(max(f0, f1))
    if single:
        return np.array([f0])
    if mode == "dec":
        delta = math.exp(math.log(10.0) / n)
    elif mode == "oct":
        delta = math.exp(math.log(2.0) / n)
    else:
        delta = (f1 - f0) / (n - 1)
    tol = delta * f1 * reltol if mode != "lin" else delta * reltol
    out = []
    f = f0
    while f <= f1 + tol:
        out.append(f)
        if len(out) > _MAX_POINTS:
            raise ValueError(f"more than {_MAX_POINTS} frequencies")
        f = f * delta if mode != "lin" else f + delta
    return np.array(out)


def _limexp(x: np.ndarray) -> np.ndarray:
    """ngspice's ``limexp``: exp, continued linearly above 700."""
    return np.where(x > 700, math.exp(700.0) * (1.0 + x - 700.0), np.exp(np.minimum(x, 700.0)))


def integrate_power_law(freqs: np.ndarray, dens: np.ndarray) -> np.ndarray:
    """Per interval ``[f_{j−1}, f_j]`` (rows 1…nf−1) and column: ``∫ a·f^b df`` of the power law
    through the two densities, as ngspice integrates each noise source; (nf − 1, n_src)."""
    f = np.asarray(freqs, float)
    d = np.asarray(dens, float)
    lnf = np.log(np.maximum(f, _MINLOG))
    lnd = np.log(np.maximum(d, _MINLOG))
    dlnf = (lnf[1:] - lnf[:-1])[:, None]
    df = (f[1:] - f[:-1])[:, None]
    lf2, lf1 = lnf[1:, None], lnf[:-1, None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        b = (lnd[1:] - lnd[:-1]) / dlnf
        a = _limexp(lnd[1:] - b * lf2)
        b1 = b + 1.0
        general = a * (_limexp(b1 * lf2) - _limexp(b1 * lf1)) / b1
        out = np.where(np.abs(b) < _THRESH, d[1:] * df,
                       np.where(np.abs(b1) < _THRESH, a * (lf2 - lf1), general))
    return out


def _in_circuit_ac_given(sim, name: str) -> bool:
    for inst in sim.circuit.instances:
        if inst.name.lower() == name.lower():
            return any(k.lower() == "mag" for k in inst.params)
    return True  # not a top-level instance: the source check below names it


def run_spice_noise(sim, decl: AnalysisDecl) -> Result:
    """Run the spectrum (``decl.kind == "noise"``) or integrated (``"noise_int"``) part of an
    ngspice ``.noise`` (the two share one solution, computed by whichever runs first)."""
    from ._noise_analysis import _input_source, _output_unknowns, _solve

    cache = sim.__dict__.setdefault("_spice_noise", {})
    key = (str(decl.loc), tuple(sorted(decl.params.items())))
    if decl.kind == "noise_int" and key in cache:
        integ = cache.pop(key)[1]
        integ.name = decl.name
        return integ
    where = f"noise {decl.name}"
    sys = sim.system
    up, un, _ = _output_unknowns(sys, decl)
    src = _input_source(sys, decl)
    if not _in_circuit_ac_given(sim, src.name):
        raise NetlistError(decl.loc, f"{where}: input {src.name!r} has no AC value (ngspice "
                                     "needs 'ac MAG' on the noise input source)")
    vals = {}
    for k in ("points", "from", "to", "summary"):
        v = sim._num(decl, k)
        if v is None or not math.isfinite(v):
            raise NetlistError(decl.loc, f"{where}: {k} must be a finite number")
        vals[k] = v
    n, f0, f1, summary = int(vals["points"]), vals["from"], vals["to"], int(vals["summary"])
    mode = sim._str(decl, "mode", "dec")
    if n < 1 or n != vals["points"]:
        raise NetlistError(decl.loc, f"{where}: the number of points must be an integer ≥ 1")
    if not (f0 > 0 and f1 > 0):
        raise NetlistError(decl.loc, f"{where}: noise frequencies must be above 0 Hz "
                                     f"(fstart={f0:g}, fstop={f1:g})")
    if f1 < f0:
        raise NetlistError(decl.loc, f"{where}: fstop={f1:g} is below fstart={f0:g}")
    try:
        freqs = ngspice_frequencies(mode, n, f0, f1, sim.options.reltol)
    except ValueError as exc:
        raise NetlistError(decl.loc, f"{where}: {exc}") from None
    t0 = time.perf_counter()
    sources, contrib, gain = _solve(sim, decl.name, up, un, src, freqs)
    ginv = 1.0 / np.maximum(gain, _MINGAIN)
    # per instance: its sources (same-named ones summed) under ngspice's names and in its order,
    # va2jax's resistors as ngspice's (a thermal and a zero 1overf source)
    module = {nm: g.model.name.lower() for g in sys.groups for nm in g.names}
    groups: dict[str, dict[str, list[int]]] = {}
    for k, s in enumerate(sources):
        sname = {"flicker": "1overf", "flickersw": "1overfsw"}.get(s.name.lower(), s.name.lower())
        groups.setdefault(s.instance, {}).setdefault(sname, []).append(k)
    sep = {}
    for inst, srcs in groups.items():
        sep[inst], order = _NGSPICE_NAMES.get(module.get(inst, ""), ("_", ()))
        rank = {nm: i for i, nm in enumerate(order)}
        groups[inst] = dict(sorted(srcs.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    resistors = {r[0] for r in getattr(sys, "noise_resistors", ())}
    st = Stats(points=len(freqs), newton_iterations=sim.engine.iterations)
    total = contrib.sum(axis=1)
    in_type = "voltage" if src.kind == "v" else "current"
    names, cols, types = [], [], []
    if summary > 0:
        for inst, srcs in groups.items():
            for nm, ks in srcs.items():
                names.append(f"onoise{sep[inst]}{inst}{sep[inst]}{nm}")
                cols.append(np.sqrt(contrib[:, ks].sum(axis=1)))
            if inst in resistors:
                names.append(f"onoise{sep[inst]}{inst}{sep[inst]}1overf")
                cols.append(np.zeros(len(freqs)))
            names.append(f"onoise{sep[inst]}{inst}")
            cols.append(np.sqrt(sum(contrib[:, ks].sum(axis=1) for ks in srcs.values())))
        types = ["voltage-density"] * len(names)
    names += ["onoise_spectrum", "inoise_spectrum"]
    cols += [np.sqrt(total), np.sqrt(total * ginv)]
    types += ["voltage-density", f"{in_type}-density"]
    st.run_s = time.perf_counter() - t0
    # with a summary ngspice writes only every pts_per_summary-th frequency (it integrates all)
    rows = np.arange(len(freqs)) % summary == 0 if summary > 0 else np.ones(len(freqs), bool)
    spectrum = Result(decl.name, "noise_spectrum", "frequency", freqs[rows], names,
                      np.stack(cols, axis=1)[rows], st, ordered=True, types=types)
    integ = None
    if len(freqs) > 1:
        seg = integrate_power_law(freqs, contrib)  # (nf − 1, n_src) V²
        seg_in = seg * ginv[1:, None]  # ngspice: the upper frequency's gain on the interval
        out_k, in_k = seg.sum(axis=0), seg_in.sum(axis=0)
        v, i = ("v", "v") if src.kind == "v" else ("v", "i")
        inames, ivals, itypes = [], [], []

        def add(label: str, o: float, x: float) -> None:
            inames.extend([f"{v}(onoise_total{label})", f"{i}(inoise_total{label})"])
            ivals.extend([math.sqrt(o), math.sqrt(x)])
            itypes.extend(["voltage", in_type])

        if summary > 0:
            for inst, srcs in groups.items():
                for nm, ks in srcs.items():
                    add(f"{sep[inst]}{inst}{sep[inst]}{nm}", float(out_k[ks].sum()), float(in_k[ks].sum()))
                if inst in resistors:
                    add(f"{sep[inst]}{inst}{sep[inst]}1overf", 0.0, 0.0)
                ks_all = [k for ks in srcs.values() for k in ks]
                add(f"{sep[inst]}{inst}", float(out_k[ks_all].sum()), float(in_k[ks_all].sum()))
        add("", float(out_k.sum()), float(in_k.sum()))
        integ = Result(decl.name, "noise_integrated", None, None, inames,
                       np.array([ivals]), Stats(points=1), ordered=True, types=itypes)
    if decl.kind == "noise_int":
        if integ is None:
            raise NetlistError(decl.loc, f"{where}: one frequency only, nothing to integrate")
        integ.name = decl.name
        return integ
    cache[key] = (spectrum, integ)
    return spectrum
