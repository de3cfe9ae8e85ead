"""Small-signal noise analysis (VACASK's ``analysis NAME noise out=… in=… from=… to=…``).

Around the DC operating point ``x₀`` the circuit is linear: ``A(ω) = Jf + jω·Jq`` (the AC
matrix, gmin/gshunt included as in :func:`.analysis.run_ac`). Every noise source ``k`` of every
device instance is a current between two unknowns ``(p_k, n_k)`` with a one-sided power spectral
density ``S_k(f)`` (A²/Hz; V²/Hz for a source in a voltage contribution, injected the same way, as
OSDI and VACASK do). Sources are uncorrelated, so the output noise density is

    S_out(f) = Σ_k |H_k(f)|² · |S_k(f)|        (V²/Hz at a node output)

with ``H_k = (x[up] − x[un])`` for ``A·x = e_{p_k} − e_{n_k}``. Instead of one solve per source
(VACASK), one *adjoint* solve per frequency gives every transfer at once:
``Aᵀ·y = e_up − e_un`` ⇒ ``H_k = y[p_k] − y[n_k]`` (``cᵀA⁻¹b = (A⁻ᵀc)ᵀb``, plain transpose, no
conjugate). ``|S_k|``: a density may be negative (a correlated-noise formulation); VACASK takes
its absolute value, so does this module.

Outputs per frequency, named as VACASK's rawfile (plot "Small-Signal Noise Analysis", every
variable of type ``notype``, real):

* ``frequency`` (Hz), ``onoise`` = ``S_out`` (V²/Hz: a power density, not V/√Hz),
* ``gain`` = ``|x[up] − x[un]|²`` for a unit excitation of the input source ``in`` (a voltage
  source: 1 V; a current source: 1 A) — the *power* gain, so the input-referred density is
  ``onoise / gain`` (V²/Hz or A²/Hz; VACASK writes no vector for it: :func:`input_referred`),
* ``n(INST)``: the part of ``onoise`` from instance INST (every instance with noise sources;
  VACASK's hierarchical name ``x1:m1`` for va2jax's ``x1.m1``; VACASK's order: modules in
  ``load`` order, model cards and instances each last-declared first),
* ``n(INST,SRC)`` (with ``save full``): from its sources named SRC, lowercased as VACASK does
  (same-named sources summed).

VACASK orders the ``n(…)`` vectors as it iterates its ``unordered_map`` of instances (keyed by
the identifier's intern index): for small circuits last-declared first, otherwise an order that
depends on every identifier the parser interned before; va2jax writes the small-circuit order.

Noise sources: a generated model's (``Model.noise``: OSDI's ``load_noise`` densities, white
``P``, flicker ``P/f^e``, ``$mfactor`` included), an OSDI library's (its ``load_noise``), and the
resistors va2jax stamps itself in place of VACASK's ``resistor`` module: ``4·k·T/r`` (A²/Hz,
source ``thermal``; ``k`` = 1.3806503e-23 J/K, OpenVAF's ``P_K``, which that module uses; no noise
for ``noisy=0``). Integrated noise: :func:`integrated` (trapezoid on log-spaced points).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import Va2JaxError
from .engine import ConvergenceError
from .netlist import AnalysisDecl, NetlistError
from .results import Result, Stats

#: Boltzmann's constant as OpenVAF's ``constants.vams`` ``P_K`` (J/K): VACASK's resistor module
P_K = 1.3806503e-23


@dataclass
class _Source:
    """One noise source: instance, source name, unknowns ``p``/``n`` (−1: ground) and the density
    at every analysis frequency, (nf,)."""

    instance: str
    name: str
    p: int
    n: int
    density: np.ndarray


def _string_list(text: str, what: str, decl: AnalysisDecl) -> list[str]:
    """``"a"`` or ``["a", "b"]`` (VACASK string / string vector) → list of names."""
    s = text.strip()
    items = s[1:-1].split(",") if s.startswith("[") and s.endswith("]") else [s]
    out = []
    for it in items:
        it = it.strip()
        if len(it) < 2 or it[0] != '"' or it[-1] != '"':
            raise NetlistError(decl.loc, f"analysis {decl.name}: {what} must be a quoted name or a "
                                         f"vector of quoted names, got {text.strip()!r}")
        out.append(it[1:-1])
    return out


def _output_unknowns(sys, decl: AnalysisDecl) -> tuple[int, int, str]:
    """``out="p"`` or ``out=["p", "n"]`` → unknown indices (−1: ground) and a label."""
    params = {k.lower(): v for k, v in decl.params.items()}
    if "out" not in params:
        raise NetlistError(decl.loc, f"analysis {decl.name}: noise needs out=\"NODE\" "
                                     "(or out=[\"P\", \"N\"])")
    names = _string_list(params["out"], "out", decl)
    if len(names) not in (1, 2):
        raise NetlistError(decl.loc, f"analysis {decl.name}: out must name one node or two")
    index = {nm: i for i, nm in enumerate(sys.names)}
    idx = []
    for nm in names:
        if nm == "0":
            idx.append(-1)
        elif nm in index:
            idx.append(index[nm])
        else:
            from ..errors import suggest

            raise NetlistError(decl.loc, f"analysis {decl.name}: output {nm!r} is not a node of "
                                         "the circuit" + suggest(nm, list(sys.node_index)))
    return idx[0], idx[1] if len(idx) == 2 else -1, ",".join(names)


def _input_source(sys, decl: AnalysisDecl):
    params = {k.lower(): v for k, v in decl.params.items()}
    if "in" not in params:
        raise NetlistError(decl.loc, f"analysis {decl.name}: noise needs in=\"SOURCE\" (an "
                                     "independent voltage or current source)")
    names = _string_list(params["in"], "in", decl)
    if len(names) != 1:
        raise NetlistError(decl.loc, f"analysis {decl.name}: in must name one source")
    name = names[0]
    for s in sys.sources:
        if s.name == name:
            return s
    from ..errors import suggest

    raise NetlistError(decl.loc, f"analysis {decl.name}: input {name!r} is not an independent "
                                 "source (vsource/isource)" + suggest(name, [s.name for s in sys.sources]))


def _frequencies(sim, decl: AnalysisDecl) -> np.ndarray:
    from ._sweep import sweep_points  # VACASK's frequency points are a sweep's

    sw = {k.lower(): v for k, v in decl.params.items() if k.lower() not in ("out", "in")}
    sw["name"] = f"analysis {decl.name}"
    freqs = np.asarray(sweep_points(sw, dict(sim.circuit.params), decl), float)
    if freqs.size == 0 or not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
        raise NetlistError(decl.loc, f"analysis {decl.name}: noise frequencies must be finite and "
                                     f"above 0 Hz (from, to, values)")
    return freqs


def _gidx(i: int, n: int) -> int:
    return int(i) if 0 <= i < n else -1


def collect_sources(sim, x: np.ndarray, freqs: np.ndarray) -> list[_Source]:
    """Every noise source of the circuit at operating point ``x``, densities at ``freqs`` (Hz);
    in VACASK's order (modules in ``load`` order, then instances in netlist order)."""
    sys = sim.system
    n = sys.n
    xx = np.concatenate([np.asarray(x, float), [0.0]])
    by_inst: dict[str, tuple[str, list[_Source]]] = {}
    T = sim.options.temp + 273.15
    for name, p, nn, r, noisy in getattr(sys, "noise_resistors", ()):
        if noisy:
            d = abs(4 * P_K * T / r)
            by_inst[name] = ("resistor", [_Source(name, "thermal", p, nn, np.full(len(freqs), d))])
    for g in sys.groups:
        grp = g.group
        idx = np.where((g.idx >= 0) & (g.idx < n), g.idx, n)
        V = xx[idx]  # (N, n_local)
        srcs = _group_sources(grp, V, freqs)
        if srcs is None:
            continue
        names, nodes, dens = srcs  # dens (nf, N, n_src)
        for k, inst in enumerate(g.names):
            lst = [_Source(inst, nm, _gidx(g.idx[k, a], n) if a is not None else -1,
                           _gidx(g.idx[k, b], n) if b is not None else -1, dens[:, k, j])
                   for j, (nm, (a, b)) in enumerate(zip(names, nodes))]
            if lst:
                by_inst[inst] = (g.model.name.lower(), lst)
    # VACASK's order: devices (modules) in load order, within one the model cards last declared
    # first, within a card the instances last in the netlist first
    order = {m: i for i, m in enumerate(sim.library.sources)}
    cards = {m: k for k, m in enumerate(sim.circuit.models)}
    pos = {i.name: (cards.get(i.master.lower(), -1), k) for k, i in enumerate(sim.circuit.instances)}

    def key(nm: str) -> tuple[int, int, int]:
        card, k = pos.get(nm, (-1, 0))
        return order.get(by_inst[nm][0], len(order)), -card, -k

    return [s for k in sorted(by_inst, key=key) for s in by_inst[k][1]]


def _group_sources(grp, V: np.ndarray, freqs: np.ndarray):
    """``(names, [(a, b) local nodes, None = ground], densities (nf, N, n_src))`` of a device
    group, or ``None`` where it has no noise sources."""
    parts = getattr(grp, "noise_parts", None)
    if parts is not None:  # generated model (adapters.GeneratedGroup)
        from ..codegen import noise_density, noise_params

        m = grp.m
        if not m.ir.noise_sources:
            return None
        names = [s.name for s in m.ir.noise_sources]
        nodes = [(s.a, s.b) for s in m.ir.noise_sources]
        out = np.zeros((len(freqs), grp.size, len(names)))
        for lo, hi, params, temp, conn in parts:
            try:
                P, E, A, kinds = noise_params(m, V[lo:hi], params, temperature=temp, connected=conn)
            except Va2JaxError as exc:
                raise Va2JaxError(f"noise analysis: {exc}") from None
            P, E, A = (np.broadcast_to(a, (hi - lo, len(names))) for a in (P, E, A))
            for i, f in enumerate(freqs):
                out[i, lo:hi] = noise_density(P, E, A, kinds, f)
        return names, nodes, out
    insts = getattr(grp, "insts", None)
    if insts is not None:  # OSDI library (adapters.OsdiGroup)
        if not insts or not insts[0].module.noise_sources:
            return None
        ns = insts[0].module.noise_sources
        names = [s.name for s in ns]
        nodes = [(s.node1 if s.node1 >= 0 else None, s.node2 if s.node2 >= 0 else None) for s in ns]
        out = np.zeros((len(freqs), len(insts), len(names)))
        for k, inst in enumerate(insts):
            for i, f in enumerate(freqs):
                out[i, k] = inst.noise(float(f), V[k]).density
        return names, nodes, out
    return None  # va2jax's hand-written models have no noise sources


def _matrices(eng, x: np.ndarray):
    """``(Jf, Jq, solve_T)``: the Jacobians at ``x`` and ``solve_T(ω, c)`` solving
    ``(Jf + jωJq)ᵀ·y = c``."""
    _, _, Jf, Jq = eng.jacobians(x)
    n = eng.sys.n
    if eng.sparse:
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        Ai, Aj, _ = eng.pattern
        nnz = len(Ai)
        Gt = sp.csc_matrix((Jf[:nnz], (Aj, Ai)), shape=(n, n))
        Ct = sp.csc_matrix((Jq[:nnz], (Aj, Ai)), shape=(n, n))

        def solve_T(w: float, c: np.ndarray) -> np.ndarray:
            try:
                return splu((Gt + 1j * w * Ct).tocsc()).solve(c.astype(complex))
            except RuntimeError:
                raise np.linalg.LinAlgError("singular") from None
    else:
        from .._blas import single_threaded

        def solve_T(w: float, c: np.ndarray) -> np.ndarray:
            with single_threaded(len(c)):
                return np.linalg.solve((Jf + 1j * w * Jq).T, c.astype(complex))

    return solve_T


def _solve(sim, name: str, up: int, un: int, src, freqs: np.ndarray, x: np.ndarray | None = None):
    """``(sources, contrib, gain)`` at ``freqs``: every noise source (:func:`collect_sources`),
    its density at the output ``x[up] − x[un]`` (nf, n_src; V²/Hz) and the power gain from the
    input source ``src`` (nf,). ``x``: the operating point (default: solved here)."""
    eng = sim.engine
    sys = sim.system
    if x is None:
        x = eng.op(sys.source_vector(None, dc=True), what=f"noise {name} operating point")
    sources = collect_sources(sim, x, freqs)
    solve_T = _matrices(eng, x)
    n = sys.n
    c = np.zeros(n + 1)
    c[up] += 1.0
    c[un] -= 1.0  # index −1 → the ground slot n, dropped below
    c = c[:n]
    P = np.array([s.p for s in sources], int)
    N = np.array([s.n for s in sources], int)
    S = np.abs(np.stack([s.density for s in sources], axis=1)) if sources else np.zeros((len(freqs), 0))
    b_in = np.zeros(n + 1)
    if src.kind == "v":
        b_in[src.row] = 1.0
    else:
        b_in[src.p] -= 1.0
        b_in[src.n] += 1.0
    b_in = b_in[:n]
    gain = np.empty(len(freqs))
    H2 = np.empty((len(freqs), len(sources)))
    for i, f in enumerate(freqs):
        try:
            y = solve_T(2 * math.pi * f, c)
        except np.linalg.LinAlgError:
            raise ConvergenceError(f"noise {name}: singular matrix at f={f:g} Hz") from None
        if not np.all(np.isfinite(y)):
            raise ConvergenceError(f"noise {name}: singular matrix at f={f:g} Hz")
        gain[i] = abs(y @ b_in) ** 2
        yy = np.concatenate([y, [0.0]])
        H2[i] = np.abs(yy[P] - yy[N]) ** 2
    return sources, H2 * S, gain


#: the parameters of VACASK's noise analysis (include/corenoise.h) that va2jax applies
_PARAMS = {"out", "in", "from", "to", "step", "mode", "points", "values", "writeop", "write",
           "nodeset", "store"}


def run_noise(sim, decl: AnalysisDecl) -> Result:
    """Run one ``noise`` analysis of ``sim`` (a :class:`~.simulation.Simulation`)."""
    for k in decl.params:
        if k.lower() not in _PARAMS:
            from ..errors import suggest

            raise NetlistError(decl.loc, f"analysis {decl.name}: unknown noise parameter {k!r}"
                               + suggest(k, sorted(_PARAMS)))
    sys = sim.system
    up, un, _ = _output_unknowns(sys, decl)
    src = _input_source(sys, decl)
    freqs = _frequencies(sim, decl)
    details = any(s.lower() == "full" for s in sim.circuit.saves)
    t0 = time.perf_counter()
    x_op = sim._op_nodeset(decl)  # VACASK's nodeset and store: the operating point's
    if x_op is None and "store" in {k.lower() for k in decl.params}:
        x_op = sim.engine.op(sys.source_vector(None, dc=True), what=f"noise {decl.name} operating point")
    if x_op is not None:
        sim._store(decl, x_op)
    sources, contrib, gain = _solve(sim, decl.name, up, un, src, freqs, x_op)
    names = ["onoise", "gain"]
    cols = [contrib.sum(axis=1), gain]
    seen: list[str] = []
    for s in sources:
        if s.instance not in seen:
            seen.append(s.instance)
    for inst in seen:
        ks = [k for k, s in enumerate(sources) if s.instance == inst]
        if sim.circuit.dialect == "vacask":  # VACASK's hierarchy separator in instance names
            inst = inst.replace(".", ":")
        names.append(f"n({inst})")
        cols.append(contrib[:, ks].sum(axis=1))
        if details:  # VACASK lowercases source names (BSIM4's "Rd" → n(m1,rd)), then sums equal ones
            for nm in dict.fromkeys(sources[k].name.lower() for k in ks):
                names.append(f"n({inst},{nm})")
                cols.append(contrib[:, [k for k in ks if sources[k].name.lower() == nm]].sum(axis=1))
    data = np.stack(cols, axis=1)
    st = Stats(points=len(freqs), newton_iterations=sim.engine.iterations,
               run_s=time.perf_counter() - t0)
    return Result(decl.name, "noise", "frequency", freqs, names, data, st, lead=len(names))


def input_referred(res: Result) -> np.ndarray:
    """Input-referred noise density ``onoise / gain`` of a noise result (V²/Hz for a voltage
    source input, A²/Hz for a current source)."""
    return res["onoise"] / res["gain"]


def integrated(freqs: np.ndarray, density: np.ndarray) -> float:
    """``∫ S(f) df`` by the trapezoid rule on the analysis points (V² for ``onoise``)."""
    f = np.asarray(freqs, float)
    s = np.asarray(density, float)
    return float(np.sum(0.5 * (s[1:] + s[:-1]) * np.diff(f)))
