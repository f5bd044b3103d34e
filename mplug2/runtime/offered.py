"""Which precisions a model folder offers: `runtime.json` beside the weights may withhold one, with the measurement
that says why (for example int8 that moved the model's own retrieval figures by more than 0.01 R@1).

    {"withheld": {"int8": "int8 moved text-to-image R@1 by -0.04 on fresh seed 13 (0.42 -> 0.38)"}}

A folder without the file offers every precision."""

from __future__ import annotations

import json
from pathlib import Path

RUNTIME_FILE = "runtime.json"


def withheld(folder: str | Path | None) -> dict[str, str]:
    """precision -> why the folder's model does not offer it (empty when it offers all, or is no folder)."""
    if folder is None:
        return {}
    path = Path(folder) / RUNTIME_FILE
    if not path.is_file():
        return {}
    try:
        reasons = json.loads(path.read_text()).get("withheld", {})
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): fix or delete it") from None
    return {str(precision): str(why) for precision, why in reasons.items()}
