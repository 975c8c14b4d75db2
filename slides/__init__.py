"""Lecture slides as input: the deck, its vocabulary, term correction, slide alignment.

- :func:`read_deck` reads ``.pptx``, ``.pdf``, ``.md`` and ``.txt`` into a :class:`Deck`.
- :func:`attach_deck` stores a deck in a session folder (``slides.json``);
  :func:`load_session_deck` reads it back for later commands.
- :func:`build_vocabulary` ranks the deck's terms (recognizer hints, correction).
- :class:`Corrector` rewrites misrecognised terms in a final's text.
- :class:`SlideTracker` (live) and :func:`align_texts` (batch) tell which
  slide each caption is about.
- :class:`DeckFollower` does both for each final of a live session
  (corrected text, raw text, slide number for the journal).

Heavy parsers (python-pptx, pypdfium2, jieba, pypinyin, wordfreq) are imported
when first used, not with this package.
"""

from .align import AlignOptions, SlideTracker, align_texts
from .correct import Change, Correction, Corrector, corrector_for
from .deck import MAX_FILE_BYTES, MAX_SLIDES, Deck, Slide, read_deck
from .errors import DeckError, SlidesError
from .follow import Annotated, DeckFollower
from .store import SLIDES_FILE, attach_deck, load_session_deck, save_deck
from .vocabulary import MAX_TERM_CHARS, MAX_TERMS, build_vocabulary, clean_terms, hotword_text

__all__ = [
    "AlignOptions",
    "Annotated",
    "Change",
    "Correction",
    "Corrector",
    "Deck",
    "DeckError",
    "DeckFollower",
    "MAX_FILE_BYTES",
    "MAX_SLIDES",
    "MAX_TERMS",
    "MAX_TERM_CHARS",
    "SLIDES_FILE",
    "Slide",
    "SlideTracker",
    "SlidesError",
    "align_texts",
    "attach_deck",
    "build_vocabulary",
    "clean_terms",
    "corrector_for",
    "hotword_text",
    "load_session_deck",
    "read_deck",
    "save_deck",
]

