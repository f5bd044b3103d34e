"""Running the app: the bind rule (no address beyond loopback without a token), the token's sources, and uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

import uvicorn

from indexer.search.api.app import ApiConfig, create_app
from indexer.search.engine import SearchEngine

log = logging.getLogger(__name__)

TOKEN_ENV = "MPLUG2_SEARCH_TOKEN"
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token(token_file: Path | None) -> str | None:
    """The token of `--token-file` (its first line), else of $MPLUG2_SEARCH_TOKEN, else None (no token). Raises
    ValueError for an empty or short one: a guessable token is worse than a refusal."""
    if token_file is not None:
        lines = token_file.read_text().strip().splitlines()
        token, source = (lines[0].strip() if lines else ""), str(token_file)
    else:
        token, source = os.environ.get(TOKEN_ENV), f"${TOKEN_ENV}"
        if token is None:
            return None
        token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"{source}: the token is shorter than {MIN_TOKEN_CHARS} characters; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


def check_bind(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: set {TOKEN_ENV} or --token-file, or keep --host 127.0.0.1"
        )


def serve(engine: SearchEngine, config: ApiConfig, host: str, port: int) -> None:
    """Serve the API until interrupted (Ctrl-C or SIGTERM: requests in flight finish, then the engine's thread)."""
    check_bind(host, config.token)
    app = create_app(engine, config)
    log.info("serving %s on http://%s:%d", engine.settings.index_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
