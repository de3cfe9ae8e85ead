"""The noise analysis as a differentiable JAX function of model parameters (:func:`noise_function`).

Kept apart from :mod:`._noise_analysis` (the analysis a netlist runs, imported by
:mod:`.simulation`), since it is built on :mod:`.differentiable` and :mod:`.simulation` themselves.
"""
from __future__ import annotations

import numpy as np

from ..errors import Va2JaxError
from ._noise_analysis import P_K, _gidx, _input_source, _output_unknowns
from .netlist import AnalysisDecl, NetlistError


def noise_function(netlist, params, freqs, out, input: str | None = None, *,
                   options=None, polish: int = 3, prefer: str | None = None):
    """The noise analysis as a pure, differentiable JAX function of model parameters.

    ``f = noise_function("amp.sim", ["nmod.kf", "m1.w"], freqs, "out", "vin")``;
    ``f(values)`` → ``{"onoise": (nf,) V²/Hz, "gain": (nf,), "integrated": V² (trapezoid of
    onoise over ``freqs``), "status": 0 when the operating point converged}``. ``out``: a node
    name or a pair ``(p, n)``; ``input``: the independent source of ``gain`` (``None``: no gain).

    Built on :func:`.differentiable.function` (its ``ac`` form: the operating point with its
    implicit derivative, the Jacobians of every generated model traced in ``p`` and in ``x*``);
    the adjoint solve of :func:`run_noise` is done in JAX, and each generated model's densities
    come from ``Model.noise_function`` at the traced operating point and parameters, so
    ``jax.grad`` of any output reaches the parameters through the bias point, the transfer
    functions and the densities. Parameters: keys as for :func:`.differentiable.function`
    (``"dmod.is"``, ``"m1.w"``, ``"v1.dc"``, ``"r1"``); the thermal noise of a resistor va2jax
    stamps (``4kT/r``) is taken at the netlist's ``r``, so an ``r`` key of a noisy stamped
    resistor is refused (load the ``resistor`` module with ``$mfactor`` to trace it).
    """
    import jax
    import jax.numpy as jnp

    from .assembly import assemble_fn
    from .differentiable import function
    from .simulation import Simulation

    fr = np.atleast_1d(np.asarray(freqs, float))
    if fr.ndim != 1 or fr.size == 0 or not np.all(np.isfinite(fr)) or np.any(fr <= 0):
        raise Va2JaxError("noise_function: freqs must be finite frequencies above 0 Hz")
    sim = netlist if isinstance(netlist, Simulation) else Simulation.from_file(netlist, prefer)
    sys = sim.system
    noisy_r = {nm.lower() for nm, *_rest, on in sys.noise_resistors if on}
    for k in params:
        head = str(k).lower().split(".")[0]
        if head in noisy_r and (str(k).count(".") == 0 or str(k).lower().endswith(".r")):
            raise Va2JaxError(f"noise_function: parameter {k!r}: the noise of a stamped resistor "
                              "is not traced (load the resistor module for it, e.g. $mfactor=1)")
    cf = function(sim, list(params), "ac", outputs=[], freqs=fr, options=options, polish=polish,
                  prefer=prefer)
    outs = [out] if isinstance(out, str) else list(out)
    decl = AnalysisDecl("noise_function", "noise",
                        {"out": "[" + ", ".join(f'"{o}"' for o in outs) + "]"}, None)
    try:
        up, un, _ = _output_unknowns(sys, decl)
        src = None
        if input is not None:
            decl.params["in"] = f'"{input}"'
            src = _input_source(sys, decl)
    except NetlistError as exc:
        raise Va2JaxError(str(exc).replace("analysis noise_function: ", "noise_function: ")) from None
    n = sys.n
    c = np.zeros(n + 1)
    c[up] += 1.0
    c[un] -= 1.0
    c = jnp.asarray(c[:n])
    b_in = np.zeros(n + 1)
    if src is not None:
        if src.kind == "v":
            b_in[src.row] = 1.0
        else:
            b_in[src.p] -= 1.0
            b_in[src.n] += 1.0
    b_in = jnp.asarray(b_in[:n])
    T = sim.options.temp + 273.15
    # stamped resistors: constant densities
    rP, rN, rS = [], [], []
    for _nm, p_, n_, r, on in sys.noise_resistors:
        if on:
            rP.append(_gidx(p_, n))
            rN.append(_gidx(n_, n))
            rS.append(abs(4 * P_K * T / r))
    # generated models: Model.noise_function per group, vmapped over instances and frequencies
    gens = []
    for tg in cf._extra.values():
        if getattr(tg, "kind", "") != "generated":
            continue
        m = tg.ref.model.m
        if not m.ir.noise_sources:
            continue
        # the instances' given values that are not traced (equal on every instance)
        fixed = {k: tg.given[0][k] for k in sorted({k for g in tg.given for k in g})
                 if k not in tg.names}
        nfn = m.noise_function(tg.names, fixed)
        idx = np.asarray(tg.ref.idx)
        loc = [(s.a, s.b) for s in m.ir.noise_sources]
        P = np.array([[_gidx(idx[k, a], n) for a, _ in loc] for k in range(idx.shape[0])])
        N = np.array([[_gidx(idx[k, b], n) if b is not None else -1 for _, b in loc]
                      for k in range(idx.shape[0])])
        gens.append((tg, nfn, np.where((idx >= 0) & (idx < n), idx, n), P, N))
    w = 2 * np.pi * fr

    def core(p):
        x, status = cf._op_core(p)
        sysm = cf._system(p)
        _, _, Jf, Jq = assemble_fn(sysm)(x)
        # (Jf + jωJq)ᵀ·y = c as the real system [[Gᵀ, −ωCᵀ], [ωCᵀ, Gᵀ]]·[yr; yi] = [c; 0]
        # (JAX 0.10 loses batched tangents — jacfwd over several parameters, jacrev — on a
        # complex solve whose matrix comes from the operating point's custom_jvp; real is exact)
        G, Cw = Jf.T[None, :, :], w[:, None, None] * Jq.T[None, :, :]
        M = jnp.concatenate([jnp.concatenate([jnp.broadcast_to(G, Cw.shape), -Cw], axis=2),
                             jnp.concatenate([Cw, jnp.broadcast_to(G, Cw.shape)], axis=2)], axis=1)
        rhs = jnp.broadcast_to(jnp.concatenate([c, jnp.zeros(n)]), (len(fr), 2 * n))
        z = jnp.linalg.solve(M, rhs[..., None])[..., 0]
        y = z[:, :n] + 1j * z[:, n:]
        yy = jnp.concatenate([y, jnp.zeros((len(fr), 1), y.dtype)], axis=1)  # ground slot
        onoise = jnp.zeros(len(fr))
        if rS:
            H = yy[:, np.asarray(rP)] - yy[:, np.asarray(rN)]
            onoise = onoise + jnp.sum(jnp.abs(H) ** 2 * jnp.asarray(rS)[None, :], axis=1)
        xx = jnp.concatenate([x, jnp.zeros(1)])
        for tg, nfn, gidx, P, N in gens:
            vals = tg._values(p, tg.values0)
            V = xx[gidx]  # (Ninst, n_local)

            def one(v_inst, V_inst, fq, nfn=nfn, tg=tg):
                return nfn(v_inst, tg.T, V_inst, fq)

            per_f = jax.vmap(jax.vmap(one, in_axes=(0, 0, None)), in_axes=(None, None, 0))
            S = jnp.abs(per_f(vals, V, jnp.asarray(fr)))  # (nf, Ninst, n_src)
            H = yy[:, P] - yy[:, N]  # (nf, Ninst, n_src)
            onoise = onoise + jnp.sum(jnp.abs(H) ** 2 * S, axis=(1, 2))
        res = {"onoise": onoise,
               "integrated": jnp.sum(0.5 * (onoise[1:] + onoise[:-1]) * jnp.diff(jnp.asarray(fr))),
               "status": status}
        if src is not None:
            res["gain"] = jnp.abs(y @ b_in.astype(complex)) ** 2
        return res

    # Reverse mode through this chain (JAX 0.10) disagreed with forward mode and with finite
    # differences (1e-5 relative at two frequencies, worse at more; cause not found), so the
    # cotangent rule is forward mode: the Jacobian in the K parameters (K tangents) times the
    # cotangent. jax.grad then costs K forward tangents.
    @jax.custom_vjp
    def traced(p):
        return core(p)

    def traced_fwd(p):
        out = core(p)
        return out, jax.jacfwd(core)(p)

    def traced_bwd(jac, ct):
        g = sum(jnp.tensordot(ct[k], jac[k], axes=ct[k].ndim) for k in ct if k != "status")
        return (g,)

    traced.defvjp(traced_fwd, traced_bwd)

    def f(values):
        out = dict(traced(cf._vector(values)))
        out["status"] = out["status"].astype(jnp.int32)
        return out

    return f
