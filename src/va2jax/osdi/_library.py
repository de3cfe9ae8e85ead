"""Opening OSDI libraries and reading their descriptors into frozen metadata."""
from __future__ import annotations

import ctypes as C
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import limiting
from ..errors import Va2JaxError, suggest
from . import _structs as S

log = logging.getLogger("va2jax.osdi")
model_log = logging.getLogger("va2jax.osdi.model")

_ELF_MAGIC = b"\x7fELF"


class OsdiLoadError(Va2JaxError):
    """A file could not be opened as a supported OSDI library."""


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeInfo:
    """One node (unknown) of a module: a terminal, an internal node or a flow (branch current).

    ``units`` are the unknown's units (``V`` for a potential, ``A`` for a flow), ``residual_units``
    the units of its residual (``A`` for KCL rows).
    """

    index: int
    name: str
    units: str
    residual_units: str
    is_flow: bool
    is_terminal: bool


@dataclass(frozen=True)
class ParamInfo:
    """A model/instance parameter or an operating-point variable (opvar).

    ``id`` is the OSDI id used by ``access``; ``names`` lists the name and all aliases;
    ``kind`` is ``"model"``, ``"instance"`` or ``"opvar"``; ``type`` is ``"real"``, ``"int"``
    or ``"str"``; ``length`` is 0 for a scalar, else the array length.
    """

    id: int
    names: tuple[str, ...]
    kind: str
    type: str
    length: int
    units: str
    description: str
    flags: int

    @property
    def name(self) -> str:
        """The primary name (first of :attr:`names`)."""
        return self.names[0]


@dataclass(frozen=True)
class JacobianEntryInfo:
    """A structurally non-zero Jacobian entry d residual[row] / d unknown[col] (descriptor indices)."""

    row: int
    col: int
    resist: bool
    react: bool
    resist_const: bool
    react_const: bool
    react_ptr_off: int


@dataclass(frozen=True)
class NoiseSourceInfo:
    """A noise source between two nodes (``node2`` is -1 for ground); ``type`` white/flicker/table
    (OSDI 0.5; ``None`` on older versions)."""

    name: str
    node1: int
    node2: int
    type: str | None


@dataclass(frozen=True)
class NatureInfo:
    """A Verilog-A nature (``OSDI_NATURES``)."""

    name: str
    parent_type: int
    parent: int
    ddt: int
    idt: int
    attr_start: int
    num_attr: int


@dataclass(frozen=True)
class DisciplineInfo:
    """A Verilog-A discipline (``OSDI_DISCIPLINES``)."""

    name: str
    flow: int
    potential: int
    domain: int
    attr_start: int
    num_flow_attr: int
    num_potential_attr: int
    num_user_attr: int


@dataclass(frozen=True)
class AttributeInfo:
    """A nature/discipline attribute (``OSDI_ATTRIBUTES``) with its value (str, int or float)."""

    name: str
    value: str | int | float


@dataclass(frozen=True)
class ModuleInfo:
    """Metadata of one OSDI descriptor (one Verilog-A module) plus a handle to evaluate it.

    Node indices are descriptor indices ``0..num_nodes-1``; terminals are the first
    ``num_terminals`` nodes. ``collapsible`` pairs use -1 for ground.
    """

    library: "OsdiLibrary" = field(repr=False, compare=False)
    index: int
    name: str
    num_nodes: int
    num_terminals: int
    nodes: tuple[NodeInfo, ...]
    params: tuple[ParamInfo, ...]
    opvars: tuple[ParamInfo, ...]
    num_params: int
    num_instance_params: int
    jacobian: tuple[JacobianEntryInfo, ...]
    collapsible: tuple[tuple[int, int], ...]
    noise_sources: tuple[NoiseSourceInfo, ...]
    num_states: int
    has_bound_step: bool
    module_flags: int | None
    num_resistive_jacobian_entries: int | None
    num_reactive_jacobian_entries: int | None
    inputs: tuple[tuple[int, int], ...] | None
    model_size: int
    instance_size: int
    uses_abstime: bool | None = None

    @property
    def terminals(self) -> tuple[NodeInfo, ...]:
        """The terminal nodes (first ``num_terminals`` nodes)."""
        return self.nodes[: self.num_terminals]

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in descriptor order."""
        return tuple(n.name for n in self.nodes)

    @property
    def descriptor(self) -> Any:
        """The raw ctypes descriptor (kept alive by the library)."""
        return self.library._descriptors[self.index]

    def node_index(self, name: str) -> int:
        """Descriptor index of node ``name`` (case-insensitive); Va2JaxError naming near names."""
        low = name.lower()
        for n in self.nodes:
            if n.name.lower() == low:
                return n.index
        raise Va2JaxError(
            f"module {self.name!r} has no node {name!r}{suggest(name, self.node_names)}"
            f"; nodes: {', '.join(self.node_names)}"
        )

    def find_param(self, name: str, *, include_opvars: bool = False) -> ParamInfo:
        """Look up a parameter (or opvar) by any name or alias, case-insensitive."""
        table = self.library._param_index[self.index]
        p = table.get(name.lower())
        if p is not None and (include_opvars or p.kind != "opvar"):
            return p
        cands = [n for q in (self.params + (self.opvars if include_opvars else ())) for n in q.names]
        what = "parameter or opvar" if include_opvars else "parameter"
        if p is not None:
            raise Va2JaxError(f"{name!r} is an opvar of module {self.name!r}, not a parameter")
        raise Va2JaxError(f"module {self.name!r} has no {what} {name!r}{suggest(name, cands)}")

    def model(self, params: dict[str, Any] | None = None, sim_params: dict[str, float] | None = None):
        """Create and set up an :class:`~va2jax.osdi.OsdiModel` with model parameters ``params``."""
        from ._instance import OsdiModel

        return OsdiModel(self, params, sim_params=sim_params)

    def instance(
        self,
        params: dict[str, Any] | None = None,
        *,
        inst_params: dict[str, Any] | None = None,
        temperature: float = 300.15,
        num_terminals: int | None = None,
        sim_params: dict[str, float] | None = None,
    ):
        """Create a set-up model and instance in one go.

        ``params`` may mix model and instance parameters (routed by their kind); ``inst_params``
        are always set on the instance. ``temperature`` is the device temperature in K.
        """
        from ._instance import OsdiModel

        mp, ip = split_params(self, params or {})
        ip.update(inst_params or {})
        model = OsdiModel(self, mp, sim_params=sim_params)
        return model.instance(ip, temperature=temperature, num_terminals=num_terminals)


def split_params(module: ModuleInfo, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``params`` into (model params, instance params) by each parameter's kind."""
    mp: dict[str, Any] = {}
    ip: dict[str, Any] = {}
    for k, v in params.items():
        p = module.find_param(k)
        (ip if p.kind == "instance" else mp)[k] = v
    return mp, ip


def _s(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


# ---------------------------------------------------------------------------------------------
# callbacks: logging and limiting (kept alive at module level)
# ---------------------------------------------------------------------------------------------
_LOG_LEVELS = {
    S.LOG_LVL_DEBUG: logging.DEBUG,
    S.LOG_LVL_DISPLAY: logging.INFO,
    S.LOG_LVL_INFO: logging.INFO,
    S.LOG_LVL_WARN: logging.WARNING,
    S.LOG_LVL_ERR: logging.ERROR,
    S.LOG_LVL_FATAL: logging.CRITICAL,
}
_libc_free = S.libc_free


def _osdi_log(handle: int | None, msg: int | None, lvl: int) -> None:
    try:
        who = C.string_at(handle).decode("utf-8", "replace") if handle else "?"
        text = C.string_at(msg).decode("utf-8", "replace") if msg else ""
        if lvl & S.LOG_FMT_ERR:
            text = f"failed to format {text!r}"
        elif msg:
            _libc_free(msg)  # formatted messages are malloc'ed by the library and owned by us
        model_log.log(_LOG_LEVELS.get(lvl & S.LOG_LVL_MASK, logging.ERROR), "%s: %s", who, text.rstrip("\n"))
    except Exception:  # pragma: no cover - never let an exception cross into C
        pass


_LOG_CB = S.LOG_FN(_osdi_log)
_LIM_CBS: dict[tuple[str, int], Any] = {}
_lim_warned: set[str] = set()


def _lim_callback(name: str, num_args: int):
    """A ctypes callback ``double f(bool init, bool *check, double vnew, double vold, ...)``."""
    key = (name, num_args)
    if key in _LIM_CBS:
        return _LIM_CBS[key]
    entry = limiting.LIMIT_FUNCTIONS.get(name.lower())
    if entry is not None and entry[1] != num_args:
        entry = None
    if entry is None:
        func = None
    else:
        func = entry[0]

    def cb(init, check, vnew, vold, *extra):
        try:
            if func is None:
                if name not in _lim_warned:
                    _lim_warned.add(name)
                    log.warning("no limiting function %r with %d extra argument(s): $limit passes "
                                "the voltage through unchanged", name, num_args)
                return vnew
            v, changed = func(vnew, vold, *extra, init=bool(init))
            if changed and check:
                check[0] = True
            return v
        except Exception:  # pragma: no cover
            return vnew

    ftype = C.CFUNCTYPE(C.c_double, C.c_bool, C.POINTER(C.c_bool), C.c_double, C.c_double,
                        *([C.c_double] * num_args))
    obj = ftype(cb)
    _LIM_CBS[key] = obj
    return obj


# ---------------------------------------------------------------------------------------------
# the library
# ---------------------------------------------------------------------------------------------
_CACHE: dict[tuple[str, int, int], "OsdiLibrary"] = {}
_CACHE_LOCK = threading.Lock()


def _u32(lib: C.CDLL, name: str) -> int | None:
    try:
        return int(C.c_uint32.in_dll(lib, name).value)
    except ValueError:
        return None


class OsdiLibrary:
    """An opened OSDI shared library (``.osdi``): version, descriptors and their metadata.

    Use :func:`load_library` (cached per file) rather than the constructor.
    """

    def __init__(self, path: str | os.PathLike[str]):
        p = Path(path)
        if not p.exists():
            raise OsdiLoadError(f"{p}: no such file")
        if not p.is_file():
            raise OsdiLoadError(f"{p}: not a file")
        try:
            with open(p, "rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise OsdiLoadError(f"{p}: cannot read: {exc.strerror}") from None
        if magic != _ELF_MAGIC:
            raise OsdiLoadError(f"{p}: not a shared library (no ELF header)")
        problem = _elf_problem(p)
        if problem:  # dlopen of a truncated file dies with SIGBUS when it touches a missing page
            raise OsdiLoadError(f"{p}: damaged shared library ({problem})")
        try:
            lib = C.CDLL(str(p.resolve()), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as exc:
            msg = str(exc).splitlines()[0] if str(exc) else "dlopen failed"
            raise OsdiLoadError(f"{p}: cannot load as a shared library: {msg}") from None
        self.path: Path = p
        self._lib = lib
        major, minor = _u32(lib, "OSDI_VERSION_MAJOR"), _u32(lib, "OSDI_VERSION_MINOR")
        ndesc = _u32(lib, "OSDI_NUM_DESCRIPTORS")
        if major is None or minor is None or ndesc is None or not hasattr(lib, "OSDI_DESCRIPTORS"):
            raise OsdiLoadError(f"{p}: not an OSDI library (no OSDI_VERSION_MAJOR/MINOR, "
                                "OSDI_NUM_DESCRIPTORS or OSDI_DESCRIPTORS symbols)")
        if (major, minor) not in S.SUPPORTED_VERSIONS:
            raise OsdiLoadError(f"{p}: unsupported OSDI version {major}.{minor} "
                                "(supported: 0.3, 0.4, 0.5)")
        self.version: tuple[int, int] = (major, minor)
        dtype = S.DESCRIPTOR_TYPES[self.version]
        dsize = _u32(lib, "OSDI_DESCRIPTOR_SIZE")
        if dsize is not None and dsize != C.sizeof(dtype):
            raise OsdiLoadError(f"{p}: OSDI_DESCRIPTOR_SIZE is {dsize} bytes but an OSDI "
                                f"{major}.{minor} descriptor is {C.sizeof(dtype)} bytes here; "
                                "the library was built for another ABI or header")
        if ndesc > 10000:
            raise OsdiLoadError(f"{p}: implausible OSDI_NUM_DESCRIPTORS={ndesc}")
        self._descriptors = (dtype * ndesc).in_dll(lib, "OSDI_DESCRIPTORS")
        self._install_log()
        self.lim_functions: tuple[tuple[str, int], ...] = self._install_limits()
        self.natures, self.disciplines, self.attributes = self._read_natures()
        self._param_index: list[dict[str, ParamInfo]] = []
        self.modules: tuple[ModuleInfo, ...] = tuple(self._read_module(i) for i in range(ndesc))

    # -- setup helpers --------------------------------------------------------------------------
    def _install_log(self) -> None:
        try:
            slot = C.c_void_p.in_dll(self._lib, "osdi_log")
        except ValueError:
            return
        slot.value = C.cast(_LOG_CB, C.c_void_p).value

    def _install_limits(self) -> tuple[tuple[str, int], ...]:
        n = _u32(self._lib, "OSDI_LIM_TABLE_LEN")
        if not n or not hasattr(self._lib, "OSDI_LIM_TABLE"):
            return ()
        table = (S.OsdiLimFunction * n).in_dll(self._lib, "OSDI_LIM_TABLE")
        out = []
        for ent in table:
            name = _s(ent.name)
            cb = _lim_callback(name, int(ent.num_args))
            ent.func_ptr = C.cast(cb, C.c_void_p).value
            out.append((name, int(ent.num_args)))
        return tuple(out)

    def _read_natures(self):
        def arr(sym: str, ty):
            n = _u32(self._lib, sym + "_LEN")
            if not n or not hasattr(self._lib, sym):
                return []
            return list((ty * n).in_dll(self._lib, sym))

        natures = tuple(NatureInfo(_s(x.name), x.parent_type, x.parent, x.ddt, x.idt, x.attr_start,
                                   x.num_attr) for x in arr("OSDI_NATURES", S.OsdiNature))
        discs = tuple(DisciplineInfo(_s(x.name), x.flow, x.potential, x.domain, x.attr_start,
                                     x.num_flow_attr, x.num_potential_attr, x.num_user_attr)
                      for x in arr("OSDI_DISCIPLINES", S.OsdiDiscipline))
        attrs = []
        for a in arr("OSDI_ATTRIBUTES", S.OsdiAttribute):
            if a.value_type == S.ATTR_TYPE_STR:
                val: str | int | float = _s(a.value.string)
            elif a.value_type == S.ATTR_TYPE_INT:
                val = int(a.value.integer)
            else:
                val = float(a.value.real)
            attrs.append(AttributeInfo(_s(a.name), val))
        return natures, discs, tuple(attrs)

    def _read_module(self, i: int) -> ModuleInfo:
        d = self._descriptors[i]
        nn = int(d.num_nodes)
        if nn > 1_000_000 or d.num_terminals > nn:
            raise OsdiLoadError(f"{self.path}: descriptor {i} is corrupt (num_nodes={nn}, "
                                f"num_terminals={d.num_terminals})")
        nodes = tuple(
            NodeInfo(k, _s(d.nodes[k].name), _s(d.nodes[k].units), _s(d.nodes[k].residual_units),
                     bool(d.nodes[k].is_flow), k < d.num_terminals)
            for k in range(nn)
        )
        params, opvars = [], []
        index: dict[str, ParamInfo] = {}
        total = int(d.num_params) + int(d.num_opvars)
        for pid in range(total):
            po = d.param_opvar[pid]
            names = tuple(_s(po.name[a]) for a in range(int(po.num_alias) + 1))
            kind = {S.PARA_KIND_MODEL: "model", S.PARA_KIND_INST: "instance",
                    S.PARA_KIND_OPVAR: "opvar"}.get(po.flags & S.PARA_KIND_MASK, "unknown")
            ty = {S.PARA_TY_REAL: "real", S.PARA_TY_INT: "int", S.PARA_TY_STR: "str"}.get(
                po.flags & S.PARA_TY_MASK, "unknown")
            info = ParamInfo(pid, names, kind, ty, int(po.len), _s(po.units), _s(po.description),
                             int(po.flags))
            (opvars if pid >= d.num_params else params).append(info)
            for nm in names:
                index.setdefault(nm.lower(), info)
        self._param_index.append(index)

        def node_or_ground(x: int) -> int:
            return -1 if x == S.UINT32_MAX else int(x)

        jac = tuple(
            JacobianEntryInfo(
                int(e.nodes.node_1), int(e.nodes.node_2), bool(e.flags & S.JACOBIAN_ENTRY_RESIST),
                bool(e.flags & S.JACOBIAN_ENTRY_REACT), bool(e.flags & S.JACOBIAN_ENTRY_RESIST_CONST),
                bool(e.flags & S.JACOBIAN_ENTRY_REACT_CONST), int(e.react_ptr_off))
            for e in (d.jacobian_entries[k] for k in range(int(d.num_jacobian_entries)))
        )
        coll = tuple((node_or_ground(d.collapsible[k].node_1), node_or_ground(d.collapsible[k].node_2))
                     for k in range(int(d.num_collapsible)))
        v5 = self.version >= (0, 5)
        v4 = self.version >= (0, 4)
        ntypes = {S.NOISE_TYPE_WHITE: "white", S.NOISE_TYPE_FLICKER: "flicker", S.NOISE_TYPE_TABLE: "table"}
        noise = []
        for k in range(int(d.num_noise_src)):
            src = d.noise_sources[k]
            ty = None
            if v5 and d.noise_source_type:
                ty = ntypes.get(d.noise_source_type[k], f"unknown({d.noise_source_type[k]})")
            noise.append(NoiseSourceInfo(_s(src.name), node_or_ground(src.nodes.node_1),
                                         node_or_ground(src.nodes.node_2), ty))
        return ModuleInfo(
            library=self,
            index=i,
            name=_s(d.name),
            num_nodes=nn,
            num_terminals=int(d.num_terminals),
            nodes=nodes,
            params=tuple(params),
            opvars=tuple(opvars),
            num_params=int(d.num_params),
            num_instance_params=int(d.num_instance_params),
            jacobian=jac,
            collapsible=coll,
            noise_sources=tuple(noise),
            num_states=int(d.num_states),
            has_bound_step=int(d.bound_step_offset) != S.UINT32_MAX,
            module_flags=int(d.module_flags) if v5 else None,
            num_resistive_jacobian_entries=int(d.num_resistive_jacobian_entries) if v4 else None,
            num_reactive_jacobian_entries=int(d.num_reactive_jacobian_entries) if v4 else None,
            inputs=tuple((int(d.inputs[k].node_1), int(d.inputs[k].node_2))
                         for k in range(int(d.num_inputs))) if v4 else None,
            model_size=int(d.model_size),
            instance_size=int(d.instance_size),
            uses_abstime=bool(d.module_flags & S.MODULEFLAG_ABSTIME) if v5 else None,
        )

    # -- public ---------------------------------------------------------------------------------
    @property
    def module_names(self) -> tuple[str, ...]:
        """Names of the modules (descriptors) in library order."""
        return tuple(m.name for m in self.modules)

    def module(self, which: str | int | None = None) -> ModuleInfo:
        """Pick a module by index or name (case-insensitive); ``None`` = the only/first one."""
        if which is None:
            if not self.modules:
                raise Va2JaxError(f"{self.path}: the library contains no modules")
            return self.modules[0]
        if isinstance(which, int):
            if not 0 <= which < len(self.modules):
                raise Va2JaxError(f"{self.path}: module index {which} out of range "
                                  f"0..{len(self.modules) - 1}")
            return self.modules[which]
        low = str(which).lower()
        for m in self.modules:
            if m.name.lower() == low:
                return m
        raise Va2JaxError(f"{self.path}: no module {which!r}{suggest(str(which), self.module_names)}"
                          f"; modules: {', '.join(self.module_names)}")

    def __repr__(self) -> str:
        return f"OsdiLibrary({str(self.path)!r}, version={self.version}, modules={self.module_names})"


def _elf_problem(path: Path) -> str | None:
    """Why the ELF file at ``path`` cannot be mapped safely, or ``None`` when it looks whole.

    Checks the ELF header (class, byte order), that the program-header and section-header tables
    lie inside the file, and that every segment's and every section's file bytes do (``PT_LOAD``
    segments are mapped by the dynamic loader; touching a page past the end of the file raises
    SIGBUS). Layout per the System V ABI (``Elf32_Ehdr``/``Elf64_Ehdr``, ``_Phdr``, ``_Shdr``).
    """
    import struct

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    size = len(data)
    if size < 16:
        return f"{size} bytes, shorter than an ELF header"
    cls, order = data[4], data[5]
    if cls not in (1, 2) or order not in (1, 2):
        return f"unknown ELF class {cls} or byte order {order}"
    bo = "<" if order == 1 else ">"
    if cls == 2:  # 64-bit
        ehdr, hdr_size = bo + "16xHHIQQQIHHHHHH", 64
        ph_fmt, ph_off, ph_filesz = bo + "IIQQQQQQ", 2, 5
        sh_fmt, sh_type, sh_off, sh_size = bo + "IIQQQQIIQQ", 1, 4, 5
    else:
        ehdr, hdr_size = bo + "16xHHIIIIIHHHHHH", 52
        ph_fmt, ph_off, ph_filesz = bo + "IIIIIIII", 1, 4
        sh_fmt, sh_type, sh_off, sh_size = bo + "IIIIIIIIII", 1, 4, 5
    if size < hdr_size:
        return f"{size} bytes, shorter than its {hdr_size}-byte ELF header"
    (_t, _m, _v, _e, phoff, shoff, _f, _eh, phentsize, phnum, shentsize, shnum,
     _x) = struct.unpack_from(ehdr, data)
    for what, off, ent, num, fmt in (("program headers", phoff, phentsize, phnum, ph_fmt),
                                     ("section headers", shoff, shentsize, shnum, sh_fmt)):
        if num and (ent < struct.calcsize(fmt) or off + ent * num > size):
            return f"file is {size} bytes but its {what} end at byte {off + ent * num}"
    for k in range(phnum):
        f = struct.unpack_from(ph_fmt, data, phoff + k * phentsize)
        if f[ph_off] + f[ph_filesz] > size:
            return f"file is {size} bytes but segment {k} ends at byte {f[ph_off] + f[ph_filesz]}"
    for k in range(shnum):
        f = struct.unpack_from(sh_fmt, data, shoff + k * shentsize)
        if f[sh_type] != 8 and f[sh_off] + f[sh_size] > size:  # 8 = SHT_NOBITS (.bss): no bytes
            return f"file is {size} bytes but section {k} ends at byte {f[sh_off] + f[sh_size]}"
    return None


def load_library(path: str | os.PathLike[str]) -> OsdiLibrary:
    """Open an OSDI library (cached per file path, size and modification time).

    Raises :class:`OsdiLoadError` (a :class:`~va2jax.errors.Va2JaxError`) with one line for a
    missing file, a file that is not a shared library, a library without OSDI symbols, an
    unsupported OSDI version or a descriptor-size mismatch.
    """
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return OsdiLibrary(p)  # raises the proper one-line error
    with _CACHE_LOCK:
        lib = _CACHE.get(key)
        if lib is None:
            lib = OsdiLibrary(p)
            _CACHE[key] = lib
        return lib
