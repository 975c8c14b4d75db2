"""Who is speaking: online speaker labels from voice embeddings, per session.

A :class:`SpeakerLabeller` is told, in utterance order, each utterance's
voice embedding (a unit vector from :mod:`capture.voices`) and its length,
and answers ``lecturer`` or ``audience-N``. It keeps one *voice* per speaker
heard: the duration-weighted sum of its embeddings, the seconds it spoke and
how similar its own utterances are to it. All of it lives in memory for one
run; nothing of it is written anywhere (voice embeddings are biometrics).

The rules, none of them tuned to one recording:

- An utterance belongs to the voice it is most similar to (cosine) if that
  similarity is typical of the voice: no lower than its own utterances'
  similarities are expected to reach. That is their mean less
  ``spread + sqrt(2 ln n)`` standard deviations (never less than
  ``min_spread``), n the utterances seen: the lowest of n draws sinks about
  ``sqrt(2 ln n)`` deviations, so a long lecture of one voice does not breed
  phantom voices from its own odd utterances. The threshold stays within
  ``[floor, ceiling]``. Until a voice has ``settled`` utterances, the
  session's best-known voice calibrates it: its threshold, lowered by what a
  centroid of one utterance loses (``mean - mean**2``: a single utterance is
  itself only ``mean`` alike to its voice); before any voice is settled,
  ``prior`` (low) stands in. Otherwise the utterance is a new voice.
- Two voices whose centroids grow as alike as a settled voice's own
  utterances are one voice split early: they merge (the one with more speech
  keeps its label). Centroids are steadier than utterances, so the merge
  never uses the allowance of a young voice.
- Hysteresis: the previous utterance's voice keeps the next one unless
  another voice is closer by ``switch_margin``; and the lecturer (the voice
  with the most speech so far) changes only once another voice has spoken
  ``lecturer_margin_s`` seconds more.
- An utterance shorter than ``short_s`` (its embedding is unreliable) never
  founds a voice: it takes its neighbour's label unless it is clearly
  another known voice. One without an embedding (too little voiced audio)
  takes its neighbour's label.

Offline, with the whole lecture at hand (``notsound polish``),
:func:`label_lecture` makes two passes: the first meets every voice, and
the one with the most speech over the lecture becomes the lecturer (no
margin); the second labels each utterance with all of that known. Audience
numbers then follow the order the voices first speak in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from library.folder import LECTURER

__all__ = ["LabelOptions", "SpeakerLabeller", "label_lecture"]


@dataclass(frozen=True)
class LabelOptions:
    """How voices are told apart; see the module docstring.

    Attributes:
        short_s: utterances shorter than this follow their neighbour.
        prior: similarity a voice with fewer than ``settled`` utterances needs.
        settled: utterances after which a voice's own spread sets its threshold.
        spread: standard deviations under its mean similarity, besides the
            ``sqrt(2 ln n)`` of n utterances, at which a voice still accepts one.
        min_spread: the least standard deviation assumed (a voice whose
            utterances were all alike still varies).
        floor / ceiling: bounds of a voice's threshold.
        switch_margin: how much closer another voice must be than the
            previous utterance's voice to take the next utterance.
        lecturer_margin_s: speech seconds by which another voice must lead
            the lecturer to become the lecturer.
    """

    short_s: float = 1.0
    prior: float = 0.6
    settled: int = 3
    spread: float = 1.5
    min_spread: float = 0.025
    floor: float = 0.6
    ceiling: float = 0.86
    switch_margin: float = 0.03
    lecturer_margin_s: float = 30.0


@dataclass(eq=False)
class _Voice:
    """One speaker heard in this run: the running sum of its embeddings and its statistics."""

    number: int
    total: np.ndarray = field(repr=False)
    seconds: float = 0.0
    count: int = 0  # utterances of at least short_s whose similarity is in the statistics
    sim_sum: float = 0.0
    sim_sq: float = 0.0
    audience: int = 0  # its audience-N once it was labelled audience

    @property
    def centroid(self) -> np.ndarray:
        return self.total / max(float(np.linalg.norm(self.total)), 1e-9)

    @property
    def mean(self) -> float:
        return self.sim_sum / self.count if self.count else 0.0

    def own_threshold(self, options: LabelOptions) -> float:
        """The threshold its own utterances set (a settled voice only)."""
        mean = self.mean
        std = math.sqrt(max(0.0, self.sim_sq / self.count - mean * mean))
        level = mean - (options.spread + math.sqrt(2 * math.log(self.count))) * max(std, options.min_spread)
        return min(options.ceiling, max(options.floor, level))

    def threshold(self, options: LabelOptions, reference: _Voice | None = None) -> float:
        if self.count >= options.settled:
            return self.own_threshold(options)
        if reference is None:
            return options.prior
        level = reference.own_threshold(options) - (reference.mean - reference.mean ** 2)
        return min(options.ceiling, max(options.floor, level))

    def add(self, embedding: np.ndarray, seconds: float, similarity: float | None) -> None:
        self.total = self.total + embedding * seconds
        self.seconds += seconds
        if similarity is not None:
            self.count += 1
            self.sim_sum += similarity
            self.sim_sq += similarity * similarity


class SpeakerLabeller:
    """Labels a session's utterances online, in order: see the module docstring.

    ``first_audience`` is the number the first audience voice gets (a resumed
    session continues after the labels its journal already holds).
    """

    def __init__(self, options: LabelOptions | None = None, *, first_audience: int = 1):
        self.options = options or LabelOptions()
        self._voices: list[_Voice] = []
        self._previous: _Voice | None = None
        self._lecturer: _Voice | None = None
        self._next_audience = max(1, first_audience)

    @property
    def voices(self) -> int:
        """Speakers heard so far."""
        return len(self._voices)

    def label(self, embedding: np.ndarray | None, seconds: float) -> str | None:
        """The label of the next utterance (``seconds`` long); ``None`` before any voice is known."""
        voice = self._assign(embedding, max(0.0, seconds))
        if voice is None:
            return None
        voice = self._merge(voice)
        self._previous = voice
        self._elect()
        return self._name(voice)

    def settle(self) -> None:
        """The voice with the most speech so far becomes the lecturer, margin or not (all was heard)."""
        if self._voices:
            self._lecturer = max(self._voices, key=lambda v: v.seconds)

    def _assign(self, embedding: np.ndarray | None, seconds: float) -> _Voice | None:
        options = self.options
        if embedding is None:
            return self._previous
        scores = [(float(voice.centroid @ embedding), voice) for voice in self._voices]
        best_sim, best = max(scores, key=lambda s: s[0], default=(-1.0, None))
        previous = self._previous
        if previous is not None and best is not previous:
            prev_sim = float(previous.centroid @ embedding)
            if prev_sim >= self._threshold(previous) and best_sim - prev_sim < options.switch_margin:
                best_sim, best = prev_sim, previous
        if seconds < options.short_s:
            if best is not None and best is not previous and best_sim >= self._threshold(best):
                previous = best  # clearly another known voice
            if previous is not None:
                previous.add(embedding, seconds, None)
            return previous
        if best is None or best_sim < self._threshold(best):
            best = _Voice(len(self._voices), np.zeros_like(embedding, dtype=np.float64))
            self._voices.append(best)
            best.add(embedding, seconds, None)
            return best
        best.add(embedding, seconds, best_sim)
        return best

    def _reference(self) -> _Voice | None:
        settled = [v for v in self._voices if v.count >= self.options.settled]
        return max(settled, key=lambda v: v.count, default=None)

    def _threshold(self, voice: _Voice) -> float:
        return voice.threshold(self.options, self._reference())

    def _merge(self, voice: _Voice) -> _Voice:
        """Fold ``voice`` and any voice as alike as its own utterances into the one with more speech."""
        reference = self._reference()
        floor = reference.own_threshold(self.options) if reference is not None else self.options.prior
        for other in [v for v in self._voices if v is not voice]:
            similarity = float(voice.centroid @ other.centroid)
            if similarity < max(floor, self._threshold(voice), self._threshold(other)):
                continue
            keep, gone = (voice, other) if voice.seconds >= other.seconds else (other, voice)
            keep.total = keep.total + gone.total
            keep.seconds += gone.seconds
            self._voices.remove(gone)
            if self._lecturer is gone:
                self._lecturer = keep
            voice = keep
        return voice

    def _elect(self) -> None:
        """The voice with the most speech is the lecturer, with a margin before it changes."""
        leader = max(self._voices, key=lambda v: v.seconds)
        current = self._lecturer
        if current is None or leader.seconds > current.seconds + self.options.lecturer_margin_s:
            self._lecturer = leader

    def _name(self, voice: _Voice) -> str:
        if voice is self._lecturer:
            return LECTURER
        if not voice.audience:
            voice.audience = self._next_audience
            self._next_audience += 1
        return f"audience-{voice.audience}"


def label_lecture(utterances: Sequence[tuple[np.ndarray | None, float]],
                  options: LabelOptions | None = None) -> list[str | None]:
    """The labels of a whole lecture's utterances, (embedding, seconds) in order: two passes,
    see the module docstring."""
    labeller = SpeakerLabeller(options)
    for embedding, seconds in utterances:
        labeller.label(embedding, seconds)
    labeller.settle()
    labels = [labeller.label(embedding, seconds) for embedding, seconds in utterances]
    numbers: dict[str, str] = {}
    for label in labels:
        if label is not None and label != LECTURER and label not in numbers:
            numbers[label] = f"audience-{len(numbers) + 1}"
    return [numbers.get(label, label) if label else label for label in labels]
