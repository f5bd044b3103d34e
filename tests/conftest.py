"""Shared pytest set-up: CPU-only, quiet torch threads, and skips for missing system tools."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
