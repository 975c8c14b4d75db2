"""Everything after the recognizer, per final: term correction and the slide on screen.

The capture side builds one :class:`DeckFollower` per session when the
session has a deck, and runs every final through :meth:`DeckFollower.annotate`
before journaling it: the corrected text becomes the final's ``text``, the
engine's text its ``raw`` (only when something changed), and the slide its
``slide``. Engines are not involved, so this works the same for every engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .align import SlideTracker
from .correct import Change, Corrector, corrector_for
from .deck import Deck

__all__ = ["Annotated", "DeckFollower"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Annotated:
    """One final after the deck had its say.

    Attributes:
        text: the corrected text (the engine's text when nothing changed).
        raw: the engine's text when it was corrected, else ``""`` (``Final.raw``).
        slide: the number of the slide most likely on screen (``Final.slide``).
        changes: what the correction rewrote.
    """

    text: str
    raw: str
    slide: int | None
    changes: tuple[Change, ...] = ()


class DeckFollower:
    """Corrects finals against a deck and follows the lecture through it, one final at a time.

    Args:
        deck: the session's deck.
        terms: the vocabulary to correct towards (default: built from the deck).
    """

    def __init__(self, deck: Deck, terms: tuple[str, ...] | None = None):
        self.deck = deck
        self.corrector: Corrector = corrector_for(deck, terms)
        self.tracker = SlideTracker(deck)

    def annotate(self, text: str) -> Annotated:
        """The corrected text, the raw text if it changed, and the slide; in caption order."""
        result = self.corrector.correct(text)
        slide = self.tracker.push(result.text)
        if result.changes:
            log.debug("corrected %d term(s) in a final", len(result.changes))
        return Annotated(result.text, text if result.changes else "", slide, result.changes)
