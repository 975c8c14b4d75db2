"""The session directory: ``transcript.jsonl`` (fsynced per final) and ``session.json``.

A resumed session (same folder) continues: the journal knows every ``utt`` it
holds and ignores a second final for any of them, so resending after a
reconnect or a restart never writes a line twice.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live.files import write_atomic
from live.protocol import Caption, ProtocolError, caption_from_dict

__all__ = [
    "TRANSCRIPT",
    "SESSION_META",
    "JournalError",
    "Journal",
    "read_transcript",
    "write_json_atomic",
    "default_session_name",
    "resolve_session_dir",
]

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript.jsonl"
SESSION_META = "session.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class JournalError(OSError):
    """The session folder cannot be used; the message says which path and why."""


def default_session_name(now: _dt.datetime | None = None) -> str:
    """``YYYY-MM-DD_HHMM`` in local time, as DESIGN.md names session folders."""
    return (now or _dt.datetime.now()).strftime("%Y-%m-%d_%H%M")


def check_session_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise JournalError(
            f"session name {name!r} must be 1-128 letters, digits, '-', '_', '.', ':' "
            "and start with a letter or digit"
        )
    return name


def resolve_session_dir(session: str, out: Path) -> Path:
    """A session given as a folder path, or as a name under ``out``."""
    path = Path(session).expanduser()
    if path.is_dir() or os.sep in session or session.startswith("."):
        return path
    return out / check_session_name(session)


def read_transcript(path: Path) -> list[Caption]:
    """Every valid final in ``path``, first copy of each ``utt`` kept, in file order.

    A torn last line (a crash mid-write) is skipped; a bad line elsewhere is
    logged and skipped, never fatal.
    """
    captions: list[Caption] = []
    seen: set[int] = set()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return captions
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            caption = caption_from_dict(json.loads(line))
        except (ValueError, ProtocolError) as exc:
            if number < len(lines):  # the last line may be torn: expected after a crash
                log.warning("%s:%d: skipping unreadable line (%s)", path, number, exc)
            continue
        if caption.utt not in seen:
            seen.add(caption.utt)
            captions.append(caption)
    return captions


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as JSON, atomically and durably."""
    write_atomic(path, (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


@dataclass
class Journal:
    """Appends finals to ``transcript.jsonl``, each line fsynced, no ``utt`` twice."""

    directory: Path

    def __post_init__(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create session folder {self.directory}: {exc.strerror}") from None
        self.path = self.directory / TRANSCRIPT
        existing = read_transcript(self.path)
        self.utts: set[int] = {c.utt for c in existing}
        self.last_end = max((c.end for c in existing), default=0.0)
        self.words = sum(len(c.text.split()) for c in existing)
        self._repair_torn_tail()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held for the session

    @property
    def next_utt(self) -> int:
        """The number a resumed session continues from."""
        return max(self.utts) + 1 if self.utts else 0

    def _repair_torn_tail(self) -> None:
        """End the file with a newline so a torn last line cannot glue onto the next."""
        try:
            with open(self.path, "rb+") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except FileNotFoundError:
            pass

    def append(self, caption: Caption) -> bool:
        """Write ``caption`` durably; False (and nothing written) if its utt is known."""
        if caption.utt in self.utts:
            return False
        line = json.dumps(caption.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.utts.add(caption.utt)
        self.last_end = max(self.last_end, caption.end)
        self.words += len(caption.text.split())
        return True

    def __contains__(self, utt: int) -> bool:
        return utt in self.utts

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    # -- session.json ------------------------------------------------------

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.directory / SESSION_META).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``session.json`` (atomically) and return the result."""
        meta = self.read_meta()
        meta.update({k: v for k, v in fields.items() if v is not None})
        write_json_atomic(self.directory / SESSION_META, meta)
        return meta
