"""Fit two SPICE-diode parameters (IS, N) to a transient waveform of the Graetz bridge rectifier.

The "measurement" is the bridge's output voltage ``v(outp)`` at 20 sample times, simulated by
va2jax at the true values; the fit starts 30 % (IS) and 20 % (N) off and minimises the squared
error with SciPy's ``least_squares`` (trust-region reflective), the Jacobian of the samples from
the discrete adjoint of the transient (``jax.jacrev`` of :func:`va2jax.sim.function` with
``analysis="tran"``; docs/sim.md, "Differentiable analyses"). IS is fitted as ``log IS``.

Run: ``python examples/fit_graetz_transient.py [--quick]`` (``--quick``: 5 ms instead of 20 ms; 250 steps).
Prints the recovered parameters and their relative errors; exits non-zero when any exceeds 1e-6.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

#: the Graetz bridge shared by the demo, examples and tests (a link to va2jax's data/circuits)
CIRCUIT = Path(__file__).resolve().parent / "circuits" / "graetz.sim"


def netlist() -> str:
    """The bridge of ``circuits/graetz.sim`` with a 10 uF capacitor, without its analyses."""
    text = CIRCUIT.read_text()
    old = "cl (outp outn) c c=100u"
    if text.count(old) != 1 or "\ncontrol\n" not in text:
        raise SystemExit(f"{CIRCUIT}: expected one {old!r} and a control block")
    return text.replace(old, "cl (outp outn) c c=10u").split("\ncontrol\n")[0] + "\n"


TRUE = {"dpwr.is": 76.9e-12, "dpwr.n": 1.45}
START = {"dpwr.is": 1.3 * 76.9e-12, "dpwr.n": 0.8 * 1.45}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    import jax
    import jax.numpy as jnp
    from scipy.optimize import least_squares

    from va2jax.sim import function

    stop = 5e-3 if a.quick else 20e-3
    times = np.linspace(stop / 20, stop, 20)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "graetz.sim"
        p.write_text(netlist())
        # a fixed time grid: steps of at most stop/250 and the truncation-error control switched
        # off (tran_lteratio 1e12), so the accepted steps do not move with the parameters and the
        # samples are smooth functions of them (an adaptive grid adds step-controller noise of the
        # order of reltol to the samples, and so to the fitted values)
        f = function(p, list(TRUE), "tran", ["outp"], times=times, stop=stop, maxstep=stop / 250,
                     max_points=400, options={"tran_lteratio": 1e12})
    ref = jax.jit(f)(TRUE)
    if int(ref["status"]) != 0:
        print(f"the transient failed (status {int(ref['status'])})")
        return 1
    data = np.asarray(ref["outp"])

    def values(z):
        return {"dpwr.is": jnp.exp(z[0]), "dpwr.n": z[1]}

    res_fn = jax.jit(lambda z: f(values(z))["outp"] - data)
    jac_fn = jax.jit(jax.jacrev(lambda z: f(values(z))["outp"]))
    z0 = np.array([np.log(START["dpwr.is"]), START["dpwr.n"]])
    sol = least_squares(lambda z: np.asarray(res_fn(jnp.asarray(z))),
                        z0, jac=lambda z: np.asarray(jac_fn(jnp.asarray(z))),
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, x_scale="jac")
    got = {"dpwr.is": float(np.exp(sol.x[0])), "dpwr.n": float(sol.x[1])}
    worst = 0.0
    for k in TRUE:
        err = abs(got[k] / TRUE[k] - 1)
        worst = max(worst, err)
        print(f"{k:8s} start {START[k]:.6g}  fitted {got[k]:.10g}  true {TRUE[k]:.6g}  rel err {err:.3g}")
    print(f"{sol.nfev} residual and {sol.njev} Jacobian evaluations")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
