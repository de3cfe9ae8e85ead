"""The ctypes path against an independent C evaluation path (tests/osdi/c/osdi_harness.c).

Same library, same parameters and operating points; the C side collapses nodes itself and loads
Jacobians through the ``load_jacobian_*`` pointer path while Python uses
``write_jacobian_array_*``. Agreement is required to 1e-14 relative (absolute floor 1e-300).
"""
from __future__ import annotations

import numpy as np
import pytest
from osdi_testutil import max_rel, run_c

from va2jax.osdi import flags as F
from va2jax.osdi import load_library

TOL = 1e-14
FLOOR = 1e-300
CALC = F.CALC_RESIST_RESIDUAL | F.CALC_REACT_RESIDUAL | F.CALC_RESIST_JACOBIAN | \
    F.CALC_REACT_JACOBIAN | F.CALC_OP | F.CALC_RESIST_LIM_RHS | F.CALC_REACT_LIM_RHS
DC = CALC | F.ANALYSIS_DC
TRAN = CALC | F.ANALYSIS_TRAN
LIM = F.ENABLE_LIM

AGREEMENT: dict[str, float] = {}


def _compare(mod_dir, harness, relpath, params, *, vlo, vhi, npts, flags_list, temps=(300.15,),
             seed=0, state_scale=0.0):
    lib = load_library(mod_dir / relpath)
    m = lib.module()
    rng = np.random.default_rng(seed)
    worst = 0.0
    nonzero = 0
    limited = 0
    for temp in temps:
        evals = []
        for k in range(npts):
            v = rng.uniform(vlo, vhi, m.num_nodes)
            st = rng.uniform(-state_scale, state_scale, m.num_states)
            evals.append((flags_list[k % len(flags_list)], v, st))
        c = run_c(harness, lib.path, m, temp=temp, params=params, evals=evals)
        inst = m.instance(params, temperature=temp)
        assert list(inst.node_mapping) == [(-1 if x == m.num_nodes else x) for x in c["map"]]
        for (fl, v, st), ce in zip(evals, c["evals"]):
            r = inst.eval(v, states=st, flags=fl)
            assert r.flags.raw == ce["ret"]
            nonzero += int(np.any(r.residual_resist != 0) or np.any(r.residual_react != 0))
            limited += int(r.flags.limited)
            pairs = [(r.residual_resist, ce["RR"]), (r.residual_react, ce["RQ"]),
                     (r.lim_rhs_resist, ce["LR"]), (r.lim_rhs_react, ce["LQ"]),
                     (r.jacobian_resist, ce["JR"]), (r.jacobian_react, ce["JQ"]),
                     (r.next_states, ce["NS"]),
                     ([float(r.opvars[nm]) for nm in ce["opvar_names"]], ce["OP"])]
            for a, b in pairs:
                worst = max(worst, max_rel(a, b, FLOOR))
    assert nonzero > 0, "all evaluations were trivially zero"
    if any(fl & LIM for fl in flags_list) and m.library.lim_functions:
        assert limited > 0, "limiting was enabled but never applied"
    AGREEMENT[relpath] = worst
    print(f"{relpath}: max relative difference vs C = {worst:.3g}")
    assert worst <= TOL
    return worst


def test_resistor_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "resistor.osdi", {"r": 1234.5}, vlo=-5, vhi=5, npts=20,
             flags_list=[DC, TRAN], temps=(250.0, 300.15))


def test_capacitor_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "capacitor.osdi", {"c": 3.3e-12}, vlo=-5, vhi=5, npts=20,
             flags_list=[DC, TRAN])


def test_inductor_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "inductor.osdi", {"l": 2.2e-6}, vlo=-1, vhi=1, npts=20,
             flags_list=[DC, TRAN])


@pytest.mark.parametrize("rs", [0.0, 12.5])
def test_diode_vs_c(mod_dir, harness, rs):
    _compare(mod_dir, harness, "diode.osdi",
             {"is": 2e-14, "n": 1.05, "rs": rs, "cjo": 1e-12, "tt": 1e-9, "bv": 20.0, "area": 1.5},
             vlo=-1.0, vhi=0.9, npts=30, flags_list=[DC, TRAN], temps=(280.0, 350.0), seed=1)


def test_spice_diode_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "spice/diode.osdi", {"is": 1e-14, "rs": 3.0, "cjo": 2e-12},
             vlo=-1.0, vhi=0.9, npts=20, flags_list=[DC, TRAN, DC | LIM], seed=2, state_scale=0.8)


def test_vbic_vs_c_with_limiting(mod_dir, harness):
    """VBIC uses $limit(pnjlim / limitlog): exercises the OSDI_LIM_TABLE callbacks."""
    _compare(mod_dir, harness, "vbic_1p3.osdi", {"rth": 100.0, "re": 1.0, "rbx": 5.0},
             vlo=-0.5, vhi=1.0, npts=24, flags_list=[DC, DC | LIM, TRAN | LIM, DC | LIM | F.INIT_LIM],
             seed=3, state_scale=1.0)


def test_psp103_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "psp103v4.osdi", {"type": 1, "w": 1e-6, "l": 1e-7},
             vlo=-0.3, vhi=1.2, npts=10, flags_list=[DC, TRAN], seed=4)


def test_psp103_vs_c_many(mod_dir, harness):
    _compare(mod_dir, harness, "psp103v4.osdi", {"type": -1, "w": 2e-6, "l": 5e-7},
             vlo=-1.2, vhi=0.3, npts=200, flags_list=[DC, TRAN], temps=(250.0, 400.0), seed=5)


def test_bsim4_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "bsim4v8.osdi", {}, vlo=-0.3, vhi=1.2, npts=10,
             flags_list=[DC, TRAN], seed=6)


def test_spice_bsim4_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "spice/bsim4v8.osdi", {}, vlo=-0.3, vhi=1.2, npts=10,
             flags_list=[DC, TRAN, DC | LIM], seed=7, state_scale=1.0)


def test_jfet2_vs_c_pointer_fallback(mod_dir, harness):
    """A library whose Jacobian-array layout is ambiguous (Python falls back to pointers)."""
    _compare(mod_dir, harness, "spice/full/jfet2.osdi", {}, vlo=-1.0, vhi=1.0, npts=10,
             flags_list=[DC, TRAN], seed=8)


def test_bsimbulk_vs_c(mod_dir, harness):
    _compare(mod_dir, harness, "bsimbulk106.osdi", {}, vlo=-0.3, vhi=1.2, npts=6,
             flags_list=[DC, TRAN], seed=9)
