"""The library's import graph: no cycles, and no floor imports a floor above it.

Every `import` of a yoshimidi_jax module, at the top of a file or inside a
function, is an edge; `from package import name` goes to the submodule when
`name` is one, else to the package's __init__. Floors, bottom up, follow
the data flow: midi -> tokens -> data, model -> restore, sample (decoding)
-> play (interactive play), export (the page's model) -> eval (measurements)
-> train, app.

    python -m pytest tests/test_imports.py -q
"""

from __future__ import annotations

import ast
import os

PACKAGE = "yoshimidi_jax"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
FLOORS = {"files": 0, "storage": 1, "config": 1, "midi": 0, "tokens": 1, "data": 2, "model": 2, "restore": 3,
          "sample": 3, "play": 4, "export": 4, "eval": 5, "train": 6, "app": 6}


def _modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(open(path).read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            graph[mod].update(t for t in targets if t in modules and t != mod)
    return graph


def _floor(mod: str) -> int | None:
    parts = mod.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_floor_imports_a_floor_above_it():
    upward = []
    for mod, targets in import_graph().items():
        for t in targets:
            a, b = _floor(mod), _floor(t)
            if a is not None and b is not None and b > a:
                upward.append(f"{mod} -> {t}")
    assert not upward, "imports from a floor above:\n" + "\n".join(sorted(upward))


def test_no_module_imports_another_modules_private_name():
    """`from yoshimidi_jax.x import _name` (or `import yoshimidi_jax.x._y`):
    what another module uses is public, named for what it does."""
    private = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE)):
                private += [f"{mod}: from {node.module} import {a.name}" for a in node.names
                            if a.name.startswith("_")]
            elif isinstance(node, ast.Import):
                private += [f"{mod}: import {a.name}" for a in node.names if a.name.startswith(PACKAGE)
                            and any(p.startswith("_") and not p.startswith("__") for p in a.name.split("."))]
    assert not private, "private names imported:\n" + "\n".join(sorted(private))


def test_the_graph_is_read():
    """The check sees real edges (a parser that found none would pass the tests above)."""
    graph = import_graph()
    assert "yoshimidi_jax.model.kv_cache" in graph["yoshimidi_jax.model.transformer"]
    assert "yoshimidi_jax.play.batch" in graph["yoshimidi_jax.app.batcher"]
    assert sum(len(v) for v in graph.values()) > 100


def test_the_training_path_does_not_pull_in_dataset_writing():
    """train/ and data/pipeline.py reach neither prepare.py (shard writers)
    nor pool.py (worker processes), directly or through anything they import."""
    graph = import_graph()
    seen, todo = set(), ["yoshimidi_jax.data.pipeline", "yoshimidi_jax.train.loop"]
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo.extend(graph[mod])
    assert not seen & {"yoshimidi_jax.data.prepare", "yoshimidi_jax.data.pool"}, sorted(seen)
