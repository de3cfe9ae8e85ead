"""Modified nodal analysis: unknown numbering, linear stamps, device groups, residual assembly.

The circuit equations are ``F(x) = f(x) + d/dt q(x) = 0`` over the unknowns ``x`` (node voltages
and branch currents). Linear elements are stamped once into constant matrices::

    f_lin(x, t) = G·x − b(t)        q_lin(x) = C·x

Nonlinear devices are grouped by (model, parameter set); each group gathers its local unknowns
``V = x[idx]`` (ground and collapsed nodes read 0 from a dump slot), evaluates ``(f, q, Jf, Jq)`` and
scatter-adds them into the global vectors and dense matrices. :meth:`System.assemble` is a pure
function of ``x`` and ``b``, so the whole Newton iteration can be jitted.

Sign conventions (OSDI / SPICE): ``f`` at a node row is the current *leaving* the node through the
device; a voltage source's branch current flows from its + node through the source to its − node.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import Va2JaxError, suggest
from .devices import CompiledModel, DeviceGroup
from .expr import Value
from .netlist import FlatCircuit, FlatInstance, Loc, NetlistError
from .sources import Waveform, make_waveform

jax.config.update("jax_enable_x64", True)

#: Built-in linear / source elements: module name → (terminal count, main parameter, aliases)
LINEAR_MODULES = {
    "resistor": (2, ("r", "resistance")),
    "capacitor": (2, ("c", "capacitance")),
    "inductor": (2, ("l", "inductance")),
    "vsource": (2, ()),
    "isource": (2, ()),
    "vcvs": (4, ("gain",)),
    "vccs": (4, ("gain", "gm")),
}
_SOURCE_PARAMS = {"dc", "type", "val0", "val1", "delay", "rise", "fall", "width", "period",
                  "sinedc", "ampl", "freq", "damp", "sinephase", "wave", "mag", "phase",
                  "td1", "tau1", "td2", "tau2", "acmag", "acphase"}


@dataclass
class SourceRef:
    name: str
    kind: str  # "v" | "i"
    row: int  # v: branch row; i: unused
    p: int
    n: int
    wave: Waveform


@dataclass
class GroupRef:
    model: CompiledModel
    group: DeviceGroup
    idx: np.ndarray  # (N, n) global index (n_unknowns = dump slot)
    names: list[str]


@dataclass
class System:
    """The assembled MNA system of a flattened circuit."""

    names: list[str]  # unknown names (node name, or "inst:flow(br)")
    is_current: np.ndarray  # (n,) bool
    G: np.ndarray
    C: np.ndarray
    sources: list[SourceRef]
    groups: list[GroupRef]
    node_index: dict[str, int]
    gmin_mask: np.ndarray  # (n,) 1.0 for node-voltage unknowns
    lte_mask: np.ndarray  # (n,) 1.0 for unknowns checked by the truncation-error control
    instances: dict[str, Loc] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.names)

    def source_vector(self, t: float | None, scale: float = 1.0, dc: bool = False) -> np.ndarray:
        """``b(t)`` such that ``f_lin = G·x − b``; ``dc=True`` uses the sources' ``dc`` values."""
        b = np.zeros(self.n + 1)
        for s in self.sources:
            val = s.wave.dc if dc or t is None else s.wave.value(t)
            val *= scale
            if s.kind == "v":
                b[s.row] += val
            else:
                b[s.p] -= val
                b[s.n] += val
        return b[: self.n]

    def ac_vector(self) -> np.ndarray:
        """Complex excitation of the AC analysis (sources' ``mag``/``phase``)."""
        b = np.zeros(self.n + 1, dtype=complex)
        for s in self.sources:
            ph = s.wave.mag * np.exp(1j * np.deg2rad(s.wave.phase))
            if s.kind == "v":
                b[s.row] += ph
            else:
                b[s.p] -= ph
                b[s.n] += ph
        return b[: self.n]

    def make_source_fn(self) -> Callable[[jax.Array], jax.Array]:
        """Traceable ``t -> b(t)`` (same as :meth:`source_vector`)."""
        n = self.n
        srcs = list(self.sources)

        def b_of_t(t: jax.Array) -> jax.Array:
            b = jnp.zeros(n + 1)
            for s in srcs:
                v = s.wave.jax_value(t)
                if s.kind == "v":
                    b = b.at[s.row].add(v)
                else:
                    b = b.at[s.p].add(-v).at[s.n].add(v)
            return b[:n]

        return b_of_t

    def breakpoints(self, stop: float) -> np.ndarray:
        bps: set[float] = {0.0, stop}
        for s in self.sources:
            bps.update(s.wave.breakpoints(stop))
        return np.array(sorted(bps))

    def sparsity(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices ``(Ai, Aj)`` of every Jacobian entry that can be non-zero: the
        linear stamps, every pair of unknowns one device instance touches, and the diagonal
        (gmin/gshunt). Sorted row-major, ground excluded."""
        n = self.n
        mask = (self.G != 0) | (self.C != 0) | np.eye(n, dtype=bool)
        for g in self.groups:
            idx = np.asarray(g.idx)
            r = np.repeat(idx[:, :, None], idx.shape[1], axis=2).ravel()
            c = np.repeat(idx[:, None, :], idx.shape[1], axis=1).ravel()
            keep = (r < n) & (c < n)
            mask[r[keep], c[keep]] = True
        Ai, Aj = np.nonzero(mask)
        return Ai.astype(np.int32), Aj.astype(np.int32)

    def stateful_groups(self) -> list[int]:
        """Indices of the device groups whose model keeps ``$limit`` states (Newton limiting)."""
        return [k for k, g in enumerate(self.groups) if getattr(g.group, "num_states", 0) > 0]

    def make_assemble(self) -> Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
        """Return ``assemble(x) -> (f_dev+G·x, q, Jf, Jq)`` (without ``−b``); jit-traceable."""
        full = self.make_assemble_limited()
        return lambda x: full(x, None, False)[:4]

    def coo_lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Ai, Aj, lut)``: the pattern of :meth:`sparsity` and an (n+1, n+1) table giving the
        position of entry (i, j) in it (``nnz`` — a discarded slot — for ground rows/columns)."""
        Ai, Aj = self.sparsity()
        n, nnz = self.n, len(Ai)
        lut = np.full((n + 1, n + 1), nnz, dtype=np.int32)
        lut[Ai, Aj] = np.arange(nnz, dtype=np.int32)
        return Ai, Aj, lut

    def make_assemble_limited(self, pattern: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                              ) -> Callable:
        """Return ``assemble(x, states, enable) -> (f, q, Jf, Jq, lim_f, lim_q, new_states)``.

        ``pattern``: ``(Ai, Aj, lut)`` of :meth:`coo_lookup` (of the circuit with concrete values:
        ``G``/``C`` here may be traced) — then ``Jf``/``Jq`` are the values on that pattern (nnz,),
        added there directly (COO: O(nnz) per assembly instead of O(n²)); otherwise dense (n, n).

        ``states``: a tuple with one ``(N, num_states)`` array per group of
        :meth:`stateful_groups` (the ``$limit`` states of the previous Newton iteration), or
        ``None`` to evaluate every group without limiting. With ``enable`` the models limit their
        junction voltages against those states: ``f``/``q`` and the Jacobians are then taken at
        the limited voltages and ``lim_f``/``lim_q`` (OSDI's limiting RHS, ``J·(v_lim − v)`` of
        the limited branches) correct the Newton right-hand side. ``new_states`` are the states
        to pass to the next iteration (the unlimited voltages when ``enable`` is false)."""
        n = self.n
        G = jnp.asarray(self.G)
        C = jnp.asarray(self.C)
        groups = [(g.group, jnp.asarray(g.idx)) for g in self.groups]
        stateful = self.stateful_groups()
        sparse = pattern is not None
        if sparse:
            Ai, Aj, lut = pattern
            nnz = len(Ai)
            lin_g = jnp.concatenate([G[Ai, Aj], jnp.zeros(1)])
            lin_c = jnp.concatenate([C[Ai, Aj], jnp.zeros(1)])
            Ai_j, Aj_j = jnp.asarray(Ai), jnp.asarray(Aj)
            pos = [jnp.asarray(lut[np.asarray(g.idx)[:, :, None], np.asarray(g.idx)[:, None, :]])
                   for g in self.groups]

            def linear(vals, x):  # (sparse linear stamps) · x
                return jax.ops.segment_sum(vals[:nnz] * x[Aj_j], Ai_j, num_segments=n)

        def assemble(x: jax.Array, states, enable):
            xe = jnp.concatenate([x, jnp.zeros(1, x.dtype)])
            lf = jnp.zeros(n + 1)
            lq = jnp.zeros(n + 1)
            if sparse:
                f = jnp.zeros(n + 1).at[:n].add(linear(lin_g, x))
                q = jnp.zeros(n + 1).at[:n].add(linear(lin_c, x))
                Jf, Jq = lin_g, lin_c
            else:
                f = jnp.zeros(n + 1).at[:n].add(G @ x)
                q = jnp.zeros(n + 1).at[:n].add(C @ x)
                Jf = jnp.zeros((n + 1, n + 1)).at[:n, :n].add(G)
                Jq = jnp.zeros((n + 1, n + 1)).at[:n, :n].add(C)
            new_states = []
            for k, (grp, idx) in enumerate(groups):
                V = xe[idx]
                if states is not None and k in stateful:
                    fl, ql, jfl, jql, lfl, lql, st = grp.eval_limited(V, states[stateful.index(k)], enable)
                    lf = lf.at[idx].add(lfl)
                    lq = lq.at[idx].add(lql)
                    new_states.append(st)
                else:
                    fl, ql, jfl, jql = grp.eval(V)
                f = f.at[idx].add(fl)
                q = q.at[idx].add(ql)
                if sparse:
                    Jf = Jf.at[pos[k]].add(jfl)
                    Jq = Jq.at[pos[k]].add(jql)
                else:
                    r = idx[:, :, None]
                    c = idx[:, None, :]
                    Jf = Jf.at[r, c].add(jfl)
                    Jq = Jq.at[r, c].add(jql)
            if sparse:
                return f[:n], q[:n], Jf[:nnz], Jq[:nnz], lf[:n], lq[:n], tuple(new_states)
            return f[:n], q[:n], Jf[:n, :n], Jq[:n, :n], lf[:n], lq[:n], tuple(new_states)

        return assemble

    def zero_states(self) -> tuple[jax.Array, ...]:
        """Placeholder ``$limit`` states (zeros) for :meth:`make_assemble_limited`."""
        return tuple(jnp.zeros((self.groups[k].idx.shape[0], self.groups[k].group.num_states))
                     for k in self.stateful_groups())


ModelResolver = Callable[[str, Loc], CompiledModel | None]


def _num_param(params: Mapping[str, Value], names: tuple[str, ...], where: str, loc: Loc) -> float:
    for k, v in params.items():
        if k.lower() in names:
            if not isinstance(v, (int, float)):
                raise NetlistError(loc, f"{where}: parameter {k} must be a number")
            return float(v)
    raise NetlistError(loc, f"{where}: missing parameter {names[0]}")


def build_system(circ: FlatCircuit, resolve: ModelResolver, temperature: float = 300.15) -> System:
    """Number the unknowns, stamp linear elements and bind device groups.

    ``resolve(module_name, loc)`` returns the :class:`CompiledModel` of a non-linear module or
    ``None`` if the name is unknown (→ an error naming the instance and suggesting near names).
    """
    node_index: dict[str, int] = {}
    names: list[str] = []
    is_cur: list[bool] = []
    lte: list[bool] = []
    gmin: list[bool] = []

    def new_unknown(name: str, current: bool, lte_check: bool) -> int:
        names.append(name)
        is_cur.append(current)
        lte.append(lte_check)
        gmin.append(not current)
        return len(names) - 1

    def node(name: str) -> int:
        if name == "0":
            return -1
        if name not in node_index:
            node_index[name] = new_unknown(name, False, True)
        return node_index[name]

    # pass 1: terminals of all instances (stable numbering in netlist order)
    resolved: list[tuple[FlatInstance, str, dict[str, Value], dict[str, Value]]] = []
    known_modules = set(LINEAR_MODULES)
    for inst in circ.instances:
        key = inst.master.lower()
        if key in circ.models:
            card = circ.models[key]
            module, mparams = card.module, dict(card.params)
        else:
            module, mparams = inst.master, {}
        resolved.append((inst, module, mparams, dict(inst.params)))
        for nd in inst.nodes:
            node(nd)

    G_entries: list[tuple[int, int, float]] = []
    C_entries: list[tuple[int, int, float]] = []
    sources: list[SourceRef] = []
    pending: dict[tuple[int, tuple], list[tuple[FlatInstance, dict[str, Value]]]] = {}
    pend_models: dict[tuple[int, tuple], tuple[CompiledModel, dict[str, Value]]] = {}
    inst_locs: dict[str, Loc] = {}

    def stamp_g(p: int, nn: int, g: float) -> None:
        G_entries.extend([(p, p, g), (nn, nn, g), (p, nn, -g), (nn, p, -g)])

    for inst, module, mparams, iparams in resolved:
        inst_locs[inst.name] = inst.loc
        mod = module.lower()
        nodes = [node(nd) for nd in inst.nodes]
        where = f"instance {inst.name}"
        if mod in LINEAR_MODULES and resolve(module, inst.loc) is None:  # not a loaded library
            nterm, _ = LINEAR_MODULES[mod]
            if len(nodes) != nterm:
                raise NetlistError(inst.loc, f"{where} ({mod}) needs {nterm} nodes, got {len(nodes)}")
            allp = {**mparams, **iparams}
            if mod == "resistor":
                _check_params(allp, {"r", "resistance", "m", "noisy", "tc1", "tc2"}, where, inst.loc)
                r = _num_param(allp, ("r", "resistance"), where, inst.loc)
                if r == 0:
                    raise NetlistError(inst.loc, f"{where}: zero resistance")
                stamp_g(nodes[0], nodes[1], 1.0 / r)
            elif mod == "capacitor":
                _check_params(allp, {"c", "capacitance", "m", "ic"}, where, inst.loc)
                c = _num_param(allp, ("c", "capacitance"), where, inst.loc)
                C_entries.extend([(nodes[0], nodes[0], c), (nodes[1], nodes[1], c),
                                  (nodes[0], nodes[1], -c), (nodes[1], nodes[0], -c)])
            elif mod == "inductor":
                _check_params(allp, {"l", "inductance", "m", "ic"}, where, inst.loc)
                ind = _num_param(allp, ("l", "inductance"), where, inst.loc)
                br = new_unknown(f"{inst.name}:flow(br)", True, True)
                p, nn = nodes
                G_entries.extend([(p, br, 1.0), (nn, br, -1.0), (br, p, 1.0), (br, nn, -1.0)])
                C_entries.append((br, br, -ind))
            elif mod in ("vsource", "isource"):
                _check_params(allp, _SOURCE_PARAMS, where, inst.loc)
                wf = make_waveform(allp, f"{inst.loc}: {where}")
                p, nn = nodes
                if mod == "vsource":
                    br = new_unknown(f"{inst.name}:flow(br)", True, False)
                    G_entries.extend([(p, br, 1.0), (nn, br, -1.0), (br, p, 1.0), (br, nn, -1.0)])
                    sources.append(SourceRef(inst.name, "v", br, p, nn, wf))
                else:
                    sources.append(SourceRef(inst.name, "i", -1, p, nn, wf))
            elif mod == "vcvs":
                gain = _num_param(allp, ("gain",), where, inst.loc)
                br = new_unknown(f"{inst.name}:flow(br)", True, False)
                op, on, ip, inn = nodes
                G_entries.extend([(op, br, 1.0), (on, br, -1.0), (br, op, 1.0), (br, on, -1.0),
                                  (br, ip, -gain), (br, inn, gain)])
            elif mod == "vccs":
                gm = _num_param(allp, ("gain", "gm"), where, inst.loc)
                op, on, ip, inn = nodes
                G_entries.extend([(op, ip, gm), (op, inn, -gm), (on, ip, -gm), (on, inn, gm)])
            continue
        model = resolve(module, inst.loc)
        if model is None:
            if inst.master.lower() in circ.models:  # the card exists, its module does not
                raise NetlistError(inst.loc, f"{where}: model {inst.master} names device "
                                             f"{module!r}, which no loaded library defines")
            cands = list(known_modules) + list(circ.models)
            raise NetlistError(inst.loc, f"{where}: unknown model or device {inst.master!r}"
                                         + suggest(inst.master, cands))
        if len(nodes) != model.num_terminals:
            raise NetlistError(inst.loc, f"{where} ({model.name}) needs {model.num_terminals} "
                                         f"nodes ({' '.join(model.node_names[:model.num_terminals])})"
                                         f", got {len(nodes)}")
        inst_p: dict[str, Value] = {}
        mod_p: dict[str, Value] = {}
        for k, v in mparams.items():
            kind = model.param_kind(k)
            if kind is None:
                raise NetlistError(circ.models[inst.master.lower()].loc,
                                   f"model {inst.master}: unknown parameter {k!r} of {model.name}"
                                   + suggest(k, model.param_names()))
            mod_p[k] = v
        for k, v in iparams.items():
            kind = model.param_kind(k)
            if kind is None:
                raise NetlistError(inst.loc, f"{where}: unknown parameter {k!r} of {model.name}"
                                   + suggest(k, model.param_names()))
            if kind == "model":
                raise NetlistError(inst.loc, f"{where}: {k!r} is a model parameter of {model.name}; "
                                             "set it on the model card")
            inst_p[k] = v
        gkey = (id(model), tuple(sorted((k.lower(), _hashable(v)) for k, v in mod_p.items())))
        pend_models[gkey] = (model, mod_p)
        pending.setdefault(gkey, []).append((inst, inst_p))

    groups: list[GroupRef] = []
    for gkey, members in pending.items():
        model, mod_p = pend_models[gkey]
        try:
            grp = model.bind([ip for _, ip in members], mod_p, temperature)
        except NetlistError:
            raise
        except Va2JaxError as exc:  # e.g. a parameter out of bounds: name the netlist line
            msg = str(exc)
            m = re.search(r" \(instance (\d+)\)$", msg)
            first = members[int(m.group(1)) if m and int(m.group(1)) < len(members) else 0][0]
            raise NetlistError(first.loc, f"instance {first.name}: {msg[:m.start()] if m else msg}") from None
        alias = np.asarray(grp.node_alias)
        nloc = len(model.node_names)
        flow = model.node_is_flow()
        idx = np.zeros((len(members), nloc), dtype=np.int64)
        for k, (inst, _) in enumerate(members):
            for j in range(nloc):
                if j < model.num_terminals:
                    idx[k, j] = node(inst.nodes[j])
            for j in range(model.num_terminals, nloc):
                a = int(alias[k, j])
                if a == j:
                    nm = model.node_names[j]
                    label = f"{inst.name}:flow({nm})" if flow[j] else f"{inst.name}:{nm}"
                    idx[k, j] = new_unknown(label, flow[j], not flow[j])
                elif a < 0:
                    idx[k, j] = -1
            for j in range(model.num_terminals, nloc):
                a = int(alias[k, j])
                if 0 <= a != j:
                    # follow chains of aliases
                    seen = 0
                    while 0 <= a and int(alias[k, a]) != a and seen < nloc:
                        a = int(alias[k, a])
                        seen += 1
                    idx[k, j] = idx[k, a] if a >= 0 else -1
        groups.append(GroupRef(model, grp, idx, [m[0].name for m in members]))

    groups = _merge_groups(groups)
    for g in groups:
        prepare = getattr(g.group, "prepare", None)
        if prepare is not None:  # compile device evaluators that run outside the Newton loop
            prepare()
    n = len(names)
    for g in groups:
        g.idx[g.idx < 0] = n
    for s in sources:
        s.p = n if s.p < 0 else s.p
        s.n = n if s.n < 0 else s.n
    Gm = np.zeros((n + 1, n + 1))
    for r, c, v in G_entries:
        Gm[r, c] += v  # index -1 lands in the dump row/col n
    Cm = np.zeros((n + 1, n + 1))
    for r, c, v in C_entries:
        Cm[r, c] += v
    system = System(names, np.array(is_cur, bool), Gm[:n, :n], Cm[:n, :n], sources, groups,
                    node_index, np.array(gmin, float), np.array(lte, float), inst_locs)
    check_topology(circ, system, resolved)
    return system


def _merge_groups(groups: list[GroupRef]) -> list[GroupRef]:
    """Groups of one model with different model cards → one group, where the model's group type
    can merge (``merge(groups)``): one device evaluation per Newton iteration per model."""
    by_model: dict[int, list[GroupRef]] = {}
    for g in groups:
        by_model.setdefault(id(g.model), []).append(g)
    out: list[GroupRef] = []
    for gs in by_model.values():
        merge = getattr(gs[0].group, "merge", None)
        if len(gs) == 1 or merge is None or any(type(g.group) is not type(gs[0].group) for g in gs):
            out.extend(gs)
            continue
        grp = merge([g.group for g in gs])
        out.append(GroupRef(gs[0].model, grp, np.concatenate([g.idx for g in gs]),
                            [nm for g in gs for nm in g.names]))
    return out


def _hashable(v: Value) -> object:
    return tuple(v) if isinstance(v, list) else v


def _check_params(params: Mapping[str, Value], allowed: set[str], where: str, loc: Loc) -> None:
    for k in params:
        if k.lower() not in allowed:
            raise NetlistError(loc, f"{where}: unknown parameter {k!r}" + suggest(k, allowed))


def check_topology(circ: FlatCircuit, system: System,
                   resolved: list[tuple[FlatInstance, str, dict[str, Value], dict[str, Value]]]) -> None:
    """Reject circuits whose matrix is singular by construction.

    * a loop of voltage sources / inductors (their branch currents are undetermined): the message
      names the sources of the loop;
    * a node without a DC path to ground (only capacitors / current sources attached).
    """
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    # voltage-source / inductor loops
    vl_edges: list[tuple[str, str, str]] = []
    for inst, module, _, _ in resolved:
        if module.lower() in ("vsource", "inductor", "vcvs"):
            a, b = inst.nodes[0], inst.nodes[1]
            vl_edges.append((inst.name, a, b))
    path_of: dict[str, list[str]] = {}
    for name, a, b in vl_edges:
        ra, rb = find(a), find(b)
        if ra == rb:
            loop = [e[0] for e in vl_edges if find(e[1]) == ra or find(e[2]) == ra]
            raise NetlistError(circ_loc(system, name), f"voltage-source loop: {', '.join(loop)} "
                                                       f"form a closed loop of voltage sources/inductors "
                                                       f"(between nodes {a} and {b})")
        parent[ra] = rb
    # DC connectivity to ground
    parent.clear()
    for inst, module, _, _ in resolved:
        mod = module.lower()
        if mod in ("capacitor", "isource"):
            continue
        nodes = inst.nodes[:2] if mod in ("vcvs", "vccs") else inst.nodes
        if mod == "vcvs":
            nodes = inst.nodes[:2]
        for nd in nodes[1:]:
            ra, rb = find(nodes[0]), find(nd)
            if ra != rb:
                parent[ra] = rb
    gnd = find("0")
    for nd in system.node_index:
        if find(nd) != gnd:
            users = [i.name for i, _, _, _ in resolved if nd in i.nodes]
            raise NetlistError(circ_loc(system, users[0]) if users else None,
                               f"node {nd!r} is floating: no DC path to ground "
                               f"(connected only to {', '.join(users)})")


def circ_loc(system: System, inst: str) -> Loc | None:
    return system.instances.get(inst)


def unknown_name_error(name: str, system: System) -> Va2JaxError:
    return Va2JaxError(f"unknown node {name!r}" + suggest(name, system.node_index))
