"""Riding out a database that restarts: every catalog call is one transaction, retried with bounded backoff when
the connection is lost (a PostgreSQL server stopped, restarting or refusing connections) or SQLite answers
"database is locked". A call that still fails after `retry_s` seconds ends in one line saying what to do.

A retried write may have committed before its connection died; each catalog write is safe to repeat (a file's
row is found again by path, a commit marks the same clips ready), and a duplicate pending clip is dropped when its
file commits. So a restart costs at most the batch in flight.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from indexer.store.errors import disk_full

log = logging.getLogger(__name__)

T = TypeVar("T")
_FIRST_DELAY_S, _LONGEST_DELAY_S = 0.25, 5.0
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable past the retry bound; the message says which and what to do."""


def transient(error: BaseException, url: str) -> bool:
    """A lost or refused connection (any server), or a busy SQLite file: worth trying again. A full disk is not."""
    if not isinstance(error, DBAPIError) or disk_full(error):
        return False
    if error.connection_invalidated:
        return True
    if url.startswith("sqlite"):
        return any(text in str(error.orig).lower() for text in _SQLITE_TRANSIENT)
    return isinstance(error, OperationalError)


def _gave_up(url: str, waited: float, error: BaseException) -> DatabaseUnavailable:
    shown = make_url(url).render_as_string(hide_password=True)
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:160]
    return DatabaseUnavailable(
        f"the database {shown} has been unreachable for {waited:.0f} s ({reason}): check that it runs, then run the "
        "command again (nothing committed is lost; --db-retry SECONDS waits longer)"
    )


def retrying(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a catalog method (of an object with `url` and `retry_s`) while its database is briefly away."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs) -> T:
        started = time.monotonic()
        delay = _FIRST_DELAY_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as error:
                waited = time.monotonic() - started
                if not transient(error, self.url):
                    raise
                if waited >= self.retry_s:
                    raise _gave_up(self.url, waited, error) from None
                if delay == _FIRST_DELAY_S:
                    log.warning(
                        "the database is not answering (%s); retrying for up to %.0f s", method.__name__, self.retry_s
                    )
                time.sleep(min(delay, max(self.retry_s - waited, 0.0)))
                delay = min(delay * 2, _LONGEST_DELAY_S)

    return wrapper


def retrying_methods(cls: type[T]) -> type[T]:
    """Wrap every public method of a catalog class in `retrying` (each is one transaction, safe to repeat)."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and name != "close":
            setattr(cls, name, retrying(value))
    return cls
