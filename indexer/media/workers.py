"""Decoding in worker processes that can be killed: a per-request timeout and a memory cap per worker.

Real decoders hang (decord seeking that decodes a whole file, `get_batch` looping while holding the GIL) and blow up
memory (4K/8K files). Each worker is a separate process; the parent watches its deadline and resident memory and
SIGKILLs it when either is exceeded, reports the request as failed with a typed error, starts a fresh worker, and
goes on with the rest. Workers ignore SIGINT so that Ctrl-C reaches only the parent, which decides what to finish.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import psutil

from indexer.media.decode import DecodeResult
from indexer.media.errors import DecodeMemoryError, DecodeTimeoutError, MediaError, WorkerCrashError
from indexer.media.request import DecodeRequest
from indexer.media.segment import SegmentRequest, SegmentResult

Request = DecodeRequest | SegmentRequest
Outcome = DecodeResult | SegmentResult | MediaError

log = logging.getLogger(__name__)

_POLL_S = 0.1


@dataclass
class _Worker:
    process: subprocess.Popen
    connection: Connection
    request: Request | None = None
    deadline: float = 0.0


class DecodePool:
    """Worker processes running `indexer.media.decode.decode`.

    `imap` yields `(request, DecodeResult | MediaError)` in completion order (not submission order); carry your own
    key in `DecodeRequest.tag`. A request gets `timeout_s` per span it asks for (a `SegmentRequest`, per minute of
    video). `imap` asks its iterator for more whenever a worker is free, also after it once ran dry: a caller can
    feed follow-up requests (a video's decode requests once its shots are known) while results come in.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 60.0,
        memory_limit_mb: int = 4096,
        address_space_backstop: bool = True,
    ) -> None:
        """`address_space_backstop=False` for GPU decoding (torchcodec on NVDEC): a CUDA context reserves far more
        virtual address space than it ever uses and fails under RLIMIT_AS; the resident-memory watch still applies."""
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self.timeout_s = timeout_s
        self.memory_limit_bytes = memory_limit_mb << 20
        self.address_space_backstop = address_space_backstop
        self._workers = [self._start_worker() for _ in range(workers)]
        self.restarts = 0

    def _start_worker(self) -> _Worker:
        # A fresh interpreter per worker, not multiprocessing: forking a parent that holds torch threads is unsafe,
        # and `spawn` re-imports the parent's main module (a Streamlit script, a notebook) in every child.
        parent_end, child_end = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "indexer.media.worker_main",
                str(child_end.fileno()),
                str(self.memory_limit_bytes if self.address_space_backstop else 0),
            ],
            pass_fds=[child_end.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C is for the parent, which decides what to finish
        )
        child_end.close()
        return _Worker(process, Connection(parent_end.detach()))

    def imap(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Outcome]]:
        pending = iter(requests)
        while True:
            for index, worker in enumerate(self._workers):
                if worker.request is None:
                    request = next(pending, None)  # asked again each round: the feed may have grown meanwhile
                    if request is not None:
                        self._workers[index] = self._assign(worker, request)
            busy = [w for w in self._workers if w.request is not None]
            if not busy:
                return
            ready = wait([w.connection for w in busy], timeout=_POLL_S)
            for index, worker in enumerate(self._workers):
                if worker.request is None:
                    continue
                request = worker.request
                outcome = self._collect(worker, ready)
                if outcome is not None:
                    if isinstance(outcome, MediaError) and worker.process.poll() is not None:
                        self._workers[index] = self._replace(worker)
                    else:
                        worker.request = None
                    yield request, outcome

    def _assign(self, worker: _Worker, request: Request) -> _Worker:
        if worker.process.poll() is not None:
            worker = self._replace(worker)
        worker.request = request
        timeouts = request.timeouts if isinstance(request, SegmentRequest) else max(1, len(request.spans))
        worker.deadline = time.monotonic() + self.timeout_s * timeouts
        worker.connection.send(request)
        return worker

    def _collect(self, worker: _Worker, ready: list) -> Outcome | None:
        """The finished outcome of a busy worker, a typed error if it must be killed, or None if still working."""
        assert worker.request is not None
        path = worker.request.path
        if worker.connection in ready:
            try:
                return worker.connection.recv()
            except (EOFError, OSError):
                pass  # the socket closed: the worker died; fall through to the crash report
        if worker.connection in ready or worker.process.poll() is not None:
            code = worker.process.wait()
            return WorkerCrashError(path, f"the decoder process died (exit code {code})")
        if time.monotonic() > worker.deadline:
            self._kill(worker)
            if isinstance(worker.request, SegmentRequest):
                return DecodeTimeoutError(path, f"shot detection took longer than {self.timeout_s:.0f} s per minute")
            return DecodeTimeoutError(path, f"decoding took longer than {self.timeout_s:.0f} s per clip")
        rss = _rss(worker.process.pid)
        if rss > self.memory_limit_bytes:
            self._kill(worker)
            limit_mb = self.memory_limit_bytes >> 20
            return DecodeMemoryError(path, f"decoding used {rss >> 20} MB, over the {limit_mb} MB limit")
        return None

    def _kill(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.connection.close()
        self._kill(worker)
        self.restarts += 1
        log.info("restarting a decode worker (%d restarts so far)", self.restarts)
        return self._start_worker()

    def close(self) -> None:
        for worker in self._workers:
            worker.connection.close()
            self._kill(worker)
        self._workers = []

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _rss(pid: int | None) -> int:
    """Resident memory of a worker and its children (the ffmpeg processes of the fallback decoder)."""
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0
