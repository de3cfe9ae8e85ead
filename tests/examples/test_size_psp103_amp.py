"""The PSP103 sizing example reaches its target gain and bias (examples/size_psp103_amp.py, quick
form) from W and R_D 30 % and 20 % off.

Slow: a subprocess that builds PSP103 and compiles the transient's sensitivities (docs/sim.md,
"Differentiable analyses", for the time it takes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_size_psp103_amp_quick():
    res = subprocess.run([sys.executable, str(REPO / "examples" / "size_psp103_amp.py"), "--quick"],
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "rel err" in ln]
    assert len(lines) == 2
    for ln in lines:
        assert float(ln.split("rel err")[1]) <= 1e-6, ln  # the bound
