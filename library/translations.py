"""``translations.jsonl``: live translations of a session's finals (standard library only).

One line per translated final: ``{"utt": N, "lang": "zh", "text": "..."}``;
a caption that got no usable answer is stored as ``"text": null`` with an
``"untranslated"`` reason, so a restart does not send it again. Lines are
appended and fsynced; the caption journal ``transcript.jsonl`` is never
rewritten. Re-exported by :mod:`library.folder`, the one home of the
session-folder format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .atomic import append_durable

__all__ = ["TRANSLATIONS", "Translation", "read_translations", "translation_texts", "append_translations"]

TRANSLATIONS = "translations.jsonl"
_MAX_LINE = 64 * 1024
_MAX_ROWS = 1_000_000  # lines read at most (a session has one per caption)


@dataclass(frozen=True)
class Translation:
    """One line of ``translations.jsonl``; ``text`` is ``None`` when the caption stayed untranslated."""

    utt: int
    lang: str
    text: str | None
    reason: str = ""

    def to_json(self) -> str:
        row: dict[str, object] = {"utt": self.utt, "lang": self.lang, "text": self.text}
        if self.text is None:
            row["untranslated"] = self.reason or "no usable answer"
        return json.dumps(row, ensure_ascii=False)


def read_translations(session_dir: Path | str, lang: str | None = None) -> dict[int, Translation]:
    """Stored translations by ``utt`` into ``lang`` (default: the language of the last line).

    A torn or unreadable line is skipped; the first line for a ``utt`` wins.
    """
    rows: list[Translation] = []
    try:
        with (Path(session_dir) / TRANSLATIONS).open("rb") as fh:
            for line in _lines(fh):
                row = _parse(line)
                if row is not None:
                    rows.append(row)
    except FileNotFoundError:
        return {}
    if lang is None and rows:
        lang = rows[-1].lang
    out: dict[int, Translation] = {}
    for row in rows:
        if lang is not None and row.lang.lower() == lang.lower():  # zh-TW is stored as zh-tw
            out.setdefault(row.utt, row)
    return out


def translation_texts(session_dir: Path | str, lang: str | None = None) -> dict[int, str]:
    """The non-empty translated texts by ``utt`` (what exports and pages show); see :func:`read_translations`."""
    return {utt: t.text for utt, t in read_translations(session_dir, lang).items() if t.text}


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    """The lines of ``fh``, at most ``_MAX_ROWS``; a line over ``_MAX_LINE`` bytes is skipped unread."""
    for _ in range(_MAX_ROWS):
        line = fh.readline(_MAX_LINE + 1)
        if not line:
            return
        if len(line) > _MAX_LINE:
            while line and not line.endswith(b"\n"):
                line = fh.readline(_MAX_LINE + 1)
            continue
        yield line


def _parse(line: bytes) -> Translation | None:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    utt, lang, text = obj.get("utt"), obj.get("lang"), obj.get("text")
    if isinstance(utt, bool) or not isinstance(utt, int) or not isinstance(lang, str):
        return None
    if text is not None and not isinstance(text, str):
        return None
    reason = obj.get("untranslated")
    return Translation(utt, lang, text, reason if isinstance(reason, str) else "")


def append_translations(path: Path, rows: Sequence[Translation]) -> None:
    """Append ``rows`` to ``path`` and fsync (one write: a crash leaves at most a torn last line)."""
    append_durable(path, "".join(row.to_json() + "\n" for row in rows).encode("utf-8"))
