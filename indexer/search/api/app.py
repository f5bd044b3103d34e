"""The app factory: one FastAPI app over one search engine. It wires the engine's thread (`batching`), access rules
(`auth`), body limits (`limits`), metrics, CORS (off unless origins are named) and the routes (`routes`); the
OpenAPI document and its page are behind the token like everything but health."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.cors import CORSMiddleware

from indexer.search.api.auth import URL_TTL_S, Access, require_token
from indexer.search.api.batching import BATCH_WINDOW_S, EngineWorker
from indexer.search.api.limits import MAX_UPLOAD_BYTES, BodyLimitMiddleware
from indexer.search.api.metrics import Metrics, MetricsMiddleware
from indexer.search.api.routes import router
from indexer.search.engine import ArchiveError, NotServable, SearchEngine

API_VERSION = "1"


@dataclass(frozen=True)
class ApiConfig:
    """What `serve` sets; each default is declared here once."""

    token: str | None = None
    url_ttl_s: float = URL_TTL_S
    cors_origins: tuple[str, ...] = ()
    batch_window_s: float = BATCH_WINDOW_S
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    preview_dir: Path | None = None  # browser-playable cuts of clips (default: the index folder's previews/)


def create_app(engine: SearchEngine, config: ApiConfig = ApiConfig()) -> FastAPI:
    """The API over `engine`. The app starts the engine's thread when it starts and stops it when it stops; the
    engine stays open (its owner closes it)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = EngineWorker(engine, config.batch_window_s, on_batch=metrics.batch_size.observe)
        metrics.observe_depth(lambda: worker.depth)
        app.state.worker = worker
        try:
            yield
        finally:
            worker.close()

    app = FastAPI(
        title="mplug2-search",
        version=API_VERSION,
        summary="Text-to-video and image search over your own media archive",
        description=(
            "Every endpoint but `/v1/health` needs `Authorization: Bearer TOKEN` once the server has a token. "
            "The `thumbnail_url` and `media_url` of results are signed and short-lived, and work without it "
            "(for `<img>` and `<video>`)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.access = Access(config.token, config.url_ttl_s)
    app.state.metrics = metrics
    app.state.preview_dir = config.preview_dir or engine.settings.index_dir / "previews"
    app.state.max_upload_bytes = config.max_upload_bytes
    app.include_router(router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mplug2-search API")

    @app.exception_handler(NotServable)
    async def not_servable(request: Request, error: NotServable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ArchiveError)
    async def archive_error(request: Request, error: ArchiveError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    app.add_middleware(BodyLimitMiddleware, max_upload=config.max_upload_bytes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length", "X-Clip-Start", "X-Clip-End"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
