"""Model parameters: their description, user values by canonical name plus the defaults
OpenVAF's model setup gives the others, declared bounds, and setup's (init's) inputs.

Functions taking ``self`` are :class:`~va2jax.codegen.Model` methods (bound there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import Va2JaxError
from ..mir import INT, REAL, STR, violations
from ..mir import evaluate_bound as evaluate
from ._osdi_defaults import osdi_defaults
from ._state import EvalInput


@dataclass(frozen=True)
class ModelParam:
    """A model parameter: canonical name, aliases, type (``real``/``int``/``str``), kind
    (``"model"`` or ``"instance"``), units, description and literal default (if known)."""

    name: str
    aliases: tuple[str, ...]
    type: str
    kind: str
    units: str
    description: str
    default: float | None


def resolve_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """User values by canonical lower-case name, plus the values of parameters OpenVAF's
    *model* setup would default (openvaf-py does not export that function).

    A literal default from the front end is always used. A model parameter whose default is
    an expression is read back from the OSDI library's ``setup_model`` with the same model
    parameters (exact OpenVAF semantics; compiled once and cached); an instance parameter's
    expression default is left to init when init has its ``given`` flag (OpenVAF's
    setup_instance, which init contains, selects it). Returns (values, given).
    """
    vals: dict[str, Any] = {}
    for k, v in params.items():
        vals[self.canonical_param(k).lower()] = v
    given = set(vals)
    init_given = {p.name.lower() for p in self.ir.init.params if p.kind == "param_given"}
    needed = {p.name.lower() for p in self.ir.init.params if p.kind == "param"}
    needed |= {str(data).lower() for _v, how, data in self._eval_inputs if how is EvalInput.PARAM}
    pinfo = {p.name.lower(): p for p in self.ir.params}
    missing = []
    for key in sorted(needed - given):
        p = pinfo.get(key)
        if p is not None and p.default is not None:
            # also when init reads the given flag: a $param_given() in the model's own code
            # is no default selection, and the generated init takes the literal default
            # from this input (see codegen._generate.generate)
            vals[key] = p.default
        elif key not in init_given or (p is not None and not p.is_instance):
            # model parameters are defaulted by OSDI's setup_model, which openvaf-py's init
            # does not contain: init reads them as given (bsimimg EOT1P = EOT1, PHIG2)
            missing.append(key)
    if missing:
        ref = osdi_defaults(self, {k: v for k, v in vals.items()
                                   if k in pinfo and not pinfo[k].is_instance and k in given})
        for key in missing:
            if key in ref:
                vals[key] = ref[key]
    return vals, given


def declared_bounds(self) -> dict[str, Any]:
    """Parameter name (lower case) → (default expression, ``from``/``exclude`` clauses) in the
    Verilog-A source (read once; openvaf-py does not export OpenVAF's bound checks, see :mod:`va2jax.mir._bounds`)."""
    if "_bounds" not in self.__dict__:
        from ..mir import read_bounds

        try:
            self._bounds = read_bounds(self.ir.source).get(self.name.lower(), {})
        except (OSError, RecursionError):  # pragma: no cover - source gone: nothing to check
            self._bounds = {}
    return self._bounds


def check_bounds(self, params: Mapping[str, Any], batched: bool) -> None:
    """Raise :class:`Va2JaxError` for a given parameter value outside its declared bounds,
    as OpenVAF's setup_model/setup_instance refuse it (value NaN lies in no range). Bounds
    that name other parameters see their given values, else their literal defaults."""
    decl = declared_bounds(self)
    if not any(b for _d, b in decl.values()):
        return
    given = {self.canonical_param(k).lower(): v for k, v in params.items()}
    if "_bound_defaults" not in self.__dict__:  # defaults, evaluated once (source order)
        dflt: dict[str, Any] = {p.name.lower(): p.default for p in self.ir.params
                                if p.default is not None}
        for key, (default, _b) in decl.items():
            if key not in dflt:
                v = evaluate(default, dflt)
                if v is not None:
                    dflt[key] = v
        # OpenVAF checks defaults too (a bound may name a given parameter: bsimcmg's FPITCH
        # from [TFIN:inf)); only literal defaults are checked, others may depend on givens
        literal = {k for k, (d, b) in decl.items() if b and evaluate(d, {}) is not None}
        self._bound_defaults = (dflt, literal)
    dflt, literal = self._bound_defaults
    inst = {p.name.lower() for p in self.ir.params if p.is_instance}
    scope = {**dflt, **given}
    # OSDI's setup_model checks model parameters seeing model-level values only (an instance
    # parameter given per instance is not one: hisim2's PARL2 from (-inf:L) with L given)
    model_scope = {**dflt, **{k: v for k, v in given.items() if k not in inst}}
    names = {p.name.lower(): p.name for p in self.ir.params}
    for key in sorted(set(given) | {k for k in literal if k in dflt}):
        bounds = decl.get(key, ("", ()))[1]
        if not bounds:
            continue
        sc = scope if key in inst else model_scope
        arr = np.asarray(sc[key])
        bad, text = violations(arr, bounds, sc)
        if np.any(bad):
            idx = int(np.argmax(np.ravel(bad)))
            shown = np.ravel(arr)[idx] if arr.ndim else arr[()]
            shown = shown.item() if hasattr(shown, "item") else shown
            what = "" if key in given else " (its default)"
            raise Va2JaxError(f"module {self.name}: parameter {names.get(key, key)} = {shown!r}"
                              f"{what} is out of bounds ({text})"
                              + (f" (instance {idx})" if batched and np.ndim(bad) else ""))


def connected_ports(self, connected: Any, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``$port_connected(p)`` of every port the module asks about, per instance: OSDI's rule
    (OpenVAF's ``setup_instance``/``eval``), the port's index among the module's unknowns (its
    terminal index) below the number of terminals the instance connects. ``connected``: that
    number, a scalar or one per instance (``None``: all terminals). Keys are
    ``$port_connected(p)`` (the port's name), values (N,) bool."""
    names = [p.name for f in (self.ir.init, self.ir.eval) for p in f.params if p.kind == "port_connected"]
    if not names:
        return {}
    nt = sum(1 for nd in self.ir.nodes if nd.is_terminal)
    if connected is None:
        conn = np.full(shape, nt, np.int64)
    else:
        arr = np.asarray(connected)
        if arr.dtype.kind not in "iuf" or np.any(arr != np.round(arr)) or np.any((arr < 0) | (arr > nt)):
            raise Va2JaxError(f"module {self.name}: connected must be a whole number of terminals "
                              f"from 0 to {nt}, got {connected!r}")
        try:
            conn = np.broadcast_to(arr.astype(np.int64), shape)
        except ValueError:
            raise Va2JaxError(f"module {self.name}: connected of shape {arr.shape} does not "
                              f"broadcast to the {shape[0]} instances") from None
    index = {nd.name: i for i, nd in enumerate(self.ir.nodes) if nd.is_terminal}
    lower = {k.lower(): i for k, i in index.items()}
    out = {}
    for nm in names:
        i = index.get(nm, lower.get(nm.lower()))
        if i is None:
            raise Va2JaxError(f"module {self.name}: $port_connected({nm}): no such terminal")
        out[f"$port_connected({nm})"] = conn > i
    return out


def init_inputs(self, vals: Mapping[str, Any], given: set[str], temperature: Any, shape: tuple[int, ...],
                connected: Any = None):
    strings = dict(self._strings)
    inp: dict[str, Any] = {}
    ports = None
    ptypes = {p.name.lower(): p.type for p in self.ir.params}
    for p in self.ir.init.params:
        key = p.name.lower()
        if p.kind == "param":
            ty = ptypes.get(key, REAL)
            if key in vals:
                inp[p.value] = convert(self.name, p.name, vals[key], ty, shape, strings)
            else:
                inp[p.value] = np.zeros(shape, np.int32 if ty in (INT, STR) else np.float64)
        elif p.kind == "param_given":
            inp[p.value] = np.full(shape, key in given, np.bool_)
        elif p.kind == "temperature":
            inp[p.value] = np.broadcast_to(np.asarray(temperature, np.float64), shape)
        elif p.kind == "sysfun":
            inp[p.value] = np.broadcast_to(np.asarray(vals.get("$mfactor", 1.0), np.float64), shape)
        elif p.kind == "port_connected":
            if ports is None:
                ports = connected_ports(self, connected, shape)
            inp[p.value] = ports[f"$port_connected({p.name})"]
        else:
            raise Va2JaxError(f"module {self.name}: init input kind {p.kind!r} ({p.name}) is not supported")
    return inp


def mfactor_of(self, params: Mapping[str, Any]) -> Any:
    """The instance's $mfactor among ``params`` ("m" names it only when the module has no
    parameter of its own called m; OSDI then lists $mfactor without that alias)."""
    for k, v in params.items():
        if self._lookup.get(k.lower()) == "$mfactor":
            return v
    return 1.0


def is_given(self, params: Mapping[str, Any], name: str) -> bool:
    canon = self._lookup.get(name.lower(), name)
    return any(self._lookup.get(k.lower()) == canon for k in params)


def show(params, name, idx):
    for k, v in params.items():
        if k.lower() == name.lower():
            a = np.asarray(v)
            return a.reshape(-1)[idx] if a.ndim else v
    return "(default)"


def convert(mod: str, pname: str, value: Any, ty: str, shape, strings: dict[str, int]):
    if ty == STR:
        if not isinstance(value, str):
            raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a string, got {value!r}")
        sid = strings.setdefault(value, len(strings) + 1000)
        return np.full(shape, sid, np.int32)
    if isinstance(value, str):
        raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a number, got the string {value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a number, got {value!r}")
    if ty == INT:
        if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
            raise Va2JaxError(f"module {mod}: integer parameter {pname!r} got non-integer {value!r}")
        return np.broadcast_to(arr.astype(np.int32), shape)
    return np.broadcast_to(arr.astype(np.float64), shape)
