"""Imports point down only: the package table of docs/architecture.md ("Packages and layers"), read from the code.

Every ``.py`` file of our packages is parsed with ``ast`` (nothing is imported).
An import is any ``import`` / ``from ... import`` (relative ones resolved), and
any ``importlib.import_module``, ``import_module``, ``require`` or
``__import__`` call. A call with a literal string names its module; a call
with a computed name (``import_module(FRAMEWORKS[name])``) counts as importing
every package of ours whose name the module spells as a string, since that is
where computed names come from. Function-level (lazy) imports count: a lazy
cycle is still a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Layers, bottom first (docs/architecture.md). A package may import the layers below its own.
LAYERS = (
    ("core", ("bert_core", "tokenization")),
    ("engines", ("conversion", "bert_pipelines")),
    ("backends", ("bert_torch", "bert_tf", "bert_flax")),
    ("command line", ("tribert",)),
)
#: Imports inside one layer that the table allows: the tokenizers raise bert_core's errors.
SAME_LAYER = {("tokenization", "bert_core")}
PACKAGES = tuple(name for _, names in LAYERS for name in names)
LAYER_OF = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}
FRAMEWORKS = ("torch", "tensorflow", "jax", "flax", "keras")
#: Packages that must not import a deep-learning framework when they are imported.
FRAMEWORK_FREE = ("bert_core", "tokenization", "conversion", "bert_pipelines")
DYNAMIC = ("import_module", "require", "__import__")


@dataclass(frozen=True)
class Import:
    """``source`` (a top-level package of ours) imports module ``target`` at ``where`` (file:line)."""

    source: str
    target: str
    where: str
    module_level: bool

    @property
    def top(self) -> str:
        return self.target.split(".")[0]


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of ``from <level dots><name> import ...`` written in ``module``."""
    if not level:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _dynamic_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in DYNAMIC else None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import written in ``path`` (module-level or not), as :class:`Import` records."""
    module, is_package = _module_name(path, root)
    source = module.split(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []
    computed: list[int] = []  # lines of dynamic imports by a computed name
    where = lambda node: f"{path.relative_to(root)}:{node.lineno}"  # noqa: E731

    def visit(node: ast.AST, module_level: bool) -> None:
        if _is_type_checking(node):
            return  # never executed
        if isinstance(node, ast.Import):
            found.extend(Import(source, alias.name, where(node), module_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            found.append(Import(source, target, where(node), module_level))
            if node.module is None:  # from . import a, b: each name may be a submodule
                found.extend(Import(source, f"{target}.{a.name}", where(node), module_level) for a in node.names)
        elif isinstance(node, ast.Call) and _dynamic_name(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(Import(source, arg.value, where(node), module_level))
            else:
                computed.append(node.lineno)
        inner = module_level and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, True)
    if computed:
        # A computed name comes from a string in this module: each of our package names spelled there counts.
        names = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        spelled = sorted(n for n in names if n.split(".")[0] in PACKAGES and n.replace(".", "").isidentifier())
        found.extend(Import(source, name, f"{path.relative_to(root)}:{computed[0]} (computed name)", False)
                     for name in spelled)
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    files = [p for name in PACKAGES if (ROOT / name).is_dir() for p in sorted((ROOT / name).rglob("*.py"))]
    return tuple(i for path in files for i in imports_of(path))


def package_graph() -> dict[str, set[str]]:
    """Top-level package -> the other packages of ours it imports."""
    graph: dict[str, set[str]] = {name: set() for name in PACKAGES}
    for imp in all_imports():
        if imp.top in PACKAGES and imp.top != imp.source:
            graph[imp.source].add(imp.top)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def allowed(source: str, target: str) -> bool:
    """What the layer table allows ``source`` to import (of our packages)."""
    return LAYER_OF[target] < LAYER_OF[source] or (source, target) in SAME_LAYER


def evidence(source: str, target: str) -> list[str]:
    return sorted({i.where for i in all_imports() if i.source == source and i.top == target})


def test_the_reader_sees_every_kind_of_import(tmp_path):
    (tmp_path / "conversion").mkdir()
    sample = tmp_path / "conversion" / "sample.py"
    sample.write_text(
        "import numpy\nfrom . import rules\nfrom ..bert_core import errors\nimport importlib\n"
        "def f(kind):\n    import torch\n    importlib.import_module('bert_tf.export')\n"
        "    require('jax')\n    __import__('tribert')\n"
        "    return importlib.import_module(PACKAGES[kind])\n"
        "PACKAGES = {'flax': 'bert_flax'}\n", encoding="utf-8")
    seen = {(i.target, i.module_level) for i in imports_of(sample, tmp_path)}
    assert seen == {("numpy", True), ("conversion", True), ("conversion.rules", True), ("bert_core", True),
                    ("importlib", True), ("torch", False), ("bert_tf.export", False), ("jax", False),
                    ("tribert", False), ("bert_flax", False)}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_of_the_table_exists():
    assert [name for name in PACKAGES if not (ROOT / name / "__init__.py").is_file()] == []


def test_no_cycle_between_packages():
    graph = package_graph()
    found = cycles(graph)
    detail = [f"{a} -> {b}: {', '.join(evidence(a, b))}" for c in found for a in c for b in sorted(graph[a]) if b in c]
    assert not found, f"package cycles {found}:\n" + "\n".join(detail)


def test_imports_point_down_the_layer_table():
    graph = package_graph()
    wrong = [f"{a} -> {b}: {', '.join(evidence(a, b))}" for a in PACKAGES for b in sorted(graph[a]) if not allowed(a, b)]
    assert not wrong, "imports against docs/architecture.md's layer table:\n" + "\n".join(wrong)


def test_backends_never_import_each_other_or_the_command_line():
    backends = LAYERS[2][1]
    graph = package_graph()
    wrong = [f"{a} -> {b}: {', '.join(evidence(a, b))}" for a in backends for b in sorted(graph[a])
             if b in backends or b == "tribert"]
    assert not wrong, "\n".join(wrong)


def test_core_and_engines_import_no_framework_at_module_level():
    wrong = sorted(f"{i.source} imports {i.target} at {i.where}" for i in all_imports()
                   if i.source in FRAMEWORK_FREE and i.module_level and i.top in FRAMEWORKS)
    assert not wrong, "\n".join(wrong)
