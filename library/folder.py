"""The session folder: the one module that reads and writes it (standard library and wire only).

Every package imports the format from here; the line codec and reader live
in :mod:`library.journal` and the atomic writer in :mod:`library.atomic`,
both re-exported here.

Layout of ``OUT/SESSION/`` (see DESIGN.md, "Session directory")::

    transcript.jsonl   the journal: one final caption a line, appended and fsynced
    transcript.polished.jsonl   the polished layer (``notsound polish``), same line codec
    recording/         the session's audio, one Ogg Opus part a run (see library.recording)
    session.json       metadata (session, language, engine, model, started, ended)
    slides.json        the deck's text (slides.store); slides.pdf a PDF deck kept whole
    notes.md           rolling notes, replaced atomically
    summary.md         the final summary
    pending/           audio still owed a final (capture's spool)

A journal line is the worker's final message (one encoder, :func:`wire.protocol.encode_caption`)::

    {"type":"final","utt":3,"start":12.5,"end":15.0,"text":"...","lang":"en","emotion":"NEUTRAL","events":[]}

with the optional keys ``raw`` (the engine's text before correction),
``slide`` (the slide shown) and ``speaker`` (``lecturer`` or ``audience-N``)
written only when set. Rules for reading, the same
for every reader: a line that is not a final, or whose ``utt`` is not a
non-negative integer or whose times are not finite non-negative numbers, is
skipped; the first final of a ``utt`` wins; a torn last line is ignored; a
final whose ``end`` is before its ``start`` is kept with ``end = start``
(clamped, never rejected: the text is worth more than the timing). The writer
applies the same clamp, so no journal line ever ends before it starts.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from common.errors import EXIT_USAGE, NotSoundError

from .atomic import append_durable, append_fd, remove_stale_temps, write_atomic, write_json_atomic
from .journal import (
    LECTURER,
    TRANSCRIPT,
    Final,
    TranscriptReader,
    as_final,
    caption_language,
    decode_final,
    encode_final,
    fmt_clock,
    read_finals,
    speaker_name,
)
from .polished import (
    POLISH_LOCK,
    POLISH_WORK,
    POLISHED,
    PolishBusyError,
    PolishWork,
    encode_polished,
    polish_lock,
)
from .recording import (
    RECORDING,
    RecordingPart,
    expire_recordings,
    new_part_path,
    recording_parts,
    remove_recording,
)
from .translations import (
    TRANSLATIONS,
    Translation,
    append_translations,
    read_translations,
    translation_texts,
)

__all__ = [
    "DEFAULT_OUT",
    "TRANSCRIPT",
    "META",
    "NOTES",
    "NOTES_OUTLINE_LINE",
    "notes_are_outline",
    "SUMMARY",
    "PENDING",
    "SLIDES",
    "SLIDES_PDF",
    "FolderError",
    "SessionNotFoundError",
    "SessionNameError",
    "JournalError",
    "EmptySessionError",
    "Final",
    "LECTURER",
    "speaker_name",
    "as_final",
    "encode_final",
    "decode_final",
    "TranscriptReader",
    "read_finals",
    "caption_language",
    "fmt_clock",
    "require_finals",
    "Journal",
    "read_meta",
    "write_meta",
    "session_ended",
    "write_atomic",
    "append_durable",
    "write_json_atomic",
    "remove_stale_temps",
    "resolve_session",
    "session_path",
    "list_sessions",
    "remove_if_unused",
    "default_session_name",
    "check_session_name",
    "TRANSLATIONS",
    "Translation",
    "read_translations",
    "translation_texts",
    "append_translations",
    "RECORDING",
    "RecordingPart",
    "recording_parts",
    "new_part_path",
    "remove_recording",
    "expire_recordings",
    "POLISHED",
    "POLISH_WORK",
    "POLISH_LOCK",
    "PolishBusyError",
    "PolishWork",
    "encode_polished",
    "polish_lock",
    "LAYERS",
    "transcript_path",
    "read_layer",
]

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("lectures")
META = "session.json"
NOTES = "notes.md"
SUMMARY = "summary.md"
PENDING = "pending"
SLIDES = "slides.json"
SLIDES_PDF = "slides.pdf"
#: which transcript a reader takes: the polished one when present (``best``), or the one named
LAYERS = ("best", "live", "polished")
#: the line under the heading of a ``notes.md`` that is an outline made without an LLM
NOTES_OUTLINE_LINE = "_Outline without an LLM; see `notsound notes --help` to turn LLM notes on._"

#: largest ``session.json`` read
MAX_META_BYTES = 1 << 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class FolderError(NotSoundError):
    """Root of this module's errors."""


class SessionNotFoundError(FolderError):
    """SESSION is neither a session folder nor the name of one under the output folder."""

    exit_code = EXIT_USAGE


class SessionNameError(FolderError):
    """A session name that cannot be a folder name."""

    exit_code = EXIT_USAGE


class JournalError(FolderError):
    """The session folder cannot be created or written; the message says which path and why."""


class EmptySessionError(FolderError):
    """The session's journal holds no readable caption: nothing to make notes or exports from."""


# -- the journal ---------------------------------------------------------------


def transcript_path(session_dir: Path | str, layer: str = "best") -> Path:
    """The transcript a reader takes: ``live`` (the journal), ``polished``, or ``best``
    (the polished layer when there is one: it only ever appears complete)."""
    folder = Path(session_dir)
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    if layer == "polished" or (layer == "best" and (folder / POLISHED).is_file()):
        return folder / POLISHED
    return folder / TRANSCRIPT


def read_layer(session_dir: Path | str, layer: str = "best") -> list[Final]:
    """The finals of one transcript layer of a session (see :func:`transcript_path`)."""
    return read_finals(transcript_path(session_dir, layer))


def require_finals(session_dir: Path | str, purpose: str = "work with", layer: str = "best") -> list[Final]:
    """The finals of a session folder's ``layer``; :class:`EmptySessionError` when none has any text."""
    folder = Path(session_dir)
    path = transcript_path(folder, layer)
    finals = read_finals(path)
    if not any(f.text for f in finals):
        state = "holds no readable caption" if path.exists() else "does not exist"
        raise EmptySessionError(f"nothing to {purpose} in {folder}: {path} {state}")
    return finals


class Journal:
    """Appends finals to ``transcript.jsonl``, each line fsynced, no ``utt`` twice.

    Opening a journal reads what it holds (a resumed session continues:
    :attr:`next_utt`, :attr:`last_end`). Each final is appended with
    :func:`~library.atomic.append_fd`, so a torn last line (a writer that died
    mid-line) gets a newline first and cannot glue onto it. :meth:`append`
    takes a :class:`Final` or any caption-like object (``wire.protocol.Caption``).
    """

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create session folder {self.directory}: {exc.strerror}") from None
        self.path = self.directory / TRANSCRIPT
        existing = read_finals(self.path)
        self.utts: set[int] = {f.utt for f in existing}
        self.last_end = max((f.end for f in existing), default=0.0)
        try:
            self._fh = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held for the session
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror}") from None

    @property
    def next_utt(self) -> int:
        """The number a resumed session continues from."""
        return max(self.utts) + 1 if self.utts else 0

    def append(self, caption: Any) -> bool:
        """Write ``caption`` durably; False (and nothing written) if its utt is known."""
        final = as_final(caption)
        if final.utt in self.utts:
            return False
        append_fd(self._fh.fileno(), encode_final(final))
        self.utts.add(final.utt)
        self.last_end = max(self.last_end, final.end)
        return True

    def __contains__(self, utt: int) -> bool:
        return utt in self.utts

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def read_meta(self) -> dict[str, Any]:
        return read_meta(self.directory)

    def write_meta(self, **fields: Any) -> dict[str, Any]:
        return write_meta(self.directory, **fields)


# -- session.json --------------------------------------------------------------


def read_meta(session_dir: Path | str) -> dict[str, Any]:
    """``session.json`` as a dict; ``{}`` when it is missing, too large or unreadable."""
    path = Path(session_dir) / META
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_META_BYTES + 1)
        meta = json.loads(data) if len(data) <= MAX_META_BYTES else None
    except (OSError, ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


def write_meta(session_dir: Path | str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` (``None`` values skipped) into ``session.json`` atomically; the result."""
    meta = read_meta(session_dir)
    meta.update({k: v for k, v in fields.items() if v is not None})
    write_json_atomic(Path(session_dir) / META, meta)
    return meta


def session_ended(session_dir: Path | str) -> bool:
    """Whether the capture side recorded the end of the lecture."""
    return bool(read_meta(session_dir).get("ended"))


def notes_are_outline(markdown: str) -> bool:
    """Whether ``notes.md`` text is an outline made without an LLM, whose section headings
    are keywords rather than titles (also one written as ``_Extractive outline: ...``)."""
    return any(line == NOTES_OUTLINE_LINE or line.startswith("_Extractive outline")
               for line in markdown.splitlines()[:4])


# -- names and folders -------------------------------------------------------------


def default_session_name(now: _dt.datetime | None = None) -> str:
    """``YYYY-MM-DD_HHMM`` in local time."""
    return (now or _dt.datetime.now()).strftime("%Y-%m-%d_%H%M")


def check_session_name(name: str) -> str:
    """``name`` if it can be a session folder name, else :class:`SessionNameError`."""
    if not _NAME_RE.match(name):
        raise SessionNameError(
            f"session name {name!r} must be 1-128 letters, digits, '-', '_', '.', ':' "
            "and start with a letter or digit"
        )
    return name


def _is_plain_name(session: str) -> bool:
    return os.sep not in session and "/" not in session and not session.startswith((".", "~"))


def session_path(session: str, out: Path | str | None = None) -> Path:
    """The folder to create or resume for ``session``: a folder path, or a checked name under ``out``."""
    if not _is_plain_name(session):
        return Path(session).expanduser()
    return Path(out or DEFAULT_OUT).expanduser() / check_session_name(session)


def resolve_session(session: str | Path, out: str | Path | None = None) -> Path:
    """An existing session folder: a name under ``out`` (default ./lectures), or a folder path."""
    session = str(session)
    base = Path(out).expanduser() if out else DEFAULT_OUT
    candidates = [Path(session).expanduser()]
    if _is_plain_name(session):
        candidates.insert(0, base / session)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    names = [p.name for p in list_sessions(base)]
    hint = (f"; sessions in {base}: {', '.join(names[-5:])} (all: `notsound history`)" if names
            else f"; {base} holds no sessions")
    raise SessionNotFoundError(f"no session {session!r} (neither a folder nor a name under {base}){hint}")


def list_sessions(out: Path | str | None = None) -> list[Path]:
    """The session folders under ``out`` (those with a journal or ``session.json``), by name."""
    base = Path(out).expanduser() if out else DEFAULT_OUT
    try:
        entries = sorted(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if not p.name.startswith(".") and p.is_dir()
            and ((p / TRANSCRIPT).is_file() or (p / META).is_file())]


def remove_if_unused(session_dir: Path | str) -> bool:
    """Delete a session folder that holds no caption, audio or notes; whether it was removed.

    For a run that failed before any audio: the folder may hold only an
    empty journal, ``session.json``, the deck read from ``--slides``
    (``slides.json``) and an empty ``pending/`` or ``recording/``. Anything else
    keeps the folder (and everything in it) where it is.
    """
    folder = Path(session_dir)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name in (META, SLIDES, SLIDES_PDF) and entry.is_file():  # the deck is a copy of a file
            continue
        if entry.name == TRANSCRIPT and entry.is_file() and entry.stat().st_size == 0:
            continue
        if entry.name in (PENDING, RECORDING) and entry.is_dir() and not any(entry.iterdir()):
            continue
        return False
    try:
        for entry in entries:
            entry.rmdir() if entry.is_dir() else entry.unlink()
        folder.rmdir()
    except OSError as exc:
        log.warning("cannot remove the unused session folder %s: %s", folder, exc)
        return False
    return True
