"""Imports point down: no import circles, no arrow from a lower layer to a higher one, and product code never
imports the test references (recengine/reference/).

Every module under recengine/ is parsed with ``ast`` (nothing is imported), and every import it holds — at module
level, inside functions, under ``TYPE_CHECKING``, and ``importlib.import_module("literal")`` — is an arrow of the
graph. The layers are DESIGN.md's, lowest first; a tier may hold several groups, which are peers: a module may
import its own group and any lower tier, never a higher tier nor a peer group.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recengine"

#: compiled extension modules (no .py file to parse; they import nothing of recengine)
EXTENSIONS = ("recengine._C",)

#: DESIGN.md's layers, lowest first: each tier is a tuple of peer groups, each group a tuple of module prefixes
#: (a prefix covers the module or package of that name and everything under it)
LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    # pure helpers the reference and the ops share (the format of a quantized table, the seed key of the
    # counter-based hash, the bag of each id): they import nothing of recengine, so every layer may use them
    (("recengine.ops.table_formats", "recengine.ops.counter_hash", "recengine.ops.jagged_layout"),),
    # the plain references (PyTorch; NumPy for the off-policy estimators): the truth tests and benchmarks share
    (("recengine.reference",),),
    # the operators, their kernels, and the small root helpers they and everything above use
    (
        (
            "recengine.ops",
            "recengine.kernels",
            "recengine._C",
            "recengine._native",
            "recengine.padding",
            "recengine._atomic",
            "recengine.optim",
            "recengine.progress",
            "recengine.machine",
            "recengine._version",
        ),
    ),
    # file formats: the checkpoint format and the configuration file
    (("recengine.checkpoint", "recengine.config_file"),),
    # modules
    (("recengine.nn",), ("recengine.buffers",)),
    # the system layer, in the partial order its packages obey: data, then eval (metrics and estimators, over
    # the data's histories and splits), then training, then the simulator, the agents and the sharded
    # training (peers), then serving (which loads sharded models)
    (("recengine.data",),),
    (("recengine.eval",),),
    (("recengine.train",),),
    (("recengine.env",), ("recengine.agents",), ("recengine.distributed",)),
    (("recengine.serving",),),
    # judging: what judges agents in a simulator
    (("recengine.judging",),),
    # what a person runs
    (("recengine.report",), ("recengine.bench",)),
    # the package root: a lazy facade over the names a user needs first (Recommender, load_dataset, SASRecConfig,
    # train_sasrec, EmbeddingTables, ...), so it sits above every package it re-exports; only the CLI imports it
    (("recengine",),),
    (("recengine.cli", "recengine.__main__"),),
)

#: modules outside recengine/reference/ that may import it: the benchmark harness sets recengine against the
#: reference by design (DESIGN.md: "the truth tests AND benchmarks import")
REFERENCE_USERS = ("recengine.bench",)

#: exceptions to the two rules below; an entry that no longer matches anything fails the test
ALLOWED_ARROWS: frozenset[tuple[str, str]] = frozenset()
"""(importer, imported) pairs excused from the layer rule: none, and a stale entry fails the test"""
ALLOWED_CIRCLES: frozenset[frozenset[str]] = frozenset()
"""import circles excused: none, and a stale entry fails the test"""


def _modules() -> dict[str, tuple[pathlib.Path, str]]:
    """{dotted module name: (file, the package its relative imports start from)} for every .py under recengine/."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = ".".join(parts)
        else:
            package = ".".join(parts[:-1])
        out[".".join(parts)] = (path, package)
    return out


MODULES = _modules()
KNOWN = set(MODULES) | set(EXTENSIONS)


def _owner(name: str) -> str | None:
    """The known module a dotted import name lands in (a name imported from a module belongs to the module)."""
    while name and name not in KNOWN:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
        return [f"{source}.{alias.name}" if f"{source}.{alias.name}" in KNOWN else source for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def import_graph() -> dict[str, set[str]]:
    """{module: the recengine modules it imports} (module-level and function-level imports alike)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, (path, package) in MODULES.items():
        graph[name]  # every module is a node, also one that imports nothing
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for imported in _imported_names(node, package):
                if imported == "recengine" or imported.startswith("recengine."):
                    target = _owner(imported)
                    if target is not None and target != name:
                        graph[name].add(target)
    return dict(graph)


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _covers(prefix: str, module: str) -> bool:
    if prefix == "recengine":  # the package root covers its __init__ only, not every module
        return module == prefix
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> tuple[int, int]:
    """(tier, group) of the longest prefix in LAYERS covering `module`."""
    best, where = "", None
    for tier, groups in enumerate(LAYERS):
        for group, prefixes in enumerate(groups):
            for prefix in prefixes:
                if _covers(prefix, module) and len(prefix) > len(best):
                    best, where = prefix, (tier, group)
    if where is None:
        raise KeyError(module)
    return where


def _layer_name(module: str) -> str:
    tier, group = layer_of(module)
    return LAYERS[tier][group][0]


GRAPH = import_graph()


def test_the_graph_sees_the_package():
    assert len(GRAPH) > 100
    assert "recengine.ops.policy" in GRAPH["recengine.ops"]  # a module-level import
    assert "recengine.agents.persistence" in GRAPH["recengine.agents"]  # importlib.import_module("...")


def test_every_module_has_a_layer():
    missing = []
    for module in sorted(KNOWN):
        try:
            layer_of(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"modules in no layer of tests/test_layers.py's LAYERS: {missing}"


def test_no_import_circles():
    found = circles(GRAPH)
    unexpected = [sorted(c) for c in found if c not in ALLOWED_CIRCLES]
    assert not unexpected, "import circles (modules that import each other, directly or around a loop):\n" + "\n".join(
        " <-> ".join(c) for c in unexpected
    )
    stale = [sorted(c) for c in ALLOWED_CIRCLES if c not in found]
    assert not stale, f"ALLOWED_CIRCLES lists circles that are gone; remove them: {stale}"


def test_imports_point_down():
    climbing = []
    for source, targets in sorted(GRAPH.items()):
        tier, group = layer_of(source)
        for target in sorted(targets):
            t_tier, t_group = layer_of(target)
            if t_tier > tier or (t_tier == tier and t_group != group):
                if (source, target) not in ALLOWED_ARROWS:
                    climbing.append(f"{source} ({_layer_name(source)}) -> {target} ({_layer_name(target)})")
    assert not climbing, "imports from a lower layer to a higher one (or between peers):\n" + "\n".join(climbing)
    stale = sorted(arrow for arrow in ALLOWED_ARROWS if arrow[1] not in GRAPH.get(arrow[0], ()))
    assert not stale, f"ALLOWED_ARROWS lists imports that are gone; remove them: {stale}"


def test_shared_helpers_import_nothing_of_recengine():
    leaves = [m for m in GRAPH if layer_of(m)[0] == 0]
    assert leaves
    assert not {m: sorted(GRAPH[m]) for m in leaves if GRAPH[m]}


def test_product_code_never_imports_the_reference():
    bad = [
        f"{source} -> {target}"
        for source, targets in sorted(GRAPH.items())
        if not _covers("recengine.reference", source) and not any(_covers(p, source) for p in REFERENCE_USERS)
        for target in sorted(targets)
        if _covers("recengine.reference", target)
    ]
    assert not bad, "product code imports the test references (recengine/reference/):\n" + "\n".join(bad)
