"""The polished layer: ``transcript.polished.jsonl``, what ``notsound polish`` writes (standard library only).

Part of the session-folder format; import these names from :mod:`library.folder`.
The layer has the journal's line codec, each line a final with the extra key
``words`` where the engine timed them::

    {"type":"final","utt":0,"start":0.52,"end":4.1,"text":"Good morning.", ..., "words":[["Good",0.52,0.8],["morning.",0.8,1.3]]}

``utt`` numbers the layer's own captions from 0 (they do not match the
journal's utterances); times are session seconds, like the journal's. The
live journal is never rewritten.

The layer only ever appears whole: a polish in progress writes
``transcript.polished.work.jsonl`` (a header line with its fingerprint, then
each finished window's lines followed by a ``window`` marker, appended and
fsynced) and renames the finished layer into place. A polish that was killed
continues after the last marker of a work file with the same fingerprint.
``polish.lock`` (``fcntl.flock``) is held while a polish runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from common.errors import NotSoundError

from .atomic import append_durable, write_atomic
from .journal import Final, encode_final

__all__ = ["POLISHED", "POLISH_WORK", "POLISH_LOCK", "PolishBusyError", "encode_polished", "polish_lock",
           "PolishWork"]

POLISHED = "transcript.polished.jsonl"
POLISH_WORK = "transcript.polished.work.jsonl"
POLISH_LOCK = "polish.lock"

Words = Sequence[tuple[str, float, float]]


class PolishBusyError(NotSoundError):
    """Another polish of the same session is running."""


def encode_polished(final: Final, words: Words = ()) -> bytes:
    """The layer's line of ``final``: the journal line, then ``words`` when there are any."""
    line = encode_final(final)
    if not words:
        return line
    timed = json.dumps([[w, round(s, 3), round(e, 3)] for w, s, e in words], ensure_ascii=False,
                       separators=(",", ":"))
    return line[:-2] + f',"words":{timed}}}\n'.encode()


@contextlib.contextmanager
def polish_lock(session_dir: Path) -> Iterator[None]:
    """Hold ``polish.lock`` of a session; :class:`PolishBusyError` when another polish holds it."""
    fd = os.open(Path(session_dir) / POLISH_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PolishBusyError(f"another `notsound polish` of {session_dir} is running: "
                                  "wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class PolishWork:
    """The work file of one polish: the windows done so far and their lines.

    Opening it keeps what a killed polish with the same ``fingerprint``
    finished (:attr:`done` windows; a torn last window is dropped), else starts over.
    """

    def __init__(self, session_dir: Path, fingerprint: dict[str, Any]):
        self.folder = Path(session_dir)
        self.path = self.folder / POLISH_WORK
        self.fingerprint = fingerprint
        self._windows: list[list[bytes]] = []
        self.done, self.lines = self._resume()
        header = json.dumps({"type": "polish", "fingerprint": fingerprint}, separators=(",", ":"))
        write_atomic(self.path, b"".join([header.encode() + b"\n", *self._interleaved()]))

    def _resume(self) -> tuple[int, list[bytes]]:
        try:
            raw = self.path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return 0, []
        header = _parse(raw[0]) if raw else None
        if not header or header.get("fingerprint") != self.fingerprint:
            return 0, []
        pending: list[bytes] = []
        for line in raw[1:]:
            obj = _parse(line)
            if obj is None:
                continue
            if obj.get("type") == "window":
                self._windows.append(pending)
                pending = []
            else:
                pending.append(line + b"\n")
        return len(self._windows), [line for window in self._windows for line in window]

    def _interleaved(self) -> list[bytes]:
        out: list[bytes] = []
        for index, window in enumerate(self._windows):
            out += [*window, self._marker(index)]
        return out

    @staticmethod
    def _marker(index: int) -> bytes:
        return json.dumps({"type": "window", "index": index}).encode() + b"\n"

    def add_window(self, lines: Sequence[bytes]) -> None:
        """Window number :attr:`done` is finished: its lines (maybe none) and its marker, durably."""
        append_durable(self.path, b"".join(lines) + self._marker(self.done))
        self.lines += list(lines)
        self.done += 1

    def finish(self, lines: Sequence[bytes]) -> Path:
        """Put the layer (``lines``: the windows' lines as they are to be read) in place;
        the work file goes."""
        target = self.folder / POLISHED
        write_atomic(target, b"".join(lines))
        self.path.unlink(missing_ok=True)
        return target
