"""The room on a real uvicorn: port 0, graceful stop, clear errors, and `notsound open`."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from notsound.cli import main
from notsound.room import LiveSession, RoomServer, live_feed, open_library, room_for
from notsound.web import WebError

from .rooms import settings, write_lecture

ROOT = Path(__file__).resolve().parents[3]
NAME = "2026-11-02_0900"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lectures"
    write_lecture(lib, NAME)
    return lib


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def test_the_server_binds_port_0_serves_and_stops(library: Path):
    server = RoomServer(room_for(library, settings()))
    async with server:
        port = server.port
        assert port > 0 and server.url("/library") == f"http://127.0.0.1:{port}/library"
        rows = (await asyncio.to_thread(get_json, f"http://127.0.0.1:{port}/api/lectures"))["lectures"]
        assert [r["name"] for r in rows] == [NAME]
    with pytest.raises(OSError):
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 2)


async def test_stopping_closes_open_feeds_gracefully(library: Path):
    live = LiveSession(library / NAME, live_feed(library / NAME))
    server = await RoomServer(room_for(library, settings(), live)).start()
    async with connect(f"ws://127.0.0.1:{server.port}/feed") as ws:
        hello = json.loads(await ws.recv())
        finals = [json.loads(await ws.recv()) for _ in range(hello["last"])]
        await server.stop()
        with pytest.raises(ConnectionClosed):
            while True:  # the translation and the notes may still come first
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] in ("translation", "notes")
    assert [f["seq"] for f in finals] == list(range(1, 7)) and ws.close_code == 1012


async def test_a_busy_port_is_a_clear_error(library: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(WebError, match=rf"cannot serve on 127.0.0.1:{port}: .*another program uses that port"):
            await RoomServer(room_for(library, settings().__class__(host="127.0.0.1", port=port))).start()


def test_off_loopback_both_tokens_are_made_and_only_the_viewers_link_gets_a_qr_code(library: Path):
    first, second = open_library("0.0.0.0:0", library), open_library("0.0.0.0:0", library)
    s = first.settings
    assert len(s.token) >= 24 and len(s.owner_token) >= 24 and s.token != s.owner_token
    assert s.token != second.settings.token
    assert open_library("127.0.0.1:0", library).settings.token == ""


async def test_the_description_names_both_links(library: Path):
    server = open_library("0.0.0.0:0", library)
    async with server:
        text = server.describe()
    viewer, owner = server.settings.token, server.settings.owner_token
    assert f":{server.port}/?t={viewer}" in text and f":{server.port}/?t={owner}" in text
    assert text.index("▀") < text.index(owner)  # the QR code is the viewers' link


def test_open_refuses_a_bad_address_and_a_missing_library(tmp_path: Path, library: Path, capsys):
    assert main(["open", "--web", "host:port", "--out", str(library), "--no-browser"]) == 2
    assert "expected [HOST:]PORT" in capsys.readouterr().err
    assert main(["open", "--out", str(tmp_path / "none"), "--no-browser", "--web", "0"]) == 1
    assert "no lectures folder" in capsys.readouterr().err
    bad = tmp_path / "token"
    bad.write_text("short\n")
    assert main(["open", "--out", str(library), "--web", "0.0.0.0:0", "--web-token-file", str(bad)]) == 2
    assert "16-128 characters" in capsys.readouterr().err


async def test_cli_open_serves_the_library_until_interrupted(library: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notsound.cli", "open", "--out", str(library), "--web", "127.0.0.1:0",
        "--no-browser", cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        match = None
        while match is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "notsound open ended without printing its address"
            match = re.search(r"the lecture room in the browser: (http://127\.0\.0\.1:\d+)/", line)
        rows = (await asyncio.to_thread(get_json, match.group(1) + "/api/lectures"))["lectures"]
        assert [r["name"] for r in rows] == [NAME]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
