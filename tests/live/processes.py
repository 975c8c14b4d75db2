"""``notsound serve`` as a child process, for tests that kill and restart workers.

A worker starts on port 0 and the test reads the port it got from the line it
prints, so two tests (or two runs) never race for a port picked in advance. A
restart on the port a killed worker held retries while that port is still
taken, instead of failing on the first ``address already in use``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: what ``notsound serve`` prints once it accepts streams
LISTENING = re.compile(r"listening on wss?://\S+:(\d+)/")
#: how a bind that lost to another socket reads (Python's errno 98 text, nginx's own)
PORT_TAKEN = re.compile(r"(?i)address already in use")


def start_serve(args: list[str], log: Path, *, port: int = 0, env: dict[str, str] | None = None,
                timeout_s: float = 60.0) -> tuple[subprocess.Popen, int]:
    """Start ``notsound serve ARGS --port PORT`` writing to ``log``; the process and its port
    once it listens. Retries while ``port`` is taken; fails with the log otherwise."""
    deadline = time.monotonic() + timeout_s
    env = env if env is not None else {**os.environ, "NOTSOUND_CONFIG": str(log.parent / "none.toml")}
    while True:
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "notsound.cli", "serve", *args, "--port", str(port)],
                                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        text = wait_for_line(proc, log, deadline)
        if (found := LISTENING.search(text)) is not None:
            return proc, int(found.group(1))
        if not (port and PORT_TAKEN.search(text)) or time.monotonic() > deadline:
            raise AssertionError(f"worker did not start (exit {proc.returncode}): {text}")
        time.sleep(0.2)  # the port is still held: by a dying worker's socket, or by another process


def wait_for_line(proc: subprocess.Popen, log: Path, deadline: float, pattern: re.Pattern = LISTENING) -> str:
    """The log once it matches ``pattern`` or the process has exited; fails at ``deadline``."""
    while True:
        exited = proc.poll() is not None
        text = log.read_text(errors="replace")  # read after the poll: all of it once exited
        if pattern.search(text) or exited:
            return text
        if time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"{proc.args[0]} did not start in time: {text}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
