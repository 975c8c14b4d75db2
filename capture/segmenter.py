"""Streaming VAD segmentation: int16 blocks in, utterance events out.

A :class:`Segmenter` is fed 16 kHz int16 mono blocks of any size and answers
with events:

- :class:`UtteranceStarted` once an utterance has at least ``min_speech_s`` of
  speech (shorter blips are dropped as clicks), with the new
  :class:`~capture.utterance.Utterance`;
- :class:`UtteranceAudio` chunks, streamed while the lecturer still speaks so
  the worker can make partials (the first chunk holds the pre-padding); each
  chunk is appended to the utterance before the event is returned, and the
  event carries that same array;
- :class:`UtterancePaused` when the speech of the open utterance has stopped
  and every sample it would hold if the pause holds has been streamed (the
  padding after the speech is scored silence) and the pause is not yet long
  enough to end it (it needs ``VadOptions.silence_needed_s``, which shrinks as
  the utterance grows, so a pause of more than ``pad_s`` is needed for it to
  come first): the worker may decode the utterance then (early finals). More
  :class:`UtteranceAudio` after it means the speech went on;
- :class:`UtteranceEnded` once the utterance is complete (its ``end`` is set).

The audio of an utterance exists once: the chunks of its ``Utterance``, which
are the arrays of its ``UtteranceAudio`` events. The segmenter lets go of the
utterance when it ends; whoever needs the audio keeps the object.

Invariants: an utterance's audio is exactly samples ``[start, end)`` of the
input, and its chunks are exactly its ``UtteranceAudio`` arrays; utterances never
overlap; an utterance is at most ``max_utterance_s`` long, and when speech
goes on past that, it is cut at the quietest point of the last
``split_search_s`` and the next utterance starts exactly at the cut (nothing
lost). The padding after an utterance stops where the next speech starts, so
an utterance never holds the start of the next one. After the speech stops,
the end event comes at most ``max(pad_s, silence needed)`` (plus one 32 ms VAD
window and the block size) later. Only audio that is certain to belong to the
open utterance is streamed: scored padding after the last speech heard, and
nothing inside the ``split_search_s`` window before the length limit until the
split is decided.

Cost: one Silero call per 32 ms window, about 5 ms of CPU per second of
audio with the ONNX model (see :mod:`capture.vad`); the bookkeeping here is
a few Python operations per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from capture.utterance import Utterance
from capture.vad import SAMPLE_RATE, WINDOW, SileroVad, VadOptions

__all__ = [
    "Event",
    "Segmenter",
    "SpeechModel",
    "UtteranceAudio",
    "UtteranceEnded",
    "UtterancePaused",
    "UtteranceStarted",
]


@dataclass(frozen=True)
class UtteranceStarted:
    """A new utterance: its audio grows with each :class:`UtteranceAudio` that follows."""

    utterance: Utterance

    @property
    def utt(self) -> int:
        return self.utterance.utt

    @property
    def start(self) -> float:
        return self.utterance.start


@dataclass(frozen=True, eq=False)
class UtteranceAudio:
    """``pcm`` is the chunk just appended to utterance ``utt`` (the same array)."""

    utt: int
    pcm: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class UtterancePaused:
    """The open utterance ``utt`` is complete after its first ``samples`` samples if
    the pause that began holds (it ends at ``end``)."""

    utt: int
    samples: int
    end: float


@dataclass(frozen=True)
class UtteranceEnded:
    """``utterance`` (the one :class:`UtteranceStarted` gave) is complete.

    ``split`` is True when the utterance was cut at ``max_utterance_s`` while
    speech went on; the next utterance then starts exactly at this ``end``
    (unless what follows the cut is less than ``min_speech_s`` of speech)."""

    utterance: Utterance
    split: bool = False

    @property
    def utt(self) -> int:
        return self.utterance.utt

    @property
    def end(self) -> float:
        assert self.utterance.end is not None
        return self.utterance.end


Event = UtteranceStarted | UtteranceAudio | UtterancePaused | UtteranceEnded


class SpeechModel(Protocol):
    def __call__(self, window: np.ndarray) -> float: ...


class _Open:
    """Where the utterance being streamed stands (sample positions are absolute);
    its audio is in ``utterance``."""

    def __init__(self, utterance: Utterance, start: int) -> None:
        self.utterance = utterance
        self.utt = utterance.utt
        self.start = start
        self.sent = start
        self.end_target: int | None = None  # decided end, waiting for its audio
        self.paused_at: int | None = None  # ``sent`` when UtterancePaused was last emitted


class _History:
    """Recent samples addressed by absolute index; appending is amortised O(n).

    Views returned by :meth:`get` are only valid until the next :meth:`append`.
    """

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE, dtype=np.int16)
        self._lo = self._hi = 0
        self.start = 0  # absolute index of the oldest sample kept

    def append(self, pcm: np.ndarray) -> None:
        n, size = len(pcm), self._hi - self._lo
        if self._hi + n > len(self._data):
            target = self._data
            if size + n > len(self._data) // 2:
                target = np.zeros(2 * (size + n), dtype=np.int16)
            target[:size] = self._data[self._lo : self._hi]  # numpy copes with overlap
            self._data, self._lo, self._hi = target, 0, size
        self._data[self._hi : self._hi + n] = pcm
        self._hi += n

    def get(self, start: int, length: int) -> np.ndarray:
        i = self._lo + start - self.start
        return self._data[i : i + length]

    def drop_before(self, keep: int) -> None:
        if keep > self.start:
            self._lo += keep - self.start
            self.start = keep


def _quietest_cut(pcm: np.ndarray, first: int, half: int = 400) -> int:
    """The VAD-window boundary (a multiple of ``WINDOW``) in ``[first, first + len(pcm)]``
    around which ``pcm`` (starting at absolute sample ``first``) is quietest, measured
    over 50 ms; among equally quiet boundaries, the middle one of the first run."""
    power = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    points = np.arange(-(-first // WINDOW) * WINDOW, first + len(pcm) + 1, WINDOW)
    if not len(points):
        return first + len(pcm)
    lo = np.clip(points - first - half, 0, len(pcm))
    hi = np.clip(points - first + half, 0, len(pcm))
    energy = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    quiet = np.flatnonzero(energy == energy.min())
    run_end = quiet[0]
    while run_end + 1 < len(points) and energy[run_end + 1] == energy[quiet[0]]:
        run_end += 1
    return int(points[(quiet[0] + run_end) // 2])


class Segmenter:
    """Cuts a 16 kHz int16 stream into utterances with Silero VAD (see module doc).

    ``first_utt`` is the number of the first utterance (a resumed session goes
    on counting); ``time_offset`` is added to every time. ``vad`` defaults to a
    fresh :class:`~capture.vad.SileroVad`; it is stateful, so never share one.
    """

    def __init__(
        self,
        options: VadOptions | None = None,
        *,
        first_utt: int = 0,
        time_offset: float = 0.0,
        vad: SpeechModel | None = None,
    ) -> None:
        self.options = options or VadOptions()
        self._vad = vad if vad is not None else SileroVad(onnx=self.options.onnx)
        self._next_utt = first_utt
        self._offset = time_offset
        self._history = _History()
        self._fed = 0
        self._scored = 0
        self._last_end = 0
        self._onset: int | None = None  # speech onset of the current speech run
        self._speech_end = 0
        self._silence_start: int | None = None
        self._open: _Open | None = None
        self._continues = False  # the candidate continues speech cut at the length limit
        self._flushed = False
        o = self.options
        self._pad = round(o.pad_s * SAMPLE_RATE)
        self._min_speech = round(o.min_speech_s * SAMPLE_RATE)
        self._min_silence = round(o.min_silence_s * SAMPLE_RATE)
        self._max = round(o.max_utterance_s * SAMPLE_RATE)
        self._search = round(o.split_search_s * SAMPLE_RATE)

    @property
    def position_s(self) -> float:
        """Seconds of audio fed so far (without ``time_offset``)."""
        return self._fed / SAMPLE_RATE

    @property
    def vad_cost(self) -> float:
        """CPU seconds the VAD model spent per second of audio, when it measures it."""
        return float(getattr(self._vad, "cost", 0.0))

    def feed(self, block: np.ndarray) -> list[Event]:
        """Add the next samples; returns the events they complete."""
        if self._flushed:
            raise RuntimeError("Segmenter.feed() after flush(): make a new Segmenter")
        block = np.asarray(block)
        if block.dtype != np.int16:
            raise TypeError(f"Segmenter.feed() takes int16 samples, not {block.dtype}")
        self._history.append(block.reshape(-1))
        self._fed += block.size
        events: list[Event] = []
        while self._fed - self._scored >= WINDOW:
            self._score(self._window(self._scored, WINDOW), self._scored + WINDOW, events)
        self._stream(events)
        self._check_pause(events)
        self._trim()
        return events

    def flush(self) -> list[Event]:
        """End of input: score the tail and close whatever is still open."""
        if self._flushed:
            return []
        self._flushed = True
        events: list[Event] = []
        tail = self._fed - self._scored
        if tail:
            window = np.zeros(WINDOW, dtype=np.int16)
            window[:tail] = self._window(self._scored, tail)
            self._score(window, self._fed, events)
        if self._open is not None:
            if self._open.end_target is None:  # still speaking: the onset is the open one's
                self._open.end_target = self._speech_end + self._pad
                self._onset = None
            self._open.end_target = min(self._open.end_target, self._fed)
        self._try_close(events)
        if self._open is None and self._onset is not None:
            if self._speech_end - self._onset >= self._needed_speech():
                self._begin(max(self._onset - self._pad, self._last_end), events)
                self._open.end_target = min(self._speech_end + self._pad, self._fed)
                self._try_close(events)
        return events

    # -- scoring ---------------------------------------------------------

    def _window(self, start: int, length: int) -> np.ndarray:
        return self._history.get(start, length)

    def _score(self, window: np.ndarray, end: int, events: list[Event]) -> None:
        start = self._scored
        prob = self._vad(window)
        self._scored = end
        o = self.options
        if prob >= o.threshold:
            if self._onset is None:
                self._onset = start
            self._speech_end = end
            self._silence_start = None
        elif self._onset is not None:
            if prob < o.neg_threshold:
                if self._silence_start is None:
                    self._silence_start = start
            elif self._silence_start is None:
                self._speech_end = end  # hysteresis: still speaking
        self._decide(events)

    def _decide(self, events: list[Event]) -> None:
        paused = (
            self._silence_start is not None
            and self._scored - self._silence_start >= self._pause_needed()
        )
        opened = self._open
        if opened is not None and opened.end_target is not None and self._onset is not None:
            # Speech came back inside the post-padding (a pause of at least min_silence_s
            # but shorter than pad_s): the padding stops where the new speech starts, so
            # that speech is not swallowed by this utterance and the next one, which
            # starts here, holds it. Audio up to ``sent`` is scored silence (see
            # _safe_end), so nothing streamed is taken back.
            opened.end_target = min(opened.end_target, max(self._onset, opened.sent))
        if opened is not None and opened.end_target is None:
            if paused:
                opened.end_target = min(self._speech_end + self._pad, opened.start + self._max)
                self._onset = None
            elif self._scored - opened.start >= self._max:
                self._limit_reached(events)
        self._try_close(events)
        if self._open is None and self._onset is not None:
            if paused:
                self._onset = None  # a click: too short and followed by a pause
                self._continues = False
            elif self._speech_end - self._onset >= self._needed_speech():
                self._begin(max(self._onset - self._pad, self._last_end), events)

    def _pause_needed(self) -> int:
        """Samples of pause that end the open utterance (shorter the longer it has run);
        without one, the pause that makes a candidate a click."""
        opened = self._open
        if opened is None or self._silence_start is None:
            return self._min_silence
        length = (self._silence_start - opened.start) / SAMPLE_RATE
        return round(self.options.silence_needed_s(length) * SAMPLE_RATE)

    def _needed_speech(self) -> int:
        """Samples of speech that make the candidate an utterance (continuations: any)."""
        return 1 if self._continues else self._min_speech

    def _limit_reached(self, events: list[Event]) -> None:
        opened = self._open
        limit = opened.start + self._max
        if self._silence_start is not None:  # a short pause: end in it
            opened.end_target = min(self._speech_end + self._pad, limit)
            self._onset = None
            return
        lo = limit - self._search
        cut = _quietest_cut(self._window(lo, limit - lo), lo)
        opened.end_target = cut
        self._try_close(events, split=True)
        # What follows the cut starts exactly at it and becomes the next utterance as
        # soon as one VAD window after the cut is speech; a cut at the start of the
        # pause after the last word thus never makes an utterance of silence.
        self._onset = cut
        self._continues = True

    # -- utterances ------------------------------------------------------

    def _begin(self, start: int, events: list[Event]) -> None:
        start = max(start, self._history.start, 0)
        self._open = _Open(Utterance(self._next_utt, self._seconds(start)), start)
        self._continues = False
        self._next_utt += 1
        events.append(UtteranceStarted(self._open.utterance))
        self._stream(events)

    def _safe_end(self) -> int:
        """How far the open utterance's audio is certain to reach.

        Never past the audio the VAD has scored: unscored samples after the last
        speech may be the onset of the next utterance, which cuts the padding short.
        """
        opened = self._open
        if opened.end_target is not None:
            return min(opened.end_target, self._scored)
        reach = min(self._speech_end + self._pad, opened.start + self._max - self._search)
        return min(reach, self._scored)

    def _stream(self, events: list[Event]) -> None:
        opened = self._open
        if opened is None:
            return
        upto = self._safe_end()
        if upto > opened.sent:
            pcm = opened.utterance.append(self._window(opened.sent, upto - opened.sent).copy())
            opened.sent = upto
            events.append(UtteranceAudio(opened.utt, pcm))

    def _check_pause(self, events: list[Event]) -> None:
        """Emit :class:`UtterancePaused` once the would-be utterance is streamed whole."""
        opened = self._open
        if opened is None or opened.end_target is not None or self._silence_start is None:
            return
        candidate = min(self._speech_end + self._pad, opened.start + self._max)
        if opened.sent == candidate and opened.paused_at != opened.sent:
            opened.paused_at = opened.sent
            events.append(UtterancePaused(opened.utt, opened.sent - opened.start, self._seconds(candidate)))

    def _try_close(self, events: list[Event], split: bool = False) -> None:
        opened = self._open
        if opened is None or opened.end_target is None or self._scored < opened.end_target:
            return  # not before its audio is scored: speech there would cut it shorter
        self._stream(events)
        end = opened.end_target
        opened.utterance.finish(self._seconds(end))
        events.append(UtteranceEnded(opened.utterance, split))
        self._last_end = end
        self._open = None

    def _seconds(self, sample: int) -> float:
        return sample / SAMPLE_RATE + self._offset

    def _trim(self) -> None:
        """Drop buffered samples that no utterance can need any more."""
        if self._open is not None:
            keep = self._open.sent
        elif self._onset is not None:
            keep = self._onset - self._pad
        else:
            keep = self._scored - self._pad
        self._history.drop_before(min(max(keep, self._last_end), self._scored))
