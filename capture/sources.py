"""Audio sources: a microphone (sounddevice) and any audio/video file (ffmpeg).

Every source is an async iterator of int16 mono 16 kHz numpy blocks of
``block_s`` seconds (the last one may be shorter), used as an async context
manager::

    async with MicrophoneSource(device="pulse") as mic:
        async for block in mic:
            ...

Both count ``position_s`` (seconds of audio yielded) and ``dropped_seconds``
(audio lost because the consumer fell behind; always 0 for files).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE
from common.errors import NotSoundError

__all__ = [
    "SAMPLE_RATE",
    "CaptureError",
    "DecoderMissingError",
    "FileSource",
    "InputDevice",
    "MicrophoneSource",
    "NoInputDeviceError",
    "PortAudioMissingError",
    "list_input_devices",
    "resolve_input_device",
]

PORTAUDIO_HINT = (
    "PortAudio is missing: apt install libportaudio2 (Debian/Ubuntu) or brew install portaudio"
)


class CaptureError(NotSoundError):
    """Audio cannot be captured or decoded; the message says what to do."""


class PortAudioMissingError(CaptureError):
    """The PortAudio library that sounddevice needs is not installed."""


class NoInputDeviceError(CaptureError):
    """No input device, or none matching the one asked for."""


class DecoderMissingError(CaptureError):
    """The ffmpeg program is not installed."""


def _sounddevice():
    """Import sounddevice lazily, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as exc:  # raised at import when libportaudio cannot be loaded
        raise PortAudioMissingError(PORTAUDIO_HINT) from exc
    return sounddevice


class _Rechunker:
    """Turns arbitrary-sized int16 pieces into blocks of exactly ``size`` samples."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rest = np.zeros(0, dtype=np.int16)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        joined = np.concatenate([self._rest, pcm]) if self._rest.size else pcm
        full = len(joined) // self.size * self.size
        self._rest = joined[full:]
        return [joined[i : i + self.size] for i in range(0, full, self.size)]

    def drain(self) -> np.ndarray | None:
        rest, self._rest = self._rest, np.zeros(0, dtype=np.int16)
        return rest if rest.size else None


class _Source(ABC):
    """Shared bookkeeping: block size, position, drops, context manager."""

    def __init__(self, block_s: float) -> None:
        if not 0.01 <= block_s <= 10.0:
            raise ValueError(f"block_s must be between 0.01 and 10 seconds, not {block_s}")
        self.block_samples = round(block_s * SAMPLE_RATE)
        self.samples_yielded = 0
        self.dropped_seconds = 0.0
        self._started = False

    @property
    def position_s(self) -> float:
        """Seconds of 16 kHz audio yielded so far."""
        return self.samples_yielded / SAMPLE_RATE

    @abstractmethod
    async def start(self) -> None:
        """Open the device or start the decoder."""

    @abstractmethod
    async def close(self) -> None:
        """Release the device or stop the decoder; safe to call twice."""

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __aiter__(self):
        if not self._started:
            raise RuntimeError(f"use 'async with {type(self).__name__}(...)' before iterating")
        return self

    def _count(self, block: np.ndarray) -> np.ndarray:
        self.samples_yielded += block.size
        return block


# -- microphone -----------------------------------------------------------------


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool

    def __str__(self) -> str:
        mark = "*" if self.is_default else " "
        return f"{mark} {self.index:>3}  {self.name}  ({self.channels} ch, {self.default_samplerate:g} Hz)"


def list_input_devices() -> list[InputDevice]:
    """Every device that can record, as PortAudio sees it now."""
    sd = _sounddevice()
    try:
        default = sd.default.device[0]
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        raise CaptureError(f"cannot list audio devices: {exc}") from exc
    if default is None or default < 0:
        default = _default_input_index(sd)
    return [
        InputDevice(i, d["name"], d["max_input_channels"], d["default_samplerate"], i == default)
        for i, d in enumerate(devices)
        if d["max_input_channels"] > 0
    ]


def _default_input_index(sd) -> int:
    try:
        return int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError, KeyError):
        return -1


def _device_table(devices: list[InputDevice]) -> str:
    if not devices:
        return "no input devices found (is a microphone connected? `notsound devices` lists them)"
    return "input devices:\n" + "\n".join(str(d) for d in devices)


def resolve_input_device(device: int | str | None) -> InputDevice:
    """The input device for ``None`` (default), an index, or part of a name."""
    devices = list_input_devices()
    if device is None:
        for d in devices:
            if d.is_default:
                return d
        raise NoInputDeviceError(
            f"there is no default input device; pass --device\n{_device_table(devices)}"
        )
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d.index == index:
                return d
        raise NoInputDeviceError(f"no input device with index {index}\n{_device_table(devices)}")
    wanted = str(device).strip().lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    found = exact or [d for d in devices if wanted in d.name.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NoInputDeviceError(f"no input device matches {device!r}\n{_device_table(devices)}")
    raise NoInputDeviceError(
        f"{device!r} matches {len(found)} input devices; give an index or a longer name\n"
        f"{_device_table(found)}"
    )


def _supports_16k(sd, index: int) -> bool:
    try:
        sd.check_input_settings(device=index, samplerate=SAMPLE_RATE, channels=1, dtype="int16")
    except (sd.PortAudioError, ValueError):
        return False
    return True


class MicrophoneSource(_Source):
    """Live audio from an input device via PortAudio.

    ``device`` is None (the default input), an index (int or digit string) or
    a case-insensitive part of a device name. Devices that cannot record at
    16 kHz are opened at their default rate (or at ``capture_rate`` when
    given) and resampled to 16 kHz with soxr. At most ``queue_s`` seconds wait
    for the consumer; beyond that blocks are dropped and counted
    (``dropped_blocks``, ``dropped_seconds``). ``status_flags`` and
    ``overflows`` count PortAudio's callback warnings.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        block_s: float = 0.1,
        queue_s: float = 5.0,
        capture_rate: int | None = None,
    ) -> None:
        super().__init__(block_s)
        self.device = device
        self.queue_blocks = max(1, math.ceil(queue_s / block_s))
        self.capture_rate = capture_rate
        self.dropped_blocks = 0
        self.status_flags = 0
        self.overflows = 0
        self.input_device: InputDevice | None = None
        self.samplerate = SAMPLE_RATE  # the rate the device records at
        self._block_s = block_s
        self._stream = None
        self._queue: asyncio.Queue | None = None
        self._finished = False
        self._closing = False
        self._resampler = None
        self._rechunk = _Rechunker(self.block_samples)
        self._ready: deque[np.ndarray] = deque()

    async def start(self) -> None:
        if self._started:
            return
        sd = _sounddevice()
        self.input_device = resolve_input_device(self.device)
        self.samplerate = self.capture_rate or SAMPLE_RATE
        if self.capture_rate is None and not _supports_16k(sd, self.input_device.index):
            self.samplerate = int(self.input_device.default_samplerate)
        if self.samplerate != SAMPLE_RATE:
            self._resampler = _make_resampler(self.samplerate)
        self._queue = asyncio.Queue(maxsize=self.queue_blocks)
        await asyncio.to_thread(self._open_stream, sd, asyncio.get_running_loop())
        self._started = True

    def _open_stream(self, sd, loop: asyncio.AbstractEventLoop) -> None:
        def callback(indata, frames, time_info, status) -> None:
            loop.call_soon_threadsafe(self._put, indata[:, 0].copy(), status)

        def finished() -> None:
            loop.call_soon_threadsafe(self._finish)

        try:
            self._stream = sd.InputStream(
                device=self.input_device.index,
                samplerate=self.samplerate,
                channels=1,
                dtype="int16",
                blocksize=round(self._block_s * self.samplerate),
                callback=callback,
                finished_callback=finished,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            raise CaptureError(f"cannot record from {self.input_device.name!r}: {exc}") from exc

    def _put(self, block: np.ndarray, status) -> None:
        if status:
            self.status_flags += 1
            if status.input_overflow:
                self.overflows += 1
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            self.dropped_blocks += 1
            self.dropped_seconds += block.size / self.samplerate

    def _finish(self) -> None:
        self._finished = True
        if self._queue is not None and not self._queue.full():
            self._queue.put_nowait(None)  # wakes a consumer waiting on an empty queue

    async def __anext__(self) -> np.ndarray:
        while not self._ready:
            if self._finished and self._queue.empty():
                return self._last_block()
            block = await self._queue.get()
            if block is None:
                continue
            if self._resampler is not None:
                block = self._resampler.resample_chunk(block)
            self._ready.extend(self._rechunk.push(block))
        return self._count(self._ready.popleft())

    def _last_block(self) -> np.ndarray:
        if self._resampler is not None:
            self._rechunk.push(
                self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            )
            self._resampler = None
        rest = self._rechunk.drain()
        if rest is not None:
            return self._count(rest)
        if not self._closing:
            raise CaptureError(
                f"the input stream of {self.input_device.name!r} stopped unexpectedly"
            )
        raise StopAsyncIteration

    async def close(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(_close_stream, stream)


def _close_stream(stream) -> None:
    try:
        stream.abort()
    finally:
        stream.close()


def _make_resampler(rate: int):
    try:
        import soxr
    except ImportError as exc:
        raise CaptureError(
            f"the input device records at {rate} Hz, not 16 kHz, and resampling needs soxr: pip install soxr"
        ) from exc
    return soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16")


# -- files ----------------------------------------------------------------------


class FileSource(_Source):
    """Audio of any file ffmpeg can read (audio or video), decoded to 16 kHz mono.

    ``realtime=True`` releases each block when a microphone would have
    delivered it (paced against a monotonic clock, so pacing errors never
    accumulate); ``realtime=False`` yields as fast as the consumer takes them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        block_s: float = 0.1,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        super().__init__(block_s)
        self.path = Path(path)
        self.realtime = realtime
        self.ffmpeg = ffmpeg
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task | None = None
        self._stderr = bytearray()
        self._t0 = 0.0
        self._done = False

    async def start(self) -> None:
        if self._started:
            return
        if not self.path.is_file():
            raise CaptureError(f"audio file not found: {self.path}")
        exe = shutil.which(self.ffmpeg)
        if exe is None:
            raise DecoderMissingError(
                f"{self.ffmpeg} not found: install ffmpeg (apt install ffmpeg / brew install ffmpeg) to read files"
            )
        self._proc = await asyncio.create_subprocess_exec(
            exe, "-nostdin", "-v", "error", "-i", str(self.path),
            "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._stderr_task = asyncio.create_task(self._collect_stderr())
        self._t0 = time.monotonic()
        self._started = True

    async def _collect_stderr(self, keep: int = 4000) -> None:
        while chunk := await self._proc.stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-keep]

    async def __anext__(self) -> np.ndarray:
        if self._done or self._proc is None:
            raise StopAsyncIteration
        data = await self._read_block()
        if not data:
            self._done = True
            await self._check_exit()
            raise StopAsyncIteration
        block = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
        if self.realtime:
            due = self._t0 + (self.samples_yielded + block.size) / SAMPLE_RATE
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self._count(block)

    async def _read_block(self) -> bytes:
        try:
            return await self._proc.stdout.readexactly(self.block_samples * 2)
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def _check_exit(self) -> None:
        code = await self._proc.wait()
        if self._stderr_task is not None:
            await self._stderr_task
        if code != 0:
            tail = self._stderr.decode(errors="replace").strip()[-800:] or f"exit status {code}"
            raise CaptureError(f"ffmpeg cannot decode audio from {self.path}: {tail}")
        if self.samples_yielded == 0:
            raise CaptureError(f"no audio in {self.path}")

    async def close(self) -> None:
        task, self._stderr_task = self._stderr_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        # Drain the pipes: a full, paused stdout would keep wait() from returning.
        await proc.communicate()
