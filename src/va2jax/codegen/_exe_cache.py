"""On-disk caches that make a warm start cheap: Python code objects and compiled XLA executables.

* :func:`load_code` compiles generated source once and keeps the code object (``marshal``) next to
  it, so later processes skip Python's compiler (seconds for a PSP103-sized module).
* :class:`CachedJit` compiles a function ahead of time on its first call and stores the executable
  (``jax.experimental.serialize_executable``) under ``$VA2JAX_CACHE/exe``; a later process loads it
  without tracing or lowering the function again (JAX's own persistent cache still needs both to
  compute its key). ``VA2JAX_EXE_CACHE=0`` turns it off.

Keys hold everything that changes the executable: the caller's key (the generated code's cache
key), the padded batch size, the XLA compiler options and flags, jax/jaxlib versions, x64 and the
device kind. Entries are written atomically with a SHA-256 of their contents (see
:mod:`._code_cache`); a damaged or unloadable entry is recompiled and overwritten.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

from .. import _config
from .._paths import cache_dir
from ._code_cache import atomic_write, read_verified, write_verified

_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_COMPILE_REQUEST = "/jax/compilation_cache/compile_requests_use_cache"


def _persistent_cache_on() -> bool:
    import jax

    return bool(jax.config.jax_compilation_cache_dir)


_atomic_write = atomic_write  # the name other modules import


def load_code(source: str, filename: str, cache_path: Path | None):
    """``compile(source, filename, "exec")``, read from / written to ``cache_path`` when given
    (named by the interpreter's cache tag and the source hash, so a stale file is never used;
    checksummed, so a damaged one is recompiled)."""
    if cache_path is None:
        return compile(source, filename, "exec")
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    path = cache_path.with_name(f"{cache_path.name}.{sys.implementation.cache_tag}.{digest}.code")
    data = read_verified(path)
    if data is not None:
        try:
            return marshal.loads(data)
        except Exception:  # written by another interpreter build: recompile
            pass
    code = compile(source, filename, "exec")
    try:
        write_verified(path, marshal.dumps(code))
    except OSError:  # read-only cache: still usable
        pass
    return code


def target_platform() -> str:
    """Platform (``"cpu"``, ``"gpu"`` …) that a compilation started now targets: JAX's default
    device where one is set (``jax.default_device``), else its default backend."""
    return device_key().split(":")[0]


_DEVICE_KEYS: dict[Any, str] = {}


def device_key() -> str:
    """The device a compilation or call started now targets, as ``"platform:id"``.

    ``jax.default_device`` may be unset (JAX's default: the first device of the default backend),
    a platform name or a device; all three name the same device in the common case, and must give
    one key: :func:`jax.pure_callback` runs its callback under ``jax.default_device(<the calling
    computation's device>)``, so an evaluator prepared outside a callback and called inside one
    (the simulator's Newton loop) would otherwise miss its executables and trace, lower and
    compile every piece a second time (≈ 5–10 s for PSP103)."""
    import jax

    raw = jax.config.jax_default_device
    key = _DEVICE_KEYS.get(raw)
    if key is None:
        dev = (jax.devices()[0] if raw is None else jax.devices(raw)[0] if isinstance(raw, str)
               else raw)
        key = _DEVICE_KEYS[raw] = f"{dev.platform}:{dev.id}"
    return key


def exe_cache_enabled() -> bool:
    return _config.get("EXE_CACHE")


def _environment_key() -> str:
    import jax
    import jaxlib

    dev = jax.devices()[0]
    return repr((jax.__version__, jaxlib.__version__, bool(jax.config.jax_enable_x64), dev.platform,
                 getattr(dev, "device_kind", ""), os.environ.get("XLA_FLAGS", "")))


class CachedJit:
    """``jax.jit(fn, compiler_options=options)`` compiled ahead of time on the first call, the
    executable kept in memory and on disk under ``key`` (see the module docstring).

    Calls must keep the first call's argument structure, shapes and dtypes (the callers pad
    batches to fixed buckets).
    """

    def __init__(self, fn: Callable, key: str | None,
                 options: dict[str, str] | Callable[[str], dict[str, str] | None] | None = None):
        """``options``: XLA compiler options, or a function of the target platform (``"cpu"``,
        ``"gpu"`` …) returning them."""
        self.fn = fn
        self.key = key
        self.options = options
        self._exes: dict[str, Any] = {}  # device_key() → executable
        self._unverified: dict[str, Any] = {}  # loaded by prepare(), not run yet
        self._last_default: Any = None  # the last call's default device and executable
        self._last_exe: Any = None

    def _path(self, args: tuple, device: str) -> Path | None:
        if self.key is None or not exe_cache_enabled():
            return None
        import jax
        import numpy as np

        leaves, tree = jax.tree_util.tree_flatten(args)
        avals = [(np.shape(x), str(getattr(x, "dtype", type(x).__name__))) for x in leaves]
        h = hashlib.sha256((self.key + repr(sorted((self._options() or {}).items())) + str(tree)
                            + repr(avals) + device + _environment_key()).encode()).hexdigest()[:32]
        return cache_dir() / "exe" / f"{h}.bin"

    def _load(self, path: Path | None):
        """The stored executable at ``path``, or ``None`` (none stored; a corrupt or unloadable
        entry is removed so that it is compiled again)."""
        if path is None or not path.is_file():
            return None
        from jax.experimental import serialize_executable as se

        try:
            data = read_verified(path)
            if data is None:
                raise ValueError("damaged entry")
            payload, in_tree, out_tree = pickle.loads(data)
            return se.deserialize_and_load(payload, in_tree, out_tree)
        except Exception:
            path.unlink(missing_ok=True)
            return None

    def _options(self) -> dict[str, str] | None:
        """The compiler options for the platform a compilation started now targets."""
        if not callable(self.options):
            return self.options
        return self.options(target_platform())

    def _jitted(self, path: Path | None):
        """``jax.jit`` of the function, named after its executable-cache entry.

        JAX's persistent cache keys an entry by the module's name plus its HLO. An executable JAX
        loads from there cannot be stored here (see :meth:`_finish`), so, were the name the
        same for every key, a piece whose HLO is unchanged but whose key is new (e.g. after a
        va2jax upgrade) would come from JAX's cache in every process and never reach this cache —
        traced and lowered again each time. Named after the entry, it is compiled fresh once and
        stored."""
        import jax

        fn = self.fn
        if path is not None:
            inner = fn

            def fn(*args):
                return inner(*args)

            fn.__name__ = fn.__qualname__ = f"va2jax_{path.stem}"
        return jax.jit(fn, compiler_options=self._options())

    def _compile(self, args: tuple, path: Path | None):
        return self._finish(self._jitted(path).lower(*args), path)

    def _finish(self, lowered, path: Path | None):
        """XLA-compile ``lowered`` and store the executable under ``path`` (thread-safe: JAX's
        persistent-cache hits are attributed to the thread that compiles)."""
        import threading

        import jax
        from jax._src import monitoring

        me = threading.get_ident()
        events: list[str] = []

        def listen(event: str, **kwargs) -> None:
            if event in (_CACHE_HIT, _COMPILE_REQUEST) and threading.get_ident() == me:
                events.append(event)

        jax.monitoring.register_event_listener(listen)
        try:
            exe = lowered.compile()
        finally:
            monitoring.unregister_event_listener(listen)
        # an executable JAX loaded from its own persistent cache does not serialise again
        # correctly (its kernels are missing when deserialised), nor does one JAX took from its
        # in-memory cache (no compile request seen): store only fresh compilations
        fresh = _CACHE_HIT not in events and (_COMPILE_REQUEST in events or not _persistent_cache_on())
        if path is not None and fresh:
            from jax.experimental import serialize_executable as se

            try:
                write_verified(path, pickle.dumps(se.serialize(exe)))
            except Exception:  # not serialisable on this backend, or read-only cache
                pass
        return exe

    def ready(self) -> bool:
        """Whether an executable for the current default device is in memory."""
        return device_key() in self._exes

    def prepare(self, args: tuple, executor) -> tuple[Any, Any]:
        """Make an executable for ``args`` (arrays or ``jax.ShapeDtypeStruct``) available without
        running it: from memory, from disk, or lowered here and XLA-compiled on ``executor``.

        Returns ``(out_info, future)``: the output shapes/dtypes (to lower the next piece before
        this one is compiled) and the pending compilation (``None`` if nothing is pending).
        Several pieces compile in parallel this way; XLA's compiler does not hold the GIL.
        """
        dev = device_key()
        exe = self._exes.get(dev)
        if exe is not None:
            return exe.out_info, None
        if dev in self._unverified:
            return self._unverified[dev].out_info, None
        path = self._path(args, dev)
        exe = self._load(path)
        if exe is not None:
            self._unverified[dev] = exe
            return exe.out_info, None
        lowered = self._jitted(path).lower(*args)

        def work():
            self._exes[dev] = self._finish(lowered, path)

        return lowered.out_info, executor.submit(work)

    def __call__(self, *args):
        import jax

        default = jax.config.jax_default_device
        if default is self._last_default and self._last_exe is not None:
            return self._last_exe(*args)  # the common case, without building the device key
        dev = device_key()  # jax.default_device(<another device>) picks another executable
        exe = self._exes.get(dev)
        if exe is not None:
            self._last_default, self._last_exe = default, exe
            return exe(*args)
        path = self._path(args, dev)
        exe = self._unverified.pop(dev, None)
        if exe is None:
            exe = self._load(path)
        if exe is not None:
            try:
                res = exe(*args)
                self._exes[dev] = exe
                return res
            except Exception:  # stale: compile again
                if path is not None:
                    path.unlink(missing_ok=True)
        exe = self._exes[dev] = self._compile(args, path)
        return exe(*args)
