"""The journal line: :class:`Final`, its codec and the tolerant incremental reader.

Part of the session-folder format; import these names from
:mod:`library.folder`. A :class:`Final` is the wire's
:class:`~wire.protocol.Caption` plus ``raw``, ``slide`` and ``speaker``, and its
line is written by the wire's encoder (the final message, byte for byte, then
those fields when set). The rules for reading are in :mod:`library.folder`'s
docstring.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.protocol import Caption, encode_caption

__all__ = ["TRANSCRIPT", "MAX_LINE_BYTES", "LECTURER", "Final", "speaker_name", "as_final", "encode_final", "decode_final",
           "TranscriptReader", "read_finals"]

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript.jsonl"
#: longest journal line read; a longer one is skipped as unreadable
MAX_LINE_BYTES = 1 << 20
_READ_CHUNK = 1 << 20
#: the speaker label of the lecture's main voice; every other voice is ``audience-N``
LECTURER = "lecturer"
_SPEAKER = re.compile(r"lecturer|audience-[1-9][0-9]{0,5}")


@dataclass(frozen=True)
class Final(Caption):
    """One final caption as the journal stores it: the wire caption, checked, plus three fields.

    Attributes:
        utt: utterance number, increasing within a session (non-negative).
        start: seconds since the session began when the utterance started.
        end: seconds when it ended; clamped up to ``start`` if earlier.
        text: caption text.
        lang: language code ("en", "zh", ...), may be empty.
        emotion: speaker emotion label where the engine gives one.
        events: audio events heard ("BGM", "Laughter", ...).
        raw: the engine's text before correction; empty when not corrected.
        slide: the slide on screen while it was said, when known.
        speaker: ``lecturer`` or ``audience-N`` (the capture side's speaker label);
            empty when not labelled.
    """

    raw: str = ""
    slide: int | None = None
    speaker: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.utt, bool) or not isinstance(self.utt, int) or self.utt < 0:
            raise ValueError(f"utt must be a non-negative integer, not {self.utt!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        if self.end < self.start:
            object.__setattr__(self, "end", self.start)
        if not isinstance(self.events, tuple):
            object.__setattr__(self, "events", tuple(self.events))
        if self.speaker and not _SPEAKER.fullmatch(self.speaker):
            raise ValueError(f"speaker must be {LECTURER!r} or 'audience-N', not {self.speaker!r}")

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def audience(self) -> bool:
        """Said by someone other than the lecturer (a question from the room)."""
        return self.speaker.startswith("audience-")

    def to_dict(self) -> dict[str, Any]:
        """The wire final's object, then ``raw``, ``slide`` and ``speaker`` when set."""
        obj = super().to_dict()
        if self.raw:
            obj["raw"] = self.raw
        if self.slide is not None:
            obj["slide"] = self.slide
        if self.speaker:
            obj["speaker"] = self.speaker
        return obj


def speaker_name(speaker: str) -> str:
    """A label as people read it: ``Lecturer``, ``Audience 2``; empty for no label."""
    if not speaker:
        return ""
    word, _, number = speaker.partition("-")
    return f"{word.capitalize()} {number}".strip()


def as_final(caption: Any) -> Final:
    """A :class:`Final` from any object with a caption's attributes (``wire.protocol.Caption``)."""
    if isinstance(caption, Final):
        return caption
    return Final(caption.utt, caption.start, caption.end, caption.text,
                 getattr(caption, "lang", ""), getattr(caption, "emotion", ""),
                 tuple(getattr(caption, "events", ())), getattr(caption, "raw", ""),
                 getattr(caption, "slide", None), getattr(caption, "speaker", ""))


def encode_final(caption: Any) -> bytes:
    """The journal line of a caption, newline included (the wire final's bytes, then raw, slide, speaker)."""
    return (encode_caption(as_final(caption)) + "\n").encode("utf-8")


def _opt_str(obj: dict, key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def decode_final(obj: object) -> Final | None:
    """The final in a parsed journal line (``type`` may be missing), or ``None``."""
    if not isinstance(obj, dict) or obj.get("type", "final") != "final":
        return None
    text = obj.get("text")
    if not isinstance(text, str):
        return None
    events = obj.get("events")
    events = tuple(e for e in events if isinstance(e, str)) if isinstance(events, list) else ()
    slide = obj.get("slide")
    slide = slide if isinstance(slide, int) and not isinstance(slide, bool) else None
    speaker = _opt_str(obj, "speaker")
    speaker = speaker if _SPEAKER.fullmatch(speaker) else ""  # an unknown label reads as none
    try:
        return Final(obj.get("utt"), obj.get("start"), obj.get("end"), text.strip(),  # type: ignore[arg-type]
                     _opt_str(obj, "lang"), _opt_str(obj, "emotion"), events, _opt_str(obj, "raw"), slide,
                     speaker)
    except ValueError:
        return None


def _parse_line(line: bytes) -> Final | None:
    line = line.strip()
    if not line or len(line) > MAX_LINE_BYTES:
        return None
    try:
        return decode_final(json.loads(line))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # A torn line followed by a good one on the same line: try the last object.
        cut = line.rfind(b'{"type"')
        if cut > 0:
            return _parse_line(line[cut:])
        log.debug("skipping an unreadable journal line (%d bytes)", len(line))
        return None


class TranscriptReader:
    """Reads the finals appended to a journal since the last call (cheap to poll).

    ``path`` is the journal or its session folder. Only complete lines are
    consumed; a trailing fragment is kept for the next call unless it already
    parses as a whole object (a writer that died before its newline). A
    ``utt`` seen before is skipped. A journal that shrank (replaced) is read
    again from the start. A reader made with an ``offset`` (another process's
    :attr:`consumed`) reads only what was appended after it.
    """

    def __init__(self, path: Path | str, offset: int = 0):
        """``offset``: start at this byte (a line start remembered from :attr:`consumed`)."""
        path = Path(path)
        self.path = path / TRANSCRIPT if path.is_dir() else path
        self._offset = offset
        self._rest = b""
        self._seen: set[int] = set()

    @property
    def consumed(self) -> int:
        """Bytes read up to the end of the last complete line (a torn tail is not consumed)."""
        return self._offset - len(self._rest)

    def read_new(self) -> list[Final]:
        """Finals appended since the previous call, in file order, without repeated utts."""
        out: list[Final] = []
        try:
            with self.path.open("rb") as fh:
                if fh.seek(0, os.SEEK_END) < self._offset:
                    self._offset, self._rest = 0, b""
                fh.seek(self._offset)
                while chunk := fh.read(_READ_CHUNK):
                    self._offset += len(chunk)
                    self._consume(self._rest + chunk, out)
        except FileNotFoundError:
            return out
        if self._rest and (len(self._rest) > MAX_LINE_BYTES or _parse_line(self._rest) is not None):
            self._consume(self._rest + b"\n", out)
        return out

    def _consume(self, data: bytes, out: list[Final]) -> None:
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE_BYTES:
            self._rest = b""  # an endless line: drop it rather than hold it
        for line in lines:
            final = _parse_line(line)
            if final is not None and final.utt not in self._seen:
                self._seen.add(final.utt)
                out.append(final)


def fmt_clock(seconds: float) -> str:
    """A time in the lecture as ``mm:ss`` (``h:mm:ss`` from an hour on), truncated: the
    second a caption started in, the same everywhere it is shown or cited."""
    hours, rem = divmod(max(0, int(seconds)), 3600)
    return f"{hours}:{rem // 60:02d}:{rem % 60:02d}" if hours else f"{rem // 60:02d}:{rem % 60:02d}"


def caption_language(finals: Iterable[Final]) -> str:
    """The language most of the captions' text is labelled with ("" when none is labelled)."""
    votes: Counter[str] = Counter()
    for final in finals:
        code = final.lang.lower().split("-")[0]
        if code and code not in ("auto", "nospeech", "unk", "unknown"):
            votes[code] += max(1, len(final.text))
    return votes.most_common(1)[0][0] if votes else ""


def read_finals(path: Path | str) -> list[Final]:
    """Every final of a journal (or of a session folder's journal); empty when there is none."""
    return TranscriptReader(path).read_new()

