"""Paths built from a URL: a session folder, a recording part, a slide number, or nothing.

Every name that comes from a URL is checked before it touches the disk: a
session name must be a plain session-folder name (``library.folder``'s rule:
letters, digits, ``-_.:``, not starting with a dot), so ``..``, ``/``, ``\\``,
NUL and encoded slashes never pass; the folder it names must resolve inside
the library folder (a symlink leading out of it does not count); a recording
part must be one of the parts the session lists. Anything else is
:class:`NotFound` (HTTP 404), with no hint about what exists outside.
"""

from __future__ import annotations

import re
from pathlib import Path

from library.folder import (
    META,
    TRANSCRIPT,
    RecordingPart,
    SessionNameError,
    check_session_name,
    recording_parts,
)

__all__ = ["NotFound", "session_folder", "recording_part", "slide_number", "inside"]

_SLIDE = re.compile(r"[1-9][0-9]{0,4}")


class NotFound(Exception):
    """Nothing at this URL (answered 404)."""


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink followed, lies in ``root`` (resolved)."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):
        return False


def session_folder(library: Path, name: str) -> Path:
    """The session folder ``name`` of the library; :class:`NotFound` for anything else."""
    try:
        check_session_name(name)
    except SessionNameError:
        raise NotFound(name) from None
    if name.startswith(".") or ".." in name:
        raise NotFound(name)
    folder = library / name
    if not folder.is_dir() or not inside(folder, library):
        raise NotFound(name)
    if not ((folder / TRANSCRIPT).is_file() or (folder / META).is_file()):
        raise NotFound(name)
    return folder


def recording_part(folder: Path, part: str) -> RecordingPart:
    """The recording part called ``part`` of a session folder; :class:`NotFound` otherwise."""
    for candidate in recording_parts(folder):
        if candidate.path.name == part:
            if not inside(candidate.path, folder) or not candidate.path.is_file():
                raise NotFound(part)
            return candidate
    raise NotFound(part)


def slide_number(text: str) -> int:
    """A slide number from a URL (``1`` .. ``99999``, no sign, no leading zero)."""
    if not _SLIDE.fullmatch(text):
        raise NotFound(text)
    return int(text)
