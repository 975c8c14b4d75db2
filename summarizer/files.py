"""The session-folder names and writers the summarizer uses, from :mod:`library.folder`."""

from __future__ import annotations

from library.folder import (
    DEFAULT_OUT,
    META,
    NOTES,
    NOTES_OUTLINE_LINE,
    SUMMARY,
    TRANSCRIPT,
    read_layer,
    read_meta,
    remove_stale_temps,
    resolve_session,
    session_ended,
    transcript_path,
    write_atomic,
)

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
    "read_layer",
    "transcript_path",
]

#: the notes' watermark next to ``notes.md`` (the summarizer's own file)
NOTES_STATE = "notes.state.json"
SESSION_META = META

