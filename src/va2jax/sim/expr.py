"""Netlist expressions: numbers with scale suffixes, arithmetic, functions, parameters.

Both netlist dialects (VACASK ``.sim`` and SPICE) share this evaluator; they differ in how
numbers are read (:func:`parse_number`: SPICE's suffixes are case-insensitive with ``M`` =
milli, VACASK's prefixes case-sensitive with ``M`` = mega). Values are Python floats,
strings (``"pulse"``) or lists of floats (``[0 1 1m 0]``, VACASK vectors).

Grammar (lowest to highest precedence)::

    expr   := cond
    cond   := or ['?' expr ':' expr]
    or     := and {'||' and}
    and    := cmp {'&&' cmp}
    cmp    := sum [('=='|'!='|'<'|'<='|'>'|'>=') sum]
    sum    := prod {('+'|'-') prod}
    prod   := unary {('*'|'/'|'%') unary}
    unary  := ('-'|'+'|'!') unary | power
    power  := atom [('**'|'^') unary]
    atom   := NUMBER | STRING | NAME | NAME '(' args ')' | '(' expr ')' | '[' items ']' | '{' expr '}'
    items  := expr {',' expr}   (numbers)   |   expr {';' expr}   (VACASK list: any values)
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Union

from ..errors import Va2JaxError

Value = Union[float, str, list]

#: SPICE scale suffixes as ngspice-39 reads them, as powers of ten: case-insensitive (``M`` is
#: milli, ``meg`` mega), ``meg``/``mil`` before ``m`` (``mil``: 25.4e-6); no atto (``1a`` is 1).
_SUFFIX_EXP = {"t": 12, "g": 9, "meg": 6, "k": 3, "mil": -6, "m": -3, "u": -6, "n": -9, "p": -12,
               "f": -15}

_NUM_RE = re.compile(
    r"(?P<mant>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<suf>meg|mil|[tgkmunpf])?(?P<unit>[a-zA-Z]*)",
    re.IGNORECASE,
)
#: VACASK's scale prefixes (``lib/dfllexer.l``), case-sensitive: ``m`` milli but ``M`` mega.
_VACASK_PREFIX = {
    "T": 1e12, "G": 1e9, "M": 1e6, "x": 1e6, "X": 1e6, "meg": 1e6, "k": 1e3, "K": 1e3,
    "mil": 25.4e-6, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15, "a": 1e-18,
}
#: A VACASK number: an integer without leading zeros, hexadecimal ``0x…``, a decimal with a
#: dot and/or an exponent, or a mantissa without exponent followed by a scale prefix and an
#: optional unit (``[a-zA-Z_]*``, ignored); ``inf``/``nan`` are name tokens (any case).
_VACASK_NUM_RE = re.compile(
    r"(?P<hex>0[xX][0-9a-fA-F]*)"
    r"|(?P<mant>(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)"
    r"(?P<tail>[eE][+-]?\d+|(?P<pre>meg|mil|[munpfakKMGTxX])[a-zA-Z_]*)?"
)
#: The text the VACASK dialect reads as one number token (checked by :data:`_VACASK_NUM_RE`):
#: digits, then letters, digits, ``_`` and dots up to the next operator (``1e3k``, ``007``,
#: ``1.5.3`` are one malformed token, as VACASK refuses them).
_VACASK_NUM_TOKEN = re.compile(r"\s*(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[\w.]*)")
_DIALECTS = ("spice", "vacask")
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$.:]*)"
    r"|(?P<str>\"[^\"]*\")"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||[-+*/%^()<>!?:,;\[\]{}]))"
)

_FUNCS = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "exp": math.exp, "log": math.log, "ln": math.log, "log10": math.log10,
    "sqrt": math.sqrt, "abs": abs, "min": min, "max": max, "pow": math.pow, "floor": math.floor,
    "ceil": math.ceil, "int": lambda v: float(int(v)), "hypot": math.hypot,
    "sgn": lambda v: float((v > 0) - (v < 0)), "sign": lambda v: float((v > 0) - (v < 0)),
}
_CONSTS = {"pi": math.pi, "e": math.e, "true": 1.0, "false": 0.0}


def parse_number(text: str, dialect: str = "spice") -> float | None:
    """Parse a number literal → float, or ``None`` if ``text`` is not one.

    ``dialect="spice"`` (ngspice): ``1k``, ``2.5meg``, ``10uF``, ``1e-9``, ``1e3k`` (= 1e6);
    case-insensitive, ``M`` = 1e-3. ``dialect="vacask"``: VACASK's rules (:data:`_VACASK_NUM_RE`),
    ``10M`` = 1e7, ``10m`` = 1e-2, ``0x1f`` = 31; a number with an exponent takes no prefix.
    """
    if dialect == "vacask":
        return _vacask_number(text.strip())
    assert dialect == "spice", dialect
    m = _NUM_RE.fullmatch(text.strip())
    if not m:
        return None
    # ngspice's arithmetic (INPevaluate), for the same double: all digits as one integer
    # mantissa, times 10 to the power of (prefix − digits after the point + exponent); ``mil``
    # multiplies the mantissa by 25.4 (prefix 1e-6). ``7.1`` is 71·10⁻¹ = 7.1000000000000005.
    mant = m.group("mant").lower()
    digits, _, exp = mant.partition("e")
    whole, _, frac = digits.partition(".")
    val = float(int(whole + frac or "0"))
    power = int(exp or 0) - len(frac)
    suf = (m.group("suf") or "").lower()
    if suf == "mil":
        val *= 25.4
    power += _SUFFIX_EXP.get(suf, 0)
    try:
        return val * 10.0 ** power
    except OverflowError:
        return math.inf if val else 0.0  # as C's pow: 1e400 is inf


def _vacask_number(text: str) -> float | None:
    if text.lower() in ("inf", "nan"):
        return float(text)
    m = _VACASK_NUM_RE.fullmatch(text)
    if not m:
        return None
    if m.group("hex") is not None:
        return float(int(text[2:] or "0", 16))  # VACASK reads a bare ``0x`` as 0
    pre = m.group("pre")
    if pre:  # as VACASK: the mantissa read as a double, times the prefix
        return float(m.group("mant")) * _VACASK_PREFIX[pre]
    return float(m.group("mant") + (m.group("tail") or ""))


def _bad_number(tok: str, dialect: str) -> str:
    if dialect != "vacask":
        return f"bad number {tok!r}"
    return (f"{tok!r} is not a number in VACASK (scale prefixes are case-sensitive: T G M x X "
            f"meg k K m u n p f a mil; none after an exponent; no leading zeros)")


class ExprError(Va2JaxError):
    """A malformed or unevaluable expression (message names the expression)."""


class _Parser:
    #: the non-number tokens (names, strings, operators; numbers too in the SPICE dialect)
    _TOKENS = _TOKEN_RE

    def __init__(self, text: str, scope: Mapping[str, Value], dialect: str = "spice"):
        self.text = text
        self.scope = scope
        self.dialect = dialect
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = ((dialect == "vacask" and _VACASK_NUM_TOKEN.match(text, pos))
                 or self._TOKENS.match(text, pos))
            if not m or m.end() == pos:
                if dialect == "vacask" and text[pos:].lstrip().startswith("%"):
                    raise ExprError(f"'%' is no operator in VACASK (fmod(a, b) is) in expression "
                                    f"{self.text!r}")
                raise ExprError(f"cannot parse expression {self.text!r} at {text[pos:]!r}")
            kind = m.lastgroup
            assert kind is not None
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, expect: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise ExprError(f"unexpected end of expression {self.text!r}")
        tok = self.toks[self.i]
        if expect is not None and tok[1] != expect:
            raise ExprError(f"expected {expect!r} in expression {self.text!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def arguments(self) -> list[Value]:
        """A function call's ``(a, b, …)``, each argument a full expression."""
        self.take("(")
        args: list[Value] = []
        if self.peek() != ")":
            args.append(self.cond())
            while self.peek() == ",":
                self.take()
                args.append(self.cond())
        self.take(")")
        return args

    def parse(self) -> Value:
        v = self.cond()
        if self.i != len(self.toks):
            raise ExprError(f"unexpected {self.toks[self.i][1]!r} in expression {self.text!r}")
        return v

    def cond(self) -> Value:
        c = self.or_()
        if self.peek() == "?":
            self.take()
            a = self.cond()
            self.take(":")
            b = self.cond()
            return a if _num(c, self.text) else b
        return c

    def or_(self) -> Value:
        v = self.and_()
        while self.peek() == "||":
            self.take()
            r = self.and_()
            v = float(bool(_num(v, self.text)) or bool(_num(r, self.text)))
        return v

    def and_(self) -> Value:
        v = self.cmp()
        while self.peek() == "&&":
            self.take()
            r = self.cmp()
            v = float(bool(_num(v, self.text)) and bool(_num(r, self.text)))
        return v

    def cmp(self) -> Value:
        v = self.sum()
        op = self.peek()
        if op in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            r = self.sum()
            a, b = _num(v, self.text), _num(r, self.text)
            res = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                   ">=": a >= b}[op]
            return float(res)
        return v

    def sum(self) -> Value:
        v = self.prod()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            r = self.prod()
            a, b = _num(v, self.text), _num(r, self.text)
            v = a + b if op == "+" else a - b
        return v

    def prod(self) -> Value:
        v = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()[1]
            r = self.unary()
            a, b = _num(v, self.text), _num(r, self.text)
            if op != "*" and b == 0:
                raise ExprError(f"division by zero in expression {self.text!r}")
            v = a * b if op == "*" else (a / b if op == "/" else math.fmod(a, b))
        return v

    def unary(self) -> Value:
        op = self.peek()
        if op in ("-", "+", "!"):
            self.take()
            v = _num(self.unary(), self.text)
            return -v if op == "-" else (v if op == "+" else float(not v))
        return self.power()

    def power(self) -> Value:
        v = self.atom()
        if self.peek() in ("**", "^"):
            self.take()
            e = self.unary()
            return _num(v, self.text) ** _num(e, self.text)
        return v

    def atom(self) -> Value:
        kind, tok = self.take()
        if kind == "num":
            v = parse_number(tok, self.dialect)
            if v is None:
                raise ExprError(f"{_bad_number(tok, self.dialect)} in expression {self.text!r}")
            return v
        if kind == "str":
            return tok[1:-1]
        if kind == "name":
            if self.peek() == "(":
                args = self.arguments()
                fn = _FUNCS.get(tok.lower())
                if fn is None:
                    raise ExprError(f"unknown function {tok!r} in expression {self.text!r}")
                try:
                    return float(fn(*[_num(a, self.text) for a in args]))
                except (ValueError, TypeError, OverflowError) as exc:
                    raise ExprError(f"cannot evaluate {tok}() in {self.text!r}: {exc}") from None
            if self.dialect == "vacask" and tok.lower() in ("inf", "nan"):
                return float(tok)  # VACASK's lexer reads these as numbers, never as names
            if tok in self.scope:
                return self.scope[tok]
            low = tok.lower()
            for k, v in self.scope.items():
                if k.lower() == low:
                    return v
            if low in _CONSTS:
                return _CONSTS[low]
            from ..errors import suggest

            raise ExprError(f"unknown parameter {tok!r} in expression {self.text!r}"
                            + suggest(tok, self.scope))
        if tok == "(":
            v = self.cond()
            self.take(")")
            return v
        if tok == "{":
            v = self.cond()
            self.take("}")
            return v
        if tok == "[":
            items: list[Value] = []
            mixed = False  # VACASK's list ``[a; b; …]``: items of any type (strings too)
            while self.peek() != "]":
                if self.peek() in (",", ";"):
                    mixed = self.take()[1] == ";" or mixed
                    continue
                items.append(self.cond())
            self.take("]")
            return items if mixed else [_num(x, self.text) for x in items]
        raise ExprError(f"unexpected {tok!r} in expression {self.text!r}")


_VTOKEN_RE = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$.:]*)"
    r"|(?P<str>\"[^\"]*\")"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||<<|>>|[-+*/^&|~()<>!?:,;\[\]{}]))"
)


def _vnum(v: Value, text: str) -> int | float:
    """A number of a VACASK expression, its type kept (``int`` or ``float``)."""
    if isinstance(v, (str, list)):
        raise ExprError(f"expected a number in expression {text!r}, got {v!r}")
    return v if isinstance(v, int) and not isinstance(v, bool) else float(v)


def _vint(v: Value, text: str, op: str) -> int:
    v = _vnum(v, text)
    if not isinstance(v, int):
        raise ExprError(f"operator {op!r} needs integers in expression {text!r}, got {v!r}")
    return v


class _VacaskParser(_Parser):
    """VACASK's expressions (``lib/dflparser.y``): integers and reals are distinct (an integer
    literal, ``0x1F``, the results of integer arithmetic; ``7/2`` is 3, truncated towards zero as
    in C++), and the operators, lowest to highest precedence::

        ?:   ||   &&   |   ^ (exclusive or)   &   == !=   < <= > >=   << >>   + -   * /
        ** (right)   unary - + ! ~ (bind tighter than **: -2**2 is 4)

    ``&``, ``|``, ``^``, ``~``, ``<<``, ``>>`` take integers only."""

    _LEVELS = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
               ("<<", ">>"), ("+", "-"), ("*", "/")]

    _TOKENS = _VTOKEN_RE

    def __init__(self, text: str, scope: Mapping[str, Value]):
        super().__init__(text, scope, "vacask")

    def cond(self) -> Value:
        c = self.level(0)
        if self.peek() == "?":
            self.take()
            a = self.cond()
            self.take(":")
            b = self.cond()
            return a if _vnum(c, self.text) else b
        return c

    def level(self, k: int) -> Value:
        if k == len(self._LEVELS):
            return self.power()
        v = self.level(k + 1)
        while self.peek() in self._LEVELS[k]:
            op = self.take()[1]
            v = self.binary(op, v, self.level(k + 1))
        return v

    def binary(self, op: str, v: Value, r: Value) -> Value:
        t = self.text
        if op in ("&", "|", "^", "<<", ">>"):
            a, b = _vint(v, t, op), _vint(r, t, op)
            if op in ("<<", ">>") and b < 0:
                raise ExprError(f"negative shift in expression {t!r}")
            return {"&": a & b, "|": a | b, "^": a ^ b, "<<": a << b, ">>": a >> b}[op]
        a, b = _vnum(v, t), _vnum(r, t)
        if op == "||":
            return int(bool(a) or bool(b))
        if op == "&&":
            return int(bool(a) and bool(b))
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return int({"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                        ">=": a >= b}[op])
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise ExprError(f"division by zero in expression {t!r}")
        if isinstance(a, int) and isinstance(b, int):  # C++: truncated towards zero
            q = abs(a) // abs(b)
            return q if (a >= 0) == (b >= 0) else -q
        return a / b

    def power(self) -> Value:
        v = self.unary()
        if self.peek() == "**":
            self.take()
            e = self.power()
            a, b = _vnum(v, self.text), _vnum(e, self.text)
            if isinstance(a, int) and isinstance(b, int) and b >= 0:
                return a ** b
            try:
                return float(a) ** float(b)
            except (OverflowError, ZeroDivisionError) as exc:
                raise ExprError(f"cannot evaluate {self.text!r}: {exc}") from None
        return v

    def unary(self) -> Value:
        op = self.peek()
        if op in ("-", "+", "!", "~"):
            self.take()
            v = self.unary()
            if op == "~":
                return ~_vint(v, self.text, op)
            v = _vnum(v, self.text)
            return -v if op == "-" else (v if op == "+" else int(not v))
        return self.atom()

    def atom(self) -> Value:
        kind, tok = self.toks[self.i] if self.i < len(self.toks) else ("", "")
        if kind == "num" and _VACASK_INT.fullmatch(tok):
            self.i += 1
            return _vacask_int(tok)
        if kind == "name" and tok.lower() not in ("inf", "nan"):
            self.i += 1
            if self.peek() == "(":
                return self.call(tok)
            return self.name(tok)
        return super().atom()  # reals by VACASK's rules (parse_number), the rest as SPICE's

    def name(self, tok: str) -> Value:
        """A variable or constant: names are case-sensitive (VACASK's ``Id``); the constants
        are VACASK's (``M_PI``, ``P_K``, …: lib/context.cpp), not ``pi``/``e``/``true``."""
        if tok in self.scope:
            return self.scope[tok]
        if tok in _VACASK_CONSTS:
            return _VACASK_CONSTS[tok]
        other = [k for k in list(self.scope) + list(_VACASK_CONSTS) if k.lower() == tok.lower()]
        hint = (f" (names are case-sensitive in VACASK: {other[0]!r} is)" if other else
                " (VACASK's constants are M_PI, M_E, …, P_K, …)" if tok.lower() in _CONSTS else "")
        if not hint:
            from ..errors import suggest

            hint = suggest(tok, self.scope)
        raise ExprError(f"unknown parameter {tok!r} in expression {self.text!r}" + hint)

    def call(self, tok: str) -> Value:
        """A function of VACASK's (lib/context.cpp), its name case-sensitive, its result's type
        as the installed VACASK's: ``min``/``max``/``sgn``/``int`` keep integers, the others
        are real."""
        args = self.arguments()
        spec = _VACASK_FUNCS.get(tok)
        if spec is None:
            other = [k for k in _VACASK_FUNCS if k.lower() == tok.lower()]
            hint = f" (names are case-sensitive in VACASK: {other[0]!r} is)" if other else ""
            raise ExprError(f"unknown function {tok!r} in expression {self.text!r}" + hint)
        nargs, fn = spec
        if len(args) not in nargs:
            raise ExprError(f"{tok}() takes {' or '.join(map(str, nargs))} argument(s), got "
                            f"{len(args)} in expression {self.text!r}")
        vals = [_vnum(a, self.text) for a in args]
        try:
            return fn(*vals)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise ExprError(f"cannot evaluate {tok}() in {self.text!r}: {exc}") from None


def _v_int(v: int | float) -> int:
    if not isinstance(v, int):
        raise ValueError("cannot convert a real into an integer (VACASK's int() takes integers)")
    return v


def _v_round(v: float) -> float:
    """C's ``round``: halves away from zero."""
    return float(math.copysign(math.floor(abs(v) + 0.5), v))


def _v_minmax(f):
    def g(a, b):
        r = f(a, b)
        return r if isinstance(a, int) and isinstance(b, int) else float(r)
    return g


def _real1(f):
    return lambda v: float(f(float(v)))


def _real2(f):
    return lambda a, b: float(f(float(a), float(b)))


#: VACASK's functions (lib/context.cpp) va2jax evaluates: name → (argument counts, function);
#: the aggregating forms (``min(vector)``, ``sum``, …) and type tests are not here (refused)
_VACASK_FUNCS = {
    **{nm: ((1,), _real1(f)) for nm, f in {
        "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
        "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh,
        "asinh": math.asinh, "acosh": math.acosh, "atanh": math.atanh, "log": math.log,
        "ln": math.log, "log10": math.log10, "exp": math.exp, "sqrt": math.sqrt, "abs": abs,
        "integer": math.trunc, "floor": math.floor, "ceil": math.ceil, "round": _v_round,
        "real": float}.items()},
    **{nm: ((2,), _real2(f)) for nm, f in {
        "pow": math.pow, "hypot": math.hypot, "atan2": math.atan2, "fmod": math.fmod,
        # sign(a, b): |a| with the sign VACASK's sgn gives b (b ≥ 0: +)
        "sign": lambda a, b: abs(a) if b >= 0 else -abs(a)}.items()},
    # sgn: 1 for x ≥ 0 (0 too, as the installed VACASK), else −1; an integer for an integer
    "sgn": ((1,), lambda v: (1 if v >= 0 else -1) if isinstance(v, int) else (1.0 if v >= 0 else -1.0)),
    "min": ((2,), _v_minmax(min)), "max": ((2,), _v_minmax(max)),
    "int": ((1,), _v_int),
}

#: VACASK's named constants (lib/context.cpp), computed as there
_VACASK_CONSTS = {
    "M_E": math.exp(1), "M_LOG2E": 1 / math.log(2), "M_LOG10E": 1 / math.log(10),
    "M_LN2": math.log(2), "M_LN10": math.log(10), "M_PI": math.pi, "M_TWO_PI": 2 * math.pi,
    "M_PI_2": math.pi / 2, "M_PI_4": math.pi / 4, "M_1_PI": 1 / math.pi, "M_2_PI": 2 / math.pi,
    "M_2_SQRTPI": 2 / math.sqrt(math.pi), "M_SQRT2": math.sqrt(2), "M_SQRT1_2": 1 / math.sqrt(2),
    "M_DEGPERRAD": 180 / math.pi, "P_Q": 1.6021918e-19, "P_C": 2.997924562e8,
    "P_K": 1.3806226e-23, "P_H": 6.6260755e-34, "P_EPS0": 8.85418792394420013968e-12,
    "P_U0": math.pi * 4.0e-7, "P_CELSIUS0": 273.15,
}


#: VACASK's integer literals: decimal without leading zeros, or hexadecimal (a bare ``0x`` is 0)
_VACASK_INT = re.compile(r"0|[1-9]\d*|0[xX][0-9a-fA-F]*")


def _vacask_int(tok: str) -> int:
    return int(tok[2:] or "0", 16) if tok[:2].lower() == "0x" else int(tok)


def _num(v: Value, text: str) -> float:
    if isinstance(v, str) or isinstance(v, list):
        raise ExprError(f"expected a number in expression {text!r}, got {v!r}")
    return float(v)


def evaluate(text: str, scope: Mapping[str, Value] | None = None,
             dialect: str = "spice") -> Value:
    """Evaluate a netlist expression in ``scope`` (parameter name → value) by ``dialect``'s
    rules: ``"spice"`` (SPICE numbers, :func:`parse_number`; ``^`` is the power) or
    ``"vacask"`` (VACASK's numbers and :class:`_VacaskParser`: integers, bitwise operators,
    ``^`` is exclusive or).

    >>> evaluate("2*w+1u", {"w": 1e-6})
    3e-06
    >>> evaluate("7/2 + (6 ^ 3)", dialect="vacask")
    8
    """
    text = text.strip()
    if dialect not in _DIALECTS:
        raise ValueError(f"unknown netlist dialect {dialect!r}")
    if dialect == "vacask":
        if _VACASK_INT.fullmatch(text):
            return _vacask_int(text)
        quick = parse_number(text, "vacask")
        return quick if quick is not None else _VacaskParser(text, scope or {}).parse()
    if (text.startswith("'") and text.endswith("'")) and len(text) >= 2:
        text = text[1:-1]
    quick = parse_number(text, dialect)
    if quick is not None:
        return quick
    return _Parser(text, scope or {}, dialect).parse()


def evaluate_number(text: str, scope: Mapping[str, Value] | None = None,
                    dialect: str = "spice") -> float:
    """Like :func:`evaluate` but require a number."""
    return _num(evaluate(text, scope, dialect), text)
