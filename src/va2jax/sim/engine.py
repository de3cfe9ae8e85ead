"""The simulation engine: Newton–Raphson on an MNA :class:`~.mna.System` and the DC operating
point built on it (plain Newton → gmin stepping → source stepping), as traceable functions.

Newton iteration (one compiled ``lax.while_loop``)::

    F(x) = f(x) − b + a0·q(x) + h + gshunt·x_v
    J(x) = ∂f/∂x + a0·∂q/∂x + gshunt·I_v
    x ← x + clip(−J⁻¹F, ±dvmax on the node voltages devices see)

``a0`` and ``h`` encode the integration formula for ``dq/dt`` (both 0 for DC). Convergence
(VACASK's test, see docs/sim.md): on the second iteration or later, with no clipping,
``|Δx_i| ≤ max(reltol·max(|x_i|, xref_i), vntol | abstol)`` for every unknown and (option
``nr_residualcheck``) ``|F_i| ≤ max(reltol·max(r_i, rref_i), abstol | vntol)``. ``r_i``
(option ``nr_resref``): ``"device"`` — VACASK's largest single element contribution to equation
``i`` (each instance's own residual and, in the transient, its own dq/dt; :mod:`._resref`), the
rows of device-internal unknowns untested; ``"sum"`` — the largest of ``|f_i|, |b_i|, |a0·q_i|,
|hist_i|, |J_ij·x_j|``. ``xref``/``rref`` are the transient's largest
values over past time points (VACASK ``relref="alllocal"``), 0 in the operating point.

The operating point (:func:`dc_op`) is one traced function used by :meth:`Engine.op` (compiled
once per circuit) and by the batched sweeps of :mod:`.batch` (vmapped over parameter sets); it
reports how it ended as an :class:`OpStatus` code, which only the host turns into a message.
"""
from __future__ import annotations

import enum
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _config
from ..errors import Va2JaxError
from .assembly import assemble_fn, limited_assemble_fn, zero_states
from .mna import System


def loop_compiler_options() -> dict[str, str]:
    """XLA options for the simulator's compiled Newton and time loops.

    va2jax compiles generated model code with XLA's operator fusion off (per compilation; it makes
    compile time of large model code super-linear, see docs/performance.md). The simulator's loops
    are small — large models are evaluated by native kernels or their own compiled evaluator — so
    they are compiled fused, as XLA does by default: fewer, larger kernels per Newton iteration.
    Fused code may contract an inlined model's ``a*b + c`` into one rounding (an FMA) unless the
    ISA cap ``VA2JAX_XLA_MAX_ISA=AVX`` is in force (``codegen._xla.fusion_is_exact``); waveforms
    are compared with peers at the mV level, so the loops stay fused either way.
    ``VA2JAX_SIM_FUSION=0`` compiles them unfused (:data:`~va2jax.codegen.FUSION_OFF`).
    """
    from ..codegen import FUSION_OFF, FUSION_ON

    if not _config.get("SIM_FUSION"):
        return dict(FUSION_OFF)
    return dict(FUSION_ON)


class ConvergenceError(Va2JaxError):
    """Newton failed (message names the time, iteration count and worst node). ``partial``: a
    transient's points accepted before the failure (a :class:`.results.Result`), or ``None``."""

    partial: Any = None


@dataclass
class Options:
    """Simulator options (VACASK names; SPICE ``.options`` are mapped onto them)."""

    reltol: float = 1e-3
    vntol: float = 1e-6
    abstol: float = 1e-12
    chgtol: float = 1e-14
    gshunt: float = 0.0
    op_itl: int = 100
    tran_itl: int = 10
    tran_ft: float = 0.25  # step factor after a failed Newton solve
    tran_fs: float = 0.25  # first step: this fraction of min(step, maxstep, tran_fbr·first gap)
    tran_fbr: float = 0.2501  # largest step: this fraction of the breakpoint interval holding t
    tran_predictor: int = 0  # 1: start Newton from the predicted point, 0: from the last point
    tran_redofactor: float = 2.5  # reject a point when h / h_LTE exceeds it (0: never)
    nr_residualcheck: int = 1  # Newton's convergence also checks the residual
    dvmax: float = 2.0
    tran_method: str = "trap"
    tran_lteratio: float = 3.5
    #: time-step control: "vacask" (sim/tran.py) or "ngspice" (sim/_tran_ngspice.py; the SPICE
    #: reader's default)
    tran_control: str = "vacask"
    #: ngspice's truncation-error tolerance factor (tran_control="ngspice"); set by the SPICE
    #: option ``trtol``, which also sets ``tran_lteratio`` (a field of another name, so that
    #: ``from_dict(asdict(o)) == o``: a merged dict never resets ``tran_lteratio``)
    ng_trtol: float = 7.0
    temp: float = 27.0
    #: Newton's linear solver: dense (LAPACK LU), klu (sparse, klujax) or auto (klu from
    #: :data:`SPARSE_THRESHOLD` unknowns on)
    solver: str = "auto"
    limiting: int = 1  # models' own junction limiting ($limit) in Newton: 1 on, 0 off
    #: the residual test's tolerance reference (docs/sim.md "Newton"): "device" — VACASK's, the
    #: largest single element contribution to each equation (instances' own residuals and, in the
    #: transient, their own dq/dt), device-internal rows unchecked; "sum" — va2jax's bound from the
    #: assembled sums and linearised stamps; "auto" — "device" with VACASK's step control and on
    #: the sparse path, "sum" on the dense path under ngspice's step control (tran_control; its
    #: own convergence test); the native Newton and step kernels implement both
    nr_resref: str = "auto"
    # harmonic balance (sim/_hb.py; VACASK's names and defaults, lib/options.cpp)
    hb_itl: int = 100  # Newton iterations of a solve from scratch
    hb_itlcont: int = 50  # Newton iterations of a source-stepping step
    hb_skipinitial: int = 0  # 1: no plain Newton solve first, straight to source stepping
    homotopy_srcstep: float = 0.01  # first raise of the source factor
    homotopy_srcscale: float = 3.0  # raise ×/÷ this after an easy/hard step
    homotopy_minsrcstep: float = 1e-7  # give up below this raise
    homotopy_srcsteps: int = 100  # most source steps

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Options":
        o = cls()
        alias = {"itl1": "op_itl", "itl4": "tran_itl", "method": "tran_method", "trtol": "tran_lteratio",
                 "nr_itl": "op_itl"}
        for k, v in d.items():
            key = alias.get(k.lower(), k.lower())
            if k.lower() == "trtol":  # SPICE's trtol: VACASK's lteratio and ngspice's own
                try:
                    o.ng_trtol = float(v)
                except (TypeError, ValueError):
                    raise Va2JaxError(f"option {k}: bad value {v!r}") from None
            if hasattr(o, key):
                cur = getattr(o, key)
                try:
                    setattr(o, key, type(cur)(v.lower() if isinstance(v, str) else v))
                except (TypeError, ValueError):
                    raise Va2JaxError(f"option {k}: bad value {v!r}") from None
        if o.tran_method in ("trapezoidal",):
            o.tran_method = "trap"
        if o.tran_method in ("gear", "bdf2"):
            o.tran_method = "gear2"
        if o.tran_method not in ("be", "euler", "trap", "gear2"):
            raise Va2JaxError(f"option tran_method: unknown method {o.tran_method!r} (be, trap, gear2)")
        if o.tran_control not in ("vacask", "ngspice"):
            raise Va2JaxError(f"option tran_control: unknown step control {o.tran_control!r} "
                              "(vacask, ngspice)")
        if o.tran_method == "euler":
            o.tran_method = "be"
        if not 0 < o.tran_fs <= 0.5:  # VACASK's range (lib/options.cpp)
            raise Va2JaxError(f"option tran_fs: {o.tran_fs!r} is outside (0, 0.5]")
        if not 0 < o.tran_fbr <= 1 / 3:  # VACASK's range (lib/options.cpp)
            raise Va2JaxError(f"option tran_fbr: {o.tran_fbr!r} is outside (0, 1/3]")
        if o.nr_resref not in ("auto", "device", "sum"):
            raise Va2JaxError(f"option nr_resref: unknown residual reference {o.nr_resref!r} "
                              "(auto, device, sum)")
        if o.solver not in ("dense", "klu", "auto"):
            raise Va2JaxError(f"option solver: unknown linear solver {o.solver!r} (auto, dense, klu)")
        if o.solver == "klu":
            try:
                import klujax  # noqa: F401
            except ImportError:
                raise Va2JaxError("option solver=klu needs the klujax package (pip install klujax)") from None
        return o


#: Unknowns from which ``options solver=auto`` (the default) uses the sparse path (KLU): a dense
#: LU costs O(n³) and its matrices O(n²) memory; below this size it is the faster one
#: (docs/simulator.md, "Sparse path")
SPARSE_THRESHOLD = 400

#: Option aliases that :meth:`Options.from_dict` maps onto its fields
_OPTION_ALIASES = {"itl1", "itl4", "method", "trtol", "nr_itl"}

#: VACASK options accepted without effect, with the reason given in the warning
_IGNORED_OPTIONS = {
    "nr_bypass": "instance bypass is not implemented (every instance is evaluated each iteration)",
    "nr_bypasstol": "instance bypass is not implemented",
    "nr_convtol": "instance bypass is not implemented (it sets the bypass convergence check)",
    "nr_contbypass": "instance bypass is not implemented",
}


def warn_unused_options(options: dict[str, Any]) -> None:
    """One warning per netlist option that does not change va2jax's results (an option of
    VACASK's that is not implemented, or an unknown name)."""
    import warnings

    fields = set(Options.__dataclass_fields__)
    for k in options:
        key = k.lower()
        if key in fields or key in _OPTION_ALIASES:
            continue
        why = _IGNORED_OPTIONS.get(key, "not supported by va2jax")
        warnings.warn(f"option {k}: not applied by va2jax ({why}); the run goes on without it",
                      stacklevel=2)


def use_sparse(system: System, opts: Options) -> bool:
    """Whether Newton solves ``system`` on the sparse path (``options solver``; ``auto``: from
    :data:`SPARSE_THRESHOLD` unknowns on)."""
    return opts.solver == "klu" or (opts.solver == "auto" and system.n >= SPARSE_THRESHOLD)


def residual_reference(system: System, opts: Options) -> str:
    """The residual reference Newton uses for ``system`` (``options nr_resref``): ``"device"``
    or ``"sum"``; ``"auto"`` is ``"device"`` with VACASK's step control (``tran_control``) and
    on the sparse path, else (a dense circuit under ngspice's step control) ``"sum"``."""
    ref = getattr(opts, "nr_resref", "auto")
    if ref == "auto":
        vacask = getattr(opts, "tran_control", "vacask") == "vacask"
        return "device" if vacask or use_sparse(system, opts) else "sum"
    return ref


def is_singular_error(e: Exception) -> bool:
    """Whether a runtime error is KLU's report of a singular matrix (klujax raises
    ``klu_factor/z_factor failed (singular matrix?)``)."""
    msg = str(e)
    return "klu" in msg and "singular" in msg


def _native_dense_solve(n: int) -> bool:
    """Whether Newton's dense solve of ``n`` unknowns runs as one native kernel
    (:func:`va2jax.codegen.native.dense_solve`) instead of LAPACK through ``jnp.linalg.solve``: on the
    CPU, for ``n`` up to ``DENSE_SOLVE_MAX_N`` (12), unless ``VA2JAX_SIM_DENSE_SOLVE=lapack``."""
    from ..codegen.native import DENSE_SOLVE_MAX_N

    if _config.get("SIM_DENSE_SOLVE") == "lapack" or n > DENSE_SOLVE_MAX_N:
        return False
    if importlib.util.find_spec("llvmlite") is None:  # the native engine's one dependency
        return False
    return jax.default_backend() == "cpu"  # the kernel is CPU code (an accelerator keeps LAPACK's)


def dense_equilibrated_solve(J: jax.Array, r: jax.Array) -> jax.Array:
    """``J⁻¹·r`` after row and column scaling of ``J`` (as KLU does; MNA rows mix conductances
    in S with dimensionless voltage-source rows), LAPACK's LU through ``jnp.linalg.solve``:
    Newton's dense solve where the native one is not used, and the (transposable) solve of
    :mod:`.differentiable`'s implicit derivatives. Linear in ``r``."""
    rs = jnp.max(jnp.abs(J), axis=1)
    rs = jnp.where(rs > 0, rs, 1.0)
    Js = J / rs[:, None]
    cs = jnp.max(jnp.abs(Js), axis=0)
    cs = jnp.where(cs > 0, cs, 1.0)
    return jnp.linalg.solve(Js / cs[None, :], r / rs) / cs


def native_newton(system: System, opts: Options, values: System | None = None, *,
                  device: bool = False) -> Callable | None:
    """The whole Newton solve as one native kernel (:mod:`va2jax.codegen.native._newton`), with
    :func:`make_newton`'s signature and results, or ``None`` where the XLA loop is used: off the
    CPU, on the sparse path, with ``VA2JAX_SIM_NATIVE_NEWTON=0`` or ``VA2JAX_SIM_DENSE_SOLVE=lapack``,
    or when a device group is not evaluated by a native kernel (OSDI libraries, inlined models).
    ``values`` (as for :func:`make_newton`): its ``G``/``C`` may be traced (a batched sweep of
    linear elements or sources; they are the kernel's ``shared`` input, so under ``vmap`` each lane
    gets its own call); its device groups must be ``system``'s own (swept device parameters keep the
    XLA loop). ``device``: VACASK's per-element residual reference (``nr_resref="device"``,
    :mod:`._resref`; the tables of ``values``' linear stamps, as :func:`make_newton`'s loop takes
    them) instead of the bound from the sums."""
    from .adapters import GeneratedGroup
    from .assembly import _gather_table

    if not _config.get("SIM_NATIVE_NEWTON") or _config.get("SIM_DENSE_SOLVE") == "lapack":
        return None
    if jax.default_backend() != "cpu" or importlib.util.find_spec("llvmlite") is None:
        return None
    if use_sparse(system, opts) or system.G is None:
        return None
    if values is not None and (len(values.groups) != len(system.groups) or any(
            v.group is not g.group or v.idx is not g.idx for v, g in zip(values.groups, system.groups))):
        return None
    from ..codegen.native import NewtonGroup as GroupSpec
    from ..codegen.native import make_native_newton

    n = system.n
    stateful = system.stateful_groups()
    limiting = bool(opts.limiting) and bool(stateful)
    specs = []
    for k, bound in enumerate(system.groups):
        grp = bound.group
        if not isinstance(grp, GeneratedGroup) or grp.mode != "native" or grp._native_plan() is None:
            return None
        plan = grp._native_plan()[0]
        idx = np.asarray(bound.idx, np.int64)
        N = idx.shape[0]
        ext = np.concatenate([idx, np.full((N, 1), n, np.int64)], axis=1)  # local ground → x_e[n] = 0
        va = np.take_along_axis(ext, np.asarray(plan.volt_a, np.int64).reshape(N, -1), axis=1)
        vb = np.take_along_axis(ext, np.asarray(plan.volt_b, np.int64).reshape(N, -1), axis=1)
        ker = plan.kernel
        specs.append(GroupSpec(ker.eval_batch_address, ker.n_in_eval, ker.n_out_eval,
                               np.asarray(plan.shared, np.float64), np.asarray(plan.static, np.float64),
                               np.asarray(plan.volt_cols), va, vb, np.asarray(plan.state_cols),
                               np.asarray(plan.state_k), np.asarray(plan.lim_cols), np.asarray(plan.gather),
                               plan.n, plan.num_states, limiting and k in stateful,
                               ker.key if ker.content_keyed else None))
    gidx = [np.asarray(g.idx) for g in system.groups]
    mat_tg = [np.where((i[:, :, None] < n) & (i[:, None, :] < n), i[:, :, None] * n + i[:, None, :], n * n)
              for i in gidx]
    vec_tab = _gather_table(gidx, n)
    lim_tab = _gather_table([gidx[k] for k in stateful], n) if limiting else None
    mat_tab = _gather_table(mat_tg, n * n)
    # the kernel's constants (static rows, tables) are IR text: beyond a few million entries the
    # LLVM parse would cost more than the loop saves
    size = sum(s.static.size + s.gather.size for s in specs) + vec_tab.size + mat_tab.size
    vals = system if values is None else values
    dref = _device_ref_tables(vals) if device else None
    if dref is not None:
        size += sum(a.size for a in dref.arrays())
    if size > _NATIVE_NEWTON_MAX_CONSTANTS:
        return None
    try:
        return make_native_newton(n, vals.G, vals.C, specs,
                                  (vec_tab, lim_tab, mat_tab), np.asarray(system.gmin_mask),
                                  np.asarray(system.is_current), reltol=opts.reltol, vntol=opts.vntol,
                                  abstol=opts.abstol, rescheck=bool(opts.nr_residualcheck),
                                  limiting=limiting, nominal=(system.G, system.C),
                                  clip_mask=system.clip_mask, dref=dref)
    except ValueError as exc:  # LLVM rejected the kernel: the XLA loop computes the same
        import logging

        logging.getLogger(__name__).warning("native Newton kernel unavailable (%s); using the XLA loop", exc)
        return None


def _device_ref_tables(system: System):
    """:class:`va2jax.codegen.native.NewtonDeviceRef` of :class:`._resref.ResRef` (``system``): the
    linear stamps' entries grouped by (element, row) key, each key's entries in their stamping
    order (the order of ``ResRef``'s ``segment_sum`` additions)."""
    from ..codegen.native import NewtonDeviceRef
    from ._resref import ResRef

    rr = ResRef(system)

    def by_key(key: np.ndarray, nkeys: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(key, kind="stable")
        return np.searchsorted(key[order], np.arange(nkeys + 1)), order

    g_ptr, go = by_key(np.asarray(rr.g_key, np.int64), len(rr.g_rows))
    c_ptr, co = by_key(np.asarray(rr.c_key, np.int64), len(rr.c_rows))
    return NewtonDeviceRef(rr.checked, g_ptr, rr.gc[go], rr.gv[go], rr.g_rows, c_ptr, rr.cc[co],
                           rr.cv[co], rr.slot_rows)


def _slot_charges_fn(vsys: System, limiting: bool, assemble: Callable | None = None,
                     rr: Any = None) -> Callable:
    """``slot_charges(x)``: the reactive slots' charges at ``x`` (the transient's initial
    per-element history, ``"device"`` reference) from ``assemble`` (built with ``elements=True``)
    and ``rr`` (:class:`._resref.ResRef`) — :func:`make_newton`'s XLA loop passes its own; for the
    native kernel, both are built at the first call."""
    memo: dict[str, Any] = {"assemble": assemble, "rr": rr}

    def slot_charges(x):
        if memo["assemble"] is None:
            from ._resref import ResRef

            memo["assemble"] = limited_assemble_fn(vsys, None, elements=True)
            memo["rr"] = ResRef(vsys)
        out = memo["assemble"](x, zero_states(vsys) if limiting else None, False)
        return memo["rr"].charges(x, out[7][1])

    return slot_charges


#: Most constant entries (device rows and stamping tables) for which :func:`native_newton` builds
#: its kernel
_NATIVE_NEWTON_MAX_CONSTANTS = 4_000_000


def _host_sparse_solve(Ai: np.ndarray, Aj: np.ndarray, n: int) -> Callable:
    """``solve(Ax, b) -> x`` on the pattern ``(Ai, Aj)`` that never stops the compiled program: a
    host callback to SuperLU (SciPy, COLAMD ordering, partial pivoting) returning NaN where the
    matrix is singular. :meth:`Engine.op`'s second try after KLU reported a singular matrix
    (klujax raises instead of returning, which would end the operating point's stepping)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    rows, cols = np.asarray(Ai), np.asarray(Aj)

    def host(ax, b):
        A = sp.csc_matrix((np.asarray(ax), (rows, cols)), shape=(n, n))
        try:
            with np.errstate(all="ignore"):
                x = splu(A, permc_spec="COLAMD").solve(np.asarray(b))
        except RuntimeError:  # "Factor is exactly singular"
            return np.full(n, np.nan)
        return np.asarray(x, np.float64)

    def solve(ax, b):
        return jax.pure_callback(host, jax.ShapeDtypeStruct((n,), jnp.float64), ax, b,
                                 vmap_method="sequential")

    return solve


def make_newton(system: System, opts: Options, values: System | None = None, *,
                host_solve: bool = False, ngspice: bool = False) -> Callable:
    """The pure (traceable) Newton solve of ``system``:
    ``newton(x0, b, a0, hist, gshunt, maxiter, dvmax, xref=None, rref=None, keep_input=False) ->
    (x, iterations, converged, singular, q, F, r)``; ``xref``, ``rref`` (n,): tolerance references of the
    unknowns (V, A) and of the residual (A, V) from past points (default 0); ``r``: the residual
    reference of the last iterate (the caller's next ``rref`` contribution).

    Iteration ``j`` evaluates the devices at ``x_j``, solves for ``Δx`` and tests it. Results
    ``x = x_j + Δx`` and ``q = q(x_j) + Jq·Δx``; with ``keep_input`` (the transient with
    ``nr_residualcheck=0`` or the ``"device"`` reference) ``q = q(x_j)`` and a converged solve
    returns ``x_j`` itself, the update only tested — VACASK's accepted point (``lib/nrsolver.cpp``
    leaves the loop before applying it; its devices stored their reactive state at that
    evaluation; docs/sim.md "Newton").

    Residual reference (``options nr_resref``, :func:`residual_reference`): with ``"device"``
    (VACASK's, :mod:`._resref`) ``r`` is each equation's largest single element contribution and
    only the rows of the netlist's nodes are tested; ``ehist`` (K,) is then the integration
    history of the *reactive slots* (each instance's own charge per local node, the linear charge
    stamps per element): their flows ``a0·q_e + ehist`` join the reference, and the solve returns
    an eighth result, the slots' charges at the returned point. ``newton.resref`` says which
    reference the solve uses, ``newton.n_slots`` is K, ``newton.slot_charges(x)`` the slots'
    charges at ``x`` (the transient's initial history). The native kernel
    (:func:`native_newton`) implements both references, bit for bit this loop's.

    ``values``: the system whose element values are assembled (default ``system``; :mod:`.batch`
    passes one with traced values — the masks and tolerances still come from ``system``).

    Model limiting (``options limiting=1``, the default): models with ``$limit`` states (pnjlim,
    fetlim, …; generated models, inlined or in their own evaluator, and OSDI libraries) limit
    their junction voltages against the previous
    iteration's limited values. The first iteration of each solve is not limited (its states
    become the initial guess's own values, as SPICE's ``vold`` is the last accepted value); the
    states are carried through the iterations and each solves
    ``J·Δx = −(F + lim_f + a0·lim_q)`` with OSDI's limiting RHS (``load_limit_rhs_*``:
    ``J·(x − x_lim)`` of the limited branches, added to the residual as VACASK does).
    Node-voltage clipping at ``dvmax`` stays on top of it, on the nodes a device group sees
    (:attr:`System.clip_mask`; a node of linear elements only takes Newton's exact update).

    Linear solve (``options solver``): ``dense`` assembles dense matrices and solves with LAPACK's
    LU (``jnp.linalg.solve``), O(n³) per iteration, best for small circuits — on the CPU, up to
    12 unknowns, the same equilibrated LU with partial pivoting as one native kernel
    (:func:`va2jax.codegen.native.dense_solve`: no LAPACK custom calls, ≈ 0.2 µs instead of
    1–2 µs per iteration; equal within rounding); ``klu`` assembles the
    Jacobian's values directly on the circuit's static pattern (:meth:`System.sparsity`, COO) and
    solves with KLU through ``klujax`` — O(nnz) assembly and fill-reducing factorisation, for large
    circuits. Both equilibrate rows and columns first. On a singular matrix LAPACK returns
    non-finite values; KLU stops with an error, which :meth:`Engine.solve` and the transient map
    to the same "singular" outcome.

    On the CPU, dense path, with every device group evaluated by a native kernel (and ``values``
    sharing ``system``'s groups), the whole loop is one native kernel instead (:func:`native_newton`: one FFI call
    per solve; the same operations in the same order, except the solve for ``n > 12`` — the native
    LU instead of LAPACK's — and the dot products ``G·x``, ``C·x``, ``Jq·Δx``, summed sequentially;
    ``VA2JAX_SIM_NATIVE_NEWTON=0`` keeps this XLA loop).
    A row or column of the sparse Jacobian that is all zeros (a node whose only connection
    carries no DC current, e.g. a MOSFET gate) is recognised before KLU is called: the update is
    then NaN, as LAPACK's, and the operating point goes on to gmin and source stepping.
    ``host_solve``: the sparse solve goes through :func:`_host_sparse_solve` (SuperLU in a host
    callback, NaN on any singular matrix) instead of KLU.

    ``ngspice`` (the transient of ``tran_control="ngspice"``, :mod:`._tran_ngspice`; this XLA
    loop, never the native kernel): ngspice's ``NIiter`` instead of VACASK's test. The extra
    argument ``lim0`` gives the ``$limit`` states of the first iteration, which is limited
    against them (ngspice's devices limit their predicted junction voltages against the last
    accepted ones): the states the last accepted solve returned (an eighth result), or
    ``newton.own_states(x_last)`` (the junction values of a point, one device evaluation). An
    iteration has converged when its evaluation was not limited (a limiting correction above
    1e-12 of the equation's reference ``r``; below that it is a limited voltage recombined with
    rounding, which ngspice does not see) and the update it computes is
    within ``reltol·max(|x|, |x + Δx|) + vntol`` (``abstol`` for currents) for every unknown but
    OpenVAF's implicit equations, from the second iteration on (no residual test); the solution
    returned is then that iteration's evaluation point ``x`` with its own
    charges — ngspice keeps ``CKTrhsOld``, not the last solve's result.
    """
    n = system.n
    resref = "sum" if ngspice else residual_reference(system, opts)
    device_ref = resref == "device"
    vsys = values if values is not None else system
    native = None if ngspice else native_newton(system, opts, values, device=device_ref)
    if native is not None:
        native.resref = resref
        native.n_slots = native.native_slots or 0
        native.slot_charges = (_slot_charges_fn(vsys, bool(opts.limiting) and bool(system.stateful_groups()))
                               if device_ref else (lambda x: jnp.zeros(0)))
        return native
    sparse = use_sparse(system, opts)
    pattern = system.coo_lookup() if sparse else None
    assemble = limited_assemble_fn(vsys, pattern, elements=device_ref)
    limiting = bool(opts.limiting) and bool(system.stateful_groups())
    gmask = jnp.asarray(system.gmin_mask)
    tolabs = jnp.where(jnp.asarray(system.is_current), opts.abstol, opts.vntol)
    # a current unknown's row is a voltage equation (V), a node's row a current balance (A)
    rescheck = bool(opts.nr_residualcheck)
    resabs = jnp.where(jnp.asarray(system.is_current), opts.vntol, opts.abstol)
    rr = None
    unchecked = jnp.zeros(n, bool)
    if device_ref:  # VACASK's per-element reference (sim/_resref.py)
        from ._resref import ResRef

        rr = ResRef(vsys)
        unchecked = jnp.asarray(~rr.checked)  # device-internal rows: not checked (VACASK)
    n_slots = rr.size if rr is not None else 0
    reltol = opts.reltol
    vmask = jnp.asarray(system.clip_mask)  # the node voltages that devices see
    # ngspice's test covers its own unknowns: not the implicit equations OpenVAF adds (the
    # current ddt(Q) of a model's charge held in a variable, which ngspice's devices keep as a state)
    ngcheck = jnp.asarray([":implicit_equation_" not in nm for nm in system.names], bool)
    if sparse:
        # the Jacobian as values on the circuit's static pattern (COO), never a dense matrix;
        # KLU's symbolic analysis once per circuit (sim/sparse.py)
        from .sparse import KluSolver

        Ai, Aj, find = pattern
        klu = system._memo.get("klu")
        if klu is None:  # kept on the circuit: the compiled loops hold only its handle
            from .sparse import check_fill

            check_fill(Ai, Aj, n)  # out-of-memory risk: an error before the run
            klu = system._memo["klu"] = KluSolver(Ai, Aj, n)
        if host_solve:
            klu = _host_sparse_solve(Ai, Aj, n)
        diag = jnp.asarray(find(np.arange(n), np.arange(n)))
        eye = jnp.zeros(len(Ai)).at[diag].set(1.0)  # the identity on the pattern
        Ai, Aj = jnp.asarray(Ai), jnp.asarray(Aj)

        def add_diag(J, d):
            return J.at[diag].add(d)

        def equilibrated_solve(J, r):
            # the dense path's row/column equilibration, on the pattern (same values, same order)
            rs = jax.ops.segment_max(jnp.abs(J), Ai, num_segments=n)
            cs = jax.ops.segment_max(jnp.abs(J / jnp.where(rs > 0, rs, 1.0)[Ai]), Aj, num_segments=n)
            # an all-zero row or column: singular whatever the other values; KLU would stop the
            # compiled program with an error, LAPACK returns non-finite values — so does this
            # (KLU then solves the identity instead; a select, not lax.cond: under vmap a cond
            # would batch the pattern, which klujax's primitive refuses)
            empty = jnp.any(rs == 0) | jnp.any(cs == 0)
            rs = jnp.where(rs > 0, rs, 1.0)
            cs = jnp.where(cs > 0, cs, 1.0)
            Js = jnp.where(empty, eye, J / rs[Ai] / cs[Aj])
            return jnp.where(empty, jnp.nan, klu(Js, r / rs) / cs)

        def matvec(M, v):
            return jax.ops.segment_sum(M * v[Aj], Ai, num_segments=n)

        def rowmax_abs(M, v):  # max_j |M_ij·v_j|
            return jax.ops.segment_max(jnp.abs(M * v[Aj]), Ai, num_segments=n)
    elif _native_dense_solve(n):
        # one native kernel: the same equilibration, LU with partial pivoting and substitutions
        from ..codegen.native import dense_solve

        native_solve = dense_solve(n)

        def add_diag(J, d):
            return J + jnp.diag(d)

        def equilibrated_solve(J, r):
            return native_solve(J, r)

        def matvec(M, v):
            return M @ v

        def rowmax_abs(M, v):  # max_j |M_ij·v_j|
            return jnp.max(jnp.abs(M * v[None, :]), axis=1)
    else:
        def add_diag(J, d):
            return J + jnp.diag(d)

        equilibrated_solve = dense_equilibrated_solve

        def matvec(M, v):
            return M @ v

        def rowmax_abs(M, v):  # max_j |M_ij·v_j|
            return jnp.max(jnp.abs(M * v[None, :]), axis=1)

    def newton(x0: jax.Array, b: jax.Array, a0: jax.Array, hist: jax.Array, gshunt: jax.Array,
               maxiter: jax.Array, dvmax: jax.Array, xref: jax.Array | None = None,
               rref: jax.Array | None = None, lim0: tuple | None = None,
               keep_input: bool = False, ehist: jax.Array | None = None):
        xref = jnp.zeros(n) if xref is None else xref
        rref = jnp.zeros(n) if rref is None else rref

        def resid(x, states, enable):
            out = assemble(x, states, enable)
            f, q, Jf, Jq, lf, lq, new_states = out[:7]
            F = f - b + a0 * q + hist + gshunt * gmask * x
            J = add_diag(Jf + a0 * Jq, gshunt * gmask)
            if device_ref:
                # VACASK's reference: the largest single element contribution to each equation —
                # each instance's own residual and, in the transient, its own dq/dt (the
                # integration formula on its own charge history ``ehist``)
                fe, qe = out[7]
                ref = rr.resistive(x, b, fe)
                qs = rr.charges(x, qe)
                if ehist is not None:
                    ref = jnp.maximum(ref, rr.reactive(a0 * qs + ehist))
                return F, J, q, Jq, lf + a0 * lq, (new_states if limiting else None), ref, qs
            # the residual's tolerance reference, standing in for VACASK's largest single device
            # contribution to the equation (the assembly has only the sums, which cancel): the
            # largest of the terms summed into F and of the linearised stamps |J_ij·x_j|
            ref = jnp.maximum(jnp.maximum(jnp.abs(f), jnp.abs(b)),
                              jnp.maximum(jnp.abs(a0 * q), jnp.abs(hist)))
            ref = jnp.maximum(ref, rowmax_abs(J, x))
            return F, J, q, Jq, lf + a0 * lq, (new_states if limiting else None), ref, jnp.zeros(0)

        def cond(s):
            return (~s[2]) & (s[1] < maxiter) & (~s[3])

        def body(s):
            x, it, _, _, _, _, states, _, _ = s
            # the first iteration is not limited: its states are then the initial guess's own
            # junction values (what limiting against them would return unchanged), the limits
            # of later iterations refer to them — no separate evaluation for the start states
            F, J, q, Jq, L, states, fref, qs = resid(x, states, (it > 0) | ngspice)
            R = F + L
            dx = equilibrated_solve(J, -R)
            bad = ~jnp.all(jnp.isfinite(dx))
            if ngspice:  # ngspice's NIconvTest (see the docstring)
                # limited: ngspice's noncon of a limit that moved a junction voltage. OpenVAF's
                # limit RHS J·(v_lim − v) is also nonzero where a model recombines limited
                # voltages with rounding (BSIM4's vds = vgs − vgd): ≤ 1e-15 of the row's
                # reference |J_ij·x_j|, which bounds it; a real limit moves v by ≳ 1e-4 of it
                lim = jnp.any(jnp.abs(L) > 1e-12 * fref)
                xtol = reltol * jnp.maximum(jnp.abs(x), jnp.abs(x + dx)) + tolabs
                ok = (it >= 1) & ~lim & jnp.all((jnp.abs(dx) <= xtol) | ~ngcheck) & ~bad
                return (jnp.where(ok, x, x + dx), it + 1, ok, bad,
                        jnp.where(ok, q, q + matvec(Jq, dx)), F, states, fref, qs)
            clipped = jnp.where(vmask, jnp.clip(dx, -dvmax, dvmax), dx)
            xn = x + clipped
            # VACASK's convergence test (nr_residualcheck=1, relrefsol=relrefres=local): the
            # residual at x and the update from x both within tolerance, never on the first
            # iteration (its update is not checked); with the "device" reference the rows of
            # device-internal unknowns are not checked (VACASK)
            res_ok = jnp.all((jnp.abs(R) <= jnp.maximum(reltol * jnp.maximum(fref, rref), resabs))
                             | unchecked)
            res_ok = res_ok | (not rescheck)
            xtol = jnp.maximum(reltol * jnp.maximum(jnp.abs(x), xref), tolabs)
            ok = (it >= 1) & res_ok & jnp.all(jnp.abs(clipped) <= xtol)
            ok = ok & jnp.all(clipped == dx) & ~bad
            # VACASK's NRSolver: the iteration that converges evaluated the devices at ``x``; its
            # update only passes the test and is not applied. The transient's point is ``x`` and
            # its charges ``q(x)``, evaluated there (not ``x + Δx``, ``q + Jq·Δx``)
            if keep_input:
                return jnp.where(ok, x, xn), it + 1, ok, bad, q, F, states, fref, qs
            return xn, it + 1, ok, bad, q + matvec(Jq, clipped), F, states, fref, qs

        z = jnp.zeros(n)
        states0 = zero_states(vsys) if limiting else None
        if ngspice and limiting:  # the last accepted point's own junction values
            states0 = own_states(x0) if lim0 is None else lim0
        init = (x0, jnp.int32(0), jnp.bool_(False), jnp.bool_(False), z, z, states0, z,
                jnp.zeros(n_slots))
        x, it, conv, bad, q, F, states, fref, qs = jax.lax.while_loop(cond, body, init)
        if ngspice:
            return x, it, conv, bad, q, F, fref, (states if limiting else ())
        if ehist is not None:
            return x, it, conv, bad, q, F, fref, qs
        return x, it, conv, bad, q, F, fref

    def own_states(x):
        """The ``$limit`` states of ``x`` itself (no limiting; ``()`` without stateful models)."""
        return assemble(x, zero_states(vsys), False)[6] if limiting else ()

    newton.own_states = own_states
    newton.resref = resref
    newton.n_slots = n_slots
    newton.slot_charges = (_slot_charges_fn(vsys, limiting, assemble, rr) if rr is not None
                           else (lambda x: jnp.zeros(0)))
    return newton


class StatusCode(enum.IntEnum):
    """Base of the status enums whose members are ``int`` codes (usable as ``int32`` in traced
    code, e.g. ``jnp.where(ok, OpStatus.OK, OpStatus.SINGULAR)``) carrying a ``message`` for the
    host: ``NAME = code, "message"``."""

    message: str

    def __new__(cls, code: int, message: str) -> "StatusCode":
        obj = int.__new__(cls, code)
        obj._value_ = code
        obj.message = message
        return obj


class OpStatus(StatusCode):
    """How :func:`dc_op` ended."""

    OK = 0, "converged"
    SINGULAR = 1, "singular matrix"
    NO_CONVERGENCE = 2, "Newton did not converge (gmin and source stepping failed)"


class OpSolution(NamedTuple):
    """Result of :func:`dc_op` (a pytree: every field is an array)."""

    x: Any  #: (n,) the operating point (on failure: the last solve's iterate)
    status: Any  #: () int32 :class:`OpStatus` code
    iterations: Any  #: () Newton iterations of all solves together
    last_iterations: Any  #: () iterations of the last solve
    residual: Any  #: (n,) residual F of the last solve's last iteration


def dc_op(newton: Callable, b: jax.Array, x0: jax.Array, opts: Options) -> OpSolution:
    """The DC operating point as a traceable function of the source vector ``b`` (n,) and the
    start ``x0`` (n,); ``newton`` as returned by :func:`make_newton`.

    1. plain Newton from ``x0`` (``gshunt = opts.gshunt``);
    2. gmin stepping from ``x0``: Newton with a shunt conductance ``g = max(10⁻ᵏ, gshunt)`` S
       from every node to ground, ``k = 2 … 12``, each step starting from the previous step's
       result, then a final solve with ``gshunt`` alone;
    3. source stepping from 0: sources scaled by ``λ``, raised by ``Δλ`` (0.1 at first; ×2 after
       a converged step, at most 0.5; ÷4 after a failed one) until ``λ = 1``, given up once
       ``Δλ < 10⁻⁶``;
    4. plain Newton from ``x0`` without the ``dvmax`` clipping (VACASK's Newton has none): a
       device node far from 0 V (a diode reverse-biased by 1e11 V) is out of reach at 2 V per
       iteration. Failing too: :attr:`OpStatus.NO_CONVERGENCE`, with the iterate, residual and
       iteration count of step 3's last solve.

    A failed solve goes on to the next phase whatever the cause, a singular matrix included (as
    VACASK tries its homotopies after any failure of the plain solve: a floating gate is singular
    without a shunt but not during gmin stepping); when all fail and the last solve stopped on a
    singular matrix, the status is :attr:`OpStatus.SINGULAR` (the host then names the nodes).

    One ``lax.while_loop`` over Newton solves whose phase (plain, gmin step ``i``, final, source
    step) picks the solve's start, source scale and shunt, so the model code is traced once.
    """
    n = b.shape[0]
    z = jnp.zeros(n)
    itl, dvmax, g0 = jnp.int32(opts.op_itl), jnp.float64(opts.dvmax), jnp.float64(opts.gshunt)
    gs = jnp.asarray(np.maximum(10.0 ** np.arange(-2, -13, -1), opts.gshunt))
    ng = gs.shape[0]
    PLAIN, GMIN, FINAL, SOURCE, NOCLIP, DONE, FAIL = range(7)

    def cond(s):
        return s[0] < DONE

    def body(s):
        phase, i, xg, xs, lam, dlam, x, iters, last_it, last_F, last_bad = s
        nl = jnp.minimum(1.0, lam + dlam)
        start = jnp.where(phase == SOURCE, xs, jnp.where((phase == PLAIN) | (phase == NOCLIP), x0, xg))
        scale = jnp.where(phase == SOURCE, nl, 1.0)
        gsh = jnp.where(phase == GMIN, gs[jnp.minimum(i, ng - 1)], g0)
        dv = jnp.where(phase == NOCLIP, jnp.inf, dvmax)
        xn, it, conv, bad, _, F, _ = newton(start, b * scale, jnp.float64(0.0), z, gsh, itl, dv)
        # plain Newton
        p_next = jnp.where(conv, DONE, GMIN)
        # gmin stepping (the start of each step is the previous result, converged or not)
        g_next = jnp.where(conv, jnp.where(i + 1 >= ng, FINAL, GMIN), SOURCE)
        # final solve without the extra shunt
        f_next = jnp.where(conv, DONE, SOURCE)
        # source stepping
        dl_fail = dlam / 4
        s_next = jnp.where(conv, jnp.where(nl >= 1.0, DONE, SOURCE),
                           jnp.where(dl_fail < 1e-6, NOCLIP, SOURCE))
        # plain Newton without clipping, the last resort
        n_next = jnp.where(conv, DONE, FAIL)
        nxt = jnp.select([phase == PLAIN, phase == GMIN, phase == FINAL, phase == SOURCE],
                         [p_next, g_next, f_next, s_next], n_next).astype(jnp.int32)
        in_s = phase == SOURCE
        # the answer, or the failed source step's iterate (the unclipped solve's only if it
        # converged: a failure reports where source stepping gave up)
        keep = (conv & (phase != GMIN)) | (in_s & (nxt == NOCLIP))
        last = (phase != NOCLIP) | conv
        return (nxt, jnp.where(phase == GMIN, i + 1, i),
                jnp.where(phase == GMIN, xn, xg),
                jnp.where(in_s & conv, xn, xs),
                jnp.where(in_s & conv, nl, lam),
                jnp.where(in_s, jnp.where(conv, jnp.minimum(dlam * 2, 0.5), dl_fail), dlam),
                jnp.where(keep, xn, x), iters + it, jnp.where(last, it, last_it),
                jnp.where(last, F, last_F), jnp.where(last, bad, last_bad))

    i0 = jnp.int32(0)
    init = (jnp.int32(PLAIN), i0, x0, z, jnp.float64(0.0), jnp.float64(0.1), x0, i0, i0, z,
            jnp.bool_(False))
    phase, _, _, _, _, _, x, iters, it, F, bad = jax.lax.while_loop(cond, body, init)
    status = jnp.select([phase == DONE, bad], [OpStatus.OK, OpStatus.SINGULAR],
                        OpStatus.NO_CONVERGENCE).astype(jnp.int32)
    return OpSolution(x, status, iters, it, F)


class Engine:
    """A :class:`System` with its compiled solvers: the operating point (:func:`dc_op`), the
    residual/Jacobian assembly, and (built on demand by :mod:`.tran`) the transient kernels."""

    def __init__(self, system: System, opts: Options):
        self.sys = system
        self.opts = opts
        n = system.n
        for g in system.groups:  # compile device evaluators that run outside the Newton loop
            g.group.prepare()
        self.sparse = use_sparse(system, opts)
        self.pattern = system.coo_lookup() if self.sparse else None
        t0 = time.perf_counter()  # building the Newton solve compiles native stamping kernels
        newton = self._newton_fn = make_newton(system, opts)

        def op_fn(x0: jax.Array, b: jax.Array) -> OpSolution:
            return dc_op(newton, b, x0, opts)

        self._op = jax.jit(op_fn).lower(jnp.zeros(n), jnp.zeros(n)).compile(
            compiler_options=loop_compiler_options())
        # device models compiled outside the Newton loop (GeneratedGroup in "separate" mode)
        dev_s = sum(float(g.group.compile_s) for g in system.groups)
        self.device_compile_s = dev_s
        self.compile_s = time.perf_counter() - t0 + dev_s
        self._assemble = jax.jit(assemble_fn(system, self.pattern))
        self._assemble_ready = False
        self.iterations = 0
        self._tran_kernels: dict = {}
        self._op_host = None  # dc_op with the sparse solve in a host callback (_host_op)

    @property
    def newton(self) -> Callable:
        """The traceable Newton solve of this engine's circuit (see :func:`make_newton`)."""
        return self._newton_fn

    def compile_assembly(self) -> None:
        """Compile the stand-alone assembly (:meth:`jacobians`) now, its time added to
        :attr:`compile_s` (the transient analysis calls it before its timed run)."""
        if not self._assemble_ready:
            t0 = time.perf_counter()
            self._assemble = self._assemble.lower(jnp.zeros(self.sys.n)).compile(
                compiler_options=loop_compiler_options())
            self._assemble_ready = True
            self.compile_s += time.perf_counter() - t0

    def jacobians(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self.compile_assembly()
        f, q, Jf, Jq = self._assemble(jnp.asarray(x, jnp.float64))
        return np.asarray(f), np.asarray(q), np.asarray(Jf), np.asarray(Jq)

    # -- diagnostics -------------------------------------------------------------------------
    def worst(self, F: np.ndarray) -> str:
        if F.size == 0 or not np.all(np.isfinite(F)):
            bad = np.where(~np.isfinite(F))[0]
            return f"non-finite residual at {self.sys.names[int(bad[0])]!r}" if bad.size else ""
        i = int(np.argmax(np.abs(F)))
        unit = "A" if not self.sys.is_current[i] else "V"
        return f"largest residual at {self.sys.names[i]!r} ({abs(F[i]):.3g} {unit})"

    def singular_message(self, x: np.ndarray, b: np.ndarray, a0: float = 0.0) -> str:
        """Names the unknowns of the singular matrix ``∂f/∂x + a0·∂q/∂x`` at ``x`` (``a0``: the
        integration coefficient of a transient step, 1/s; 0 for DC)."""
        if self.sparse:
            from .sparse import singular_unknowns

            Ai, Aj, _ = self.pattern
            _, _, Jf, Jq = self.jacobians(np.nan_to_num(x))
            Jf = Jf + a0 * Jq if a0 else Jf
            ks = singular_unknowns(Ai, Aj, Jf, self.sys.n)
            if not ks:
                return "singular matrix"
            names = ", ".join(repr(self.sys.names[k]) for k in ks[:5])
            more = f" and {len(ks) - 5} more" if len(ks) > 5 else ""
            return f"singular matrix (involving {names}{more})"
        _, _, Jf, Jq = self.jacobians(np.nan_to_num(x))
        Jf = Jf + a0 * Jq if a0 else Jf
        zero_rows = np.where(np.all(Jf == 0, axis=1))[0]
        if zero_rows.size:
            return f"singular matrix: unknown {self.sys.names[int(zero_rows[0])]!r} has no equation"
        try:
            from .._blas import single_threaded

            with single_threaded(len(Jf)):
                _, s, vh = np.linalg.svd(Jf)
            if np.all(np.isfinite(s)) and s[-1] > s[0] * np.sqrt(np.finfo(float).eps):
                # a well-conditioned matrix (κ₂ < 6.7e7): the non-finite update came from
                # values that overflow (a 1e306 V source across 1 mΩ: G·x beyond float64's range)
                big = float(np.max(np.abs(b))) if b.size else 0.0
                return (f"non-finite residual or update with a regular matrix: values beyond "
                        f"float64's range (largest source value {big:.3g})")
            k = int(np.argmax(np.abs(vh[-1])))
            return f"singular matrix (involving {self.sys.names[k]!r})"
        except np.linalg.LinAlgError:
            return "singular matrix"

    def _host_op(self) -> Callable:
        """:func:`dc_op` compiled with the sparse solve in a host callback
        (``make_newton(host_solve=True)``); built on first use, its time added to
        :attr:`compile_s`."""
        if self._op_host is None:
            t0 = time.perf_counter()
            newton = make_newton(self.sys, self.opts, host_solve=True)
            opts = self.opts

            def op_fn(x0: jax.Array, b: jax.Array) -> OpSolution:
                return dc_op(newton, b, x0, opts)

            n = self.sys.n
            self._op_host = jax.jit(op_fn).lower(jnp.zeros(n), jnp.zeros(n)).compile(
                compiler_options=loop_compiler_options())
            self.compile_s += time.perf_counter() - t0
        return self._op_host

    # -- DC ----------------------------------------------------------------------------------
    def op(self, b: np.ndarray, x0: np.ndarray | None = None, what: str = "operating point") -> np.ndarray:
        """DC operating point (:func:`dc_op`, compiled); a failure raises :class:`ConvergenceError`
        naming ``what`` and the cause."""
        x0 = np.zeros(self.sys.n) if x0 is None else np.asarray(x0, float)
        b = np.asarray(b, float)
        try:
            sol = OpSolution(*(np.asarray(a) for a in self._op(x0, b)))
        except jax.errors.JaxRuntimeError as e:
            if not is_singular_error(e):
                raise
            # KLU stopped the compiled stepping on a singular matrix that has no all-zero row or
            # column (those are caught before KLU): once more with a solve that returns NaN
            # there (SuperLU in a host callback), so that gmin and source stepping go on
            sol = OpSolution(*(np.asarray(a) for a in self._host_op()(x0, b)))
        self.iterations += int(sol.iterations)
        status = OpStatus(int(sol.status))
        if status is OpStatus.OK:
            return sol.x
        if status is OpStatus.SINGULAR:
            raise ConvergenceError(f"{what}: {self.singular_message(sol.x, b)}")
        raise ConvergenceError(f"{what}: Newton did not converge after {int(sol.last_iterations)} "
                               f"iterations (gmin and source stepping failed); "
                               f"{self.worst(sol.residual)}")
