"""Checking an answer before it is shown: citations against the transcript, nothing secret.

A citation is a bracket of times, ``[12:34]``, ``[1:02:03]`` or several in
one bracket (``[12:34, 13:10]``, ``[12:34–13:10]``); across lectures each time
is led by the session name, ``[2026-11-23_0900 12:34]``. A cited time counts
when it falls inside a caption's span, give or take a small slack. Times that
match no caption are taken out of the bracket; a bracket left with none is
written as plain text, so it no longer looks like a citation.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from library.folder import Final

__all__ = ["Checked", "Spans", "parse_time", "cited_times", "check_citations", "check_library_citations",
           "withhold"]

_TIME = r"(?:\d{1,2}:)?\d{1,3}:\d{2}"
_BRACKET = re.compile(rf"\[({_TIME}(?:\s*(?:,|;|–|—|-|to)\s*{_TIME})*)\]")
_LIB_BRACKET = re.compile(rf"\[([^\[\]\s]{{1,128}})\s+({_TIME})\]")
_TIMES = re.compile(_TIME)
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")
WITHHELD = "[withheld]"


@dataclass(frozen=True)
class Checked:
    """An answer as it may be shown, and the cited times that matched no caption."""

    text: str
    dropped: tuple[str, ...] = ()
    kept: int = 0


class Spans:
    """The (start, end) spans of a lecture's captions, for fast "is this time said?" checks."""

    def __init__(self, finals: Sequence[Final], slack_s: float):
        pairs = sorted((f.start, f.end) for f in finals)
        self._starts = [a for a, _ in pairs]
        self._ends: list[float] = []
        reach = float("-inf")
        for _, end in pairs:  # running maximum of ends: covers overlapping captions
            reach = max(reach, end)
            self._ends.append(reach)
        self.slack = slack_s

    def __contains__(self, seconds: float) -> bool:
        # a [mm:ss] citation means the second [t, t+1)
        i = bisect.bisect_right(self._starts, seconds + 1 + self.slack) - 1
        return i >= 0 and self._ends[i] + self.slack >= seconds


def parse_time(text: str) -> float | None:
    """Seconds of ``mm:ss`` or ``h:mm:ss`` (minutes past 59 allowed without hours)."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        return None
    if len(values) not in (2, 3) or values[-1] > 59 or (len(values) == 3 and values[1] > 59):
        return None
    seconds = 0
    for value in values:
        seconds = seconds * 60 + value
    return float(seconds)


def cited_times(text: str) -> list[tuple[str, str]]:
    """Every citation of an answer, in order: ``(bracket, time)`` for each time of each bracket
    (``("[12:34]", "12:34")``; a bracket of two times gives two pairs)."""
    return [(match.group(0), t) for match in _BRACKET.finditer(text) for t in _TIMES.findall(match.group(1))]


def _valid(time_text: str, spans: Spans | None) -> bool:
    seconds = parse_time(time_text)
    return spans is not None and seconds is not None and seconds in spans


def check_citations(text: str, spans: Spans) -> Checked:
    """``text`` with every cited time checked against ``spans``."""
    dropped: list[str] = []
    kept = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal kept
        times = _TIMES.findall(match.group(1))
        good = [t for t in times if _valid(t, spans)]
        dropped.extend(t for t in times if t not in good)
        kept += len(good)
        if len(good) == len(times):
            return match.group(0)
        return f"[{', '.join(good)}]" if good else match.group(1)

    return Checked(_BRACKET.sub(fix, text), tuple(dropped), kept)


def check_library_citations(text: str, spans: Mapping[str, Spans]) -> Checked:
    """``text`` with every ``[SESSION mm:ss]`` checked against that session's spans."""
    dropped: list[str] = []
    kept = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal kept
        session, time_text = match.group(1), match.group(2)
        if _valid(time_text, spans.get(session)):
            kept += 1
            return match.group(0)
        dropped.append(f"{session} {time_text}")
        return f"{session} {time_text}"

    return Checked(_LIB_BRACKET.sub(fix, text), tuple(dropped), kept)


def _phrases(secret_text: str, min_chars: int) -> list[str]:
    pieces = (" ".join(p.split()) for p in _SENTENCE.split(secret_text))
    return sorted({p for p in pieces if len(p) >= min_chars}, key=len, reverse=True)


def withhold(text: str, *, key: str | None, system: str, min_chars: int = 24) -> str:
    """``text`` without the API key and without any sentence of the system prompt.

    The key never reaches the model (the client redacts it from prompts), and
    the model is told not to repeat its instructions; this is the last guard
    on the way to the screen and the conversation file.
    """
    if key and len(key) >= 8 and key in text:
        text = text.replace(key, WITHHELD)
    flat = " ".join(text.split())
    if not any(p in flat for p in _phrases(system, min_chars)):
        return text
    for phrase in _phrases(system, min_chars):
        pattern = r"\s+".join(re.escape(word) for word in phrase.split())
        text = re.sub(pattern, WITHHELD, text)
    return re.sub(rf"{re.escape(WITHHELD)}(?:\s*{re.escape(WITHHELD)})+", WITHHELD, text)
