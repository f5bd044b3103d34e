"""Prometheus metrics of one app (its own registry, so that several apps in one process do not share counters):
requests by route and status, latency histograms, the engine's queue depth and batch sizes, the archive's clips."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mplug2_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mplug2_http_request_duration_seconds",
            "time to answer a request (for media: to start the body)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("mplug2_search_queue_depth", "requests waiting for the engine", registry=self.registry)
        self.batch_size = Histogram(
            "mplug2_search_batch_size", "searches answered together", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.clips = Gauge("mplug2_archive_clips_ready", "searchable clips at the last scrape", registry=self.registry)

    def observe_depth(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route's template (never the raw path: ids would explode the
    label set; paths no route knows count as "unmatched")."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                label = getattr(route, "path", "unmatched")
                self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
