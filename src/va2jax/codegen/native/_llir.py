"""A small LLVM IR text builder with the subset of ``llvmlite.ir``'s interface the lowering uses.

``llvmlite.ir`` builds a Python object per instruction and formats it afterwards; for PSP103
(≈ 34,000 MIR instructions) that cost ≈ 2.5 s, this builder writes each instruction's text once
(≈ 10× less). The text is parsed and verified by LLVM (``llvmlite.binding.parse_assembly``) as
before. Pointers are opaque (``ptr``); doubles are written as their exact bit patterns.
"""
from __future__ import annotations

import struct


class Type:
    __slots__ = ("s",)

    def __init__(self, s: str):
        self.s = s

    def __str__(self) -> str:
        return self.s

    def __eq__(self, other) -> bool:
        return isinstance(other, Type) and other.s == self.s

    def __hash__(self) -> int:
        return hash(self.s)


def DoubleType() -> Type:
    return Type("double")


def IntType(bits: int) -> Type:
    return Type(f"i{bits}")


def PointerType(_pointee: Type | None = None) -> Type:
    return Type("ptr")


def VoidType() -> Type:
    return Type("void")


class FunctionType:
    def __init__(self, ret: Type, args: list[Type]):
        self.return_type, self.args = ret, list(args)


class Value:
    __slots__ = ("ref", "type")

    def __init__(self, type_: Type, ref: str):
        self.type, self.ref = type_, ref

    def __str__(self) -> str:
        return self.ref


def Constant(type_: Type, value) -> Value:
    if type_.s == "double":
        return Value(type_, "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(value)))[0])
    if type_.s == "i1":
        return Value(type_, "true" if value else "false")
    return Value(type_, str(int(value)))


class Argument(Value):
    __slots__ = ("attrs",)

    def __init__(self, type_: Type, ref: str):
        super().__init__(type_, ref)
        self.attrs: list[str] = []

    def add_attribute(self, a: str) -> None:
        self.attrs.append(a)


class _Term:
    """Marks the position of a block's terminator (for ``position_before``)."""

    def __init__(self, block: Block):
        self.block = block


class Block:
    def __init__(self, fn: Function, name: str):
        self.fn, self.name = fn, name
        self.lines: list = []
        self.is_terminated = False

    @property
    def terminator(self) -> _Term:
        return _Term(self)


class Phi(Value):
    __slots__ = ("incoming",)

    def __init__(self, type_: Type, ref: str):
        super().__init__(type_, ref)
        self.incoming: list[tuple[Value, Block]] = []

    def add_incoming(self, v: Value, block: Block) -> None:
        self.incoming.append((v, block))

    def __str__(self) -> str:  # the instruction's text (rendered after all incomings are known)
        inc = ", ".join(f"[{v.ref}, %{b.name}]" for v, b in self.incoming)
        return f"  {self.ref} = phi {self.type.s} {inc}"


class _Attrs(set):
    pass


class Function:
    def __init__(self, module: Module, ftype: FunctionType, name: str):
        self.module, self.ftype, self.name = module, ftype, name
        self.args = [Argument(t, f"%a{i}") for i, t in enumerate(ftype.args)]
        self.blocks: list[Block] = []
        self.linkage = ""
        self.attributes = _Attrs()
        self._n = 0
        self._labels: set[str] = set()
        module.globals[name] = self
        module.functions.append(self)

    def tmp(self) -> str:
        self._n += 1
        return f"%t{self._n}"

    def append_basic_block(self, name: str = "") -> Block:
        label = "".join(c if c.isalnum() or c in "._" else "_" for c in name) or "b"
        base, k = label, 0
        while label in self._labels:
            k += 1
            label = f"{base}.{k}"
        self._labels.add(label)
        b = Block(self, label)
        self.blocks.append(b)
        return b

    def render(self) -> str:
        ret = self.ftype.return_type.s
        attrs = (" " + " ".join(sorted(self.attributes))) if self.attributes else ""
        if not self.blocks:
            return f'declare {ret} @"{self.name}"({", ".join(t.s for t in self.ftype.args)}){attrs}'
        args = ", ".join(" ".join([a.type.s, *a.attrs, a.ref]) for a in self.args)
        link = f"{self.linkage} " if self.linkage else ""
        out = [f'define {link}{ret} @"{self.name}"({args}){attrs} {{']
        for b in self.blocks:
            out.append(f"{b.name}:")
            out.extend(str(x) for x in b.lines)
        out.append("}")
        return "\n".join(out)


class Module:
    def __init__(self, name: str = ""):
        self.name = name
        self.triple = ""
        self.globals: dict[str, Function] = {}
        self.functions: list[Function] = []
        self.raw: list[str] = []  # functions written as LLVM IR text (``_lower._dense``)

    def __str__(self) -> str:
        head = [f'; ModuleID = "{self.name}"']
        if self.triple:
            head.append(f'target triple = "{self.triple}"')
        return "\n".join(head + [f.render() for f in self.functions] + self.raw) + "\n"


_FCMP_O = {"==": "oeq", "!=": "one", "<": "olt", "<=": "ole", ">": "ogt", ">=": "oge"}
_FCMP_U = {"==": "ueq", "!=": "une", "<": "ult", "<=": "ule", ">": "ugt", ">=": "uge"}
_ICMP_S = {"==": "eq", "!=": "ne", "<": "slt", "<=": "sle", ">": "sgt", ">=": "sge"}
_ICMP_U = {"==": "eq", "!=": "ne", "<": "ult", "<=": "ule", ">": "ugt", ">=": "uge"}
_I1 = Type("i1")
_PTR = Type("ptr")
_F64 = Type("double")


class IRBuilder:
    def __init__(self, block: Block | None = None):
        self.block = block
        self._at: int | None = None  # insertion index (None: append)

    def position_before(self, term: _Term) -> None:
        self.block = term.block
        self._at = len(term.block.lines) - 1

    def _emit(self, text: str) -> None:
        if self._at is None:
            self.block.lines.append(text)
        else:
            self.block.lines.insert(self._at, text)
            self._at += 1

    def _def(self, type_: Type, rhs: str) -> Value:
        r = self.block.fn.tmp()
        self._emit(f"  {r} = {rhs}")
        return Value(type_, r)

    def _term(self, text: str) -> None:
        self._emit(f"  {text}")
        self.block.is_terminated = True

    # memory
    def gep(self, base: Value, idx: list[Value], inbounds: bool = True) -> Value:
        return self._def(_PTR, f"getelementptr {'inbounds ' if inbounds else ''}double, ptr {base.ref}, "
                               f"{idx[0].type.s} {idx[0].ref}")

    def load(self, ptr: Value, typ: Type = _F64) -> Value:
        return self._def(typ, f"load {typ.s}, ptr {ptr.ref}")

    def store(self, v: Value, ptr: Value) -> None:
        self._emit(f"  store {v.type.s} {v.ref}, ptr {ptr.ref}")

    # arithmetic
    def _bin(self, op: str, a: Value, b: Value) -> Value:
        return self._def(a.type, f"{op} {a.type.s} {a.ref}, {b.ref}")

    def fadd(self, a, b):
        return self._bin("fadd", a, b)

    def fsub(self, a, b):
        return self._bin("fsub", a, b)

    def fmul(self, a, b):
        return self._bin("fmul", a, b)

    def fdiv(self, a, b):
        return self._bin("fdiv", a, b)

    def frem(self, a, b):
        return self._bin("frem", a, b)

    def add(self, a, b):
        return self._bin("add", a, b)

    def sub(self, a, b):
        return self._bin("sub", a, b)

    def mul(self, a, b):
        return self._bin("mul", a, b)

    def and_(self, a, b):
        return self._bin("and", a, b)

    def or_(self, a, b):
        return self._bin("or", a, b)

    def xor(self, a, b):
        return self._bin("xor", a, b)

    def sdiv(self, a, b):
        return self._bin("sdiv", a, b)

    def srem(self, a, b):
        return self._bin("srem", a, b)

    def shl(self, a, b):
        return self._bin("shl", a, b)

    def ashr(self, a, b):
        return self._bin("ashr", a, b)

    def fneg(self, a: Value) -> Value:
        return self._def(a.type, f"fneg {a.type.s} {a.ref}")

    # comparisons, select, casts
    def fcmp_ordered(self, op: str, a: Value, b: Value) -> Value:
        return self._def(_I1, f"fcmp {_FCMP_O[op]} {a.type.s} {a.ref}, {b.ref}")

    def fcmp_unordered(self, op: str, a: Value, b: Value) -> Value:
        return self._def(_I1, f"fcmp {_FCMP_U[op]} {a.type.s} {a.ref}, {b.ref}")

    def icmp_signed(self, op: str, a: Value, b: Value) -> Value:
        return self._def(_I1, f"icmp {_ICMP_S[op]} {a.type.s} {a.ref}, {b.ref}")

    def icmp_unsigned(self, op: str, a: Value, b: Value) -> Value:
        return self._def(_I1, f"icmp {_ICMP_U[op]} {a.type.s} {a.ref}, {b.ref}")

    def select(self, c: Value, a: Value, b: Value) -> Value:
        return self._def(a.type, f"select i1 {c.ref}, {a.type.s} {a.ref}, {b.type.s} {b.ref}")

    def _cast(self, op: str, a: Value, t: Type) -> Value:
        return self._def(t, f"{op} {a.type.s} {a.ref} to {t.s}")

    def sitofp(self, a, t):
        return self._cast("sitofp", a, t)

    def uitofp(self, a, t):
        return self._cast("uitofp", a, t)

    def fptosi(self, a, t):
        return self._cast("fptosi", a, t)

    def zext(self, a, t):
        return self._cast("zext", a, t)

    # calls and control flow
    def call(self, fn: Function, args: list[Value]) -> Value | None:
        rt = fn.ftype.return_type
        text = f'call {rt.s} @"{fn.name}"(' + ", ".join(f"{a.type.s} {a.ref}" for a in args) + ")"
        if rt.s == "void":
            self._emit(f"  {text}")
            return None
        return self._def(rt, text)

    def phi(self, type_: Type, name: str = "") -> Phi:
        p = Phi(type_, self.block.fn.tmp())
        self.block.lines.append(p)
        return p

    def branch(self, target: Block) -> None:
        self._term(f"br label %{target.name}")

    def cbranch(self, c: Value, t: Block, f: Block) -> None:
        self._term(f"br i1 {c.ref}, label %{t.name}, label %{f.name}")

    def ret_void(self) -> None:
        self._term("ret void")
