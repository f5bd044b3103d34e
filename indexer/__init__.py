"""Everything between files on disk and ranked results: media, database, vectors, indexing, search, evaluation."""
