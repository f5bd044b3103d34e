"""DecodePool: results from real worker processes; hung, bloated and crashed workers are replaced, the run goes on."""

from __future__ import annotations

import os
import signal
import threading
import time

from indexer.media.corpus import CorpusFile
from indexer.media.decode import DecodeResult
from indexer.media.errors import DecodeMemoryError, DecodeTimeoutError, MediaError, WorkerCrashError
from indexer.media.request import DecodeRequest
from indexer.media.workers import DecodePool


def test_pool_decodes_and_reports_bad_files_without_stopping(corpus: dict[str, CorpusFile]) -> None:
    names = ["h264.mp4", "zero-bytes.mp4", "notes.mp4", "vp9.webm", "pattern.png"]
    requests = [DecodeRequest(str(corpus[name].path), num_frames=4, size=16, tag=name) for name in names]
    with DecodePool(workers=2, timeout_s=30) as pool:
        outcomes = {request.tag: outcome for request, outcome in pool.imap(requests)}
    assert set(outcomes) == set(names)
    assert outcomes["h264.mp4"].spans[0].frames.shape == (4, 16, 16, 3)
    assert outcomes["pattern.png"].spans[0].frames.shape == (4, 16, 16, 3)
    assert outcomes["zero-bytes.mp4"].code == "empty"
    assert outcomes["notes.mp4"].code == "not_media"


def test_a_slow_decode_times_out_and_the_next_file_still_decodes(corpus: dict[str, CorpusFile]) -> None:
    slow = DecodeRequest(str(corpus["8k.mp4"].path), num_frames=3, tag="8k")
    quick = DecodeRequest(str(corpus["h264.mp4"].path), num_frames=2, tag="quick")
    with DecodePool(workers=1, timeout_s=0.05) as pool:
        outcomes = dict((request.tag, outcome) for request, outcome in pool.imap([slow]))
        pool.timeout_s = 30
        outcomes.update((request.tag, outcome) for request, outcome in pool.imap([quick]))
        assert pool.restarts == 1
    assert isinstance(outcomes["8k"], DecodeTimeoutError)
    assert "8k.mp4" in str(outcomes["8k"])
    assert isinstance(outcomes["quick"], DecodeResult)


def test_memory_cap_kills_the_worker_with_a_typed_error(corpus: dict[str, CorpusFile]) -> None:
    # An idle worker holds ~30 MB; decoding 8K frames takes ~350 MB (measured), far above a 150 MB cap.
    request = DecodeRequest(str(corpus["8k.mp4"].path), num_frames=3, backend="decord", max_side=8192)
    with DecodePool(workers=1, timeout_s=60, memory_limit_mb=150) as pool:
        ((_, outcome),) = list(pool.imap([request]))
    assert isinstance(outcome, DecodeMemoryError), outcome
    assert outcome.code == "memory"


def test_8k_within_a_realistic_cap(corpus: dict[str, CorpusFile]) -> None:
    request = DecodeRequest(str(corpus["8k.mp4"].path), num_frames=8, size=224)
    with DecodePool(workers=1, timeout_s=60, memory_limit_mb=1024) as pool:
        ((_, outcome),) = list(pool.imap([request]))
    assert isinstance(outcome, DecodeResult), outcome
    assert outcome.spans[0].frames.shape == (8, 224, 224, 3)


def test_a_worker_killed_from_outside_is_reported_and_replaced(corpus: dict[str, CorpusFile]) -> None:
    requests = [
        DecodeRequest(str(corpus["8k.mp4"].path), num_frames=8, tag="victim"),
        DecodeRequest(str(corpus["h264.mp4"].path), num_frames=2, tag="after"),
    ]
    with DecodePool(workers=1, timeout_s=60) as pool:
        victim_pid = pool._workers[0].process.pid

        def kill_soon() -> None:
            time.sleep(0.3)
            os.kill(victim_pid, signal.SIGKILL)

        threading.Thread(target=kill_soon).start()
        outcomes: dict[object, DecodeResult | MediaError] = {}
        for request, outcome in pool.imap(requests):
            outcomes[request.tag] = outcome
    assert isinstance(outcomes["victim"], WorkerCrashError)
    assert isinstance(outcomes["after"], DecodeResult)


def test_workers_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, indexer.media.worker_main, indexer.media.decode; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_request_tag_never_drags_heavy_modules_into_the_worker(corpus: dict[str, CorpusFile]) -> None:
    """Tags are pickled into the worker: an int is fine; the pool must not need the caller's classes."""
    with DecodePool(workers=1) as pool:
        ((_, outcome),) = list(pool.imap([DecodeRequest(str(corpus["h264.mp4"].path), num_frames=2, tag=17)]))
    assert isinstance(outcome, DecodeResult) and outcome.request.tag == 17
