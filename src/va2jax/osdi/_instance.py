"""Model and instance lifecycle: parameters, setup, node collapsing, eval, noise."""
from __future__ import annotations

import ctypes as C
import logging
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import Va2JaxError
from ..simparams import DEFAULT_SIM_PARAMS, DEFAULT_SIM_PARAMS_STR, INIT_LIM_SIM_PARAM
from . import _structs as S

if TYPE_CHECKING:  # type annotations only: _library imports this module
    from ._library import ModuleInfo, ParamInfo

log = logging.getLogger("va2jax.osdi")

#: Default eval flags: everything but noise and limiting, DC analysis.
DEFAULT_CALC = (S.CALC_RESIST_RESIDUAL | S.CALC_REACT_RESIDUAL | S.CALC_RESIST_JACOBIAN
                | S.CALC_REACT_JACOBIAN | S.CALC_OP | S.CALC_RESIST_LIM_RHS | S.CALC_REACT_LIM_RHS)
DEFAULT_ANALYSIS = S.ANALYSIS_DC


class OsdiInitError(Va2JaxError):
    """``setup_model``/``setup_instance`` reported an error (e.g. a parameter out of bounds).

    ``errors`` lists ``(code, parameter name, value)``.
    """

    def __init__(self, message: str, errors: tuple[tuple[int, str, Any], ...] = ()):
        super().__init__(message)
        self.errors = errors


class _SimParas:
    """An ``OsdiSimParas`` with its string/double arrays kept alive."""

    def __init__(self, values: dict[str, float] | None, strings: dict[str, str] | None):
        vals = dict(DEFAULT_SIM_PARAMS)
        if values:
            for k, v in values.items():
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise Va2JaxError(f"simulator parameter {k!r} must be a number, got {v!r}")
                vals[k] = float(v)
        strs = dict(DEFAULT_SIM_PARAMS_STR)
        if strings:
            strs.update({k: str(v) for k, v in strings.items()})
        self.values = vals
        self.strings = strs
        n, m = len(vals), len(strs)
        self._names = (C.c_char_p * (n + 1))(*[k.encode() for k in vals], None)
        self._vals = (C.c_double * (n + 1))(*vals.values(), 0.0)
        self._snames = (C.c_char_p * (m + 1))(*[k.encode() for k in strs], None)
        self._svals = (C.c_char_p * (m + 1))(*[v.encode() for v in strs.values()], None)
        self.struct = S.OsdiSimParas(
            C.cast(self._names, C.POINTER(C.c_char_p)), C.cast(self._vals, C.POINTER(C.c_double)),
            C.cast(self._snames, C.POINTER(C.c_char_p)), C.cast(self._svals, C.POINTER(C.c_char_p)))
        self._init_lim_index = list(vals).index(INIT_LIM_SIM_PARAM) if INIT_LIM_SIM_PARAM in vals else None

    def set_init_lim(self, on: bool) -> None:
        if self._init_lim_index is not None:
            self._vals[self._init_lim_index] = 1.0 if on else 0.0


def _check_value(p: ParamInfo, value: Any) -> Any:
    """Type-check ``value`` for parameter ``p``; returns the converted value (tuple for arrays)."""
    def one(v: Any) -> Any:
        if p.type == "real":
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise Va2JaxError(f"parameter {p.name!r} expects a real number, got {v!r}")
            return float(v)
        if p.type == "int":
            if isinstance(v, (bool, np.bool_)):
                return int(v)
            if isinstance(v, numbers.Integral):
                return int(v)
            if isinstance(v, numbers.Real) and float(v).is_integer():
                return int(v)
            raise Va2JaxError(f"parameter {p.name!r} expects an integer, got {v!r}")
        if p.type == "str":
            if not isinstance(v, str):
                raise Va2JaxError(f"parameter {p.name!r} expects a string, got {v!r}")
            return v
        raise Va2JaxError(f"parameter {p.name!r} has an unsupported type")

    if p.length:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise Va2JaxError(f"parameter {p.name!r} is an array of {p.length}, got {value!r}")
        if len(value) != p.length:
            raise Va2JaxError(f"parameter {p.name!r} needs {p.length} values, got {len(value)}")
        return tuple(one(v) for v in value)
    return one(value)


_CTYPE = {"real": C.c_double, "int": C.c_int32, "str": C.c_char_p}


class _ParamStore:
    """Shared parameter access for models and instances."""

    module: ModuleInfo
    _keep: list

    def _access(self, pid: int, flags: int) -> int:
        raise NotImplementedError

    def _write(self, p: ParamInfo, value: Any, flags: int) -> None:
        ptr = self._access(p.id, flags | S.ACCESS_FLAG_SET)
        if not ptr:
            raise Va2JaxError(f"parameter {p.name!r} of module {self.module.name!r} cannot be set")
        ty = _CTYPE[p.type]
        vals = value if p.length else (value,)
        arr = (ty * len(vals)).from_address(ptr)
        for k, v in enumerate(vals):
            if p.type == "str":
                buf = C.create_string_buffer(v.encode())
                self._keep.append(buf)
                C.c_void_p.from_address(ptr + 8 * k).value = C.addressof(buf)
            else:
                arr[k] = v

    def _read(self, p: ParamInfo, flags: int) -> Any:
        ptr = self._access(p.id, flags)
        if not ptr:
            raise Va2JaxError(f"parameter {p.name!r} of module {self.module.name!r} cannot be read")
        n = p.length or 1
        if p.type == "str":
            out = []
            for k in range(n):
                sp = C.c_void_p.from_address(ptr + 8 * k).value
                out.append(C.string_at(sp).decode("utf-8", "replace") if sp else "")
        else:
            out = list((_CTYPE[p.type] * n).from_address(ptr))
        return tuple(out) if p.length else out[0]


class OsdiModel(_ParamStore):
    """A model (``model_size`` bytes of zeroed memory) with its parameters set and ``setup_model`` run.

    Parameters are given by any name or alias (case-insensitive). Model cards may also set
    instance parameters' defaults (OpenVAF stores them in the model).
    """

    def __init__(self, module: ModuleInfo, params: dict[str, Any] | None = None, *,
                 sim_params: dict[str, float] | None = None,
                 sim_params_str: dict[str, str] | None = None, setup: bool = True):
        self.module = module
        self._d = module.descriptor
        self._keep: list = []
        self._buf = C.create_string_buffer(max(int(module.model_size), 1))
        self.ptr: int = C.addressof(self._buf)
        self.sim_paras = _SimParas(sim_params, sim_params_str)
        self.params: dict[str, Any] = {}
        self.is_setup = False
        for k, v in (params or {}).items():
            self.set(k, v)
        if setup:
            self.setup()

    def _access(self, pid: int, flags: int) -> int:
        return self._d.access(None, self.ptr, pid, flags) or 0

    def set(self, name: str, value: Any) -> None:
        """Set a model parameter (or an instance parameter's model default); call :meth:`setup` after."""
        p = self.module.find_param(name)
        self._write(p, _check_value(p, value), 0)
        self.params[p.name] = value
        self.is_setup = False

    def get(self, name: str) -> Any:
        """Read a model parameter's value (after setup: the value the model uses)."""
        return self._read(self.module.find_param(name), S.ACCESS_FLAG_READ)

    def given(self, name: str) -> bool | None:
        """Whether the parameter was given (``None`` on OSDI 0.3, which has no given-flag getter)."""
        if self.module.library.version < (0, 4):
            return None
        return bool(self._d.given_flag_model(self.ptr, self.module.find_param(name).id))

    def setup(self) -> None:
        """Run ``setup_model``; raises :class:`OsdiInitError` naming out-of-bounds parameters."""
        info = S.OsdiInitInfo()
        self._d.setup_model(C.c_char_p(self.module.name.encode()), self.ptr,
                            C.byref(self.sim_paras.struct), C.byref(info))
        _check_init(self.module, info, "setup_model", self)
        self.is_setup = True

    def instance(self, params: dict[str, Any] | None = None, *, temperature: float = 300.15,
                 num_terminals: int | None = None, name: str = "inst",
                 sim_params: dict[str, float] | None = None) -> "OsdiInstance":
        """Create an :class:`OsdiInstance` of this model (``temperature`` in K)."""
        return OsdiInstance(self, params, temperature=temperature, num_terminals=num_terminals,
                            name=name, sim_params=sim_params)


def _check_init(module: ModuleInfo, info: S.OsdiInitInfo, what: str, store: _ParamStore) -> None:
    errs = []
    n = int(info.num_errors)
    if n and info.errors:
        for k in range(n):
            errs.append((int(info.errors[k].code), int(info.errors[k].parameter_id)))
    if info.errors:
        S.libc_free(C.cast(info.errors, C.c_void_p))
        info.errors = None
    msgs = []
    details = []
    allp = {p.id: p for p in module.params}
    for code, pid in errs:
        p = allp.get(pid)
        if p is None:
            msgs.append(f"{what} error code {code} for unknown parameter id {pid}")
            continue
        try:
            flags = S.ACCESS_FLAG_INSTANCE if (p.kind == "instance" and isinstance(store, OsdiInstance)) else 0
            value = store._read(p, flags)
        except Va2JaxError:
            value = "?"
        details.append((code, p.name, value))
        if code == S.INIT_ERR_OUT_OF_BOUNDS:
            msgs.append(f"parameter {p.name!r} = {value!r} is out of bounds (the bound is in the "
                        f"model's Verilog-A source; OSDI does not record it)")
        else:
            msgs.append(f"{what} error code {code} for parameter {p.name!r} = {value!r}")
    if info.flags & S.EVAL_RET_FLAG_FATAL:
        msgs.append(f"{what} stopped with $fatal (see the va2jax.osdi.model log)")
    if msgs:
        raise OsdiInitError(f"module {module.name!r}: " + "; ".join(msgs), tuple(details))


@dataclass(frozen=True)
class EvalFlags:
    """Decoded eval return flags."""

    limited: bool
    fatal: bool
    finish: bool
    stop: bool
    raw: int


@dataclass(frozen=True)
class EvalResult:
    """Result of one :meth:`OsdiInstance.eval`, in descriptor node order (length ``num_nodes``).

    Residuals: resistive in A (KCL rows) / V (flow rows), reactive in C / Wb. Jacobians are dense
    ``num_nodes × num_nodes`` arrays, row = residual node, column = unknown (voltage) node.
    Collapsed nodes have zero rows/columns (their contribution sits at the representative node),
    rows/columns of nodes merged with ground are zero. ``lim_rhs_*`` are the limiting RHS
    corrections, ``opvars`` the operating-point variables by primary name, ``next_states`` the
    new state values, ``bound_step`` the model's step bound in s (``None`` if unsupported).
    ``finite`` is False if any output is NaN/inf.
    """

    node_names: tuple[str, ...]
    residual_resist: np.ndarray
    residual_react: np.ndarray
    jacobian_resist: np.ndarray
    jacobian_react: np.ndarray
    lim_rhs_resist: np.ndarray
    lim_rhs_react: np.ndarray
    opvars: dict[str, Any]
    next_states: np.ndarray
    bound_step: float | None
    flags: EvalFlags
    finite: bool


@dataclass(frozen=True)
class NoiseResult:
    """Noise densities per source (A²/Hz for current noise, V²/Hz for voltage noise) at ``freq`` (Hz).

    ``power``/``exponent``: OSDI 0.5 ``load_noise_params`` (``None`` on older versions); for a
    flicker source density = power / freq**exponent.
    """

    freq: float
    names: tuple[str, ...]
    density: np.ndarray
    power: np.ndarray | None
    exponent: np.ndarray | None


def _array_layout_known(m: ModuleInfo) -> bool:
    """Whether the ``write_jacobian_array_*`` layout can be derived from the entry flags.

    OpenVAF writes, in descriptor order, every entry whose resistive (reactive) value the model
    stores. That is normally exactly the entries flagged ``JACOBIAN_ENTRY_RESIST`` (``_REACT``),
    but some libraries (12 of the 53 prebuilt ones, e.g. bsimbulk106 and several SPICE JFET/BJT
    models) report more ``num_resistive/reactive_jacobian_entries`` than flagged entries; then
    the positions are ambiguous and the ``load_jacobian_*`` pointer path is used instead.
    """
    if m.library.version < (0, 4):
        return False
    return (m.num_resistive_jacobian_entries == sum(e.resist for e in m.jacobian)
            and m.num_reactive_jacobian_entries == sum(e.react for e in m.jacobian))


class OsdiInstance(_ParamStore):
    """An instance of a set-up :class:`OsdiModel`, with ``setup_instance`` run and nodes collapsed.

    **Collapsing convention** (mirrored by the JAX side): after ``setup_instance`` the collapsed
    flags (one per collapsible pair) are read and the pairs are merged with union-find; a second
    node of ``UINT32_MAX`` is ground. Each node maps to its *representative*, the lowest descriptor
    index in its merged set; a set that contains ground maps to the ground slot (index
    ``num_nodes`` of the ``prev_solve`` buffer, always 0 V). :attr:`node_mapping` gives the
    representative per node (``-1`` = ground). The model sees the representative's voltage;
    a collapsed node's residual and Jacobian row/column are zero and its contributions appear at
    its representative; rows/columns of nodes merged with ground are dropped (zero).
    States are indexed ``0..num_states-1``.
    """

    def __init__(self, model: OsdiModel, params: dict[str, Any] | None = None, *,
                 temperature: float = 300.15, num_terminals: int | None = None, name: str = "inst",
                 sim_params: dict[str, float] | None = None, setup: bool = True):
        if not model.is_setup:
            model.setup()
        self.model = model
        self.module = m = model.module
        self._d = m.descriptor
        self._keep: list = []
        self._buf = C.create_string_buffer(max(int(m.instance_size), 1))
        self.ptr: int = C.addressof(self._buf)
        self._handle = C.create_string_buffer(name.encode())
        self.name = name
        self.sim_paras = model.sim_paras if sim_params is None else _SimParas(sim_params, model.sim_paras.strings)
        if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                or not math.isfinite(temperature) or temperature <= 0):
            raise Va2JaxError(f"temperature must be a finite number of kelvin above 0, got {temperature!r}")
        self.temperature = float(temperature)
        if num_terminals is None:
            num_terminals = m.num_terminals
        if not 0 <= int(num_terminals) <= m.num_terminals:
            raise Va2JaxError(f"module {m.name!r} has {m.num_terminals} terminals, "
                              f"cannot connect {num_terminals}")
        self.num_terminals = int(num_terminals)
        self.params: dict[str, Any] = {}
        n = m.num_nodes
        self._prev_solve = (C.c_double * (n + 1))()
        ns = max(m.num_states, 1)
        self._prev_state = (C.c_double * ns)()
        self._next_state = (C.c_double * ns)()
        self._siminfo = S.OsdiSimInfo()
        self.node_mapping: tuple[int, ...] = tuple(range(n))
        self.is_setup = False
        self._last_voltages = np.zeros(n)
        for k, v in (params or {}).items():
            self.set(k, v)
        if setup:
            self.setup()

    def _access(self, pid: int, flags: int) -> int:
        return self._d.access(self.ptr, self.model.ptr, pid, flags) or 0

    def set(self, name: str, value: Any) -> None:
        """Set an instance parameter (any name/alias); call :meth:`setup` after."""
        p = self.module.find_param(name)
        if p.kind != "instance":
            raise Va2JaxError(f"{name!r} is a model parameter of module {self.module.name!r}, "
                              "not an instance parameter")
        self._write(p, _check_value(p, value), S.ACCESS_FLAG_INSTANCE)
        self.params[p.name] = value
        self.is_setup = False

    def get(self, name: str) -> Any:
        """Read a parameter value as the instance sees it (instance params: the instance's value)."""
        p = self.module.find_param(name)
        if p.kind == "instance":
            return self._read(p, S.ACCESS_FLAG_INSTANCE)
        return self.model._read(p, 0)

    def given(self, name: str) -> bool | None:
        """Whether an instance parameter was given on the instance (``None`` on OSDI 0.3)."""
        p = self.module.find_param(name)
        if self.module.library.version < (0, 4):
            return None
        if p.kind != "instance":
            return self.model.given(name)
        return bool(self._d.given_flag_instance(self.ptr, p.id))

    def setup(self) -> None:
        """Run ``setup_instance`` (temperature, connected terminals, sim params), then collapse nodes."""
        info = S.OsdiInitInfo()
        self._d.setup_instance(C.cast(self._handle, C.c_void_p), self.ptr, self.model.ptr,
                               self.temperature, self.num_terminals,
                               C.byref(self.sim_paras.struct), C.byref(info))
        _check_init(self.module, info, "setup_instance", self)
        self._collapse()
        self._write_state_idx()
        self._jac_ptrs_valid = False
        self.is_setup = True

    # -- collapsing ---------------------------------------------------------------------------
    def _collapse(self) -> None:
        m = self.module
        n = m.num_nodes
        parent = list(range(n + 1))  # n = ground

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        flags = (C.c_bool * max(len(m.collapsible), 1)).from_address(self.ptr + int(self._d.collapsed_offset))
        for k, (a, b) in enumerate(m.collapsible):
            if not flags[k]:
                continue
            a = n if a < 0 else a
            b = n if b < 0 else b
            if not (0 <= a <= n and 0 <= b <= n):
                continue
            ra, rb = find(a), find(b)
            if ra != rb:  # roots are the lowest index of their set, or ground (n)
                if ra == n or rb == n:
                    parent[rb if ra == n else ra] = n
                else:
                    parent[max(ra, rb)] = min(ra, rb)
        mapping = [find(i) for i in range(n)]
        arr = (C.c_uint32 * max(n, 1)).from_address(self.ptr + int(self._d.node_mapping_offset))
        for i, r in enumerate(mapping):
            arr[i] = r
        self._mapping_raw = mapping
        self.node_mapping = tuple(-1 if r == n else r for r in mapping)

    def _write_state_idx(self) -> None:
        ns = self.module.num_states
        if ns:
            arr = (C.c_uint32 * ns).from_address(self.ptr + int(self._d.state_idx_off))
            for i in range(ns):
                arr[i] = i

    # -- eval ---------------------------------------------------------------------------------
    def voltages_from_dict(self, volts: dict[str, float]) -> np.ndarray:
        """Node voltages (V) in descriptor order from ``{node name: V}``; missing nodes are 0 V."""
        v = np.zeros(self.module.num_nodes)
        for k, val in volts.items():
            v[self.module.node_index(k)] = float(val)
        return v

    def eval(self, voltages: Sequence[float] | np.ndarray | dict[str, float] | None = None, *,
             states: Sequence[float] | np.ndarray | None = None, calc: int = DEFAULT_CALC,
             analysis: int = DEFAULT_ANALYSIS, abstime: float = 0.0, flags: int | None = None,
             jacobian_path: str = "auto") -> EvalResult:
        """Evaluate the instance at node ``voltages`` (V; flows in A), descriptor order, length
        ``num_nodes`` (or a ``{name: value}`` dict, missing = 0).

        ``calc`` selects what is computed (``CALC_*``/``ENABLE_LIM``/``INIT_LIM`` bits), ``analysis``
        the analysis (``ANALYSIS_*`` bits); ``flags`` overrides both. ``states`` are the previous
        states (default 0), ``abstime`` the time in s. ``jacobian_path``: ``"array"`` uses
        ``write_jacobian_array_*`` (OSDI ≥ 0.4), ``"pointers"`` the ``load_jacobian_*`` pointer
        path, ``"auto"`` the array path where its layout is unambiguous (see
        :func:`_array_layout_known`), else the pointer path. Both give the same dense matrices.
        """
        if not self.is_setup:
            self.setup()
        m = self.module
        n = m.num_nodes
        if voltages is None:
            v = np.zeros(n)
        elif isinstance(voltages, dict):
            v = self.voltages_from_dict(voltages)
        else:
            try:
                v = np.asarray(voltages, dtype=float).reshape(-1)
            except (TypeError, ValueError):
                raise Va2JaxError("voltages must be numbers") from None
            if v.shape != (n,):
                raise Va2JaxError(f"module {m.name!r} has {n} nodes, got {v.size} voltages")
        ns = m.num_states
        if states is None:
            st = np.zeros(ns)
        else:
            st = np.asarray(states, dtype=float).reshape(-1)
            if st.shape != (ns,):
                raise Va2JaxError(f"module {m.name!r} has {ns} states, got {st.size}")
        fl = int(calc | analysis) if flags is None else int(flags)
        if fl < 0 or fl > 0xFFFFFFFF:
            raise Va2JaxError(f"eval flags out of range: {fl}")
        self._last_voltages = v.copy()
        for i in range(n):
            self._prev_solve[i] = v[i]
        self._prev_solve[n] = 0.0
        for i in range(ns):
            self._prev_state[i] = st[i]
            self._next_state[i] = 0.0
        self.sim_paras.set_init_lim(bool(fl & S.INIT_LIM))
        si = self._siminfo
        si.paras = self.sim_paras.struct
        si.abstime = float(abstime)
        si.prev_solve = C.cast(self._prev_solve, C.POINTER(C.c_double))
        si.prev_state = C.cast(self._prev_state, C.POINTER(C.c_double))
        si.next_state = C.cast(self._next_state, C.POINTER(C.c_double))
        si.flags = fl
        ret = int(self._d.eval(C.cast(self._handle, C.c_void_p), self.ptr, self.model.ptr, C.byref(si)))
        self.sim_paras.set_init_lim(False)
        eflags = EvalFlags(bool(ret & S.EVAL_RET_FLAG_LIM), bool(ret & S.EVAL_RET_FLAG_FATAL),
                           bool(ret & S.EVAL_RET_FLAG_FINISH), bool(ret & S.EVAL_RET_FLAG_STOP), ret)

        rr = self._load_vec(self._d.load_residual_resist) if fl & S.CALC_RESIST_RESIDUAL else np.zeros(n)
        rq = self._load_vec(self._d.load_residual_react) if fl & S.CALC_REACT_RESIDUAL else np.zeros(n)
        lr = self._load_vec(self._d.load_limit_rhs_resist) if fl & S.CALC_RESIST_LIM_RHS else np.zeros(n)
        lq = self._load_vec(self._d.load_limit_rhs_react) if fl & S.CALC_REACT_LIM_RHS else np.zeros(n)
        use_arr = (jacobian_path == "array" or
                   (jacobian_path == "auto" and _array_layout_known(m)))
        if jacobian_path not in ("auto", "array", "pointers"):
            raise Va2JaxError(f"jacobian_path must be auto, array or pointers, got {jacobian_path!r}")
        if use_arr and m.library.version < (0, 4):
            raise Va2JaxError("write_jacobian_array_* needs OSDI 0.4 or newer")
        if use_arr:
            jr = self._jac_array(False) if fl & S.CALC_RESIST_JACOBIAN else np.zeros((n, n))
            jq = self._jac_array(True) if fl & S.CALC_REACT_JACOBIAN else np.zeros((n, n))
        else:
            jr, jq = self._jac_pointers(bool(fl & S.CALC_RESIST_JACOBIAN), bool(fl & S.CALC_REACT_JACOBIAN))
        opv = self._read_opvars() if fl & S.CALC_OP else {}
        nxt = np.array([self._next_state[i] for i in range(ns)], dtype=float)
        bstep = None
        if m.has_bound_step:
            bstep = float(C.c_double.from_address(self.ptr + int(self._d.bound_step_offset)).value)
        finite = bool(all(np.all(np.isfinite(a)) for a in (rr, rq, jr, jq, lr, lq, nxt)) and all(
            math.isfinite(x) for x in opv.values() if isinstance(x, float)))
        if not finite:
            log.warning("%s (%s): eval produced NaN or inf values", self.name, m.name)
        if eflags.fatal:
            log.error("%s (%s): eval reported $fatal", self.name, m.name)
        return EvalResult(m.node_names, rr, rq, jr, jq, lr, lq, opv, nxt, bstep, eflags, finite)

    def _load_vec(self, fn) -> np.ndarray:
        n = self.module.num_nodes
        buf = (C.c_double * (n + 1))()
        fn(self.ptr, self.model.ptr, C.cast(buf, C.POINTER(C.c_double)))
        return np.array(buf[:n], dtype=float)

    def _jac_array(self, react: bool) -> np.ndarray:
        m = self.module
        n = m.num_nodes
        entries = [e for e in m.jacobian if (e.react if react else e.resist)]
        count = m.num_reactive_jacobian_entries if react else m.num_resistive_jacobian_entries
        if count != len(entries):
            raise Va2JaxError(f"module {m.name!r}: descriptor reports {count} "
                              f"{'reactive' if react else 'resistive'} Jacobian entries but flags "
                              f"mark {len(entries)}")
        buf = (C.c_double * max(len(entries), 1))()
        fn = self._d.write_jacobian_array_react if react else self._d.write_jacobian_array_resist
        fn(self.ptr, self.model.ptr, C.cast(buf, C.POINTER(C.c_double)))
        out = np.zeros((n, n))
        mp = self._mapping_raw
        for k, e in enumerate(entries):
            r, c = mp[e.row], mp[e.col]
            if r < n and c < n:
                out[r, c] += buf[k]
        return out

    def _jac_pointers(self, resist: bool, react: bool) -> tuple[np.ndarray, np.ndarray]:
        m = self.module
        n = m.num_nodes
        size = (n + 1) * (n + 1)
        if not getattr(self, "_jac_ptrs_valid", False):
            self._mat_r = (C.c_double * size)()
            self._mat_q = (C.c_double * size)()
            base_r, base_q = C.addressof(self._mat_r), C.addressof(self._mat_q)
            mp = self._mapping_raw
            off = int(self._d.jacobian_ptr_resist_offset)
            for k, e in enumerate(m.jacobian):
                pos = 8 * (mp[e.row] * (n + 1) + mp[e.col])
                C.c_void_p.from_address(self.ptr + off + 8 * k).value = base_r + pos
                if e.react_ptr_off != S.UINT32_MAX:
                    C.c_void_p.from_address(self.ptr + e.react_ptr_off).value = base_q + pos
            self._jac_ptrs_valid = True
        C.memset(self._mat_r, 0, 8 * size)
        C.memset(self._mat_q, 0, 8 * size)
        if resist:
            self._d.load_jacobian_resist(self.ptr, self.model.ptr)
        if react:
            self._d.load_jacobian_react(self.ptr, self.model.ptr, 1.0)
        jr = np.array(self._mat_r, dtype=float).reshape(n + 1, n + 1)[:n, :n].copy()
        jq = np.array(self._mat_q, dtype=float).reshape(n + 1, n + 1)[:n, :n].copy()
        return jr, jq

    def _read_opvars(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.module.opvars:
            try:
                out[p.name] = self._read(p, S.ACCESS_FLAG_INSTANCE)
            except Va2JaxError:
                out[p.name] = float("nan")
        return out

    def opvar(self, name: str) -> Any:
        """Value of an opvar (after an eval with ``CALC_OP``)."""
        p = self.module.find_param(name, include_opvars=True)
        if p.kind != "opvar":
            return self.get(name)
        return self._read(p, S.ACCESS_FLAG_INSTANCE)

    def noise(self, freq: float, voltages: Sequence[float] | np.ndarray | dict[str, float] | None = None
              ) -> NoiseResult:
        """Noise densities at ``freq`` (Hz) after an eval with ``CALC_NOISE | ANALYSIS_NOISE`` at
        ``voltages`` (default: the last eval's voltages)."""
        m = self.module
        if voltages is None:
            voltages = self._last_voltages
        self.eval(voltages, calc=DEFAULT_CALC | S.CALC_NOISE, analysis=S.ANALYSIS_NOISE | S.ANALYSIS_AC)
        k = len(m.noise_sources)
        dens = (C.c_double * max(k, 1))()
        if m.library.version < (0, 4):
            ln = (C.c_double * max(k, 1))()
            fn = S.LOAD_NOISE_03_FN(self._d.load_noise)
            fn(self.ptr, self.model.ptr, float(freq), C.cast(dens, C.POINTER(C.c_double)),
               C.cast(ln, C.POINTER(C.c_double)))
        else:
            fn = S.LOAD_NOISE_FN(self._d.load_noise)
            fn(self.ptr, self.model.ptr, float(freq), C.cast(dens, C.POINTER(C.c_double)))
        power = exponent = None
        if m.library.version >= (0, 5) and self._d.load_noise_params:
            pw = (C.c_double * max(k, 1))()
            ex = (C.c_double * max(k, 1))()
            self._d.load_noise_params(self.ptr, self.model.ptr, C.cast(pw, C.POINTER(C.c_double)),
                                      C.cast(ex, C.POINTER(C.c_double)))
            power, exponent = np.array(pw[:k]), np.array(ex[:k])
        return NoiseResult(float(freq), tuple(s.name for s in m.noise_sources), np.array(dens[:k]),
                           power, exponent)
