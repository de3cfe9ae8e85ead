"""Common-subexpression elimination of emitted statements (codegen._opt): exact rewrites only."""
from __future__ import annotations

from va2jax.codegen._emit import Stmt
from va2jax.codegen._opt import CseStats, cse


def _st(text: str, *uses: str, remat: bool = False) -> Stmt:
    return Stmt((text.split(" = ")[0],), uses, text, remat=remat)


def test_duplicates_become_copies_through_copies_and_equal_constants():
    stmts = [_st("c1 = rt.F64(2.0)", remat=True), _st("c2 = rt.F64(2.0)", remat=True),
             _st("x = inp['x']", remat=True),
             _st("a = lax.mul(x, c1)", "x", "c1"), _st("b = lax.mul(x, c2)", "x", "c2"),
             _st("y = a", "a"), _st("p = lax.exp(y)", "y"), _st("q = lax.exp(b)  # comment", "b"),
             _st("r = lax.mul(c1, x)", "c1", "x")]  # operand order matters: not the same op
    stats = CseStats()
    out = cse(stmts, stats)
    text = {s.defs[0]: s.text for s in out}
    assert text["b"].startswith("b = a")
    assert text["q"].startswith("q = p")
    assert text["r"] == "r = lax.mul(c1, x)"
    assert out[4].uses == ("a",)
    assert (stats.ops_before, stats.ops_after, stats.replaced) == (5, 3, 2)


def test_reassigned_names_are_left_alone():
    stmts = [_st("s = jnp.where(p, a, rt.F64(0.0))", "p", "a"),
             _st("u = lax.neg(s)", "s"),
             _st("s = jnp.where(p2, b, s)", "p2", "b", "s"),
             _st("w = lax.neg(s)", "s")]  # s changed in between: not a duplicate of u
    out = cse(stmts)
    assert [s.text for s in out] == [s.text for s in stmts]


def test_constants_with_different_bits_differ():
    stmts = [_st("z = rt.F64(0.0)", remat=True), _st("m = rt.F64(-0.0)", remat=True),
             _st("x = inp['x']", remat=True),
             _st("a = lax.add(x, z)", "x", "z"), _st("b = lax.add(x, m)", "x", "m")]
    out = cse(stmts)
    assert out[4].text == "b = lax.add(x, m)"


def test_names_inside_string_literals_are_data():
    """A Verilog-A string that happens to contain a value name (``'a v3 b'`` with ``v3`` a copy
    of ``v2``) is not the string ``'a v2 b'``: comparisons with the two stay distinct."""
    stmts = [_st("v1 = inp['v1']", remat=True), _st("v2 = inp['v2']", remat=True),
             _st("v3 = v2", "v2"),
             _st("v4 = rt.I32(STR['a v3 b'])", remat=True), _st("v5 = rt.I32(STR['a v2 b'])", remat=True),
             _st("v6 = lax.eq(v4, v1)", "v4", "v1"), _st("v7 = lax.eq(v5, v1)", "v5", "v1")]
    text = {s.defs[0]: s.text for s in cse(stmts)}
    assert text["v7"] == "v7 = lax.eq(v5, v1)"
