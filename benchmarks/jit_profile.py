"""Where ``va2jax sim`` spends its compile (JIT) time, per suite circuit.

For each case of VACASK's suite (``tests/data/vacask_suite``, ``stop`` shortened as in
``tests/sim/test_vacask_suite.py``; compile time does not depend on it) one fresh process runs
``Simulation.from_file`` + ``run()`` and reports, from JAX's own monitoring events:

* ``trace``: Python tracing to a jaxpr (``/jax/core/compile/tracing_duration``),
* ``lower``: jaxpr → StableHLO (``/jax/core/compile/jaxpr_to_mlir_module_duration``),
* ``xla``: XLA's backend compile (``/jax/core/compile/backend_compile_duration``; a hit in JAX's
  persistent compilation cache is the cache read instead),
* ``native``: building native model kernels (LLVM, ``GeneratedGroup.prepare``), measured around
  the engine's device preparation,
* ``compile_s``: the simulator's own total (``Result.stats.compile_s``), ``first``: wall time of the
  whole process body (parse + build + compile + the shortened run),

and the number of XLA compilations and persistent-cache hits. Each case runs twice in separate
processes — ``cold`` with an empty ``$VA2JAX_CACHE`` (models' generated code and native kernels
included), ``warm`` with the cache the first left — so the persistent caches are measured across
processes, as a user's second ``va2jax sim`` of the same netlist sees them. Run::

    python benchmarks/jit_profile.py [--circuits rc,graetz,mul,ring] [--keep-cache DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOP = {"rc": "10m", "graetz": "20m", "mul": "0.2m", "ring": "100n"}

CHILD = r"""
import json, sys, time, warnings, collections
t_start = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import jax
from jax import monitoring
acc = collections.defaultdict(float)
cnt = collections.Counter()
def dur(event, secs, **kw):
    acc[event] += secs
    cnt[event] += 1
def ev(event, **kw):
    cnt[event] += 1
monitoring.register_event_duration_secs_listener(dur)
monitoring.register_event_listener(ev)
import suite
from pathlib import Path
from va2jax.sim import Simulation
from va2jax.sim import engine as _eng
_prep = [0.0]
_orig_init = _eng.Engine.__init__
def _init(self, system, opts):
    t = time.perf_counter()
    for g in system.groups:
        g.group.prepare()
    _prep[0] += time.perf_counter() - t
    _orig_init(self, system, opts)
_eng.Engine.__init__ = _init
sim = suite.prepare(sys.argv[1], Path(sys.argv[3]), stop=sys.argv[4])
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    s = Simulation.from_file(sim)
    res = s.run()["tran1"]
t1 = time.perf_counter()
E = "/jax/core/compile/"
print(json.dumps(dict(
    trace=acc[E + "jaxpr_trace_duration"], lower=acc[E + "jaxpr_to_mlir_module_duration"],
    xla=acc[E + "backend_compile_duration"], compiles=cnt[E + "backend_compile_duration"],
    hits=cnt["/jax/compilation_cache/cache_hits"], native=_prep[0],
    compile_s=res.stats.compile_s, run_s=res.stats.run_s, first=t1 - t0,
    process=t1 - t_start, points=res.stats.points, iters=res.stats.newton_iterations)))
"""


def run_case(case: str, cache: Path, work: Path) -> dict:
    env = dict(os.environ, VA2JAX_CACHE=str(cache), PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", CHILD, case, str(ROOT / "tests" / "sim"),
                          str(work), STOP[case]], env=env, capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise SystemExit(f"{case}: child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--circuits", default="rc,graetz,mul,ring")
    ap.add_argument("--keep-cache", default=None, help="use (and keep) this cache folder")
    args = ap.parse_args()
    hdr = (f"{'circuit':7s} {'run':5s} | {'trace':>6s} {'lower':>6s} {'xla':>6s} {'native':>6s} "
           f"{'#comp':>5s} {'hits':>4s} | {'JIT s':>6s} {'first s':>7s} {'proc s':>6s}")
    rows = []
    for case in [c.strip() for c in args.circuits.split(",") if c.strip()]:
        with tempfile.TemporaryDirectory(prefix=f"jitprof-{case}-") as d:
            cache = Path(args.keep_cache) / case if args.keep_cache else Path(d) / "cache"
            for label in ("cold", "warm"):
                r = run_case(case, cache, Path(d) / label)
                rows.append((case, label, r))
                print(case, label, json.dumps(r), flush=True)
    print(hdr)
    print("-" * len(hdr))
    for case, label, r in rows:
        print(f"{case:7s} {label:5s} | {r['trace']:6.2f} {r['lower']:6.2f} {r['xla']:6.2f} "
              f"{r['native']:6.2f} {r['compiles']:5d} {r['hits']:4d} | {r['compile_s']:6.2f} "
              f"{r['first']:7.2f} {r['process']:6.2f}")


if __name__ == "__main__":
    main()
