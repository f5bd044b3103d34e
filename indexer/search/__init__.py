"""Search: the engine every door shares (`engine.py`, with `scoring.py` for the final score and `serving.py` for the
path from a clip id to a file), the result records (`results.py`) and the resident service behind the CLI
(`service.py`). Reads the stores through the archive; never imports the indexing layer."""
