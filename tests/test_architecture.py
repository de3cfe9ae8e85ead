"""The package's import structure (read with :mod:`ast`, nothing is imported):

* no import cycles between modules (every ``import`` counts, also inside functions, except
  those under ``if TYPE_CHECKING:``, which never run);
* no module imports another package's private (``_x``) module or name — the private modules at
  the top of ``va2jax`` (``_config``, ``_paths``, ``_cli_common``, ``_vasource``, ``_blas``,
  ``_circuits``) are the project's shared low-level helpers;
* the stage order: ``osdi``/``mir`` → ``codegen`` → ``validate``/``sim`` → CLI and the public
  façade (``va2jax``): a lower stage never imports a higher one.

See docs/architecture.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT_PKG = "va2jax"

#: stage of each package / top-level module (a module may import only stages ≤ its own)
STAGES = {
    "va2jax.errors": 0, "va2jax._config": 0, "va2jax._paths": 0, "va2jax._cli_common": 0,
    "va2jax._vasource": 0, "va2jax.limiting": 0, "va2jax._blas": 0, "va2jax._circuits": 0,
    "va2jax.simparams": 0,
    "va2jax.osdi": 1, "va2jax.mir": 1,
    "va2jax.codegen": 2,
    "va2jax.validate": 3, "va2jax.sim": 3,
    "va2jax": 4, "va2jax.cli": 4, "va2jax.__main__": 4, "va2jax._demo": 4,
}
#: top-level private modules every package may use
SHARED_PRIVATE = {"va2jax._config", "va2jax._paths", "va2jax._cli_common", "va2jax._vasource",
                  "va2jax._blas", "va2jax._circuits"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / ROOT_PKG).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """``(module imported, names taken from it, line)`` for every import of ``name``."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):  # imports for type annotations only are never executed
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == ROOT_PKG)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != ROOT_PKG:
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{mod}.{n}" in known]
            for n in subs:  # ``from . import osdi`` imports the module va2jax.osdi
                out.append((f"{mod}.{n}", [], node.lineno))
            rest = [n for n in names if n not in subs]
            if rest or not subs:
                out.append((mod, rest, node.lineno))
    return out


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, list[str], int]]]]:
    mods = _modules()
    known = set(mods)
    edges = {}
    for name, path in mods.items():
        edges[name] = [(m if m in known else _owner_module(m, known), names, line)
                       for m, names, line in _imports(name, path, known)]
    return mods, edges


def _owner_module(mod: str, known: set[str]) -> str:
    while mod not in known and "." in mod:
        mod = mod.rsplit(".", 1)[0]
    return mod


def _package(mod: str) -> str:
    """The package a module belongs to: ``va2jax.sim`` for ``va2jax.sim.batch``; a top-level
    module is its own package."""
    parts = mod.split(".")
    return ".".join(parts[:2])


def _stage(mod: str) -> int:
    return STAGES[_package(mod)]


def test_every_package_has_a_stage():
    missing = sorted({_package(m) for m in _modules()} - set(STAGES))
    assert not missing, f"add these packages/modules to STAGES: {missing}"


def test_no_import_cycles():
    mods, edges = _graph()
    graph = {m: sorted({t for t, _, _ in edges[m] if t != m}) for m in mods}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_of_other_packages():
    mods, edges = _graph()
    bad = []
    for m, imps in edges.items():
        for target, names, line in imps:
            if _package(target) == _package(m) or target in SHARED_PRIVATE:
                continue
            private_mod = any(p.startswith("_") and not p.startswith("__")
                              for p in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_")]
            if private_mod or private_names:
                bad.append(f"{mods[m].relative_to(SRC)}:{line}: {target} {private_names or ''}")
    assert not bad, "imports of another package's private names:\n" + "\n".join(bad)


def test_stage_order():
    mods, edges = _graph()
    bad = [f"{mods[m].relative_to(SRC)}:{line}: {m} (stage {_stage(m)}) imports {t} (stage {_stage(t)})"
           for m, imps in edges.items() for t, _, line in imps if _stage(t) > _stage(m)]
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_checker_sees_relative_and_function_level_imports():
    """The checker itself: relative imports at module level (``sim.tran``) and inside a function
    (``sim.adapters`` imports the code generator only when a netlist loads a .va file) are edges."""
    mods, edges = _graph()
    targets = {t for t, _, _ in edges["va2jax.sim.tran"]}
    assert "va2jax.sim.engine" in targets and "va2jax.sim.results" in targets
    assert "va2jax.codegen" in {t for t, _, _ in edges["va2jax.sim.adapters"]}
