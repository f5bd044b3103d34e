"""The stores and their one owner: the metadata database (`db/`), the feature store (`features.py`), the FAISS index
(`vectors.py`), and `Archive` (`archive.py`), the only writer of the three; `lock.py` keeps one writer per archive.
Nothing here imports the indexing or the search layer."""
