"""Scale-out: nginx (configured from deploy/nginx.conf) in front of two workers sharing one state folder.

Lectures stream through nginx, spread over both workers by ``least_conn``; one
worker is SIGKILLed mid-lecture and its clients reconnect through nginx to the
other, ending with every utterance journaled exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.fault_campaign import expected_texts
from library.folder import read_finals
from live.keys import KeyStore
from live.server import WorkerSettings
from notsound.liverun import LiveSettings, run_live
from tests import speech
from tests.live.processes import PORT_TAKEN, start_serve
from tests.live.processes import stop as _stop

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(p, os.X_OK)), None)

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="the nginx binary is not installed (scripts/system-deps.sh)"),
    pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required"),
]


def render_nginx_conf(template: str, listen_port: int, upstream_ports: list[int], folder: Path) -> str:
    """deploy/nginx.conf with loopback addresses and ports, and every path inside ``folder``."""
    out, in_upstream, servers_done, listens = [], False, False, 0
    for line in template.splitlines():
        code = line.split("#", 1)[0].strip()
        if code.startswith("upstream notsound_workers"):
            in_upstream = True
        elif in_upstream and code == "}":
            in_upstream = False
        if in_upstream and re.match(r"server\s+\S+:\d+", code):
            if not servers_done:
                out += [f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in upstream_ports]
                servers_done = True
            continue
        if re.fullmatch(r"listen\s+[^;]+;", code):
            out.append(f"        listen 127.0.0.1:{listen_port};")
            listens += 1
            continue
        line = re.sub(r"^(\s*)worker_processes\s+\S+;", r"\1worker_processes 1;", line)
        line = re.sub(r"^(\s*)access_log\s+\S+", rf"\1access_log {folder}/access.log", line)
        out.append(line)
        if code == "http {":
            out += [f"    {name}_temp_path {folder}/{name}_temp;"
                    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    assert servers_done and listens == 1, "deploy/nginx.conf no longer has the upstream/listen lines expected"
    return "\n".join(out) + "\n"


def _candidate_port() -> int:
    """A port free a moment ago. nginx cannot listen on port 0 and say which port it got, so
    ``_start_nginx`` tries again with another when this one was taken in the meantime."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_nginx(upstream_ports: list[int], folder: Path, timeout_s: float = 60.0) -> tuple[subprocess.Popen, int]:
    """nginx from deploy/nginx.conf in front of ``upstream_ports``: the process and its port
    once ``/health`` answers through it."""
    deadline = time.monotonic() + timeout_s
    conf, log = folder / "nginx.conf", folder / "stderr.log"
    while True:
        port = _candidate_port()
        conf.write_text(render_nginx_conf(TEMPLATE.read_text(), port, upstream_ports, folder))
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [NGINX, "-c", str(conf), "-p", str(folder),
                 "-g", f"daemon off; pid {folder}/nginx.pid; error_log stderr;"],
                stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            try:
                if _health(port).get("engine") == "fake":  # our workers answer, through this nginx
                    return proc, port
            except (OSError, ValueError):  # not listening yet, or not ours
                pass
            if time.monotonic() > deadline:
                _stop(proc)
                raise AssertionError(f"nginx did not answer on {port}: {log.read_text()}")
            time.sleep(0.05)
        text = log.read_text(errors="replace")
        if not PORT_TAKEN.search(text) or time.monotonic() > deadline:
            raise AssertionError(f"nginx exited with {proc.returncode}: {text}")


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return json.loads(response.read())


@dataclass
class Pool:
    nginx_port: int
    worker_ports: list[int]
    workers: list[subprocess.Popen]
    logs: list[Path]
    key_file: Path
    folder: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.nginx_port}/v1/stream"

    def sessions_on(self, index: int) -> set[str]:
        return set(re.findall(r"stream (\S+) opened", self.logs[index].read_text(errors="replace")))


@pytest.fixture
def pool(tmp_path) -> Iterator[Pool]:
    state = tmp_path / "shared-state"  # one folder for both workers: the same keys work on each
    _, token = KeyStore(state).create(name="scale-out test")
    key_file = tmp_path / "client.key"
    key_file.write_text(token + "\n")
    env = {**os.environ, "NOTSOUND_CONFIG": str(tmp_path / "none.toml")}
    ports: list[int] = []
    procs: list[subprocess.Popen] = []
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    try:
        for log in logs:  # port 0: each worker says which port it got
            proc, port = start_serve(["--engine", "fake", "--model", "rtf=0.2", "--no-warmup",
                                      "--state-dir", str(state)], log, env=env)
            procs.append(proc)
            ports.append(port)
        nginx_dir = tmp_path / "nginx"
        nginx_dir.mkdir()
        nginx, nginx_port = _start_nginx(ports, nginx_dir)
        procs.append(nginx)
        yield Pool(nginx_port, ports, procs[:2], logs, key_file, tmp_path)
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def lecture(tmp_path_factory) -> tuple[Path, list[str]]:
    pcm = speech.lecture(speech.PARAGRAPH, gap_s=1.2)
    path = speech.write_wav(tmp_path_factory.mktemp("lecture") / "lecture.wav", pcm)
    return path, expected_texts(pcm)


def test_rendered_config_keeps_the_production_settings(tmp_path):
    conf = render_nginx_conf(TEMPLATE.read_text(), 8000, [9001, 9002], tmp_path)
    for needed in ("least_conn;", "map $http_upgrade $connection_upgrade", "proxy_buffering off;",
                   "proxy_set_header Upgrade $http_upgrade;", "proxy_http_version 1.1;",
                   "proxy_read_timeout 3600s;", "location = /health", "# ssl_certificate "):
        assert needed in conf
    assert "server 127.0.0.1:9001" in conf and "server 127.0.0.1:9002" in conf
    assert "10.0.0." not in re.sub(r"#.*", "", conf)


def test_health_passes_through_nginx(pool):
    body = _health(pool.nginx_port)
    assert body["status"] == "ok" and body["engine"] == "fake"


async def test_lectures_spread_over_workers_and_survive_one_worker_dying(pool, lecture):
    wav, expected = lecture
    names = [f"room{i}" for i in range(4)]
    runs = {name: asyncio.create_task(run_live(
        LiveSettings(server=pool.url, input=wav, fast=True, out=pool.folder / "sessions", session=name,
                     plain=True, notes=False, max_owed=2, key_file=pool.key_file),
        WorkerSettings())) for name in names}
    try:
        # Wait until every lecture has a caption and both workers hold streams (least_conn).
        async def _spread() -> None:
            while True:
                for task in runs.values():
                    if task.done():
                        task.result()  # a failure shows here; a lecture may not end before the kill
                        raise AssertionError("a lecture ended before the worker could be killed")
                counts = [(await asyncio.to_thread(_health, p))["streams"] for p in pool.worker_ports]
                journaled = [read_finals(pool.folder / "sessions" / n / "transcript.jsonl") for n in names]
                if min(counts) >= 1 and all(journaled):
                    return counts
                await asyncio.sleep(0.05)

        counts = await asyncio.wait_for(_spread(), 60)
        assert sum(counts) == len(names) and min(counts) >= 1, counts
        victims = pool.sessions_on(0)
        assert victims and victims < set(names), "both workers serve lectures"
        pool.workers[0].send_signal(signal.SIGKILL)
        pool.workers[0].wait()
        results = {name: await asyncio.wait_for(task, 120) for name, task in runs.items()}
    finally:
        for task in runs.values():
            task.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)

    for name, result in results.items():
        path = result.session_dir / "transcript.jsonl"
        captions = read_finals(path)
        assert [c.utt for c in captions] == list(range(len(expected))), name
        assert [c.text for c in captions] == expected, f"{name}: captions of other audio"
        assert len(path.read_text().splitlines()) == len(expected), f"{name}: a final journaled twice"
        assert result.owed == 0
        if name in victims:
            assert result.reconnects >= 1, f"{name} was on the killed worker"
    assert victims <= pool.sessions_on(1), "the killed worker's lectures moved to the other"
    assert _health(pool.nginx_port)["status"] == "ok", "nginx routes around the dead worker"
