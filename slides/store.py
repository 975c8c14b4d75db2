"""The deck of a session: ``slides.json`` in the session folder.

``notsound live|notes|summary|ask --slides FILE`` reads the deck once with
:func:`attach_deck`, which stores its text with the file's name and SHA-256 in
``SESSION/slides.json`` (replaced atomically), and a PDF deck whole as
``SESSION/slides.pdf`` (its pages are shown as images in the lecture room). Later commands on the session
call :func:`load_session_deck` and use the deck without the flag. A stored
deck that cannot be read is reported and ignored: slides never stop
captioning or notes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from library.folder import SLIDES_PDF, write_atomic, write_json_atomic

from .deck import Deck, deck_from_dict, read_deck
from .errors import DeckError

__all__ = ["SLIDES_FILE", "SLIDES_PDF", "SLIDES_VERSION", "attach_deck", "load_session_deck", "save_deck",
           "slide_labels"]

log = logging.getLogger(__name__)

SLIDES_FILE = "slides.json"
SLIDES_VERSION = 1
#: a stored deck is at most 2 M characters of text; with JSON escapes this is plenty
MAX_SLIDES_JSON_BYTES = 32 * 1024 * 1024


def save_deck(session_dir: Path | str, deck: Deck) -> Path:
    """Write ``slides.json`` of a session (atomically) and return its path."""
    path = Path(session_dir) / SLIDES_FILE
    data = {"version": SLIDES_VERSION, **deck.to_dict()}
    write_json_atomic(path, data)
    return path


def attach_deck(session_dir: Path | str, path: Path | str) -> Deck:
    """Read the deck at ``path`` and store it in the session folder (created if missing).

    Raises:
        DeckError: the deck cannot be read (nothing is written then) or stored.
    """
    deck = read_deck(path)
    folder = Path(session_dir)
    current = load_session_deck(folder)
    pdf = Path(path).suffix.lower() == ".pdf"
    if current is not None and current.sha256 == deck.sha256 and current.slides == deck.slides \
            and (folder / SLIDES_PDF).is_file() == pdf:
        return current
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if pdf:
            write_atomic(folder / SLIDES_PDF, Path(path).read_bytes())
        else:
            (folder / SLIDES_PDF).unlink(missing_ok=True)
        save_deck(folder, deck)
    except OSError as exc:
        raise DeckError(f"cannot store the deck in {folder}: {exc.strerror or exc}") from None
    if current is not None:
        log.info("session deck %s replaced by %s", current.source_name, deck.source_name)
    return deck


def load_session_deck(session_dir: Path | str) -> Deck | None:
    """The deck stored in the session folder, or ``None`` (none, or unreadable: logged)."""
    path = Path(session_dir) / SLIDES_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SLIDES_JSON_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s (%s): going on without slides", path, exc.strerror or exc)
        return None
    try:
        if len(raw) > MAX_SLIDES_JSON_BYTES:
            raise DeckError(f"larger than {MAX_SLIDES_JSON_BYTES // 2**20} MiB")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != SLIDES_VERSION:
            raise DeckError(f"not a version {SLIDES_VERSION} slides file")
        return deck_from_dict(data)
    except (DeckError, ValueError) as exc:
        log.warning("ignoring %s (%s): pass --slides FILE again to replace it", path, exc)
        return None


def slide_labels(session_dir: Path | str) -> dict[int, str] | None:
    """The stored deck's slide labels by number (what a Markdown transcript's sections are headed
    with), or ``None`` without a deck."""
    deck = load_session_deck(session_dir)
    return {slide.number: slide.label for slide in deck.slides} if deck is not None else None
