"""The device interface between the circuit engine and compact models.

Every nonlinear device contributes, per instance, residuals in the OSDI form

    f(V) + d/dt q(V) = 0

over its local unknowns ``V`` (node voltages in descriptor order; for flow / implicit unknowns the
value is the branch current). Units: ``f`` in A (KCL rows) or V (branch rows), ``q`` in C or Wb.

* :class:`CompiledModel` — what the engine needs from a model, whatever produced it (the generated
  JAX code, an OSDI library, or a hand-written JAX function here).
* :class:`DeviceGroup` — a model bound to ``N`` instances; ``eval(V (N, n))`` returns
  ``(f (N,n), q (N,n), Jf (N,n,n), Jq (N,n,n))`` with ``J[k, r, c] = ∂res_r/∂V_c`` and must be
  traceable by :func:`jax.jit`.

Node collapsing: a group reports ``node_alias (N, n)``: ``alias[k, j] = j`` for a node kept, the
local index of the node it merges into, or ``-1`` for a node merged into ground. The engine gives
a collapsed node no unknown of its own; the model must already put its contributions at the
representative node (OSDI convention), so its rows and columns are zero.

The built-in models here are used for reference-free tests and as a fallback when neither the code
generator nor the OSDI loader is available. Adapters for the other two sources live in
:mod:`va2jax.sim.adapters` — the only module that knows about them.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


class DeviceGroup(abc.ABC):
    """``N`` instances of one model, evaluated together: everything the engine calls.

    Required: ``size``, ``node_alias`` and :meth:`eval`. Optional, with defaults here: ``$limit``
    states (:attr:`num_states`, :meth:`eval_limited`), an evaluator compiled outside the Newton
    loop (:meth:`prepare`, :attr:`compile_s`), and merging groups of one model (:meth:`merge`).
    """

    size: int
    node_alias: np.ndarray  # (N, n) int
    #: seconds spent compiling an evaluator outside the Newton loop (by :meth:`prepare`)
    compile_s: float = 0.0

    @abc.abstractmethod
    def eval(self, V: Array) -> tuple[Array, Array, Array, Array]:
        """``V (N, n)`` → ``(f (N,n), q (N,n), Jf (N,n,n), Jq (N,n,n))``; jit-traceable."""

    @property
    def num_states(self) -> int:
        """``$limit`` states per instance that the Newton loop carries (0: no limiting)."""
        return 0

    def eval_limited(self, V: Array, prev_state: Array, enable: Array
                     ) -> tuple[Array, Array, Array, Array, Array, Array, Array]:
        """:meth:`eval` with the model's junction limiting against ``prev_state (N, num_states)``
        when ``enable``: ``(f, q, Jf, Jq, lim_f, lim_q, new_states)`` (OSDI's limiting RHS
        ``lim_*``). Called only when :attr:`num_states` > 0."""
        raise NotImplementedError(f"{type(self).__name__} has no $limit states")

    def prepare(self) -> None:  # noqa: B027 (an optional hook: the default does nothing)
        """Compile what runs outside the Newton loop (called once by the engine); adds the time
        to :attr:`compile_s`. Default: nothing to compile."""

    @classmethod
    def merge(cls, groups: Sequence["DeviceGroup"]) -> "DeviceGroup | None":
        """One group holding the instances of ``groups`` (all of this class and one model, with
        different model cards), or ``None`` where the class cannot merge (the default)."""
        return None


@runtime_checkable
class CompiledModel(Protocol):
    """A device module ready to be instantiated."""

    name: str
    node_names: tuple[str, ...]  # descriptor order, terminals first
    num_terminals: int

    def param_kind(self, name: str) -> str | None:
        """``"model"``, ``"instance"`` or ``None`` (unknown); case-insensitive, aliases allowed."""
        ...

    def param_names(self) -> list[str]:
        """All parameter names (for suggestions in error messages)."""
        ...

    def node_is_flow(self) -> tuple[bool, ...]:
        """Per local node: ``True`` where the unknown is a branch current."""
        ...

    def bind(self, instance_params: Sequence[Mapping[str, float]], model_params: Mapping[str, float],
             temperature: float) -> DeviceGroup:
        """Bind ``N`` instances (one dict each) sharing ``model_params`` at ``temperature`` (K)."""
        ...


# ---------------------------------------------------------------------------------------------
# Hand-written JAX models (per-instance function + jax.jacfwd)
# ---------------------------------------------------------------------------------------------

@dataclass
class ParamSpec:
    default: float
    kind: str  # "model" | "instance"
    aliases: tuple[str, ...] = ()


class JaxFunctionModel:
    """A model given as ``fn(p: dict[str, scalar], V: (n,), T) -> (f (n,), q (n,))`` per instance.

    The Jacobians come from :func:`jax.jacfwd`; instances are batched with :func:`jax.vmap`.
    ``collapse(p) -> list[int]`` gives each local node's alias (see module docstring).
    """

    def __init__(self, name: str, node_names: Sequence[str], num_terminals: int,
                 params: Mapping[str, ParamSpec],
                 fn: Callable[[Mapping[str, Array], Array, float], tuple[Array, Array]],
                 collapse: Callable[[Mapping[str, float]], list[int]] | None = None,
                 flow: Sequence[bool] | None = None):
        self.name = name
        self.node_names = tuple(node_names)
        self.num_terminals = num_terminals
        self.params = dict(params)
        self._alias = {}
        for pname, spec in self.params.items():
            self._alias[pname.lower()] = pname
            for a in spec.aliases:
                self._alias[a.lower()] = pname
        self.fn = fn
        self.collapse = collapse
        self._flow = tuple(flow) if flow else (False,) * len(self.node_names)

    def canonical(self, name: str) -> str | None:
        return self._alias.get(name.lower())

    def param_kind(self, name: str) -> str | None:
        c = self.canonical(name)
        return None if c is None else self.params[c].kind

    def param_names(self) -> list[str]:
        return list(self._alias)

    def node_is_flow(self) -> tuple[bool, ...]:
        return self._flow

    def bind(self, instance_params: Sequence[Mapping[str, float]], model_params: Mapping[str, float],
             temperature: float) -> "JaxFunctionGroup":
        n_inst = len(instance_params)
        cols: dict[str, np.ndarray] = {}
        base = {k: s.default for k, s in self.params.items()}
        for k, v in model_params.items():
            base[self.canonical(k) or k] = float(v)
        rows = []
        for ip in instance_params:
            d = dict(base)
            for k, v in ip.items():
                d[self.canonical(k) or k] = float(v)
            rows.append(d)
        for k in base:
            cols[k] = np.array([r[k] for r in rows], dtype=float)
        n = len(self.node_names)
        alias = np.tile(np.arange(n), (n_inst, 1))
        if self.collapse is not None:
            for i, r in enumerate(rows):
                alias[i] = self.collapse(r)
        return JaxFunctionGroup(self, {k: jnp.asarray(v) for k, v in cols.items()}, alias,
                                float(temperature))


class JaxFunctionGroup(DeviceGroup):
    def __init__(self, model: JaxFunctionModel, params: dict[str, Array], alias: np.ndarray,
                 temperature: float):
        self.model = model
        self.params = params
        self.node_alias = alias
        self.size = alias.shape[0]
        self.temperature = temperature
        fn = model.fn
        T = temperature

        def one(p: Mapping[str, Array], v: Array) -> tuple[Array, Array, Array, Array]:
            def fq(vv: Array) -> tuple[Array, Array]:
                return fn(p, vv, T)
            (f, q) = fq(v)
            jf, jq = jax.jacfwd(fq)(v)
            return f, q, jf, jq

        self._batched = jax.vmap(one)

    def eval(self, V: Array) -> tuple[Array, Array, Array, Array]:
        return self._batched(self.params, V)


# --- SPICE level-1 junction diode (ngspice/sp_diode equations, tnom = T) --------------------

_KB = 1.380649e-23
_Q = 1.602176634e-19


def _diode_fn(p: Mapping[str, Array], v: Array, T: float) -> tuple[Array, Array]:
    """SPICE level-1 diode at nominal temperature. Nodes ``(a, c, a_int)``.

    Junction voltage ``vd = V(a_int) − V(c)``, ``Vte = n·k·T/q``::

        Id = area·is·(exp(vd/Vte) − 1) + gmin·vd                     vd ≥ −3·Vte
        Id = −area·is·(1 + (3·Vte/(e·vd))³) + gmin·vd                −bv < vd < −3·Vte
        Id = −area·is·exp(−(bv + vd)/Vte) + gmin·vd                  vd ≤ −bv  (bv > 0)
        Qd = tt·Id + area·cjo·vj·(1 − (1 − vd/vj)^(1−m))/(1 − m)    vd < fc·vj
           (linear continuation of the capacitance above fc·vj)

    plus the ohmic resistance ``rs/area`` between ``a`` and ``a_int``.
    """
    va, vc, vi = v[0], v[1], v[2]
    area = jnp.where(p["area"] > 0, p["area"], 1.0)
    is_ = p["is"] * area
    vte = p["n"] * _KB * T / _Q
    gmin = p["gmin"]
    vd = vi - vc
    vfw = jnp.maximum(vd, -3 * vte)
    e_fw = jnp.exp(jnp.minimum(vfw / vte, 700.0))
    i_fw = is_ * (e_fw - 1.0)
    vrev = jnp.minimum(vd, -3 * vte)
    arg = 3 * vte / (vrev * math.e)
    i_rev = -is_ * (1 + arg * arg * arg)
    bv = p["bv"]
    has_bv = bv > 0
    vbr = jnp.minimum(vd, -jnp.where(has_bv, bv, 1.0))
    i_br = -is_ * jnp.exp(jnp.minimum(-(jnp.where(has_bv, bv, 1.0) + vbr) / vte, 700.0))
    idio = jnp.where(vd >= -3 * vte, i_fw, jnp.where(has_bv & (vd <= -bv), i_br, i_rev))
    idio = idio + gmin * vd
    # depletion charge
    cj = p["cjo"] * area
    vj, m, fc = p["vj"], p["m"], p["fc"]
    vlim = fc * vj
    vdl = jnp.minimum(vd, vlim)
    q_low = cj * vj * (1 - (1 - vdl / vj) ** (1 - m)) / (1 - m)
    f1 = vj * (1 - (1 - fc) ** (1 - m)) / (1 - m)
    f2 = (1 - fc) ** (1 + m)
    f3 = 1 - fc * (1 + m)
    vdh = jnp.maximum(vd, vlim)
    q_high = cj * (f1 + (f3 * (vdh - vlim) + m / (2 * vj) * (vdh * vdh - vlim * vlim)) / f2)
    qd = p["tt"] * (idio - gmin * vd) + jnp.where(vd < vlim, q_low, q_high)
    rs = p["rs"] / area
    g_rs = jnp.where(rs > 0, 1.0 / jnp.where(rs > 0, rs, 1.0), 0.0)
    i_rs = g_rs * (va - vi)
    f = jnp.stack([i_rs, -idio, idio - i_rs])
    q = jnp.stack([jnp.zeros_like(qd), -qd, qd])
    return f, q


def _diode_collapse(p: Mapping[str, float]) -> list[int]:
    return [0, 1, 2] if p["rs"] > 0 else [0, 1, 0]


BUILTIN_DIODE = JaxFunctionModel(
    "sp_diode", ("a", "c", "a_int"), 2,
    {
        "area": ParamSpec(0.0, "instance"),
        "is": ParamSpec(1e-14, "model", ("js",)), "n": ParamSpec(1.0, "model"),
        "rs": ParamSpec(0.0, "model"), "cjo": ParamSpec(0.0, "model", ("cj0", "cj")),
        "vj": ParamSpec(1.0, "model", ("pb",)), "m": ParamSpec(0.5, "model", ("mj",)),
        "fc": ParamSpec(0.5, "model"), "tt": ParamSpec(0.0, "model"),
        "bv": ParamSpec(0.0, "model"), "ibv": ParamSpec(1e-3, "model"),
        "gmin": ParamSpec(1e-12, "model"), "level": ParamSpec(1.0, "model"),
    },
    _diode_fn, _diode_collapse,
)

#: Hand-written models by module name (fallback when no generated/OSDI model is available).
BUILTIN_MODELS: dict[str, JaxFunctionModel] = {"sp_diode": BUILTIN_DIODE}
