"""A singular Newton matrix during the operating point on the sparse path (``solver="klu"``).

KLU (klujax) stops the compiled program with an error where LAPACK returns non-finite values.
The operating point must instead go on to gmin and source stepping as VACASK does after any
failure of its plain solve (``lib/coreop.cpp``: homotopies after the initial op), and a final
failure must name the node involved. Expected values: the node that makes the matrix singular
by construction (a gate seen by nothing else; a resistor loop connected to the rest of the
circuit only through a gate), the same with the dense solver.
"""
from __future__ import annotations

import pytest

from va2jax.sim import Simulation
from va2jax.sim.engine import ConvergenceError

HEAD = """{title}
load "spice/mos1.osdi"
load "resistor.osdi"
model r resistor
model nmos sp_mos1 type=1 vto=0.5 kp=200u
model vsource vsource
v1 (d 0) vsource dc=1
r1 (d x) r r=1k
"""
TAIL = """control
  options solver="{solver}"
  analysis op1 op
endc
"""
# node g: only a MOSFET gate (no DC current) — an all-zero row, recognised before KLU
GATE = "m1 (x g 0 0) nmos w=1u l=1u\n"
# nodes p, q: two resistors in a loop seen only by a gate — no zero row, but KLU finds an exactly
# zero pivot (equilibrated values ±1) and raises; the second try solves in a host callback
ISLAND = "m1 (x p 0 0) nmos w=1u l=1u\nr2 (p q) r r=1k\nr3 (q p) r r=2k\n"


@pytest.mark.parametrize("solver", ["klu", "dense"])
@pytest.mark.parametrize("body, nodes", [(GATE, ("g",)), (ISLAND, ("p", "q"))])
def test_singular_op_steps_then_names_the_node(tmp_path, solver, body, nodes):
    p = tmp_path / "s.sim"
    p.write_text(HEAD.format(title="singular") + body + TAIL.format(solver=solver))
    sim = Simulation.from_file(p)
    with pytest.raises(ConvergenceError) as err:
        sim.run()
    msg = str(err.value)
    assert msg.startswith("operating point: singular matrix"), msg
    assert any(f"'{nd}'" in msg for nd in nodes), msg
    # the plain solve (1 iteration: the first update is NaN) was followed by gmin stepping
    # (11 shunt steps, each at least one iteration) and source stepping
    assert sim.engine.iterations > 12, sim.engine.iterations


@pytest.mark.parametrize("solver", ["klu", "dense"])
def test_singular_transient_names_the_node_and_keeps_the_points(tmp_path, solver):
    """The island again, in a transient from ``icmode="uic"`` (no operating point): KLU stops the
    compiled loop (klujax's error) — the chunk is run again with the solve in a host callback,
    so the singular step fails as the dense path's does; the error names the unknown, the step
    and the Newton iteration, and the output file holds the points before it (t = 0 only)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from va2jax.sim.rawfile import read_raw

    p = tmp_path / "s.sim"
    p.write_text(HEAD.format(title="singular") + ISLAND + TAIL.format(solver=solver).replace(
        "analysis op1 op", 'analysis tran1 tran stop=1u step=10n icmode="uic"'))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.run([sys.executable, "-m", "va2jax", "sim", str(p), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("va2jax: error: transient tran1: singular matrix (involving"), line
    assert ("'p'" in line or "'q'" in line) and "Newton iteration 1 of the step from t=0 s" in line
    assert "1 point up to t=0 s kept in" in line, line
    r = read_raw(tmp_path / "tran1.raw")[0]
    assert r.data.shape[0] == 1 and r.data[0, r.names.index("time")].real == 0.0
