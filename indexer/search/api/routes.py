"""The endpoints. Searches go to the engine's thread as `indexer.search.service.query_of` builds them (the recipe of
the command line's search); clips, thumbnails and media are found by clip id through the engine's serving rules
(searchable, under an indexed root), never by a path a client sends."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from indexer.search.api.auth import require_token, signed_or_token
from indexer.search.api.metrics import CONTENT_TYPE_LATEST
from indexer.search.api.schemas import (
    ERRORS,
    MAX_K,
    MAX_OFFSET,
    Clip,
    FileCount,
    Filters,
    Health,
    Problem,
    SearchOptions,
    SearchReply,
    SearchRequest,
    Status,
)
from indexer.search.engine import SearchEngine, read_query_image
from indexer.search.results import SearchResponse
from indexer.search.service import query_of
from indexer.search.serving import parse_clip_id

router = APIRouter()
NOT_FOUND = {404: {"model": Problem, "description": "no searchable clip has this id, or its file is gone"}}
MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


@router.get("/v1/health", response_model=Health, tags=["service"])
def health() -> Health:
    """Whether the server answers (no token needed)."""
    return Health(status="ok")


@router.post(
    "/v1/search", response_model=SearchReply, tags=["search"], dependencies=[Depends(require_token)], responses=ERRORS
)
async def search(request: Request, body: SearchRequest) -> SearchReply:
    """Clips and images for a text query, best first, with the filters of `mplug2-search search`."""
    query = query_of({**body.request(), "query": body.query})
    return _reply(request, await request.app.state.worker.search(query), body)


@router.post(
    "/v1/search/image",
    response_model=SearchReply,
    tags=["search"],
    dependencies=[Depends(require_token)],
    responses={**ERRORS, 400: {"model": Problem}, 413: {"model": Problem, "description": "the image is too large"}},
)
async def search_image(
    request: Request,
    image: Annotated[UploadFile, File(description="the example image (JPEG, PNG, WebP, ...)")],
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
    offset: Annotated[int, Form(ge=0, le=MAX_OFFSET)] = 0,
    one_per_file: Annotated[bool, Form()] = False,
    filters: Annotated[str, Form(max_length=8192, description="the filters of /v1/search, as JSON")] = "{}",
) -> SearchReply:
    """Clips and images that look like an example image (ITC only: re-ranking needs text)."""
    try:
        options = SearchOptions(
            k=k, offset=offset, one_per_file=one_per_file, filters=Filters.model_validate_json(filters)
        )
    except ValidationError as error:
        raise HTTPException(422, f"filters: {error.errors(include_url=False)[0]['msg']}") from None
    limit = request.app.state.max_upload_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the image is over {limit} bytes")
    try:
        pixels = await run_in_threadpool(read_query_image, io.BytesIO(data), image.filename or "the upload")
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    query = query_of(options.request(), image=pixels)
    return _reply(request, await request.app.state.worker.search(query), options)


@router.get(
    "/v1/clips/{clip_id}",
    response_model=Clip,
    tags=["clips"],
    dependencies=[Depends(require_token)],
    responses={**ERRORS, **NOT_FOUND},
)
async def clip(request: Request, clip_id: str) -> Clip:
    """One searchable clip (or image) by id, with signed URLs for its thumbnail and media."""
    opened = await request.app.state.worker.call(_engine(request).open_clip, clip_id)
    record = opened.record
    fields = {name: getattr(record, name) for name in ("media_id", "path", "kind", "start", "end")}
    return Clip(clip_id=record.id, **fields, **_urls(request, record.id))


@router.get(
    "/v1/clips/{clip_id}/thumbnail",
    tags=["clips"],
    dependencies=[Depends(signed_or_token("thumbnail"))],
    responses={**ERRORS, **NOT_FOUND, 200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}},
    response_class=Response,
)
async def thumbnail(request: Request, clip_id: str) -> Response:
    """The clip's thumbnail (JPEG). Bearer token or a signed URL."""
    jpeg = await request.app.state.worker.call(_thumbnail, _engine(request), clip_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/v1/media/{clip_id}",
    tags=["clips"],
    dependencies=[Depends(signed_or_token("media"))],
    responses={
        **ERRORS,
        **NOT_FOUND,
        200: {"content": {"video/mp4": {}, "image/jpeg": {}}, "description": "the whole file"},
        206: {"description": "the byte range asked for (Range: bytes=...)"},
    },
    response_class=FileResponse,
)
async def media(request: Request, clip_id: str) -> FileResponse:
    """The clip's file for a browser, streamed with HTTP Range: the original when a browser plays it, else an
    H.264 cut of the clip. `X-Clip-Start`/`X-Clip-End` say where the clip lies in what is served (seconds).
    Bearer token or a signed URL."""
    engine = _engine(request)
    opened = await request.app.state.worker.call(engine.open_clip, clip_id)
    if opened.record.kind != "video":
        return FileResponse(opened.path, headers={"Cache-Control": "private"})
    played = await request.app.state.worker.call(engine.playable, opened, request.app.state.preview_dir)
    headers = {"X-Clip-Start": f"{played.start:.3f}", "X-Clip-End": f"{played.end:.3f}", "Cache-Control": "private"}
    media_type = MEDIA_TYPES.get(played.path.suffix.lower())
    return FileResponse(played.path, media_type=media_type, headers=headers)


@router.get(
    "/v1/status", response_model=Status, tags=["service"], dependencies=[Depends(require_token)], responses=ERRORS
)
async def status(request: Request) -> Status:
    """What the archive holds: files by kind and status, clips, the last index run."""
    stats = await request.app.state.worker.call(_engine(request).stats)
    request.app.state.metrics.clips.set(stats.catalog.clips_ready)
    run = stats.last_run
    return Status(
        model=stats.model,
        roots=stats.roots,
        files=[FileCount(**asdict(count)) for count in stats.catalog.files],
        clips_ready=stats.catalog.clips_ready,
        clips_pending=stats.catalog.clips_pending,
        feature_mode=stats.features.mode,
        feature_bytes=stats.features.bytes,
        failed_files=len(stats.failed),
        last_run_status=run.status if run else None,
        last_run_finished_at=run.finished_at if run else None,
    )


@router.get(
    "/metrics",
    tags=["service"],
    dependencies=[Depends(require_token)],
    responses={**ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency histograms, the engine's queue depth and batch sizes, clips."""
    stats = await request.app.state.worker.call(lambda: _engine(request).archive.catalog.stats())
    request.app.state.metrics.clips.set(stats.clips_ready)
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def _engine(request: Request) -> SearchEngine:
    return request.app.state.worker.engine


def _thumbnail(engine: SearchEngine, raw_id: str) -> bytes:
    from indexer.search.serving import NotServable

    clip_id = parse_clip_id(raw_id)
    jpeg = engine.thumbnail(clip_id)
    if jpeg is None:
        raise NotServable(f"clip {clip_id} has no thumbnail")
    return jpeg


def _urls(request: Request, clip_id: int) -> dict[str, str]:
    access, base = request.app.state.access, str(request.base_url).rstrip("/")
    return {
        "thumbnail_url": base + access.signed("thumbnail", clip_id),
        "media_url": base + access.signed("media", clip_id),
    }


def _reply(request: Request, response: SearchResponse, options: SearchOptions) -> SearchReply:
    page = response.results[options.offset :]
    results = [{**asdict(result), **_urls(request, result.clip_id)} for result in page]
    return SearchReply(
        query=response.query,
        k=options.k,
        offset=options.offset,
        results=results,
        candidates=response.candidates,
        reranked=response.reranked,
        timings=response.timings,
        model=request.app.state.worker.engine.bundle.name,
    )
