"""User mistakes give one-line errors with file and line, exit status 2, no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAD = 'bad\nload "resistor.osdi"\nload "capacitor.osdi"\nmodel r resistor\nmodel c capacitor\nmodel vsource vsource\n'
TAIL = "control\n  analysis op1 op\nendc\n"


def _run(tmp_path: Path, body: str, name: str = "bad.sim") -> subprocess.CompletedProcess:
    p = tmp_path / name
    p.write_text(body)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "va2jax", "sim", str(p), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("body, needle", [
    (HEAD + "v1 (a 0) vsource dc=1\nr1 (a 0) rr r=1k\n" + TAIL, "bad.sim:8: instance r1: unknown model or device 'rr'"),
    (HEAD + "v1 (a 0) vsource dc=1\nr1 (a 0) r rr=1k\n" + TAIL, "bad.sim:8: instance r1: unknown parameter 'rr'"),
    (HEAD + "v1 (a 0) vsource dc=1\nr1 (a b) r r=1k\nc1 (b c) c c=1p\n" + TAIL, "node 'c' is floating"),
    (HEAD + "v1 (a 0) vsource dc=1\nv2 (a 0) vsource dc=2\n" + TAIL, "voltage-source loop: v1, v2"),
    (HEAD + 'include "nothere.inc"\n' + TAIL, "bad.sim:7: included file 'nothere.inc' not found"),
    (HEAD + "v1 (a 0) vsource dc=1\nr1 (a 0) r r=2*k\n" + TAIL, "unknown parameter 'k'"),
    (HEAD + 'load "nosuch.osdi"\n' + TAIL, "bad.sim:7: OSDI library 'nosuch.osdi' not found"),
    (HEAD + "v1 (a 0) vsource dc=1\nr1 (a 0) r r=1k\ncontrol\n  options solver=\"lu\"\n  analysis op1 op\nendc\n",
     "option solver: unknown linear solver 'lu' (auto, dense, klu)"),
])
def test_bad_input(tmp_path, body, needle):
    proc = _run(tmp_path, body)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_missing_netlist(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "va2jax", "sim", str(tmp_path / "none.sim")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_newton_failure_reports_iterations_and_node(tmp_path):
    # 1 A forced into a reverse-biased diode: the solution lies near -1e12 V (gmin only); the
    # operating point's last, unclipped Newton solve reaches it in 3 iterations (VACASK: -1e12 V),
    # so with 2 iterations a solve no phase converges
    body = ('bad\nload "spice/diode.osdi"\nmodel vsource vsource\nmodel isource isource\n'
            "model d sp_diode is=1e-14\n"
            "i1 (0 a) isource dc=-1\n"
            "d1 (a 0) d\n"
            "control\n  options op_itl=2\n  analysis op1 op\nendc\n")
    proc = _run(tmp_path, body)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("va2jax: error:") and "did not converge after" in line \
        and "largest residual at 'a'" in line, line


@pytest.mark.parametrize("value", [0, -0.1, 0.6])
def test_first_step_fraction_out_of_range(value):
    """``tran_fs`` (VACASK: the first step's fraction of ``min(step, maxstep, …)``, 0 < x ≤ 0.5):
    0 would never leave t = 0; refused by name."""
    from va2jax.errors import Va2JaxError
    from va2jax.sim import Options

    with pytest.raises(Va2JaxError, match="option tran_fs"):
        Options.from_dict({"tran_fs": value})
    assert Options.from_dict({"tran_fs": 0.5}).tran_fs == 0.5


def test_transient_failure_keeps_the_points_before_it(tmp_path):
    # the diode of the test above, its 1 A arriving at 0.5 µs: every step from there fails (the
    # node heads for -1e12 V, 2 V per Newton iteration), down to the smallest step; the points
    # before 0.5 µs must be in the output file, and the error must say when and where
    from va2jax.sim.rawfile import read_raw

    body = ('bad\nload "spice/diode.osdi"\nmodel isource isource\n'
            "model d sp_diode is=1e-14\n"
            'i1 (0 a) isource type="pulse" val0=0 val1=-1 delay=0.5u rise=1n\n'
            "d1 (a 0) d\n"
            "control\n  analysis tran1 tran stop=1u step=10n\nendc\n")
    proc = _run(tmp_path, body)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("va2jax: error: transient tran1: Newton did not converge at t=5e-07 s")
    assert "largest residual at 'a'" in line and "kept in" in line and "tran1.raw" in line, line
    r = read_raw(tmp_path / "tran1.raw")[0]
    t = r.data[:, r.names.index("time")].real
    # every point before the current arrives (the pulse starts at 0.5 µs, a breakpoint), and
    # maybe one a few smallest steps after it, where Newton converged again
    assert len(t) > 10 and t[0] == 0.0 and t[-1] <= 0.5e-6 * (1 + 1e-12), t
    # no current before 0.5 µs: the diode sits at 0 V (Shockley: I = 0 ⇔ V = 0)
    assert np.all(np.abs(r.data[t <= 0.5e-6, r.names.index("a")].real) < 1e-9)
