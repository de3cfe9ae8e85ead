"""The MOSFET fitting example recovers five BSIM4 parameters from OSDI-generated I_D curves.

Slow: tracing BSIM4's setup and eval with ``jacfwd`` takes one to three minutes on two loaded
cores, most of it before XLA compiles anything (see examples/fit_mosfet.py).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from va2jax._paths import corpus_dir

REPO = Path(__file__).resolve().parents[2]
FITTED = ("vth0", "u0", "vsat", "rdsw", "eta0")


@pytest.mark.slow
@pytest.mark.skipif(not (corpus_dir() / "bosdi" / "bsim4v8.va").is_file(),
                    reason="corpus not fetched (make corpus)")
def test_fit_mosfet_quick():
    res = subprocess.run([sys.executable, str(REPO / "examples" / "fit_mosfet.py"), "--quick"],
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if "rel err" in ln}
    assert sorted(rows) == sorted(FITTED)
    for _name, ln in rows.items():
        # columns: name, start, true (what the OSDI data was made with), fitted, "rel err", value
        _, start, true, fitted = ln.split()[:4]
        assert abs(float(true) - float(start)) > 0.1 * abs(float(true)), ln  # a real perturbation
        assert abs(float(fitted) - float(true)) <= 1e-6 * abs(float(true)), ln
