"""What a search returns, as plain records: light to import (no torch, no numpy), so that the command line can show
results that the resident search service (`indexer.search.service`) sent it without loading the model stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SearchResult:
    rank: int
    clip_id: int
    media_id: int
    path: str
    kind: str
    start: float
    end: float
    itc_score: float  # cosine similarity of the query and clip ITC vectors
    itm_score: float | None  # ITM log-odds of a match (match − no-match logit), when re-ranked
    score: float  # what the list is sorted by: the final score when re-ranked, else the cosine
    reranked: bool


@dataclass
class SearchResponse:
    query: str
    results: list[SearchResult]
    timings: dict[str, float] = field(default_factory=dict)
    candidates: int = 0
    reranked: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SearchResponse:
        return cls(**{**data, "results": [SearchResult(**row) for row in data["results"]]})
