"""``va2jax validate FILE.va`` / ``va2jax validate --corpus``: generated JAX code vs the OSDI library."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .._cli_common import parse_kv as _parse_kv
from ..errors import Va2JaxError


def _check_counts(args: argparse.Namespace) -> None:
    sweeps = (not args.no_sweeps) if args.corpus else args.sweeps
    if args.points < 0 or (args.points == 0 and not sweeps):
        raise Va2JaxError(f"--points must be >= 1 (or 0 with bias sweeps), got {args.points}: "
                          "nothing would be compared")
    if args.param_sets < 1:
        raise Va2JaxError(f"--param-sets must be >= 1, got {args.param_sets}")


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _run_corpus(args: argparse.Namespace) -> int:
    from .._paths import corpus_dir
    from ._compare import REL_TOL
    from ._corpus import corpus_files, run_corpus

    if args.file:
        raise Va2JaxError("give either a FILE or --corpus, not both")
    root = corpus_dir()
    files = corpus_files(root)
    if args.only:
        files = [f for f in files if any(o in f.relative_to(root).as_posix() for o in args.only)]
        if not files:
            raise Va2JaxError(f"--only {' '.join(args.only)}: no corpus file matches")
    report = Path(args.report) if args.report else None
    plots: dict[str, str] = {}
    on_result = None
    if report is not None:
        from ._report import plot_name, write_plot

        report.mkdir(parents=True, exist_ok=True)
        # The default reference keeps the name conformance.md; another opt level gets its own
        # report (conformance-O0.md + conformance-O0/) so the two sit side by side in docs/.
        # The native backend's reports sit beside them too (conformance-native-O0.md).
        stem = "conformance" + ("-native" if args.backend == "native" else "") + (
            f"-O{args.reference_opt_level}" if args.reference_opt_level is not None else "")
        pdir = report / stem

        def on_result(entry, res):
            if res is None:
                return
            name = plot_name(entry["file"])
            try:
                if write_plot(res, pdir / name, f"{entry['file']} ({entry['module']})"):
                    plots[entry["file"]] = f"{stem}/{name}"
            except Exception as exc:  # a plot that cannot be drawn is noted, never an abort
                entry["plot_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            finally:
                res.data = None  # free the arrays

    entries = run_corpus(files, root=root, points=args.points, param_sets=args.param_sets,
                         seed=args.seed, backend=args.backend, sweeps=not args.no_sweeps,
                         keep=report is not None, progress=not args.no_progress, on_result=on_result,
                         reference_opt_level=args.reference_opt_level)
    npass = sum(e["passed"] for e in entries)
    if report is not None:
        from ._report import write_markdown

        write_markdown(entries, report / f"{stem}.md", plots=plots,
                       meta={"backend": args.backend, "points": args.points,
                             "param_sets": args.param_sets,
                             **({"reference": f"openvaf-r -O{args.reference_opt_level}"}
                                if args.reference_opt_level is not None else {})})
    if args.json:
        print(json.dumps(_json_safe({"corpus": str(root), "backend": args.backend, "rel_tol": REL_TOL,
                                     "reference_opt_level": args.reference_opt_level,
                                     "passed": npass, "total": len(entries), "models": entries}),
                         default=str))
    else:
        for e in entries:
            if not e["passed"]:
                why = e.get("error") or ", ".join(f"{k} {v:.1e}" for k, v in e["max_rel_err"].items()
                                                  if v and v > REL_TOL)
                print(f"FAILED {e['file']}: {why}")
        print(f"{npass} of {len(entries)} corpus files pass"
              + (f"; report: {report / (stem + '.md')}" if report is not None else ""))
    return 0 if npass == len(entries) else 1


def _run(args: argparse.Namespace) -> int:
    from ._compare import ABS_FLOOR, REL_TOL, validate_file

    _check_counts(args)
    if args.corpus:
        return _run_corpus(args)
    if args.report or args.only:
        raise Va2JaxError("--report and --only go with --corpus")
    if not args.file:
        raise Va2JaxError("give a Verilog-A FILE to validate, or --corpus")
    res = validate_file(args.file, points=args.points, param_sets=args.param_sets, seed=args.seed,
                        params=_parse_kv(args.param), temperature=args.temp, module=args.module,
                        backend=args.backend, sweeps=args.sweeps, include_dirs=args.include,
                        defines=_parse_kv(args.define),
                        reference_opt_level=args.reference_opt_level)
    if args.json:
        print(json.dumps(_json_safe(res.as_json()), default=str))
    else:
        print(f"{res.module}: {res.points} points over {len(res.param_sets)} parameter sets "
              f"(pass: relative error <= {REL_TOL:g}, absolute floor {ABS_FLOOR:g}; reference "
              f"openvaf-r -O{3 if res.reference_opt_level is None else res.reference_opt_level})")
        for k in res.max_rel_err:
            print(f"  {k:18s} max rel {res.max_rel_err[k]:.3e}   max abs {res.max_abs_err[k]:.3e}")
        if res.noise == "compared":
            print(f"  noise: {res.noise_sources} source(s), {res.noise_nonzero} with non-zero "
                  "densities at the compared points")
        else:
            print(f"  noise: {res.noise_sources} source(s), "
                  + ("none" if res.noise == "none" else res.noise))
        if res.nonfinite_reference:
            print("  non-finite reference entries (NaN/inf, compared by kind only): "
                  + ", ".join(f"{k} {n}" for k, n in res.nonfinite_reference.items()))
        print(f"  openvaf-r {res.openvaf_r_seconds:.2f} s, va2jax first result {res.va2jax_seconds:.2f} s")
        print("PASSED" if res.passed else "FAILED")
    return 0 if res.passed else 1


def register(sub) -> None:
    p = sub.add_parser("validate", help="compare generated JAX code with the OSDI library")
    p.add_argument("file", nargs="?", help="Verilog-A source (or --corpus)")
    p.add_argument("-I", dest="include", action="append", default=[], help="include directory")
    p.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                   help="define a macro (`define NAME VALUE)")
    p.add_argument("--points", type=int, default=100, help="random operating points per parameter set")
    p.add_argument("--param-sets", type=int, default=3, help="number of random parameter sets (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--temp", type=float, default=300.15, help="temperature in K")
    p.add_argument("--module", help="module name (default: the first)")
    p.add_argument("--backend", choices=("jax", "numpy", "native"), default=None,
                   help="generated-code backend (default: jax for a FILE, numpy for --corpus)")
    p.add_argument("--sweeps", action="store_true",
                   help="FILE: add region bias sweeps and temperature/geometry/polarity parameter sets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--reference-opt-level", type=int, choices=(0, 1, 2, 3), default=None,
                   metavar="N", help="build the OSDI reference with openvaf-r -O N (0..3; default: "
                   "openvaf-r's own, 3). -O0 keeps the Jacobian arithmetic in MIR order")
    g = p.add_argument_group("corpus sweep")
    g.add_argument("--corpus", action="store_true",
                   help="validate every model of the corpus ($VA2JAX_CORPUS or .cache/corpus)")
    g.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                   help="only corpus files whose path contains SUBSTR (repeatable)")
    g.add_argument("--report", metavar="DIR", help="write DIR/conformance.md and DIR/conformance/*.png")
    g.add_argument("--no-sweeps", action="store_true", help="random points only (corpus)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_backend)


def _run_backend(args: argparse.Namespace) -> int:
    if args.backend is None:
        args.backend = "numpy" if args.corpus else "jax"
    return _run(args)
