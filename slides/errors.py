"""The slides package's exceptions: one root, messages that say what to do next."""

from __future__ import annotations

from common.errors import NotSoundError

__all__ = ["SlidesError", "DeckError"]


class SlidesError(NotSoundError):
    """Base class of every error raised by :mod:`slides`."""


class DeckError(SlidesError):
    """A deck that cannot be read: unknown format, corrupt, locked, no text, too large."""
