"""Control-flow-graph utilities: reverse post-order, dominators, back edges and natural loops."""
from __future__ import annotations

from dataclasses import dataclass, field

from ._ir import Function


def successors(fn: Function, b: str) -> list[str]:
    """Successors of block ``b`` from its terminator (true target first for ``br``)."""
    t = fn.blocks[b].terminator
    if t is None:
        return []
    if t.opcode == "br" and t.targets[0] == t.targets[1]:
        return [t.targets[0]]
    return list(t.targets)


def reverse_postorder(fn: Function) -> list[str]:
    """Blocks reachable from the entry, in reverse post-order (iterative DFS)."""
    seen: set[str] = set()
    post: list[str] = []
    stack: list[tuple[str, int]] = [(fn.entry, 0)]
    seen.add(fn.entry)
    while stack:
        b, i = stack[-1]
        succ = successors(fn, b)
        if i < len(succ):
            stack[-1] = (b, i + 1)
            s = succ[i]
            if s not in seen:
                seen.add(s)
                stack.append((s, 0))
        else:
            stack.pop()
            post.append(b)
    post.reverse()
    return post


def predecessors(fn: Function, order: list[str]) -> dict[str, list[str]]:
    """Reachable predecessors of each reachable block (derived from terminators)."""
    preds: dict[str, list[str]] = {b: [] for b in order}
    for b in order:
        for s in successors(fn, b):
            if s in preds and b not in preds[s]:
                preds[s].append(b)
    return preds


def dominators(fn: Function, order: list[str] | None = None) -> dict[str, str | None]:
    """Immediate dominators (Cooper–Harvey–Kennedy iteration); the entry maps to ``None``."""
    order = order if order is not None else reverse_postorder(fn)
    index = {b: i for i, b in enumerate(order)}
    preds = predecessors(fn, order)
    idom: dict[str, str | None] = {fn.entry: fn.entry}

    def intersect(a: str, b: str) -> str:
        while a != b:
            while index[a] > index[b]:
                a = idom[a]  # type: ignore[assignment]
            while index[b] > index[a]:
                b = idom[b]  # type: ignore[assignment]
        return a

    changed = True
    while changed:
        changed = False
        for b in order[1:]:
            ps = [p for p in preds[b] if p in idom]
            if not ps:
                continue
            new = ps[0]
            for p in ps[1:]:
                new = intersect(p, new)
            if idom.get(b) != new:
                idom[b] = new
                changed = True
    idom[fn.entry] = None
    return idom


def dominates(idom: dict[str, str | None], a: str, b: str) -> bool:
    """Whether block ``a`` dominates block ``b``."""
    x: str | None = b
    while x is not None:
        if x == a:
            return True
        x = idom.get(x)
    return False


@dataclass
class Loop:
    """A natural loop: its header, the blocks in it and the latches (sources of back edges)."""

    header: str
    blocks: set[str]
    latches: list[str]
    children: list["Loop"] = field(default_factory=list)
    parent: "Loop | None" = None


def natural_loops(fn: Function, order: list[str] | None = None,
                  idom: dict[str, str | None] | None = None) -> list[Loop]:
    """Natural loops (one per header, back edges merged), outermost first, with nesting."""
    order = order if order is not None else reverse_postorder(fn)
    idom = idom if idom is not None else dominators(fn, order)
    preds = predecessors(fn, order)
    by_header: dict[str, Loop] = {}
    for b in order:
        for s in successors(fn, b):
            if s in idom and dominates(idom, s, b):  # back edge b -> s
                loop = by_header.setdefault(s, Loop(s, {s}, []))
                loop.latches.append(b)
                work = [b]
                while work:
                    x = work.pop()
                    if x not in loop.blocks:
                        loop.blocks.add(x)
                        work.extend(preds[x])
    loops = sorted(by_header.values(), key=lambda lp: -len(lp.blocks))
    for i, inner in enumerate(loops):
        for outer in reversed(loops[:i]):
            if inner.header in outer.blocks and inner.blocks <= outer.blocks and outer is not inner:
                inner.parent = outer
                outer.children.append(inner)
                break
    return [lp for lp in loops if lp.parent is None]


def is_reducible(fn: Function) -> bool:
    """True when every retreating edge in RPO is a back edge (target dominates source)."""
    order = reverse_postorder(fn)
    idom = dominators(fn, order)
    index = {b: i for i, b in enumerate(order)}
    for b in order:
        for s in successors(fn, b):
            if index[s] <= index[b] and not dominates(idom, s, b):
                return False
    return True


def visit_order(fn: Function) -> list[str]:
    """Reachable blocks of ``fn`` in the order the code generators emit them: reverse postorder,
    except that a natural loop's blocks are emitted together where its header is first met
    (nested loops likewise). The Python generator and the native layout number flags and
    columns in this order, so both must use this one function."""
    order = reverse_postorder(fn)
    res: list[str] = []

    def walk(blocks: list[str], loops: list[Loop]) -> None:
        header_of = {b: lp for lp in loops for b in lp.blocks}
        done: set[str] = set()
        for b in blocks:
            lp = header_of.get(b)
            if lp is None:
                res.append(b)
            elif lp.header not in done:
                done.add(lp.header)
                walk([x for x in order if x in lp.blocks], lp.children)

    walk(order, natural_loops(fn, order))
    return res
