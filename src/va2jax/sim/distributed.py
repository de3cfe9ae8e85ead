"""Sweeps across processes and hosts with JAX's distributed runtime (``sweep(mode="distributed")``).

Every process of the job runs the same program: it calls :func:`initialize` (JAX's
:func:`jax.distributed.initialize`: a coordination service in process 0, CPU collectives over
Gloo/TCP between all of them) before any JAX computation, builds the same parameter table
``(N, K)`` and calls :func:`run_distributed`:

* ``N`` is padded to ``N_p = c·D`` (``D`` devices in all, the same number in every process,
  ``c = ⌈N / D⌉`` lanes per device) by repeating the last row; global device ``j`` (processes in
  order, then their devices) owns rows ``[j·c, (j+1)·c)``;
* each process runs ``jit(vmap(fn))`` on each of its devices for that device's rows — the same
  single-device program as ``mode="vmap"``; no communication while the Newton and time loops run;
* :func:`jax.experimental.multihost_utils.process_allgather` (an all-gather over the CPU
  collectives) brings every process's rows to every process, in lane order; the padding is
  dropped. A digest of the table is all-gathered first: processes given different tables (an
  unseeded random draw) stop with an error instead of mixing results.

A lane's arithmetic does not depend on which lanes share its batch (vmapped operations act lane
by lane, and the batched linear solves factor each lane's matrix on its own; the single-device
program is the same for any batch size), so each lane equals the single-process ``sweep`` of the
same table bit for bit (asserted by the tests). One SPMD program over a global mesh
(``shard_map`` over every process's devices, as :func:`va2jax.sim.batch.run_sharded` does over
local ones) was not used for that reason: XLA compiles a program partitioned over two or more
devices differently (measured: transient waveforms of the rectifier differ by a few ulp, up to
4e-14 V, from the one-device program; the operating points were equal).

Where the job comes from (arguments of :func:`initialize`, else the environment):

==================== ==============================================================
variable             meaning
==================== ==============================================================
VA2JAX_COORDINATOR   ``host:port`` of process 0's coordination service
VA2JAX_NUM_PROCESSES number of processes of the job
VA2JAX_PROCESS_ID    this process's id, 0 … N−1
VA2JAX_DIST_TIMEOUT  seconds to reach the coordinator / to notice a dead peer (120)
==================== ==============================================================

:func:`launch_local` (``va2jax launch --processes N PROGRAM …``, ``python -m
va2jax.sim.distributed``) starts N processes of a program on this host with the coordinator on
``127.0.0.1`` and a free port. On several hosts, start one process per host (or per device)
with the same ``VA2JAX_COORDINATOR`` (an address of host 0 that the others can reach) and
``VA2JAX_NUM_PROCESSES``, and ``VA2JAX_PROCESS_ID`` = 0 … N−1.
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _config
from ..errors import Va2JaxError

__all__ = ["initialize", "run_distributed", "launch_local", "main"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Va2JaxError(f"{_config.VARIABLES['COORDINATOR'].env}={address!r}: expected host:port")
    return host, int(port)


def _wait_for(host: str, port: int, timeout: float) -> None:
    """Wait until ``host:port`` accepts a TCP connection (the coordinator is up) or raise.

    JAX's own client aborts the process (no Python exception) when the coordinator cannot be
    reached, so processes other than 0 try a plain connection first, for at most ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=2.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise Va2JaxError(f"distributed: coordinator {host}:{port} unreachable after "
                                  f"{timeout:g} s ({exc.strerror or exc}; "
                                  f"{_config.VARIABLES['COORDINATOR'].env})") from None
            time.sleep(0.2)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout: float | None = None) -> tuple[int, int]:
    """Join the distributed job (once per process, before any JAX computation).

    Arguments default to ``VA2JAX_COORDINATOR``, ``VA2JAX_NUM_PROCESSES``,
    ``VA2JAX_PROCESS_ID``, ``VA2JAX_DIST_TIMEOUT`` (table in the module docstring). Without a
    job (no coordinator, one process) nothing happens. CPU collectives use Gloo
    (``jax_cpu_collectives_implementation``); a loopback coordinator binds to loopback only.
    Returns ``(process index, process count)``.
    """
    import jax

    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    coordinator = coordinator or _config.get("COORDINATOR")
    num_processes = num_processes if num_processes is not None else _config.get("NUM_PROCESSES")
    process_id = process_id if process_id is not None else _config.get("PROCESS_ID")
    timeout = float(timeout if timeout is not None else _config.get("DIST_TIMEOUT"))
    if timeout <= 0:
        raise Va2JaxError(f"distributed: timeout must be > 0 s, not {timeout:g}")
    if coordinator is None and num_processes in (None, 1) and process_id in (None, 0):
        return 0, 1
    if coordinator is None or num_processes is None or process_id is None:
        names = ", ".join(_config.VARIABLES[n].env for n in ("COORDINATOR", "NUM_PROCESSES",
                                                              "PROCESS_ID"))
        raise Va2JaxError(f"distributed: give all of {names} (or the arguments of initialize)")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise Va2JaxError(f"distributed: process id {process_id} is not in 0..{num_processes - 1}")
    host, port = _split_address(coordinator)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if process_id != 0:
        _wait_for(host, port, timeout)
    t = max(1, int(round(timeout)))
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
            initialization_timeout=t, heartbeat_timeout_seconds=t, shutdown_timeout_seconds=t,
            coordinator_bind_address=coordinator if _is_loopback(host) else None)
    except RuntimeError as exc:  # JAX already computed in this process
        raise Va2JaxError("distributed: " + str(exc).splitlines()[0] + " (call "
                          "va2jax.sim.distributed.initialize() or sweep(mode='distributed') "
                          "before building the circuit)") from None
    return jax.process_index(), jax.process_count()


def _check_same_table(tab: np.ndarray) -> None:
    """Every process must sweep the same table (e.g. the same random seed): compare digests."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    h = hashlib.sha256(np.ascontiguousarray(tab, dtype=np.float64).tobytes())
    h.update(str(tab.shape).encode())
    mine = np.frombuffer(h.digest(), np.uint8).astype(np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    differ = [p for p in range(every.shape[0]) if not np.array_equal(every[p], every[0])]
    if differ:
        raise Va2JaxError(f"distributed: process {differ[0]} has a different parameter table "
                          "from process 0 (give every process the same values, e.g. the same "
                          "random seed)")


def run_distributed(fn: Callable[[Any], Any], tab: np.ndarray, cache: dict | None = None,
                    key: Any = None) -> tuple[dict, float, float]:
    """Run ``vmap(fn)`` over the rows of ``tab`` split over every device of every process.

    Called by all processes with the same ``tab`` (checked); every process returns all rows.
    Returns ``(outputs without the padding, compile seconds, run seconds)`` (the run includes
    the gather).
    """
    import jax
    from jax.experimental import multihost_utils

    N = tab.shape[0]
    if N == 0:
        raise Va2JaxError("sweep: no parameter sets (lane count 0)")
    wanted = _config.get("NUM_PROCESSES")
    if wanted not in (None, 1) and jax.process_count() != wanted:
        raise Va2JaxError(f"distributed: {_config.VARIABLES['NUM_PROCESSES'].env}={wanted} but "
                          f"this process has not joined the job (call "
                          "va2jax.sim.distributed.initialize() before building the circuit)")
    _check_same_table(tab)
    P, me = jax.process_count(), jax.process_index()
    local = sorted(jax.local_devices(), key=lambda d: d.id)
    L = len(local)
    if P > 1:
        counts = np.asarray(multihost_utils.process_allgather(np.int32(L)))
        if np.any(counts != L):
            raise Va2JaxError("distributed: the processes have different numbers of devices "
                              f"({', '.join(str(int(c)) for c in counts)}); give each the same")
    D = P * L
    c = -(-N // D)  # lanes per device
    Np = c * D
    padded = np.concatenate([tab, np.repeat(tab[-1:], Np - N, axis=0)]) if Np > N else tab
    padded = np.ascontiguousarray(padded, dtype=np.float64)
    t0 = time.perf_counter()
    compiled = []
    for d in local:  # one executable per local device: the single-device program of mode "vmap"
        ckey = (key, "distributed", c, d.id)
        f = cache.get(ckey) if cache is not None else None
        if f is None:
            spec = jax.ShapeDtypeStruct((c, tab.shape[1]), np.float64,
                                        sharding=jax.sharding.SingleDeviceSharding(d))
            f = jax.jit(jax.vmap(fn)).lower(spec).compile()
            if cache is not None:
                cache[ckey] = f
        compiled.append(f)
    comp = time.perf_counter() - t0
    t1 = time.perf_counter()
    first = me * L * c  # this process's rows: its devices' blocks, in global device order
    outs = [f(jax.device_put(padded[first + j * c: first + (j + 1) * c], d))
            for j, (f, d) in enumerate(zip(compiled, local))]  # dispatched asynchronously
    mine = jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *outs)
    if P > 1:
        mine = multihost_utils.process_allgather(mine, tiled=True)
    out = jax.tree_util.tree_map(lambda a: np.asarray(a)[:N], mine)
    return out, comp, time.perf_counter() - t1


# ---------------------------------------------------------------------------------------------
# local launcher
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reason(stderr: str) -> str:
    """One line saying why a worker failed, from its standard error."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("va2jax: error:"):
            return ln[len("va2jax: error:"):].strip()
    for ln in reversed(lines):  # an absl fatal log line: "F1206 03:04:41.89 10520 file:80] text"
        if len(ln) > 5 and ln[0] == "F" and ln[1:5].isdigit() and "] " in ln:
            return ln.split("] ", 1)[1]
    for ln in reversed(lines):  # a Python traceback ends with "Type: message"
        if not ln.startswith(("@", "***", "[Gloo]", "WARNING", "I0000", "E0000", "W0000",
                              "For simplicity, JAX", "----")):
            return ln
    return "no message"


def _describe(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def launch_local(n: int, argv: Sequence[str], *, timeout: float = 600.0,
                 env: Mapping[str, str] | None = None, stdout: Any = None) -> int:
    """Run ``python ARGV…`` as ``n`` processes of one distributed job on this host.

    The coordinator is ``127.0.0.1:<free port>``; each process gets the environment (``env`` or
    this one) plus ``VA2JAX_COORDINATOR``, ``VA2JAX_NUM_PROCESSES``, ``VA2JAX_PROCESS_ID``,
    ``VA2JAX_DIST_TIMEOUT``. Process 0's standard output is copied to ``stdout`` (default
    ``sys.stdout``) when the job ends. When a process fails (a non-zero exit status, or a
    ``va2jax: error:`` line on its standard error), the others are stopped and a one-line
    :class:`Va2JaxError` names the process and its error; after ``timeout`` seconds all are
    stopped likewise. Returns 0.
    """
    if n < 1:
        raise Va2JaxError(f"launch: --processes must be >= 1, not {n}")
    if not argv:
        raise Va2JaxError("launch: no program given (a script or -m module, with its arguments)")
    if timeout <= 0:
        raise Va2JaxError(f"launch: --timeout must be > 0 s, not {timeout:g}")
    stdout = stdout if stdout is not None else sys.stdout
    base = dict(os.environ if env is None else env)
    var = _config.VARIABLES
    base[var["COORDINATOR"].env] = f"127.0.0.1:{_free_port()}"
    base[var["NUM_PROCESSES"].env] = str(n)
    # a dead peer must be noticed well within the launcher's own limit
    base.setdefault(var["DIST_TIMEOUT"].env, str(max(5, min(120, int(timeout / 4)))))
    deadline = time.monotonic() + timeout
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="va2jax-launch-") as tmp:
        outs: list[Path] = []
        errs: list[Path] = []
        files: list[Any] = []
        try:
            for pid in range(n):
                e = dict(base)
                e[var["PROCESS_ID"].env] = str(pid)
                # append mode: the children write at the end whatever is read meanwhile
                o = open(Path(tmp) / f"{pid}.out", "ab")  # noqa: SIM115 (closed below)
                r = open(Path(tmp) / f"{pid}.err", "ab")  # noqa: SIM115
                files += [o, r]
                outs.append(Path(o.name))
                errs.append(Path(r.name))
                procs.append(subprocess.Popen([sys.executable, *argv], env=e, stdout=o, stderr=r,
                                              stdin=subprocess.DEVNULL))
            failed: int | None = None
            ended: list[int] = []  # failed processes, in the order they were seen to end
            seen = [0] * n  # bytes of each standard error already searched
            said: list[int] = []  # processes that reported "va2jax: error:" (ending with it)
            while True:
                codes = [p.poll() for p in procs]
                for i, c in enumerate(codes):
                    if c not in (None, 0) and i not in ended:
                        ended.append(i)
                for i in range(n):  # a process reporting a va2jax error fails the job even
                    size = errs[i].stat().st_size  # while JAX's shutdown waits for its peers
                    if size > seen[i]:
                        with open(errs[i], "rb") as f:
                            f.seek(max(0, seen[i] - 32))
                            if b"va2jax: error:" in f.read() and i not in said:
                                said.append(i)
                        seen[i] = size
                if said or ended:
                    # the process that reports an error of its own, else the first seen to end
                    # (its peers fail because it did)
                    failed = (said or ended)[0]
                    break
                if all(c == 0 for c in codes):
                    break
                if time.monotonic() > deadline:
                    running = [str(i) for i, c in enumerate(codes) if c is None]
                    raise Va2JaxError(f"launch: timed out after {timeout:g} s (still running: "
                                      f"process {', '.join(running)} of {n})")
                time.sleep(0.1)
            if failed is not None:
                code = procs[failed].poll()  # None: it reported its error, still shutting down
                why = _reason(_read(errs[failed]))
                if why == "no message":
                    why = _reason(_read(outs[failed]))
                how = f" ({_describe(code)})" if code is not None else ""
                raise Va2JaxError(f"launch: process {failed} of {n} failed{how}: {why}")
            # Gloo prints its connection message on standard output; drop it
            text = "".join(ln for ln in _read(outs[0]).splitlines(keepends=True)
                           if not ln.startswith("[Gloo]"))
            stdout.write(text)
            stdout.flush()
            return 0
        finally:
            _stop(procs)
            for f in files:
                f.close()


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the processes this launcher started that still run (SIGTERM, then SIGKILL)."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.terminate()
    end = time.monotonic() + 5.0
    for p in live:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--processes", "-n", type=int, required=True, help="number of processes")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds before every process is stopped (default 600)")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module (as python -m)")
    p.add_argument("program", nargs=argparse.REMAINDER,
                   help="a Python script and its arguments (after -m MODULE: `-- ARGS`)")


def register(sub: argparse._SubParsersAction) -> None:
    """``va2jax launch --processes N [--timeout S] PROGRAM [ARGS…]``."""
    p = sub.add_parser("launch", help="run a Python program as N processes of a distributed job",
                       description="Start N local processes of a JAX distributed job (coordinator "
                                   "on 127.0.0.1, a free port): e.g. a script calling "
                                   "va2jax.sim.sweep(..., mode='distributed').")
    _add_arguments(p)
    p.set_defaults(func=_cli_run)


def _cli_run(args: argparse.Namespace) -> int:
    prog = list(args.program)
    if prog and prog[0] == "--":
        prog = prog[1:]
    if args.module:
        prog = ["-m", args.module, *prog]
    return launch_local(args.processes, prog, timeout=args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m va2jax.sim.distributed --processes N PROGRAM …`` (same as ``va2jax launch``)."""
    ap = argparse.ArgumentParser(prog="python -m va2jax.sim.distributed",
                                 description="Run a Python program as N local processes of a "
                                             "JAX distributed job.")
    _add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return _cli_run(args)
    except Va2JaxError as exc:
        print(f"va2jax: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
