"""The transfer-function analyses ``dcxf``/``acxf`` as differentiable JAX functions of
parameters (:func:`xf_function`).

Kept apart from :mod:`._xf` (the analyses a netlist runs, on the host with NumPy/SciPy), since it is
built on :mod:`.differentiable` and :mod:`.simulation` themselves.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import Va2JaxError
from ._xf import _INFINITE, _SAVE, _excitation, _out_rows, xf_outputs
from .netlist import NetlistError

_WHERE = "xf_function"


def xf_function(netlist, params, out, analysis: str = "dcxf", *, freqs=None,
                outputs: Sequence[str] | None = None, options=None, polish: int = 3,
                prefer: str | None = None):
    """VACASK's ``dcxf``/``acxf`` as a pure, differentiable JAX function of parameters.

    ``f = xf_function("amp.sim", ["nmod.kp", "rd", "vin.dc"], "d", "acxf", freqs=[1e3, 1e6])``;
    ``f(values)`` → ``{"tf(vin)": …, "zin(vin)": …, …, "status": 0 when the operating point
    converged}``. ``out``: the output, a node or branch name or a pair ``(p, n)``; ``outputs``:
    the vectors, as a VACASK ``save`` names them — ``"tf(s)"``, ``"zin(s)"``, ``"yin(s)"`` for an
    independent source ``s``, or ``"default"`` (``tf`` and ``zin`` of every source, in VACASK's
    order; also what ``None`` gives). ``dcxf``: float64 scalars; ``acxf``: complex128 arrays of
    shape ``(len(freqs),)`` (``freqs`` in Hz, ≥ 0).

    With ``A = J_f`` (dcxf) or ``A = J_f + jω·J_q`` (acxf, ``ω = 2πf``) at the operating point
    ``x*(p)`` and ``X = A⁻¹·e_s`` for the unit excitation ``e_s`` of source ``s``
    (:mod:`._xf`): ``tf(s) = X[p_out] − X[n_out]`` (V/V, V/A, A/V or A/A), for a voltage
    source ``yin(s) = −X[br_s]`` (S), ``zin(s) = 1/yin(s)`` (Ω), for a current source
    ``zin(s) = X[n_s] − X[p_s]`` (Ω), ``yin(s) = 1/zin(s)`` (S); an infinite one is ``1e20``
    (its derivative then 0). Built on :func:`.differentiable.function`'s ``ac`` form: ``x*``
    with its implicit derivative, ``J_f``/``J_q`` of every generated model traced in ``p`` and
    ``x*``, and the solve in the real ``2n×2n`` form (:func:`.differentiable._ac_solve`), so
    :func:`jax.grad`/:func:`jax.jacfwd` of any output (of its real part, modulus, …) reach the
    parameters through the bias point and the small-signal matrices. Parameters: keys as for
    :func:`.differentiable.function` (``"dmod.is"``, ``"m1.w"``, ``"v1.dc"``, ``"r1"``,
    ``"c1.c"``). An unknown parameter, output or source: a one-line
    :class:`~va2jax.errors.Va2JaxError`.
    """
    import jax.numpy as jnp

    from .assembly import assemble_fn
    from .differentiable import _ac_solve, function
    from .simulation import Simulation

    a = str(analysis).lower()
    if a not in ("dcxf", "acxf"):
        raise Va2JaxError(f"{_WHERE}: unsupported analysis {analysis!r} (dcxf, acxf)")
    if a == "dcxf":
        if freqs is not None:
            raise Va2JaxError(f"{_WHERE}: freqs is for analysis 'acxf'")
        fr = np.zeros(1)
    else:
        if freqs is None:
            raise Va2JaxError(f"{_WHERE}: analysis 'acxf' needs freqs (Hz)")
        fr = np.atleast_1d(np.asarray(freqs, float))
        if fr.ndim != 1 or fr.size == 0 or not np.all(np.isfinite(fr)) or np.any(fr < 0):
            raise Va2JaxError(f"{_WHERE}: freqs must be finite frequencies ≥ 0 (Hz)")
    sim = netlist if isinstance(netlist, Simulation) else Simulation.from_file(netlist, prefer)
    system = sim.system
    circ = sim.circuit
    outs = [out] if isinstance(out, str) else [str(o) for o in out]
    if not 1 <= len(outs) <= 2:
        raise Va2JaxError(f"{_WHERE}: out names one or two nodes, not {len(outs)}")
    saves = ["default"] if outputs is None else [str(o).strip() for o in outputs]
    for s in saves:
        if s.lower() != "default" and not _SAVE.match(s):
            raise Va2JaxError(f"{_WHERE}: output {s!r}: not tf(source), zin(source), "
                              "yin(source) or default")
    try:
        rows = _out_rows(system, ["0" if nm in circ.ground else nm for nm in outs], _WHERE, None)
        vecs = xf_outputs(system, saves, {i.name: i.master for i in circ.instances},
                          list(circ.models), _WHERE)
    except NetlistError as exc:
        msg = re.sub(r"^.*?xf_function: ", "", str(exc), count=1)
        raise Va2JaxError(f"{_WHERE}: " + re.sub(r"^save ", "output ", msg)) from None
    try:
        cf = function(sim, list(params), "ac", outputs=[], freqs=fr, options=options,
                      polish=polish, prefer=prefer)
    except Va2JaxError as exc:
        raise Va2JaxError(f"{_WHERE}: " + re.sub(r"^function: ", "", str(exc))) from None
    n = system.n
    srcs: dict[str, int] = {}
    for _, _, s in vecs:
        srcs.setdefault(s.name, len(srcs))
    E = [jnp.asarray(_excitation(system, s)[:n]) for s in
         {s.name: s for _, _, s in vecs}.values()]
    up, un = rows

    def inverse(v):
        nz = v != 0
        return jnp.where(nz, 1.0 / jnp.where(nz, v, 1.0), _INFINITE)

    def f(values):
        p = cf._vector(values)
        x, status = cf._op_core(p)
        _, _, Jf, Jq = assemble_fn(cf._system(p))(x)
        cols = []
        for e in E:  # one small-signal solve per source, (nf, n + 1) with the ground slot last
            X = _ac_solve(Jf, Jq, e, fr)
            cols.append(jnp.concatenate([X, jnp.zeros((X.shape[0], 1), X.dtype)], axis=1))
        res = {}
        for name, what, s in vecs:
            X = cols[srcs[s.name]]
            if what == "tf":
                v = X[:, up] - X[:, un]
            elif s.kind == "v":
                y = -X[:, s.row]
                v = inverse(y) if what == "zin" else y
            else:
                z = X[:, s.n] - X[:, s.p]
                v = z if what == "zin" else inverse(z)
            res[name] = jnp.real(v[0]) if a == "dcxf" else v
        res["status"] = status.astype(jnp.int32)
        return res

    return f
