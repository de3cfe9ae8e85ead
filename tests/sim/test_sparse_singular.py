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
