"""``notsound polish SESSION``: the recording transcribed again after class, for accuracy.

The live journal is decoded an utterance at a time for latency; the polish
decodes windows of up to ``window_s`` seconds of the recording across
utterance borders (:meth:`models.Engine.transcribe_long`: beam search, the
previous window's text as the prompt, the deck's terms as hotwords, word
times where the engine gives them). The live finals say where the speech is:
a window runs from a caption's start to the end of the last caption that
still fits, so long silences are never decoded. Each polished caption gets
the deck's term correction and slide tag as it would live.

The result is the polished layer (``library.polished``); captions of the
journal that no recording covers (a run with ``--no-record``, a part cut
short by a crash) are carried into it as they are, so the layer is whole.
A killed polish continues after its last finished window; a second polish
of an unchanged session with the same engine does nothing.

With a speaker encoder (``--speakers``, as ``live`` has it) every polished
line is labelled ``lecturer`` or ``audience-N`` from its audio, over the
whole lecture at once (:func:`capture.speakers.label_lecture`: every line's
embedding first, then the labels, the lecturer being the voice with the
most speech in the lecture). A line no recording holds takes its
neighbour's label. The embeddings live in memory only, as live.

The windows are decoded by a :class:`WindowDecoder`: an engine on this machine
(:class:`LocalDecoder`), or a shared worker (``notsound.polish_remote``), with
the same work file, lock and progress either way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from capture.speakers import label_lecture
from capture.voices import Encoder
from common.audio import SAMPLE_RATE
from common.errors import EXIT_USAGE, NotSoundError
from library.folder import (
    POLISHED,
    TRANSCRIPT,
    Final,
    PolishWork,
    RecordingPart,
    decode_final,
    encode_polished,
    fmt_clock,
    polish_lock,
    read_finals,
    read_meta,
    recording_parts,
    write_meta,
)
from library.opus import RecordingReadError, read_part
from models import DecodeHints, Engine, Segment
from wire.protocol import Caption

from .deck import LiveDeck

__all__ = ["PolishError", "PolishResult", "Window", "WindowDecoder", "LocalDecoder", "plan_windows",
           "polish_session"]

log = logging.getLogger(__name__)

#: seconds of audio kept before a window's first caption and after its last
MARGIN_S = 0.3
#: characters of the previous window's text given as the prompt
CONTEXT_CHARS = 400


class PolishError(NotSoundError):
    """The session cannot be polished; the message says why."""

    exit_code = EXIT_USAGE


class WindowDecoder(Protocol):
    """What decodes a polish's windows."""

    def identity(self) -> dict[str, Any]:
        """Engine, model and beam: part of the fingerprint that tells a finished polish."""

    def decode(self, audio: np.ndarray, offset: float, language: str, hints: DecodeHints) -> list[Segment]:
        """The segments of one window that starts ``offset`` seconds into the session;
        times in seconds into the window."""


class LocalDecoder:
    """An engine on this machine (:meth:`~models.Engine.transcribe_long`)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def identity(self) -> dict[str, Any]:
        return {"engine": self.engine.name, "model": self.engine.model_ref, "beam": self.engine.options.beam_size}

    def decode(self, audio: np.ndarray, offset: float, language: str, hints: DecodeHints) -> list[Segment]:
        return self.engine.transcribe_long(audio, language, hints)


@dataclass(frozen=True)
class Window:
    """One stretch of one part decoded at once; times in seconds into the part."""

    part: int
    start: float
    end: float


@dataclass
class PolishResult:
    """What a polish did: ``windows`` decoded now (0 when it was done already), of ``total``."""

    path: Path
    windows: int = 0
    total: int = 0
    audio_s: float = 0.0
    carried: int = 0
    already: bool = False


def _part_finals(finals: list[Final], parts: list[RecordingPart], lengths: list[float]) -> list[list[Final]]:
    """The finals each part's audio holds whole (by session time); the rest are in none."""
    out: list[list[Final]] = [[] for _ in parts]
    for final in finals:
        for index in range(len(parts) - 1, -1, -1):
            part = parts[index]
            if part.offset <= final.start:
                if final.end <= part.offset + lengths[index] + MARGIN_S:
                    out[index].append(final)
                break
    return out


def plan_windows(finals: list[Final], parts: list[RecordingPart], lengths: list[float],
                 window_s: float) -> tuple[list[Window], list[Final]]:
    """The windows to decode, and the finals no recording holds (carried as they are)."""
    windows: list[Window] = []
    held = _part_finals(finals, parts, lengths)
    for index, (part, in_part) in enumerate(zip(parts, held, strict=True)):
        start = end = None
        for final in sorted(in_part, key=lambda f: f.start):
            f_start, f_end = final.start - part.offset, final.end - part.offset
            if start is not None and f_end - start > window_s:
                windows.append(Window(index, start, end))
                start = None
            if start is None:
                start = max(0.0, f_start - MARGIN_S)
            end = min(lengths[index], f_end + MARGIN_S)
        if start is not None:
            windows.append(Window(index, start, end))
    covered = {id(f) for part in held for f in part}
    return windows, [f for f in finals if id(f) not in covered]


def _fingerprint(parts: list[RecordingPart], decoder: WindowDecoder, window_s: float, journal: Path,
                 speakers: bool) -> dict:
    return {"parts": [[p.path.name, p.path.stat().st_size] for p in parts],
            "journal": journal.stat().st_size if journal.exists() else 0,
            **decoder.identity(), "window_s": window_s, **({"speakers": True} if speakers else {})}


def _finals_of(segments: list[Segment], base: float, window: Window, first_utt: int,
               deck: LiveDeck | None) -> list[bytes]:
    lines = []
    for number, seg in enumerate(segments, start=first_utt):
        start = base + window.start + max(0.0, seg.start)
        end = base + window.start + min(window.end - window.start, max(seg.end, seg.start))
        caption = Caption(number, round(start, 3), round(end, 3), seg.text, seg.lang)
        final = deck.annotate(caption)[1] if deck is not None else Final(
            caption.utt, caption.start, caption.end, caption.text, caption.lang)
        words = [(w, base + window.start + s, base + window.start + e) for w, s, e in seg.words]
        lines.append(encode_polished(final, words))
    return lines


def _load_parts(parts: list[RecordingPart], notify: Callable[[str], None]) -> list[np.ndarray]:
    audio = []
    for part in parts:
        try:
            audio.append(read_part(part.path))
        except RecordingReadError as exc:
            notify(f"{exc}: its captions keep their live text")
            audio.append(np.zeros(0, dtype=np.int16))
    return audio


def _check_length(finals: list[Final], parts: list[RecordingPart], lengths: list[float],
                  notify: Callable[[str], None]) -> None:
    recorded = parts[-1].offset + lengths[-1]
    said = max((f.end for f in finals), default=0.0)
    if said > recorded + 1.0:
        notify(f"the recording ends at {fmt_clock(recorded)} but the captions go on to {fmt_clock(said)}: "
               "the captions it does not hold keep their live text")


def polish_session(folder: Path, engine: Engine | WindowDecoder, *, deck: LiveDeck | None = None, window_s: float = 28.0,
                   notify: Callable[[str], None] = lambda text: None,
                   progress: Callable[[float, float], None] = lambda done, total: None,
                   speakers: Callable[[], Encoder] | None = None) -> PolishResult:
    """Write the polished layer of ``folder`` with ``engine`` (or a decoder); see the module docstring.

    ``progress(done_s, total_s)`` follows the audio decoded; ``speakers`` builds the
    voice encoder that labels the lines (``None``: no labels). Raises :class:`PolishError`
    for a session without a recording, :class:`~library.folder.PolishBusyError` while
    another polish of it runs.
    """
    parts = recording_parts(folder)
    if not parts:
        raise PolishError(f"{folder} has no recording (captioned with --no-record, or before recordings "
                          "were kept): there is nothing to polish")
    decoder = LocalDecoder(engine) if isinstance(engine, Engine) else engine
    with polish_lock(folder):
        fingerprint = _fingerprint(parts, decoder, window_s, folder / TRANSCRIPT, speakers is not None)
        if read_meta(folder).get("polished") == fingerprint and (folder / POLISHED).is_file():
            return PolishResult(folder / POLISHED, already=True)
        audio = _load_parts(parts, notify)
        lengths = [len(a) / SAMPLE_RATE for a in audio]
        finals = [f for f in read_finals(folder / TRANSCRIPT) if f.text]
        _check_length(finals, parts, lengths, notify)
        windows, carried = plan_windows(finals, parts, lengths, window_s)
        result = PolishResult(folder / POLISHED, total=len(windows), carried=len(carried),
                              audio_s=sum(w.end - w.start for w in windows))
        work = PolishWork(folder, fingerprint)
        language = str(read_meta(folder).get("language") or "auto")
        vocabulary = deck.vocabulary if deck is not None else ()
        done_s = sum(w.end - w.start for w in windows[:work.done])
        progress(done_s, result.audio_s)
        context = _text_tail(work.lines)
        for window in windows[work.done:]:
            clip = audio[window.part][round(window.start * SAMPLE_RATE):round(window.end * SAMPLE_RATE)]
            segments = decoder.decode(clip, parts[window.part].offset + window.start, language,
                                      DecodeHints(context, vocabulary))
            lines = _finals_of(segments, parts[window.part].offset, window, len(work.lines), deck)
            work.add_window(lines)
            context = _text_tail(work.lines)
            done_s += window.end - window.start
            result.windows += 1
            progress(done_s, result.audio_s)
        items = _merged(work.lines, carried)
        if speakers is not None:
            items = _labelled(items, audio, parts, speakers, notify)
        work.finish([encode_polished(final, words) for final, words in items])
        write_meta(folder, polished=fingerprint)
    return result


def _merged(lines: list[bytes], carried: list[Final]) -> list[tuple[Final, list]]:
    """The polished lines and the carried finals in time order, numbered from 0, with their words."""
    items: list[tuple[Final, list]] = [(f, []) for f in carried]
    for line in lines:
        obj = json.loads(line)
        final = decode_final(obj)
        if final is not None:
            items.append((final, [tuple(w) for w in obj.get("words", ())]))
    items.sort(key=lambda item: (item[0].start, item[0].end))
    return [(dataclasses.replace(final, utt=number), words) for number, (final, words) in enumerate(items)]


def _labelled(items: list[tuple[Final, list]], audio: list[np.ndarray], parts: list[RecordingPart],
              speakers: Callable[[], Encoder], notify: Callable[[str], None]) -> list[tuple[Final, list]]:
    """``items`` with each line's speaker from its audio (lines without text get none)."""
    try:
        encoder = speakers()
    except (ImportError, OSError, RuntimeError) as exc:
        notify(f"speaker labels off: the speaker model did not load: {exc}")
        return items
    said = [final for final, _ in items if final.text.strip()]
    clips = [_clip(final, audio, parts) for final in said]
    labels = label_lecture([(encoder.embed(clip) if len(clip) else None, final.end - final.start)
                            for final, clip in zip(said, clips, strict=True)])
    speaker = {id(final): label or "" for final, label in zip(said, labels, strict=True)}
    return [(dataclasses.replace(final, speaker=speaker.get(id(final), "")), words) for final, words in items]


def _clip(final: Final, audio: list[np.ndarray], parts: list[RecordingPart]) -> np.ndarray:
    """The recorded audio of ``final`` (empty where no part holds it)."""
    for index in range(len(parts) - 1, -1, -1):
        if parts[index].offset <= final.start:
            start = final.start - parts[index].offset
            return audio[index][round(start * SAMPLE_RATE):round((final.end - parts[index].offset) * SAMPLE_RATE)]
    return np.zeros(0, dtype=np.int16)


def _text_tail(lines: list[bytes]) -> str:
    text = " ".join(json.loads(line).get("text", "") for line in lines[-8:])
    return text[-CONTEXT_CHARS:]
