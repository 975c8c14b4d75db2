"""Crash-safe file replacement for the worker's own files (key store, usage).

The writer is :func:`library.folder.write_atomic`; files here hold secrets or
their hashes, so they are created readable by the owner only.
"""

from __future__ import annotations

from pathlib import Path

from library import folder

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (mode 0600): the old or the new content, never a mix."""
    folder.write_atomic(path, data, durable=durable, mode=0o600)
