"""What runs on the Ray cluster for `indexer.indexing.ray_index`: joining the cluster, the decode and probe tasks,
the handle for decoded frames left in the object store, and the encoder actors. Imported only with
`indexer.indexing.ray_index`, so a local run never imports Ray.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import ray

from indexer.indexing.stages.decode import read_file
from indexer.indexing.stages.encode import PendingClip, encode_batch
from indexer.indexing.stages.walk import Candidate
from indexer.media.decode import DecodeResult
from indexer.media.errors import MediaError
from indexer.media.probe import MediaInfo
from indexer.media.workers import DecodePool, Outcome, Request
from indexer.store.archive import ArchiveError
from indexer.store.db.records import FileStamp


def connect(address: str) -> bool:
    """Join the cluster at `address`; True if this call connected (then the caller disconnects at the end)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as error:
        raise ArchiveError(
            f"no Ray cluster at {address}: start one with `ray start --head` (see docs/DISTRIBUTED.md) ({error})"
        ) from None
    return True


# decode: a Ray task per request, in a killable process kept by the Ray worker

_POOL: DecodePool | None = None
_POOL_KEY: tuple | None = None


def _worker_pool(timeout_s: float, memory_mb: int, backstop: bool) -> DecodePool:
    """This Ray worker's one-process decode pool, started on its first task and kept (Ray reuses its workers)."""
    global _POOL, _POOL_KEY
    key = (timeout_s, memory_mb, backstop)
    if _POOL is None or key != _POOL_KEY:
        if _POOL is not None:
            _POOL.close()
        _POOL, _POOL_KEY = DecodePool(1, timeout_s, memory_mb, address_space_backstop=backstop), key
    return _POOL


@dataclass
class _DecodeReport:
    outcome: Outcome  # a DecodeResult's good spans carry `True` instead of frames (the frames are the other return)
    node: str
    seconds: float


@ray.remote(num_returns=2)
def _decode_task(
    request: Request, timeout_s: float, memory_mb: int, backstop: bool
) -> tuple[_DecodeReport, list[np.ndarray | None] | None]:
    started = time.perf_counter()
    pool = _worker_pool(timeout_s, memory_mb, backstop)
    ((_, outcome),) = list(pool.imap([request]))
    frames = None
    if isinstance(outcome, DecodeResult):
        frames = [span.frames for span in outcome.spans]
        for span in outcome.spans:
            span.frames = True if span.frames is not None else None  # type: ignore[assignment]
    node = ray.get_runtime_context().get_node_id()
    return _DecodeReport(outcome, node, time.perf_counter() - started), frames


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class _Reader:
    """Probes and hashes files on the cluster (ffprobe and reading every byte: the driver's slowest work otherwise).
    Failures come back as values, to be raised on the driver where the local code expects them.

    No CPU reserved: a probe is short and mostly waits on I/O, and reserving CPUs would take decode slots. An actor,
    not a task: a task that reserves no CPU gets a fresh worker process whenever the node's idle workers (as many as
    it has CPUs) are busy, and each start imports the indexer; on a one-node cluster that churn (111 worker
    processes for 262 files) made a run 4.4x slower than local indexing. A few long-lived readers start once."""

    def read(self, candidate: Candidate) -> tuple[MediaInfo, FileStamp] | MediaError | OSError:
        try:
            return read_file(candidate)
        except (MediaError, OSError) as error:
            return error


class _FramesRef:
    """Stands for a decoded clip's frames on the driver: span `index` of a decode task's frames object. It rides in
    `PendingClip.frames` through the local stages, which never look inside frames."""

    __slots__ = ("index", "ref")

    def __init__(self, ref: ray.ObjectRef, index: int) -> None:
        self.ref, self.index = ref, index


# encode: an actor pool, the model loaded once per actor


@ray.remote(max_restarts=-1, max_task_retries=-1)
class _Encoder:
    def __init__(self, model: str, fingerprint: str, threads: int) -> None:
        import torch

        from mplug2.bundle import load_model_bundle

        torch.set_num_threads(max(1, threads))
        gpu = bool(ray.get_gpu_ids())
        # precision auto: bf16 autocast on a GPU, float32 on the CPU (see mplug2.bundle)
        self.bundle = load_model_bundle(model, device="cuda" if gpu else "cpu", with_fusion=False)
        if self.bundle.fingerprint != fingerprint:
            raise ArchiveError(
                f"the model at {model} on node {ray.get_runtime_context().get_node_id()[:8]} is not the driver's "
                "(different weights): every node must see the same model folder"
            )
        self.node = ray.get_runtime_context().get_node_id()

    def where(self) -> tuple[str, int]:
        """(node id, process id) of this actor: for the fault tests, and for anyone debugging placement."""
        return self.node, os.getpid()

    def encode(
        self, kind: str, refs: list[ray.ObjectRef], picks: list[tuple[int, int]], keep_tokens: bool
    ) -> tuple[np.ndarray, list[np.ndarray] | None, str, float]:
        arrays = ray.get(refs)  # each decode task's frames, fetched from wherever they were decoded
        clips = [PendingClip(0, 0, kind, arrays[ref][span]) for ref, span in picks]
        started = time.perf_counter()
        itc, tokens = encode_batch(self.bundle, clips, keep_tokens)
        return itc, tokens, self.node, time.perf_counter() - started
