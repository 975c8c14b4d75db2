"""Durable writes: atomic replacement (a reader, or a crash, sees the old or the new file)
and appending records to a line file (a crash leaves at most a torn last line).

Part of the session-folder format; import these names from
:mod:`library.folder`. Standard library only.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["write_atomic", "write_json_atomic", "remove_stale_temps", "append_durable", "append_fd"]

_TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path | str, data: str | bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a reader (or a crash) sees the old or the new file.

    The data goes to a temporary file in the same folder (created with
    ``mode``), is fsynced, then ``os.replace``-d over ``path``; with
    ``durable`` the folder is fsynced too so the rename lasts.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - not every file system can fsync a folder
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path | str, obj: Any, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``obj`` as indented UTF-8 JSON, atomically and durably."""
    write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n", mode=mode)


def remove_stale_temps(folder: Path | str, name: str) -> int:
    """Delete the temporary files a killed writer of ``name`` left in ``folder``; how many."""
    count = 0
    for tmp in Path(folder).glob(f".{name}.*{_TEMP_SUFFIX}"):
        try:
            tmp.unlink()
            count += 1
        except OSError:
            pass
    return count



def append_durable(path: Path | str, data: bytes, *, mode: int = 0o644) -> None:
    """Append the whole lines ``data`` to ``path`` (created with ``mode``), as :func:`append_fd`."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode)
    try:
        append_fd(fd, data)
    finally:
        os.close(fd)


def append_fd(fd: int, data: bytes) -> None:
    """Append ``data`` to ``fd`` (opened read-write with ``O_APPEND``) in one write, then fsync.

    A file whose last line is torn (a writer died before its newline) gets a
    newline first, so ``data`` starts on a line of its own and the torn line
    stays one unreadable line that readers skip.
    """
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
