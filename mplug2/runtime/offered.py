"""Which precisions a model folder offers: `runtime.json` beside the weights may withhold one, with the measurement
that says why (for example int8 that moved the model's own retrieval figures by more than 0.01 R@1).

    {"withheld": {"int8": "int8 moved text-to-image R@1 by -0.04 on fresh seed 13 (0.42 -> 0.38)"},
     "checked": {"int8": "..."}}

A folder without the file offers every precision. `benchmarks/runtime_accuracy.py --record` measures a precision
against torch fp32 and writes the verdict here (`make bundled-model` runs it for the model it builds)."""

from __future__ import annotations

import json
from pathlib import Path

from mplug2.runtime.cache import atomic_write_bytes

RUNTIME_FILE = "runtime.json"
# The most a faster precision may move any R@1 on a fresh seed before the folder withholds it.
R_AT_1_TOLERANCE = 0.01


def withheld(folder: str | Path | None) -> dict[str, str]:
    """precision -> why the folder's model does not offer it (empty when it offers all, or is no folder)."""
    return _section(folder, "withheld")


def checked(folder: str | Path | None) -> dict[str, str]:
    """precision -> the measurement recorded for it, offered or not (empty when none was measured)."""
    return _section(folder, "checked")


def _section(folder: str | Path | None, name: str) -> dict[str, str]:
    """precision -> words, from one section of the folder's runtime.json."""
    return {str(precision): str(words) for precision, words in _read(folder).get(name, {}).items()}


def drift_words(label: str, rows: list[dict]) -> tuple[bool, str]:
    """(within tolerance?, the measurement in words) for rows of {"seed", "reference": {metric: R@1}, "candidate":
    {metric: R@1}}, one per fresh seed: the candidate precision against torch fp32 on the same items."""
    moved = any(
        round(abs(row["candidate"][key] - value), 6) > R_AT_1_TOLERANCE
        for row in rows
        for key, value in row["reference"].items()
    )
    figures = "; ".join(
        f"seed {row['seed']} "
        + ", ".join(f"{key} {value:.4g} -> {row['candidate'][key]:.4g}" for key, value in row["reference"].items())
        for row in rows
    )
    verdict = f"moved R@1 by more than {R_AT_1_TOLERANCE}" if moved else f"kept R@1 within {R_AT_1_TOLERANCE}"
    return not moved, f"{label} {verdict} on fresh seeds (benchmarks/runtime_accuracy.py): {figures}"


def record_drift(folder: str | Path, precision: str, label: str, rows: list[dict]) -> bool:
    """Write the folder's verdict on one precision from its measured drift (see drift_words); True if it is offered.
    The other precisions' entries are kept; the file is replaced atomically."""
    offered, words = drift_words(label, rows)
    state = _read(folder)
    state.setdefault("withheld", {}).pop(precision, None)
    if not offered:
        state["withheld"][precision] = words
    state.setdefault("checked", {})[precision] = words
    atomic_write_bytes(Path(folder) / RUNTIME_FILE, (json.dumps(state, indent=1) + "\n").encode())
    return offered


def _read(folder: str | Path | None) -> dict:
    if folder is None:
        return {}
    path = Path(folder) / RUNTIME_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
        if not isinstance(state.get("withheld", {}), dict):
            raise ValueError("'withheld' is not an object")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): fix or delete it") from None
    return state
