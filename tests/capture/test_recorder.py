"""The session's recording: real Ogg Opus written by the pipeline, decoded again and timed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from capture.pipeline import Resume
from capture.recorder import Recorder
from library.folder import RECORDING, new_part_path, recording_parts
from library.opus import OpusWriter, RecordingReadError, read_part, recorded_until
from tests.capture.test_pipeline import Heard, MemorySource, pipeline, worker  # noqa: F401 - fixture
from tests.capture.test_segmenter import tone
from tests.speech import SAMPLE_RATE, silence

#: tone bursts (start s, length s) of one run, in the run's own time
BURSTS = [(0.7, 1.0), (3.1, 1.4), (5.9, 0.8)]


def bursts_audio(total_s: float = 8.0) -> np.ndarray:
    pcm = silence(total_s)
    for start, length in BURSTS:
        i = round(start * SAMPLE_RATE)
        pcm[i:i + round(length * SAMPLE_RATE)] = tone(length)
    return pcm


def onsets(pcm: np.ndarray, level: int = 2000, gap_s: float = 0.3) -> list[float]:
    """Seconds where the signal first gets louder than ``level`` after ``gap_s`` of quiet."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
    starts = [loud[0]] + [b for a, b in zip(loud, loud[1:], strict=False) if b - a > gap_s * SAMPLE_RATE]
    return [s / SAMPLE_RATE for s in starts] if len(loud) else []


async def test_caption_times_are_positions_in_the_recording_across_a_restart(tmp_path, worker):  # noqa: F811
    folder = tmp_path / "s"
    runs = []
    for _ in range(2):  # the second run is a restart of the same session
        heard = Heard(folder / "pending")
        capture = pipeline(folder, worker.url, heard)
        resume = capture.recover(set(), Resume(recorded_until(folder), len(runs) * 10))
        await capture.run(MemorySource(bursts_audio()), resume, asyncio.Event())
        runs.append((resume.offset, [c for c, _ in heard.finals]))

    parts = recording_parts(folder)
    assert [(p.number, p.offset) for p in parts] == [(0, 0.0), (1, 8.0)], "the parts lie end to end"
    for part, (offset, captions) in zip(parts, runs, strict=True):
        assert part.offset == offset
        audio = read_part(part.path)
        assert len(audio) == len(bursts_audio()), "every block is recorded, silences included"
        found = onsets(audio)
        assert len(found) == len(BURSTS) == len(captions)
        for (start, _), heard_at, caption in zip(BURSTS, found, captions, strict=True):
            assert abs(heard_at - start) < 0.05, (heard_at, start)
            assert caption.start <= part.offset + heard_at <= caption.end, "the caption covers its sound"


async def test_a_write_error_stops_the_recording_with_one_notice_and_captions_go_on(
        tmp_path, worker, monkeypatch):  # noqa: F811
    folder = tmp_path / "s"
    path = tmp_path / "full.opus"
    path.symlink_to("/dev/full")  # every write: ENOSPC
    monkeypatch.setattr("capture.pipeline.new_part_path", lambda *_: path)
    heard = Heard(folder / "pending")
    notices: list[str] = []
    capture = pipeline(folder, worker.url, heard)
    capture.callbacks = type(capture.callbacks)(**{**capture.callbacks.__dict__, "on_notice": notices.append})
    await capture.run(MemorySource(np.concatenate([bursts_audio()] * 3)), Resume(), asyncio.Event())
    assert len(heard.finals) == 3 * len(BURSTS), "captions go on"
    assert len(notices) == 1 and "recording stopped" in notices[0] and str(path) in notices[0]


async def test_a_run_without_audio_leaves_no_recording(tmp_path):
    recorder = Recorder(new_part_path(tmp_path, 0.0), notice=lambda text: None)
    await recorder.close()
    assert not (tmp_path / RECORDING).exists()


def write_part(path: Path, pcm: np.ndarray, sync_every: int) -> list[int]:
    """Write ``pcm`` in 0.1 s blocks, syncing every ``sync_every`` blocks; file sizes at each sync."""
    writer = OpusWriter(path)
    sizes = []
    for n, i in enumerate(range(0, len(pcm), 1600), start=1):
        writer.write(pcm[i:i + 1600])
        if n % sync_every == 0:
            writer.sync()
            sizes.append((n * 1600, os.path.getsize(path)))
    writer.close()
    return sizes


def test_a_part_cut_after_a_sync_plays_up_to_two_seconds_before_it(tmp_path):
    pcm = np.concatenate([bursts_audio()] * 2)
    path = tmp_path / "000-0.000.opus"
    synced = write_part(path, pcm, sync_every=5)
    whole = path.read_bytes()
    for samples, size in synced[2::4]:  # what a kill -9 right after that sync leaves
        cut = tmp_path / "cut.opus"
        cut.write_bytes(whole[:size + 37])  # and a torn page after it
        decoded = read_part(cut)
        assert len(decoded) >= samples - 2 * SAMPLE_RATE
        assert len(decoded) <= samples + SAMPLE_RATE
        assert onsets(decoded) == pytest.approx(onsets(pcm[:len(decoded)]), abs=0.05)


def test_a_damaged_part_gives_what_precedes_the_damage_or_a_clear_error(tmp_path):
    pcm = np.concatenate([bursts_audio()] * 2)
    path = tmp_path / "000-0.000.opus"
    write_part(path, pcm, sync_every=10)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 400] = os.urandom(400)
    path.write_bytes(bytes(data))
    assert 0 < len(read_part(path)) <= len(pcm)
    path.write_bytes(b"OggS" + os.urandom(300))
    with pytest.raises(RecordingReadError):
        read_part(path)
    path.write_bytes(b"")
    with pytest.raises(RecordingReadError):
        read_part(path)
