"""The caption page's server and feed, driven by a fake caption source (no ASR, no browser)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from library.folder import Journal
from notsound.room import LiveSession, RoomServer, room_for
from notsound.room import open_live as open_page
from notsound.web import WebError, WebSettings, parse_web_address, read_token_file
from notsound.web_feed import CaptionFeed, FeedFull, FeedLimits, render_notes
from wire.protocol import Caption, Partial

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "viewer-token-0123456789abcdef"


def caption(utt: int, text: str | None = None, start: float | None = None) -> Caption:
    start = utt * 4.0 if start is None else start
    return Caption(utt=utt, start=start, end=start + 3.0, text=text or f"caption number {utt}",
                   lang="en", emotion="NEUTRAL", events=())


def CaptionPage(feed: CaptionFeed, settings: WebSettings, session_dir: Path | None = None) -> RoomServer:
    """The room serving ``feed`` live (its session folder: ``session_dir`` or an empty temporary one)."""
    if session_dir is None:
        session_dir = Path(tempfile.mkdtemp(prefix="notsound-web-")) / feed.session
    return RoomServer(room_for(session_dir.parent, settings, LiveSession(session_dir, feed)))


async def start_page(feed: CaptionFeed, **settings) -> RoomServer:
    settings.setdefault("port", 0)
    return await CaptionPage(feed, WebSettings(**settings)).start()


async def stop_page(page: RoomServer) -> None:
    await page.stop()
    if page.room.library.name.startswith("notsound-web-"):
        shutil.rmtree(page.room.library, ignore_errors=True)


@pytest.fixture
async def page() -> AsyncIterator[RoomServer]:
    page = await start_page(CaptionFeed("lecture"))
    yield page
    await stop_page(page)


def feed_url(page: RoomServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{page.port}/feed{query}"


async def read_until(ws: ClientConnection, done, timeout: float = 5.0) -> list[dict]:
    """Messages until ``done(messages)`` is true."""
    got: list[dict] = []

    async def _read() -> None:
        while not done(got):
            got.append(json.loads(await ws.recv()))

    await asyncio.wait_for(_read(), timeout)
    return got


def finals_of(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "final"]


def has_finals(count: int):
    return lambda got: len(finals_of(got)) >= count


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """GET as a browser would: redirects followed, cookies kept (the token's cookie); the
    headers answered looked up without regard to case."""
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


# -- the feed without I/O -------------------------------------------------------------


def test_finals_get_seq_numbers_in_arrival_order_and_a_repeated_utt_is_ignored():
    feed = CaptionFeed("s")
    for utt in (0, 1, 3, 1, 2):
        feed.publish_final(caption(utt))
    messages = [json.loads(m) for m in feed.finals]
    assert [(m["seq"], m["utt"]) for m in messages] == [(1, 0), (2, 1), (3, 3), (4, 2)]


def test_a_final_carries_its_speaker_only_when_it_has_one():
    from library.folder import Final

    feed = CaptionFeed("s")
    feed.publish_final(caption(0))
    feed.publish_final(Final(1, 3.0, 4.0, "why?", speaker="audience-1"))
    messages = [json.loads(m) for m in feed.finals]
    assert "speaker" not in messages[0] and messages[1]["speaker"] == "audience-1"


def test_catch_up_sends_exactly_the_finals_after_since():
    feed = CaptionFeed("s")
    for utt in range(6):
        feed.publish_final(caption(utt))
    viewer, hello = feed.join(since=4, session="s")
    assert json.loads(hello) == {"type": "hello", "feed": 1, "session": "s", "reset": False, "last": 6}
    assert [json.loads(m)["seq"] for m in feed.take(viewer)] == [5, 6]
    assert feed.take(viewer) == []


@pytest.mark.parametrize("since, session", [(3, "other"), (99, "s"), (None, None)])
def test_another_session_or_an_impossible_since_starts_over_with_reset(since, session):
    feed = CaptionFeed("s")
    for utt in range(4):
        feed.publish_final(caption(utt))
    viewer, hello = feed.join(since=since, session=session)
    assert json.loads(hello)["reset"] is True
    assert [json.loads(m)["seq"] for m in feed.take(viewer)] == [1, 2, 3, 4]


def test_partial_is_replaced_and_dropped_once_its_final_is_in():
    feed = CaptionFeed("s")
    viewer, _ = feed.join()
    feed.publish_partial(Partial(utt=0, text="the water"))
    feed.publish_partial(Partial(utt=0, text="the water cycle"))
    assert [json.loads(m) for m in feed.take(viewer)] == [
        {"type": "partial", "utt": 0, "text": "the water cycle"}]
    feed.publish_final(caption(0, "The water cycle."))
    feed.publish_partial(Partial(utt=0, text="late partial of a final utterance"))
    sent = [json.loads(m) for m in feed.take(viewer)]
    assert [m["type"] for m in sent] == ["final", "partial"]
    assert sent[1] == {"type": "partial", "utt": 0, "text": ""}


def test_a_viewer_that_falls_behind_is_dropped_and_the_others_keep_everything():
    feed = CaptionFeed("s", FeedLimits(max_lag=5))
    slow, _ = feed.join()
    fast, _ = feed.join()
    dropped: list[str] = []
    slow.drop = lambda: dropped.append("slow")
    fast.drop = lambda: dropped.append("fast")
    received = []
    for utt in range(50):
        feed.publish_final(caption(utt))
        received += [json.loads(m)["utt"] for m in feed.take(fast) if '"final"' in m]
    assert dropped == ["slow"] and feed.stats.dropped == 1
    assert slow not in feed.viewers and fast in feed.viewers
    assert received == list(range(50))


def test_a_new_viewer_catching_up_a_long_lecture_is_not_dropped_for_the_backlog():
    feed = CaptionFeed("s", FeedLimits(max_lag=5))
    feed.load(caption(utt) for utt in range(100))
    viewer, _ = feed.join()
    feed.publish_final(caption(100))
    assert viewer in feed.viewers
    got = []
    while batch := feed.take(viewer):
        got += [json.loads(m)["seq"] for m in batch]
    assert got == list(range(1, 102))


def test_no_more_than_max_viewers():
    feed = CaptionFeed("s", FeedLimits(max_viewers=2))
    feed.join()
    feed.join()
    with pytest.raises(FeedFull):
        feed.join()


def test_translations_follow_their_caption_and_reach_a_viewer_joining_later():
    feed = CaptionFeed("s")
    feed.publish_final(caption(0, "hello"))
    feed.publish_translation(0, "你好")
    viewer, _ = feed.join(since=1, session="s")
    assert [json.loads(m) for m in feed.take(viewer)] == [
        {"type": "translation", "utt": 0, "text": "你好"}]


def test_notes_are_rendered_without_any_markup_from_the_text():
    html = render_notes("# Week 3\n\n- <script>alert(1)</script>\n- <img src=x onerror=alert(1)>\n"
                        "- [click](javascript:alert(1)) and [docs](https://example.org)\n")
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://example.org">docs</a>' in html
    assert "<h1>Week 3</h1>" in html


# -- addresses and tokens ---------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("8080", ("127.0.0.1", 8080)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:9000", ("::1", 9000)),
    ("localhost:8080", ("localhost", 8080)),
])
def test_web_address_forms(spec, expected):
    assert parse_web_address(spec) == expected


@pytest.mark.parametrize("spec", ["", "80800", "host:", ":80", "abc", "[::1]9000", "-1"])
def test_bad_web_address_is_refused_with_the_expected_form(spec):
    with pytest.raises(WebError, match=r"\[HOST:\]PORT|\[ADDR\]:PORT"):
        parse_web_address(spec)


def test_token_file_must_hold_a_url_safe_token(tmp_path):
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    assert read_token_file(good) == TOKEN
    for bad in ("short", "has spaces in the token ....", "x" * 200):
        good.write_text(bad)
        with pytest.raises(WebError, match="first line"):
            read_token_file(good)
    with pytest.raises(WebError, match="cannot read"):
        read_token_file(tmp_path / "missing")


async def test_off_loopback_a_random_token_is_made_and_shown_as_a_link_and_qr_code(tmp_path: Path):
    first = open_page("0.0.0.0:0", tmp_path / "s")
    second = open_page("0.0.0.0:0", tmp_path / "s")
    token = first.settings.token
    assert len(token) >= 24 and token != second.settings.token
    assert open_page("127.0.0.1:0", tmp_path / "s").settings.token == ""
    async with first:
        text, port = first.describe(), first.port
    assert f":{port}/?t={token}" in text and "▀" in text  # the link, then its QR code


def test_a_page_off_loopback_without_a_token_is_refused():
    with pytest.raises(WebError, match="token"):
        CaptionPage(CaptionFeed("s"), WebSettings(host="0.0.0.0", port=0))


# -- HTTP -------------------------------------------------------------------------------


async def test_page_and_static_files_carry_security_headers(page: RoomServer):
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{page.port}{path}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    html = (await asyncio.to_thread(http_get, f"http://127.0.0.1:{page.port}/"))[2].decode()
    assert "<script>" not in html and 'style="' not in html  # nothing inline for the CSP to allow
    status, _, _ = await asyncio.to_thread(http_get, f"http://127.0.0.1:{page.port}/../etc/passwd")
    assert status == 404


async def test_loopback_page_answers_only_a_loopback_host(page: RoomServer):
    url = f"http://127.0.0.1:{page.port}/"
    assert (await asyncio.to_thread(http_get, url, {"Host": f"localhost:{page.port}"}))[0] == 200
    assert (await asyncio.to_thread(http_get, url, {"Host": f"evil.example:{page.port}"}))[0] == 403


def _raw_status(port: int, request: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(64).split(b" ")[1])


async def test_odd_requests_get_a_clear_refusal(page: RoomServer):
    port = page.port
    many = "&".join(f"k{i}=v" for i in range(20))
    assert (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/?{many}"))[0] == 400
    assert (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/?x={'a' * 2000}"))[0] == 414
    twice = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n"
    assert await asyncio.to_thread(_raw_status, port, twice) == 400  # malformed: refused by the parser


async def test_off_loopback_the_page_and_feed_need_the_token():
    page = await start_page(CaptionFeed("s"), host="0.0.0.0", token=TOKEN)
    try:
        base = f"http://127.0.0.1:{page.port}"
        assert (await asyncio.to_thread(http_get, base + "/"))[0] == 401
        assert (await asyncio.to_thread(http_get, base + "/?t=wrong-token-0123456789"))[0] == 403
        assert (await asyncio.to_thread(http_get, f"{base}/?t={TOKEN}"))[0] == 200
        assert (await asyncio.to_thread(http_get, base + "/app.js"))[0] == 200  # code, no data
        for query, status in (("", 401), ("?t=wrong-token-0123456789", 403)):
            with pytest.raises(InvalidStatus) as refused:
                await connect(feed_url(page, query))
            assert refused.value.response.status_code == status
        async with connect(feed_url(page, f"?t={TOKEN}")) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        assert TOKEN in page.url() and page.url().startswith("http://")
    finally:
        await stop_page(page)


async def test_the_feed_refuses_another_sites_page(page: RoomServer):
    with pytest.raises(InvalidStatus) as refused:
        await connect(feed_url(page), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    async with connect(feed_url(page), origin=f"http://127.0.0.1:{page.port}") as ws:
        assert json.loads(await ws.recv())["type"] == "hello"


# -- the feed over WebSocket --------------------------------------------------------------


async def test_finals_arrive_in_order_and_the_partial_is_replaced(page: RoomServer):
    feed = page.feed
    async with connect(feed_url(page)) as ws:
        assert json.loads(await ws.recv())["reset"] is True
        feed.publish_final(caption(0))
        feed.publish_partial(Partial(utt=1, text="water"))
        got = await read_until(ws, lambda g: any(m["type"] == "partial" for m in g))
        feed.publish_partial(Partial(utt=1, text="water evaporates"))
        got += await read_until(ws, lambda g: any(m["type"] == "partial" for m in g))
        feed.publish_final(caption(1))
        got += await read_until(ws, has_finals(1))
    assert [m["seq"] for m in finals_of(got)] == [1, 2]
    assert [m["text"] for m in got if m["type"] == "partial"] == ["water", "water evaporates"]


async def test_a_dropped_connection_catches_up_with_nothing_twice_and_nothing_missing(page: RoomServer):
    feed = page.feed
    seen: list[int] = []
    async with connect(feed_url(page)) as ws:
        hello = json.loads(await ws.recv())
        for utt in range(3):
            feed.publish_final(caption(utt))
        seen += [m["seq"] for m in finals_of(await read_until(ws, has_finals(3)))]
    for utt in range(3, 6):  # while the page is away
        feed.publish_final(caption(utt))
    async with connect(feed_url(page, f"?since={seen[-1]}&session={hello['session']}")) as ws:
        assert json.loads(await ws.recv())["reset"] is False
        feed.publish_final(caption(6))
        seen += [m["seq"] for m in finals_of(await read_until(ws, has_finals(4)))]
    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_after_a_restart_the_feed_reads_the_journal_and_keeps_seq(tmp_path: Path):
    session = tmp_path / "lecture"
    journal = Journal(session)
    for utt in range(4):
        journal.append(caption(utt))
    journal.close()
    async with open_page("127.0.0.1:0", session) as page:  # a new notsound live on the session
        async with connect(feed_url(page, "?since=2&session=lecture")) as ws:
            assert json.loads(await ws.recv()) == {
                "type": "hello", "feed": 1, "session": "lecture", "reset": False, "last": 4}
            got = finals_of(await read_until(ws, has_finals(2)))
    assert [(m["seq"], m["text"]) for m in got] == [(3, "caption number 2"), (4, "caption number 3")]


async def test_after_a_restart_the_feed_also_brings_back_stored_translations(tmp_path: Path):
    from library.folder import TRANSLATIONS, Translation, append_translations

    session = tmp_path / "lecture"
    journal = Journal(session)
    for utt in range(3):
        journal.append(caption(utt))
    journal.close()
    append_translations(session / TRANSLATIONS, [Translation(0, "zh", "第零句"), Translation(1, "zh", None, "empty"),
                                                  Translation(2, "zh", "第二句 <b>")])
    async with open_page("127.0.0.1:0", session) as page:
        async with connect(feed_url(page)) as ws:
            got = await read_until(ws, lambda g: sum(m["type"] == "translation" for m in g) >= 2)
    translations = [(m["utt"], m["text"]) for m in got if m["type"] == "translation"]
    assert translations == [(0, "第零句"), (2, "第二句 <b>")]  # untranslated ones are not shown


async def test_notes_md_changes_reach_the_page_rendered_safely(tmp_path: Path):
    session = tmp_path / "lecture"
    session.mkdir()
    (session / "notes.md").write_text("# Notes\n\n- <b>bold?</b>\n", encoding="utf-8")
    page = CaptionPage(CaptionFeed("lecture"), WebSettings(port=0, notes_poll_s=0.05), session)
    async with page:
        async with connect(feed_url(page)) as ws:
            got = await read_until(ws, lambda g: any(m["type"] == "notes" for m in g))
            (session / "notes.md").write_text("# Notes\n\n- second version\n", encoding="utf-8")
            got += await read_until(ws, lambda g: any(m["type"] == "notes" for m in g))
    notes = [m["html"] for m in got if m["type"] == "notes"]
    assert "&lt;b&gt;bold?&lt;/b&gt;" in notes[0] and "<b>" not in notes[0]
    assert "second version" in notes[1]


async def test_a_page_that_sends_a_stream_of_frames_is_closed(page: RoomServer):
    async with connect(feed_url(page)) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                await ws.send("{}")
                await asyncio.sleep(0)
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1008


async def test_a_frame_over_the_size_limit_closes_the_connection(page: RoomServer):
    async with connect(feed_url(page)) as ws:
        await ws.recv()
        await ws.send("x" * 5000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_more_viewers_than_allowed_get_503():
    page = await start_page(CaptionFeed("s", FeedLimits(max_viewers=2)))
    try:
        async with connect(feed_url(page)), connect(feed_url(page)):
            await wait_for(lambda: len(page.feed.viewers) == 2)
            with pytest.raises(InvalidStatus) as refused:
                await connect(feed_url(page))
            assert refused.value.response.status_code == 503
    finally:
        await stop_page(page)


def _silent_viewer(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall((f"GET /feed HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


async def test_a_viewer_that_does_not_read_is_dropped_while_others_get_every_caption():
    page = await start_page(CaptionFeed("s", FeedLimits(max_lag=16)), send_buffer_bytes=8192,
                            write_limit=4096)
    feed = page.feed
    silent = await asyncio.to_thread(_silent_viewer, page.port)
    try:
        async with connect(feed_url(page), max_size=None) as reader:
            await wait_for(lambda: len(feed.viewers) == 2)
            got: list[dict] = []

            async def read_all() -> None:
                async for frame in reader:
                    message = json.loads(frame)
                    if message["type"] == "final":
                        got.append(message)

            reading = asyncio.create_task(read_all())
            text = "word " * 400  # 2 kB a caption: the silent viewer's buffers fill quickly
            utt = 0
            while feed.stats.dropped == 0 and utt < 5000:  # buffers of a few hundred kB at most
                feed.publish_final(caption(utt, f"{utt} {text}"))
                utt += 1
                await asyncio.sleep(0)
            assert feed.stats.dropped == 1, "the silent viewer was never dropped"
            for _ in range(5):  # captions keep flowing to the reader after the drop
                feed.publish_final(caption(utt))
                utt += 1
            await wait_for(lambda: len(got) == utt, timeout=20)
            reading.cancel()
        assert [m["seq"] for m in got] == list(range(1, utt + 1))
        await wait_for(lambda: not feed.viewers)  # the reader left, the silent one was dropped
    finally:
        silent.close()
        await stop_page(page)


# -- notsound live --web, end to end ----------------------------------------------------------


async def test_cli_live_serves_the_captions_it_journals(tmp_path: Path):
    from tests import speech

    if not speech.have_espeak():
        pytest.skip("espeak-ng and sox are required")
    wav = speech.write_wav(tmp_path / "talk.wav", speech.lecture(["Good morning everyone.", "Let us begin."], gap_s=1.0))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notsound.cli", "live", "--input", str(wav), "--engine", "fake",
        "--out", str(tmp_path), "--session", "web", "--no-notes", "--plain", "--web", "127.0.0.1:0",
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        match = None
        while match is None:  # the page's address is printed before captioning starts
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "notsound live ended without printing the page's address"
            match = re.search(r"captions in the browser: http://127\.0\.0\.1:(\d+)/", line)
        seqs, texts = [], []
        async with connect(f"ws://127.0.0.1:{match.group(1)}/feed") as ws:
            with contextlib.suppress(ConnectionClosed):
                async for frame in ws:  # until notsound live ends and closes the page
                    message = json.loads(frame)
                    if message["type"] == "final":
                        seqs.append(message["seq"])
                        texts.append(message["text"])
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    journaled = [json.loads(row)["text"] for row in (tmp_path / "web" / "transcript.jsonl").open()]
    assert len(journaled) == 2 and texts == journaled and seqs == [1, 2]
