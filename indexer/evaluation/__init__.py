"""Zero-shot retrieval evaluation: benchmark annotation readers, metrics, the runner and its reports."""
