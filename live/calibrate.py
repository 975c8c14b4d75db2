"""Measurements the scheduler decides by: engine cost per call and the worth of batching.

Nothing here is tuned to one machine. :class:`CostModel` learns what an engine
call of a given length costs on the machine the worker runs on, while it runs;
:func:`calibrate_batching` times the engine at start-up on a few equal clips,
one at a time and batched, so that the scheduler batches only where a batched
call has been seen to be faster (on 2 CPU cores, 16 cores, or a GPU alike).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models import SAMPLE_RATE, Engine

__all__ = ["CostModel", "BatchPolicy", "calibrate_batching", "NO_BATCHING", "ANY_BATCH"]

log = logging.getLogger(__name__)


class CostModel:
    """Engine seconds of one clip as ``a + b * audio_seconds``, fitted as calls come in.

    An exponentially weighted least-squares fit over (clip seconds, engine
    seconds per clip) of recent calls: whisper pads every clip to a 30 s
    window (cost nearly flat in length), SenseVoice's cost grows with length;
    one model covers both. ``decay`` is the weight one call's sample loses per
    later call.
    """

    def __init__(self, decay: float = 0.9):
        self.decay = decay
        self._n = self._sx = self._sy = self._sxx = self._sxy = 0.0

    @property
    def known(self) -> bool:
        return self._n > 0.0

    def add(self, clip_seconds: list[float], engine_seconds: float) -> None:
        """One engine call of ``clip_seconds`` clips that took ``engine_seconds``."""
        if not clip_seconds:
            return
        per_clip = engine_seconds / len(clip_seconds)
        for x in clip_seconds:
            d = self.decay
            self._n = d * self._n + 1.0
            self._sx = d * self._sx + x
            self._sy = d * self._sy + per_clip
            self._sxx = d * self._sxx + x * x
            self._sxy = d * self._sxy + x * per_clip

    def estimate(self, seconds: float) -> float:
        """Engine seconds a clip of ``seconds`` is expected to take (0 before any call)."""
        if not self._n:
            return 0.0
        mean_x, mean_y = self._sx / self._n, self._sy / self._n
        var = self._sxx / self._n - mean_x * mean_x
        slope = (self._sxy / self._n - mean_x * mean_y) / var if var > 1e-6 else 0.0
        # One length seen so far, or cost flat in length: the mean cost of a call.
        return max(mean_y + max(slope, 0.0) * (seconds - mean_x), 0.0)


@dataclass(frozen=True)
class BatchPolicy:
    """Which clips may share an engine call, from a cost model measured on this machine.

    An engine call of ``n`` clips padded to the longest, ``L`` seconds, costs
    about ``overhead_s + per_second_s * n * L``; the same clips one at a time
    cost ``n * overhead_s + per_second_s * (sum of their lengths)``. Clips share
    a call only where the model says it is at least ``MIN_GAIN`` cheaper:
    batching pays for short clips (the fixed cost of a call is amortised) and
    not where padding would eat the saving.

    Attributes:
        gain: throughput of a batched call over the same clips one at a time,
            measured at start on equal clips (1.0: batching buys nothing).
        overhead_s: fixed engine seconds of one call.
        per_second_s: engine seconds per second of (padded) audio.
        max_batch: most clips in one call (1: never batch).
    """

    gain: float
    overhead_s: float
    per_second_s: float
    max_batch: int

    def fits(self, lengths: list[int]) -> bool:
        """Whether clips of these lengths (samples) may share one call."""
        if len(lengths) <= 1:
            return True
        if len(lengths) > self.max_batch:
            return False
        if self.per_second_s <= 0.0:  # no cost model: anything the limits allow
            return True
        n, longest, total = len(lengths), max(lengths) / SAMPLE_RATE, sum(lengths) / SAMPLE_RATE
        batched = self.overhead_s + self.per_second_s * n * longest
        single = n * self.overhead_s + self.per_second_s * total
        return batched * MIN_GAIN <= single

    def describe(self) -> dict:
        """For ``/health`` and the benchmark."""
        return {"gain": round(self.gain, 3), "max_batch": self.max_batch,
                "call_overhead_s": round(self.overhead_s, 4), "per_audio_second_s": round(self.per_second_s, 4)}


#: batching everything the option limits allow (engines that do not pad, e.g. the fake one)
ANY_BATCH = BatchPolicy(gain=1.0, overhead_s=0.0, per_second_s=0.0, max_batch=1_000_000)
NO_BATCHING = BatchPolicy(gain=1.0, overhead_s=0.0, per_second_s=0.0, max_batch=1)

#: batching must win by this much (in the calibration, and as predicted for a batch) to be used
MIN_GAIN = 1.05


def calibrate_batching(engine: Engine, max_batch: int, clips: int = 4, clip_s: float = 3.0,
                       rounds: int = 2, clock: Callable[[], float] = time.perf_counter) -> BatchPolicy:
    """Time ``clips`` equal clips one at a time and in one call, and fit the cost model.

    With ``S`` for the clips one at a time and ``B`` for one call of all of
    them, ``overhead = (S - B) / (clips - 1)`` and ``per_second = (B -
    overhead) / (clips * clip_s)``. Runs in the worker's start-up (a few
    engine seconds). Engines whose ``pads_batches`` is False decode a batch
    clip by clip or do not pad, so they keep :data:`ANY_BATCH` unmeasured.
    """
    if max_batch <= 1:
        return NO_BATCHING
    if not engine.pads_batches:
        return ANY_BATCH
    n = max(2, min(clips, max_batch))
    rng = np.random.default_rng(0)
    audio = [(rng.standard_normal(int(clip_s * SAMPLE_RATE)) * 300).astype(np.int16) for _ in range(n)]
    single = batched = float("inf")
    for _ in range(rounds):  # best of: the first round also warms caches
        t0 = clock()
        for clip in audio:
            engine.transcribe([clip], "auto", kind="final")
        t1 = clock()
        engine.transcribe(audio, "auto", kind="final")
        t2 = clock()
        single, batched = min(single, t1 - t0), min(batched, t2 - t1)
    gain = single / batched if batched > 0 else 1.0
    overhead = max(0.0, (single - batched) / (n - 1))
    per_second = max(batched - overhead, 1e-9) / (n * clip_s)
    if gain < MIN_GAIN:
        policy = BatchPolicy(gain=gain, overhead_s=overhead, per_second_s=per_second, max_batch=1)
    else:
        policy = BatchPolicy(gain=gain, overhead_s=overhead, per_second_s=per_second, max_batch=max_batch)
    log.info("batching calibration: %d x %.1f s clips one at a time %.3f s, batched %.3f s "
             "(gain %.2fx; a call costs %.3f s + %.3f s per audio second): %s", n, clip_s, single, batched,
             gain, overhead, per_second, "batching off" if policy.max_batch == 1 else "batching where it pays")
    return policy
