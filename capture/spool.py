"""Audio of utterances still owed a final, kept on disk until the final is journaled.

If the capture process dies (killed, laptop battery), a restart with the same
session finds the spooled utterances and sends them again with their numbers,
so nothing spoken is lost. Layout, inside the session folder::

    pending/17.json   {"utt": 17, "start": 123.4, "ended": true}
    pending/17.pcm    int16 mono 16 kHz, appended as the utterance is spoken
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from capture.utterance import Utterance
from library.folder import PENDING, write_json_atomic

__all__ = ["Spool"]

log = logging.getLogger(__name__)


class Spool:
    """Appends each open utterance's audio to ``pending/`` and forgets it once final."""

    def __init__(self, session_dir: Path):
        self.directory = session_dir / PENDING
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, object] = {}

    def start(self, utterance: Utterance) -> None:
        utt = utterance.utt
        write_json_atomic(self.directory / f"{utt}.json", {"utt": utt, "start": utterance.start, "ended": False})
        self._files[utt] = open(self.directory / f"{utt}.pcm", "ab")  # noqa: SIM115

    def audio(self, utt: int, pcm: np.ndarray) -> None:
        fh = self._files.get(utt)
        if fh is not None:
            fh.write(np.ascontiguousarray(pcm, dtype="<i2").data)  # int16 on a little-endian host: no copy
            fh.flush()

    def end(self, utterance: Utterance) -> None:
        utt = utterance.utt
        fh = self._files.pop(utt, None)
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        write_json_atomic(self.directory / f"{utt}.json", {"utt": utt, "start": utterance.start, "ended": True})

    def done(self, utt: int) -> None:
        """The final of ``utt`` is journaled: its audio is no longer needed."""
        fh = self._files.pop(utt, None)
        if fh is not None:
            fh.close()
        for suffix in (".pcm", ".json"):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{utt}{suffix}").unlink()

    def recover(self, known: set[int] | frozenset[int] = frozenset()) -> list[Utterance]:
        """Utterances left by an earlier run that are not in ``known`` (already journaled ones are removed).

        Each comes back whole (ended, one chunk), whether or not the earlier run saw its end.
        """
        found: list[Utterance] = []
        for meta_path in sorted(self.directory.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
                utt, start = int(meta["utt"]), float(meta["start"])
            except (ValueError, KeyError, TypeError, OSError) as exc:
                log.warning("ignoring unreadable spool entry %s: %s", meta_path, exc)
                continue
            if utt in known:
                self.done(utt)
                continue
            pcm_path = self.directory / f"{utt}.pcm"
            data = pcm_path.read_bytes() if pcm_path.exists() else b""
            pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
            if len(pcm) == 0:
                self.done(utt)
                continue
            found.append(Utterance.whole(utt, start, pcm))
        found.sort(key=lambda s: s.utt)
        return found

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
