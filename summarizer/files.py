"""The session-folder names and writers the summarizer uses, from :mod:`library.folder`.

:func:`resolve_session` raises the summarizer's own
:class:`~summarizer.errors.SessionNotFoundError` so ``notsound notes`` and
``summary`` catch one exception root.
"""

from __future__ import annotations

from pathlib import Path

from library import folder
from library.folder import (
    DEFAULT_OUT,
    META,
    NOTES,
    NOTES_OUTLINE_LINE,
    SUMMARY,
    TRANSCRIPT,
    read_meta,
    remove_stale_temps,
    session_ended,
    write_atomic,
)

from .errors import SessionNotFoundError

__all__ = [
    "DEFAULT_OUT",
    "TRANSCRIPT",
    "NOTES",
    "NOTES_STATE",
    "NOTES_OUTLINE_LINE",
    "SUMMARY",
    "SESSION_META",
    "write_atomic",
    "remove_stale_temps",
    "resolve_session",
    "read_meta",
    "session_ended",
]

#: the notes' watermark next to ``notes.md`` (the summarizer's own file)
NOTES_STATE = "notes.state.json"
SESSION_META = META


def resolve_session(session: str | Path, out: str | Path | None = None) -> Path:
    """A session folder from a path, or from a session name under ``out`` (default ./lectures)."""
    try:
        return folder.resolve_session(session, out)
    except folder.SessionNotFoundError as exc:
        raise SessionNotFoundError(str(exc)) from None
