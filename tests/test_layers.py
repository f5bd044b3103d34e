"""Who may touch what, checked on the source: the archive owns the database, the feature store and the FAISS index;
the app reaches them only through the search engine."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORE_MODULES = ("indexer.db", "indexer.features", "indexer.vectors")
OWNERS = {"indexer/archive.py", "indexer/features.py", "indexer/vectors.py"}  # and indexer/db/
STORE_CLASSES = {"Catalog", "FeatureStore", "VectorIndex"}
WRITERS = {
    "catalog": {"begin_media", "add_clips", "commit_media", "fail_media", "mark_missing", "discard_pending"}
    | {"touch_media", "add_root", "start_run", "finish_run"},
    "store": {"write", "remove", "compact", "cleanup_temporary"},
}


def _modules(*folders: str) -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(REPO)), ast.parse(path.read_text()))
        for folder in folders
        for path in sorted((REPO / folder).rglob("*.py"))
    ]


def _imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(module, name) for every `from module import name` and (module, "") for every `import module`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_the_app_imports_no_store_module() -> None:
    offending = [
        f"{path}: {module}"
        for path, tree in _modules("search_ui")
        for module, _ in _imports(tree)
        if module.startswith(STORE_MODULES)
    ]
    assert offending == []


def test_only_the_archive_opens_or_writes_a_store() -> None:
    offending = []
    for path, tree in _modules("indexer", "search_ui"):
        if path in OWNERS or path.startswith("indexer/db/"):
            continue
        offending += [f"{path}: imports {name}" for _, name in _imports(tree) if name in STORE_CLASSES]
        for node in ast.walk(tree):  # `<anything>.catalog.commit_media(...)`, `<anything>.store.write(...)`
            chained = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            if chained and node.attr in WRITERS.get(node.value.attr, ()):
                offending.append(f"{path}:{node.lineno}: {node.value.attr}.{node.attr}")
    assert offending == []
