"""The architecture, checked on the source: which layer may import which, no import cycle, no oversized file, and
the archive as the one owner of the database, the feature store and the FAISS index (the app reaches them only
through the search engine).

Every rule is checked twice: on this repository (no violation) and on a small tree written here that breaks it (the
check finds it), so a rule that can no longer fail is caught too."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "mplug2", "search_ui")
MAX_LINES = 450

# Modules every layer may use: settings and the durable file write carry no layer of their own.
SHARED = ("indexer.settings", "indexer.atomic")
# folder -> module prefixes its files must never import
FORBIDDEN_IMPORTS = {
    "mplug2": ("indexer", "search_ui"),
    "indexer/media": ("indexer.store", "indexer.indexing", "indexer.search", "indexer.evaluation", "indexer.cli"),
    "indexer/store": ("indexer.indexing", "indexer.search", "indexer.evaluation", "indexer.cli", "search_ui"),
    "indexer/indexing": ("indexer.search", "indexer.evaluation", "indexer.cli", "search_ui"),
    "indexer/search": ("indexer.indexing", "indexer.evaluation", "indexer.cli", "search_ui"),
}
# The app reaches the rest through the search layer (and the shared modules) only.
APP_MAY_IMPORT = ("indexer.search", *SHARED)

STORE_MODULES = ("indexer.store.db", "indexer.store.features", "indexer.store.vectors")
# and indexer/store/db/; reports.py reads the three stores for the archive's `verify` (it writes none)
OWNERS = {
    "indexer/store/archive.py",
    "indexer/store/features.py",
    "indexer/store/vectors.py",
    "indexer/store/reports.py",
}
STORE_CLASSES = {"Catalog", "FeatureStore", "VectorIndex"}
WRITERS = {
    "catalog": {"begin_media", "add_clips", "commit_media", "fail_media", "mark_missing", "discard_pending"}
    | {"touch_media", "add_root", "start_run", "finish_run", "set_offline", "set_online", "copy_media"},
    "store": {"write", "remove", "compact", "cleanup_temporary", "copy", "finish_compaction"},
}


def _modules(root: Path, *folders: str) -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(root).as_posix(), ast.parse(path.read_text()))
        for folder in folders
        for path in sorted((root / folder).rglob("*.py"))
    ]


def _imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(module, name) for every `from module import name` and (module, "") for every `import module`, at any depth
    (inside functions and `if TYPE_CHECKING:` too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer_violations(root: Path) -> list[str]:
    offending = []
    for folder, forbidden in FORBIDDEN_IMPORTS.items():
        for path, tree in _modules(root, folder):
            offending += [f"{path}: {module}" for module, _ in _imports(tree) if _within(module, forbidden)]
    for path, tree in _modules(root, "search_ui"):
        offending += [
            f"{path}: {module}"
            for module, _ in _imports(tree)
            if _within(module, ("indexer",)) and not _within(module, APP_MAY_IMPORT)
        ]
    return offending


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (`from a import b` counts as importing a.b when that is a module)."""
    modules = {_module_name(path): tree for path, tree in _modules(root, *PACKAGES)}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for module, imported in _imports(tree):
            target = f"{module}.{imported}" if f"{module}.{imported}" in modules else module
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for start in sorted(graph):
        if start in order:
            continue
        work = [(start, iter(sorted(graph[start])))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            child = next(successors, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == order[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        cycles.append(sorted(component))
            elif child not in order:
                order[child] = low[child] = len(order)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], order[child])
    return cycles


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(source))
    return root


def test_each_layer_imports_only_the_layers_below_it() -> None:
    assert layer_violations(REPO) == []


def test_a_broken_layer_rule_is_found(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            "indexer/search/engine.py": "from indexer.indexing.pipeline import Indexer\n",
            "indexer/store/archive.py": "def f():\n    from indexer.search.engine import SearchEngine\n",
            "search_ui/app.py": "from indexer.store.archive import Archive\nfrom indexer.search.engine import X\n",
            "mplug2/model.py": "import indexer.settings\n",
        },
    )
    assert layer_violations(root) == [
        "mplug2/model.py: indexer.settings",
        "indexer/store/archive.py: indexer.search.engine",
        "indexer/search/engine.py: indexer.indexing.pipeline",
        "search_ui/app.py: indexer.store.archive",
    ]


def test_no_import_cycle() -> None:
    assert import_cycles(import_graph(REPO)) == []


def test_an_import_cycle_is_found_at_module_or_function_level(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            "indexer/media/__init__.py": "",
            "indexer/media/decode.py": "from indexer.media.readers import READERS\n",
            "indexer/media/readers.py": "def read():\n    from indexer.media import decode\n",
            "indexer/media/probe.py": "from indexer.media.decode import decode\n",
        },
    )
    assert import_cycles(import_graph(root)) == [["indexer.media.decode", "indexer.media.readers"]]


def test_no_file_is_longer_than_the_limit() -> None:
    folders = (*PACKAGES, "tests", "benchmarks", "scripts")
    lengths = {path: len((REPO / path).read_text().splitlines()) for path, _ in _modules(REPO, *folders)}
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def test_the_app_imports_no_store_module() -> None:
    offending = [
        f"{path}: {module}"
        for path, tree in _modules(REPO, "search_ui")
        for module, _ in _imports(tree)
        if module.startswith(STORE_MODULES)
    ]
    assert offending == []


def test_only_the_archive_opens_or_writes_a_store() -> None:
    offending = []
    for path, tree in _modules(REPO, "indexer", "search_ui"):
        if path in OWNERS or path.startswith("indexer/store/db/"):
            continue
        offending += [f"{path}: imports {name}" for _, name in _imports(tree) if name in STORE_CLASSES]
        for node in ast.walk(tree):  # `<anything>.catalog.commit_media(...)`, `<anything>.store.write(...)`
            chained = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            if chained and node.attr in WRITERS.get(node.value.attr, ()):
                offending.append(f"{path}:{node.lineno}: {node.value.attr}.{node.attr}")
    assert offending == []
