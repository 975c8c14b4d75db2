"""One task owns the engine; every stream's jobs go through it.

Jobs are *finals* (an ended utterance, each owed exactly one answer; also the
speculative final of an utterance whose pause may end it) and *partials* (the
audio so far of an open utterance). Finals always go first and are decoded for
accuracy (``kind="final"``); partials for speed. For each utterance only the
newest partial request is kept, and a partial that is stale when the engine
gets free is dropped.

Batching follows a :class:`~live.calibrate.BatchPolicy` measured at start-up:
finals of one language share a call only while the padding it adds stays under
what the measured batching gain pays for. Partial calls are bounded in *engine
time* (estimated by a :class:`~live.calibrate.CostModel` learnt from recent
calls), so a final that arrives meanwhile waits at most about one short
partial call; partials of a long open utterance come less often, so that they
take at most a share of the engine. The engine runs in a worker thread
(``asyncio.to_thread``), never on the event loop.

*Polish* jobs (feature ``polish``: a window of a recording, decoded after class
with :meth:`~models.Engine.transcribe_long`) are the lowest priority: one runs
only when no final waits, no partial is due and no stream has an utterance
open (:meth:`Scheduler.set_speaking`), so that the final of an utterance that
begins meanwhile waits behind at most one polish call. Their engine time counts
as idle time for the partial cadence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from common.audio import SAMPLE_RATE
from models import NO_HINTS, DecodeHints, Engine, Segment, Transcript

from .calibrate import ANY_BATCH, BatchPolicy, CostModel

__all__ = ["SchedulerOptions", "Scheduler", "SchedulerStats"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SchedulerOptions:
    """How the engine's time is shared.

    Attributes:
        batch_budget_s: most seconds of audio in one engine call of finals.
        partial_budget_s: most seconds of audio in one engine call of partials.
        partial_call_s: most estimated engine seconds of one call of partials
            (at least one clip always goes): what a final may have to wait.
        partial_share: most share of the engine the partials of all open
            utterances may take together (each of ``n`` open ones ``1/n`` of it);
            a long utterance's partials come less often, and so do everyone's
            as streams are added.
        max_batch: most clips in one engine call.
        partial_every_s: base cadence of partials, in seconds of new audio.
        max_partial_slowdown: how many times the cadence may stretch when the
            engine is busy.
        busy_share: share of wall time the engine may be busy before the cadence
            stretches (linearly, reaching ``max_partial_slowdown`` at 100 %).
    """

    batch_budget_s: float = 30.0
    partial_budget_s: float = 12.0
    partial_call_s: float = 0.35
    partial_share: float = 0.7
    max_batch: int = 16
    partial_every_s: float = 0.3
    max_partial_slowdown: float = 5.0
    busy_share: float = 0.6


@dataclass
class SchedulerStats:
    """Counters for ``/health`` and the benchmark."""

    engine_calls: int = 0
    finals: int = 0
    partials: int = 0
    partials_dropped: int = 0
    polish: int = 0
    engine_seconds: float = 0.0
    audio_seconds: float = 0.0
    max_batch_seen: int = 0


@dataclass
class _Final:
    audio: np.ndarray
    language: str
    future: asyncio.Future
    hints: DecodeHints = NO_HINTS
    queued: float = field(default_factory=time.monotonic)


@dataclass
class _Partial:
    audio: np.ndarray
    language: str
    deliver: Callable[[Transcript], None]
    is_stale: Callable[[], bool]
    hints: DecodeHints = NO_HINTS


@dataclass
class _Polish:
    audio: np.ndarray
    language: str
    future: asyncio.Future
    hints: DecodeHints = NO_HINTS


class Scheduler:
    """Batches finals and partials from every stream into engine calls."""

    def __init__(self, engine: Engine, options: SchedulerOptions | None = None,
                 policy: BatchPolicy = ANY_BATCH):
        self.engine = engine
        self.options = options or SchedulerOptions()
        self.policy = policy
        self.stats = SchedulerStats()
        self.costs = {"partial": CostModel()}
        self._finals: deque[_Final] = deque()
        self._partials: dict[Hashable, _Partial] = {}
        self._polish: deque[_Polish] = deque()
        self._speaking: set[Hashable] = set()  # streams with an utterance open: no polish starts
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
        while self._polish:
            self._polish.popleft().future.cancel()
        self._partials.clear()

    # -- submitting ----------------------------------------------------------

    def submit_final(self, audio: np.ndarray, language: str = "auto",
                     hints: DecodeHints = NO_HINTS) -> asyncio.Future:
        """Queue an ended utterance; the future resolves to its :class:`Transcript`.

        Cancelling the future withdraws the job (a speculative final whose
        utterance went on); a job already in the engine finishes unseen.
        """
        future = asyncio.get_running_loop().create_future()
        self._finals.append(_Final(audio, language, future, hints))
        self._wake.set()
        return future

    def request_partial(
        self,
        key: Hashable,
        audio: np.ndarray,
        deliver: Callable[[Transcript], None],
        is_stale: Callable[[], bool],
        language: str = "auto",
        hints: DecodeHints = NO_HINTS,
    ) -> None:
        """Ask for a partial of ``key``; replaces any older request of the same key."""
        if key in self._partials:
            self.stats.partials_dropped += 1
        self._partials[key] = _Partial(audio, language, deliver, is_stale, hints)
        self._wake.set()

    def submit_polish(self, audio: np.ndarray, language: str = "auto",
                      hints: DecodeHints = NO_HINTS) -> asyncio.Future:
        """Queue a polish window; the future resolves to its list of :class:`~models.Segment`.

        Cancelling the future withdraws the job; one already in the engine finishes unseen.
        """
        future = asyncio.get_running_loop().create_future()
        self._polish.append(_Polish(audio, language, future, hints))
        self._wake.set()
        return future

    def set_speaking(self, key: Hashable, speaking: bool) -> None:
        """Whether stream ``key`` has an utterance open; no polish starts while one has."""
        if speaking:
            self._speaking.add(key)
        elif key in self._speaking:
            self._speaking.discard(key)
            self._wake.set()

    def cancel_partials(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget the partial requests whose key matches (a stream went away)."""
        for key in [k for k in self._partials if predicate(k)]:
            del self._partials[key]

    @property
    def queued_finals(self) -> int:
        return sum(1 for job in self._finals if not job.future.done())

    def partial_interval_s(self, open_s: float = 0.0) -> float:
        """Seconds of new audio between partials of an utterance ``open_s`` long.

        Longer while the engine is busy, and long enough that the partials of
        the utterances open now take at most ``partial_share`` of the engine
        together.
        """
        o = self.options
        waiting = any(not job.future.done() for job in self._finals)
        busy = max(self._busy_ema, 1.0) if waiting else self._busy_ema
        # Up to busy_share is fine; beyond it stretch linearly up to the cap.
        stretch = 1.0 + max(0.0, busy - o.busy_share) / (1.0 - o.busy_share) * (o.max_partial_slowdown - 1.0)
        interval = o.partial_every_s * min(stretch, o.max_partial_slowdown)
        cost = self.costs["partial"].estimate(open_s)
        return max(interval, cost * max(1, len(self._speaking)) / o.partial_share)

    # -- the engine loop ----------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._finals and not self._partials and not (self._polish and not self._speaking):
                self._wake.clear()
                await self._wake.wait()
            finals = self._take_finals()
            if finals:
                await self._run_finals(finals)
                continue
            partials = self._take_partials()
            if partials:
                await self._run_partials(partials)
                continue
            polish = self._take_polish()
            if polish is not None:
                await self._run_polish(polish)

    def _take_finals(self) -> list[_Final]:
        """The oldest final, and the finals of its language that may share its call.

        The oldest always goes, so no final waits behind newer ones; the others
        are taken closest in length first, so a batch adds the least padding
        (the policy bounds it). Finals of one stream may thus be decoded out of
        order; the stream sends them in order (:mod:`live.stream`).
        """
        live = [job for job in self._finals if not job.future.done()]  # withdrawn: gone
        if not live:
            self._finals.clear()
            return []
        first = live[0]
        taken = [first]
        budget = self.options.batch_budget_s * SAMPLE_RATE
        used = len(first.audio)
        limit = min(self.options.max_batch, self.policy.max_batch)
        for job in sorted(live[1:], key=lambda j: abs(len(j.audio) - len(first.audio))):
            if len(taken) >= limit:
                break
            lengths = [len(j.audio) for j in taken] + [len(job.audio)]
            if (job.language == first.language and used + len(job.audio) <= budget
                    and self.policy.fits(lengths)):
                taken.append(job)
                used += len(job.audio)
        chosen = {id(job) for job in taken}
        self._finals = deque(job for job in live if id(job) not in chosen)
        return taken

    def _take_partials(self) -> list[_Partial]:
        taken: list[_Partial] = []
        budget = self.options.partial_budget_s * SAMPLE_RATE
        used = 0
        cost = 0.0
        language = None
        limit = min(self.options.max_batch, self.policy.max_batch)
        model = self.costs["partial"]
        for key in list(self._partials):
            job = self._partials[key]
            if job.is_stale():
                del self._partials[key]
                self.stats.partials_dropped += 1
                continue
            if language is None:
                language = job.language
            if job.language != language or len(taken) >= limit:
                continue
            clip_cost = model.estimate(len(job.audio) / SAMPLE_RATE)
            if taken and (used + len(job.audio) > budget or cost + clip_cost > self.options.partial_call_s
                          or not self.policy.fits([len(j.audio) for j in taken] + [len(job.audio)])):
                continue
            taken.append(self._partials.pop(key))
            used += len(job.audio)
            cost += clip_cost
        return taken

    def _take_polish(self) -> _Polish | None:
        """The oldest polish job still wanted, if no final waits and no utterance is open."""
        while self._polish and self._polish[0].future.done():
            self._polish.popleft()  # withdrawn
        if not self._polish or self._speaking or any(not j.future.done() for j in self._finals):
            return None
        return self._polish.popleft()

    async def _call_engine(self, clips: list[np.ndarray], language: str, hints: list[DecodeHints],
                           kind: str) -> list[Transcript]:
        started = time.monotonic()
        idle = started - self._last_idle_at
        seconds = [len(c) / SAMPLE_RATE for c in clips]
        ok = False
        try:
            results = await asyncio.to_thread(self.engine.transcribe, clips, language, hints=hints, kind=kind)
            ok = True
        finally:
            ended = time.monotonic()
            busy = ended - started
            self._busy_ema = 0.7 * self._busy_ema + 0.3 * (busy / max(busy + idle, 1e-6))
            self._last_idle_at = ended
            if ok and kind == "partial":  # what bounds partial calls and their cadence
                self.costs[kind].add(seconds, busy)
            self.stats.engine_calls += 1
            self.stats.engine_seconds += busy
            self.stats.audio_seconds += sum(seconds)
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(clips))
            log.debug("engine %s: %d clip(s), %.2f s of audio, %.3f s (idle %.3f s before)",
                      kind, len(clips), sum(seconds), busy, idle)
        if len(results) != len(clips):
            raise RuntimeError(f"engine returned {len(results)} results for {len(clips)} clips")
        return results

    async def _run_finals(self, jobs: list[_Final]) -> None:
        try:
            results = await self._call_engine([j.audio for j in jobs], jobs[0].language,
                                              [j.hints for j in jobs], "final")
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
            results = await self._call_engine([j.audio for j in jobs], jobs[0].language,
                                              [j.hints for j in jobs], "partial")
        except asyncio.CancelledError:
            raise
        except Exception:  # task boundary: a failed partial is only a missed update
            log.exception("engine failed on a batch of %d partials", len(jobs))
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.is_stale():
                job.deliver(result)
                self.stats.partials += 1

    async def _run_polish(self, job: _Polish) -> None:
        """One polish window. Its time is not busy time for the partial cadence (it only fills
        time the live jobs left idle), so ``_last_idle_at`` stays where the last live call left it."""
        started = time.monotonic()
        try:
            segments: list[Segment] = await asyncio.to_thread(self.engine.transcribe_long, job.audio,
                                                              job.language, job.hints)
        except asyncio.CancelledError:
            job.future.cancel()
            raise
        except Exception as exc:  # task boundary: the job gets the error, the worker goes on
            log.exception("engine failed on a polish window of %.1f s", len(job.audio) / SAMPLE_RATE)
            if not job.future.done():
                job.future.set_exception(exc)
            return
        finally:
            self.stats.engine_calls += 1
            self.stats.engine_seconds += time.monotonic() - started
            self.stats.audio_seconds += len(job.audio) / SAMPLE_RATE
        if not job.future.done():
            job.future.set_result(segments)
        self.stats.polish += 1
