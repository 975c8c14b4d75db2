"""The caption worker as a separate process (``python -m notsound.cli serve``), as in production.

Running it in its own process keeps its CPU and memory apart from the capture
side (VAD, client), so :class:`WorkerProcess` can report them with psutil.
A throw-away state folder holds the key store and one client key.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.engines import EngineSpec

__all__ = ["WorkerProcess", "Usage"]

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (wss?://\S+)")


@dataclass(frozen=True)
class Usage:
    """Worker CPU and memory over one phase, and the CPU that other processes took meanwhile.

    ``others_cpu_s`` is the machine's busy CPU time minus the worker's and this
    process's (with its ffmpeg children): what other users of the CPUs took.
    """

    wall_s: float
    cpu_s: float
    rss_mb: float
    others_cpu_s: float = 0.0

    @property
    def cores(self) -> float:
        """Average CPU cores the worker kept busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        others = self.others_cpu_s / self.wall_s if self.wall_s > 0 else 0.0
        return {"wall_s": round(self.wall_s, 2), "cpu_s": round(self.cpu_s, 2),
                "cores": round(self.cores, 3), "rss_mb": round(self.rss_mb, 1),
                "others_cores": round(max(others, 0.0), 3)}


class WorkerProcess:
    """``with WorkerProcess(spec, extra_args) as worker:`` then ``worker.url``, ``worker.key_file``."""

    def __init__(self, spec: EngineSpec, extra: list[str] | None = None, start_timeout_s: float = 240):
        self.spec = spec
        self.extra = extra or []
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.startup_s = 0.0
        self._tmp = tempfile.TemporaryDirectory(prefix="notsound-bench-")
        self.state_dir = Path(self._tmp.name)
        self.key_file = self.state_dir / "client.key"
        self.log_path = self.state_dir / "worker.log"
        self._proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None

    def __enter__(self) -> WorkerProcess:
        try:
            self._make_key()
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_key(self) -> None:
        from live.keys import KeyStore

        _, token = KeyStore(self.state_dir).create(name="bench")
        self.key_file.write_text(token + "\n")

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "notsound.cli", "serve", "--port", "0",
               "--state-dir", str(self.state_dir), "--max-streams-per-key", "64",
               *self.spec.serve_args(), *self.extra]
        started = time.monotonic()
        with open(self.log_path, "w") as log:
            self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        self.ps = psutil.Process(self._proc.pid)
        while time.monotonic() - started < self.start_timeout_s:
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                self.startup_s = time.monotonic() - started
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.spec.key} did not start; its log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def cpu_s(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        assert self.ps is not None
        return self.ps.memory_info().rss / 2**20

    def meter(self) -> _Meter:
        """Start measuring a phase: ``m = worker.meter(); ...; usage = m.stop()``."""
        return _Meter(self)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: the worker drains and exits
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._tmp.cleanup()


def _busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_s(me: psutil.Process, worker_pid: int) -> float:
    """CPU of this process and its children (ffmpeg decoders), the worker left out."""
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        if proc.pid == worker_pid:
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + (t.children_user + t.children_system if proc is me else 0.0)
    return total


class _Meter:
    def __init__(self, worker: WorkerProcess):
        self.worker = worker
        self.me = psutil.Process()
        self.t0 = time.monotonic()
        self.cpu0 = worker.cpu_s()
        self.busy0, self.own0 = _busy_s(), _own_s(self.me, worker.ps.pid)

    def stop(self) -> Usage:
        cpu = self.worker.cpu_s() - self.cpu0
        others = (_busy_s() - self.busy0) - cpu - (_own_s(self.me, self.worker.ps.pid) - self.own0)
        return Usage(wall_s=time.monotonic() - self.t0, cpu_s=cpu, rss_mb=self.worker.rss_mb(),
                     others_cpu_s=others)
