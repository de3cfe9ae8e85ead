"""Size a PSP103 common-source amplifier (transistor width W, load resistor R_D) for a target
gain and output bias, with derivatives from the simulator.

The amplifier (generated PSP103, ``examples/circuits``-style netlist below) is driven by a
50 mV, 1 GHz sine on a 0.6 V gate bias. From a transient of the output ``v(d)``, sampled at
``M`` equally spaced times over the last input period, the two figures of merit are

    bias = (1/M)·Σ v(d, t_k)                                (V, the mean)
    gain = |(2/M)·Σ v(d, t_k)·exp(−jω t_k)| / 50 mV          (V/V, the first harmonic)

Targets: those of W = 2 µm, R_D = 5 kΩ. The sizing starts 30 % (W) and 20 % (R_D) off and solves
``(bias, gain) = targets`` with SciPy's ``least_squares`` (trust-region reflective); the
Jacobian comes from forward-mode sensitivities of the transient (``jax.jacfwd`` of
:func:`va2jax.sim.function` with ``analysis="tran"``; docs/sim.md, "Differentiable analyses").
The transient runs on a fixed grid (``maxstep`` bound, ``tran_lteratio = 1e12``) so that the
figures are smooth functions of the sizes (an adaptive grid adds step-controller noise of the
order of ``reltol``).

Run: ``python examples/size_psp103_amp.py [--quick]`` (``--quick``: 1.5 ns on a 10 ps grid
instead of 3 ns on 5 ps). Prints the sizes, the figures and their relative errors; exits
non-zero when a figure misses its target by more than 1e-6 relative.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

NETLIST = """Common-source amplifier, generated PSP103, resistive load
load "resistor.osdi"
load "capacitor.osdi"
load "psp103v4.osdi"
model r resistor
model c capacitor
model vsource vsource
model nmos psp103va ( type=1 toxo=2n vfbo=-1 nsubo=3e23 uo=0.04 )
vdd (vdd 0) vsource dc=1.2
vin (g 0) vsource dc=0.6 type="sine" sinedc=0.6 ampl=50m freq=1G
rd (vdd d) r r=5k
cl (d 0) c c=50f
m1 (d g 0 0) nmos w=2u l=0.2u
"""

TRUE = {"m1.w": 2e-6, "rd": 5e3}
START = {"m1.w": 1.3 * 2e-6, "rd": 0.8 * 5e3}
FREQ, AMPL, M = 1e9, 50e-3, 16


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    import jax
    import jax.numpy as jnp
    from scipy.optimize import least_squares

    from va2jax.sim import function

    stop, grid = (1.5e-9, 10e-12) if a.quick else (3e-9, 5e-12)
    times = stop - 1 / FREQ + np.arange(M) / (M * FREQ)  # the last period, M points
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "amp.sim"
        p.write_text(NETLIST)
        f = function(p, list(TRUE), "tran", ["d"], times=times, stop=stop, maxstep=grid,
                     max_points=int(stop / grid) + 40, options={"tran_lteratio": 1e12})
    # the first harmonic from its cosine and sine parts (real arithmetic: docs/sim.md on complex
    # dots under batched derivatives with va2jax's default XLA flags)
    cos, sin = np.cos(2 * np.pi * FREQ * times), np.sin(2 * np.pi * FREQ * times)

    def figures(v):
        y = f(v)["d"]
        a1 = 2 / M * jnp.sqrt(jnp.sum(y * cos) ** 2 + jnp.sum(y * sin) ** 2)
        return jnp.stack([jnp.mean(y), a1 / AMPL])

    fig = jax.jit(figures)
    ref = jax.jit(f)(TRUE)
    if int(ref["status"]) != 0:
        print(f"the transient failed (status {int(ref['status'])})")
        return 1
    target = np.asarray(fig(TRUE))
    scale = np.array([TRUE["m1.w"], TRUE["rd"]])  # the unknowns in units of the true sizes

    def values(z):
        return {"m1.w": z[0] * scale[0], "rd": z[1] * scale[1]}

    res_fn = jax.jit(lambda z: figures(values(z)) / target - 1)
    jac_fn = jax.jit(jax.jacfwd(lambda z: figures(values(z)) / target))
    z0 = np.array([START["m1.w"], START["rd"]]) / scale
    sol = least_squares(lambda z: np.asarray(res_fn(jnp.asarray(z))), z0,
                        jac=lambda z: np.asarray(jac_fn(jnp.asarray(z))),
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    got = values(sol.x)
    reached = np.asarray(fig(got))
    for k in TRUE:
        print(f"{k:5s} start {START[k]:.6g}  sized {float(got[k]):.10g}  (the targets' {TRUE[k]:.6g})")
    worst = 0.0
    for name, t, r in zip(("bias (V)", "gain (V/V)"), target, reached):
        err = abs(r / t - 1)
        worst = max(worst, err)
        print(f"{name:10s} target {t:.10g}  reached {r:.10g}  rel err {err:.3g}")
    print(f"{sol.nfev} residual and {sol.njev} Jacobian evaluations")
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
