"""One thread owns the engine (it is not thread-safe) and answers what the routes ask of it. Searches that arrive
within a short collection window of each other, or while a batch runs, are answered together by
`SearchEngine.search_batch`: one text-encoder pass for all queries and one ITM pass for all re-ranked pairs, so
concurrent clients share the model's fixed cost per call. The window opens only while searches come in company (the
last batch held more than one): a lone client never waits for it. Anything else (a clip, a thumbnail, the stats)
runs alone between batches."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from indexer.search.engine import Query, SearchEngine
from indexer.search.results import SearchResponse

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_WINDOW_S = 0.015
MAX_BATCH = 32


@dataclass
class _Job:
    future: Future
    query: Query | None = None  # a search, batched
    call: Callable[[], Any] | None = None  # anything else, alone


class EngineWorker:
    """The engine's own thread: `search` and `call` hand it work and await the answer."""

    def __init__(
        self,
        engine: SearchEngine,
        window_s: float = BATCH_WINDOW_S,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self._window_s = window_s
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._last_batch = 1
        self._thread = threading.Thread(target=self._run, name="search-engine", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting for the engine."""
        return self._jobs.qsize()

    async def search(self, query: Query) -> SearchResponse:
        return await self._submit(_Job(Future(), query=query))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        return await self._submit(_Job(Future(), call=lambda: function(*args)))

    async def _submit(self, job: _Job) -> Any:
        if not self._thread.is_alive():
            raise RuntimeError("the search engine's thread has stopped")
        self._jobs.put(job)
        return await asyncio.wrap_future(job.future)

    def close(self) -> None:
        """Finish the jobs already queued, then stop the thread (the engine stays open: its owner closes it)."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        held: list[_Job | None] = []  # what ended a batch's collection: the next to run
        while True:
            job = held.pop() if held else self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # its client went away while it waited
            if job.call is not None:
                _settle(job.future, job.call)
                continue
            batch = [job]
            deadline = time.monotonic() + (self._window_s if self._last_batch > 1 else 0.0)
            while len(batch) < self._max_batch:
                try:
                    following = self._jobs.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if following is None or following.query is None:
                    held.append(following)  # a call, or the stop: after this batch
                    break
                if following.future.set_running_or_notify_cancel():
                    batch.append(following)
            self._last_batch = len(batch)
            self._answer(batch)

    def _answer(self, batch: list[_Job]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            responses = self.engine.search_batch([job.query for job in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
                return
            # One query's failure must not fail the others: answer each alone, so only its own request errs.
            log.warning("a batch of %d searches failed; answering them one by one", len(batch), exc_info=True)
            for job in batch:
                _settle(job.future, lambda job=job: self.engine.search_batch([job.query])[0])
            return
        for job, response in zip(batch, responses, strict=True):
            job.future.set_result(response)


def _settle(future: Future, work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except Exception as error:
        future.set_exception(error)
