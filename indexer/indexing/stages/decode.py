"""Decode stage: probe a file, cut it into clips, and turn it into requests for the killable decode pool.

Probing (ffprobe, with its own time-out) and fixed windows (arithmetic) happen here; everything that decodes runs
in the pool: shot detection as a `SegmentRequest` first (its spans then become decode requests), and the clips
as `DecodeRequest`s of at most `MAX_SPANS_PER_REQUEST` spans (one file opened once per request, and a bounded
amount of decoded frames in flight). Requests carry the media id as their tag, never the job: a tag is pickled into
the worker, which must not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indexer.indexing.options import IndexOptions
from indexer.indexing.stages.walk import Candidate
from indexer.media.decode import DecodedSpan, DecodeResult
from indexer.media.errors import MediaError
from indexer.media.probe import MediaInfo, MediaKind, probe
from indexer.media.request import DecodeRequest, model_request
from indexer.media.segment import SegmentRequest, Span, policy_windows
from indexer.store.db.records import FileStamp, ProbeFacts
from mplug2.config import MPLUG2Config

MAX_SPANS_PER_REQUEST = 32


@dataclass
class FileJob:
    """One file on its way through the stages: what is still in flight for it, and what came back."""

    path: str
    root: str
    stamp: FileStamp
    info: MediaInfo
    media_id: int
    requests_left: int = 0
    clips_left: int = 0
    ready: list[int] = field(default_factory=list)
    errors: list[MediaError] = field(default_factory=list)
    finished: bool = False

    @property
    def kind(self) -> str:
        return "image" if self.info.kind is MediaKind.IMAGE else "video"


def read_file(candidate: Candidate) -> tuple[MediaInfo, FileStamp]:
    """Probe a candidate and take its content hash (once). Raises `MediaError` or `OSError` (vanished, unreadable)."""
    info = probe(candidate.path)  # checks that the file is a readable, non-empty regular file first
    return info, candidate.hashed()


def probe_facts(info: MediaInfo) -> ProbeFacts:
    return ProbeFacts(
        info.kind.value,
        info.duration,
        info.fps,
        info.frame_count,
        info.width,
        info.height,
        info.codec,
        info.rotation,
        info.creation_time,
    )


def first_requests(job: FileJob, config: MPLUG2Config, options: IndexOptions) -> list[DecodeRequest | SegmentRequest]:
    """What the pool does first for a file: decode its picture or its fixed windows, or find its shots."""
    policy = options.segment
    if job.info.kind is MediaKind.IMAGE:
        return clip_requests(job, [(0.0, None)], config, options)
    if policy.mode == "shots":
        job.requests_left = 1
        return [SegmentRequest(job.path, job.info.duration, policy, tag=job.media_id)]
    return clip_requests(job, policy_windows(job.info.duration, policy), config, options)


def clip_requests(
    job: FileJob, spans: list[tuple[float, float | None]] | list[Span], config: MPLUG2Config, options: IndexOptions
) -> list[DecodeRequest]:
    """Decode requests for a file's clips, `MAX_SPANS_PER_REQUEST` spans each; counted on the job as in flight."""
    pairs = [(s.start, s.end) if isinstance(s, Span) else s for s in spans]
    chunks = [tuple(pairs[i : i + MAX_SPANS_PER_REQUEST]) for i in range(0, len(pairs), MAX_SPANS_PER_REQUEST)]
    job.requests_left += len(chunks)
    return [
        model_request(
            config,
            job.path,
            job.kind,
            chunk,
            thumbnail_side=options.thumbnail_side,
            backend=options.decoder,  # type: ignore[arg-type]
            info=job.info,
            tag=job.media_id,
        )
        for chunk in chunks
    ]


def decoded_clips(job: FileJob, request: DecodeRequest, result: DecodeResult) -> list[tuple[float, float, DecodedSpan]]:
    """The clips of a decode result that came out whole (start, end, decoded); the others' errors go on the job."""
    good = []
    for (start, end), decoded in zip(request.spans, result.spans, strict=True):
        if decoded.frames is None:
            if decoded.error is not None:
                job.errors.append(decoded.error)
            continue
        good.append((start, end if end is not None else job.info.duration, decoded))
    return good
