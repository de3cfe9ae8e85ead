"""The PSP103 sizing example (examples/size_psp103_amp.py, quick form) reaches its target
output bias, low-frequency gain and bandwidth (figures of W = 2 µm, L = 0.2 µm, R_D = 5 kΩ) from
W, L and R_D 30 %, 25 % and 20 % off.

A subprocess that builds PSP103 (cached) and compiles the operating point and AC analysis with
their forward-mode derivatives (docs/sim.md, "Differentiable analyses", for the time it takes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_size_psp103_amp_quick():
    res = subprocess.run([sys.executable, str(REPO / "examples" / "size_psp103_amp.py"), "--quick"],
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "rel err" in ln]
    assert len(lines) == 3
    for ln in lines:
        assert float(ln.split("rel err")[1]) <= 1e-6, ln  # the bound
