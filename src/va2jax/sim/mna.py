"""Modified nodal analysis: unknown numbering, linear stamps, sources and device groups.

The circuit equations are ``F(x) = f(x) + d/dt q(x) = 0`` over the unknowns ``x`` (node voltages
and branch currents). Linear elements are stamped once into constant matrices::

    f_lin(x, t) = G·x − b(t)        q_lin(x) = C·x

Nonlinear devices are grouped by (model, parameter set); each group gathers its local unknowns
``V = x[idx]`` (ground and collapsed nodes read 0 from a dump slot), evaluates ``(f, q, Jf, Jq)`` and
scatter-adds them into the global vectors and matrices. That assembly belongs to the engine
(:mod:`.assembly`); this module describes the circuit only (:class:`System`: unknowns, stamps,
sources, device groups) and holds no compiled state.

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
from .netlist import FlatCircuit, FlatInstance, Loc, NetlistError, hier_sep
from .sources import Waveform, make_waveform, scaled

#: Built-in linear / source elements: module name → (terminal count, main parameter, aliases)
LINEAR_MODULES = {
    "resistor": (2, ("r", "resistance")),
    "capacitor": (2, ("c", "capacitance")),
    "inductor": (2, ("l", "inductance")),
    "vsource": (2, ()),
    "isource": (2, ()),
    "vcvs": (4, ("gain",)),
    "vccs": (4, ("gain", "gm")),
    "cccs": (2, ("gain",)),
    "ccvs": (2, ("gain",)),
    "mutual": (0, ("k",)),
}
#: parameters of VACASK's controlled sources and mutual inductance (include/devctlsrc.h)
_CTL_PARAMS = {"vcvs": {"gain", "$mfactor"}, "vccs": {"gain", "gm", "$mfactor"},
               "cccs": {"gain", "$mfactor", "ctlinst", "ctlnode"},
               "ccvs": {"gain", "$mfactor", "ctlinst", "ctlnode"},
               "mutual": {"k", "ind1", "ind2", "ctlnode1", "ctlnode2"}}
#: parameters of VACASK's loaded ``resistor``/``capacitor``/``inductor`` modules that the linear
#: stamp reproduces exactly (``noisy`` changes noise only); an instance with any other
#: parameter (``$mfactor``, …) goes to the loaded module itself
_STAMP_EXACT = {"resistor": {"r", "noisy"}, "capacitor": {"c"}, "inductor": {"l"}}
_SOURCE_PARAMS = {"dc", "type", "val0", "val1", "delay", "rise", "fall", "width", "period",
                  "sinedc", "ampl", "freq", "damp", "sinephase", "wave", "mag", "phase",
                  "td1", "tau1", "td2", "tau2", "acmag", "acphase", "theta", "offset", "scale",
                  "stretch", "pwlperiod", "twidth", "allbrkpts", "slopetol", "reltol", "modfreq",
                  "modphase", "modindex", "$mfactor"}


#: Unknowns above which :class:`System` keeps its linear stamps as COO triplets only (no dense
#: ``G``/``C``: 2·n²·8 bytes — 128 MB at this size); such circuits need the sparse path
DENSE_LIMIT = 2000


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
    G: np.ndarray | None  # (n, n) dense linear stamps; None above DENSE_LIMIT unknowns
    C: np.ndarray | None
    sources: list[SourceRef]
    groups: list[GroupRef]
    node_index: dict[str, int]
    gmin_mask: np.ndarray  # (n,) 1.0 for node-voltage unknowns
    lte_mask: np.ndarray  # (n,) 1.0 for unknowns checked by the truncation-error control
    instances: dict[str, Loc] = field(default_factory=dict)
    #: the linear stamps as COO triplets ``(rows, cols, values)`` (duplicates not summed;
    #: ground rows/columns dropped): the sparse path's O(nnz) form of ``G`` and ``C``
    G_coo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    C_coo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: collapsed internal nodes (``inst:node``) → the unknown they merged into (``-1``: ground)
    aliases: dict[str, int] = field(default_factory=dict)
    #: memo of structure-only objects: the pattern keys, KLU's symbolic analysis (which must live
    #: as long as the compiled loops that use its handle do)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    #: stamped resistors ``(instance, p, n, r, noisy)`` (ground −1): their thermal noise
    noise_resistors: list[tuple[str, int, int, float, bool]] = field(default_factory=list)
    #: linear capacitors as branches ``(p, n, c)`` (ground: the dump index ``n``): the charge
    #: states of ngspice's truncation-error control (``tran_control="ngspice"``, sim/_tran_ngspice.py)
    cap_branches: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: the element each entry of ``G_coo``/``C_coo`` belongs to (an index; entries of one linear
    #: element or source share it): VACASK's per-element residual reference (sim/_resref.py)
    G_owner: np.ndarray | None = None
    C_owner: np.ndarray | None = None

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

    def has_charges(self) -> bool:
        """Whether any element stores charge or flux (linear ``C`` or a device group)."""
        return bool(self.groups) or bool(np.any(self.C_coo[2] != 0))

    def sparsity(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices ``(Ai, Aj)`` of every Jacobian entry that can be non-zero: the
        linear stamps, every pair of unknowns one device instance touches, and the diagonal
        (gmin/gshunt). Sorted row-major, ground excluded; O(nnz) memory (no n×n mask)."""
        keys = self._pattern_keys()
        m = self.n + 1
        return (keys // m).astype(np.int32), (keys % m).astype(np.int32)

    def _pattern_keys(self) -> np.ndarray:
        """Sorted unique ``row·(n+1) + col`` of the entries of :meth:`sparsity`."""
        n, m = self.n, self.n + 1
        parts = [np.arange(n, dtype=np.int64) * (m + 1)]
        for r, c, v in (self.G_coo, self.C_coo):
            keep = (r < n) & (c < n) & (v != 0)
            parts.append(r[keep].astype(np.int64) * m + c[keep])
        for g in self.groups:
            idx = np.asarray(g.idx, np.int64)
            k = (idx[:, :, None] * m + idx[:, None, :]).ravel()
            keep = ((idx[:, :, None] < n) & (idx[:, None, :] < n)).ravel()
            parts.append(np.unique(k[keep]))
        return np.unique(np.concatenate(parts))

    @property
    def clip_mask(self) -> np.ndarray:
        """(n,) bool: the node voltages a device group sees (its terminals and internal nodes) —
        the unknowns whose Newton update is clipped at ``dvmax``. A node seen only by linear
        elements and sources is not clipped: the equations there are linear, Newton's update is
        exact, and clipping it would keep a large source (``dc=1e12``) from ever being reached
        at 2 V per iteration (docs/sim.md, "Newton")."""
        seen = np.zeros(self.n + 1, bool)
        for g in self.groups:
            idx = np.asarray(g.idx, np.int64).ravel()
            seen[idx[(idx >= 0) & (idx < self.n)]] = True
        return seen[: self.n] & ~np.asarray(self.is_current, bool)

    def stateful_groups(self) -> list[int]:
        """Indices of the device groups whose model keeps ``$limit`` states (Newton limiting)."""
        return [k for k, g in enumerate(self.groups) if g.group.num_states > 0]

    def coo_lookup(self) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
        """``(Ai, Aj, find)``: the pattern of :meth:`sparsity` and ``find(rows, cols)`` giving the
        position of each entry (i, j) in it (``nnz`` — a discarded slot — for ground rows or
        columns, index ``n``). A binary search on the sorted keys: O(nnz) memory."""
        if "keys" not in self._memo:
            self._memo["keys"] = self._pattern_keys()
        keys = self._memo["keys"]
        n, m, nnz = self.n, self.n + 1, len(keys)

        def find(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            r, c = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
            k = r * m + c
            pos = np.minimum(np.searchsorted(keys, k), nnz - 1)
            ok = (r < n) & (c < n) & (keys[pos] == k)
            return np.where(ok, pos, nnz).astype(np.int32)

        return (keys // m).astype(np.int32), (keys % m).astype(np.int32), find

    def linear_values(self, find: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      nnz: int) -> tuple[np.ndarray, np.ndarray]:
        """The linear stamps ``G``, ``C`` as values on the pattern of :meth:`coo_lookup` (nnz + 1,
        the last one the discarded slot), summed in stamp order."""
        out = []
        for r, c, v in (self.G_coo, self.C_coo):
            vals = np.zeros(nnz + 1)
            np.add.at(vals, find(r, c), v)
            vals[nnz] = 0.0
            out.append(vals)
        return out[0], out[1]

ModelResolver = Callable[[str, Loc], CompiledModel | None]


def _num_param(params: Mapping[str, Value], names: tuple[str, ...], where: str, loc: Loc) -> float:
    for k, v in params.items():
        if k.lower() in names:
            if not isinstance(v, (int, float)):
                raise NetlistError(loc, f"{where}: parameter {k} must be a number")
            return float(v)
    raise NetlistError(loc, f"{where}: missing parameter {names[0]}")


def _opt_num(params: Mapping[str, Value], name: str, default: float, where: str, loc: Loc) -> float:
    """Numeric parameter ``name`` (case-insensitive) or ``default`` when not given."""
    for k in params:
        if k.lower() == name:
            return _num_param(params, (name,), where, loc)
    return default


Resolved = tuple[FlatInstance, str, dict[str, Value], dict[str, Value]]


def build_system(circ: FlatCircuit, resolve: ModelResolver, temperature: float = 300.15) -> System:
    """Number the unknowns, stamp linear elements and bind device groups.

    ``resolve(module_name, loc)`` returns the :class:`CompiledModel` of a non-linear module or
    ``None`` if the name is unknown (→ an error naming the instance and suggesting near names).

    Steps: number every instance's terminals (netlist order) → stamp each linear element or
    queue a device instance under its (model, model-card) key → bind each queue to a device
    group (numbering the models' internal unknowns) → merge groups of one model → assemble the
    matrices and check the topology.
    """
    b = _Builder(circ)
    resolved = b.number_terminals()
    if circ.dialect == "vacask":
        # a loaded resistor/capacitor/inductor library with one instance the linear stamp cannot
        # reproduce is loaded for real, for all its instances (one implementation per module)
        for inst, module, mparams, iparams in resolved:
            exact = _STAMP_EXACT.get(module.lower())
            if exact is not None and not {k.lower() for k in {**mparams, **iparams}} <= exact \
                    and resolve(module, inst.loc) is None:
                resolve(module, inst.loc, linear=False)  # type: ignore[call-arg]
    for inst, module, mparams, iparams in resolved:
        b.add_instance(inst, module, mparams, iparams, resolve)
    groups = _merge_groups(b.bind_groups(temperature))
    b.stamp_controlled()
    system = b.finish(groups)
    check_topology(circ, system, resolved)
    return system


class _Builder:
    """The unknowns, stamps and queued device instances of :func:`build_system` while it runs."""

    def __init__(self, circ: FlatCircuit):
        self.circ = circ
        self.node_index: dict[str, int] = {}
        self.names: list[str] = []
        self.is_cur: list[bool] = []
        self.lte: list[bool] = []
        self.gmin: list[bool] = []
        self.G_entries: list[tuple[int, int, float]] = []
        self.C_entries: list[tuple[int, int, float]] = []
        self.sources: list[SourceRef] = []
        self.pending: dict[tuple[int, tuple], list[tuple[FlatInstance, dict[str, Value]]]] = {}
        self.pend_models: dict[tuple[int, tuple], tuple[CompiledModel, dict[str, Value]]] = {}
        self.inst_locs: dict[str, Loc] = {}
        self.aliases: dict[str, int] = {}
        #: current-controlled sources and mutuals, stamped once all unknowns exist
        self.controlled: list[tuple[FlatInstance, str, list[int], int, dict[str, Value]]] = []
        self.noise_resistors: list[tuple[str, int, int, float, bool]] = []
        self.caps: list[tuple[int, int, float]] = []
        #: the owning element of each G/C entry (index into ``owners``), filled by :meth:`_own`
        self.G_own: list[int] = []
        self.C_own: list[int] = []
        self.owners: dict[str, int] = {}

    def _own(self, name: str) -> None:
        """Tag the G/C entries stamped since the last call with element ``name``."""
        e = self.owners.setdefault(name, len(self.owners))
        self.G_own.extend([e] * (len(self.G_entries) - len(self.G_own)))
        self.C_own.extend([e] * (len(self.C_entries) - len(self.C_own)))

    def _label(self, inst: str, node: str) -> str:
        """The name of internal node ``node`` of instance ``inst`` (VACASK lower-cases it)."""
        return f"{inst}:{node.lower() if self.circ.dialect == 'vacask' else node}"

    def new_unknown(self, name: str, current: bool, lte_check: bool) -> int:
        self.names.append(name)
        self.is_cur.append(current)
        self.lte.append(lte_check)
        self.gmin.append(not current)
        return len(self.names) - 1

    def node(self, name: str) -> int:
        if name == "0":
            return -1
        if name not in self.node_index:
            self.node_index[name] = self.new_unknown(name, False, True)
        return self.node_index[name]

    def number_terminals(self) -> list[Resolved]:
        """Pass 1: every instance's module, parameters and terminals (stable numbering in netlist
        order)."""
        resolved: list[Resolved] = []
        circ = self.circ
        for inst in circ.instances:
            key = inst.master.lower()
            if key in circ.models:
                card = circ.models[key]
                module, mparams = card.module, dict(card.params)
            else:
                module, mparams = inst.master, {}
            resolved.append((inst, module, mparams, dict(inst.params)))
            for nd in inst.nodes:
                self.node(nd)
        return resolved

    def add_instance(self, inst: FlatInstance, module: str, mparams: dict[str, Value],
                     iparams: dict[str, Value], resolve: ModelResolver) -> None:
        self.inst_locs[inst.name] = inst.loc
        nodes = [self.node(nd) for nd in inst.nodes]
        if module.lower() in LINEAR_MODULES and resolve(module, inst.loc) is None:  # no library
            self.stamp_linear(inst, module.lower(), nodes, {**mparams, **iparams})
            self._own(inst.name)
        else:
            self.queue_device(inst, module, nodes, mparams, iparams, resolve)

    def stamp_linear(self, inst: FlatInstance, mod: str, nodes: list[int],
                     allp: dict[str, Value]) -> None:
        """Stamp a built-in linear element or source into ``G``/``C``/the sources."""
        G_entries, C_entries = self.G_entries, self.C_entries
        where = f"instance {inst.name}"
        nterm, _ = LINEAR_MODULES[mod]
        if len(nodes) != nterm:
            raise NetlistError(inst.loc, f"{where} ({mod}) needs {nterm} nodes, got {len(nodes)}")
        if mod == "resistor":
            _check_params(allp, {"r", "resistance", "m", "noisy", "tc1", "tc2"}, where, inst.loc)
            r = _num_param(allp, ("r", "resistance"), where, inst.loc)
            if r == 0:
                raise NetlistError(inst.loc, f"{where}: zero resistance")
            p, nn, g = nodes[0], nodes[1], 1.0 / r
            G_entries.extend([(p, p, g), (nn, nn, g), (p, nn, -g), (nn, p, -g)])
            self.noise_resistors.append((inst.name, p, nn, r,
                                         bool(_opt_num(allp, "noisy", 1.0, where, inst.loc))))
        elif mod == "capacitor":
            _check_params(allp, {"c", "capacitance", "m", "ic"}, where, inst.loc)
            c = _num_param(allp, ("c", "capacitance"), where, inst.loc)
            C_entries.extend([(nodes[0], nodes[0], c), (nodes[1], nodes[1], c),
                              (nodes[0], nodes[1], -c), (nodes[1], nodes[0], -c)])
            self.caps.append((nodes[0], nodes[1], c))
        elif mod == "inductor":
            _check_params(allp, {"l", "inductance", "m", "ic"}, where, inst.loc)
            ind = _num_param(allp, ("l", "inductance"), where, inst.loc)
            br = self.new_unknown(f"{inst.name}:flow(br)", True, True)
            p, nn = nodes
            G_entries.extend([(p, br, 1.0), (nn, br, -1.0), (br, p, 1.0), (br, nn, -1.0)])
            C_entries.append((br, br, -ind))
        elif mod in ("vsource", "isource"):
            _check_params(allp, _SOURCE_PARAMS, where, inst.loc)
            wf = make_waveform(allp, f"{inst.loc}: {where}", vacask=self.circ.dialect == "vacask")
            p, nn = nodes
            # $mfactor (VACASK): m sources in parallel; a vsource's value stays, its branch
            # unknown is the current of one (the nodes see m of it); an isource's is m times
            m = _opt_num(allp, "$mfactor", 1.0, where, inst.loc)
            if mod == "vsource":
                br = self.new_unknown(f"{inst.name}:flow(br)", True, False)
                G_entries.extend([(p, br, m), (nn, br, -m), (br, p, 1.0), (br, nn, -1.0)])
                self.sources.append(SourceRef(inst.name, "v", br, p, nn, wf))
            else:
                self.sources.append(SourceRef(inst.name, "i", -1, p, nn, scaled(wf, m)))
        elif mod == "vcvs":
            _check_params(allp, _CTL_PARAMS[mod], where, inst.loc)
            gain = _num_param(allp, ("gain",), where, inst.loc)
            m = _opt_num(allp, "$mfactor", 1.0, where, inst.loc)
            br = self.new_unknown(f"{inst.name}:flow(br)", True, False)
            op, on, ip, inn = nodes
            G_entries.extend([(op, br, m), (on, br, -m), (br, op, 1.0), (br, on, -1.0),
                              (br, ip, -gain), (br, inn, gain)])
        elif mod == "vccs":
            _check_params(allp, _CTL_PARAMS[mod], where, inst.loc)
            gm = _num_param(allp, ("gain", "gm"), where, inst.loc)
            gm *= _opt_num(allp, "$mfactor", 1.0, where, inst.loc)
            op, on, ip, inn = nodes
            G_entries.extend([(op, ip, gm), (op, inn, -gm), (on, ip, -gm), (on, inn, gm)])
        elif mod in ("cccs", "ccvs", "mutual"):
            _check_params(allp, _CTL_PARAMS[mod], where, inst.loc)
            br = self.new_unknown(f"{inst.name}:flow(br)", True, False) if mod == "ccvs" else -1
            if br >= 0:
                G_entries.extend([(nodes[0], br, _opt_num(allp, "$mfactor", 1.0, where, inst.loc)),
                                  (nodes[1], br, -_opt_num(allp, "$mfactor", 1.0, where,
                                                           inst.loc)),
                                  (br, nodes[0], 1.0), (br, nodes[1], -1.0)])
            self.controlled.append((inst, mod, nodes, br, allp))

    def queue_device(self, inst: FlatInstance, module: str, nodes: list[int],
                     mparams: dict[str, Value], iparams: dict[str, Value],
                     resolve: ModelResolver) -> None:
        """Check a device instance against its model and queue it under (model, model card)."""
        circ = self.circ
        where = f"instance {inst.name}"
        model = resolve(module, inst.loc)
        if model is None:
            if inst.master.lower() in circ.models:  # the card exists, its module does not
                raise NetlistError(inst.loc, f"{where}: model {inst.master} names device "
                                             f"{module!r}, which no loaded library defines")
            cands = list(LINEAR_MODULES) + list(circ.models)
            raise NetlistError(inst.loc, f"{where}: unknown model or device {inst.master!r}"
                                         + suggest(inst.master, cands))
        inst_p: dict[str, Value] = {}
        if len(nodes) != model.num_terminals:
            # VACASK: the terminals after the last connected one are the instance's internal
            # nodes (``inst:t``); the module learns how many are connected ($port_connected)
            optional = circ.dialect == "vacask" and len(nodes) < model.num_terminals and \
                getattr(model, "optional_terminals", lambda: False)()
            if not optional:
                raise NetlistError(inst.loc, f"{where} ({model.name}) needs {model.num_terminals} "
                                             f"nodes ({' '.join(model.node_names[:model.num_terminals])})"
                                             f", got {len(nodes)}")
            inst_p["$connected"] = len(nodes)
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
        self.pend_models[gkey] = (model, mod_p)
        self.pending.setdefault(gkey, []).append((inst, inst_p))

    def bind_groups(self, temperature: float) -> list[GroupRef]:
        """Bind each queue of instances to a device group and number the models' internal
        unknowns (collapsed nodes follow their alias chains; ``-1`` is ground)."""
        groups: list[GroupRef] = []
        for gkey, members in self.pending.items():
            model, mod_p = self.pend_models[gkey]
            try:
                grp = model.bind([ip for _, ip in members], mod_p, temperature)
            except NetlistError:
                raise
            except Va2JaxError as exc:  # e.g. a parameter out of bounds: name the netlist line
                msg = str(exc)
                m = re.search(r" \(instance (\d+)\)$", msg)
                first = members[int(m.group(1)) if m and int(m.group(1)) < len(members) else 0][0]
                raise NetlistError(first.loc, f"instance {first.name}: "
                                              f"{msg[:m.start()] if m else msg}") from None
            alias = np.asarray(grp.node_alias)
            nloc = len(model.node_names)
            flow = model.node_is_flow()
            idx = np.zeros((len(members), nloc), dtype=np.int64)
            for k, (inst, _) in enumerate(members):
                nconn = min(len(inst.nodes), model.num_terminals)  # the rest: internal nodes
                for j in range(nconn):
                    idx[k, j] = self.node(inst.nodes[j])
                for j in range(nconn, nloc):
                    a = int(alias[k, j])
                    if a == j:
                        nm = model.node_names[j]
                        if self.circ.dialect == "vacask":  # VACASK lower-cases OSDI node names
                            nm = nm.lower()
                        if flow[j] and nm.lower().startswith("flow(") and nm.endswith(")"):
                            nm = nm[5:-1]  # a generated model's "flow(NOII)": named once, as OSDI's
                        label = f"{inst.name}:flow({nm})" if flow[j] else f"{inst.name}:{nm}"
                        idx[k, j] = self.new_unknown(label, flow[j], not flow[j])
                    elif a < 0:
                        idx[k, j] = -1
                        if not flow[j]:
                            self.aliases[self._label(inst.name, model.node_names[j])] = -1
                for j in range(nconn, nloc):
                    a = int(alias[k, j])
                    if 0 <= a != j:
                        # follow chains of aliases
                        seen = 0
                        while 0 <= a and int(alias[k, a]) != a and seen < nloc:
                            a = int(alias[k, a])
                            seen += 1
                        idx[k, j] = idx[k, a] if a >= 0 else -1
                        if not flow[j]:
                            self.aliases[self._label(inst.name, model.node_names[j])] = int(idx[k, j])
            groups.append(GroupRef(model, grp, idx, [m[0].name for m in members]))
        return groups

    def stamp_controlled(self) -> None:
        """Current-controlled sources and mutual inductances, once every unknown is numbered:

        ``cccs``: ``I(p→n) = m·gain·I_ctl``; ``ccvs``: ``V(p) − V(n) = gain·I_ctl`` (its KCL
        rows carry ``m·I``); ``I_ctl`` is the unknown ``ctlnode`` (default ``flow(br)``) of
        instance ``ctlinst``. ``mutual``: ``M = k·√(l1·l2/(m1·m2))`` couples the branch
        equations of inductors ``ind1``, ``ind2`` (``V1 = d/dt(l1·I1 + M·I2)``, and 2 ↔ 1)."""
        idx = {nm: i for i, nm in enumerate(self.names)}

        def unknown(inst: FlatInstance, owner: Value, node: Value, what: str) -> int:
            if not isinstance(owner, str) or not owner:
                raise NetlistError(inst.loc, f"instance {inst.name}: {what} must name an instance")
            sep = hier_sep(self.circ.dialect)
            prefix = inst.name.rsplit(sep, 1)[0] + sep if sep in inst.name else ""
            for cand in (prefix + owner, owner):
                key = f"{cand}:{node}"
                if key in idx:
                    return idx[key]
            raise NetlistError(inst.loc, f"instance {inst.name}: {what} {owner!r} has no unknown "
                                         f"{node!r} (a voltage source, inductor or ccvs/vcvs)")

        sep = hier_sep(self.circ.dialect)
        for inst, mod, nodes, br, allp in self.controlled:
            where = f"instance {inst.name}"
            low = {k.lower(): v for k, v in allp.items()}
            if mod == "mutual":
                k = _opt_num(allp, "k", 0.0, where, inst.loc)
                ends = []
                for j in ("1", "2"):
                    name = low.get("ind" + j)
                    u = unknown(inst, name, low.get("ctlnode" + j, "flow(br)"), "ind" + j)
                    ind = next((i for i in self.circ.instances if i.name in
                                (name, inst.name.rsplit(sep, 1)[0] + sep + name)), None)
                    lv = {kk.lower(): vv for kk, vv in (ind.params if ind else {}).items()}
                    card = self.circ.models.get(ind.master.lower()) if ind else None
                    lv = {**{kk.lower(): vv for kk, vv in (card.params if card else {}).items()},
                          **lv}
                    ends.append((u, float(lv.get("l", 1e-6)), float(lv.get("$mfactor", 1.0))))
                (u1, l1, m1), (u2, l2, m2) = ends
                mut = k * (l1 * l2 / (m1 * m2)) ** 0.5
                self.C_entries.extend([(u1, u2, -mut), (u2, u1, -mut)])
                self._own(inst.name)
                continue
            gain = _opt_num(allp, "gain", 1.0, where, inst.loc)
            u = unknown(inst, low.get("ctlinst"), low.get("ctlnode", "flow(br)"), "ctlinst")
            if mod == "cccs":
                g = gain * _opt_num(allp, "$mfactor", 1.0, where, inst.loc)
                self.G_entries.extend([(nodes[0], u, g), (nodes[1], u, -g)])
            else:
                self.G_entries.append((br, u, -gain))
            self._own(inst.name)

    def finish(self, groups: list[GroupRef]) -> System:
        """Ground (``-1``) → the dump slot ``n``; the matrices from the stamps."""
        n = len(self.names)
        for g in groups:
            g.idx[g.idx < 0] = n
        for s in self.sources:
            s.p = n if s.p < 0 else s.p
            s.n = n if s.n < 0 else s.n
        coo, owner = [], []
        for entries, own in ((self.G_entries, self.G_own), (self.C_entries, self.C_own)):
            a = np.array(entries, float).reshape(-1, 3)
            r, c = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
            r[r < 0], c[c < 0] = n, n  # ground: the dump row/column n
            keep = (r < n) & (c < n)
            coo.append((r[keep], c[keep], a[keep, 2]))
            owner.append(np.asarray(own, np.int64).reshape(-1)[keep] if len(own) == len(a)
                         else None)
        dense = []
        for r, c, v in coo:
            if n > DENSE_LIMIT:  # no n×n matrices for a large circuit (sparse path only)
                dense.append(None)
                continue
            M = np.zeros((n, n))
            np.add.at(M, (r, c), v)
            dense.append(M)
        cp = np.array(self.caps, float).reshape(-1, 3)
        cp_p, cp_n = cp[:, 0].astype(np.int64), cp[:, 1].astype(np.int64)
        cp_p[cp_p < 0], cp_n[cp_n < 0] = n, n
        return System(self.names, np.array(self.is_cur, bool), dense[0], dense[1], self.sources,
                      groups, self.node_index, np.array(self.gmin, float), np.array(self.lte, float),
                      self.inst_locs, coo[0], coo[1], noise_resistors=self.noise_resistors,
                      aliases=self.aliases, cap_branches=(cp_p, cp_n, cp[:, 2]),
                      G_owner=owner[0], C_owner=owner[1])


def _merge_groups(groups: list[GroupRef]) -> list[GroupRef]:
    """Groups of one model with different model cards → one group, where the model's group type
    can merge (``merge(groups)``): one device evaluation per Newton iteration per model."""
    by_model: dict[int, list[GroupRef]] = {}
    for g in groups:
        by_model.setdefault(id(g.model), []).append(g)
    out: list[GroupRef] = []
    for gs in by_model.values():
        cls = type(gs[0].group)
        grp = None
        if len(gs) > 1 and all(type(g.group) is cls for g in gs):
            grp = cls.merge([g.group for g in gs])
        if grp is None:
            out.extend(gs)
            continue
        out.append(GroupRef(gs[0].model, grp, np.concatenate([g.idx for g in gs]),
                            [nm for g in gs for nm in g.names]))
    return out


def _hashable(v: Value) -> object:
    return tuple(v) if isinstance(v, list) else v


def _check_params(params: Mapping[str, Value], allowed: set[str], where: str, loc: Loc) -> None:
    for k in params:
        if k.lower() not in allowed:
            raise NetlistError(loc, f"{where}: unknown parameter {k!r}" + suggest(k, allowed))


def check_topology(circ: FlatCircuit, system: System, resolved: list[Resolved]) -> None:
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
        if module.lower() in ("vsource", "inductor", "vcvs", "ccvs"):
            a, b = inst.nodes[0], inst.nodes[1]
            vl_edges.append((inst.name, a, b))
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
