"""The conversation file of ``notsound ask`` in the session folder, and its lock.

``ask.jsonl`` holds one JSON object a line, appended and fsynced, written
only by the process that holds ``ask.lock`` (``fcntl.flock``), so two ``ask``
processes never interleave:

- ``{"type": "snapshot", "mode": "whole"|"passages", "upto": N, "at": ISO,
  "messages": [{"role", "content"}, ...]}`` starts a window: the exact
  messages that follow the system prompt (the lecture material, the fixed
  acknowledgement, and the turns carried over from the previous window).
- ``{"type": "turn", "question": ..., "user": ..., "answer": ..., "upto": N,
  "at": ISO, "dropped": [...]}`` is one answered question: ``user`` is the
  exact message sent (new captions or passages, then the question),
  ``answer`` the answer as shown (citations checked).

``upto`` counts the captions (with text, in journal order) the conversation
had seen: the journal is append-only, so the captions after the first ``upto``
are the ones that arrived since.

A turn is written once its answer is complete, so an interrupted answer
leaves nothing half-written. A torn or unreadable line is skipped on reading
and the next append starts on a new line. ``--new`` renames the file to
``ask.YYYYmmdd-HHMMSS.jsonl`` (kept, never deleted) and starts over.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library.folder import append_durable

from .client import Message
from .errors import SummarizerError

__all__ = [
    "ASK_FILE",
    "ASK_LOCK",
    "AskBusyError",
    "Snapshot",
    "Turn",
    "Conversation",
    "AskLock",
    "load_conversation",
    "append_record",
    "start_over",
]

log = logging.getLogger(__name__)

ASK_FILE = "ask.jsonl"
ASK_LOCK = "ask.lock"
#: longest line read back; a longer one is skipped
MAX_RECORD_BYTES = 8 << 20
_POLL_S = 0.05


class AskBusyError(SummarizerError):
    """Another ``notsound ask`` holds the session's conversation."""


@dataclass(frozen=True)
class Snapshot:
    """The start of a conversation window: the messages after the system prompt."""

    mode: str
    upto: int
    messages: tuple[Message, ...]
    at: str = ""

    def record(self) -> dict[str, Any]:
        return {"type": "snapshot", "mode": self.mode, "upto": self.upto, "at": self.at,
                "messages": [dict(m) for m in self.messages]}


@dataclass(frozen=True)
class Turn:
    """One answered question, as it was sent and shown."""

    question: str
    user: str
    answer: str
    upto: int
    at: str = ""
    dropped: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {"type": "turn", "question": self.question, "user": self.user, "answer": self.answer,
                "upto": self.upto, "at": self.at, "dropped": list(self.dropped)}


@dataclass
class Conversation:
    """What ``ask.jsonl`` holds: the current window and how many questions came before it."""

    snapshot: Snapshot | None = None
    turns: list[Turn] = field(default_factory=list)
    earlier_turns: int = 0

    @property
    def questions(self) -> int:
        return self.earlier_turns + len(self.turns)


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _message(obj: Any) -> Message | None:
    if isinstance(obj, dict) and obj.get("role") in ("user", "assistant") and isinstance(obj.get("content"), str):
        return {"role": obj["role"], "content": obj["content"]}
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _snapshot(obj: dict[str, Any]) -> Snapshot | None:
    raw = obj.get("messages")
    messages = [_message(m) for m in raw] if isinstance(raw, list) else []
    if not messages or any(m is None for m in messages) or obj.get("mode") not in ("whole", "passages"):
        return None
    return Snapshot(obj["mode"], _int(obj.get("upto")), tuple(messages), str(obj.get("at", "")))  # type: ignore[arg-type]


def _turn(obj: dict[str, Any]) -> Turn | None:
    texts = [obj.get(k) for k in ("question", "user", "answer")]
    if not all(isinstance(t, str) for t in texts):
        return None
    dropped = obj.get("dropped")
    dropped = tuple(d for d in dropped if isinstance(d, str)) if isinstance(dropped, list) else ()
    return Turn(*texts, _int(obj.get("upto")), str(obj.get("at", "")), dropped)  # type: ignore[arg-type]


def _records(path: Path):
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for n, line in enumerate(fh, 1):
            if len(line) > MAX_RECORD_BYTES or not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                log.warning("%s line %d is unreadable (torn?); skipped", path, n)
                continue
            if isinstance(obj, dict):
                yield obj


def load_conversation(folder: Path) -> Conversation:
    """The conversation kept in ``folder`` (empty when there is none)."""
    conv = Conversation()
    for obj in _records(Path(folder) / ASK_FILE):
        if obj.get("type") == "snapshot" and (snap := _snapshot(obj)) is not None:
            conv.earlier_turns += len(conv.turns)
            conv.snapshot, conv.turns = snap, []
        elif obj.get("type") == "turn" and conv.snapshot is not None and (turn := _turn(obj)) is not None:
            conv.turns.append(turn)
    return conv


def append_record(folder: Path, record: dict[str, Any]) -> None:
    """Append one record to ``ask.jsonl`` and fsync it (call while holding :class:`AskLock`)."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    append_durable(Path(folder) / ASK_FILE, line, mode=0o600)


def start_over(folder: Path) -> Path | None:
    """Move ``ask.jsonl`` aside as ``ask.YYYYmmdd-HHMMSS.jsonl``; the backup's path, or None."""
    path = Path(folder) / ASK_FILE
    if not path.exists():
        return None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"ask.{stamp}.jsonl")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"ask.{stamp}-{n}.jsonl")
    os.replace(path, backup)
    return backup


class AskLock:
    """``ask.lock`` held with ``fcntl.flock`` for as long as one ``ask`` runs on a session.

    A second holder waits up to ``wait_s`` seconds, then gets
    :class:`AskBusyError` naming the process that holds it.
    """

    def __init__(self, folder: Path, wait_s: float):
        self.path = Path(folder) / ASK_LOCK
        self.wait_s = wait_s
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    os.close(fd)
                    who = f" (process {holder})" if holder.isdigit() else ""
                    raise AskBusyError(f"another `notsound ask` is running on this session{who}: "
                                       "finish it (/quit or Ctrl-D) and ask again") from None
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> AskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def turn_messages(turns: Sequence[Turn]) -> list[Message]:
    """The user/assistant message pairs of ``turns``, exactly as they were sent and shown."""
    out: list[Message] = []
    for turn in turns:
        out += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": turn.answer}]
    return out
