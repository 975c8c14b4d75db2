"""The room's JSON API, media and exports, through HTTP (Starlette's test client, no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from notsound.room.access import CSP
from notsound.room.render import render_markdown

from .rooms import LINES, PART_BYTES, client, write_deck, write_lecture, write_polished

NAME = "2026-11-02_0900"
ROW_KEYS = {"name", "title", "started", "duration_s", "words", "language", "live", "notes", "summary",
            "slides", "recording", "polished", "translation"}
LECTURE_KEYS = {"name", "title", "started", "duration_s", "language", "live", "layer", "can_ask",
                "can_export", "captions", "recording", "slides", "slide_times", "notes_html",
                "summary_html", "exports", "feed"}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lectures"
    write_lecture(lib, NAME, pdf=write_deck(tmp_path / "deck.pdf"))
    write_lecture(lib, "2026-10-26_0900", started="2026-10-26T09:00:00+00:00", extras=False,
                  lines=[("An older lecture about convex functions.", None, "")])
    return lib


def test_the_library_lists_every_lecture_newest_first_with_what_it_has(library: Path):
    with client(library) as c:
        rows = c.get("/api/lectures").json()["lectures"]
    assert [r["name"] for r in rows] == [NAME, "2026-10-26_0900"]
    assert all(set(r) == ROW_KEYS for r in rows)
    new, old = rows
    assert new["title"] and new["started"] == "2026-11-02T09:00:00+00:00"
    assert new["duration_s"] == pytest.approx(23.0) and new["words"] > 20
    assert (new["notes"], new["summary"], new["slides"], new["recording"], new["translation"]) == (True,) * 5
    assert (old["notes"], old["summary"], old["slides"], old["recording"], new["polished"], new["live"]) == (False,) * 6


def test_a_lecture_has_its_captions_recording_slides_notes_and_exports(library: Path):
    with client(library) as c:
        data = c.get(f"/api/lectures/{NAME}").json()
    assert set(data) == LECTURE_KEYS
    assert data["layer"] == "live" and data["live"] is False and data["feed"] is None
    caps = data["captions"]
    assert [c["text"] for c in caps] == [line[0] for line in LINES]
    assert caps[0] == {"utt": 0, "start": 0.0, "end": 3.0, "text": LINES[0][0], "speaker": "lecturer",
                       "slide": 1, "translation": "大家早上好"}
    assert "speaker" not in caps[1] and "translation" not in caps[2]  # optional keys absent when unset
    assert data["recording"] == {"parts": [
        {"url": f"/lectures/{NAME}/recording/000-0.000.opus", "offset": 0.0},
        {"url": f"/lectures/{NAME}/recording/001-12.000.opus", "offset": 12.0}]}
    assert data["slides"]["deck"] == "deck.pdf"
    assert [(s["n"], s["title"], s["image"], s["first_t"]) for s in data["slides"]["items"]] == [
        (1, "Gradient descent", f"/lectures/{NAME}/slides/1.png", 0.0),
        (2, "Learning rate", f"/lectures/{NAME}/slides/2.png", 8.0),
        (3, "Momentum", f"/lectures/{NAME}/slides/3.png", 16.0)]
    assert data["slide_times"] == [{"t": 0.0, "n": 1}, {"t": 8.0, "n": 2}, {"t": 16.0, "n": 3}]
    assert '<a class="seek" href="#t=4" data-t="4">[00:04]</a>' in data["notes_html"]
    assert 'href="#t=16" data-t="16">[00:16–00:20]</a>' in data["notes_html"]
    assert "<script>" not in data["notes_html"] and "&lt;script&gt;" in data["notes_html"]
    assert "javascript:" not in data["notes_html"].replace("[a link](javascript:alert(1))", "")
    assert 'data-t="3605">[1:00:05]</a>' in data["summary_html"]
    assert data["can_export"] is True and data["can_ask"] is False  # loopback owner, no LLM key here
    assert {e["format"] for e in data["exports"]} == {"srt", "vtt", "txt", "md", "bilingual-srt", "bilingual-vtt"}


def test_the_polished_layer_is_shown_when_there_is_one(library: Path):
    write_polished(library / NAME, ["Polished first line.", "Polished second line."])
    with client(library) as c:
        data = c.get(f"/api/lectures/{NAME}").json()
    assert data["layer"] == "polished"
    assert [c["text"] for c in data["captions"]] == ["Polished first line.", "Polished second line."]


def test_markdown_times_become_seek_links_only_outside_links_and_code():
    html = render_markdown("See [12:34] and `[00:05]` and [x [1:02:03]](https://e.example).\n")
    assert '<a class="seek" href="#t=754" data-t="754">[12:34]</a>' in html
    assert "<code>[00:05]</code>" in html and 'data-t="3723"' not in html


@pytest.mark.parametrize("query, session, utt, hit, text", [
    ("gradient descent", NAME, 0, "gradient descent", LINES[0][0]),
    ("学习率", NAME, 2, "学习率", LINES[2][0]),
    ("convex", "2026-10-26_0900", 0, "convex", "An older lecture about convex functions."),
])
def test_search_finds_english_and_chinese_and_marks_the_hit(library: Path, query, session, utt, hit, text):
    with client(library) as c:
        body = c.get("/api/search", params={"q": query}).json()
    assert body["query"] == query
    first = body["results"][0]
    assert set(first) == {"session", "title", "t", "utt", "kind", "snippet"}
    assert (first["session"], first["utt"], first["kind"]) == (session, utt, "caption")
    assert first["t"] == utt * 4.0
    assert [text for text, marked in first["snippet"] if marked] == [hit]
    assert "".join(piece for piece, _ in first["snippet"]) == text


def test_search_refuses_an_empty_query_and_a_bad_limit(library: Path):
    with client(library) as c:
        assert c.get("/api/search", params={"q": "  "}).status_code == 400
        assert c.get("/api/search", params={"q": "!!!"}).status_code == 400
        assert c.get("/api/search", params={"q": "gradient", "limit": "x"}).status_code == 400
        assert c.get("/api/search", params={"q": "nothing-like-this"}).json()["results"] == []


def test_a_recording_part_answers_ranges_with_206_and_the_right_bytes(library: Path):
    url = f"/lectures/{NAME}/recording/000-0.000.opus"
    with client(library) as c:
        whole = c.get(url)
        part = c.get(url, headers={"Range": "bytes=100-299"})
        tail = c.get(url, headers={"Range": "bytes=-16"})
        beyond = c.get(url, headers={"Range": f"bytes={len(PART_BYTES[0]) + 5}-"})
    assert whole.status_code == 200 and whole.content == PART_BYTES[0]
    assert whole.headers["content-type"] == "audio/ogg" and whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206 and part.content == PART_BYTES[0][100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(PART_BYTES[0])}"
    assert tail.status_code == 206 and tail.content == PART_BYTES[0][-16:]
    assert beyond.status_code == 416


def test_slides_of_a_pdf_deck_are_png_images(library: Path):
    with client(library) as c:
        first = c.get(f"/lectures/{NAME}/slides/1.png")
        again = c.get(f"/lectures/{NAME}/slides/1.png")
        third = c.get(f"/lectures/{NAME}/slides/3.png")
        missing = c.get(f"/lectures/{NAME}/slides/4.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content.startswith(b"\x89PNG\r\n\x1a\n") and first.content == again.content
    width = int.from_bytes(first.content[16:20], "big")
    assert width == 960 and third.content != first.content
    assert missing.status_code == 404


def test_a_deck_without_its_pdf_has_no_images(library: Path):
    (library / NAME / "slides.pdf").unlink()
    with client(library) as c:
        items = c.get(f"/api/lectures/{NAME}").json()["slides"]["items"]
        assert c.get(f"/lectures/{NAME}/slides/1.png").status_code == 404
    assert [i["image"] for i in items] == [None, None, None] and items[0]["text"] == "step by step"


@pytest.mark.parametrize("fmt, piece, ctype", [
    ("srt", "00:00:00,000 --> ", "application/x-subrip"), ("vtt", "WEBVTT", "text/vtt"),
    ("txt", "Good morning everyone", "text/plain"), ("md", "## Slide 1", "text/markdown"),
    ("bilingual-srt", "大家早上好", "application/x-subrip"),
])
def test_exports_download_as_the_cli_writes_them(library: Path, fmt, piece, ctype):
    with client(library) as c:
        r = c.get(f"/lectures/{NAME}/export/{fmt}")
    assert r.status_code == 200 and piece in r.text and r.headers["content-type"].startswith(ctype)
    assert r.headers["content-disposition"].startswith(f'attachment; filename="{NAME}.')


def test_unknown_exports_and_bilingual_without_translations_are_404(library: Path):
    with client(library) as c:
        assert c.get(f"/lectures/{NAME}/export/pdf").status_code == 404
        assert c.get("/lectures/2026-10-26_0900/export/bilingual-vtt").status_code == 404
        assert "bilingual" not in str(c.get("/api/lectures/2026-10-26_0900").json()["exports"])


def test_every_answer_carries_the_csp_and_security_headers(library: Path):
    urls = ["/", "/library", "/app.js", "/style.css", "/api/lectures", f"/api/lectures/{NAME}",
            "/api/search?q=gradient", f"/lectures/{NAME}/recording/000-0.000.opus",
            f"/lectures/{NAME}/slides/1.png", f"/lectures/{NAME}/export/srt", "/nothing/here",
            "/api/lectures/no-such", "/captions", f"/api/lectures/{NAME}/ask"]
    with client(library) as c:
        for url in urls:
            r = c.get(url, follow_redirects=False)
            assert r.headers["content-security-policy"] == CSP, url
            assert r.headers["x-content-type-options"] == "nosniff", url
            assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-frame-options"] == "DENY"
        assert c.post(f"/api/lectures/{NAME}/ask", json={"question": "x"}).headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "media-src 'self'" in CSP


def test_errors_are_json_with_a_message(library: Path):
    with client(library) as c:
        for url in ("/api/lectures/no-such", "/nothing/here", f"/lectures/{NAME}/recording/002-1.000.opus"):
            r = c.get(url)
            assert r.status_code == 404 and set(r.json()) == {"error"}, url
        assert c.put("/api/lectures").status_code == 405


def test_request_targets_queries_and_bodies_are_bounded(library: Path):
    with client(library) as c:
        assert c.get("/api/search", params={"q": "a" * 2000}).status_code == 414
        many = "&".join(f"k{i}=v" for i in range(20))
        assert c.get(f"/api/lectures?{many}").status_code == 400
        r = c.post(f"/api/lectures/{NAME}/ask", content=b'{"question": "' + b"x" * 5000 + b'"}',
                   headers={"Content-Type": "application/json"})
        assert r.status_code in (413, 503)


def test_the_root_redirects_to_the_library_and_keeps_the_query(library: Path):
    with client(library) as c:
        r = c.get("/?mode=projector", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/library?mode=projector"
        assert c.get("/captions").status_code == 404  # no live session in notsound open


def test_a_live_session_is_marked_live_with_its_feed_and_its_growing_recording(library: Path):
    live = library / NAME
    with client(library, live=live) as c:
        assert c.get("/?mode=projector", follow_redirects=False).headers["location"] == "/captions?mode=projector"
        page = c.get("/captions")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        data = c.get(f"/api/lectures/{NAME}").json()
        assert data["live"] is True and data["feed"] == f"/feed?session={NAME}"
        rows = {r["name"]: r["live"] for r in c.get("/api/lectures").json()["lectures"]}
        assert rows == {NAME: True, "2026-10-26_0900": False}
        part = live / "recording" / "001-12.000.opus"
        url = f"/lectures/{NAME}/recording/{part.name}"
        assert c.get(url).content == PART_BYTES[1]
        with part.open("ab") as fh:  # the run goes on recording
            fh.write(b"more audio")
        assert c.get(url).content == PART_BYTES[1] + b"more audio"
