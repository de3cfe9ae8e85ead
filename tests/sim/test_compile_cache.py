"""The simulator's compiled loops in JAX's persistent compilation cache, across processes.

A second process simulating the same netlist must find the operating point's and the
transient's programs in the cache (their HLO — native kernels' FFI target names included — is
the same in every process), and a changed element value must not reuse a program compiled for
the old one (the values are constants in the HLO, so the key differs). Expected waveforms come
from the RC formula, not from a first run.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NET = """RC step
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model r resistor
model c capacitor
model vsource vsource
model dm sp_diode ( is=1e-14 )
vs (in 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=0 rise=1n fall=1n width=1 period=2
r1 (in out) r r={r}
c1 (out 0) c c=1u
d1 (0 out) dm
control
  analysis tran1 tran step=1u stop=2m maxstep=10u
endc
"""

CHILD = r"""
import json, sys
from jax import monitoring
hits = []
monitoring.register_event_listener(
    lambda e, **kw: hits.append(1) if e == "/jax/compilation_cache/cache_hits" else None)
from va2jax.sim import Simulation
import numpy as np
res = Simulation.from_file(sys.argv[1]).run()["tran1"]
t = np.asarray(res.scale)
i = int(np.argmin(np.abs(t - 1e-3)))
print(json.dumps({"hits": len(hits), "t": float(t[i]), "v": float(res["out"][i])}))
"""


def _run(net: Path, cache: Path) -> dict:
    env = dict(os.environ, VA2JAX_CACHE=str(cache), VA2JAX_XLA_CACHE="1",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD, str(net)], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_the_simulator_programs(tmp_path):
    cache = tmp_path / "cache"
    nets = {}
    for r in ("1k", "2k"):
        nets[r] = tmp_path / f"rc{r}.sim"
        nets[r].write_text(NET.replace("{r}", r))
    first = _run(nets["1k"], cache)
    second = _run(nets["1k"], cache)
    other = _run(nets["2k"], cache)
    # first process: nothing to reuse; second: at least the operating point's and the
    # transient's loops (the two programs above the cache's minimum compile time)
    assert first["hits"] == 0
    assert second["hits"] >= 2
    # v(t) = 1 − e^(−t/RC) at t = 1 ms (the reverse-biased diode leaks ≈ 1e-14 A: negligible);
    # the integration's error at these steps stays far below the 2 mV tolerance (reltol 1e-3
    # of a 1 V swing, trapezoidal rule's LTE control)

    for res, rc in ((first, 1e-3), (second, 1e-3), (other, 2e-3)):
        assert abs(res["v"] - (1 - math.exp(-res["t"] / rc))) < 2e-3, (res, rc)
    assert second["v"] == first["v"]  # the cached program is the same program
