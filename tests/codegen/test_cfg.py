"""CFG utilities on hand-built functions: reverse post-order, dominators, natural loops."""
from __future__ import annotations

from va2jax.mir import Function
from va2jax.mir._cfg import dominates, dominators, is_reducible, natural_loops, reverse_postorder
from va2jax.mir._ir import Block, Instr


def _fn(edges: dict[str, tuple[str, ...]], entry: str = "b0") -> Function:
    blocks = {}
    for b, succ in edges.items():
        blk = Block(b)
        if len(succ) == 1:
            blk.instrs.append(Instr("jmp", None, targets=(succ[0],)))
        elif len(succ) == 2:
            blk.instrs.append(Instr("br", None, ("c",), targets=succ))
        blocks[b] = blk
    return Function("f", blocks, entry, [], {}, {})


def test_diamond():
    f = _fn({"b0": ("b1", "b2"), "b1": ("b3",), "b2": ("b3",), "b3": ()})
    order = reverse_postorder(f)
    assert order[0] == "b0" and order[-1] == "b3" and set(order) == {"b0", "b1", "b2", "b3"}
    idom = dominators(f)
    assert idom == {"b0": None, "b1": "b0", "b2": "b0", "b3": "b0"}
    assert natural_loops(f) == [] and is_reducible(f)


def test_nested_loops_and_unreachable():
    # b0 -> b1 (outer header) -> b2 (inner header) -> b3 -> b2 | b4 -> b1 | b5 ; b9 unreachable
    f = _fn({"b0": ("b1",), "b1": ("b2", "b5"), "b2": ("b3",), "b3": ("b2", "b4"),
             "b4": ("b1",), "b5": (), "b9": ("b1",)})
    order = reverse_postorder(f)
    assert "b9" not in order and order.index("b1") < order.index("b2") < order.index("b3")
    idom = dominators(f)
    assert idom["b2"] == "b1" and idom["b3"] == "b2" and idom["b4"] == "b3" and idom["b5"] == "b1"
    assert dominates(idom, "b1", "b4") and not dominates(idom, "b4", "b1")
    loops = natural_loops(f)
    assert len(loops) == 1
    outer = loops[0]
    assert outer.header == "b1" and outer.blocks == {"b1", "b2", "b3", "b4"} and outer.latches == ["b4"]
    (inner,) = outer.children
    assert inner.header == "b2" and inner.blocks == {"b2", "b3"} and inner.latches == ["b3"]
    assert inner.parent is outer


def test_irreducible():
    # two entries into the cycle b1 <-> b2
    f = _fn({"b0": ("b1", "b2"), "b1": ("b2",), "b2": ("b1", "b3"), "b3": ()})
    assert not is_reducible(f)
