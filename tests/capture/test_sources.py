"""Audio sources against the real things: ffmpeg decoding files, PortAudio recording PulseAudio."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from capture import sources
from capture.sources import (
    SAMPLE_RATE,
    CaptureError,
    DecoderMissingError,
    FileSource,
    MicrophoneSource,
    NoInputDeviceError,
    PortAudioMissingError,
    list_input_devices,
    resolve_input_device,
)
from tests.speech import PARAGRAPH, have_espeak, lecture, synth, write_wav

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng and sox"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """The same espeak-ng speech as wav, mp3 and mp4 (with a video track), plus bad files."""
    folder = tmp_path_factory.mktemp("media")
    wav = write_wav(folder / "speech.wav", lecture(PARAGRAPH[:2], gap_s=0.7))
    files = {"wav": wav, "mp3": folder / "speech.mp3", "mp4": folder / "speech.mp4"}
    _ffmpeg("-i", str(wav), "-ar", "44100", "-b:a", "64k", str(files["mp3"]))
    duration = f"{len(lecture(PARAGRAPH[:2], gap_s=0.7)) / SAMPLE_RATE:.3f}"
    _ffmpeg("-f", "lavfi", "-i", f"color=c=blue:s=160x120:d={duration}", "-i", str(wav),
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ar", "48000", "-shortest", str(files["mp4"]))  # fmt: skip
    files["silent_video"] = folder / "silent.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=160x120:d=1", "-c:v", "libx264",
            "-preset", "ultrafast", str(files["silent_video"]))  # fmt: skip
    files["text"] = folder / "notes.txt"
    files["text"].write_text("these are not the droids you are looking for\n" * 20)
    files["short"] = write_wav(folder / "short.wav", synth("One two three."))
    return files


async def _read_all(source) -> list[np.ndarray]:
    async with source:
        return [block async for block in source]


@pytest.mark.parametrize("kind", ["wav", "mp3", "mp4"])
async def test_file_source_decodes_audio_and_video_files_to_16k_int16_blocks(media, kind):
    original_s = len(lecture(PARAGRAPH[:2], gap_s=0.7)) / SAMPLE_RATE
    source = FileSource(media[kind], realtime=False)
    blocks = await _read_all(source)
    assert all(b.dtype == np.int16 and b.ndim == 1 for b in blocks)
    assert all(len(b) == 1600 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 1600
    total = sum(len(b) for b in blocks) / SAMPLE_RATE
    assert abs(total - original_s) <= 0.05, (kind, total, original_s)
    assert source.position_s == pytest.approx(total)
    assert source.dropped_seconds == 0.0
    assert np.abs(np.concatenate(blocks)).max() > 3000  # speech, not silence


async def test_file_source_wav_round_trip_is_sample_exact(media):
    pcm = lecture(PARAGRAPH[:2], gap_s=0.7)
    blocks = await _read_all(FileSource(media["wav"], realtime=False, block_s=0.25))
    assert all(len(b) == 4000 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), pcm)


async def test_realtime_file_source_takes_about_real_time(media):
    duration = len(synth("One two three.")) / SAMPLE_RATE
    began = time.monotonic()
    blocks = await _read_all(FileSource(media["short"], realtime=True))
    elapsed = time.monotonic() - began
    assert sum(len(b) for b in blocks) / SAMPLE_RATE == pytest.approx(duration)
    assert elapsed >= duration - 0.05  # never faster than real time (no upper bound: noisy CI)


class _VirtualClock:
    """Stands in for the clock and ``asyncio.sleep`` inside ``capture.sources``: a wait moves
    the clock on at once and is recorded, so pacing is checked exactly and without waiting."""

    def __init__(self, monkeypatch) -> None:
        self.start = self.now = 1000.0
        self.waits: list[float] = []
        monkeypatch.setattr(sources, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(sources, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": self.sleep}))

    async def sleep(self, delay: float, result=None):
        self.waits.append(delay)
        self.now += max(delay, 0.0)
        await asyncio.sleep(0)
        return result


async def test_fast_file_source_never_waits_for_the_clock(media, monkeypatch):
    clock = _VirtualClock(monkeypatch)
    blocks = await _read_all(FileSource(media["wav"], realtime=False))
    assert len(blocks) > 10 and clock.waits == []


async def test_realtime_file_source_releases_each_block_when_a_microphone_would(media, monkeypatch):
    clock = _VirtualClock(monkeypatch)
    source = FileSource(media["short"], realtime=True)
    blocks = await _read_all(source)
    assert clock.waits == pytest.approx([len(b) / SAMPLE_RATE for b in blocks])
    assert clock.now - clock.start == pytest.approx(source.position_s)


async def test_missing_file_is_a_clear_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="audio file not found: .*nope.wav"):
        await _read_all(FileSource(tmp_path / "nope.wav"))


async def test_file_without_audio_gives_ffmpegs_reason(media):
    with pytest.raises(CaptureError, match="ffmpeg cannot decode audio from .*notes.txt: .+"):
        await _read_all(FileSource(media["text"], realtime=False))
    with pytest.raises(CaptureError, match="silent.mp4"):
        await _read_all(FileSource(media["silent_video"], realtime=False))


async def test_missing_ffmpeg_says_to_install_it(media):
    with pytest.raises(DecoderMissingError, match="install ffmpeg"):
        await _read_all(FileSource(media["wav"], ffmpeg="ffmpeg-that-is-not-installed"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_leaving_early_stops_the_decoder(media):
    async with FileSource(media["wav"], realtime=False) as source:
        pid = source._proc.pid
        async for _ in source:
            break
    assert _gone(pid)


async def test_cancelling_a_realtime_reader_stops_the_decoder(media):
    pids = []
    reading = asyncio.Event()

    async def consume():
        async with FileSource(media["wav"], realtime=True) as source:
            pids.append(source._proc.pid)
            async for _ in source:
                reading.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(reading.wait(), 30)  # the decoder runs and audio flows
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pids and _gone(pids[0])


# -- microphone through PulseAudio ---------------------------------------------------


def _best_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded``."""
    from scipy.signal import correlate

    rec, ref = recorded.astype(np.float64), reference.astype(np.float64)
    corr = correlate(rec, ref, mode="valid")
    lag = int(np.argmax(corr))
    window = rec[lag : lag + len(ref)]
    return float(corr[lag] / (np.linalg.norm(ref) * np.linalg.norm(window) + 1e-9))


async def _record_while_playing(pulse_sink, wav: Path, mic: MicrophoneSource, seconds: float):
    blocks = []

    async def collect():
        async for block in mic:
            blocks.append(block)
            if mic.position_s >= seconds:
                return

    async with mic:
        # The ALSA "pulse" plugin sometimes delivers its first period only after
        # ~2 s and drops what the sink played meanwhile: play once audio flows.
        blocks.append(await asyncio.wait_for(mic.__anext__(), timeout=10))
        player = pulse_sink.play(wav)
        try:
            await asyncio.wait_for(collect(), timeout=seconds + 10)
        finally:
            await asyncio.to_thread(player.wait)
    return blocks


@pytest.mark.parametrize("capture_rate", [None, 48_000], ids=["native-16k", "resampled-48k"])
async def test_microphone_records_speech_played_into_the_pulse_sink(
    pulse_sink, tmp_path, capture_rate
):
    speech = synth("Evaporation, condensation and rain.")
    wav = write_wav(tmp_path / "speech.wav", speech)
    mic = MicrophoneSource(pulse_sink.device, capture_rate=capture_rate)
    blocks = await _record_while_playing(pulse_sink, wav, mic, len(speech) / SAMPLE_RATE + 1.0)
    assert mic.samplerate == (capture_rate or SAMPLE_RATE)
    assert all(b.dtype == np.int16 and len(b) == 1600 for b in blocks)
    assert _best_match(np.concatenate(blocks), speech) > 0.9
    assert mic.dropped_blocks == 0


async def test_microphone_drops_and_counts_blocks_when_the_consumer_stalls(pulse_sink, tmp_path):
    wav = write_wav(tmp_path / "speech.wav", synth("One two three four five."))
    mic = MicrophoneSource(pulse_sink.device, queue_s=0.3)
    async with mic:
        await asyncio.wait_for(mic.__anext__(), timeout=10)  # audio flows
        player = pulse_sink.play(wav)
        for _ in range(600):  # nobody reads: the queue holds 3 blocks, the rest is dropped
            if mic.dropped_blocks >= 5:
                break
            await asyncio.sleep(0.05)
        for _ in range(3):
            await mic.__anext__()
        await asyncio.to_thread(player.wait)
    assert mic.dropped_blocks >= 5
    assert mic.dropped_seconds == pytest.approx(mic.dropped_blocks * 0.1)


async def test_device_index_as_digit_string_selects_that_device(pulse_sink):
    pulse = resolve_input_device("pulse")
    assert resolve_input_device(str(pulse.index)) == pulse
    assert resolve_input_device("PULSE") == pulse  # exact name, any case


async def test_unknown_device_name_lists_the_input_devices(pulse_sink):
    names = [d.name for d in list_input_devices()]
    assert "pulse" in names
    with pytest.raises(NoInputDeviceError, match="no input device matches 'blue yeti'") as err:
        async with MicrophoneSource("blue yeti"):
            pass
    assert "input devices:" in str(err.value) and "pulse" in str(err.value)


async def test_ambiguous_device_name_lists_the_candidates(pulse_sink):
    names = [d.name for d in list_input_devices()]
    common = "e"  # in "pulse" and "default"
    assert sum(common in n.lower() for n in names) >= 2
    with pytest.raises(NoInputDeviceError, match="matches .* input devices; give an index"):
        resolve_input_device(common)


async def test_unknown_device_index_is_a_clear_error(pulse_sink):
    with pytest.raises(NoInputDeviceError, match="no input device with index 999"):
        resolve_input_device(999)


def test_missing_portaudio_gives_install_hint():
    """sounddevice raises OSError at import without libportaudio; we say what to install."""
    script = (
        "import ctypes.util, sys\n"
        "ctypes.util.find_library = lambda name: None\n"
        "sys.modules['_sounddevice_data'] = None\n"
        "from capture.sources import list_input_devices, PortAudioMissingError\n"
        "try:\n"
        "    list_input_devices()\n"
        "except PortAudioMissingError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "PortAudio is missing: apt install libportaudio2" in done.stdout
    assert PortAudioMissingError.__mro__[1] is CaptureError
