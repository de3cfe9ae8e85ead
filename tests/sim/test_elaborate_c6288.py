"""VACASK's ``elaborate circuit(...)`` (issue 17/20), ``global`` nodes, and the sparse path on
a PSP103 inverter chain — each compared with VACASK's rawfile for the same netlist."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_peers import run_vacask

from va2jax.sim import Simulation

ROOT = Path(__file__).resolve().parents[2]
C6288 = ROOT / "tests" / "data" / "vacask_suite" / "c6288" / "vacask"

# two top-level subcircuits elaborated in turn, then the first again: the three operating
# points differ (VACASK: mid = 0.6 V, 0.635 V, 0.6 V); x1 inside "third" is a nested instance
# whose terminal joins the unprefixed node mid, vdd is a global node
ELAB = """elaborate test
load "spice/resistor.osdi"
model r sp_resistor
model v vsource
parameters vdd=1.2
global vdd
ground 0
vsup (vdd 0) v dc=vdd
subckt half()
  r1 (vdd mid) r r=1k
  r2 (mid 0) r r=1k
ends
subckt third()
  parameters rt=2k
  r1 (vdd mid) r r=rt
  r2 (mid 0) r r=1k
  x1 (mid) load1
ends
subckt load1(n)
  r1 (vdd n) r r=1k
  r2 (n 0) r r=3k
ends
control
  save v(mid) v(vdd)
  elaborate circuit("half")
  analysis op1 op
  elaborate circuit("third")
  analysis op2 op
  elaborate circuit("half")
  analysis op3 op
endc
"""


def test_elaborate_matches_vacask(tmp_path):
    p = tmp_path / "el.sim"
    p.write_text(ELAB)
    ours = Simulation.from_file(p).run()
    mids = []
    for name in ("op1", "op2", "op3"):
        ref = run_vacask(p, tmp_path, name)
        res = ours[name]
        for vec in ref.names:  # same vectors as VACASK saves, values to rounding (linear op)
            v = res[vec][0]
            np.testing.assert_allclose(v, ref.data[0, ref.names.index(vec)], rtol=1e-9, atol=0)
        mids.append(res["mid"][0])
    assert mids[0] != mids[1] and mids[0] == mids[2]  # op2 is a different circuit


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "va2jax.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("bad, msg", [
    ('elaborate circuit("halve")', "el.sim:25: elaborate: no subcircuit named 'halve'"),
    ('elaborate circuit("load1")', "el.sim:25: elaborate: subcircuit load1 has terminals"),
    ("elaborate half", "el.sim:25: elaborate needs circuit(\"name\", ...)"),
])
def test_elaborate_bad_name_is_one_line_error(tmp_path, bad, msg):
    p = tmp_path / "el.sim"
    p.write_text(ELAB.replace('elaborate circuit("half")', bad, 1))
    r = _cli("sim", str(p), "--no-progress")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and msg in r.stderr, r.stderr


def test_elaborate_duplicate_instance_names(tmp_path):
    p = tmp_path / "el.sim"  # VACASK: "An instance with name 'r1' already exists."
    p.write_text(ELAB.replace('elaborate circuit("third")', 'elaborate circuit("half", "third")'))
    r = _cli("sim", str(p), "--no-progress")
    assert r.returncode == 2 and "an instance named 'r1' already exists" in r.stderr, r.stderr


def chain_netlist(stages: int, stop: str = "0.6n", extra: str = "", icmode: str = "op",
                  maxstep: str = "2p") -> str:
    """A chain of ``stages`` PSP103 inverters (the c6288 gates and models) driven by a pulse,
    starting from the operating point (with ``uic`` every node starts at 0 V and the chain's
    start-up is metastable: its outcome depends on the first steps each simulator takes).
    ``maxstep`` bounds both simulators' steps: their step controls differ (va2jax's LTE test on
    the charges lets a gate's ~10 ps edge pass in one step), the comparison is of the circuit
    equations and their solution."""
    lines = ["PSP103 inverter chain", 'load "psp103v4.osdi"', 'include "models.inc"',
             "model v vsource", "parameters vdd=1.2", "global vdd vss", "ground 0",
             "subckt not(out in)", "  mp (out in vdd vdd) pmos w=1u l=0.2u",
             "  mn (out in vss vss) nmos w=0.5u l=0.2u", "ends",
             "vdd (vdd 0) v dc=vdd", "vss (vss 0) v dc=0",
             'vin (n0 0) v type="pulse" val0=0 val1=vdd delay=0.05n rise=20p fall=20p width=0.2n']
    lines += [f"x{k} (n{k + 1} n{k}) not" for k in range(stages)]
    lines += ["control", f"  options tran_lteratio=1.5 {extra}",
              f"  save v(n0) v(n1) v(n{stages // 2}) v(n{stages})",
              f'  analysis tran1 tran stop={stop} step=2p maxstep={maxstep} icmode="{icmode}"', "endc", ""]
    return "\n".join(lines)


def _crossings(t: np.ndarray, y: np.ndarray, level: float = 0.6) -> np.ndarray:
    """Times where ``y`` crosses ``level`` (linear interpolation between points)."""
    s = np.sign(y - level)
    k = np.where(s[:-1] * s[1:] < 0)[0]
    return t[k] + (level - y[k]) * (t[k + 1] - t[k]) / (y[k + 1] - y[k])


def test_psp103_chain_sparse_matches_vacask(tmp_path):
    """50 PSP103 inverters on the sparse path (KLU) vs VACASK, 1.2 ns: the pulse's two edges
    reach every saved node at the same times (Vdd/2 crossings within 1 ps — a tenth of one
    gate's delay: the two simulators' trapezoidal steps differ, VACASK takes about twice as
    many), and the settled end values agree within 10 mV (issue 17's criterion)."""
    (tmp_path / "models.inc").write_text((C6288 / "models.inc").read_text())
    ref_p = tmp_path / "chain.sim"
    ref_p.write_text(chain_netlist(50, stop="1.2n"))
    ref = run_vacask(ref_p, tmp_path, "tran1")
    ours_p = tmp_path / "chain_klu.sim"
    ours_p.write_text(chain_netlist(50, stop="1.2n", extra='solver="klu"'))
    sim = Simulation.from_file(ours_p)
    assert sim.engine.sparse
    res = sim.run()["tran1"]
    t_ref = ref.data[:, ref.names.index("time")]
    edges = 0
    for name in ref.names:
        if name == "time":
            continue
        y_ref = ref.data[:, ref.names.index(name)]
        c_ref, c_ours = _crossings(t_ref, y_ref), _crossings(res.scale, res[name])
        assert len(c_ref) == len(c_ours) == 2, (name, c_ref, c_ours)
        assert np.max(np.abs(c_ref - c_ours)) <= 1e-12, (name, c_ref, c_ours)
        assert abs(res[name][-1] - y_ref[-1]) <= 10e-3, name
        edges += len(c_ref)
    assert edges == 8  # n0, n1, n25, n50: each saw the pulse go up and down


def test_sparse_singular_and_fill_helpers():
    """The sparse path's diagnostics on matrices whose answer is known by construction."""
    from va2jax.sim.sparse import fill_estimate, singular_unknowns, structural_singularity

    # tridiagonal n×n: 3n − 2 entries, factors of (nearly) the same size — the natural order
    # has no fill, COLAMD (not optimal on a band) may add a few entries; a dense n×n would be n²
    n = 200
    r = np.r_[np.arange(n), np.arange(1, n), np.arange(n - 1)]
    c = np.r_[np.arange(n), np.arange(n - 1), np.arange(1, n)]
    nnz, lu = fill_estimate(r, c, n)
    assert nnz == 3 * n - 2 and 3 * n - 2 <= lu <= 3 * n + 10
    # unknown 2 appears in no equation (an empty column) and row 3 has no entry: structurally
    # singular, whatever the values
    Ai = np.array([0, 1, 1, 2, 0])
    Aj = np.array([0, 1, 3, 1, 3])
    rows, cols = structural_singularity(Ai, Aj, 4)
    assert cols == [2] and rows
    assert singular_unknowns(Ai, Aj, np.ones(5), 4) == [2]
    # numerically singular: two equal rows of a full pattern; the small pivot names an unknown
    Ai = np.array([0, 0, 1, 1])
    Aj = np.array([0, 1, 0, 1])
    assert len(singular_unknowns(Ai, Aj, np.array([1.0, 2.0, 1.0, 2.0]), 2)) == 1
