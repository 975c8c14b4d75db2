"""Session folders and atomic file replacement."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from .errors import SessionNotFoundError

__all__ = [
    "DEFAULT_OUT",
    "TRANSCRIPT",
    "NOTES",
    "NOTES_STATE",
    "SUMMARY",
    "SESSION_META",
    "write_atomic",
    "remove_stale_temps",
    "resolve_session",
    "read_meta",
    "session_ended",
]

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("lectures")
TRANSCRIPT = "transcript.jsonl"
NOTES = "notes.md"
NOTES_STATE = "notes.state.json"
SUMMARY = "summary.md"
SESSION_META = "session.json"
_TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader (or a crash) sees the old or the new file.

    The text goes to a temporary file in the same folder, is fsynced, then
    ``os.replace``-d over ``path``; the folder is fsynced so the rename lasts.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
    data = text.encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: Path, name: str) -> int:
    """Delete temporary files that a killed writer of ``name`` left behind."""
    count = 0
    for tmp in Path(folder).glob(f".{name}.*{_TEMP_SUFFIX}"):
        try:
            tmp.unlink()
            count += 1
        except OSError:
            pass
    return count


def resolve_session(session: str | Path, out: str | Path | None = None) -> Path:
    """A session folder from a path, or from a session name under ``out`` (default ./lectures)."""
    direct = Path(session).expanduser()
    base = Path(out).expanduser() if out else DEFAULT_OUT
    for candidate in (direct, base / str(session)):
        if candidate.is_dir():
            return candidate
    names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    hint = f"; sessions in {base}: {', '.join(names[-5:])}" if names else f"; {base} has no sessions"
    raise SessionNotFoundError(f"no session {str(session)!r} (neither a folder nor a name under {base}){hint}")


def read_meta(session_dir: Path) -> dict[str, Any]:
    """``session.json`` as a dict; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads((Path(session_dir) / SESSION_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def session_ended(session_dir: Path) -> bool:
    """Whether the capture side recorded the end of the lecture."""
    return bool(read_meta(session_dir).get("ended"))
