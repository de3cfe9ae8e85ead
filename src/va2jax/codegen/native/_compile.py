"""LLVM IR → machine code in this process (llvmlite, MCJIT), with an on-disk object cache.

Code is generated for the host CPU (its name and feature string, as OpenVAF does with
``target-cpu=native``), optimised with LLVM's new pass manager at ``VA2JAX_NATIVE_OPT`` (default
2; code generator ``VA2JAX_NATIVE_CODEGEN``, default 1). IEEE semantics are kept: the IR carries no
fast-math flags and the target machine does not contract ``a·b + c`` to FMA without them. The object file is
cached under
``$VA2JAX_CACHE/native/<key>.o`` with a sidecar ``<key>.json`` holding its sha256 and the column
layout; a warm process only loads and links the object (no LLVM optimisation or code generation).
An entry whose digest or header does not match is ignored and rebuilt.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import threading
import time
from pathlib import Path

from ... import _config
from ...errors import Va2JaxError

_lock = threading.Lock()
_ready = False
#: ExecutionEngines kept alive for the life of the process (their code is called by address).
_ENGINES: list = []


def opt_level() -> int:
    """LLVM optimisation pipeline level of eval (``VA2JAX_NATIVE_OPT``, default 2)."""
    return _config.get("NATIVE_OPT")


def codegen_level() -> int:
    """Code generator level of eval (``VA2JAX_NATIVE_CODEGEN``, default 1). Measured at 16,384
    instances, pipeline -O2: code generator -O1 runs BSIM4's eval 1.3× and PSP103's 1.17× as
    fast as -O2 (and -O3), and compiles faster; the bits are the same at every level."""
    return _config.get("NATIVE_CODEGEN")


def _init_llvm():
    global _ready
    import llvmlite.binding as llvm

    with _lock:
        if not _ready:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _bind_libm(llvm)
            _ready = True
    return llvm


def _bind_libm(llvm) -> None:
    """Bind ``va2jax.<f>`` to the C library's ``f`` (the one the OSDI libraries call)."""
    from ._lower import LIBM_FUNCTIONS, libm_name

    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for f in LIBM_FUNCTIONS:
        llvm.add_symbol(libm_name(f), ctypes.cast(getattr(libm, f), ctypes.c_void_p).value)


def host_id() -> str:
    """Target triple, CPU name and features: part of every cache key."""
    llvm = _init_llvm()
    return f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"


def llvm_version() -> str:
    llvm = _init_llvm()
    import llvmlite

    return f"llvmlite={llvmlite.__version__},llvm={'.'.join(map(str, llvm.llvm_version_info))}"


def _target_machine(llvm, level: int):
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=level, reloc="pic", codemodel="jitdefault")


def compile_objects(modules: list, what: str, levels: list[tuple[int, int]] | None = None
                    ) -> tuple[list[bytes], dict[str, float]]:
    """Object code for each llvmlite ``ir.Module`` (verified, optimised, code-generated).

    ``levels``: per module, (optimisation pipeline level, code generator level); default
    (:func:`opt_level`, same). Modules compile in parallel threads (LLVM runs without the GIL).
    ``what`` names the model in errors. Returns the objects and timings (s) per phase and module.
    """
    from concurrent.futures import ThreadPoolExecutor

    llvm = _init_llvm()
    if levels is None:
        levels = [(opt_level(), opt_level())] * len(modules)
    texts = [str(m) for m in modules]  # the Python side first (holds the GIL)

    def one(k: int):
        m, (pl, cl) = modules[k], levels[k]
        tm = _target_machine(llvm, cl)
        t0 = time.perf_counter()
        try:
            ref = llvm.parse_assembly(texts[k])
            ref.verify()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid IR"
            raise Va2JaxError(f"{what}: LLVM rejected the native code of IR function {m.name}: {first}") from None
        ref.triple = tm.triple
        ref.data_layout = str(tm.target_data)
        t1 = time.perf_counter()
        if pl > 0:
            pto = llvm.create_pipeline_tuning_options(speed_level=pl)
            pto.loop_vectorization = False  # rows are separate calls: no loop worth vectorising
            pb = llvm.create_pass_builder(tm, pto)
            pb.getModulePassManager().run(ref, pb)
        t2 = time.perf_counter()
        try:
            obj = tm.emit_object(ref)
        except RuntimeError as exc:
            raise Va2JaxError(f"{what}: LLVM could not compile IR function {m.name}: {exc}") from None
        t3 = time.perf_counter()
        return obj, {f"{m.name}.parse": t1 - t0, f"{m.name}.opt": t2 - t1, f"{m.name}.codegen": t3 - t2}

    with ThreadPoolExecutor(max_workers=max(1, len(modules))) as ex:
        res = list(ex.map(one, range(len(modules))))
    times: dict[str, float] = {}
    for _o, t in res:
        times.update(t)
    return [o for o, _t in res], times


def load_objects(objs: list[bytes], names: list[str]) -> dict[str, int]:
    """Link ``objs`` into this process; the address of each symbol in ``names``."""
    llvm = _init_llvm()
    tm = _target_machine(llvm, 0)
    addrs: dict[str, int] = {}
    for o in objs:  # one engine per object (MCJIT mislinks constant pools of several objects)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(o))
        engine.finalize_object()
        _ENGINES.append(engine)
        for n in names:
            a = engine.get_function_address(n)
            if a and n not in addrs:
                addrs[n] = a
    for n in names:
        if n not in addrs:
            raise Va2JaxError(f"native kernel: symbol {n} missing from the compiled object")
    return addrs


# -- disk cache ------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_entry(meta, blob: bytes, key: str | None = None) -> tuple[list[bytes] | None, str]:
    """The objects of a cache entry or written artifact (metadata ``meta``, concatenated objects
    ``blob``), or ``(None, why not)``: the metadata must be a mapping naming ``key`` (when given)
    and this host's target (:func:`host_id`), and the object's SHA-256 and sizes must match it."""
    if not isinstance(meta, dict) or not isinstance(meta.get("key"), str):
        return None, "metadata unreadable"
    if key is not None and meta.get("key") != key:
        return None, "another kernel's metadata"
    if meta.get("host") != host_id():
        return None, f"compiled for another target ({str(meta.get('host'))[:80]!r}, here {host_id()[:80]!r})"
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        return None, "checksum mismatch"
    sizes = meta.get("sizes")
    if not isinstance(sizes, list) or not all(isinstance(x, int) and x >= 0 for x in sizes) \
            or sum(sizes) != len(blob):
        return None, "object sizes do not match"
    objs, pos = [], 0
    for sz in sizes:
        objs.append(blob[pos:pos + sz])
        pos += sz
    return objs, ""


def cache_read(folder: Path, key: str) -> tuple[list[bytes], dict] | None:
    """The cached objects and metadata for ``key``, or None when absent, corrupt or foreign."""
    meta_p, obj_p = folder / f"{key}.json", folder / f"{key}.o"
    try:
        meta = json.loads(meta_p.read_text())
        blob = obj_p.read_bytes()
    except (OSError, ValueError):
        return None
    objs, _why = check_entry(meta, blob, key)
    return None if objs is None else (objs, meta)


def cache_write(folder: Path, key: str, objs: list[bytes], meta: dict) -> None:
    blob = b"".join(objs)
    meta = dict(meta, key=key, host=host_id(), sha256=hashlib.sha256(blob).hexdigest(),
                sizes=[len(o) for o in objs])
    # object first, then the metadata naming its digest: a reader never trusts a half-written pair
    _atomic_write(folder / f"{key}.o", blob)
    _atomic_write(folder / f"{key}.json", json.dumps(meta, sort_keys=True).encode())
