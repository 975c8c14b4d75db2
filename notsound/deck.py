"""The lecture's deck during ``notsound live``: vocabulary for the worker, corrected finals.

``--slides FILE`` is read and stored in the session folder (``slides.json``);
without the flag a deck stored by an earlier run of the same session is used.
A deck that cannot be read is reported once and captioning goes on without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from library.folder import Final, as_final
from slides.errors import SlidesError
from slides.follow import DeckFollower
from slides.store import attach_deck, load_session_deck
from slides.vocabulary import build_vocabulary
from wire.protocol import Caption

__all__ = ["LiveDeck", "open_live_deck"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LiveDeck:
    """What a live run takes from its deck.

    Attributes:
        vocabulary: terms sent to the worker in ``hello`` (engine hints).
        follower: corrects each final and follows the slides.
        label: one line for the view, e.g. ``"lecture.pptx, 24 slides, 61 terms"``.
    """

    vocabulary: tuple[str, ...]
    follower: DeckFollower
    label: str

    def annotate(self, caption: Caption) -> tuple[Caption, Final]:
        """The caption as shown (corrected text) and as journaled (with raw text and slide)."""
        note = self.follower.annotate(caption.text)
        final = dataclasses.replace(as_final(caption), text=note.text, raw=note.raw, slide=note.slide)
        shown = caption if note.text == caption.text else dataclasses.replace(caption, text=note.text)
        return shown, final


def _load(session_dir: Path, path: Path | None) -> LiveDeck | None:
    deck = attach_deck(session_dir, path) if path is not None else load_session_deck(session_dir)
    if deck is None:
        return None
    vocabulary = build_vocabulary(deck)
    follower = DeckFollower(deck, vocabulary)
    label = f"{deck.source_name}, {len(deck.slides)} slides, {len(vocabulary)} terms"
    return LiveDeck(vocabulary, follower, label)


async def open_live_deck(session_dir: Path, path: Path | None,
                         notice: Callable[[str], None]) -> LiveDeck | None:
    """The run's deck (read in a thread), or ``None``; a bad deck is a notice, never fatal."""
    try:
        deck = await asyncio.to_thread(_load, session_dir, path)
    except (SlidesError, OSError) as exc:
        notice(f"slides not used: {exc}")
        log.warning("slides not used: %s", exc)
        return None
    except Exception:  # boundary: a deck the readers did not foresee never stops captioning
        log.exception("slides not used: reading the deck failed")
        notice("slides not used: the deck could not be read (details in the log with -v)")
        return None
    if deck is not None:
        log.info("slides: %s", deck.label)
    return deck
