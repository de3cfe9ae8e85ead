"""Helpers for the OSDI tests: the C harness driver, comparisons, CLI subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from va2jax.simparams import DEFAULT_SIM_PARAMS, DEFAULT_SIM_PARAMS_STR

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# Physical constants of OpenVAF's constants.vams (NIST 1998 set, its default).
P_Q = 1.602176462e-19
P_K = 1.3806503e-23


def run_c(harness: Path, lib: Path, module, *, temp: float, params: dict, evals: list,
          sim_params: dict | None = None) -> dict:
    """Evaluate through the C harness. ``params``: name → value (routed by kind like the Python
    API); ``evals``: list of (flags, voltages, states). Returns per-eval dict of arrays + MAP."""
    sp = dict(DEFAULT_SIM_PARAMS, **(sim_params or {}))
    lines = [f"LIB {lib}", f"MOD {module.index}", f"TEMP {temp!r}",
             "SIM " + str(len(sp)) + " " + " ".join(f"{k} {float(v).hex()}" for k, v in sp.items()),
             "SIMSTR " + str(len(DEFAULT_SIM_PARAMS_STR)) + " " + " ".join(
                 f"{k} {v or '<empty>'}" for k, v in DEFAULT_SIM_PARAMS_STR.items())]
    for name, val in params.items():
        p = module.find_param(name)
        ty = p.type[0]
        sval = float(val).hex() if ty == "r" else str(val)
        lines.append(f"{'IP' if p.kind == 'instance' else 'MP'} {p.id} {ty} {sval}")
    real_opvars = [p for p in module.opvars if p.type in ("real", "int") and not p.length]
    lines.append("OPVARS " + str(len(real_opvars)) + " " + " ".join(str(p.id) for p in real_opvars))
    for flags, v, st in evals:
        lines.append(f"EVAL {flags} {len(v)} " + " ".join(float(x).hex() for x in v)
                     + f" {len(st)} " + " ".join(float(x).hex() for x in st))
    lines.append("END")
    r = subprocess.run([str(harness)], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out: list[dict] = []
    mapping = None
    cur: dict | None = None
    n = module.num_nodes
    for ln in r.stdout.splitlines():
        tag, *vals = ln.split()
        if tag == "MAP":
            mapping = [int(x) for x in vals]
        elif tag == "RET":
            cur = {"ret": int(vals[0])}
            out.append(cur)
        else:
            arr = np.array([float.fromhex(x) for x in vals], dtype=float)
            if tag in ("JR", "JQ"):
                arr = arr.reshape(n, n)
            cur[tag] = arr
    for o in out:
        o["opvar_names"] = [p.name for p in real_opvars]
        o["MAP"] = mapping
    return {"evals": out, "map": mapping}


def max_rel(a, b, floor: float) -> float:
    """max |a-b| / max(|b|, floor) over all entries (NaN-safe: NaN must match NaN)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape
    both_nan = np.isnan(a) & np.isnan(b)
    assert not np.any(np.isnan(a) ^ np.isnan(b)), "NaN pattern differs"
    d = np.where(both_nan, 0.0, np.abs(a - b))
    den = np.maximum(np.abs(b), floor)
    return float(np.max(d / den)) if d.size else 0.0


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m va2jax ...`` in a subprocess."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "src") + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          timeout=300, env=e)
