"""The transient fitting example recovers the SPICE diode's IS and N from a Graetz-bridge waveform
(examples/fit_graetz_transient.py, quick form), starting 30 % and 20 % off."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_fit_graetz_transient_quick():
    res = subprocess.run([sys.executable, str(REPO / "examples" / "fit_graetz_transient.py"), "--quick"],
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "rel err" in ln]
    assert len(lines) == 2
    for ln in lines:
        assert float(ln.split("rel err")[1]) <= 1e-6, ln  # the bound
