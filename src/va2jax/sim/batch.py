"""Batched sweeps: one circuit, N parameter sets, one vmapped (optionally sharded) computation.

Chosen element, source, instance and model-card parameters become traced inputs ``p`` (K,) of
the DC operating point and of the transient; :func:`jax.vmap` maps them over the N rows of a
``(N, K)`` table and XLA compiles the whole batch once. Both analyses run exactly the algorithms
of :mod:`.analysis` / :mod:`.tran` (same Newton, same gmin/source stepping, same adaptive
step control, built from the same functions), so a lane of the batch equals the run of that
parameter set on its own.

Where a parameter enters (``G``, ``C``: linear stamps; ``b``: source vector)::

    resistor r     G += (1/r)·S        S = e_a e_aᵀ + e_b e_bᵀ − e_a e_bᵀ − e_b e_aᵀ
    capacitor c    C += c·S
    inductor l     C[br, br] −= l
    vcvs gain      G[br, ip] −= gain,  G[br, in] += gain
    vccs gain      G += gain·(e_op − e_on)(e_ip − e_in)ᵀ
    source dc, val0, val1, sinedc, ampl   b(t) through the waveform (amplitudes only: timing
                   parameters would move the breakpoints of the step control)
    device / model parameters   the model's setup (OpenVAF init) runs inside the traced
                   function (:meth:`va2jax.Model.function`), per Newton iteration

``G(p) = G₀ − Σ f(p₀)·S + Σ f(p)·S`` with ``G₀`` the nominal matrix (likewise ``C``).

Adaptive time steps differ between lanes: under ``vmap`` the time loop runs until the slowest
lane finishes (finished lanes are masked), and each lane returns its own accepted time points
(``BatchTran.npoints``); :meth:`BatchTran.at` interpolates them onto a common grid.

Sharding (:func:`run_sharded`): the batch axis is split over a
:class:`jax.sharding.Mesh` of all devices (``PartitionSpec("batch")``) with
:func:`jax.shard_map`, so every device runs its own lanes' loops without waiting for the others;
N is padded to a multiple of the device count by repeating the last row. On one host, several
CPU devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=K`` (set before JAX
starts); on a cluster, JAX's multi-host runtime (``jax.distributed.initialize``) provides them:
``mode="distributed"`` (:mod:`.distributed`) splits the lanes over every process's devices and
gathers the results in every process.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import Va2JaxError, suggest
from .adapters import GeneratedModel
from .assembly import assemble_fn
from .devices import DeviceGroup, JaxFunctionGroup, JaxFunctionModel
from .engine import ConvergenceError, OpStatus, Options, StatusCode, dc_op, loop_compiler_options, make_newton
from .mna import LINEAR_MODULES, GroupRef, System
from .netlist import FlatCircuit, FlatInstance, check_tran_times
from .tran import TranKernel

__all__ = ["BatchSweep", "BatchOp", "BatchTran", "sweep", "run_sharded", "LaneStatus"]


class LaneStatus(StatusCode):
    """How one parameter set (lane) of a batch ended (``BatchOp.status``, ``BatchTran.status``)."""

    OK = 0, "converged"
    OP_FAILED = 1, "the operating point did not converge"
    TRAN_FAILED = 2, "Newton failed in the transient (time step too small)"
    OVERFLOW = 3, "more accepted time points than max_points"


OK, OP_FAILED, TRAN_FAILED, OVERFLOW = LaneStatus

#: default parameter of a linear element (``"r1"`` means ``"r1.r"``)
_DEFAULT_PARAM = {"resistor": "r", "capacitor": "c", "inductor": "l", "vsource": "dc",
                  "isource": "dc", "vcvs": "gain", "vccs": "gain"}
_LINEAR_ALIASES = {"resistance": "r", "capacitance": "c", "inductance": "l", "gm": "gain"}
#: source parameters that only scale values (timing ones would move breakpoints)
_SOURCE_SWEEPABLE = {"dc": {"dc"}, "pulse": {"dc", "val0", "val1"}, "exp": {"dc", "val0", "val1"},
                     "sine": {"dc", "sinedc", "ampl"}, "pwl": {"dc"}}


# ---------------------------------------------------------------------------------------------
# parameter targets
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Linear:
    matrix: str  # "G" | "C"
    pattern: np.ndarray  # (n, n)
    transform: Callable[[Any], Any]  # parameter value → matrix coefficient


@dataclasses.dataclass
class _Source:
    index: int  # into System.sources
    key: str


@dataclasses.dataclass
class _Device:
    group: int  # into System.groups
    rows: list[int]  # instances of the group that take the value
    param: str  # canonical parameter name


def _stamp2(n: int, a: int, b: int) -> np.ndarray:
    """Two-terminal stamp pattern S (ground rows/columns dropped)."""
    S = np.zeros((n + 1, n + 1))
    S[a, a] += 1.0
    S[b, b] += 1.0
    S[a, b] -= 1.0
    S[b, a] -= 1.0
    return S[:n, :n]


class BatchSweep:
    """A circuit whose parameters ``keys`` are traced inputs of its DC operating point and transient.

    ``keys`` name what varies, case-insensitively:

    * ``"r1"`` — the main value of a linear element (resistor r, capacitor c, inductor l,
      source dc, vcvs/vccs gain); ``"r1.r"``, ``"v1.val1"`` — a named one;
    * ``"d1.area"`` — an instance parameter of a device;
    * ``"dmod.is"`` — a parameter of model card ``dmod`` (all its instances).

    Build once, then run many tables of values: :meth:`op` / :meth:`tran` (vmapped, optionally
    sharded), :meth:`op_sequential` / :meth:`tran_sequential` (the reference: the same compiled
    single-set function called once per row).
    """

    def __init__(self, netlist: "str | Path | Any", keys: Sequence[str], prefer: str | None = None):
        from .simulation import Simulation

        sim = netlist if isinstance(netlist, Simulation) else Simulation.from_file(netlist, prefer)
        self.sim = sim
        self.system: System = sim.system
        self.opts: Options = sim.options
        self.circuit: FlatCircuit = sim.circuit
        self.keys = [str(k) for k in keys]
        if not self.keys:
            raise Va2JaxError("sweep: no parameters given")
        if len({k.lower() for k in self.keys}) != len(self.keys):
            raise Va2JaxError("sweep: a parameter is given twice")
        self.temperature = self.opts.temp + 273.15
        self._inst = {i.name.lower(): i for i in self.circuit.instances}
        self.targets: list[_Linear | _Source | _Device] = []
        nominal = []
        for k in self.keys:
            tgt, v0 = self._resolve(k)
            self.targets.append(tgt)
            nominal.append(v0)
        self.nominal = np.asarray(nominal, float)
        self._G0, self._C0 = self._fixed_parts()
        self._groups = self._device_groups()
        self._compiled: dict[tuple, Any] = {}

    # -- key resolution -----------------------------------------------------------------------
    def _module(self, inst: FlatInstance) -> tuple[str, dict[str, Any]]:
        card = self.circuit.models.get(inst.master.lower())
        if card is not None:
            return card.module.lower(), dict(card.params)
        return inst.master.lower(), {}

    def _resolve(self, key: str) -> tuple[Any, float]:
        low = key.lower()
        if low in self._inst:
            inst, pname = self._inst[low], None
        else:
            head, _, pname = low.rpartition(".")
            inst = self._inst.get(head)
            if inst is None:
                if head in self.circuit.models:
                    return self._resolve_card(key, head, pname)
                cands = list(self._inst) + list(self.circuit.models)
                raise Va2JaxError(f"sweep parameter {key!r}: no instance or model card "
                                  f"{head or low!r}" + suggest(head or low, cands))
        module, card_params = self._module(inst)
        if module in LINEAR_MODULES and self.sim.library.resolve(module, None) is None:
            return self._resolve_linear(key, inst, module, pname, {**card_params, **inst.params})
        if pname is None:
            raise Va2JaxError(f"sweep parameter {key!r}: name a parameter of device "
                              f"{inst.name} ({key}.<parameter>)")
        gi, row = self._group_of(inst)
        model = self.system.groups[gi].model
        kind = model.param_kind(pname)
        if kind is None:
            raise Va2JaxError(f"sweep parameter {key!r}: unknown parameter {pname!r} of "
                              f"{model.name}" + suggest(pname, model.param_names()))
        if kind == "model":
            raise Va2JaxError(f"sweep parameter {key!r}: {pname!r} is a model parameter of "
                              f"{model.name}; sweep it on the model card ({inst.master}.{pname})")
        canon = _canonical(model, pname)
        return _Device(gi, [row], canon), self._nominal_device(gi, row, canon)

    def _resolve_linear(self, key: str, inst: FlatInstance, module: str, pname: str | None,
                        params: Mapping[str, Any]) -> tuple[Any, float]:
        if module in ("cccs", "ccvs", "mutual"):
            raise Va2JaxError(f"sweep parameter {key!r}: {module} {inst.name} cannot be swept in "
                              "a batch yet")
        pname = _LINEAR_ALIASES.get(pname or "", pname) or _DEFAULT_PARAM[module]
        sysm = self.system
        n = sysm.n

        def node(nm: str) -> int:
            return n if nm == "0" else sysm.node_index[nm]

        def value(names: tuple[str, ...], default: float | None = None) -> float:
            for k, v in params.items():
                if k.lower() in names and isinstance(v, (int, float)):
                    return float(v)
            if default is None:
                raise Va2JaxError(f"sweep parameter {key!r}: {inst.name} has no numeric {names[0]}")
            return default

        if module in ("vsource", "isource"):
            idx = [i for i, s in enumerate(sysm.sources) if s.name.lower() == inst.name.lower()][0]
            wave = sysm.sources[idx].wave
            ok = _SOURCE_SWEEPABLE.get(wave.kind, {"dc"})
            if pname not in ok:
                raise Va2JaxError(f"sweep parameter {key!r}: only {', '.join(sorted(ok))} of a "
                                  f"{wave.kind} source can be swept (timing parameters move the "
                                  "breakpoints of the step control)")
            v0 = wave.dc if pname == "dc" else float(wave.p.get(pname, 0.0))
            return _Source(idx, pname), v0
        want = {"resistor": "r", "capacitor": "c", "inductor": "l"}.get(module, "gain")
        if pname != want:
            raise Va2JaxError(f"sweep parameter {key!r}: {module} {inst.name} has no sweepable "
                              f"parameter {pname!r} (only {want})")
        a, b = (node(x) for x in inst.nodes[:2])
        if module == "resistor":
            r0 = value(("r", "resistance"))
            return _Linear("G", _stamp2(n, a, b), lambda r: 1.0 / r), r0
        if module == "capacitor":
            return _Linear("C", _stamp2(n, a, b), lambda c: c), value(("c", "capacitance"))
        if module == "inductor":
            br = sysm.names.index(f"{inst.name}:flow(br)")
            S = np.zeros((n, n))
            S[br, br] = -1.0
            return _Linear("C", S, lambda l_: l_), value(("l", "inductance"))
        S = np.zeros((n + 1, n + 1))
        ip, inn = (node(x) for x in inst.nodes[2:4])
        if module == "vcvs":
            br = sysm.names.index(f"{inst.name}:flow(br)")
            S[br, ip] -= 1.0
            S[br, inn] += 1.0
        else:  # vccs
            S[a, ip] += 1.0
            S[a, inn] -= 1.0
            S[b, ip] -= 1.0
            S[b, inn] += 1.0
        return _Linear("G", S[:n, :n], lambda g: g), value(("gain", "gm"))

    def _resolve_card(self, key: str, card_key: str, pname: str) -> tuple[Any, float]:
        users = [i for i in self.circuit.instances if i.master.lower() == card_key]
        if not users:
            raise Va2JaxError(f"sweep parameter {key!r}: model card {card_key!r} has no instances")
        gi, _ = self._group_of(users[0])
        model = self.system.groups[gi].model
        if model.param_kind(pname) is None:
            raise Va2JaxError(f"sweep parameter {key!r}: unknown parameter {pname!r} of "
                              f"{model.name}" + suggest(pname, model.param_names()))
        canon = _canonical(model, pname)
        names = {u.name for u in users}
        gis = {self._group_of(u)[0] for u in users}
        if len(gis) != 1:
            raise Va2JaxError(f"sweep parameter {key!r}: the instances of {card_key} fall into "
                              "several device groups (not supported)")
        rows = [r for r, nm in enumerate(self.system.groups[gi].names) if nm in names]
        return _Device(gi, rows, canon), self._nominal_device(gi, rows[0], canon)

    def _group_of(self, inst: FlatInstance) -> tuple[int, int]:
        for gi, g in enumerate(self.system.groups):
            if inst.name in g.names:
                return gi, g.names.index(inst.name)
        raise Va2JaxError(f"instance {inst.name} is not a device")  # pragma: no cover

    def _given(self, gi: int, row: int) -> dict[str, Any]:
        """The parameters the netlist gives instance ``row`` of group ``gi`` (canonical names)."""
        g = self.system.groups[gi]
        inst = self._inst[g.names[row].lower()]
        _, card = self._module(inst)
        return {_canonical(g.model, k): v for k, v in {**card, **inst.params}.items()}

    def _nominal_device(self, gi: int, row: int, canon: str) -> float:
        given = self._given(gi, row)
        if canon in given:
            v = given[canon]
            if not isinstance(v, (int, float)):
                raise Va2JaxError(f"sweep: parameter {canon} is not a number")
            return float(v)
        grp = self.system.groups[gi].group
        model = self.system.groups[gi].model
        if isinstance(grp, JaxFunctionGroup) and canon in grp.params:  # built-in: defaults bound
            return float(np.asarray(grp.params[canon])[row])
        if isinstance(model, GeneratedModel):  # generated model: the default it resolves
            v = model.m.resolved_params().get(canon.lower())
            if isinstance(v, (int, float, np.floating, np.integer)):
                return float(v)
        return math.nan

    # -- pre-built pieces ---------------------------------------------------------------------
    def _fixed_parts(self) -> tuple[np.ndarray, np.ndarray]:
        G0, C0 = self.system.G.copy(), self.system.C.copy()
        for tgt, v0 in zip(self.targets, self.nominal):
            if isinstance(tgt, _Linear):
                M = G0 if tgt.matrix == "G" else C0
                M -= tgt.transform(v0) * tgt.pattern
        return G0, C0

    def _device_groups(self) -> dict[int, "_TracedGroup"]:
        out: dict[int, _TracedGroup] = {}
        for gi in sorted({t.group for t in self.targets if isinstance(t, _Device)}):
            swept = [(k, t) for k, t in enumerate(self.targets)
                     if isinstance(t, _Device) and t.group == gi]
            out[gi] = _TracedGroup(self, gi, swept)
        return out

    # -- the traced system --------------------------------------------------------------------
    def system_at(self, p: jax.Array) -> System:
        """The :class:`System` with parameter values ``p`` (K,) (traceable)."""
        sysm = self.system
        G, C = jnp.asarray(self._G0), jnp.asarray(self._C0)
        sources = list(sysm.sources)
        for k, tgt in enumerate(self.targets):
            if isinstance(tgt, _Linear):
                term = tgt.transform(p[k]) * jnp.asarray(tgt.pattern)
                if tgt.matrix == "G":
                    G = G + term
                else:
                    C = C + term
            elif isinstance(tgt, _Source):
                src = sources[tgt.index]
                w = src.wave
                if tgt.key == "dc":
                    w = dataclasses.replace(w, dc=p[k], p={**w.p, "dc": p[k]} if w.kind == "dc" else w.p)
                else:
                    w = dataclasses.replace(w, p={**w.p, tgt.key: p[k]})
                    if "dc" not in w.p:  # the op value follows the waveform at t = 0
                        w = dataclasses.replace(w, dc=w.jax_value(jnp.float64(0.0)))
                sources[tgt.index] = dataclasses.replace(src, wave=w)
        groups = list(sysm.groups)
        for gi, tg in self._groups.items():
            g = groups[gi]
            groups[gi] = GroupRef(g.model, tg.bound(p), g.idx, g.names)
        return dataclasses.replace(sysm, G=G, C=C, sources=sources, groups=groups)

    def _dc_vector(self, sysm: System) -> jax.Array:
        """``b`` with the sources' dc values (as :meth:`System.source_vector` with ``dc=True``)."""
        n = sysm.n
        b = jnp.zeros(n + 1)
        for s in sysm.sources:
            v = jnp.asarray(s.wave.dc, jnp.float64)
            if s.kind == "v":
                b = b.at[s.row].add(v)
            else:
                b = b.at[s.p].add(-v).at[s.n].add(v)
        return b[:n]

    def op_function(self) -> Callable[[jax.Array], dict[str, jax.Array]]:
        """Pure function ``p (K,) -> {"x": (n,), "status": ()}``: the DC operating point."""
        def op_one(p: jax.Array) -> dict[str, jax.Array]:
            sysm = self.system_at(p)
            newton = make_newton(self.system, self.opts, sysm)
            op = dc_op(newton, self._dc_vector(sysm), jnp.zeros(self.system.n), self.opts)
            ok = op.status == OpStatus.OK
            return {"x": op.x, "status": jnp.where(ok, OK, OP_FAILED).astype(jnp.int32)}
        return op_one

    def tran_function(self, stop: float, step: float | None = None, maxstep: float | None = None,
                      method: str | None = None, max_points: int = 2048, chunk: int = 64
                      ) -> Callable[[jax.Array], dict[str, jax.Array]]:
        """Pure function ``p (K,) -> {"time": (L,), "x": (L, n), "npoints", "status", ...}``:
        the transient of :func:`va2jax.sim.tran.run_tran` (from the operating point, same
        defaults: ``maxstep`` at most ``stop/50``, ``step = stop/1000``), accepted points first."""
        o = self.opts
        check_tran_times(stop, step, maxstep)
        if o.tran_control != "vacask":
            # the batch's transient (sweeps, and sim.function's primal run) is TranKernel's
            # VACASK control; a lane must equal the run `va2jax sim` makes of the same netlist,
            # which for ngspice's control it would not
            raise Va2JaxError(
                "a batched or differentiable transient (sweep, sim.function) runs VACASK's step "
                f"control, this netlist selects {o.tran_control}'s (the SPICE reader's default); "
                "add `.options tran_control=vacask` to run it so (each result then equals "
                "`va2jax sim` with that option)")
        method = method or o.tran_method
        method = Options.from_dict({"tran_method": method}).tran_method
        given = maxstep if maxstep and maxstep > 0 else None  # bounds the first step (tran.py)
        maxstep = min(maxstep, stop / 50) if maxstep and maxstep > 0 else stop / 50
        step = step if step and step > 0 else stop / 1000
        bps = self.system.breakpoints(stop)
        n = self.system.n
        L = max_points + chunk + 1

        def tran_one(p: jax.Array) -> dict[str, jax.Array]:
            sysm = self.system_at(p)
            assemble = assemble_fn(sysm)
            newton = make_newton(self.system, o, sysm)
            b_of_t = sysm.make_source_fn()
            op = dc_op(newton, b_of_t(jnp.float64(0.0)), jnp.zeros(n), o)
            x0, op_ok = op.x, op.status == OpStatus.OK
            q0 = assemble(x0)[1]
            # the kernel reads the sources (traced) and, for its step control, only the
            # structure of C (nominal)
            kern = TranKernel(newton, dataclasses.replace(self.system, sources=sysm.sources), o,
                              method, chunk=chunk)
            z = np.zeros(n)
            st = kern.initial_state(z, z, stop, step, maxstep, bps, eq0=(
                newton.slot_charges(x0) if kern.device_ref else None), maxstep_given=given)._replace(
                xh=jnp.stack([x0, x0, x0]), qh=jnp.stack([q0, q0, q0]), fh=jnp.stack([x0, x0, x0]),
                fail=~op_ok)
            buf_t = jnp.zeros(L)
            buf_x = jnp.zeros((L, n)).at[0].set(x0)

            def cond(c):
                s, _, _, count = c
                return (~s.done) & (~s.fail) & (count <= max_points)

            def body(c):
                s, bt, bx, count = c
                s = kern._run(s)
                bt = jax.lax.dynamic_update_slice(bt, s.out_t, (count,))
                bx = jax.lax.dynamic_update_slice(bx, s.out_x, (count, jnp.int32(0)))
                count = count + s.k
                return s._replace(k=jnp.int32(0)), bt, bx, count

            s, bt, bx, count = jax.lax.while_loop(cond, body, (st, buf_t, buf_x, jnp.int32(1)))
            status = jnp.where(~op_ok, OP_FAILED, jnp.where(
                s.fail, TRAN_FAILED, jnp.where(s.done, OK, OVERFLOW))).astype(jnp.int32)
            return {"time": bt, "x": bx, "npoints": count, "status": status,
                    "rejected": s.rej, "iterations": s.iters}

        return tran_one

    # -- running ------------------------------------------------------------------------------
    def table(self, values: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """Parameter table (N, K) from ``{key: (N,) values}`` (missing keys: nominal values)."""
        if isinstance(values, np.ndarray) and values.ndim == 2:
            if values.shape[1] != len(self.keys):
                raise Va2JaxError(f"sweep: table has {values.shape[1]} columns for "
                                  f"{len(self.keys)} parameters")
            if values.shape[0] == 0:
                raise Va2JaxError("sweep: no parameter sets (lane count 0)")
            return np.asarray(values, float)
        low = {k.lower(): i for i, k in enumerate(self.keys)}
        cols: dict[int, np.ndarray] = {}
        for k, v in dict(values).items():
            if k.lower() not in low:
                raise Va2JaxError(f"sweep: {k!r} is not one of the swept parameters"
                                  + suggest(k, self.keys))
            arr = np.asarray(v, float).reshape(-1)
            cols[low[k.lower()]] = arr
        sizes = {a.size for a in cols.values() if a.size != 1}
        if len(sizes) > 1:
            raise Va2JaxError(f"sweep: parameter arrays have different lengths {sorted(sizes)}")
        N = sizes.pop() if sizes else 1
        if N == 0:
            raise Va2JaxError("sweep: no parameter sets (lane count 0)")
        tab = np.tile(self.nominal, (N, 1))
        for i, a in cols.items():
            tab[:, i] = a
        for tg in self._groups.values():
            tg.check(tab)
        return tab

    def _run(self, what: str, fn: Callable, tab: np.ndarray, mode: str) -> tuple[dict, float, float]:
        N = tab.shape[0]
        if mode == "sequential":
            key = (what, "sequential")
            t0 = time.perf_counter()
            if key not in self._compiled:
                self._compiled[key] = jax.jit(fn).lower(jnp.asarray(tab[0])).compile(
                    compiler_options=loop_compiler_options())
            comp = time.perf_counter() - t0
            f = self._compiled[key]
            t1 = time.perf_counter()
            rows = [jax.tree_util.tree_map(np.asarray, f(jnp.asarray(r))) for r in tab]
            out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            return out, comp, time.perf_counter() - t1
        if mode == "vmap":
            key = (what, "vmap", N)
            t0 = time.perf_counter()
            if key not in self._compiled:
                # the simulator's loop options (XLA fusion on), as Engine and run_tran use
                self._compiled[key] = jax.jit(jax.vmap(fn)).lower(jnp.asarray(tab)).compile(
                    compiler_options=loop_compiler_options())
            comp = time.perf_counter() - t0
            t1 = time.perf_counter()
            out = jax.tree_util.tree_map(np.asarray, self._compiled[key](jnp.asarray(tab)))
            return out, comp, time.perf_counter() - t1
        if mode == "sharded":
            out, comp, run = run_sharded(fn, tab, cache=self._compiled, key=(what, "sharded"))
            return out, comp, run
        if mode == "distributed":
            from .distributed import run_distributed

            return run_distributed(fn, tab, cache=self._compiled, key=(what, "distributed"))
        raise Va2JaxError(f"sweep: unknown mode {mode!r} (vmap, sharded, distributed, "
                          "sequential)")

    def op(self, values: Mapping[str, Any] | np.ndarray, mode: str = "vmap",
           on_failure: str = "raise") -> "BatchOp":
        """DC operating points of all parameter sets (``mode``: vmap | sharded | distributed |
        sequential)."""
        tab = self.table(values)
        out, comp, run = self._run("op", self.op_function(), tab, mode)
        res = BatchOp(self.keys, tab, list(self.system.names), out["x"], out["status"], comp, run)
        res._check(on_failure)
        return res

    def tran(self, values: Mapping[str, Any] | np.ndarray, stop: float, step: float | None = None,
             maxstep: float | None = None, method: str | None = None, max_points: int = 2048,
             mode: str = "vmap", on_failure: str = "raise") -> "BatchTran":
        """Transients of all parameter sets; arguments as :func:`va2jax.sim.tran.run_tran`."""
        tab = self.table(values)
        fn = self.tran_function(stop, step, maxstep, method, max_points)
        what = ("tran", float(stop), step, maxstep, method, max_points)
        out, comp, run = self._run(repr(what), fn, tab, mode)
        res = BatchTran(self.keys, tab, list(self.system.names), out["time"], out["x"],
                        out["npoints"], out["status"], out["rejected"], out["iterations"], comp, run)
        res._check(on_failure)
        return res

    def op_sequential(self, values: Mapping[str, Any] | np.ndarray, **kw: Any) -> "BatchOp":
        return self.op(values, mode="sequential", **kw)

    def tran_sequential(self, values: Mapping[str, Any] | np.ndarray, stop: float,
                        **kw: Any) -> "BatchTran":
        return self.tran(values, stop, mode="sequential", **kw)


def _canonical(model: Any, name: str) -> str:
    if isinstance(model, JaxFunctionModel):
        return model.canonical(name) or name
    if isinstance(model, GeneratedModel) and model.canonical(name) is not None:
        return model.canonical(name)
    raise Va2JaxError(f"model {getattr(model, 'name', '?')}: parameters of this model source "
                      "cannot be traced (OSDI libraries run on the host); load the .va file")


class _TracedGroup:
    """A device group whose swept parameters come from the traced vector ``p``."""

    def __init__(self, owner: BatchSweep, gi: int, swept: list[tuple[int, _Device]],
                 backend: str | None = None):
        self.owner = owner
        ref = owner.system.groups[gi]
        self.ref = ref
        self.swept = swept
        self.size = ref.group.size
        self.node_alias = np.asarray(ref.group.node_alias)
        model = ref.model
        T = owner.temperature
        if isinstance(model, JaxFunctionModel):  # built-in: its params are per-instance arrays
            self.kind = "builtin"
            base = {k: np.asarray(v) for k, v in ref.group.params.items()}
            self.base = base
            self._group_cls = type(ref.group)
            return
        if not isinstance(model, GeneratedModel):
            _canonical(model, "")  # raises: OSDI
        self.kind = "generated"
        m = model.m
        given = [owner._given(gi, r) for r in range(self.size)]
        ptypes = {p.name.lower(): p.type for p in m.ir.params}
        swept_names = {t.param for _, t in swept}
        for c in swept_names:
            if ptypes.get(c.lower(), "real") != "real":
                raise Va2JaxError(f"sweep: parameter {c} of {m.name} is of type "
                                  f"{ptypes[c.lower()]}; only real parameters can be swept")
        keys = sorted({k for g in given for k in g})
        names = sorted(swept_names)
        fixed = {}
        for k in keys:
            vals = [g.get(k) for g in given]
            if k in swept_names:
                continue
            same = all(v == vals[0] for v in vals)
            if same:
                fixed[k] = vals[0]
            elif all(isinstance(v, (int, float)) for v in vals) and ptypes.get(k.lower(), "real") in ("real", "int"):
                # per-instance values (an integer one, e.g. PSP103's TYPE in a group holding
                # NMOS and PMOS cards, is passed as a value the model truncates; derivative 0)
                names.append(k)
            else:
                raise Va2JaxError(f"sweep: {m.name} instances differ in non-real parameter {k}")
        if not np.all(self.node_alias == self.node_alias[0]):
            raise Va2JaxError(f"sweep: the instances of {m.name} in one group collapse nodes "
                              "differently (not supported)")
        conn = np.asarray(getattr(ref.group, "connected", [m.num_terminals]))
        if not np.all(conn == conn[0]):
            raise Va2JaxError(f"sweep: the instances of {m.name} in one group connect different "
                              "numbers of terminals (not supported)")
        self.connected = int(conn[0])
        self.names = names
        self.given = given
        # nominal per-instance values of the traced names (defaults where not given)
        defaults = m.resolved_params({k: v for k, v in given[0].items() if k in fixed})
        self.values0 = {nm: np.array([float(g.get(nm, defaults.get(nm.lower(), np.nan)))
                                      for g in given]) for nm in names}
        fixed_all = dict(fixed)
        for nm in names:  # collapse decisions from the nominal values of the first instance
            fixed_all[nm] = self.values0[nm][0]
        self.fn = m.function(names, fixed_all, analysis="tran", backend=backend,
                             connected=self.connected)
        self.T = T

    def _values(self, p: jax.Array, base: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        vals = {k: jnp.asarray(v) for k, v in base.items()}
        for k, t in self.swept:
            vals[t.param] = vals[t.param].at[np.asarray(t.rows)].set(p[k])
        return vals

    def bound(self, p: jax.Array) -> Any:
        """A :class:`DeviceGroup` for parameter vector ``p``."""
        if self.kind == "builtin":
            grp = self.ref.group
            return self._group_cls(grp.model, self._values(p, self.base), self.node_alias,
                                   grp.temperature)
        vals = self._values(p, self.values0)
        return _TracedGeneratedGroup(self.size, self.node_alias, self.fn, vals, self.T)

    def check(self, tab: np.ndarray) -> None:
        """Every parameter set must be valid (bounds) and collapse nodes as the nominal one."""
        N = tab.shape[0]
        if self.kind == "builtin":
            model = self.ref.model
            if model.collapse is None:
                return
            for i in range(N):
                for r in range(self.size):
                    row = {k: float(v[r]) for k, v in self.base.items()}
                    for k, t in self.swept:
                        if r in t.rows:
                            row[t.param] = float(tab[i, k])
                    if list(model.collapse(row)) != list(self.node_alias[r]):
                        raise Va2JaxError(f"sweep: parameter set {i} changes the node collapsing "
                                          f"of {self.ref.names[r]} (not supported in one batch)")
            return
        m = self.ref.model.m
        for r in range(self.size):
            params: dict[str, Any] = {k: v for k, v in self.given[r].items() if k not in self.names}
            for nm in self.names:
                params[nm] = np.full(N, self.values0[nm][r])
            for k, t in self.swept:
                if r in t.rows:
                    params[t.param] = tab[:, k]
            try:
                st = m.setup(params, temperature=self.owner.temperature, connected=self.connected)
            except Va2JaxError as exc:
                raise Va2JaxError(f"sweep of {self.ref.names[r]}: {exc}") from None
            bad = np.nonzero(np.any(np.asarray(st["labels"]) != self.node_alias[r], axis=1))[0]
            if bad.size:
                raise Va2JaxError(f"sweep: parameter set {int(bad[0])} changes the node collapsing "
                                  f"of {self.ref.names[r]} (not supported in one batch)")


class _TracedGeneratedGroup(DeviceGroup):
    """Instances of a generated model evaluated by its traceable function
    (:meth:`va2jax.Model.function`) with parameter values ``vals`` that may be traced."""

    def __init__(self, size: int, node_alias: np.ndarray, fn: Callable,
                 vals: Mapping[str, jax.Array], T: float):
        self.size, self.node_alias = size, node_alias
        self._fn, self._vals, self._T = fn, dict(vals), T

    def eval(self, V: jax.Array):
        out = jax.vmap(self._fn, in_axes=(0, None, 0))(self._vals, jnp.float64(self._T), V)
        return (out["residual_resist"], out["residual_react"], out["jacobian_resist"],
                out["jacobian_react"])


def run_sharded(fn: Callable[[jax.Array], Any], tab: np.ndarray, devices: Sequence[Any] | None = None,
                cache: dict | None = None, key: Any = None) -> tuple[dict, float, float]:
    """Run ``vmap(fn)`` over the rows of ``tab`` with the batch axis split over all devices.

    The rows are padded to a multiple of the device count (last row repeated) and placed with
    ``NamedSharding(Mesh(devices, ("batch",)), PartitionSpec("batch"))``; :func:`jax.shard_map`
    gives each device its own lanes (its while loops run independently of the others).
    Returns ``(outputs without the padding, compile seconds, run seconds)``.
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devs = list(devices) if devices is not None else jax.devices()
    nd = len(devs)
    N = tab.shape[0]
    Np = -(-N // nd) * nd
    padded = np.concatenate([tab, np.repeat(tab[-1:], Np - N, axis=0)]) if Np > N else tab
    mesh = Mesh(np.array(devs), ("batch",))
    spec = PartitionSpec("batch")
    x = jax.device_put(jnp.asarray(padded), NamedSharding(mesh, spec))
    ckey = (key, Np, nd)
    t0 = time.perf_counter()
    f = cache.get(ckey) if cache is not None else None
    if f is None:
        mapped = jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=spec, out_specs=spec,
                               check_vma=False)
        f = jax.jit(mapped).lower(x).compile()
        if cache is not None:
            cache[ckey] = f
    comp = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = jax.tree_util.tree_map(lambda a: np.asarray(a)[:N], f(x))
    return out, comp, time.perf_counter() - t1


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Batch:
    keys: list[str]
    values: np.ndarray  # (N, K)
    names: list[str]

    def _col(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise Va2JaxError(f"sweep result has no signal {name!r}" + suggest(name, self.names)) from None

    def _fail(self, status: np.ndarray, on_failure: str, arrays: list[np.ndarray]) -> None:
        if on_failure not in ("raise", "nan"):
            raise Va2JaxError(f"sweep: on_failure must be 'raise' or 'nan', not {on_failure!r}")
        bad = np.nonzero(status != OK)[0]
        if not bad.size:
            return
        if on_failure == "raise":
            i = int(bad[0])
            pset = ", ".join(f"{k}={v:g}" for k, v in zip(self.keys, self.values[i]))
            raise ConvergenceError(f"sweep: {bad.size} of {len(status)} parameter sets failed; "
                                   f"first: set {i} ({pset}): {LaneStatus(int(status[i])).message}")
        for a in arrays:
            a[bad] = np.nan


@dataclasses.dataclass
class BatchOp(_Batch):
    """Operating points: ``x[i]`` solves parameter set ``values[i]``; ``status`` 0 = converged."""

    x: np.ndarray  # (N, n)
    status: np.ndarray  # (N,)
    compile_s: float = 0.0
    run_s: float = 0.0

    def __getitem__(self, name: str) -> np.ndarray:
        """Values of unknown ``name`` over the batch, shape (N,)."""
        return self.x[:, self._col(name)]

    def _check(self, on_failure: str) -> None:
        self.x = np.array(self.x)
        self._fail(self.status, on_failure, [self.x])


@dataclasses.dataclass
class BatchTran(_Batch):
    """Transients: lane ``i`` has ``npoints[i]`` accepted points ``time[i, :npoints[i]]``
    (NaN after), solutions ``x[i, :npoints[i]]``."""

    time: np.ndarray  # (N, L)
    x: np.ndarray  # (N, L, n)
    npoints: np.ndarray  # (N,)
    status: np.ndarray
    rejected: np.ndarray
    iterations: np.ndarray
    compile_s: float = 0.0
    run_s: float = 0.0

    def __getitem__(self, name: str) -> np.ndarray:
        """Waveforms of unknown ``name``, shape (N, L) (NaN after each lane's last point)."""
        return self.x[:, :, self._col(name)]

    def lane(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(time (m,), x (m, n))`` of parameter set ``i``."""
        m = int(self.npoints[i])
        return self.time[i, :m], self.x[i, :m]

    def at(self, times: Any, name: str | None = None) -> np.ndarray:
        """Linear interpolation onto ``times``: (N, T, n), or (N, T) for one unknown ``name``."""
        t = np.asarray(times, float)
        cols = [self._col(name)] if name else range(len(self.names))
        out = np.full((len(self.npoints), t.size, len(cols)), np.nan)
        for i in range(len(self.npoints)):
            ti, xi = self.lane(i)
            for j, c in enumerate(cols):
                out[i, :, j] = np.interp(t, ti, xi[:, c])
        return out[:, :, 0] if name else out

    def _check(self, on_failure: str) -> None:
        L = self.time.shape[1]
        self.time = np.array(self.time)
        self.x = np.array(self.x)
        past = np.arange(L)[None, :] >= self.npoints[:, None]
        self.time[past] = np.nan
        self.x[past] = np.nan
        self._fail(self.status, on_failure, [self.time, self.x])


# ---------------------------------------------------------------------------------------------
# one-call API
# ---------------------------------------------------------------------------------------------

def sweep(netlist: "str | Path | Any", params: Mapping[str, Any],
          analyses: Sequence[str] = ("op",), *, stop: float | None = None,
          step: float | None = None, maxstep: float | None = None, method: str | None = None,
          max_points: int = 2048, mode: str = "vmap", on_failure: str = "raise",
          prefer: str | None = None) -> dict[str, BatchOp | BatchTran]:
    """Monte-Carlo / corner run: every analysis for all N parameter sets at once.

    ``params`` maps keys (see :class:`BatchSweep`) to arrays (N,) (scalars broadcast).
    ``analyses``: ``"op"`` and/or ``"tran"``; the transient's ``stop/step/maxstep/method``
    default to the netlist's first ``tran`` analysis. ``mode``: ``vmap`` (one compiled batch),
    ``sharded`` (batch axis over all devices), ``distributed`` (batch axis over every device of
    every process of a JAX distributed job, :mod:`.distributed`; each process gets all results)
    or ``sequential`` (reference loop).

    >>> r = sweep("rc.sim", {"r1": np.linspace(1e3, 2e3, 100)}, ("op", "tran"))  # doctest: +SKIP
    >>> r["tran"].at(np.linspace(0, 1e-3, 11), "out").shape                       # doctest: +SKIP
    (100, 11)
    """
    if mode == "distributed":  # joins the job (if any) before JAX computes anything
        from .distributed import initialize

        initialize()
    bs = BatchSweep(netlist, list(params), prefer=prefer)
    out: dict[str, BatchOp | BatchTran] = {}
    for a in analyses:
        a_low = a.lower()
        if a_low == "op":
            out[a] = bs.op(params, mode=mode, on_failure=on_failure)
        elif a_low == "tran":
            st, sp, ms, me = stop, step, maxstep, method
            decl = next((d for d in bs.circuit.analyses if d.kind == "tran"), None)
            if decl is not None:
                st = st if st is not None else bs.sim._num(decl, "stop")
                sp = sp if sp is not None else bs.sim._num(decl, "step")
                ms = ms if ms is not None else bs.sim._num(decl, "maxstep")
                me = me if me is not None else bs.sim._str(decl, "method", bs.opts.tran_method)
            if not st or st <= 0:
                raise Va2JaxError("sweep: tran needs stop > 0 (argument or a tran analysis in "
                                  "the netlist)")
            out[a] = bs.tran(params, st, sp, ms, me, max_points=max_points, mode=mode,
                             on_failure=on_failure)
        else:
            raise Va2JaxError(f"sweep: unsupported analysis {a!r} (op, tran)")
    return out
