"""Indexing on a Ray cluster: `mplug2-search index PATHS --ray ADDRESS`. Imported only when --ray is given.

The stages are local indexing's own (`indexer.indexing.stages`); only where they run changes:

- walk and plan, probe, clip planning, and the commit run on the driver, in `Indexer`'s own code: the same change
  detection, the same `Committer` writing through the `Archive` in the archive's order, once per file;
- decode runs as Ray tasks (one CPU each). Each task hands its request to a one-process `DecodePool` kept in the
  Ray worker, so a clip gets the same time-out and memory limit as locally and a bad file fails alone with its
  reason. The decoded frames stay in Ray's object store; only the small part of a result (which spans worked, times,
  thumbnails) comes to the driver;
- encoding runs in a pool of actors, each loading the model once: `num_gpus=1` each (bf16 autocast) when the cluster
  has GPUs, else CPU actors. Batches are formed on the driver as locally (same kinds, same sizes, across files) and
  name the frames by object reference, so frames go from the decoding node to the encoding node directly.

The tasks and actors themselves are in `indexer.indexing.ray_tasks`; this module drives them from the driver.

Results are taken in the order the requests were made, so clip ids are given out in the order a local run with one
decode worker gives them, and batches hold the same clips: the archive is the same whichever way it was built.

Faults: a decode task whose worker or node dies is retried by Ray (`max_retries`); frames lost with a node are
rebuilt from lineage; an encoder actor that dies is restarted (on another node if need be) and its calls retried. A
request that keeps failing for system reasons fails its file with that reason. A killed driver leaves files
`indexing`; the next run (Ray or local) redoes them (`Archive.start_run`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayError

from indexer.indexing.options import IndexOptions
from indexer.indexing.pipeline import Indexer, _Feed, _StopFlag, existing_roots
from indexer.indexing.ray_tasks import _decode_task, _DecodeReport, _Encoder, _FramesRef, _Reader, connect
from indexer.indexing.stages.commit import IndexSummary
from indexer.indexing.stages.decode import read_file
from indexer.indexing.stages.encode import PendingClip
from indexer.indexing.stages.walk import Candidate
from indexer.media.decode import DecodeResult
from indexer.media.errors import WorkerCrashError
from indexer.media.probe import MediaInfo
from indexer.media.workers import Request
from indexer.settings import Settings
from indexer.store.archive import ArchiveError
from indexer.store.db.records import FileStamp
from indexer.store.errors import stops_when_full
from mplug2.bundle import ModelBundle

log = logging.getLogger(__name__)

# Batches waiting for an actor beyond which no new decode task is started: decoded frames must not pile up in the
# object store when the encoders are the bottleneck (they are, on CPUs).
_WAITING_BATCHES_PER_ACTOR = 2
_IN_FLIGHT_PER_ACTOR = 2  # one encoding, one queued: the actor never idles while the driver commits


@dataclass
class RayOptions:
    address: str  # auto | host:port | ray://host:port
    actors: int | None = None  # encoder actors; None: one per GPU, else one per 4 CPUs of the cluster
    actor_cpus: float = 1.0  # CPUs reserved by a CPU encoder actor (its torch threads)
    decode_retries: int = 3  # Ray re-runs of a decode task whose worker or node died


@dataclass
class NodeStats:
    decode_tasks: int = 0
    decode_s: float = 0.0
    batches: int = 0
    clips_encoded: int = 0
    encode_s: float = 0.0


@dataclass
class ClusterSummary(IndexSummary):
    """Local indexing's summary, plus where the work ran: per node (address and id), and the encoder pool."""

    nodes: dict[str, NodeStats] = field(default_factory=lambda: defaultdict(NodeStats))
    actors: int = 0
    device: str = "cpu"


@dataclass
class _Flight:
    batch: list[PendingClip]
    actor: int


class RayIndexer(Indexer):
    """`Indexer` with decoding and encoding on a Ray cluster; walking, planning and committing stay its own."""

    def __init__(
        self,
        settings: Settings,
        bundle: ModelBundle,
        options: IndexOptions,
        cluster: RayOptions,
        on_progress: Callable[[dict], None] | None = None,
    ) -> None:
        super().__init__(settings, bundle, options, on_progress)
        self.cluster = cluster
        self.summary = ClusterSummary(run_id=0, status="running")
        self.committer.summary = self.summary
        self._waiting: deque[list[PendingClip]] = deque()
        self._node_names: dict[str, str] = {}
        self.actors: list = []
        self._reads: deque[tuple[Path, ray.ObjectRef]] = deque()
        self._unread: Iterator[Candidate] = iter(())
        self._read_ahead = 4  # files probed ahead of the driver (set from the decode slots once the cluster is known)
        self._readers: Iterator | None = None  # reader actors in turn: started on first use, spread over the nodes

    def _read(self, candidate: Candidate) -> tuple[MediaInfo, FileStamp]:
        """The local stage's probe and hash, done by the reader actors a few files ahead of the driver's need: the
        driver keeps planning and committing (the database work) and the cluster does the per-file I/O."""
        if self._readers is None:
            count = max(2, len([node for node in ray.nodes() if node["Alive"]]))
            readers = [_Reader.options(scheduling_strategy="SPREAD").remote() for _ in range(count)]
            self._readers = itertools.cycle(readers)
        while len(self._reads) < self._read_ahead:
            upcoming = next(self._unread, None)
            if upcoming is None:
                break
            self._reads.append((upcoming.path, next(self._readers).read.remote(upcoming)))
        if not self._reads or self._reads[0][0] != candidate.path:  # not foreseen: read it here
            return read_file(candidate)
        _, ref = self._reads.popleft()
        try:
            result = ray.get(ref)
        except RayError as error:  # retried by Ray and lost each time
            raise WorkerCrashError(
                str(candidate.path), f"probing failed on the cluster ({type(error).__name__})"
            ) from None
        if isinstance(result, BaseException):
            raise result
        return result

    def _encode(self, batch: list[PendingClip]) -> None:
        """A full batch (from the local stages): queued for the actor pool instead of encoded here."""
        self._waiting.append(batch)

    def _run(self, paths: list[str | Path], stop: _StopFlag) -> IndexSummary:
        from tqdm import tqdm

        roots = existing_roots(paths, self.archive)
        started = time.perf_counter()
        connected = connect(self.cluster.address)
        self._start_run(roots)
        try:
            todo = self._plan(roots)
            bar = tqdm(total=len(todo), unit="file", desc="indexing on ray", disable=not self.options.progress)
            try:
                self._unread = iter(todo)  # probed ahead, in the order `_files` takes them
                self._feed = _Feed(self._files(todo, stop))
                self._loop(bar, len(todo))
                self._report(bar, len(todo))
            finally:
                bar.close()
        finally:
            self._finish_run(stop, started)
            if connected:
                ray.shutdown()
        return self.summary

    # the driver's loop: decode tasks in order, batches to the actors, results to the committer

    def _start_actors(self) -> list:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), resources.get("CPU", 1.0)
        count = self.cluster.actors or (gpus if gpus else max(1, int(cpus // 4)))
        self.summary.actors, self.summary.device = count, "cuda" if gpus else "cpu"
        if gpus:
            options = {"num_gpus": 1, "num_cpus": 1}
            threads = 1
        else:
            options = {"num_cpus": self.cluster.actor_cpus}
            threads = max(1, int(self.cluster.actor_cpus))
            if cpus - count * self.cluster.actor_cpus < 1:
                # A cluster too small to reserve CPUs for the encoders and still decode: the encoders share the CPUs
                # with the decode tasks rather than starve them (Ray would wait forever for a free CPU).
                options = {"num_cpus": 0}
        actor = _Encoder.options(**options)
        self._decode_slots = max(1, int(cpus - count * options["num_cpus"]))
        log.info("%d encoder actors on %s, %d decode slots", count, self.summary.device, self._decode_slots)
        return [actor.remote(self.bundle.name, self.bundle.fingerprint, threads) for _ in range(count)]

    def _loop(self, bar, total: int) -> None:
        actors = self.actors = self._start_actors()
        keep_tokens = self.archive.store.mode != "none"
        options = self.options
        backstop = options.decoder != "torchcodec"  # CUDA contexts and RLIMIT_AS do not mix (see DecodePool)
        decode = _decode_task.options(max_retries=self.cluster.decode_retries)
        window = 2 * self._decode_slots  # decode tasks in flight: every slot busy, and one more each queued
        self._read_ahead = self._decode_slots + 2
        ordered: deque[tuple[Request, ray.ObjectRef, ray.ObjectRef]] = deque()
        flights: dict[ray.ObjectRef, _Flight] = {}
        busy = [0] * len(actors)
        feeding = True
        while True:
            # 1. keep the decode window full, unless decoded clips already wait for the encoders
            while feeding and len(ordered) < window and len(self._waiting) < _WAITING_BATCHES_PER_ACTOR * len(actors):
                request = next(self._feed, None)  # type: ignore[call-overload]
                if request is None:
                    feeding = False
                    break
                meta, frames = decode.remote(request, options.decode_timeout_s, options.decode_memory_mb, backstop)
                ordered.append((request, meta, frames))
            # 2. waiting batches to the least busy actors
            while self._waiting and min(busy) < _IN_FLIGHT_PER_ACTOR:
                index = busy.index(min(busy))
                batch = self._waiting.popleft()
                refs = list(dict.fromkeys(clip.frames.ref for clip in batch))  # type: ignore[attr-defined]
                position = {ref: i for i, ref in enumerate(refs)}
                picks = [(position[clip.frames.ref], clip.frames.index) for clip in batch]  # type: ignore[attr-defined]
                call = actors[index].encode.remote(batch[0].kind, refs, picks, keep_tokens)
                flights[call] = _Flight(batch, index)
                busy[index] += 1
            if not ordered and not flights:
                if self._waiting:
                    continue
                if feeding or self._feed.followups:  # type: ignore[union-attr]
                    feeding = True
                    continue
                leftovers = self.batcher.drain()
                if not leftovers:
                    return
                self._waiting.extend(leftovers)
                continue
            # 3. wait for the oldest decode request, or any batch
            waited = time.perf_counter()
            watch = ([ordered[0][1]] if ordered else []) + list(flights)
            ready, _ = ray.wait(watch, num_returns=1, timeout=1.0)
            self.summary.timings["wait"] += time.perf_counter() - waited
            for ref in ready:
                if ref in flights:
                    self._stored(ref, flights.pop(ref), busy)
            while ordered and ray.wait([ordered[0][1]], timeout=0)[0]:
                request, meta, frames = ordered.popleft()
                self._decoded(request, meta, frames)
            self._report(bar, total)

    def _node_name(self, node: str) -> str:
        """`address/id` of a node (the id: nodes on one machine share an address); nodes that joined late too."""
        if node not in self._node_names:  # ask the cluster again: the node may have joined since
            for info in ray.nodes():
                self._node_names[info["NodeID"]] = f"{info['NodeManagerAddress']}/{info['NodeID'][:8]}"
        return self._node_names.get(node, node[:8])

    def _decoded(self, request: Request, meta: ray.ObjectRef, frames: ray.ObjectRef) -> None:
        try:
            report: _DecodeReport = ray.get(meta)
            outcome = report.outcome
            stats = self.summary.nodes[self._node_name(report.node)]
            stats.decode_tasks += 1
            stats.decode_s += report.seconds
        except RayError as error:  # retried `decode_retries` times and lost each time: this request fails alone
            log.warning("decode task for %s failed on the cluster: %s", request.path, error)
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            message = f"the decode task failed on the cluster ({type(error).__name__}: {reason})"
            outcome = WorkerCrashError(request.path, message)
        if isinstance(outcome, DecodeResult):
            for index, span in enumerate(outcome.spans):
                if span.frames is not None:
                    span.frames = _FramesRef(frames, index)  # type: ignore[assignment]
        self._take(request, outcome)  # a SegmentResult becomes clip requests there (follow-ups on the feed)

    def _stored(self, call: ray.ObjectRef, flight: _Flight, busy: list[int]) -> None:
        busy[flight.actor] -= 1
        try:
            itc, tokens, node, seconds = ray.get(call)
        except RayActorError as error:  # restarts are unlimited: this is an actor that cannot start at all
            raise ArchiveError(f"the encoder actors cannot run on the cluster: {error}") from None
        stats = self.summary.nodes[self._node_name(node)]
        stats.batches += 1
        stats.clips_encoded += len(flight.batch)
        stats.encode_s += seconds
        self.summary.timings["encode"] += seconds
        self._write(flight.batch, itc, tokens)


def index_on_ray(
    paths: list[str | Path],
    settings: Settings,
    bundle: ModelBundle,
    options: IndexOptions,
    cluster: RayOptions,
    on_progress: Callable[[dict], None] | None = None,
) -> ClusterSummary:
    """`index_paths`, with decoding and encoding on the Ray cluster at `cluster.address`."""
    with stops_when_full(settings):
        indexer = RayIndexer(settings, bundle, options, cluster, on_progress)
        try:
            summary = indexer.run(paths)
            assert isinstance(summary, ClusterSummary)
            return summary
        finally:
            indexer.archive.close()
