"""The slides package's exceptions: one root, messages that say what to do next."""

from __future__ import annotations

__all__ = ["SlidesError", "DeckError"]


class SlidesError(Exception):
    """Base class of every error raised by :mod:`slides`; ``exit_code`` for the ``notsound`` command."""

    exit_code = 1


class DeckError(SlidesError):
    """A deck that cannot be read: unknown format, corrupt, locked, no text, too large."""
