"""A real input device without a sound card: a private PulseAudio daemon with a null sink.

``pulse_sink`` starts ``pulseaudio`` with its own runtime folder (so it never
meets another daemon on the machine, nor one another test run started), loads a
null sink, and points this process at it: ``PULSE_SERVER`` names the daemon's
socket and ``PULSE_SOURCE`` the sink's monitor, so the ALSA ``pulse`` device
(PortAudio device ``"pulse"``) records whatever is played into the sink.
Child processes inherit both variables, so ``notsound live --device pulse``
started from a test records the sink too. PortAudio scans devices once, when
sounddevice is imported, so the fixture re-initialises it after the daemon is
up and again after it is gone.

Seen here: about every other time a stream on the ALSA ``pulse`` device is
opened, the plugin delivers its first period only after ~2 s and drops what
the sink played meanwhile; start playing once the recorder has received audio
(or a few seconds after it opened the device).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SINK = "lecture"


@dataclass(frozen=True)
class PulseSink:
    """A running null sink: ``name`` for ``paplay --device``, ``server`` for ``PULSE_SERVER``."""

    name: str
    server: str
    device: str = "pulse"  # the PortAudio input device that records the sink

    def play(self, wav_path: str | os.PathLike) -> subprocess.Popen:
        """Start playing ``wav_path`` into the sink; wait on the returned process."""
        return subprocess.Popen(
            ["paplay", f"--server={self.server}", f"--device={self.name}", str(wav_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def _rescan_portaudio() -> None:
    """Make PortAudio enumerate devices again (sounddevice only does it at import)."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def _start_daemon(root: Path) -> tuple[int, str]:
    env = dict(os.environ)
    for key in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK"):
        env.pop(key, None)
    env.update(
        PULSE_RUNTIME_PATH=str(root / "run"),
        PULSE_STATE_PATH=str(root / "state"),
        HOME=str(root / "home"),  # keeps the cookie and config out of the real home
    )
    (root / "home").mkdir()
    cmd = [
        "pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
        f"--load=module-null-sink sink_name={SINK}",
        "--load=module-native-protocol-unix auth-anonymous=1",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.fail(f"pulseaudio did not start (exit {done.returncode}): {done.stderr.strip()}")
    pid = int((root / "run" / "pid").read_text().split()[0])
    return pid, f"unix:{root / 'run' / 'native'}"


def _wait_ready(server: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        probe = subprocess.run(["pactl", f"--server={server}", "list", "short", "sinks"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.returncode == 0 and SINK in probe.stdout:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"PulseAudio null sink not ready: {probe.stderr.strip() or probe.stdout}")
        time.sleep(0.1)


def _stop_daemon(pid: int, timeout_s: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def pulse_sink() -> Iterator[PulseSink]:
    """A PulseAudio null sink recorded by the PortAudio device ``"pulse"``."""
    missing = [p for p in ("pulseaudio", "paplay", "pactl") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt install pulseaudio pulseaudio-utils)")
    saved = {key: os.environ.get(key) for key in ("PULSE_SERVER", "PULSE_SOURCE")}
    with tempfile.TemporaryDirectory(prefix="notsound-pulse-") as tmp:
        pid, server = _start_daemon(Path(tmp))
        try:
            _wait_ready(server)
            os.environ["PULSE_SERVER"] = server
            os.environ["PULSE_SOURCE"] = f"{SINK}.monitor"
            _rescan_portaudio()
            yield PulseSink(name=SINK, server=server)
        finally:
            _stop_daemon(pid)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _rescan_portaudio()
