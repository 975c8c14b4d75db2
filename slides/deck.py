"""One type for a lecture's slides, whatever file they came from.

:func:`read_deck` reads ``.pptx`` (python-pptx), ``.pdf`` (pypdfium2) and
``.md``/``.markdown``/``.txt`` (split at headings or ``---`` lines) into a
:class:`Deck`: numbered slides with title, body text and speaker notes. The
readers live in :mod:`slides.readers`; this module holds the types, the limits
and the checks every reader shares.

Limits (a deck is input from outside, like a network message):

- the file: at most :data:`MAX_FILE_BYTES` (200 MiB; text files 5 MiB),
- the deck: at most :data:`MAX_SLIDES` (300) slides; a larger deck is refused
  with a message rather than cut silently,
- the text: each slide's title, text and notes are cut to
  :data:`MAX_FIELD_CHARS`, the whole deck to :data:`MAX_DECK_CHARS`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DeckError

__all__ = [
    "Slide",
    "Deck",
    "read_deck",
    "deck_from_dict",
    "SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_TEXT_FILE_BYTES",
    "MAX_SLIDES",
    "MAX_FIELD_CHARS",
    "MAX_DECK_CHARS",
]

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_TEXT_FILE_BYTES = 5 * 1024 * 1024
MAX_SLIDES = 300
MAX_FIELD_CHARS = 20_000
MAX_DECK_CHARS = 2_000_000
#: suffix -> reader name in :mod:`slides.readers`
SUFFIXES = {".pptx": "pptx", ".pdf": "pdf", ".md": "text", ".markdown": "text", ".txt": "text"}

_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANKS = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Slide:
    """One slide (or PDF page, or Markdown section).

    Attributes:
        number: 1-based position in the file ("Slide 7").
        title: the slide's title; may be empty.
        text: the body text in reading order, one block per line, without the title.
        notes: the speaker notes; may be empty.
    """

    number: int
    title: str
    text: str
    notes: str = ""

    @property
    def label(self) -> str:
        """``Slide 7 · Backpropagation`` (``Slide 7`` without a title)."""
        return f"Slide {self.number} · {self.title}" if self.title else f"Slide {self.number}"

    @property
    def content(self) -> str:
        """Title, text and notes as one text (for vocabulary and alignment)."""
        return "\n".join(part for part in (self.title, self.text, self.notes) if part)


@dataclass(frozen=True)
class Deck:
    """A lecture's slides.

    Attributes:
        slides: the slides in file order.
        source_name: the file's name (no folder), e.g. ``lecture3.pptx``.
        sha256: hex digest of the file's bytes.
    """

    slides: tuple[Slide, ...]
    source_name: str
    sha256: str

    def slide(self, number: int) -> Slide | None:
        """The slide with that number, or ``None``."""
        for slide in self.slides:
            if slide.number == number:
                return slide
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``slides.json`` layout)."""
        return {
            "source_name": self.source_name,
            "sha256": self.sha256,
            "slides": [{"number": s.number, "title": s.title, "text": s.text, "notes": s.notes}
                       for s in self.slides],
        }


def deck_from_dict(data: object) -> Deck:
    """The :class:`Deck` of a dict made by :meth:`Deck.to_dict`; :class:`DeckError` if malformed."""
    if not isinstance(data, Mapping):
        raise DeckError("deck data is not an object")
    name, digest, items = data.get("source_name"), data.get("sha256"), data.get("slides")
    if not isinstance(name, str) or not isinstance(digest, str) or not isinstance(items, list):
        raise DeckError("deck data lacks source_name, sha256 or slides")
    if not items:
        raise DeckError("deck data has no slides")
    if len(items) > MAX_SLIDES:
        raise DeckError(f"deck data has {len(items)} slides, more than {MAX_SLIDES}")
    slides = []
    for item in items:
        if not isinstance(item, Mapping):
            raise DeckError("a slide in the deck data is not an object")
        number = item.get("number")
        fields = [item.get(k, "") for k in ("title", "text", "notes")]
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise DeckError("a slide in the deck data has no valid number")
        if not all(isinstance(f, str) for f in fields):
            raise DeckError(f"slide {number} in the deck data has a field that is not text")
        slides.append(Slide(number, *(_cut(f) for f in fields)))
    return Deck(tuple(slides), name[:255], digest[:64])


def clean_text(text: str) -> str:
    """Text with control characters dropped, runs of spaces folded, lines stripped."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n"))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _cut(text: str) -> str:
    return text[:MAX_FIELD_CHARS]


def make_slides(items: Iterable[tuple[int, str, str, str]]) -> tuple[Slide, ...]:
    """Slides from ``(number, title, text, notes)``, cleaned, cut to the limits."""
    slides: list[Slide] = []
    total = 0
    for number, title, text, notes in items:
        if len(slides) >= MAX_SLIDES:
            raise DeckError(f"the deck has more than {MAX_SLIDES} slides: pass a shorter deck "
                            "(e.g. only this lecture's part)")
        title = _cut(clean_text(title).replace("\n", " "))
        text, notes = _cut(clean_text(text)), _cut(clean_text(notes))
        total += len(title) + len(text) + len(notes)
        if total > MAX_DECK_CHARS:
            raise DeckError(f"the deck holds more than {MAX_DECK_CHARS:,} characters of text")
        slides.append(Slide(number, title, text, notes))
    return tuple(slides)


def _check_file(path: Path) -> tuple[str, int]:
    """The reader name and size of ``path``; :class:`DeckError` if it cannot be a deck."""
    suffix = path.suffix.lower()
    kind = SUFFIXES.get(suffix)
    if kind is None:
        hint = " (export Keynote slides as PowerPoint or PDF first)" if suffix == ".key" else ""
        raise DeckError(f"{path.name}: unknown slides format {suffix or '(no suffix)'!r}{hint}; "
                        "use .pptx, .pdf, .md or .txt")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DeckError(f"cannot read slides {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise DeckError(f"slides {path} is not a file")
    limit = MAX_TEXT_FILE_BYTES if kind == "text" else MAX_FILE_BYTES
    if size > limit:
        raise DeckError(f"{path.name} is {size / 2**20:.0f} MiB, more than the {limit // 2**20} MiB "
                        "a deck may have: export it without media, or as PDF")
    if size == 0:
        raise DeckError(f"{path.name} is empty")
    return kind, size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_deck(path: Path | str) -> Deck:
    """The deck in ``path`` (``.pptx``, ``.pdf``, ``.md``, ``.markdown``, ``.txt``).

    Raises:
        DeckError: unknown format, missing, too large, corrupt, password
            protected, no text at all (a scan), more than :data:`MAX_SLIDES` slides.
    """
    from . import readers

    path = Path(path).expanduser()
    kind, _ = _check_file(path)
    try:
        digest = _sha256(path)
        items = getattr(readers, f"read_{kind}")(path)
        slides = make_slides(items)
    except OSError as exc:
        raise DeckError(f"cannot read slides {path}: {exc.strerror or exc}") from None
    if not any(s.title or s.text or s.notes for s in slides):
        hint = " (a scan? run OCR on it, or pass the original slides)" if kind == "pdf" else ""
        raise DeckError(f"{path.name} has no text{hint}")
    return Deck(slides, path.name, digest)
