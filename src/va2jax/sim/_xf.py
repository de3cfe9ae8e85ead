"""Small-signal analyses around the DC operating point ``x0`` (VACASK's ``dcinc``, ``dcxf``,
``acxf``; ``include/coredcinc.h``, ``coredcxf.h``, ``coreacxf.h``).

With the circuit equations ``f(x) + d/dt q(x) = b(t)`` (:mod:`.mna`: ``b`` holds the independent
sources' values) and ``Jf = ∂f/∂x``, ``Jq = ∂q/∂x`` at ``x0``, a change ``δu_s`` of the value of
source ``s`` moves the solution by ``δx = A⁻¹·e_s·δu_s`` where ``A = Jf`` (DC) or
``A = Jf + jωJq`` (AC, ``ω = 2πf``, rad/s) and ``e_s`` is the source's unit excitation: the row
of its branch equation for a voltage source (``+1`` V), ``−1`` at its ``p`` row and ``+1`` at its
``n`` row for a current source (``+1`` A flowing from ``p`` through the source into ``n``).

* ``dcinc``: ``δx = Jf⁻¹·Σ_s mag_s·e_s`` — every unknown's response to the sources' ``mag``
  (the AC magnitude; the AC phase is ignored), in V (nodes) and A (branch currents).
* ``dcxf out=...``: for every independent source ``s`` (one factorisation of ``A``, one solve
  with all unit excitations as right-hand sides: ``X = A⁻¹·[e_1 … e_m]``)

  - ``tf(s) = X[p_out, s] − X[n_out, s]``: V/V (voltage source), V/A (current source), or A/·
    when the output is a branch current;
  - voltage source: ``yin(s) = −X[br_s, s]`` (S; the branch current is the one flowing from
    ``p`` through the source to ``n``, so ``−i`` is the current the source delivers),
    ``zin(s) = 1/yin(s)`` (Ω);
  - current source: ``zin(s) = X[n_s, s] − X[p_s, s]`` (Ω), ``yin(s) = 1/zin(s)`` (S);

  an infinite impedance or admittance (the other one exactly 0) is written as ``1e20``, as
  VACASK does.
* ``acxf``: the same, complex, at each frequency of a VACASK frequency sweep
  (``from``/``to``/``step`` | ``mode`` + ``points`` | ``values``).

Outputs (rawfile vectors, plot names as VACASK writes them): ``dcinc`` — the unknowns ("DC
Incremental Response Analysis"); ``dcxf`` — ``tf(s)``, ``zin(s)`` for every source, plus any
``tf(s)``/``zin(s)``/``yin(s)`` a ``save`` statement names ("DC Transfer Function Analysis");
``acxf`` — ``frequency`` then the same vectors ("AC Small Signal Transfer Function Analysis").
The default source order is VACASK's: voltage sources before current sources, each kind's models
in reverse order of declaration, a model's instances in reverse netlist order.
"""
from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import suggest
from .engine import ConvergenceError, Engine
from .mna import SourceRef, System
from .netlist import Loc, NetlistError
from .results import Result, Stats

if TYPE_CHECKING:
    from .netlist import AnalysisDecl
    from .simulation import Simulation

__all__ = ["parse_out", "xf_outputs", "run_dcinc", "run_dcxf", "run_acxf", "run_tf", "run_xf_decl"]

#: VACASK's value for an infinite input impedance/admittance
_INFINITE = 1e20
_SAVE = re.compile(r"(tf|zin|yin)\((.+)\)$", re.IGNORECASE)


def parse_out(text: str | None, where: str, loc: Loc | None = None) -> list[str]:
    """``out="n"`` or ``out=["p", "n"]`` → one or two unknown names."""
    if text is None or not text.strip():
        raise NetlistError(loc, f"{where}: needs out=\"node\" or out=[\"node1\", \"node2\"]")
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        items = [t.strip() for t in s[1:-1].split(",")]
    else:
        items = [s]
    names = []
    for it in items:
        if len(it) < 2 or it[0] != '"' or it[-1] != '"' or '"' in it[1:-1]:
            raise NetlistError(loc, f"{where}: out must be a quoted node name or a list of one or two, "
                               f"not {text.strip()!r}")
        names.append(it[1:-1])
    if not 1 <= len(names) <= 2:
        raise NetlistError(loc, f"{where}: out names one or two nodes, not {len(names)}")
    return names


def _out_rows(system: System, out: Sequence[str], where: str, loc: Loc | None) -> tuple[int, int]:
    """Rows of the output's unknowns (``-1``: ground, the dump slot of ``n + 1`` vectors)."""
    rows = []
    for nm in out:
        if nm == "0":
            rows.append(-1)
        elif nm in system.names:
            rows.append(system.names.index(nm))
        else:
            raise NetlistError(loc, f"{where}: output {nm!r} is not a node or branch of the circuit"
                               + suggest(nm, system.names))
    return rows[0], rows[1] if len(rows) > 1 else -1


def _excitation(system: System, s: SourceRef, value: float = 1.0) -> np.ndarray:
    """``value·e_s`` (module doc) as an ``n + 1`` vector (last entry: ground)."""
    e = np.zeros(system.n + 1)
    if s.kind == "v":
        e[s.row] += value
    else:
        e[s.p] -= value
        e[s.n] += value
    return e


def _vacask_order(system: System, masters: dict[str, str], models: Sequence[str]) -> list[SourceRef]:
    """The sources in VACASK's default order (module doc). ``masters``: instance → model name;
    ``models``: the model names in order of declaration."""
    rank = {m.lower(): k for k, m in enumerate(models)}
    pos = {s.name: k for k, s in enumerate(system.sources)}

    def key(s: SourceRef) -> tuple[int, int, int]:
        return (0 if s.kind == "v" else 1, -rank.get(masters.get(s.name, "").lower(), -1),
                -pos[s.name])

    return sorted(system.sources, key=key)


def xf_outputs(system: System, saves: Sequence[str], masters: dict[str, str],
               models: Sequence[str], where: str,
               loc: Loc | None = None) -> list[tuple[str, str, SourceRef]]:
    """The ``(vector name, tf|zin|yin, source)`` list of ``dcxf``/``acxf``: the ``save`` items
    ``default``, ``tf(s)``, ``zin(s)``, ``yin(s)`` in their order (``default``, or no such item:
    ``tf``, ``zin`` of every source); an item naming no independent source is an error."""
    by_name = {s.name: s for s in system.sources}
    out: list[tuple[str, str, SourceRef]] = []
    seen: set[str] = set()

    def add(what: str, s: SourceRef) -> None:
        nm = f"{what}({s.name})"
        if nm not in seen:
            seen.add(nm)
            out.append((nm, what, s))

    items = [t for t in saves if t.lower() == "default" or _SAVE.match(t)]
    for t in items or ["default"]:
        if t.lower() == "default":
            for s in _vacask_order(system, masters, models):
                add("tf", s)
                add("zin", s)
            continue
        m = _SAVE.match(t)
        what, nm = m.group(1).lower(), m.group(2).strip().strip('"')
        if nm not in by_name:
            kind = ("is not an independent source" if nm in system.instances
                    else "is not an instance of the circuit")
            raise NetlistError(loc, f"{where}: save {t}: {nm!r} {kind}"
                               + suggest(nm, list(by_name)))
        add(what, by_name[nm])
    return out


def _solver(eng: Engine, A: np.ndarray, what: str):
    """``B ↦ A⁻¹·B`` (``A``: dense, or values on the sparse pattern), one factorisation."""
    n = eng.sys.n
    if eng.sparse:
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        Ai, Aj, _ = eng.pattern
        M = sp.csc_matrix((np.asarray(A), (np.asarray(Ai), np.asarray(Aj))), shape=(n, n))
        try:
            lu = splu(M)
        except RuntimeError:
            raise ConvergenceError(f"{what}: singular matrix") from None
        return lu.solve
    import scipy.linalg as sla

    from .._blas import single_threaded

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), single_threaded(n):
            warnings.simplefilter("ignore", sla.LinAlgWarning)  # a zero pivot: checked below
            lu = sla.lu_factor(np.asarray(A), check_finite=True)
    except (ValueError, np.linalg.LinAlgError):
        raise ConvergenceError(f"{what}: non-finite matrix") from None
    if np.any(np.diag(lu[0]) == 0):
        raise ConvergenceError(f"{what}: singular matrix")

    def solve(B):
        with single_threaded(n):
            return sla.lu_solve(lu, B)

    return solve


def _solve(solve, B: np.ndarray, what: str) -> np.ndarray:
    X = np.asarray(solve(B))
    if not np.all(np.isfinite(X)):
        raise ConvergenceError(f"{what}: singular matrix (non-finite solution)")
    return X


def _op(eng: Engine, x_op: np.ndarray | None = None) -> np.ndarray:
    """The operating point (``x_op`` when given: VACASK's ``nodeset``, solved by the caller)."""
    return eng.op(eng.sys.source_vector(None, dc=True)) if x_op is None else x_op


def run_dcinc(eng: Engine, name: str, x_op: np.ndarray | None = None) -> Result:
    """``dcinc``: ``Jf⁻¹·Σ_s mag_s·e_s`` at the operating point (module doc)."""
    t0 = time.perf_counter()
    system = eng.sys
    x = _op(eng, x_op)
    _, _, Jf, _ = eng.jacobians(x)
    u = np.zeros(system.n + 1)
    for s in system.sources:
        u += _excitation(system, s, s.wave.mag)
    dx = _solve(_solver(eng, Jf, f"dcinc {name}"), u[:system.n], f"dcinc {name}")
    st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "dcinc", None, None, list(system.names), dx[None, :], st)


def _transfer(X: np.ndarray, system: System, rows: tuple[int, int],
              outputs: list[tuple[str, str, SourceRef]]) -> np.ndarray:
    """One point's ``tf``/``zin``/``yin`` values from ``X`` (``n + 1`` rows, ground last; one
    column per source of ``outputs``, in their first-appearance order)."""
    col: dict[str, int] = {}
    for _, _, s in outputs:
        col.setdefault(s.name, len(col))
    up, un = rows
    vals = np.empty(len(outputs), X.dtype)
    for k, (_, what, s) in enumerate(outputs):
        x = X[:, col[s.name]]
        if what == "tf":
            vals[k] = x[up] - x[un]
            continue
        if s.kind == "v":
            y = -x[s.row]
            z = 1.0 / y if y != 0 else _INFINITE
        else:
            z = x[s.n] - x[s.p]
            y = 1.0 / z if z != 0 else _INFINITE
        vals[k] = z if what == "zin" else y
    return vals


def _excitations(system: System, outputs: list[tuple[str, str, SourceRef]]) -> np.ndarray:
    cols: dict[str, np.ndarray] = {}
    for _, _, s in outputs:
        if s.name not in cols:
            cols[s.name] = _excitation(system, s)[: system.n]
    return np.stack(list(cols.values()), axis=1) if cols else np.zeros((system.n, 0))


def _pad(X: np.ndarray) -> np.ndarray:
    """Append the ground row (0) so that index ``-1`` reads ground."""
    return np.concatenate([X, np.zeros((1, X.shape[1]), X.dtype)])


def run_dcxf(eng: Engine, name: str, out: Sequence[str],
             outputs: list[tuple[str, str, SourceRef]], loc: Loc | None = None,
             x_op: np.ndarray | None = None) -> Result:
    """``dcxf``: transfer functions and input impedances/admittances at DC (module doc)."""
    t0 = time.perf_counter()
    system = eng.sys
    rows = _out_rows(system, out, f"analysis {name}", loc)
    x = _op(eng, x_op)
    _, _, Jf, _ = eng.jacobians(x)
    B = _excitations(system, outputs)
    X = _solve(_solver(eng, Jf, f"dcxf {name}"), B, f"dcxf {name}") if B.shape[1] else B
    vals = _transfer(_pad(X), system, rows, outputs)
    st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    names = [nm for nm, _, _ in outputs]
    return Result(name, "dcxf", None, None, names, vals[None, :], st, lead=len(names))


def run_acxf(eng: Engine, name: str, out: Sequence[str],
             outputs: list[tuple[str, str, SourceRef]], freqs: np.ndarray,
             loc: Loc | None = None, x_op: np.ndarray | None = None) -> Result:
    """``acxf``: the ``dcxf`` quantities of ``(Jf + j2πf·Jq)`` at each frequency ``f`` (Hz)."""
    t0 = time.perf_counter()
    system = eng.sys
    rows = _out_rows(system, out, f"analysis {name}", loc)
    x = _op(eng, x_op)
    _, _, Jf, Jq = eng.jacobians(x)
    B = _excitations(system, outputs).astype(complex)
    data = np.empty((len(freqs), len(outputs)), complex)
    for k, f in enumerate(freqs):
        what = f"acxf {name} at f={f:g} Hz"
        A = Jf + 2j * np.pi * f * Jq
        X = _solve(_solver(eng, A, what), B, what) if B.shape[1] else B
        data[k] = _transfer(_pad(X), system, rows, outputs)
    st = Stats(points=len(freqs), newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    names = [nm for nm, _, _ in outputs]
    return Result(name, "acxf", "frequency", np.asarray(freqs, float), names, data, st,
                  lead=len(names))


#: parameters each analysis takes, besides ``nodeset`` and ``store`` (the operating point's);
#: with VACASK's ``writeop`` (``Simulation.with_writeop``), ``write`` (the CLI's)
_PARAMS = {"dcinc": {"writeop", "write"},
           "dcxf": {"out", "writeop", "write"},
           "acxf": {"out", "writeop", "write", "from", "to", "step", "mode", "points", "values"}}


_TF_OUT = re.compile(r"(v|i)\((.+)\)$", re.IGNORECASE)


def run_tf(eng: Engine, name: str, out: str, insrc: str, loc: Loc | None = None) -> Result:
    """ngspice's ``.tf`` (``src/spicelib/analysis/tfanal.c``): at the operating point, with
    ``X = Jf⁻¹·[e_in, e_out]``:

    * ``Transfer_function``: ``X[p, in] − X[n, in]`` for ``V(p[,n])``; the branch current
      ``X[br, in]`` of the voltage source ``vsrc`` for ``I(vsrc)``;
    * ``IN#Input_impedance``: ``X[n_in, in] − X[p_in, in]`` (current source);
      ``−1/X[br_in, in]`` (voltage source; ``1e20`` where ``|X| < 1e-20``);
    * output impedance (``output_impedance_at_V(p[,n])``, or ``vsrc#Output_impedance``):
      ``e_out`` draws 1 A from ``p`` into ``n``, giving ``X[n, out] − X[p, out]``; for ``I(vsrc)``
      ``e_out`` is 1 V in ``vsrc``'s branch and the value ``1/max(1e-20, X[br, out])`` (as ngspice
      writes it: ``1e20`` when that current is negative), or the input impedance when ``vsrc`` is
      the input source.
    """
    t0 = time.perf_counter()
    system = eng.sys
    where = f"tf {name}"
    srcs = {s.name.lower(): s for s in system.sources}
    src = srcs.get(insrc.lower())
    if src is None:
        kind = ("is not an independent source" if insrc in system.instances
                else "is not an instance of the circuit")
        raise NetlistError(loc, f"{where}: input {insrc!r} {kind}" + suggest(insrc, list(srcs)))
    m = _TF_OUT.match(out.strip())
    if not m:
        raise NetlistError(loc, f"{where}: output must be V(node[,node]) or I(vsource), not {out!r}")
    e_out = np.zeros(system.n + 1)
    if m.group(1).lower() == "v":
        nodes = [t.strip() for t in m.group(2).split(",")]
        if len(nodes) > 2:
            raise NetlistError(loc, f"{where}: V() names one or two nodes, not {len(nodes)}")
        rows = _out_rows(system, ["0" if nd in ("0", "gnd") else nd for nd in nodes], where, loc)
        e_out[rows[0]] -= 1.0
        e_out[rows[1]] += 1.0
        out_name = f"output_impedance_at_V({','.join(nodes)})"
        osrc = None
    else:
        osrc = srcs.get(m.group(2).strip().lower())
        if osrc is None or osrc.kind != "v":
            raise NetlistError(loc, f"{where}: output I({m.group(2)}) needs a voltage source"
                               + suggest(m.group(2), [s.name for s in system.sources if s.kind == "v"]))
        e_out[osrc.row] += 1.0
        out_name = f"{osrc.name}#Output_impedance"
    x = _op(eng)
    _, _, Jf, _ = eng.jacobians(x)
    B = np.stack([_excitation(system, src)[: system.n], e_out[: system.n]], axis=1)
    X = _pad(_solve(_solver(eng, Jf, where), B, where))
    xi, xo = X[:, 0], X[:, 1]
    tf = xi[rows[0]] - xi[rows[1]] if osrc is None else xi[osrc.row]
    if src.kind == "i":
        zin = xi[src.n] - xi[src.p]
    else:
        zin = _INFINITE if abs(xi[src.row]) < 1e-20 else -1.0 / xi[src.row]
    if osrc is None:
        zout = xo[rows[1]] - xo[rows[0]]
    elif osrc is src:
        zout = zin
    else:
        zout = 1.0 / max(1e-20, xo[osrc.row])
    st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    names = ["Transfer_function", f"{src.name}#Input_impedance", out_name]
    return Result(name, "tf", None, None, names, np.array([[tf, zin, zout]]), st, lead=3)


def run_xf_decl(sim: "Simulation", decl: "AnalysisDecl") -> Result:
    """Run a ``dcinc``/``dcxf``/``acxf`` analysis statement of ``sim``'s netlist (or a SPICE
    ``.tf``)."""
    kind = decl.kind.lower()
    where = f"analysis {decl.name}"
    if kind == "tf":
        return run_tf(sim.engine, decl.name, decl.params["out"], decl.params["in"], decl.loc)
    params = {k.lower(): v for k, v in decl.params.items()}
    for k in params:
        if k not in _PARAMS[kind] | {"nodeset", "store"}:
            raise NetlistError(decl.loc, f"{where}: {kind} has no parameter {k!r}"
                               + suggest(k, sorted(_PARAMS[kind])))
    eng = sim.engine
    x_op = sim._op_nodeset(decl)  # VACASK's nodeset and store: the operating point's
    if "store" in params:
        x_op = _op(eng, x_op)
        sim._store(decl, x_op)
    if kind == "dcinc":
        return run_dcinc(eng, decl.name, x_op)
    circ = sim.circuit
    out = parse_out(params.get("out"), where, decl.loc)
    out = ["0" if nm in circ.ground else nm for nm in out]
    masters = {i.name: i.master for i in circ.instances}
    # the save directives read before the analysis (VACASK), as xf_outputs reads them
    saves = [f"{s.kind}({','.join(s.args)})" if s.args else s.kind for s in decl.saves]
    outputs = xf_outputs(eng.sys, saves, masters, list(circ.models), where, decl.loc)
    if kind == "dcxf":
        return run_dcxf(eng, decl.name, out, outputs, decl.loc, x_op)
    from ._sweep import sweep_points  # VACASK's frequency points are a sweep's

    sw = {k: v for k, v in params.items() if k not in ("out", "writeop", "write", "nodeset", "store")}
    sw["name"] = where
    freqs = np.asarray(sweep_points(sw, dict(circ.params), decl), float)
    if np.any(freqs < 0) or not np.all(np.isfinite(freqs)):
        raise NetlistError(decl.loc, f"{where}: frequencies must be finite and ≥ 0")
    return run_acxf(eng, decl.name, out, outputs, freqs, decl.loc, x_op)
