"""Fit five BSIM4 parameters to I_D–V_GS and I_D–V_DS curves, with gradients from the generated JAX code.

The "measurement" is produced by the OSDI library (OpenVAF's compiled BSIM4 4.8, the reference)
for an n-channel device, L = 0.1 µm, W = 1 µm, at a perturbed "true" parameter set: I_D–V_GS at
V_DS = 0.05 V and 1.0 V, I_D–V_DS at V_GS = 0.8 V and 1.2 V (V_BS = 0). The fit starts from
BSIM4's nominal values and minimises the differences of log I_D (every decade weighs the same)
with SciPy's ``least_squares`` (trust-region reflective), using va2jax's differentiable model
(``Model.function``) and the Jacobian from ``jax.jacfwd``.

Internal nodes: none to solve. At BSIM4's defaults (``rdsmod=0``, ``rgatemod=0``,
``rbodymod=0``, sheet resistance ``rsh=0``) the drain/source/gate/body prime nodes collapse onto
the terminals, and RDSW acts as the bias-dependent series resistance inside the I–V equation, so
I_D is the drain row of the resistive residual at the terminal voltages.

Run: ``python examples/fit_mosfet.py [--quick] [--plot out.png]``. Prints a table of the
recovered parameters and their relative errors; exits non-zero when any exceeds 1e-6.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import va2jax
from va2jax._paths import corpus_dir
from va2jax.osdi import compile_va_to_osdi, load_library

NAMES = ("vth0", "u0", "vsat", "rdsw", "eta0")
#: BSIM4's n-channel defaults (V, m²/Vs, m/s, Ω·µm, 1), given explicitly: the starting point of the fit
START = {"vth0": 0.7, "u0": 0.067, "vsat": 8.0e4, "rdsw": 200.0, "eta0": 0.08}
#: the "device" to recover
TRUE = {"vth0": 0.62, "u0": 0.052, "vsat": 1.1e5, "rdsw": 260.0, "eta0": 0.11}
GEOMETRY = {"l": 0.1e-6, "w": 1.0e-6}  # m


def va_file() -> str:
    return str(corpus_dir() / "bosdi" / "bsim4v8.va")


def bias_points(quick: bool) -> tuple[np.ndarray, np.ndarray, list[tuple[str, slice]]]:
    """(V_DS, V_GS) of every point in V, and the four curves as (label, slice)."""
    k = 6 if quick else 25
    vg = np.linspace(0.3, 1.2, k)
    vd = np.linspace(0.05, 1.2, k)
    curves = [("I_D-V_GS, V_DS=0.05 V", np.full(k, 0.05), vg), ("I_D-V_GS, V_DS=1.0 V", np.full(k, 1.0), vg),
              ("I_D-V_DS, V_GS=0.8 V", vd, np.full(k, 0.8)), ("I_D-V_DS, V_GS=1.2 V", vd, np.full(k, 1.2))]
    vds = np.concatenate([c[1] for c in curves])
    vgs = np.concatenate([c[2] for c in curves])
    return vds, vgs, [(c[0], slice(i * k, (i + 1) * k)) for i, c in enumerate(curves)]


def measure(va: str, vds: np.ndarray, vgs: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """Drain current (A) from the OSDI library at (V_DS, V_GS), source and bulk at 0 V."""
    mod = load_library(compile_va_to_osdi(va)).module("bsim4")
    inst = mod.instance({**GEOMETRY, **params})
    d, g = mod.node_index("d"), mod.node_index("g")
    out = []
    for vd, vg in zip(vds, vgs):
        x = np.zeros(mod.num_nodes)
        x[d], x[g] = vd, vg
        out.append(inst.eval(x).residual_resist[d])  # current into the drain terminal
    return np.array(out)


def make_model(va: str):
    """``(log I_D, d log I_D / d theta)`` at parameters ``START * theta`` from the generated code.

    One jitted function returns both (``jacfwd`` with the value as auxiliary output), so XLA
    compiles the model once.
    """
    import jax
    import jax.numpy as jnp

    model = va2jax.compile_va(va)
    fn = model.function(list(NAMES), fixed=GEOMETRY)
    d, g = model.nodes.index("d"), model.nodes.index("g")
    n = len(model.nodes)
    scale = jnp.array([START[k] for k in NAMES])

    def log_currents(theta, vds, vgs):
        p = dict(zip(NAMES, theta * scale))

        def one(vd, vg):
            V = jnp.zeros(n).at[d].set(vd).at[g].set(vg)
            return fn(p, 300.15, V)["residual_resist"][d]

        y = jnp.log(jax.vmap(one)(vds, vgs))
        return y, y

    return jax.jit(jax.jacfwd(log_currents, has_aux=True))


def fit(quick: bool = False) -> dict:
    """Run the fit; returns fitted values, the SciPy result and timings (s)."""
    from scipy.optimize import least_squares

    va = va_file()
    vds, vgs, curves = bias_points(quick)
    meas = np.log(measure(va, vds, vgs, TRUE))
    t0 = time.perf_counter()
    jac_and_value = make_model(va)
    memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def both(theta):  # least_squares asks for f and J at the same points: evaluate once
        key = np.asarray(theta, np.float64).tobytes()
        if key not in memo:
            J, y = jac_and_value(np.asarray(theta, np.float64), vds, vgs)
            memo.clear()
            memo[key] = (np.asarray(y), np.asarray(J))
        return memo[key]

    both(np.ones(len(NAMES)))
    t_compile = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = least_squares(lambda t: both(t)[0] - meas, np.ones(len(NAMES)), jac=lambda t: both(t)[1],
                        x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=100)
    t_fit = time.perf_counter() - t1
    got = {k: float(t * START[k]) for k, t in zip(NAMES, res.x)}
    return {"fitted": got, "result": res, "compile_s": t_compile, "fit_s": t_fit,
            "bias": (vds, vgs, curves), "va": va}


def plot(path: str, out: dict) -> None:
    """Measured (OSDI) and fitted (generated code) curves, start values dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vds, vgs, curves = out["bias"]
    meas = measure(out["va"], vds, vgs, TRUE)
    start = measure(out["va"], vds, vgs, START)
    fitted = measure(out["va"], vds, vgs, out["fitted"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for label, s in curves:
        ax, x = (a1, vgs[s]) if "V_GS," in label else (a2, vds[s])
        ln, = ax.plot(x, meas[s], "o", label=label + " (data)")
        ax.plot(x, fitted[s], "-", color=ln.get_color())
        ax.plot(x, start[s], "--", color=ln.get_color(), alpha=0.5)
    a1.set(xlabel="V_GS (V)", ylabel="I_D (A)", yscale="log")
    a2.set(xlabel="V_DS (V)", ylabel="I_D (A)")
    for ax in (a1, a2):
        ax.legend(fontsize=7)
    fig.suptitle("BSIM4 fit: data (OSDI), fitted (solid), start (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer bias points (test suite)")
    ap.add_argument("--plot", metavar="PNG", help="save measured and fitted curves to this file")
    args = ap.parse_args()
    if not Path(va_file()).is_file():
        print(f"error: {va_file()}: not found (fetch the corpus: make corpus)", file=sys.stderr)
        return 2
    try:
        out = fit(args.quick)
    except va2jax.Va2JaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    got, res = out["fitted"], out["result"]
    worst = 0.0
    print(f"{'param':6s} {'start':>12s} {'true':>12s} {'fitted':>20s}  relative error")
    for k in NAMES:
        rel = abs(got[k] - TRUE[k]) / abs(TRUE[k])
        worst = max(worst, rel)
        print(f"{k:6s} {START[k]:12.6g} {TRUE[k]:12.6g} {got[k]:20.13e}  rel err {rel:.2e}")
    npts = len(out["bias"][0])
    print(f"{npts} bias points; {res.nfev} function / {res.njev} Jacobian evaluations; "
          f"max |log I residual| {np.max(np.abs(res.fun)):.1e}; "
          f"fit {out['fit_s']:.2f} s after {out['compile_s']:.1f} s to build and compile")
    if args.plot:
        plot(args.plot, out)
        print(f"plot written to {args.plot}")
    print("OK" if worst <= 1e-6 else "FAILED")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
