"""Reading the session journal, token estimates, language guess and chunking.

``transcript.jsonl`` holds one final caption per line (see DESIGN.md). The
reader here is deliberately tolerant and independent of ``live.protocol``
(the summarizer must not import ``live``): lines that are not finals are
skipped, a torn last line is left for the next read, and a ``utt`` seen
before is ignored (the first one wins).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Final",
    "TranscriptReader",
    "read_finals",
    "estimate_tokens",
    "guess_language",
    "language_name",
    "split_by_speech",
    "split_by_tokens",
    "fmt_time",
    "speech_seconds",
]

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"[^\W\d_]+|\d+")
_MAX_LINE = 1 << 20

LANGUAGE_NAMES = {
    "zh": "Simplified Chinese (简体中文)",
    "yue": "Chinese (中文)",
    "en": "English",
    "ja": "Japanese (日本語)",
    "ko": "Korean (한국어)",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
}


@dataclass(frozen=True)
class Final:
    """One final caption from the journal (the fields the summarizer uses)."""

    utt: int
    start: float
    end: float
    text: str
    lang: str = ""


def _final_from_obj(obj: object) -> Final | None:
    if not isinstance(obj, dict) or obj.get("type") != "final":
        return None
    utt, start, end, text = obj.get("utt"), obj.get("start"), obj.get("end"), obj.get("text")
    if isinstance(utt, bool) or not isinstance(utt, int) or not isinstance(text, str):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)):
        return None
    if not (math.isfinite(start) and math.isfinite(end)):
        return None
    lang = obj.get("lang")
    return Final(utt, float(start), float(max(start, end)), text.strip(), lang if isinstance(lang, str) else "")


def _parse_line(line: bytes) -> Final | None:
    line = line.strip()
    if not line:
        return None
    try:
        return _final_from_obj(json.loads(line))
    except (ValueError, UnicodeDecodeError):
        # A torn line followed by a good one on the same line: try the last object.
        cut = line.rfind(b'{"type"')
        if cut > 0:
            return _parse_line(line[cut:])
        log.debug("skipping an unreadable journal line (%d bytes)", len(line))
        return None


class TranscriptReader:
    """Reads the finals appended to a journal since the last call (cheap to poll).

    Only complete lines are consumed; a trailing fragment is kept for the next
    call unless it already parses as a whole object (a writer that died before
    its newline).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._offset = 0
        self._rest = b""
        self._seen: set[int] = set()

    def read_new(self) -> list[Final]:
        """Finals appended since the previous call, in file order, without repeated utts."""
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, 2)
                if size < self._offset:  # replaced or truncated: read again, utts dedupe
                    self._offset, self._rest = 0, b""
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if self._rest and (len(self._rest) > _MAX_LINE or _parse_line(self._rest) is not None):
            lines.append(self._rest)
            self._rest = b""
        out = []
        for line in lines:
            final = _parse_line(line)
            if final is not None and final.utt not in self._seen:
                self._seen.add(final.utt)
                out.append(final)
        return out


def read_finals(path: Path | str) -> list[Final]:
    """Every final in a journal (empty when there is no journal)."""
    return TranscriptReader(path).read_new()


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` as a BPE tokenizer (cl100k-like) would count them, roughly.

    Each CJK character counts 1.2 tokens, each Latin word or number 1.1, every
    other non-space character (punctuation, symbols) 0.9, rounded up. Measured
    against OpenAI's cl100k_base on lecture-like English and Chinese and on
    technical prose it lands within about 5% (code: about 15% over); budgets
    built on it keep a margin.
    """
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    rest = _CJK.sub(" ", text)
    words = _WORD.findall(rest)
    symbols = sum(1 for ch in _WORD.sub(" ", rest) if not ch.isspace())
    return math.ceil(1.2 * cjk + 1.1 * len(words) + 0.9 * symbols)


def guess_language(finals: Sequence[Final]) -> str:
    """The lecture's language: the most common caption ``lang``, else by CJK share."""
    votes: Counter[str] = Counter()
    for final in finals:
        code = final.lang.lower().split("-")[0]
        if code and code not in ("auto", "nospeech", "unk", "unknown"):
            votes[code] += max(1, len(final.text))
    if votes:
        return votes.most_common(1)[0][0]
    text = "".join(f.text for f in finals)
    letters = sum(1 for ch in text if ch.isalpha())
    if letters and len(_CJK.findall(text)) / letters > 0.3:
        return "zh"
    return "en"


def language_name(code: str) -> str:
    """A name for the prompt ("Simplified Chinese (简体中文)"), or the code itself."""
    return LANGUAGE_NAMES.get(code.lower(), code)


def speech_seconds(finals: Iterable[Final]) -> float:
    """Seconds of speech (sum of utterance durations)."""
    return sum(f.end - f.start for f in finals)


def split_by_speech(finals: Sequence[Final], every_s: float) -> list[list[Final]]:
    """Consecutive groups of about ``every_s`` seconds of speech each (the last may be short)."""
    parts: list[list[Final]] = []
    current: list[Final] = []
    for final in finals:
        current.append(final)
        if speech_seconds(current) >= every_s:
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    return parts


def split_by_tokens(items: Sequence[str], budget: int) -> list[list[int]]:
    """Indices of ``items`` grouped in order so each group's estimate stays within ``budget``.

    An item larger than the budget on its own forms a group by itself.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, item in enumerate(items):
        cost = estimate_tokens(item) + 1
        if current and used + cost > budget:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += cost
    if current:
        groups.append(current)
    return groups


def fmt_time(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from one hour on."""
    total = max(0, int(seconds))
    hours, rem = divmod(total, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
