"""The HTTP search API (`mplug2-search serve`): FastAPI routes over one search engine, with bearer-token and signed-URL
access, batching of concurrent searches, and Prometheus metrics. `create_app` builds the app; `server.serve` runs it."""

from indexer.search.api.app import ApiConfig, create_app

__all__ = ["ApiConfig", "create_app"]
