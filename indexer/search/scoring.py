"""How re-ranked candidates are scored, and what each model's own validation chose.

Two scorers turn a candidate's ITC cosine and its ITM logits into the number a result list is sorted by:

- `calibrated` (the engine's, for every kind of media): `cosine / τ + (match − no-match logit)`. The first term is
  the ITC logit the model was trained with (τ its learnt temperature), the second the ITM head's log-odds that the
  pair matches: two log-scale quantities of one kind, summed the same way for a video and for an image, so a list
  mixing both is ranked on one scale. Where the ITM head knows little its log-odds are flat and the ITC order stays.
- `official` (evaluation only): mPLUG-2's per-kind recipe, ITM match logit + cosine for video, the ITM match logit
  alone for images. Its two kinds live on different scales, which is why the engine never uses it.

A model folder may hold `rerank.json`, written by the validation that chose the scorer and the re-rank depth for that
model (`rerank_k` 0: its re-ranker does not help, search by ITC alone). The engine, CLI and app default to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indexer.atomic import atomic_write_text
from mplug2.model import calibrated_score

SCORERS = ("calibrated", "official")
ENGINE_SCORER = "calibrated"
DEFAULT_RERANK_K = 32
RERANK_FILE = "rerank.json"


def final_scores(
    scorer: str, cosine: np.ndarray, itm_logits: np.ndarray, is_video: np.ndarray | bool, temperature: float
) -> np.ndarray:
    """Final scores of re-ranked pairs. cosine [...]; itm_logits [..., 2] (no-match, match); is_video broadcasts."""
    if scorer == "calibrated":
        return calibrated_score(cosine, itm_logits, temperature)
    if scorer == "official":
        return itm_logits[..., 1] + np.where(is_video, cosine, 0.0)
    raise ValueError(f"unknown scorer {scorer!r}: one of {', '.join(SCORERS)}")


@dataclass(frozen=True)
class RerankChoice:
    """The re-ranking a model's validation chose; `rerank_k` 0 means search by ITC alone."""

    rerank_k: int = DEFAULT_RERANK_K
    scorer: str = ENGINE_SCORER
    helps: bool | None = None  # None: never validated
    chosen_by: str = "default (no validation recorded for this model)"
    validation: dict = field(default_factory=dict)  # the figures behind the choice

    @classmethod
    def of_model(cls, model_name: str) -> RerankChoice:
        """The choice recorded in a model folder (a bundle's `name` is its folder's absolute path), else defaults."""
        path = Path(model_name) / RERANK_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def write(self, folder: Path) -> Path:
        return atomic_write_text(Path(folder) / RERANK_FILE, json.dumps(asdict(self), indent=1) + "\n")

    def summary(self) -> str:
        if self.rerank_k == 0:
            return f"re-ranking off ({self.chosen_by})"
        return f"re-rank top {self.rerank_k}, {self.scorer} score ({self.chosen_by})"
