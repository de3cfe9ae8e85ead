"""``$limit``: limiting RHS and states of generated models against the OSDI library.

OSDI's ``load_limit_rhs_*`` load ``J·(v − v_lim)`` of the branches a ``$limit`` call limited (the
simulator adds it to the residual), and ``next_state`` holds the limited values. The generated
model must give the same numbers, sign included. Expected values: the OSDI library compiled from
the same source, evaluated with ``ENABLE_LIM`` and the same previous states.
"""
from __future__ import annotations

import numpy as np
import pytest

from va2jax import compile_va
from va2jax.osdi import DEFAULT_CALC, compile_va_to_osdi, load_library
from va2jax.osdi import flags as S


@pytest.mark.parametrize("rel, params", [
    ("spice/diode.va", {"is": 1e-14, "rs": 1.0}),
    ("spice/mos1.va", {"vto": 0.7, "kp": 1e-4}),
])
def test_limiting_rhs_and_states_match_osdi(corpus, rel, params):
    va = corpus / "bosdi" / rel
    model = compile_va(va)
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(model.name)
    assert model.num_states == omod.num_states > 0
    onames = list(omod.node_names)
    cols = [onames.index(nm) for nm in model.nodes]  # generated node order in the library's
    inst = omod.model(params).instance({}, temperature=300.15)
    state = model.setup(params, temperature=300.15)
    rng = np.random.default_rng(7)
    limited = 0
    for _ in range(40):
        v = np.zeros(len(onames))
        v[cols] = rng.uniform(-1.0, 4.0, len(cols))
        prev = rng.uniform(-0.5, 1.0, omod.num_states)
        ref = inst.eval(v, states=prev, calc=DEFAULT_CALC | S.ENABLE_LIM, analysis=S.ANALYSIS_TRAN)
        got = model.eval(state, v[cols], analysis="tran", prev_state=prev, enable_lim=True)
        for name, a, b in (("lim_rhs_resist", got.lim_rhs_resist, ref.lim_rhs_resist[cols]),
                           ("lim_rhs_react", got.lim_rhs_react, ref.lim_rhs_react[cols]),
                           ("states", got.states, ref.next_states),
                           ("residual_resist", got.residual_resist, ref.residual_resist[cols])):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-300, err_msg=name)
        limited += bool(np.any(ref.lim_rhs_resist != 0))
    assert limited >= 10  # the random points do exercise the limiting
