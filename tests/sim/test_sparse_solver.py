"""Newton's sparse linear solver (``options solver="klu"``, KLU through klujax) gives the dense
LU's waveforms. The dense path is the one checked against VACASK and ngspice (test_circuits.py)."""
from __future__ import annotations

import numpy as np
from sim_peers import CIRCUITS

from va2jax.sim import Simulation


def _ladder(n: int, solver: str) -> str:
    lines = [f"RC ladder, {n} sections", 'load "resistor.osdi"', 'load "capacitor.osdi"',
             "model r resistor", "model c capacitor", "model vsource vsource",
             'vs (n0 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=0 rise=1u fall=1u width=20u period=40u']
    for k in range(n):
        lines += [f"r{k} (n{k} n{k + 1}) r r=1k", f"c{k} (n{k + 1} 0) c c=1n"]
    lines += ["control", f'  options tran_method="trap" solver="{solver}"',
              "  analysis tran1 tran step=0.5u stop=60u maxstep=2u", "endc", ""]
    return "\n".join(lines)


def _run(tmp_path, text: str, name: str):
    p = tmp_path / name
    p.write_text(text)
    return Simulation.from_file(p).run()["tran1"]


def _same(a, b, tol: float) -> None:
    """Same accepted time points (to rounding: the step control sees last-bit differences) and
    node voltages within ``tol`` (V)."""
    assert len(a.scale) == len(b.scale)
    np.testing.assert_allclose(b.scale, a.scale, rtol=1e-12, atol=0)
    assert np.max(np.abs(a.data - b.data)) <= tol


def test_klu_ladder_matches_dense(tmp_path):
    dense = _run(tmp_path, _ladder(40, "dense"), "dense.sim")
    klu = _run(tmp_path, _ladder(40, "klu"), "klu.sim")
    _same(dense, klu, 1e-9)
    assert np.max(dense["n10"]) > 0.05  # the pulse travelled down the ladder: not a trivial run


def test_klu_rc_example_matches_dense(tmp_path):
    text = (CIRCUITS / "rc.sim").read_text()
    dense = _run(tmp_path, text, "rc_dense.sim")
    klu = _run(tmp_path, text.replace('options tran_method="trap"', 'options tran_method="trap" solver="klu"'),
               "rc_klu.sim")
    _same(dense, klu, 1e-12)


def test_klu_in_batched_sweep(tmp_path):
    from va2jax.sim import sweep

    p = tmp_path / "ladder.sim"
    p.write_text(_ladder(8, "klu"))
    r = np.array([500.0, 1e3, 2e3])
    batched = sweep(p, {"r3.r": r}, ("op", "tran"), mode="vmap")
    p2 = tmp_path / "ladder_dense.sim"
    p2.write_text(_ladder(8, "dense"))
    ref = sweep(p2, {"r3.r": r}, ("op", "tran"), mode="vmap")
    np.testing.assert_allclose(batched["op"].x, ref["op"].x, rtol=0, atol=1e-12)
    a, b = ref["tran"], batched["tran"]
    assert np.array_equal(a.npoints, b.npoints)
    np.testing.assert_allclose(np.nan_to_num(b.x), np.nan_to_num(a.x), rtol=0, atol=1e-12)


def test_klu_singular_matrix_is_recognised():
    """KLU stops on a singular matrix (LAPACK returns NaN instead); the simulator recognises the
    error so that a singular Newton matrix is handled the same way with both solvers."""
    import jax
    import jax.numpy as jnp
    import klujax
    import pytest

    from va2jax.sim.analysis import is_singular_error

    Ai = jnp.array([0, 0, 1, 1], dtype=jnp.int32)
    Aj = jnp.array([0, 1, 0, 1], dtype=jnp.int32)
    with pytest.raises(jax.errors.JaxRuntimeError) as err:
        jax.block_until_ready(klujax.solve(Ai, Aj, jnp.ones(4, jnp.float64), jnp.array([1.0, 2.0])))
    assert is_singular_error(err.value)
    assert not is_singular_error(RuntimeError("some other failure"))
