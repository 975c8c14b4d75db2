"""Who may do what: loopback owner, viewer and owner tokens off loopback, the cookie exchange."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import WebSocketDenialResponse

from .rooms import OWNER, VIEWER, client, write_lecture

NAME = "2026-11-02_0900"
READS = ["/library", f"/lecture/{NAME}", "/api/lectures", f"/api/lectures/{NAME}", "/api/search?q=gradient",
         f"/lectures/{NAME}/recording/000-0.000.opus"]
OWNER_ONLY = [f"/lectures/{NAME}/export/srt", f"/api/lectures/{NAME}/ask"]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lectures"
    write_lecture(lib, NAME)
    return lib


def test_on_loopback_the_owner_may_do_everything_but_only_under_a_loopback_host(library: Path):
    with client(library) as c:
        for url in [*READS, *OWNER_ONLY]:
            assert c.get(url).status_code != 403, url
        assert c.get("/api/lectures", headers={"Host": "localhost:8080"}).status_code == 200
        assert c.get("/api/lectures", headers={"Host": "[::1]:8080"}).status_code == 200
        assert c.get("/api/lectures", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
        assert c.get("/app.js", headers={"Host": "evil.example"}).status_code == 403


def test_off_loopback_no_token_is_401_and_a_wrong_one_403(library: Path):
    with client(library, remote=True) as c:
        for url in [*READS, *OWNER_ONLY, "/captions", "/"]:
            r = c.get(url, follow_redirects=False)
            assert r.status_code == 401 and "error" in r.json(), url
        r = c.get("/api/lectures?t=wrong-token-0123456789", follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        c.cookies.set("notsound_room", "wrong-token-0123456789")
        assert c.get("/api/lectures").status_code == 403


def test_the_code_of_the_pages_needs_no_token(library: Path):
    with client(library, remote=True) as c:
        assert c.get("/app.js").status_code == 200 and c.get("/style.css").status_code == 200
        assert c.get("/static/room/nothing.js").status_code == 404  # public, and not there


def test_a_token_in_the_url_becomes_a_cookie_and_leaves_the_url(library: Path):
    with client(library, remote=True) as c:
        r = c.get(f"/lecture/{NAME}?t={VIEWER}&mode=reading", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/lecture/{NAME}?mode=reading"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"notsound_room={VIEWER};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert c.get("/api/lectures").status_code == 200  # the cookie now counts
        assert VIEWER not in c.get(f"/api/lectures/{NAME}").text


def test_a_viewer_reads_and_replays_but_may_not_ask_or_export(library: Path):
    with client(library, remote=True) as c:
        c.get(f"/library?t={VIEWER}")
        for url in READS:
            assert c.get(url).status_code in (200, 404), url  # 404: the pages are another branch's files
        assert c.get(f"/lectures/{NAME}/recording/000-0.000.opus", headers={"Range": "bytes=0-9"}).status_code == 206
        data = c.get(f"/api/lectures/{NAME}").json()
        assert data["can_ask"] is False and data["can_export"] is False and data["exports"] == []
        for url in OWNER_ONLY:
            assert c.get(url).status_code == 403, url
        r = c.post(f"/api/lectures/{NAME}/ask", json={"question": "what is momentum?"})
        assert r.status_code == 403


def test_the_owner_token_may_export(library: Path):
    with client(library, remote=True) as c:
        c.get(f"/library?t={OWNER}")
        assert c.get(f"/api/lectures/{NAME}").json()["can_export"] is True
        r = c.get(f"/lectures/{NAME}/export/srt")
        assert r.status_code == 200 and "-->" in r.text


def test_a_post_needs_json_and_this_servers_own_origin(library: Path):
    url = f"/api/lectures/{NAME}/ask"
    with client(library) as c:
        assert c.post(url, content=b"question=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
                      ).status_code == 403
        assert c.post(url, json={"question": "x"}, headers={"Origin": "http://evil.example"}).status_code == 403
        same = c.post(url, json={"question": "x"}, headers={"Origin": "http://127.0.0.1"})
        assert same.status_code == 503  # allowed through; this room has no LLM key


def test_the_feed_takes_its_token_from_the_url_or_the_cookie(library: Path):
    with client(library, remote=True, live=library / NAME) as c:
        for query, status in (("", 401), ("?t=wrong-token-0123456789", 403)):
            with pytest.raises(WebSocketDenialResponse) as refused:
                with c.websocket_connect(f"/feed{query}"):
                    pass
            assert refused.value.status_code == status
        with c.websocket_connect(f"/feed?t={VIEWER}") as ws:
            assert ws.receive_json()["type"] == "hello"
        c.get(f"/captions?t={VIEWER}")
        cookie = {"Cookie": f"notsound_room={c.cookies['notsound_room']}"}  # as the browser sends it
        with c.websocket_connect("/feed", headers=cookie) as ws:
            hello = ws.receive_json()
        assert hello["session"] == NAME and hello["last"] == 6
        with pytest.raises(WebSocketDenialResponse) as refused:
            with c.websocket_connect("/feed", headers={**cookie, "Origin": "http://evil.example"}):
                pass
        assert refused.value.status_code == 403


def test_the_old_caption_link_with_its_token_still_opens_the_projector_page(library: Path):
    with client(library, remote=True, live=library / NAME) as c:
        first = c.get(f"/?mode=projector&t={VIEWER}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/?mode=projector"
        second = c.get(first.headers["location"], follow_redirects=False)
        assert second.status_code == 307 and second.headers["location"] == "/captions?mode=projector"
        page = c.get(second.headers["location"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert VIEWER not in page.text
