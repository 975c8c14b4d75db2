"""What the search index reads from a session folder, and how it notices changes.

A file's signature is its size and modification time; the journal also keeps
the offset read up to and a hash of its first bytes, so that appended lines
are read alone and a replaced journal is noticed. ``notes.md`` and
``summary.md`` are cut into sections at their headings.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

from .folder import TRANSCRIPT

__all__ = ["MAX_MARKDOWN_BYTES", "HEAD_BYTES", "stat_sig", "file_sig", "head_hash", "markdown_sections", "session_day", "read_markdown"]

#: largest notes.md / summary.md indexed (the rest of a larger file is left out)
MAX_MARKDOWN_BYTES = 4 << 20
#: bytes at the start of a journal whose hash tells a replaced journal from a grown one
HEAD_BYTES = 4096
_HEADING = re.compile(r"^(#{1,3})\s+(.*\S)\s*$")
_TIME = re.compile(r"(?<![\d:])(?:(\d+):)?(\d{1,2}):(\d{2})(?![\d:])")
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def stat_sig(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def file_sig(path: Path) -> str:
    size, mtime = stat_sig(path)
    return "" if size < 0 else f"{size}:{mtime}"


def head_hash(path: Path, length: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return hashlib.sha256(fh.read(length)).digest()
    except OSError:
        return b""


def markdown_sections(text: str) -> list[tuple[str, float | None]]:
    """``(section text, start)`` per heading of level 1–3 (what precedes the first heading too).

    A section's text starts with its heading line; ``start`` is the first
    ``mm:ss`` or ``h:mm:ss`` time in the heading, else ``None``. Headings in
    fenced code blocks do not count; empty sections are left out.
    """
    sections: list[tuple[str, float | None]] = []
    current: list[str] = []
    start: float | None = None
    fenced = False

    def flush() -> None:
        body = "\n".join(current).strip()
        if body:
            sections.append((body, start))

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            flush()
            current, stamp = [], _TIME.search(heading.group(2))
            start = None if stamp is None else (
                int(stamp.group(1) or 0) * 3600 + int(stamp.group(2)) * 60 + int(stamp.group(3)))
        current.append(line)
    flush()
    return sections


def session_day(folder: Path, meta: dict) -> str:
    """The date a session took place: ``session.json``'s start, the folder's name, or the
    journal's (else the folder's) mtime; "" for a folder that is gone."""
    for candidate in (meta.get("started"), folder.name):
        m = _DAY.match(candidate) if isinstance(candidate, str) else None
        if m:
            try:
                return date.fromisoformat(m.group(1)).isoformat()
            except ValueError:
                pass
    size, mtime = stat_sig(folder / TRANSCRIPT)
    if size < 0:
        size, mtime = stat_sig(folder)
    return date.fromtimestamp(mtime / 1e9).isoformat() if size >= 0 else ""


def read_markdown(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MARKDOWN_BYTES)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
