"""Typed data that flows between :meth:`Model.setup <va2jax.codegen.Model.setup>` and eval.

* :class:`SetupState` — what setup computed for a batch of N instances (a pytree);
* :class:`EvalInput` — how each input of the generated eval is obtained;
* :func:`eval_inputs` — a setup state plus per-call values (voltages, analysis, ``$limit``
  states) as the flat batch every backend's eval reads;
* :class:`EvalOutput` — the dense, collapsed result of :meth:`Model.eval`.
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple

import numpy as np


class SetupState(NamedTuple):
    """Result of setup for N instances (leading axis N on every per-instance array).

    ``init``: init's outputs by name (cached values, ``param:<name>`` resolved parameters,
    ``collapse<k>`` decisions); ``temperature`` (N,) K; ``labels`` (N, n) int: each node's
    representative after collapsing, −1 = ground; ``mfactor`` (N,); ``given``: eval's
    ``$param_given`` inputs by parameter name and its ``$port_connected`` inputs by
    ``$port_connected(port)``, (N,) bool; ``sp``: simulator parameters (scalars);
    ``batched``: whether the parameters had a batch axis (else results drop it); ``extra``:
    parameters eval reads that init does not output, (N,) each.

    A NamedTuple, hence a JAX pytree; ``state["labels"]`` reads a field by name as well.
    """

    init: dict[str, Any]
    temperature: Any
    labels: Any
    mfactor: Any
    given: dict[str, Any]
    sp: dict[str, Any]
    batched: bool
    extra: dict[str, Any]

    def __getitem__(self, key):  # state["labels"] as state.labels; integers index the tuple
        if isinstance(key, str):
            try:
                return getattr(self, key)
            except AttributeError:
                raise KeyError(key) from None
        return tuple.__getitem__(self, key)

    def keys(self):
        return self._fields


def as_state(state: Any) -> SetupState:
    """``state`` as a :class:`SetupState` (a mapping with its fields is converted)."""
    return state if isinstance(state, SetupState) else SetupState(**{k: state[k] for k in SetupState._fields})


#: Fields of :class:`SetupState` with the instance axis in front.
PER_INSTANCE = ("labels", "init", "given", "temperature", "mfactor", "extra")


class EvalInput(str, enum.Enum):
    """How an input of the generated eval is obtained (``data`` in the input table)."""

    VOLT = "volt"  #: node voltage difference, data (a, b or −1)
    ZERO = "zero"  #: unused or unmappable: 0
    PARAM = "param"  #: resolved parameter, data its name
    GIVEN = "given"  #: ``$param_given`` flag, data the parameter name (``$port_connected(p)``: that flag)
    TEMP = "temp"  #: ``$temperature`` (K)
    MFACTOR = "mfactor"  #: ``$mfactor``
    CACHE = "cache"  #: init's cached value, data its index
    ENABLE_LIM = "enable_lim"  #: OSDI's ``enable_lim`` flag
    PREV_STATE = "prev_state"  #: previous ``$limit`` state, data its index
    ENABLE_INTEGRATION = "enable_integration"  #: OSDI's ``enable_integration`` flag


#: Eval-input kinds that an evaluator takes per call: the node voltages, and with Newton
#: limiting also the previous ``$limit`` states and ``enable_lim``.
VOLT_DYNAMIC = frozenset({EvalInput.VOLT})
LIMIT_DYNAMIC = frozenset({EvalInput.VOLT, EvalInput.PREV_STATE, EvalInput.ENABLE_LIM})


def eval_inputs(state: SetupState, V: Any, *, flags: Any, num_states: int, prev_state: Any = None,
                enable_lim: Any = False, enable_integration: Any = None, xp: Any = np) -> dict[str, Any]:
    """The flat batch the generated eval's inputs are taken from (see ``_inputs.batch_inputs``).

    Arguments: ``state`` of N instances; ``V`` (N, n) node voltages (V; A for flow unknowns), or
    ``None`` for the inputs that do not change between calls; ``flags`` OSDI ANALYSIS_* bits;
    ``prev_state`` (N, ``num_states``) ``$limit`` states (default zeros); ``enable_lim`` and
    ``enable_integration`` (``None``: derived from ``flags``) OSDI's flags. ``xp``: ``numpy``
    (host arrays, used as they are) or ``jax.numpy`` (every leaf converted; traceable).

    Returns a dict with ``V``, ``labels``, ``init``, ``given``, ``extra``, ``temperature``,
    ``mfactor``, ``analysis``, ``enable_lim``, ``prev_state`` (and ``enable_integration``).
    """
    nb = np.shape(state.labels)[0]
    if xp is np:
        conv = dict  # host arrays go as they are
        one = lambda x: x  # noqa: E731
        ps = np.zeros((nb, num_states)) if prev_state is None else np.broadcast_to(
            np.asarray(prev_state, np.float64), (nb, num_states))
        lim = np.full(nb, bool(enable_lim))
        integ = None if enable_integration is None else np.full(nb, bool(enable_integration))
    else:
        conv = lambda d: {k: xp.asarray(v) for k, v in d.items()}  # noqa: E731
        one = xp.asarray
        ps = xp.zeros((nb, num_states)) if prev_state is None else xp.asarray(prev_state)
        lim = xp.broadcast_to(xp.asarray(enable_lim), (nb,))
        integ = None if enable_integration is None else xp.broadcast_to(
            xp.asarray(enable_integration, bool), (nb,))
    inp = {} if V is None else {"V": one(V)}
    inp.update(labels=one(state.labels), init=conv(state.init), given=conv(state.given),
               extra=conv(state.extra), temperature=one(state.temperature), mfactor=one(state.mfactor),
               analysis=xp.full((nb,), flags, xp.int32), enable_lim=lim, prev_state=ps)
    if integ is not None:
        inp["enable_integration"] = integ
    return inp


def tile_state(state: SetupState, nb: int) -> SetupState:
    """A setup state of one instance repeated ``nb`` times along the instance axis."""
    import jax

    rep = {k: jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x)[:1], (nb,) + np.shape(x)[1:]),
                                     state[k]) for k in PER_INSTANCE}
    return state._replace(batched=True, **rep)


class EvalOutput:
    """Result of :meth:`Model.eval` (arrays with the batch shape in front).

    ``residual_resist`` (…, n) A, ``residual_react`` (…, n) C, ``jacobian_resist`` (…, n, n) S,
    ``jacobian_react`` (…, n, n) F, ``lim_rhs_resist``/``lim_rhs_react`` (…, n): what OSDI's
    ``load_limit_rhs_*`` load, ``J·(v − v_lim)`` of the branches ``$limit`` limited (A resp. C; a
    simulator adds it to the residual: ``J·Δx = −(residual + lim_rhs)``), ``states`` (…, s): the
    ``$limit`` states for the next iteration.
    """

    def __init__(self, d: dict[str, Any]):
        self.scales = {k[6:]: v for k, v in d.items() if k.startswith("scale_")}
        self.residual_resist = d["residual_resist"]
        self.residual_react = d["residual_react"]
        self.jacobian_resist = d["jacobian_resist"]
        self.jacobian_react = d["jacobian_react"]
        self.lim_rhs_resist = d["lim_rhs_resist"]
        self.lim_rhs_react = d["lim_rhs_react"]
        self.states = d["states"]

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("scales")
        return d
