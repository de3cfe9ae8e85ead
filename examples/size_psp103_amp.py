"""Size a PSP103 common-source amplifier (transistor width W and length L, load resistor R_D) for
a target low-frequency gain, bandwidth and output bias, with derivatives from the simulator.

The amplifier (generated PSP103, `va2jax/data/circuits/cs_psp103.sim`): an n-channel PSP103 biased at V_GS = 0.6 V, a
load resistor R_D to the 1.2 V supply and a 50 fF load capacitance on the drain. Its figures of
merit, from the operating point and a two-frequency AC analysis of :func:`va2jax.sim.function`:

    bias = v(d) at the operating point                              (V)
    gain = |H(0)|,  H(f) = v(d)/v(g) small-signal                    (V/V)
    bw   = f₁ / sqrt((|H(0)| / |H(f₁)|)² − 1),  f₁ = 600 MHz         (Hz)

``bw`` is the −3 dB frequency of the single-pole response ``H(0)/(1 + j·f/bw)`` through the AC
sample at ``f₁`` (near the pole): a differentiable closed form in two AC samples at fixed
frequencies. It is exact for a single-pole stage; here the drain node's RC pole dominates and the
rest of the response (the gate–drain capacitance's right-half-plane zero, PSP103's other charges)
moves the true −3 dB point by a few parts per million: with ``--check`` the script prints ``bw``
against the −3 dB point of a dense AC sweep of the simulator itself (``Simulation`` AC analysis,
2000 points per decade, the crossing of |H|² interpolated linearly in log f, error below 1e-7)
at the target and start sizes — measured 2.0e-6 and 4.4e-6 relative (docs/sim.md).

Targets: the figures of W = 2 µm, L = 0.2 µm, R_D = 5 kΩ. The sizing starts 30 % (W), 25 % (L)
and 20 % (R_D) off and solves ``figures(W, L, R_D) = targets`` (relative residuals) with SciPy's
``least_squares`` (trust-region reflective), the Jacobian from ``jax.jacfwd`` of the operating
point and the AC analysis (implicit differentiation at the operating point; docs/sim.md,
"Differentiable analyses"; PSP103's parameter and voltage tangents from its native tangent
kernels, docs/native.md).

Second mode, ``--tran``: the same amplifier driven by a 50 mV, 1 GHz sine on the 0.6 V gate
bias; from ``M = 16`` samples of a transient's ``v(d)`` over the last input period, its mean
(bias) and first harmonic over 50 mV (gain); W and R_D sized from 30 % and 20 % off with
``jax.jacfwd`` of the transient's forward sensitivities, on a fixed grid (``maxstep``,
``tran_lteratio = 1e12``) so that the figures are smooth in the sizes (``--quick``: 1.5 ns on
a 10 ps grid instead of 3 ns on 5 ps; a few minutes, not run by ``make test``).

Run: ``python examples/size_psp103_amp.py [--quick] [--check] [--tran]``. ``--quick``: least_squares
tolerances 1e-9 instead of 1e-15 (the sizing converges in 6 Jacobians either way); ``--check`` adds the
dense-sweep comparison of ``bw``. Prints the sizes, the figures and their relative errors; exits
non-zero when a figure misses its target by more than 1e-6 relative.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from va2jax._circuits import circuit_text, variant

#: the amplifier (``data/circuits/cs_psp103.sim``, shared with tests/sim/test_diff_psp103.py), its
#: sizes as placeholders; AC sizing: the input's small-signal source only; ``--tran``: its sine only
_SIZES = {"r r=5k": "r r={rd}", "w=2u l=0.2u": "w={w} l={l}"}
NETLIST = variant(circuit_text("cs_psp103"), {**_SIZES, ' type="sine" sinedc=0.6 ampl=50m freq=1G': ""})
TRAN_NETLIST = variant(circuit_text("cs_psp103"), {**_SIZES, "mag=1 ": ""})
TRAN_TRUE = {"m1.w": 2e-6, "rd": 5e3}
TRAN_START = {"m1.w": 1.3 * 2e-6, "rd": 0.8 * 5e3}
FREQ, AMPL, M = 1e9, 50e-3, 16  # the transient's input (Hz, V) and samples per period

TRUE = {"m1.w": 2e-6, "m1.l": 0.2e-6, "rd": 5e3}
START = {"m1.w": 1.3 * 2e-6, "m1.l": 0.75 * 0.2e-6, "rd": 0.8 * 5e3}
F1 = 600e6  # Hz, the AC sample for the bandwidth (near the load pole)
NAMES = ("bias (V)", "gain (V/V)", "bw (Hz)")


def netlist(v: dict, control: str = "") -> str:
    text = NETLIST.format(w=v["m1.w"], l=v["m1.l"], rd=v["rd"])
    return text + (f"control\n{control}\nendc\n" if control else "")


def dense_bw(v: dict, d: Path) -> float:
    """The −3 dB frequency (Hz) of |v(d)| from the simulator's AC sweep, 1e8–1e10 Hz at 2000
    points per decade; the crossing of |H|² = |H(0)|²/2 interpolated linearly in log f."""
    from va2jax.sim import Simulation

    p = d / "dense.sim"
    p.write_text(netlist(v, '  analysis a0 ac values=[0]\n'
                            '  analysis a1 ac from=1e8 to=1e10 mode="dec" points=2000'))
    res = Simulation.from_file(p).run()
    h0 = abs(res["a0"]["d"][0])
    f, h2 = res["a1"].scale, np.abs(res["a1"]["d"]) ** 2
    k = int(np.nonzero(h2 < h0 ** 2 / 2)[0][0])
    lf = np.interp(h0 ** 2 / 2, [h2[k], h2[k - 1]], np.log([f[k], f[k - 1]]))
    return float(np.exp(lf))


def size_tran(quick: bool) -> int:
    """The transient mode (``--tran``): W and R_D for the output's mean and first harmonic."""
    import jax
    import jax.numpy as jnp
    from scipy.optimize import least_squares

    from va2jax.sim import function

    stop, grid = (1.5e-9, 10e-12) if quick else (3e-9, 5e-12)
    times = stop - 1 / FREQ + np.arange(M) / (M * FREQ)  # the last period, M points
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "amp.sim"
        p.write_text(TRAN_NETLIST.format(w=2e-6, l=0.2e-6, rd=5e3))
        f = function(p, list(TRAN_TRUE), "tran", ["d"], times=times, stop=stop, maxstep=grid,
                     max_points=int(stop / grid) + 40, options={"tran_lteratio": 1e12})
    # the first harmonic from its cosine and sine parts (real arithmetic: docs/sim.md on complex
    # dots under batched derivatives with va2jax's default XLA flags)
    cos, sin = np.cos(2 * np.pi * FREQ * times), np.sin(2 * np.pi * FREQ * times)

    def figures(v):
        y = f(v)["d"]
        a1 = 2 / M * jnp.sqrt(jnp.sum(y * cos) ** 2 + jnp.sum(y * sin) ** 2)
        return jnp.stack([jnp.mean(y), a1 / AMPL])

    fig = jax.jit(figures)
    if int(jax.jit(f)(TRAN_TRUE)["status"]) != 0:
        print("the transient failed")
        return 1
    target = np.asarray(fig(TRAN_TRUE))
    scale = np.array(list(TRAN_TRUE.values()))

    def values(z):
        return {"m1.w": z[0] * scale[0], "rd": z[1] * scale[1]}

    res_fn = jax.jit(lambda z: figures(values(z)) / target - 1)
    jac_fn = jax.jit(jax.jacfwd(lambda z: figures(values(z)) / target))
    sol = least_squares(lambda z: np.asarray(res_fn(jnp.asarray(z))),
                        np.array(list(TRAN_START.values())) / scale,
                        jac=lambda z: np.asarray(jac_fn(jnp.asarray(z))),
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    got = values(sol.x)
    return report(TRAN_TRUE, TRAN_START, got, ("bias (V)", "gain (V/V)"), target,
                  np.asarray(fig(got)), sol)


def report(true, start, got, names, target, reached, sol) -> int:
    """Print the sizes, the figures and their relative errors; 0 when all are within 1e-6."""
    for k in true:
        print(f"{k:5s} start {start[k]:.6g}  sized {float(got[k]):.10g}  (the targets' {true[k]:.6g})")
    worst = 0.0
    for name, t, r in zip(names, target, reached):
        err = abs(r / t - 1)
        worst = max(worst, err)
        print(f"{name:10s} target {t:.10g}  reached {r:.10g}  rel err {err:.3g}")
    print(f"{sol.nfev} residual and {sol.njev} Jacobian evaluations")
    return 0 if worst <= 1e-6 else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--tran", action="store_true")
    a = ap.parse_args()
    if a.tran:
        return size_tran(a.quick)
    import jax
    import jax.numpy as jnp
    from scipy.optimize import least_squares

    from va2jax.sim import function

    keys = list(TRUE)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "amp.sim"
        p.write_text(netlist(TRUE))
        op = function(p, keys, "op", ["d"])
        ac = function(p, keys, "ac", ["mag(d)"], freqs=[0.0, F1])

    def figures(v):
        h = ac(v)["mag(d)"]
        bw = F1 / jnp.sqrt((h[0] / h[1]) ** 2 - 1)
        return jnp.stack([op(v)["d"], h[0], bw])

    fig = jax.jit(figures)
    status = jax.jit(lambda v: op(v)["status"] | ac(v)["status"])
    if int(status(TRUE)) != 0:
        print(f"the operating point failed (status {int(status(TRUE))})")
        return 1
    target = np.asarray(fig(TRUE))
    scale = np.array([TRUE[k] for k in keys])  # the unknowns in units of the true sizes

    def values(z):
        return {k: z[i] * scale[i] for i, k in enumerate(keys)}

    res_fn = jax.jit(lambda z: figures(values(z)) / target - 1)
    jac_fn = jax.jit(jax.jacfwd(lambda z: figures(values(z)) / target))
    z0 = np.array([START[k] for k in keys]) / scale
    tol = 1e-9 if a.quick else 1e-15
    sol = least_squares(lambda z: np.asarray(res_fn(jnp.asarray(z))), z0,
                        jac=lambda z: np.asarray(jac_fn(jnp.asarray(z))),
                        xtol=tol, ftol=tol, gtol=tol)
    got = values(sol.x)
    rc = report(TRUE, START, got, NAMES, target, np.asarray(fig(got)), sol)
    if int(status(got)) != 0:
        print(f"the operating point at the sized values failed (status {int(status(got))})")
        return 1
    if a.check:
        with tempfile.TemporaryDirectory() as d:
            for label, v in (("target", TRUE), ("start", START)):
                dense = dense_bw(v, Path(d))
                bw = float(fig(v)[2])
                print(f"bw at the {label} sizes: single-pole {bw:.8g} Hz, dense AC sweep "
                      f"{dense:.8g} Hz, rel diff {bw / dense - 1:.2g}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
