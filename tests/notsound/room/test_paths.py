"""No URL reaches outside the library folder: session names, part names and slide numbers."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from .rooms import client, write_deck, write_lecture

NAME = "2026-11-02_0900"
SECRET = "a caption of another library"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lectures"
    write_lecture(lib, NAME, pdf=write_deck(tmp_path / "deck.pdf"))
    outside = write_lecture(tmp_path / "elsewhere", "private", lines=[(SECRET, None, "")])
    os.symlink(outside, lib / "linked")  # a session folder that leads out of the library
    os.symlink(outside / "recording" / "000-0.000.opus", lib / NAME / "recording" / "002-30.000.opus")
    (tmp_path / "session.json").write_text('{"secret": true}')
    return lib


# A literal ".." is resolved by the HTTP client before it sends the request (to the room's "/"), so
# it is sent as is by test_raw_targets_with_dot_segments_never_leave_the_library instead.
BAD_NAMES = ["%2e%2e", "%2E%2E", "..%2F..%2Fetc", "a%2Fb", "a%5Cb", "%5C..%5C", "a%00b",
             ".hidden", "linked", "..%252F..", "~root", "%2e%2e%2f%2e%2e"]


def _raw_get(port: int, target: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        return int(sock.recv(64).split(b" ")[1])


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_session_name_that_is_not_a_plain_folder_of_the_library_is_404(library: Path, name: str):
    urls = [f"/api/lectures/{name}", f"/lecture/{name}", f"/lectures/{name}/recording/000-0.000.opus",
            f"/lectures/{name}/slides/1.png", f"/lectures/{name}/export/txt", f"/api/lectures/{name}/ask"]
    with client(library) as c:
        for url in urls:
            r = c.get(url)
            assert r.status_code == 404, url
            assert SECRET not in r.text and "secret" not in r.text
        listed = c.get("/api/lectures").text
    assert SECRET not in listed and '"linked"' not in listed  # a folder outside is not listed either


@pytest.mark.parametrize("part", ["..%2F..%2Fsession.json", "..", "%2e%2e", "000-0.000.opus%00",
                                  "000-0.000.opus%2F..", "002-30.000.opus", "..%5Csession.json",
                                  "003-1.000.opus", "000-0.000.OPUS"])
def test_a_part_that_is_not_one_of_the_sessions_recording_is_404(library: Path, part: str):
    with client(library) as c:
        r = c.get(f"/lectures/{NAME}/recording/{part}")
    assert r.status_code == 404 and SECRET.encode() not in r.content


@pytest.mark.parametrize("slide", ["0.png", "-1.png", "01.png", "1.png.png", "..%2F1.png", "1e3.png",
                                   "99999999.png", "1.PNG", "1", "%31.png%00", "4.png"])
def test_a_slide_that_is_not_a_page_of_the_deck_is_404(library: Path, slide: str):
    with client(library) as c:
        assert c.get(f"/lectures/{NAME}/slides/{slide}").status_code == 404


@pytest.mark.parametrize("file", ["..%2F..%2Findex.html", "..", ".hidden.js", "a%5Cb.js", "%2e%2e%2fapp.js"])
def test_static_files_come_only_from_the_rooms_folder(library: Path, file: str):
    with client(library) as c:
        assert c.get(f"/static/room/{file}").status_code == 404


async def test_raw_targets_with_dot_segments_never_leave_the_library(library: Path):
    from notsound.room import RoomServer, room_for

    from .rooms import settings

    async with RoomServer(room_for(library, settings())) as server:
        for target in ["/api/lectures/./linked", "/api/lectures/../../session.json", f"/lectures/{NAME}/recording/../../../session.json",
                       "/lecture/..", "/api/lectures/..", "/lectures/../recording/000-0.000.opus",
                       "/lectures/../slides/1.png", "/lectures/../export/txt", "/api/lectures/../ask",
                       "/api/lectures/%2e%2e/", "/static/room/../../web.py",
                       "/static/room/..%2f..%2fweb.py"]:
            assert await asyncio.to_thread(_raw_get, server.port, target) == 404, target
