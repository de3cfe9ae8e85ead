"""Sweeps across processes (va2jax.sim.distributed): two local processes of a JAX distributed job
give, lane by lane and bit for bit, the single-process sweep; bad jobs fail in one line, in
bounded time."""
from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from va2jax import _config
from va2jax.errors import Va2JaxError
from va2jax.sim import BatchSweep, sweep
from va2jax.sim.distributed import initialize

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rectifier_mc_distributed.py"
RC = ROOT / "examples" / "circuits" / "rc.sim"
VAR = {k: _config.VARIABLES[k].env for k in ("COORDINATOR", "NUM_PROCESSES", "PROCESS_ID",
                                              "DIST_TIMEOUT")}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in VAR.values()}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _launch(tmp_path: Path, n: int, argv: list[str], timeout: float,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``va2jax launch --processes n --timeout T ARGV`` in a subprocess (its own limit + margin)."""
    return subprocess.run([sys.executable, "-m", "va2jax.cli", "launch", "--processes", str(n),
                           "--timeout", str(timeout), *argv], env=env or _env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout + 120)


def _example():
    spec = importlib.util.spec_from_file_location("rectifier_mc_distributed", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(tmp_path):
    """16 rectifier lanes (op + 2 µs transient) over 2 processes == the single-process vmapped
    sweep of the same table, every array bit for bit: each process runs the same single-device
    program as mode "vmap" on its lanes, and a lane's arithmetic does not depend on the other
    lanes of its batch."""
    out = tmp_path / "dist.npz"
    proc = _launch(tmp_path, 2, [str(EXAMPLE), "--n", "16", "--out", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "16 lanes, mode distributed, 2 process(es), 2 device(s)" in proc.stdout
    got = dict(np.load(out))
    ex = _example()
    res = sweep(ex.NETLIST, ex.values(16, 0), ("op", "tran"), stop=2e-6, step=1e-9, maxstep=20e-9,
                mode="vmap", on_failure="nan")
    ref = {"op_x": res["op"].x, "op_status": res["op"].status, "time": res["tran"].time,
           "x": res["tran"].x, "npoints": res["tran"].npoints, "status": res["tran"].status}
    assert np.all(ref["status"] == 0) and np.all(ref["op_status"] == 0)
    for k in ex.FIELDS:
        assert got[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)  # NaN (past the end) == NaN


_FAIL = r"""
import sys
from jax.experimental import multihost_utils
from va2jax.sim.distributed import initialize
pid, n = initialize()
assert n == 2, n
if pid == 1:
    print("va2jax: error: lane data missing in process 1", file=sys.stderr)
    sys.exit(2)
multihost_utils.sync_global_devices("never reached by process 1")  # blocks process 0
"""


def test_worker_failure_is_one_line(tmp_path):
    """Process 1 fails while process 0 waits for it in a collective: the launcher stops
    process 0 and names process 1's error in one line."""
    script = tmp_path / "fail.py"
    script.write_text(_FAIL)
    proc = _launch(tmp_path, 2, [str(script)], timeout=120)
    assert proc.returncode == 2, proc.stderr
    # the exit status is named when process 1 has ended (it may still wait for its peer in
    # JAX's shutdown barrier when the launcher stops the job)
    assert re.fullmatch(r"va2jax: error: launch: process 1 of 2 failed( \(exit status 2\))?: "
                        r"lane data missing in process 1", proc.stderr.strip()), proc.stderr


def test_launch_timeout(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(600)\n")
    proc = _launch(tmp_path, 2, [str(script)], timeout=3)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("va2jax: error: launch: timed out after 3 s (still running: "
                                   "process 0, 1 of 2)")


def test_coordinator_unreachable(tmp_path):
    """Process 1 of a job whose coordinator never starts: one line after VA2JAX_DIST_TIMEOUT
    (JAX's own client would abort the process)."""
    port = _free_port()
    env = _env()
    env.update({VAR["COORDINATOR"]: f"127.0.0.1:{port}", VAR["NUM_PROCESSES"]: "2",
                VAR["PROCESS_ID"]: "1", VAR["DIST_TIMEOUT"]: "2"})
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--n", "4"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"va2jax: error: distributed: coordinator 127.0.0.1:{port} unreachable after 2 s"), lines


_DIFFERENT = r"""
import sys
import numpy as np
from va2jax.errors import Va2JaxError
from va2jax.sim import BatchSweep, sweep
from va2jax.sim.distributed import initialize
pid, _ = initialize()
try:
    sweep(sys.argv[1], {"r1": np.random.default_rng(pid).uniform(1e3, 2e3, 4)}, ("op",),
          mode="distributed")
except Va2JaxError as exc:
    print(f"va2jax: error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def test_processes_given_different_tables(tmp_path):
    """An unseeded (here: per-process) random draw is refused, not mixed."""
    script = tmp_path / "diff.py"
    script.write_text(_DIFFERENT)
    proc = _launch(tmp_path, 2, [str(script), str(RC)], timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "has a different parameter table from process 0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_lane_count_zero_and_bad_jobs(monkeypatch):
    with pytest.raises(Va2JaxError, match=r"no parameter sets \(lane count 0\)"):
        sweep(RC, {"r1": []}, ("op",), mode="distributed")
    bs = BatchSweep(RC, ["r1"])
    monkeypatch.setenv(VAR["NUM_PROCESSES"], "2")  # a job this process never joined
    with pytest.raises(Va2JaxError, match="has not joined the job"):
        bs.op({"r1": [1e3, 2e3]}, mode="distributed")
    monkeypatch.delenv(VAR["NUM_PROCESSES"])
    with pytest.raises(Va2JaxError, match="process id 5 is not in 0..1"):
        initialize("127.0.0.1:1234", 2, 5)
    with pytest.raises(Va2JaxError, match="expected host:port"):
        initialize("127.0.0.1", 2, 1)
    with pytest.raises(Va2JaxError, match="give all of"):
        initialize(None, 2, 1)


_UNEVEN = r"""
import numpy as np
import jax
import jax.numpy as jnp
from va2jax.sim.distributed import initialize, run_distributed
pid, n = initialize()
tab = np.arange(10.0).reshape(5, 2) + 0.25  # 5 lanes over 2 processes: padded to 6, trimmed

def fn(p):
    return {"s": jnp.sin(p[0]) * jnp.exp(p[1] / 7.0), "v": p * 3.0, "i": jnp.int32(p[0])}

out, _, _ = run_distributed(fn, tab)
ref = jax.tree_util.tree_map(np.asarray, jax.jit(jax.vmap(fn))(tab))
assert sorted(out) == sorted(ref), out
for k in ref:
    assert out[k].shape == ref[k].shape and np.array_equal(out[k], ref[k]), (k, out[k], ref[k])
print(f"process {pid}: lanes {out['i'].tolist()}")
"""


def test_uneven_lane_count(tmp_path):
    """5 lanes over 2 processes: 3 per process (one padding lane), trimmed back to 5 in lane
    order in every process, equal to the one-process vmap."""
    script = tmp_path / "uneven.py"
    script.write_text(_UNEVEN)
    proc = _launch(tmp_path, 2, [str(script)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "process 0: lanes [0, 2, 4, 6, 8]"
