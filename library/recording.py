"""The session's recording: where its parts lie and what time each starts at (standard library only).

Part of the session-folder format; import these names from :mod:`library.folder`.
The capture side records every block its source gives, silences included, so a
caption's ``start`` and ``end`` are positions in the recording. Each run of a
session appends one part::

    recording/000-0.000.opus      part 0, its first sample at session time 0.000 s
    recording/001-1834.560.opus   part 1 (a restart), from session time 1834.560 s

The name holds the part's number and its offset in session seconds, so creating
the file records both at once (no second file to keep in step). A session time
``t`` lies in the last part whose offset is at most ``t``, at ``t - offset``
into it. The audio codec (Ogg Opus) is :mod:`library.opus`.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RECORDING", "RecordingPart", "recording_parts", "new_part_path", "remove_recording",
           "expire_recordings"]

log = logging.getLogger(__name__)

RECORDING = "recording"
_PART_RE = re.compile(r"^(\d{3,6})-(\d{1,9}\.\d{3})\.opus$")


@dataclass(frozen=True)
class RecordingPart:
    """One run's recording.

    Attributes:
        path: the Ogg Opus file.
        number: the part's number (0 for the first run).
        offset: session seconds of its first sample.
    """

    path: Path
    number: int
    offset: float


def recording_parts(session_dir: Path | str) -> list[RecordingPart]:
    """The parts of a session's recording by number; empty when it has none."""
    folder = Path(session_dir) / RECORDING
    try:
        names = sorted(p.name for p in folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    parts = []
    for name in names:
        match = _PART_RE.match(name)
        if match:
            parts.append(RecordingPart(folder / name, int(match.group(1)), float(match.group(2))))
    return sorted(parts, key=lambda part: part.number)


def new_part_path(session_dir: Path | str, offset: float) -> Path:
    """Where the next part, starting at session time ``offset``, goes (the file is not created)."""
    parts = recording_parts(session_dir)
    number = parts[-1].number + 1 if parts else 0
    return Path(session_dir) / RECORDING / f"{number:03d}-{max(0.0, offset):.3f}.opus"


def remove_recording(session_dir: Path | str) -> bool:
    """Delete a session's recording (its text stays); whether there was one."""
    folder = Path(session_dir) / RECORDING
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


def expire_recordings(sessions: list[Path], days: float, now: float | None = None) -> list[Path]:
    """Delete the recordings of ``sessions`` whose newest part is older than ``days``; the folders.

    ``days <= 0`` keeps every recording. A recording that cannot be deleted is logged and kept.
    """
    if days <= 0:
        return []
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = []
    for folder in sessions:
        parts = recording_parts(folder)
        try:
            newest = max((part.path.stat().st_mtime for part in parts), default=None)
            if newest is not None and newest < cutoff and remove_recording(folder):
                removed.append(folder)
        except OSError as exc:
            log.warning("cannot remove the old recording of %s: %s", folder, exc)
    return removed
