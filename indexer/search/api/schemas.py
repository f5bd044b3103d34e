"""The API's request and response bodies: the Pydantic models are the OpenAPI schema, and their bounds are the
request limits (query length, k, offset, re-rank depth) that answer 422 instead of loading the server."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_QUERY_CHARS = 1000
MAX_K = 200
MAX_OFFSET = 1000
MAX_RERANK_K = 512
MAX_PATH_CHARS = 4096
MAX_DURATION_S = 10_000_000.0


def _representable(moment: datetime) -> datetime:
    """A date the catalog can compare (a POSIX timestamp): naive dates are UTC, as the catalog reads them."""
    try:
        (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    except (OverflowError, OSError, ValueError):
        raise ValueError("a date this far from today cannot be compared with files' times") from None
    return moment


Moment = Annotated[datetime, AfterValidator(_representable)]


class Filters(BaseModel):
    """What `search` filters by, applied inside the vector search. Durations are the file's (images count as 0 s);
    dates are the file's modification time."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["video", "image"]] | None = Field(None, max_length=2, description="only these kinds")
    path_prefix: str | None = Field(None, max_length=MAX_PATH_CHARS, description="only files under this folder")
    min_duration: float | None = Field(None, ge=0, le=MAX_DURATION_S, description="seconds")
    max_duration: float | None = Field(None, ge=0, le=MAX_DURATION_S, description="seconds")
    modified_after: Moment | None = None
    modified_before: Moment | None = None


class SearchOptions(BaseModel):
    """How to answer a search: page, depth of re-ranking, filters."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=MAX_K, description="results per page")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="results to skip (paging)")
    rerank_k: int | None = Field(
        None, ge=0, le=MAX_RERANK_K, description="candidates re-ranked by ITM; null: the model's choice, 0: none"
    )
    one_per_file: bool = Field(False, description="only the best clip of each file")
    filters: Filters = Field(default_factory=Filters)

    def request(self) -> dict:
        """The search request in the form `indexer.search.service.query_of` reads (the page's k covers the offset)."""
        filters = self.filters.model_dump(exclude_none=True)
        if "kinds" in filters:
            filters["kinds"] = tuple(dict.fromkeys(filters["kinds"]))
        return {
            "k": self.offset + self.k,
            "rerank_k": self.rerank_k,
            "one_per_file": self.one_per_file,
            "filters": filters,
        }


class SearchRequest(SearchOptions):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="what to look for, in words")


class Result(BaseModel):
    rank: int
    clip_id: int
    media_id: int
    path: str
    kind: str
    start: float = Field(description="seconds into the file")
    end: float
    itc_score: float = Field(description="cosine of the query and clip ITC vectors")
    itm_score: float | None = Field(description="ITM log-odds of a match, when re-ranked")
    score: float = Field(description="what the list is sorted by: the final score when re-ranked, else the cosine")
    reranked: bool
    thumbnail_url: str = Field(description="signed, short-lived: works without the bearer token")
    media_url: str = Field(description="signed, short-lived; the file (or a browser-playable cut), with HTTP Range")


class SearchReply(BaseModel):
    query: str
    k: int
    offset: int
    results: list[Result]
    candidates: int = Field(description="candidates the vector search returned")
    reranked: int = Field(description="candidates re-ranked by ITM")
    timings: dict[str, float]
    model: str


class Clip(BaseModel):
    clip_id: int
    media_id: int
    path: str
    kind: str
    start: float
    end: float
    thumbnail_url: str
    media_url: str


class FileCount(BaseModel):
    kind: str
    status: str
    files: int


class Status(BaseModel):
    model: str | None
    roots: list[str]
    files: list[FileCount]
    clips_ready: int
    clips_pending: int
    feature_mode: str
    feature_bytes: int
    failed_files: int
    last_run_status: str | None
    last_run_finished_at: datetime | None


class Health(BaseModel):
    status: Literal["ok"]


class Problem(BaseModel):
    detail: str


ERRORS = {
    401: {"model": Problem, "description": "no or wrong bearer token (or an unsigned media/thumbnail URL)"},
    403: {"model": Problem, "description": "a tampered or expired signed URL"},
}
