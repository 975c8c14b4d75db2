"""The polish jobs of one stream (feature ``polish``): the rules :class:`live.stream.StreamCore` applies.

A job is opened by ``polish``, takes the audio frames that follow, and is
closed by ``polish_end``, which hands its window to the engine at the lowest
priority; the decode's outcome is the job's one answer, ``polished`` or an
``error`` naming the job. The bounds are the protocol's: at most
``MAX_POLISH_JOBS`` jobs owed, ``MAX_POLISH_S`` seconds in ``MAX_POLISH_FRAMES``
frames a window. No clock: polish audio is bounded by the jobs owed, not by
the real-time allowance of live audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from models import DecodeHints, Segment
from wire.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_OVERLOADED,
    CLOSE_UTTERANCE_TOO_LONG,
    MAX_POLISH_FRAMES,
    MAX_POLISH_JOBS,
    MAX_POLISH_S,
    MAX_TEXT_FRAME_BYTES,
    SAMPLE_RATE,
    Error,
    Message,
    Polish,
    Polished,
    PolishEnd,
    PolishSegment,
    ProtocolError,
    decode_worker,
    encode,
)

from .actions import CancelPolish, SubmitPolish

__all__ = ["PolishJobs"]


@dataclass
class _Window:
    """The open polish job: its request and its audio so far."""

    request: Polish
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


class PolishJobs:
    """The open polish job and the ones decoding, under the decode numbers ``ids`` hands out."""

    def __init__(self, ids: Iterator[int]):
        self._ids = ids
        self.open: _Window | None = None
        self.decoding: dict[int, Polish] = {}  # by decode number

    @property
    def owed(self) -> int:
        """Jobs owed an answer: the open one and those decoding."""
        return len(self.decoding) + (self.open is not None)

    def begin(self, msg: Polish, *, utterance_open: bool, draining: bool) -> None:
        if utterance_open:
            raise ProtocolError(f"polish job {msg.job} while an utterance is open", code="utterance_open")
        if self.open is not None:
            raise ProtocolError(f"polish job {msg.job} while job {self.open.request.job} is open",
                                code="polish_open")
        if draining:
            raise ProtocolError("worker is shutting down", code="shutting_down", close_code=CLOSE_GOING_AWAY)
        if any(job.job == msg.job for job in self.decoding.values()):
            raise ProtocolError(f"polish job {msg.job} is owed already", code="duplicate_job")
        if self.owed >= MAX_POLISH_JOBS:
            raise ProtocolError(f"more than {MAX_POLISH_JOBS} polish jobs owed on one connection",
                                code="too_many_jobs", close_code=CLOSE_OVERLOADED)
        self.open = _Window(msg)

    def audio(self, pcm: np.ndarray) -> None:
        window = self.open
        assert window is not None
        if window.samples + len(pcm) > MAX_POLISH_S * SAMPLE_RATE or len(window.chunks) >= MAX_POLISH_FRAMES:
            raise ProtocolError(f"polish job {window.request.job} is longer than {MAX_POLISH_S:g} s "
                                f"or {MAX_POLISH_FRAMES} frames", code="window_too_long",
                                close_code=CLOSE_UTTERANCE_TOO_LONG)
        window.chunks.append(pcm)
        window.samples += len(pcm)

    def end(self, msg: PolishEnd) -> SubmitPolish | Polished:
        """The decode to start, or at once the answer of a job without audio."""
        window = self.open
        if window is None or window.request.job != msg.job:
            raise ProtocolError(f"polish_end of {msg.job}, which is not the open polish job", code="not_open")
        self.open = None
        request = window.request
        if not window.samples:
            return Polished(job=request.job, offset=request.offset)
        number = next(self._ids)
        self.decoding[number] = request
        return SubmitPolish(number, window.audio(), request.language,
                            DecodeHints(context=request.context, vocabulary=request.vocabulary))

    def answer(self, number: int, segments: list[Segment]) -> Message | None:
        """The message that answers decode ``number`` (None: not owed, e.g. withdrawn)."""
        request = self.decoding.pop(number, None)
        if request is None:
            return None
        parts = tuple(PolishSegment(max(0.0, s.start), max(0.0, s.start, s.end), s.text, s.lang,
                                    tuple((w, max(0.0, a), max(0.0, a, b)) for w, a, b in s.words))
                      for s in segments)
        answer = Polished(job=request.job, offset=request.offset, segments=parts)
        if _fits(answer):
            return answer
        plain = Polished(job=request.job, offset=request.offset,
                         segments=tuple(PolishSegment(s.start, s.end, s.text, s.lang) for s in parts))
        if _fits(plain):  # the words are what makes an answer long: the text goes without them
            return plain
        return Error(code="result_too_large", message=f"the text of polish job {request.job} is over "
                     f"{MAX_TEXT_FRAME_BYTES} bytes", job=request.job)

    def failed(self, number: int, reason: str) -> Error | None:
        request = self.decoding.pop(number, None)
        if request is None:
            return None
        return Error(code="polish_failed", message=f"engine failed on polish job {request.job}: {reason}"[:4096],
                     job=request.job)

    def withdraw(self, numbers: set[int]) -> list[CancelPolish]:
        """Stop waiting for the decodes ``numbers`` (a drain that gave up)."""
        cancels = [CancelPolish(n) for n in self.decoding if n in numbers]
        for cancel in cancels:
            del self.decoding[cancel.job]
        return cancels


def _fits(message: Polished) -> bool:
    """Whether a client reads ``message``: under the frame limit, and within the protocol's counts."""
    try:
        decode_worker(encode(message))
    except ProtocolError:
        return False
    return True
