"""The fitting example recovers IS, N, RS of the SPICE diode from OSDI-generated I–V data."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from va2jax._paths import corpus_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (corpus_dir() / "bosdi").is_dir(), reason="corpus not fetched (make corpus)")
def test_fit_diode_quick():
    res = subprocess.run([sys.executable, str(REPO / "examples" / "fit_diode.py"), "--quick"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "rel err" in ln]
    assert len(lines) == 3
    for ln in lines:
        assert float(ln.split("rel err")[1]) <= 1e-6, ln
