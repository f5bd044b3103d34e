"""The metadata database: the source of truth for files, clips and index runs. Use `Catalog`, never sessions."""

from indexer.store.db.catalog import Catalog, CatalogError
from indexer.store.db.records import ClipRecord, MediaRecord, RunRecord, SearchFilters

__all__ = ["Catalog", "CatalogError", "ClipRecord", "MediaRecord", "RunRecord", "SearchFilters"]
