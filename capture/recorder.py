"""The session's recording: every block the source gives, encoded in a thread of its own.

A :class:`Recorder` takes each block from the event loop without waiting
(:meth:`~Recorder.write` only queues it) and a thread encodes it into one
recording part (:mod:`library.opus`). The part is created with the first
block, so a run that never hears audio leaves no file. Every
:data:`SYNC_EVERY_S` of wall time the pages encoded so far are fsynced: a
``kill -9`` or a power cut loses at most that much plus the encoder's own
buffer. A write error (a full disk) or a queue that grows past
:data:`MAX_BACKLOG_S` (a disk that cannot keep up) stops the recording with
one notice; captions never wait for it. A file read faster than real time
waits for the encoder instead (:meth:`~Recorder.wait_below`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE
from library.opus import OpusWriter

__all__ = ["Recorder", "SYNC_EVERY_S", "MAX_BACKLOG_S"]

log = logging.getLogger(__name__)

#: wall seconds between fsyncs of the part
SYNC_EVERY_S = 0.5
#: seconds of audio queued for the encoder before the recording gives up (realtime sources)
MAX_BACKLOG_S = 120.0


def _reason(path: Path, exc: BaseException) -> str:
    """Why a write failed; libsndfile says only "System error", so a full disk is looked for."""
    try:
        if shutil.disk_usage(path.parent).free < 1 << 20:
            return "the disk is full"
    except OSError:
        pass
    return getattr(exc, "strerror", None) or str(exc)


class Recorder:
    """Records the blocks given to :meth:`write` into the part at ``path``.

    ``notice(text)`` is called once, from the event loop, if the recording stops early.
    """

    def __init__(self, path: Path, notice: Callable[[str], None]):
        self.path = path
        self._notice = notice
        self._queue: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._backlog = 0  # samples queued, not yet encoded
        self._lock = threading.Lock()
        self._failed = threading.Event()
        self._closed = False
        self._noticed = False
        self._drained = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._encode, name="recorder", daemon=True)
        self._thread.start()

    @property
    def recording(self) -> bool:
        return not self._failed.is_set() and not self._closed

    @property
    def backlog_s(self) -> float:
        return self._backlog / SAMPLE_RATE

    def write(self, block: np.ndarray) -> None:
        """Queue one block; never blocks. The block is held, not copied: a source never
        changes a block it has yielded (each is a fresh array), so the audio exists once."""
        if not self.recording or not len(block):
            return
        if self.backlog_s > MAX_BACKLOG_S:
            self._fail(f"the disk is not keeping up ({self.backlog_s:.0f} s of audio queued)")
            return
        with self._lock:
            self._backlog += len(block)
        self._queue.put(np.asarray(block, dtype=np.int16))

    async def wait_below(self, seconds: float) -> None:
        """Wait while more than ``seconds`` of audio wait for the encoder."""
        while self.recording and self.backlog_s > seconds:
            self._drained.clear()
            await self._drained.wait()

    async def close(self) -> None:
        """Encode what is queued, finish the part and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # -- the encoder thread --------------------------------------------------

    def _encode(self) -> None:
        writer: OpusWriter | None = None
        synced = time.monotonic()
        try:
            while (block := self._queue.get()) is not None:
                if not self._failed.is_set():
                    writer = writer or OpusWriter(self.path)
                    writer.write(block)
                    if time.monotonic() - synced >= SYNC_EVERY_S:
                        writer.sync()
                        synced = time.monotonic()
                with self._lock:
                    self._backlog -= len(block)
                self._loop.call_soon_threadsafe(self._drained.set)
            if writer is not None and not self._failed.is_set():
                writer.close()
        except (OSError, RuntimeError) as exc:
            self._loop.call_soon_threadsafe(self._fail, f"cannot write {self.path}: {_reason(self.path, exc)}")
            self._drain_after_failure()
        finally:
            if writer is not None:
                try:
                    writer.close()
                except (OSError, RuntimeError):
                    log.debug("closing the failed recording %s", self.path, exc_info=True)

    def _drain_after_failure(self) -> None:
        """Empty the queue until ``close``, so memory does not grow after a failure."""
        self._failed.set()
        with self._lock:
            self._backlog = 0
        self._loop.call_soon_threadsafe(self._drained.set)
        while self._queue.get() is not None:
            pass

    def _fail(self, reason: str) -> None:
        """Stop recording (on the event loop); the first reason is the one notice."""
        self._failed.set()
        self._drained.set()
        if not self._noticed:
            self._noticed = True
            log.warning("recording stopped: %s", reason)
            self._notice(f"recording stopped: {reason}; captions go on")
