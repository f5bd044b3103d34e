"""mPLUG-2 for retrieval: video, image and text encoders, the fusion encoder, and the ITC/ITM heads.

Exports resolve lazily so that light modules (`mplug2.resize`, used by the decode workers) can be imported without
pulling in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MPLUG2Config": "mplug2.config",
    "MPLUG2Retrieval": "mplug2.model",
    "TextOutput": "mplug2.model",
    "VisualOutput": "mplug2.model",
    "create_model": "mplug2.factory",
    "list_models": "mplug2.factory",
    "get_config": "mplug2.factory",
    "ModelBundle": "mplug2.bundle",
    "load_model_bundle": "mplug2.bundle",
    "Tokenizer": "mplug2.tokenizer",
    "save_model_folder": "mplug2.folder",
    "load_official_state_dict": "mplug2.checkpoint",
    "read_checkpoint": "mplug2.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mplug2' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
