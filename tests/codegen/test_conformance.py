"""Generated JAX code vs the OSDI library (openvaf-r) for the simple models: corpus and our own.

Each case runs :func:`va2jax.validate.validate_file` (≥ 100 points × ≥ 3 parameter sets, pass at
1e-12 relative) and checks, on the OSDI reference, that the compared outputs are not trivially
zero (a model whose outputs vanish would pass any comparison).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VA_DIR = Path(__file__).resolve().parents[1] / "data" / "va"  # our own Verilog-A test models


REPO = Path(__file__).resolve().parents[2]

# (id, file relative to the corpus's bosdi folder or "own:<file>", params, non-zero outputs:
#  "r" resistive, "q" reactive)
CASES = [
    ("resistor", "resistor.va", {"r": 150.0}, "r"),
    ("capacitor", "capacitor.va", {"c": 2e-12}, "q"),
    ("inductor", "inductor.va", {"l": 1e-9}, "rq"),
    ("diode", "diode.va", {"Rs": 5.0, "Cjo": 1e-12, "TT": 1e-9}, "rq"),
    ("diode-rs0", "diode.va", {"Rs": 0.0, "Cjo": 1e-12}, "rq"),
    ("spice-diode", "spice/diode.va", {"rs": 10.0, "cjo": 2e-12, "tt": 1e-9}, "rq"),
    # m (grading coefficient) next to $mfactor: regression test, m was taken as the mfactor
    ("spice-diode-rs0", "spice/diode.va", {"rs": 0.0, "cjo": 2e-12, "tt": 1e-9, "m": 0.4, "$mfactor": 1.5}, "rq"),
    ("spice-sn-diode", "spice/sn/diode.va", {"rs": 10.0, "cjo": 2e-12, "tt": 1e-9}, "rq"),
    ("spice-full-diode", "spice/full/diode.va", {"rs": 10.0, "cjo": 2e-12, "tt": 1e-9}, "rq"),
    ("spice-sn-diode-rs0", "spice/sn/diode.va", {"cjo": 2e-12, "tt": 1e-9}, "rq"),
    ("spice-full-diode-rs0", "spice/full/diode.va", {"cjo": 2e-12, "tt": 1e-9}, "rq"),
    ("own-mathfuncs", "own:mathfuncs.va", {"c0": 2e-12}, "rq"),
    ("own-control", "own:control.va", {"type": "p", "r2": 500.0, "mode": 2, "order": 5}, "rq"),
    ("own-control-default", "own:control.va", {"mode": 1}, "rq"),
    ("own-control-case3", "own:control.va", {"type": "n", "mode": 3, "r2": 100.0, "vmax": 0.1}, "rq"),
    ("own-nodes", "own:nodes.va", {"rs": 10.0}, "rq"),
    ("own-nodes-rs0", "own:nodes.va", {"rs": 0.0}, "rq"),
]


def _path(rel: str, corpus_dir: Path | None) -> Path:
    if rel.startswith("own:"):
        return VA_DIR / rel[4:]
    assert corpus_dir is not None
    return corpus_dir / rel


@pytest.mark.parametrize("rel,params,nonzero",
                         [pytest.param(*c[1:], id=c[0]) if type(c) is tuple else c for c in CASES])
def test_validates_against_osdi(rel, params, nonzero, request):
    from va2jax.osdi import compile_va_to_osdi, eval_batch, load_library
    from va2jax.validate import validate_file
    from va2jax.validate._compare import random_voltages

    corpus_dir = None if rel.startswith("own:") else request.getfixturevalue("corpus")
    path = _path(rel, corpus_dir)
    res = validate_file(path, points=100, param_sets=3, seed=1, params=params,
                        reference_opt_level=0)
    assert len(res.param_sets) >= 3 and res.points >= 300
    assert res.passed, (res.max_rel_err, res.max_abs_err, res.worst)
    assert all(v <= 1e-12 for v in res.max_rel_err.values()), res.max_rel_err

    # not trivially zero: the reference outputs at the base parameters
    mod = load_library(compile_va_to_osdi(path, opt_level=0)).module(res.module)
    rng = np.random.default_rng(3)
    V = random_voltages(["BranchCurrent" if n.units == "A" else "node" for n in mod.nodes], 32, rng)
    ref = eval_batch(mod, V, params)
    if "r" in nonzero:
        assert np.abs(ref["residual_resist"]).max() > 0 and np.abs(ref["jacobian_resist"]).max() > 0
    if "q" in nonzero:
        assert np.abs(ref["residual_react"]).max() > 0 and np.abs(ref["jacobian_react"]).max() > 0


def test_collapse_changes_topology(corpus):
    """rs = 0 collapses the internal node (its row/column vanish); rs > 0 keeps it: both validated above."""
    from va2jax import compile_va

    m = compile_va(VA_DIR / "nodes.va")
    V = np.array([0.3, 0.2, 0.0, 0.25, 0.1, 1e-4])[: len(m.nodes)]
    ai = m.nodes.index("ai")
    on = m.eval(m.setup({"rs": 0.0}), V)
    off = m.eval(m.setup({"rs": 10.0}), V)
    assert np.all(np.asarray(on.jacobian_resist)[ai] == 0) and np.asarray(off.jacobian_resist)[ai, ai] != 0


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_validate_cli_json_and_exit_code():
    r = _cli("validate", str(VA_DIR / "nodes.va"), "--points", "20", "--param-sets", "2",
             "--param", "rs=3", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    for key in ("module", "points", "max_rel_err", "max_abs_err", "passed"):
        assert key in obj, obj.keys()
    assert obj["module"] == "va2jax_nodes" and obj["points"] == 40 and obj["passed"] is True
    assert set(obj["max_rel_err"]) == {"residual_resist", "residual_react", "jacobian_resist",
                                       "jacobian_react"}
    assert max(obj["max_rel_err"].values()) <= 1e-12


def test_validate_cli_exit_code_on_failure(monkeypatch):
    """A failed comparison exits 1 (the tolerance is forced to a negative value in-process)."""
    from va2jax import cli
    from va2jax.validate import _compare

    monkeypatch.setattr(_compare, "REL_TOL", -1.0)
    assert cli.main(["validate", str(VA_DIR / "nodes.va"), "--points", "8", "--param-sets", "1"]) == 1
