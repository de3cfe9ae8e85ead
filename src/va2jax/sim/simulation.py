"""Netlist → :class:`Simulation` (elaborated circuit, MNA system, compiled engine) → results."""
from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import _config
from ..errors import Va2JaxError
from .adapters import ModelLibrary
from .analysis import run_ac, run_dc_sweep, run_op, run_tran
from .engine import ConvergenceError, Engine, Options, warn_unused_options
from .expr import ExprError, evaluate
from .mna import System, build_system
from .netlist import AnalysisDecl, FlatCircuit, Netlist, NetlistError, check_tran_times, elaborate, private
from .results import Result

_SPICE_EXT = {".cir", ".sp", ".spi", ".spice", ".net", ".ckt"}


def read_netlist(path: str | Path) -> Netlist:
    """Parse a netlist in the dialect :func:`netlist_dialect` finds: ``.cir/.sp/.spice/...`` are
    SPICE, other files (``.sim`` included: both simulators use it) are judged by their content."""
    path = Path(path)
    if not path.is_file():
        raise Va2JaxError(f"netlist {str(path)!r} not found")
    text = path.read_text(errors="replace")
    dialect = netlist_dialect(path, text)
    if dialect == "spice":
        from .parse_spice import parse_spice

        return parse_spice(path, text)
    from .parse_vacask import parse_vacask

    try:
        return parse_vacask(path, text)
    except NetlistError as exc:
        if dialect != "ambiguous":
            raise
        hinted = NetlistError(None, f"{exc} (read as a VACASK netlist: its lines do not tell "
                                    "VACASK from SPICE; for a SPICE netlist use a .cir suffix)")
        hinted.loc = exc.loc
        raise hinted from None


#: dot cards that mark a SPICE netlist (at the start of a line, case-insensitive)
_SPICE_CARD = re.compile(r"\.(end|ends|endc|control|model|subckt|options?|param|params|tran|op|dc|"
                         r"ac|include|inc|lib|global|save|print|plot|temp|ic|nodeset|meas|"
                         r"measure|func|title)\b", re.IGNORECASE)
#: statements that mark a VACASK netlist: keywords at the start of a line, or an instance
#: ``NAME (nodes) MASTER``
_VACASK_STMT = re.compile(r"(load|include)\s+\"|(model|subckt)\s+\S+\s+\S|(control|endc|ends)\s*$|"
                          r"(analysis|parameters|ground)\s|[^\s(.*+]\S*\s*\(", re.IGNORECASE)


def netlist_dialect(path: str | Path, text: str) -> str:
    """``"spice"``, ``"vacask"`` or ``"ambiguous"`` (read as VACASK) for a netlist file.

    The suffixes ``.cir .sp .spi .spice .net .ckt`` decide SPICE. Otherwise the lines after the
    title (line 1 in both dialects) decide: SPICE dot cards at a line start (``.end``, ``.model``,
    ``.control``, ``.tran``, … — :data:`_SPICE_CARD`; the lines between ``.control`` and
    ``.endc`` are ngspice commands and not looked at) against VACASK statements (``load "…"``,
    ``model NAME MASTER``, ``control``/``endc``, ``NAME (nodes) …`` — :data:`_VACASK_STMT`;
    text between ``<<<`` and ``>>>`` of an ``embed`` is skipped). Only one kind present decides;
    both or neither is ambiguous.
    """
    if Path(path).suffix.lower() in _SPICE_EXT:
        return "spice"
    spice = vacask = False
    in_control = in_embed = False
    for line in text.splitlines()[1:]:
        s = line.strip()
        if in_embed:
            in_embed = not s.startswith(">>>")
            continue
        if "<<<" in s:
            in_embed = True
            continue
        if not s or s.startswith(("*", "//", "+", ";", "$")):
            continue
        low = s.lower()
        if in_control:
            in_control = not low.startswith(".endc")
            continue
        if _SPICE_CARD.match(s):
            spice = True
            in_control = low.startswith(".control")
        elif _VACASK_STMT.match(s):
            vacask = True
    if spice != vacask:
        return "spice" if spice else "vacask"
    return "ambiguous"


#: VACASK's analyses with ``writeop`` (lib/coreac.cpp, coreacxf.cpp, coredcinc.cpp,
#: coredcxf.cpp, corenoise.cpp)
WRITEOP_KINDS = frozenset({"ac", "dcinc", "dcxf", "acxf", "noise"})


@dataclass
class Simulation:
    """A netlist elaborated into an MNA system with a compiled Newton solver."""

    circuit: FlatCircuit
    system: System
    engine: Engine
    options: Options
    library: ModelLibrary
    compile_s: float
    results: dict[str, Result] = field(default_factory=dict)
    #: as read (VACASK: ``elaborate`` and sweeps of top-level parameters elaborate it again)
    netlist: Netlist | None = None
    path: Path | None = None
    #: VACASK ``store="slot"`` solutions: slot → unknown name → value
    stored: dict[str, dict[str, float]] = field(default_factory=dict)
    #: VACASK hb ``store="slot"`` solutions: slot → (unknown names, phasors (m, n), frequencies)
    stored_hb: dict[str, tuple] = field(default_factory=dict)
    #: the VACASK ``alter`` commands applied to ``circuit`` (``sim._alter``)
    alters: tuple = ()
    #: analyses that failed where VACASK's ``abort`` mode went on (:meth:`run_or_go_on`)
    failures: list = field(default_factory=list)

    @classmethod
    def from_file(cls, path: str | Path, prefer: str | None = None) -> "Simulation":
        """Build a simulation; ``prefer`` (default ``$VA2JAX_SIM_MODELS`` or ``auto``) picks the
        model source for ``load`` statements: ``auto``, ``va`` (generated), ``osdi``, ``builtin``.

        The circuit is the one of the first analysis (its ``elaborate circuit(...)``); an
        analysis after a later ``elaborate`` rebuilds it (:meth:`run_analysis`)."""
        prefer = prefer or _config.get("SIM_MODELS")
        if prefer not in ("auto", "va", "osdi", "builtin"):
            raise Va2JaxError(f"unknown model source {prefer!r} (auto, va, osdi, builtin)")
        t0 = time.perf_counter()
        try:
            net = read_netlist(path)
            first = net.analyses[0].circuit if net.analyses else ()
            alters = net.analyses[0].alters if net.analyses else ()
            if alters:
                from ._alter import apply_alters
                from .parse_vacask import reread_with

                circ = apply_alters(net, first, alters, reread_with(Path(path)))
            else:
                circ = elaborate(net, first)
            warn_unused_options(circ.options)
            if net.analyses and net.analyses[0].options is not None:
                scope = dict(circ.params)
                for k, v in (net.analyses[0].variables or {}).items():
                    try:
                        scope[k] = evaluate(v, scope, net.dialect)
                    except ExprError:
                        pass  # reported when the analysis runs
                circ.options = cls._eval_options(net.analyses[0], scope, net.dialect)
            opts = Options.from_dict(circ.options)
            lib = ModelLibrary(Path(path).resolve().parent, prefer=prefer)
            for fname, loc in circ.loads:
                lib.load(fname, loc)
        except NetlistError as exc:  # never quote an included file that is not a netlist
            raise private(exc, Path(path)) from None
        system, eng = cls._compile(circ, lib, opts, path)
        return cls(circ, system, eng, opts, lib, time.perf_counter() - t0, netlist=net,
                   path=Path(path), alters=tuple(alters))

    @staticmethod
    def _compile(circ: FlatCircuit, lib: ModelLibrary, opts: Options,
                 path: str | Path) -> tuple[System, Engine]:
        try:
            system = build_system(circ, lib.resolve, temperature=opts.temp + 273.15)
        except NetlistError as exc:
            raise private(exc, Path(path)) from None
        if system.n == 0:
            raise Va2JaxError(f"{path}: the circuit has no nodes (no elements to simulate)")
        from ..codegen import persistent_cache

        persistent_cache()  # a later run of the circuit reuses its compiled loops
        return system, Engine(system, opts)

    def scope(self, decl: AnalysisDecl) -> dict:
        """Names an analysis' expressions see: the top-level parameters, then the control
        ``var`` values read before it (VACASK), evaluated in order."""
        env = dict(self.circuit.params)
        for k, v in (decl.variables or {}).items():
            try:
                env[k] = evaluate(v, env, self.circuit.dialect)
            except ExprError as exc:
                raise NetlistError(decl.loc, f"var {k}: {exc}") from None
        return env

    @staticmethod
    def _eval_options(decl: AnalysisDecl, scope: dict, dialect: str) -> dict:
        """The options in force for ``decl`` (VACASK: those read before it), evaluated."""
        out = {}
        for k, v in (decl.options or {}).items():
            try:
                out[k] = evaluate(v, scope, dialect)
            except ExprError as exc:
                raise NetlistError(decl.loc, f"option {k}: {exc}") from None
        return out

    def use_options(self, decl: AnalysisDecl) -> None:
        """Rebuild with the options in force for ``decl`` (VACASK applies ``options`` to the
        analyses after them), unless they are the current ones."""
        if decl.options is None:
            return
        wanted = self._eval_options(decl, self.scope(decl), self.circuit.dialect)
        if wanted == self.circuit.options:
            return
        t0 = time.perf_counter()
        circ = copy.copy(self.circuit)
        circ.options = wanted
        opts = Options.from_dict(wanted)
        self.system, self.engine = self._compile(circ, self.library, opts, self.path or Path("."))
        self.circuit, self.options = circ, opts
        self.compile_s += time.perf_counter() - t0

    def use_circuit(self, circuit: tuple[str, ...], alters: tuple = ()) -> None:
        """Rebuild the circuit with the subcircuits ``circuit`` elaborated at top level (VACASK's
        ``elaborate circuit(...)``) and the ``alter`` commands ``alters`` applied, unless it is
        the current one."""
        if (tuple(circuit) == self.circuit.circuit and tuple(alters) == self.alters) or \
                self.netlist is None:
            return
        t0 = time.perf_counter()
        try:
            if alters:
                from ._alter import apply_alters
                from .parse_vacask import reread_with

                circ = apply_alters(self.netlist, tuple(circuit), tuple(alters),
                                    reread_with(self.path or Path(".")))
            else:
                circ = elaborate(self.netlist, tuple(circuit))
            circ.options = self.circuit.options  # those self.options hold
        except NetlistError as exc:
            raise private(exc, self.path or Path(".")) from None
        self.alters = tuple(alters)
        self.system, self.engine = self._compile(circ, self.library, self.options,
                                                 self.path or Path("."))
        self.circuit = circ
        self.compile_s += time.perf_counter() - t0

    def _num(self, decl: AnalysisDecl, key: str, default: float | None = None) -> float | None:
        for k, v in decl.params.items():
            if k.lower() == key:
                try:
                    val = evaluate(v, self.scope(decl), self.circuit.dialect)
                except ExprError as exc:
                    raise NetlistError(decl.loc, f"analysis {decl.name}: {exc}") from None
                if not isinstance(val, (int, float)):
                    raise NetlistError(decl.loc, f"analysis {decl.name}: {key} must be a number")
                return float(val)
        return default

    def _op_nodeset(self, decl: AnalysisDecl) -> np.ndarray | None:
        """The operating point of ``decl`` started from its VACASK ``nodeset`` (forced, then
        released: :mod:`._nodeset`); ``None`` when it has none."""
        from ._nodeset import forced, parse_nodeset

        params = {k.lower(): v for k, v in decl.params.items()}
        if "nodeset" not in params:
            return None
        try:
            value = evaluate(params["nodeset"], self.scope(decl), self.circuit.dialect)
        except ExprError as exc:
            raise NetlistError(decl.loc, f"analysis {decl.name}: nodeset: {exc}") from None
        index = {nm: i for i, nm in enumerate(self.system.names)}
        forces = parse_nodeset(value, index, self.stored, decl.loc, f"analysis {decl.name}",
                               frozenset(self.circuit.ground) | {"0"})
        if not forces:
            return None
        b = self.system.source_vector(None, dc=True)
        sys2, b2 = forced(self.system, b, forces)
        x0 = Engine(sys2, self.options).op(b2, what=f"analysis {decl.name} (nodesets)")
        return self.engine.op(b, x0, what=f"analysis {decl.name}")

    def _store(self, decl: AnalysisDecl, x: np.ndarray) -> None:
        """VACASK's ``store="slot"``: keep the operating point ``x`` under that name."""
        slot = {k.lower(): v for k, v in decl.params.items()}.get("store", "").strip().strip('"')
        if slot:
            self.stored[slot] = dict(zip(self.system.names, np.real(x).tolist()))

    def _op(self, decl: AnalysisDecl) -> Result:
        """Operating point with VACASK's ``nodeset`` and ``store`` (:mod:`._nodeset`)."""
        eng = self.engine
        t0 = time.perf_counter()
        x = self._op_nodeset(decl)
        if x is not None:
            from .results import Stats

            st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
            res = Result(decl.name, "op", None, None, list(self.system.names), x[None, :], st)
        else:
            res = run_op(eng, decl.name)
        self._store(decl, res.data[0])
        return res

    def _str(self, decl: AnalysisDecl, key: str, default: str) -> str:
        for k, v in decl.params.items():
            if k.lower() == key:
                return v.strip().strip('"').lower()
        return default

    def with_writeop(self, decl: AnalysisDecl) -> list[AnalysisDecl]:
        """``decl``, after the operating point its VACASK ``writeop=1`` writes (ac, dcinc, dcxf,
        acxf, noise: ``NAME.op.raw``, what an ``op`` named ``NAME.op`` with the same nodeset,
        ``v``/``i``/``p`` saves and sweeps writes — VACASK's small-signal analyses run that op
        core)."""
        params = {k.lower(): v for k, v in decl.params.items()}
        if "writeop" not in params or decl.kind not in WRITEOP_KINDS:
            return [decl]
        try:
            on = evaluate(params["writeop"], self.scope(decl), self.circuit.dialect)
        except ExprError as exc:
            raise NetlistError(decl.loc, f"analysis {decl.name}: writeop: {exc}") from None
        if not on:
            return [decl]
        op = {k: v for k, v in decl.params.items() if k.lower() == "nodeset"}
        # the op core takes v, i, p (default, full, dv, di are the small-signal core's; none
        # left: the op core's default), VACASK's SmallSignal::resolveOpSave
        saves = tuple(sv for sv in decl.saves if sv.kind in ("v", "i", "p"))
        return [replace(decl, name=f"{decl.name}.op", kind="op", params=op, sweep=None, saves=saves),
                decl]

    def run(self, progress: Callable[[str, float, float], None] | None = None) -> dict[str, Result]:
        """Run every analysis of the netlist; returns name → :class:`Result`."""
        if not self.circuit.analyses:
            raise Va2JaxError(f"{self.circuit.path}: no analysis in the netlist")
        for decl in (d for a in self.circuit.analyses for d in self.with_writeop(a)):
            res = self.run_or_go_on(decl, progress)
            if res is not None:
                self.results[decl.name] = res
        if self.failures:
            raise self.failures[0]
        return self.results

    def run_or_go_on(self, decl: AnalysisDecl,
                     progress: Callable[[str, float, float], None] | None = None) -> Result | None:
        """:meth:`run_analysis`, except that an analysis that fails (Newton, a singular matrix)
        where VACASK's ``abort`` mode goes on (its default) is one warning and ``None``: the
        analyses after it still run, as in VACASK. The failure is kept in :attr:`failures`
        (the run ends with it) unless the mode is ``abort never``."""
        from .engine import ConvergenceError

        try:
            return self.run_analysis(decl, progress)
        except ConvergenceError as exc:
            if decl.abort not in ("continue", "ignore"):
                raise
            if decl.abort == "continue":
                self.failures.append(exc)
            import warnings

            warnings.warn(f"{decl.loc}: analysis {decl.name} failed, going on (VACASK's abort "
                          f"mode; 'abort always' stops): {exc}", stacklevel=2)
            return getattr(exc, "partial", None)  # a transient's points before it

    def run_analysis(self, decl: AnalysisDecl,
                     progress: Callable[[str, float, float], None] | None = None) -> Result:
        """Run one analysis; its result holds the vectors its ``save`` directives ask for."""
        from ._saves import select

        try:
            res = self._run_analysis(decl, progress)
        except ConvergenceError as e:  # a transient's points before the failure, as saved
            if e.partial is not None and decl.saves:
                e.partial = select(e.partial, decl.saves, self.system.aliases, self._opvar)
            raise
        if decl.saves:
            sims = getattr(res, "point_sims", None)  # a sweep: each row's own circuit
            opvar = self._opvar if sims is None else \
                (lambda inst, name, loc, X: _opvar_rows(sims, inst, name, loc, X))
            res = select(res, decl.saves, self.system.aliases, opvar)
        return res

    def _opvar(self, inst: str, name: str, loc, X):
        from ._opvars import opvar_values

        return opvar_values(self, inst, name, loc, X)

    def _run_analysis(self, decl: AnalysisDecl,
                      progress: Callable[[str, float, float], None] | None = None) -> Result:
        self.use_circuit(decl.circuit, decl.alters)
        self.use_options(decl)
        if decl.sweeps and self.circuit.dialect == "vacask":
            from ._sweep import run_swept

            res = run_swept(self, decl)
            res.stats.compile_s = self.engine.compile_s
            return res
        eng = self.engine
        eng.iterations = 0
        kind = decl.kind
        if decl.sweep is not None and kind == "op":
            kind = "dc"
        if kind == "op":
            res = self._op(decl)
        elif kind == "dc":
            sw = decl.sweep or {}
            src = (sw.get("instance") or "").strip('"')
            if not src:
                raise NetlistError(decl.loc, f"analysis {decl.name}: dc sweep needs a source "
                                             "(sweep ... instance=\"v1\" parameter=\"dc\")")
            par = (sw.get("parameter") or '"dc"').strip('"').lower()
            if par != "dc":
                raise NetlistError(decl.loc, f"analysis {decl.name}: only sweeps of a source's dc "
                                             f"value are supported, not {par!r}")
            fake = AnalysisDecl(decl.name, "dc", sw, decl.loc)
            start = self._num(fake, "from")
            stop = self._num(fake, "to")
            step = self._num(fake, "step")
            if start is None or stop is None or not step:
                raise NetlistError(decl.loc, f"analysis {decl.name}: sweep needs from, to, step")
            npts = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = start + step * np.arange(npts)
            res = run_dc_sweep(eng, decl.name, src, values)
        elif kind == "tran":
            stop = self._num(decl, "stop")
            if not stop or stop <= 0:
                raise NetlistError(decl.loc, f"analysis {decl.name}: tran needs stop > 0")
            step = self._num(decl, "step")
            maxstep = self._num(decl, "maxstep")
            check_tran_times(stop, step, maxstep, decl.loc, f"analysis {decl.name}")
            start = self._num(decl, "start", 0.0) or 0.0
            icmode = self._str(decl, "icmode", "op")
            method = self._str(decl, "method", self.options.tran_method)
            cb = None
            if progress is not None:
                name = decl.name
                cb = lambda t: progress(name, t, stop)  # noqa: E731
            from ._nodeset import tran_initial

            res = run_tran(eng, decl.name, stop, step, maxstep, start,
                           method=Options.from_dict({"tran_method": method}).tran_method,
                           uic=icmode == "uic", progress=cb,
                           x0=tran_initial(self, decl, icmode))
            slot = {k.lower(): v for k, v in decl.params.items()}.get("store", "").strip().strip('"')
            if slot:  # VACASK: the last point, for a later op nodeset / tran ic
                self.stored[slot] = dict(zip(res.names, np.real(res.data[-1]).tolist()))
        elif kind == "ac" and self.circuit.dialect == "vacask":
            from ._sweep import sweep_points  # VACASK's frequency points are a sweep's

            sw = {k.lower(): v for k, v in decl.params.items()}
            for k in ("nodeset", "store", "write"):  # the operating point's; the output's
                sw.pop(k, None)
            sw["name"] = f"analysis {decl.name}"
            x_op = self._op_nodeset(decl)
            if x_op is None and "store" in {k.lower() for k in decl.params}:
                x_op = eng.op(eng.sys.source_vector(None, dc=True), what=f"analysis {decl.name}")
            if x_op is not None:
                self._store(decl, x_op)
            res = run_ac(eng, decl.name, sweep_points(sw, self.scope(decl), decl), x_op=x_op)
        elif kind == "noise" and self.circuit.dialect == "vacask":
            from ._noise_analysis import run_noise

            res = run_noise(self, decl)
        elif kind in ("noise", "noise_int"):  # ngspice's .noise (two plots)
            from ._noise_spice import run_spice_noise

            res = run_spice_noise(self, decl)
        elif kind == "ac":
            f0 = self._num(decl, "from")
            f1 = self._num(decl, "to")
            mode = self._str(decl, "mode", "dec")
            if f0 is None or f1 is None or f0 <= 0 and mode != "lin":
                raise NetlistError(decl.loc, f"analysis {decl.name}: ac needs from > 0 and to")
            if mode == "lin":
                pts = int(self._num(decl, "points", 0) or 0)
                step = self._num(decl, "step")
                freqs = (np.linspace(f0, f1, pts) if pts else np.arange(f0, f1 * (1 + 1e-12), step))
            else:
                pts = int(self._num(decl, "points", 10) or 10)
                base = 10.0 if mode == "dec" else 2.0
                nd = math.log(f1 / f0, base)
                freqs = f0 * base ** (np.arange(int(math.floor(nd * pts + 1e-9)) + 1) / pts)
            res = run_ac(eng, decl.name, freqs)
        elif kind == "hb" and self.circuit.dialect == "vacask":
            from ._hb import run_hb

            res = run_hb(self, decl)
        elif kind in ("dcinc", "dcxf", "acxf", "tf"):
            from ._xf import run_xf_decl

            res = run_xf_decl(self, decl)
        else:
            raise NetlistError(decl.loc, f"analysis {decl.name}: unsupported type {decl.kind!r} "
                                         "(op, dc, tran, ac, dcinc, dcxf, acxf)")
        res.stats.compile_s = eng.compile_s
        return res


def _opvar_rows(sims: list, inst: str, name: str, loc, X: np.ndarray) -> np.ndarray:
    """Opvar ``name`` of ``inst`` at each row of ``X``, row ``r`` read with the circuit of
    ``sims[r]`` (a sweep point's parameters, options)."""
    from ._opvars import opvar_values

    out = np.empty(X.shape[0])
    i = 0
    while i < len(sims):
        j = i
        while j < len(sims) and sims[j] is sims[i]:
            j += 1
        out[i:j] = opvar_values(sims[i], inst, name, loc, X[i:j])
        i = j
    return out


def simulate(path: str | Path, prefer: str | None = None) -> dict[str, Result]:
    """Parse, elaborate and run all analyses of a netlist file."""
    return Simulation.from_file(path, prefer=prefer).run()

