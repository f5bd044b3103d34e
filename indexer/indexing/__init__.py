"""Indexing: folders of media in, clips written through the archive. The stages (`stages/`), their settings
(`options.py`), the one-process driver (`pipeline.py`) and the Ray driver with its remote tasks (`ray_index.py`,
`ray_tasks.py`). Reads and writes the stores only through `indexer.store.archive.Archive`."""
