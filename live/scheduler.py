"""One task owns the engine; every stream's jobs go through it.

Jobs are *finals* (an ended utterance, each owed exactly one answer) and
*partials* (the audio so far of an open utterance). Finals always go first;
for each utterance only the newest partial request is kept, and a partial that
is stale when the engine gets free is dropped. Jobs waiting together are
batched into one engine call, up to a budget in seconds of audio. The engine
runs in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from models import Engine, Transcript

__all__ = ["SchedulerOptions", "Scheduler", "SchedulerStats"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class SchedulerOptions:
    """How the engine's time is shared.

    Attributes:
        batch_budget_s: most seconds of audio in one engine call of finals.
        partial_budget_s: most seconds of audio in one engine call of partials
            (kept small so a final arriving meanwhile waits little).
        max_batch: most clips in one engine call.
        partial_every_s: base cadence of partials, in seconds of new audio.
        max_partial_slowdown: how many times the cadence may stretch when the
            engine is busy.
    """

    batch_budget_s: float = 30.0
    partial_budget_s: float = 12.0
    max_batch: int = 16
    partial_every_s: float = 0.6
    max_partial_slowdown: float = 5.0


@dataclass
class SchedulerStats:
    """Counters for ``/health`` and the benchmark."""

    engine_calls: int = 0
    finals: int = 0
    partials: int = 0
    partials_dropped: int = 0
    engine_seconds: float = 0.0
    audio_seconds: float = 0.0
    max_batch_seen: int = 0


@dataclass
class _Final:
    audio: np.ndarray
    language: str
    future: asyncio.Future
    queued: float = field(default_factory=time.monotonic)


@dataclass
class _Partial:
    audio: np.ndarray
    language: str
    deliver: Callable[[Transcript], None]
    is_stale: Callable[[], bool]


class Scheduler:
    """Batches finals and partials from every stream into engine calls."""

    def __init__(self, engine: Engine, options: SchedulerOptions | None = None):
        self.engine = engine
        self.options = options or SchedulerOptions()
        self.stats = SchedulerStats()
        self._finals: deque[_Final] = deque()
        self._partials: dict[Hashable, _Partial] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._busy_ema = 0.0  # share of wall time the engine was busy, smoothed
        self._last_idle_at = time.monotonic()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="engine-scheduler")

    async def stop(self) -> None:
        """Stop the loop; finals still queued fail with :class:`asyncio.CancelledError`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._finals:
            job = self._finals.popleft()
            if not job.future.done():
                job.future.cancel()
        self._partials.clear()

    # -- submitting ----------------------------------------------------------

    def submit_final(self, audio: np.ndarray, language: str = "auto") -> asyncio.Future:
        """Queue an ended utterance; the future resolves to its :class:`Transcript`."""
        future = asyncio.get_running_loop().create_future()
        self._finals.append(_Final(audio, language, future))
        self._wake.set()
        return future

    def request_partial(
        self,
        key: Hashable,
        audio: np.ndarray,
        deliver: Callable[[Transcript], None],
        is_stale: Callable[[], bool],
        language: str = "auto",
    ) -> None:
        """Ask for a partial of ``key``; replaces any older request of the same key."""
        if key in self._partials:
            self.stats.partials_dropped += 1
        self._partials[key] = _Partial(audio, language, deliver, is_stale)
        self._wake.set()

    def cancel_partials(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget the partial requests whose key matches (a stream went away)."""
        for key in [k for k in self._partials if predicate(k)]:
            del self._partials[key]

    @property
    def queued_finals(self) -> int:
        return len(self._finals)

    def partial_interval_s(self) -> float:
        """Seconds of new audio between partials: longer while the engine is busy."""
        base = self.options.partial_every_s
        busy = self._busy_ema
        if self._finals:
            busy = max(busy, 1.0)
        # Up to 60 % busy is fine; beyond it stretch linearly up to the cap.
        stretch = 1.0 + max(0.0, busy - 0.6) / 0.4 * (self.options.max_partial_slowdown - 1.0)
        return base * min(stretch, self.options.max_partial_slowdown)

    # -- the engine loop ----------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._finals and not self._partials:
                self._wake.clear()
                await self._wake.wait()
            finals = self._take_finals()
            if finals:
                await self._run_finals(finals)
                continue
            partials = self._take_partials()
            if partials:
                await self._run_partials(partials)

    def _take_finals(self) -> list[_Final]:
        while self._finals and self._finals[0].future.done():  # owner went away
            self._finals.popleft()
        if not self._finals:
            return []
        language = self._finals[0].language
        taken: list[_Final] = []
        budget = self.options.batch_budget_s * SAMPLE_RATE
        rest: deque[_Final] = deque()
        used = 0
        while self._finals:
            job = self._finals.popleft()
            if job.future.done():
                continue
            fits = len(taken) < self.options.max_batch and (not taken or used + len(job.audio) <= budget)
            if fits and job.language == language:
                taken.append(job)
                used += len(job.audio)
            else:
                rest.append(job)
        self._finals = rest
        return taken

    def _take_partials(self) -> list[_Partial]:
        taken: list[_Partial] = []
        budget = self.options.partial_budget_s * SAMPLE_RATE
        used = 0
        language = None
        for key in list(self._partials):
            job = self._partials[key]
            if job.is_stale():
                del self._partials[key]
                self.stats.partials_dropped += 1
                continue
            if language is None:
                language = job.language
            if job.language != language or len(taken) >= self.options.max_batch:
                continue
            if taken and used + len(job.audio) > budget:
                continue
            taken.append(self._partials.pop(key))
            used += len(job.audio)
        return taken

    async def _call_engine(self, clips: list[np.ndarray], language: str) -> list[Transcript]:
        started = time.monotonic()
        idle = started - self._last_idle_at
        try:
            results = await asyncio.to_thread(self.engine.transcribe, clips, language)
        finally:
            ended = time.monotonic()
            busy = ended - started
            self._busy_ema = 0.7 * self._busy_ema + 0.3 * (busy / max(busy + idle, 1e-6))
            self._last_idle_at = ended
            self.stats.engine_calls += 1
            self.stats.engine_seconds += busy
            self.stats.audio_seconds += sum(len(c) for c in clips) / SAMPLE_RATE
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(clips))
        if len(results) != len(clips):
            raise RuntimeError(f"engine returned {len(results)} results for {len(clips)} clips")
        return results

    async def _run_finals(self, jobs: list[_Final]) -> None:
        try:
            results = await self._call_engine([j.audio for j in jobs], jobs[0].language)
        except asyncio.CancelledError:
            for job in jobs:
                if not job.future.done():
                    job.future.cancel()
            raise
        except Exception as exc:  # task boundary: the engine failed on this batch
            log.exception("engine failed on a batch of %d finals", len(jobs))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)
        self.stats.finals += len(jobs)

    async def _run_partials(self, jobs: list[_Partial]) -> None:
        try:
            results = await self._call_engine([j.audio for j in jobs], jobs[0].language)
        except asyncio.CancelledError:
            raise
        except Exception:  # task boundary: a failed partial is only a missed update
            log.exception("engine failed on a batch of %d partials", len(jobs))
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.is_stale():
                job.deliver(result)
                self.stats.partials += 1
