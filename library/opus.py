"""The recording's audio codec: 16 kHz mono Ogg Opus through libsndfile (``soundfile``).

libsndfile's Opus encoder at its default rate gives about 25 kbit/s for
continuous speech (about 11 MB an hour, less with pauses). :meth:`OpusWriter.sync`
hands the pages encoded so far to the file and fsyncs it: an Ogg stream cut
anywhere plays up to its last whole page, so after a crash or a power cut the
recording is playable up to about the last sync, with no repair step.
Decoding gives back exactly the samples written (the Opus pre-skip is
handled), so sample positions are session times.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from common.audio import SAMPLE_RATE
from common.errors import NotSoundError

from .recording import recording_parts

__all__ = ["OpusWriter", "RecordingReadError", "read_part", "part_seconds", "recorded_until"]

log = logging.getLogger(__name__)

_READ_BLOCK = SAMPLE_RATE * 60


class RecordingReadError(NotSoundError):
    """A recording part holds no audio that can be decoded."""


class OpusWriter:
    """Appends int16 blocks to a new Ogg Opus file; raises ``OSError`` or ``RuntimeError`` on failure."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._file = sf.SoundFile(self._fd, "w", samplerate=SAMPLE_RATE, channels=1,
                                      format="OGG", subtype="OPUS", closefd=False)
        except BaseException:
            os.close(self._fd)
            raise
        self.samples = 0

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.asarray(block, dtype=np.int16))
        self.samples += len(block)

    def sync(self) -> None:
        """Everything written so far, on disk."""
        self._file.flush()
        os.fsync(self._fd)

    def close(self) -> None:
        """Finish the stream (last page, end-of-stream flag) and the file; safe to call twice."""
        if self._fd < 0:
            return
        try:
            if not self._file.closed:
                self._file.close()
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


def read_part(path: Path) -> np.ndarray:
    """The int16 samples of a recording part, up to where it stops decoding.

    A part cut short (a crash) or damaged past some point gives what precedes
    the damage; :class:`RecordingReadError` when nothing can be decoded.
    """
    blocks: list[np.ndarray] = []
    try:
        with sf.SoundFile(path) as fh:
            if fh.samplerate != SAMPLE_RATE or fh.channels != 1:
                raise RecordingReadError(f"{path} is not 16 kHz mono ({fh.samplerate} Hz, {fh.channels} ch)")
            while True:
                try:
                    block = fh.read(_READ_BLOCK, dtype="int16")
                except (RuntimeError, sf.SoundFileError) as exc:
                    log.warning("%s stops decoding after %.1f s: %s", path,
                                sum(map(len, blocks)) / SAMPLE_RATE, exc)
                    break
                if not len(block):
                    break
                blocks.append(block)
    except (OSError, RuntimeError, sf.SoundFileError) as exc:
        raise RecordingReadError(f"cannot decode the recording {path}: {exc}") from None
    if not blocks:
        raise RecordingReadError(f"the recording {path} holds no audio")
    return np.concatenate(blocks)


def part_seconds(path: Path) -> float:
    """Seconds of audio a part holds as its header and last page say; 0 when unreadable."""
    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError, sf.SoundFileError):
        return 0.0
    return info.frames / info.samplerate if info.samplerate else 0.0


def recorded_until(session_dir: Path | str) -> float:
    """Session seconds at which the session's recording so far ends (0 without one)."""
    parts = recording_parts(session_dir)
    return parts[-1].offset + part_seconds(parts[-1].path) if parts else 0.0
