"""``NativeKernel``: one model's compiled init and eval, and the glue to :class:`va2jax.Model`.

ABI (shared with the XLA FFI handler)::

    void <prefix>_init_batch(int64_t n, const double *shared, const double *in, double *out);
    void <prefix>_eval_batch(int64_t n, const double *shared, const double *in, double *out);

``in``: n rows × ``n_in_*`` doubles, row-major; ``out``: n rows × ``n_out_*``; ``shared``:
``n_shared`` doubles read by every row (the simulator parameters). Integers, booleans and string
ids travel as doubles. Rows are independent (no global state): any split of the rows over threads
gives the same bits.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import Va2JaxError
from ...mir import ModuleIR
from ...simparams import DEFAULT_SIM_PARAMS
from . import _compile

#: Bumped when the emitted code changes meaning (part of the cache key with the package's digest).
NATIVE_VERSION = "2"

BATCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def _own_digest() -> str:
    h = hashlib.sha256(NATIVE_VERSION.encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class NativeKernel:
    """A model's native init and eval (see the module docstring for the ABI).

    ``*_names`` say what each column holds: ``shared_names`` simulator parameters;
    ``init_in_names``/``eval_in_names`` MIR input values (eval's last is ``analysis``, the OSDI
    analysis bits); ``init_out_names``/``eval_out_names`` the Python backend's output names
    (``cache<k>``, ``param:<name>``, ``collapse<k>``, ``flag<k>``; ``rr<i>``, ``rq<i>``,
    ``lr<i>``, ``lq<i>``, ``jr<k>``, ``jq<k>``, ``ns<k>``); ``*_out_types`` their IR types.
    ``key`` identifies the compiled code (cache key); ``timings`` what building it cost (s).
    """

    key: str
    prefix: str
    init_batch_address: int
    eval_batch_address: int
    shared_names: list[str]
    init_in_names: list[str]
    init_out_names: list[str]
    eval_in_names: list[str]
    eval_out_names: list[str]
    init_out_types: list[str]
    eval_out_types: list[str]
    from_cache: bool = False
    #: ``<prefix>_eval_dense`` (``_lower._dense``): eval written straight into the dense outputs
    eval_dense_address: int = 0
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    #: ``key`` hashes the model's source (a cache key), not only its file name: the same key
    #: means the same code in every process (:func:`._ffi.kernel_calls` names the FFI targets by it)
    content_keyed: bool = True

    @functools.cached_property
    def eval_in_set(self) -> frozenset[str]:
        """``eval_in_names`` as a set (``Model._batch_inputs`` builds only these inputs)."""
        return frozenset(self.eval_in_names)

    @property
    def n_shared(self) -> int:
        return len(self.shared_names)

    @property
    def n_in_init(self) -> int:
        return len(self.init_in_names)

    @property
    def n_out_init(self) -> int:
        return len(self.init_out_names)

    @property
    def n_in_eval(self) -> int:
        return len(self.eval_in_names)

    @property
    def n_out_eval(self) -> int:
        return len(self.eval_out_names)

    def shared_values(self, sp: dict[str, Any]) -> np.ndarray:
        """The ``shared`` vector from simulator parameters ``sp`` (missing names: defaults)."""
        return np.array([float(sp.get(k, DEFAULT_SIM_PARAMS[k])) for k in self.shared_names], np.float64)

    def _run(self, addr: int, shared: np.ndarray, rows: np.ndarray, n_out: int) -> np.ndarray:
        rows = np.ascontiguousarray(rows, np.float64)
        shared = np.ascontiguousarray(shared, np.float64)
        n = rows.shape[0]
        out = np.empty((n, n_out), np.float64)
        if n:
            BATCH_FN(addr)(n, shared.ctypes.data or None, rows.ctypes.data or None, out.ctypes.data or None)
        return out

    def init(self, shared: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``init_batch`` on ``rows`` (n, n_in_init) → (n, n_out_init)."""
        if rows.ndim != 2 or rows.shape[1] != self.n_in_init:
            raise Va2JaxError(f"native init: expected rows of {self.n_in_init} inputs, got shape {rows.shape}")
        return self._run(self.init_batch_address, shared, rows, self.n_out_init)

    def eval(self, shared: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``eval_batch`` on ``rows`` (n, n_in_eval) → (n, n_out_eval)."""
        if rows.ndim != 2 or rows.shape[1] != self.n_in_eval:
            raise Va2JaxError(f"native eval: expected rows of {self.n_in_eval} inputs, got shape {rows.shape}")
        return self._run(self.eval_batch_address, shared, rows, self.n_out_eval)


def kernel_key(model_key: str, level: int) -> str:
    return hashlib.sha256(f"{model_key}|{_own_digest()}|{_compile.llvm_version()}|{_compile.host_id()}|O{level}"
                          f"|cg{_compile.codegen_level()}"
                          .encode()).hexdigest()[:24]


def build_kernel(ir: ModuleIR, model_key: str | None, *, cache_folder: Path | None = None,
                 level: int | None = None, use_cache: bool = True) -> NativeKernel:
    """Compile (or load from the cache) the native kernels of module ``ir``.

    ``model_key`` identifies the source, includes, defines and front end (``Model``'s cache key);
    None: no disk cache. ``ir`` may be the slim IR of a cached model only when the object is cached.
    """
    from ._layout import make_layout
    from ._lower import lower_module

    level = _compile.opt_level() if level is None else level
    t0 = time.perf_counter()
    key = kernel_key(model_key or "nokey-" + ir.source, level)
    prefix = f"va2jax_{key[:16]}"
    names = [f"{prefix}_init_batch", f"{prefix}_eval_batch", f"{prefix}_eval_dense"]
    folder = cache_folder
    if folder is not None and model_key is not None and use_cache:
        hit = _compile.cache_read(folder, key)
        if hit is not None and hit[1].get("native") == _own_digest():
            return _loaded(*hit, t0)
    if not ir.eval.blocks:
        raise Va2JaxError(f"module {ir.name}: the native backend needs the module's full IR")
    lay = make_layout(ir)
    t1 = time.perf_counter()
    mods = lower_module(ir, lay, prefix)
    t2 = time.perf_counter()
    # init runs once per parameter set: optimised lightly, fast instruction selection and register
    # allocation (PSP103's init: 0.7 s instead of 3.3 s); eval at the full level
    objs, times = _compile.compile_objects(list(mods), f"{ir.source}: module {ir.name}",
                                           [(min(level, 1), 0), (level, _compile.codegen_level())])
    meta = {"native": _own_digest(), "model": ir.name, "shared": lay.shared, "init_in": lay.init_in,
            "init_out": lay.init_out,
            "eval_in": lay.eval_in, "eval_out": lay.eval_out,
            "init_out_types": lay.init_out_types, "eval_out_types": lay.eval_out_types}
    if folder is not None and model_key is not None:
        _compile.cache_write(folder, key, objs, meta)
    addrs = _compile.load_objects(objs, names)
    times.update(layout=t1 - t0, lower=t2 - t1, total=time.perf_counter() - t0)
    return NativeKernel(key, prefix, addrs[names[0]], addrs[names[1]], lay.shared, lay.init_in,
                        lay.init_out, lay.eval_in, lay.eval_out, lay.init_out_types,
                        lay.eval_out_types, eval_dense_address=addrs[names[2]], timings=times,
                        content_keyed=model_key is not None)


def _loaded(objs: list[bytes], meta: dict, t0: float) -> NativeKernel:
    """The kernel of a verified cache entry or artifact, linked into this process."""
    key = meta["key"]
    prefix = f"va2jax_{key[:16]}"
    names = [f"{prefix}_init_batch", f"{prefix}_eval_batch", f"{prefix}_eval_dense"]
    addrs = _compile.load_objects(objs, names)
    return NativeKernel(key, prefix, addrs[names[0]], addrs[names[1]], meta["shared"],
                        meta["init_in"], meta["init_out"], meta["eval_in"], meta["eval_out"],
                        meta["init_out_types"], meta["eval_out_types"], from_cache=True,
                        eval_dense_address=addrs[names[2]], timings={"load": time.perf_counter() - t0})


_META_LISTS = ("shared", "init_in", "init_out", "eval_in", "eval_out", "init_out_types", "eval_out_types")


def load_artifact(path) -> NativeKernel:
    """The native kernel written by ``va2jax compile --native`` (``path``: its
    ``<name>.native.json`` or ``<name>.native.o``), linked into this process.

    Checked as the object cache checks its entries (:func:`._compile.check_entry`): the object's
    SHA-256 and sizes must match the JSON, which must name this host's target (triple, CPU,
    features) and this va2jax's native engine (the ABI of ``eval_dense`` may change between
    versions). Anything else — missing, damaged, foreign — is refused with a
    :class:`~va2jax.Va2JaxError` naming the file and the reason; nothing is linked.
    """
    import json

    p = Path(path)
    js = p if p.suffix == ".json" else p.with_suffix(".json")
    obj = js.with_suffix(".o")
    t0 = time.perf_counter()
    try:
        meta = json.loads(js.read_text())
        blob = obj.read_bytes()
    except OSError as exc:
        raise Va2JaxError(f"{exc.filename or js}: cannot read the native kernel ({exc.strerror or exc})") from None
    except ValueError:
        raise Va2JaxError(f"{js}: not a native kernel description (invalid JSON)") from None
    objs, why = _compile.check_entry(meta, blob)
    if objs is None:
        raise Va2JaxError(f"{obj}: native kernel refused: {why}")
    if meta.get("native") != _own_digest():
        raise Va2JaxError(f"{obj}: native kernel refused: written by another version of va2jax's native "
                          "engine; recompile it")
    if not all(isinstance(meta.get(f), list) and all(isinstance(x, str) for x in meta[f]) for f in _META_LISTS):
        raise Va2JaxError(f"{js}: native kernel refused: column layout missing or malformed")
    return _loaded(objs, meta, t0)


# -- Model glue ------------------------------------------------------------------------------------
def model_kernel(model) -> NativeKernel:
    """The native kernel of a :class:`va2jax.Model` (built once per model object)."""
    k = getattr(model, "_native_kernel", None)
    if k is not None:
        return k
    from ..._paths import cache_dir

    folder = cache_dir() / "native"
    ir = model.ir
    key = model._cache_key
    if not ir.eval.blocks:
        hit = _compile.cache_read(folder, kernel_key(key, _compile.opt_level())) if key else None
        if hit is None or hit[1].get("native") != _own_digest():
            ir = _full_ir(model)
    k = build_kernel(ir, key, cache_folder=folder)
    model._native_kernel = k
    return k


def _full_ir(model) -> ModuleIR:
    from .._lazy import full_ir

    return full_ir(model)


def _column(v: Any, nb: int) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype != np.float64:
        a = a.astype(np.float64)
    return np.broadcast_to(a, (nb,)) if a.ndim == 0 or a.shape[0] != nb else a


def eval_rows(model, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> tuple[dict[str, np.ndarray], Any]:
    """The native eval's outputs by name for the batch ``inp`` (as ``Model.eval`` builds it), and
    the node labels (``Model._batch_inputs``)."""
    k = model_kernel(model)
    ein, lab = model._batch_inputs(inp, nb, np, k.eval_in_set)
    rows = np.empty((nb, k.n_in_eval), np.float64)
    for c, name in enumerate(k.eval_in_names):
        rows[:, c] = _column(ein[name], nb)
    out = k.eval(k.shared_values(sp), rows)
    return {name: out[:, c] for c, name in enumerate(k.eval_out_names)}, lab


def eval_model(model, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
    """``Model.eval(..., backend="native")``: dense outputs as the NumPy backend assembles them."""
    out, lab = eval_rows(model, inp, sp, nb)
    return model._batch_assemble(out, lab, nb, np)


_NP_TYPE = {"real": np.float64, "int": np.int32, "str": np.int32, "bool": np.bool_}


def init_rows(model, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, np.ndarray]:
    """The native init's outputs by name (dtypes as the NumPy backend's) for init inputs ``inp``."""
    k = model_kernel(model)
    rows = np.empty((nb, k.n_in_init), np.float64)
    for c, name in enumerate(k.init_in_names):
        rows[:, c] = _column(inp[name], nb)
    out = k.init(k.shared_values(sp), rows)
    res = {}
    for c, (name, ty) in enumerate(zip(k.init_out_names, k.init_out_types)):
        col = out[:, c]
        res[name] = (col != 0) if ty == "bool" else col.astype(_NP_TYPE.get(ty, np.float64))
    return res


def write_artifact(model, folder: Path) -> list[Path]:
    """Write ``model``'s native kernel next to its Python module: ``<name>.native.o`` (init's and
    eval's object files, host-specific, concatenated; their sizes in the JSON) and
    ``<name>.native.json`` (column layout, sizes, sha256, host, engine digest). Returns the
    paths; :func:`load_artifact` loads them back."""
    from ..._paths import cache_dir

    k = model_kernel(model)
    src = cache_dir() / "native"
    hit = _compile.cache_read(src, k.key)
    if hit is None:
        raise Va2JaxError(f"module {model.name}: the native kernel is not in the cache (compiled without a key)")
    import json

    from ..._paths import path_inside, safe_stem

    objs, meta = hit
    # the module name comes from the source: only a sanitised form of it names the files
    stem = safe_stem(model.name)
    obj, js = path_inside(folder, f"{stem}.native.o"), path_inside(folder, f"{stem}.native.json")
    _compile._atomic_write(obj, b"".join(objs))  # the verified bytes, then the metadata naming them
    _compile._atomic_write(js, json.dumps(meta, sort_keys=True).encode())
    return [obj, js]
