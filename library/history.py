"""``notsound history``: every session under the output folder, newest first.

Each row comes from the session folder alone (:mod:`library.folder`): the
date from ``session.json`` (else the folder name, else its time), a title
(the summary's heading, else the first section of LLM notes, else the first
sentence said: an outline made without an LLM heads its sections with
keywords, which name no lecture), duration and words from the journal,
language and engine, and which of notes, summary and slides exist. A session whose journal holds no readable
caption is listed with 0 words.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.script import count_words, has_cjk

from .folder import (
    NOTES,
    SLIDES,
    SUMMARY,
    Final,
    caption_language,
    list_sessions,
    notes_are_outline,
    read_layer,
    read_meta,
)

__all__ = ["SessionInfo", "session_info", "history", "format_tsv", "format_json", "render_table",
           "count_words", "fmt_duration"]

#: how much of notes.md / summary.md is searched for a heading
MAX_HEADER_BYTES = 64 * 1024
#: a title made of the first sentence said stops at about this many cells (a Chinese character is two)
TITLE_CHARS = 48
#: a first sentence of fewer words ("Okay.", "好的。") is passed over for the next one
TITLE_MIN_WORDS = 3

_LATIN_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"[，、；：,;:]")
_TIME_RANGE = re.compile(r"^\[?\d+:\d\d(?::\d\d)?\s*[–—-]\s*\d+:\d\d(?::\d\d)?\]?\s*[·:|–—-]?\s*")
_NAME_DATE = re.compile(r"^(\d{4}-\d\d-\d\d)_(\d\d)(\d\d)")


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``notsound history``.

    Attributes:
        started: when the lecture began (local time, aware), ``None`` if unknown.
        duration_s: seconds of lecture (the end of the last caption).
        words: Latin words plus CJK characters said.
        language: the captions' main language code, else the one asked for.
    """

    name: str
    path: Path
    started: dt.datetime | None
    title: str
    duration_s: float
    words: int
    captions: int
    language: str
    engine: str
    notes: bool
    summary: bool
    slides: bool

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["path"] = str(self.path)
        row["started"] = self.started.isoformat(timespec="seconds") if self.started else None
        row["duration_s"] = round(self.duration_s, 3)
        return row


def fmt_duration(seconds: float) -> str:
    """``h:mm:ss`` or ``mm:ss``."""
    total = max(0, int(round(seconds)))
    hours, rem = divmod(total, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _head(path: Path) -> str:
    """The top of a Markdown file ("" when there is none)."""
    try:
        with path.open("rb") as fh:
            return fh.read(MAX_HEADER_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def _headings(text: str) -> list[tuple[int, str]]:
    """``(level, text)`` of the Markdown headings of ``text``."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match and match.group(2):
            found.append((len(match.group(1)), match.group(2)))
    return found


def _title(folder: Path, finals: Sequence[Final]) -> str:
    for level, text in _headings(_head(folder / SUMMARY)):
        if level == 1:
            return text
    notes = _head(folder / NOTES)
    for level, text in [] if notes_are_outline(notes) else _headings(notes):
        # the document heading names the session ("Lecture notes — NAME"); a section says what was taught
        if level == 2 and (topic := _TIME_RANGE.sub("", text).strip()):
            return topic
    return _first_sentence(finals)


def _first_sentence(finals: Sequence[Final]) -> str:
    """The first sentence said of :data:`TITLE_MIN_WORDS` words or more (else the first),
    without its full stop, cut to :data:`TITLE_CHARS` cells."""
    text = " ".join(f.text.strip() for f in finals[:20]).strip()
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    worded = [s for s in sentences if count_words(s) >= TITLE_MIN_WORDS]
    sentence = (worded or sentences or [""])[0].rstrip(".。")
    return sentence if _width(sentence) <= TITLE_CHARS else _cut(sentence, TITLE_CHARS - 1) + "…"


def _width(text: str) -> int:
    """Terminal cells of ``text`` (a wide character takes two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _cut(text: str, cells: int) -> str:
    """The start of ``text`` within ``cells``: Latin at a word boundary, Chinese after a
    comma in its second half, else at a character."""
    end, used = 0, 0
    while end < len(text) and used + _width(text[end]) <= cells:
        used += _width(text[end])
        end += 1
    cut = text[:end]
    if has_cjk(text[end - 1:end + 1]):
        clause = max((m.end() for m in _CLAUSE_END.finditer(cut)), default=0)
        cut = cut[:clause] if clause > end // 2 else cut
    elif " " in cut and not text[end].isspace():
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:，。；：、")


def _language(finals: Sequence[Final], meta: dict[str, Any]) -> str:
    asked = meta.get("language")
    return caption_language(finals) or (asked if isinstance(asked, str) and asked != "auto" else "")


def _started(folder: Path, meta: dict[str, Any]) -> dt.datetime | None:
    value = meta.get("started")
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None:
            return when if when.tzinfo else when.astimezone()
    match = _NAME_DATE.match(folder.name)
    if match:
        try:
            return dt.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}:{match.group(3)}").astimezone()
        except ValueError:
            pass
    try:
        return dt.datetime.fromtimestamp(folder.stat().st_mtime).astimezone()
    except OSError:
        return None


def session_info(folder: Path) -> SessionInfo:
    """The history row of one session folder."""
    folder = Path(folder)
    meta = read_meta(folder)
    finals = read_layer(folder)
    engine = meta.get("engine")
    return SessionInfo(
        name=folder.name,
        path=folder,
        started=_started(folder, meta),
        title=_title(folder, finals),
        duration_s=max((f.end for f in finals), default=0.0),
        words=sum(count_words(f.text) for f in finals),
        captions=len(finals),
        language=_language(finals, meta),
        engine=engine if isinstance(engine, str) else "",
        notes=(folder / NOTES).is_file(),
        summary=(folder / SUMMARY).is_file(),
        slides=(folder / SLIDES).is_file(),
    )


def history(out: Path | str | None = None) -> list[SessionInfo]:
    """Every session under ``out`` (default ./lectures), newest first."""
    rows = [session_info(folder) for folder in list_sessions(out)]
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return sorted(rows, key=lambda r: (r.started or epoch, r.name), reverse=True)


_COLUMNS = ("date", "session", "title", "duration", "words", "language", "engine", "notes", "summary", "slides")


def _cells(row: SessionInfo) -> list[str]:
    date = row.started.strftime("%Y-%m-%d %H:%M") if row.started else ""
    flags = ["yes" if flag else "no" for flag in (row.notes, row.summary, row.slides)]
    return [date, row.name, row.title, fmt_duration(row.duration_s), str(row.words),
            row.language, row.engine, *flags]


def format_tsv(rows: Sequence[SessionInfo]) -> str:
    """Tab-separated lines with a header (tabs and newlines in titles become spaces)."""
    lines = ["\t".join(_COLUMNS)]
    for row in rows:
        lines.append("\t".join(re.sub(r"[\t\r\n]+", " ", cell) for cell in _cells(row)))
    return "\n".join(lines) + "\n"


def format_json(rows: Sequence[SessionInfo]) -> str:
    return json.dumps([row.to_dict() for row in rows], ensure_ascii=False, indent=2) + "\n"


def render_table(rows: Sequence[SessionInfo], console: Any) -> None:
    """Print ``rows`` as a rich table on ``console`` (titles are text, never markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, header_style="bold")
    for name in _COLUMNS:
        table.add_column(name, justify="right" if name in ("duration", "words") else "left",
                         overflow="fold" if name == "title" else "ellipsis")
    for row in rows:
        cells = _cells(row)
        cells[7:] = ["✓" if flag else "·" for flag in (row.notes, row.summary, row.slides)]
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
