"""The decode worker process: `python -m indexer.media.worker_main FD MEMORY_LIMIT_BYTES` (0: no address-space cap).

Reads `DecodeRequest`s (and `SegmentRequest`s: shot detection decodes too) from the connection on file
descriptor FD and answers each with a `DecodeResult` (a `SegmentResult`) or a `MediaError`. Started and watched
by `indexer.media.workers.DecodePool`; never imports torch.
"""

from __future__ import annotations

import logging
import signal
import sys
from multiprocessing.connection import Connection

from indexer.media.decode import DecodeResult, decode
from indexer.media.errors import DecodeMemoryError, MediaError, WorkerCrashError
from indexer.media.segment import SegmentRequest, SegmentResult, segment

log = logging.getLogger("indexer.media.worker")


def _limit_address_space(memory_limit_bytes: int) -> None:
    """A hard backstop under the parent's RSS watch: a spike between two polls fails here, not in the machine's swap.

    Address space runs well above resident memory (thread stacks, mapped libraries), hence the slack.
    """
    try:
        import resource

        backstop = 3 * memory_limit_bytes + (2 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (backstop, backstop))
    except (ImportError, ValueError, OSError):
        log.debug("no address-space limit on this platform")


def serve(connection: Connection) -> None:
    while True:
        try:
            request = connection.recv()
        except (EOFError, ConnectionResetError):  # the parent closed or died: nothing left to serve
            return
        try:
            outcome: DecodeResult | SegmentResult | MediaError = (
                segment(request) if isinstance(request, SegmentRequest) else decode(request)
            )
        except MediaError as error:
            outcome = error
        except MemoryError:
            outcome = DecodeMemoryError(request.path, "out of memory while decoding")
        except Exception as error:  # a decoder bug must cost one file, not the run; the message keeps the cause
            log.exception("unexpected decoder failure on %s", request.path)
            outcome = WorkerCrashError(request.path, f"decoder failed: {type(error).__name__}: {error}")
        try:
            connection.send(outcome)
        except (BrokenPipeError, ConnectionResetError):
            return


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    fd, memory_limit_bytes = int(sys.argv[1]), int(sys.argv[2])
    if memory_limit_bytes > 0:
        _limit_address_space(memory_limit_bytes)
    serve(Connection(fd))


if __name__ == "__main__":
    main()
