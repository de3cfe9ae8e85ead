"""Fit the SPICE diode's IS, N and RS to an I–V curve, with gradients from the generated JAX code.

The "measurement" is produced by the OSDI library (OpenVAF's compiled model, the reference) at
perturbed parameters; the fit uses va2jax's differentiable model (``Model.function``) and SciPy's
``least_squares`` (trust-region reflective) with the Jacobian from ``jax.jacfwd``. The internal
node behind RS is solved by Newton's method inside the differentiated function.

Run: ``python examples/fit_diode.py [--quick]``. Prints the recovered parameters and their
relative errors; exits non-zero when any exceeds 1e-6.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import va2jax
from va2jax._paths import corpus_dir
from va2jax.osdi import compile_va_to_osdi, load_library

TRUE = {"is": 2.7e-14, "n": 1.083, "rs": 4.2}  # the "device" to recover
START = {"is": 1e-14, "n": 1.0, "rs": 1.0}     # initial guess
NAMES = ("is", "n", "rs")


def measure(va: str, volts: np.ndarray) -> np.ndarray:
    """Terminal current (A) of the OSDI library at terminal voltages ``volts`` (cathode at 0 V)."""
    mod = load_library(compile_va_to_osdi(va)).module("sp_diode")
    inst = mod.instance(dict(TRUE))
    a, ai, c = (mod.node_index(n) for n in ("a", "a_int", "c"))
    out = []
    x = np.zeros(mod.num_nodes)
    for v in volts:
        x[a] = v
        x[ai] = min(x[ai], v)
        for _ in range(200):  # Newton on the internal node's KCL row
            r = inst.eval(x)
            dx = -r.residual_resist[ai] / r.jacobian_resist[ai, ai]
            x[ai] += float(np.clip(dx, -0.05, 0.05))
            if abs(dx) < 1e-15:
                break
        out.append(-inst.eval(x).residual_resist[c])  # current flowing out of the cathode
    return np.array(out)


def make_model_current(va: str):
    """log|I|(params, V) from the generated code, internal node solved by Newton (differentiable)."""
    import jax
    import jax.numpy as jnp

    model = va2jax.compile_va(va)
    fn = model.function(list(NAMES), fixed={"rs": START["rs"]})
    a, ai, c = (model.nodes.index(n) for n in ("a", "a_int", "c"))
    n = len(model.nodes)

    def current(p, v):
        def resid(x):
            V = jnp.zeros(n).at[a].set(v).at[ai].set(x)
            return fn(p, 300.15, V)

        def newton(_, x):
            o = resid(x)
            dx = -o["residual_resist"][ai] / o["jacobian_resist"][ai, ai]
            return x + jnp.clip(dx, -0.05, 0.05)

        x = jax.lax.fori_loop(0, 40, newton, jnp.minimum(v, 0.6))  # fixed count: differentiable
        return -resid(x)["residual_resist"][c]

    def log_currents(theta, volts):
        p = {"is": jnp.exp(theta[0]), "n": theta[1], "rs": theta[2]}
        return jnp.log(jax.vmap(lambda v: current(p, v))(volts))

    return jax.jit(log_currents), jax.jit(jax.jacfwd(log_currents))


def fit(quick: bool = False) -> dict[str, float]:
    from scipy.optimize import least_squares

    va = str(corpus_dir() / "bosdi" / "spice" / "diode.va")
    volts = np.linspace(0.35, 0.95, 7 if quick else 25)
    meas = np.log(measure(va, volts))
    f, jac = make_model_current(va)
    theta0 = np.array([np.log(START["is"]), START["n"], START["rs"]])
    res = least_squares(lambda t: np.asarray(f(t, volts)) - meas, theta0,
                        jac=lambda t: np.asarray(jac(t, volts)), x_scale="jac",
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200)
    t = res.x
    return {"is": float(np.exp(t[0])), "n": float(t[1]), "rs": float(t[2])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer bias points (test suite)")
    got = fit(ap.parse_args().quick)
    worst = 0.0
    for k in NAMES:
        rel = abs(got[k] - TRUE[k]) / abs(TRUE[k])
        worst = max(worst, rel)
        print(f"{k:3s} true {TRUE[k]:.6e}  fitted {got[k]:.12e}  rel err {rel:.2e}")
    print("OK" if worst <= 1e-6 else "FAILED")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
