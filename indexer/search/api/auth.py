"""Who may ask: a bearer token for every endpoint but health (once one is set), and signed URLs for what a browser's
<video> and <img> fetch without headers (media and thumbnails). A signature is an HMAC of the scope, the clip id and
an expiry under a secret drawn when the server starts, so a URL dies with its expiry or the server."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# How long a signed URL works: long enough to watch a clip (a <video> keeps fetching ranges while it plays).
URL_TTL_S = 900.0

bearer = HTTPBearer(auto_error=False, description="the token of MPLUG2_SEARCH_TOKEN or --token-file")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


@dataclass(frozen=True)
class Access:
    """The server's token (None: open, for loopback only) and the secret its URLs are signed with."""

    token: str | None
    url_ttl_s: float = URL_TTL_S
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def token_ok(self, credentials: HTTPAuthorizationCredentials | None) -> bool:
        if self.token is None:
            return True
        return credentials is not None and hmac.compare_digest(credentials.credentials.encode(), self.token.encode())

    def signed(self, scope: str, clip_id: int, now: float | None = None) -> str:
        """`/v1/...` URL of `scope` ("media" or "thumbnail") for this clip, signed until now + the TTL."""
        # Rounded up: truncating would cut up to a second off, the whole TTL at its minimum of 1 s.
        expires = math.ceil((time.time() if now is None else now) + self.url_ttl_s)
        query = urlencode({"expires": expires, "signature": self._signature(scope, clip_id, expires)})
        path = f"/v1/media/{clip_id}" if scope == "media" else f"/v1/clips/{clip_id}/thumbnail"
        return f"{path}?{query}"

    def signature_ok(self, scope: str, raw_id: str, expires: str | None, signature: str | None) -> bool | None:
        """True for a valid unexpired signature, False for a wrong or expired one, None when there is none."""
        if expires is None and signature is None:
            return None
        if expires is None or signature is None or len(expires) > 12:
            return False
        if not (expires.isascii() and expires.isdigit() and raw_id.isascii() and raw_id.isdigit()):
            return False
        if int(expires) < time.time():
            return False
        return hmac.compare_digest(signature, self._signature(scope, int(raw_id), int(expires)))

    def _signature(self, scope: str, clip_id: int, expires: int) -> str:
        message = f"{scope}:{clip_id}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:32]


def _unauthorized() -> HTTPException:
    return HTTPException(
        401, "a bearer token is required: send 'Authorization: Bearer TOKEN'", {"WWW-Authenticate": "Bearer"}
    )


def require_token(request: Request, credentials: Credentials) -> None:
    """The dependency of every endpoint but health, media and thumbnails."""
    if not request.app.state.access.token_ok(credentials):
        raise _unauthorized()


def signed_or_token(scope: str):
    """The dependency of an endpoint a browser element fetches: the bearer token, or a valid signed URL."""

    def check(
        request: Request,
        clip_id: str,
        credentials: Credentials,
        expires: str | None = None,
        signature: str | None = None,
    ) -> None:
        access: Access = request.app.state.access
        if access.token_ok(credentials):
            return
        signed = access.signature_ok(scope, clip_id, expires, signature)
        if signed is None:
            raise _unauthorized()
        if not signed:
            raise HTTPException(403, "this signed URL is expired or altered: search again for a fresh one")

    return check
