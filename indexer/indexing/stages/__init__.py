"""The indexing pipeline's stages, each in its own module: walk (what to index) → decode (probe, segment, decode in
the killable pool) → encode (batches through the dual encoder) → commit (everything written through the archive).
`indexer.indexing.pipeline` drives them in one process; a distributed driver can run each stage where it likes."""
