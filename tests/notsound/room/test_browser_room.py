"""The lecture room in a real browser: playwright driving Debian's chromium against a real server.

One library for the module: the fixture lecture (espeak-ng speech in an Ogg
Opus recording, captions whose times match it, notes, a PDF deck) and two
plain lectures. The owner's room asks a loopback LLM in the OpenAI format;
a second room off loopback rules has a viewer and an owner token; a third
serves a live session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from library.folder import Final, Journal, new_part_path, recording_parts, write_meta
from notsound.room import LiveSession, live_feed
from tests.speech import have_espeak
from tests.summarizer.llm_server import FakeLLM

from .browser_room import CHROMIUM, RoomThread, launch_chromium, room
from .lecture_fixture import LECTURE_NAME, FixtureLecture, write_lecture, write_plain_lecture

sync_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/system-deps.sh)"),
    pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng and sox"),
]

THEMES = ("dark", "light", "contrast")
SEEK_SLACK_S = 0.3
EVIL = '<img src=x onerror="window.pwned = 1"><script>window.pwned = 2</script>'
VIEWER, OWNER = "viewer-token-0123456789", "owner-token-9876543210"


def clock(t: float) -> str:
    return f"{int(t) // 60:02d}:{int(t) % 60:02d}"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, FixtureLecture]:
    root = tmp_path_factory.mktemp("room") / "lectures"
    lecture = write_lecture(root)
    write_plain_lecture(root, "2026-11-23_1000", ["Photosynthesis turns light into sugar."],
                        "2026-11-23T10:00:00+00:00")
    write_plain_lecture(root, "2026-11-16_1000", [f"Plate tectonics moves the continents.{EVIL}"],
                        "2026-11-16T10:00:00+00:00")
    return root, lecture


@pytest.fixture(scope="module")
def llm(library) -> Iterator[FakeLLM]:
    cited = library[1].captions[3]  # "When the drops become heavy ...", a second into it
    answer = f"The drops fall as rain{EVIL}, as said at [{clock(cited.start + 1)}]."
    with FakeLLM(reply=lambda request: answer) as fake:
        yield fake


@pytest.fixture(scope="module")
def owner_room(library, llm) -> Iterator[RoomThread]:
    with RoomThread(room(library[0], llm_url=llm.url)) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)  # CSP refusals too
    yield page
    context.close()


def open_lecture(tab, served: RoomThread, suffix: str = "") -> None:
    tab.goto(served.url(f"/lecture/{LECTURE_NAME}{suffix}"))
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")


def watch_seeks(tab) -> None:
    """Records audio.currentTime at every 'seeked' event (the position a seek landed on)."""
    tab.evaluate("""() => { window.seeks = []; const a = document.getElementById('audio');
                  a.addEventListener('seeked', () => window.seeks.push(a.currentTime)); }""")


def landed(tab, count: int = 1) -> float:
    tab.wait_for_function("(n) => window.seeks.length >= n", arg=count)
    return tab.evaluate("window.seeks[window.seeks.length - 1]")


def current_utt(tab) -> int | None:
    """The utt of the highlighted caption (aria-current and class ``current`` agree); None: none."""
    by_aria = tab.eval_on_selector_all("#transcript .cap[aria-current=true]", "cs => cs.map(c => Number(c.dataset.utt))")
    by_class = tab.eval_on_selector_all("#transcript .cap.current", "cs => cs.map(c => Number(c.dataset.utt))")
    assert by_aria == by_class and len(by_aria) <= 1, (by_aria, by_class)
    return by_aria[0] if by_aria else None


def test_clicking_a_caption_seeks_to_its_start_and_plays_and_the_keys_move_the_playhead(tab, owner_room,
                                                                                        library):
    captions = library[1].captions
    open_lecture(tab, owner_room)
    watch_seeks(tab)
    tab.click(f"#transcript .cap[data-utt='{captions[2].utt}']")
    assert abs(landed(tab) - captions[2].start) <= SEEK_SLACK_S
    tab.wait_for_function("() => !document.getElementById('audio').paused")
    assert current_utt(tab) == captions[2].utt
    tab.evaluate("document.getElementById('audio').pause()")
    tab.locator("body").focus()
    tab.keyboard.press("n")  # next caption
    assert abs(landed(tab, 2) - captions[3].start) <= SEEK_SLACK_S
    tab.evaluate("document.getElementById('audio').pause()")  # at its start: "previous" goes one back
    tab.keyboard.press("p")  # previous caption
    assert abs(landed(tab, 3) - captions[2].start) <= SEEK_SLACK_S
    tab.evaluate("document.getElementById('audio').pause()")
    before = tab.evaluate("document.getElementById('audio').currentTime")
    tab.keyboard.press("j")  # back 5 s
    assert abs(landed(tab, 4) - max(0.0, before - 5)) <= SEEK_SLACK_S
    tab.keyboard.press("]")
    assert tab.evaluate("document.getElementById('audio').playbackRate") == 1.25
    assert tab.input_value("#speed") == "1.25"
    tab.keyboard.press("?")
    assert tab.locator("#help").is_visible()
    tab.keyboard.press("Escape")
    assert not tab.locator("#help").is_visible()
    assert tab.errors == []


def test_playing_highlights_the_caption_under_the_playhead_and_the_slide_follows(tab, owner_room, library):
    captions = library[1].captions
    first, second = captions[1], captions[2]  # said over slides 1 and 2
    assert (first.slide, second.slide) == (1, 2)
    open_lecture(tab, owner_room)
    tab.click(f"#transcript .cap[data-utt='{first.utt}']")
    tab.wait_for_function("(t) => document.getElementById('audio').currentTime >= t", arg=first.start + 0.2)
    assert current_utt(tab) == first.utt
    assert tab.get_attribute("#slide-now", "data-n") == "1"
    tab.wait_for_function("(t) => document.getElementById('audio').currentTime >= t", arg=second.start + 0.3,
                          timeout=15_000)
    tab.wait_for_function("(u) => { const c = document.querySelector('#transcript .cap.current');"
                          " return c && Number(c.dataset.utt) === u; }", arg=second.utt)
    assert current_utt(tab) == second.utt
    assert tab.get_attribute("#slide-now", "data-n") == "2"
    assert tab.get_attribute(".slide-pick[data-n='2']", "aria-current") == "true"
    # the PDF page, rendered by the server, is on screen
    tab.wait_for_function("() => { const i = document.getElementById('slide-img');"
                          " return !i.hidden && i.complete && i.naturalWidth > 100; }")
    tab.evaluate("document.getElementById('audio').pause()")
    tab.hover("#transcript")
    tab.mouse.wheel(0, 200)  # the reader scrolls: the transcript stops following until asked
    tab.locator("#resume").wait_for(state="visible")
    tab.click("#resume")
    assert tab.locator("#resume").is_hidden()
    watch_seeks(tab)
    tab.click(".slide-pick[data-n='3']")  # a slide: where it was first discussed
    assert abs(landed(tab) - captions[4].start) <= SEEK_SLACK_S
    assert tab.errors == []


def test_a_search_result_opens_the_lecture_at_its_caption(tab, owner_room, library):
    captions = library[1].captions
    tab.goto(owner_room.url("/library"))
    tab.wait_for_selector(".lecture")
    names = tab.eval_on_selector_all(".lecture-title", "links => links.map(a => a.getAttribute('href'))")
    assert names == [f"/lecture/{LECTURE_NAME}", "/lecture/2026-11-23_1000", "/lecture/2026-11-16_1000"]
    badges = tab.locator(".lecture").first.locator(".badge").all_inner_texts()
    assert {"recording", "slides", "notes", "summary"} <= set(badges)
    tab.fill("#q", "heavy")  # typing alone searches (debounced)
    tab.wait_for_selector(".result-link")
    assert tab.locator(".result-link mark").first.inner_text().lower() == "heavy"
    link = tab.locator(".result-link", has_text="drops become heavy").first
    link.click()
    tab.wait_for_url(f"**/lecture/{LECTURE_NAME}#t=*")
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
    tab.wait_for_function("(t) => Math.abs(document.getElementById('audio').currentTime - t) <= 0.3",
                          arg=captions[3].start)
    assert current_utt(tab) == captions[3].utt
    in_view = tab.evaluate("""(u) => { const c = document.querySelector(`#transcript .cap[data-utt="${u}"]`);
        const box = document.getElementById('transcript').getBoundingClientRect(), r = c.getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1; }""", captions[3].utt)
    assert in_view
    tab.go_back()
    tab.fill("#q", "continents")
    tab.press("#q", "Enter")
    tab.wait_for_function("() => [...document.querySelectorAll('.result-link')].some("
                          "a => a.dataset.session === '2026-11-16_1000')")
    assert tab.locator(".result-link img, .result-link script").count() == 0
    tab.goto(owner_room.url("/lecture/2026-11-16_1000"))
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
    assert EVIL in tab.locator("#transcript .cap .tx").first.inner_text()
    assert tab.locator("#transcript img, #transcript script").count() == 0
    assert tab.evaluate("window.pwned === undefined") and tab.errors == []


def test_an_ask_answer_streams_and_its_citation_seeks(tab, owner_room, library, llm):
    captions = library[1].captions
    open_lecture(tab, owner_room)
    tab.wait_for_selector("#ask:not([hidden])")
    tab.fill("#question", "What happens to heavy drops?")
    tab.press("#question", "Enter")
    cite = tab.locator("#turns a.cite").first
    cite.wait_for()
    assert cite.inner_text() == f"[{clock(captions[3].start + 1)}]"
    assert EVIL in tab.locator("#turns .a").first.inner_text()  # shown as text, never run
    assert tab.locator("#turns img, #turns script").count() == 0
    assert json.loads(llm.requests[-1].body)["stream"] is True
    watch_seeks(tab)
    cite.click()
    assert abs(landed(tab) - captions[3].start) <= SEEK_SLACK_S
    assert current_utt(tab) == captions[3].utt
    tab.evaluate("document.getElementById('audio').pause()")
    notes_link = tab.locator("#notes-body a.seek").first  # a [mm:ss] of the notes seeks too
    target = float(notes_link.get_attribute("data-t"))
    notes_link.click()
    assert abs(landed(tab, 2) - target) <= SEEK_SLACK_S
    assert tab.locator("#exports a").count() >= 1
    assert tab.evaluate("window.pwned === undefined") and tab.errors == []


def test_a_viewer_token_can_replay_but_not_ask(browser, library):
    captions = library[1].captions
    with RoomThread(room(library[0], llm_url="http://127.0.0.1:9/v1", viewer_token=VIEWER,
                         owner_token=OWNER)) as served:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        tab = context.new_page()
        assert tab.goto(served.url(f"/lecture/{LECTURE_NAME}")).status == 401
        tab.goto(served.url(f"/lecture/{LECTURE_NAME}?t={VIEWER}"))
        tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
        assert VIEWER not in tab.url and VIEWER not in tab.content()
        assert tab.locator("#ask").is_hidden() and tab.locator("#exports").is_hidden()
        watch_seeks(tab)
        tab.click(f"#transcript .cap[data-utt='{captions[1].utt}']")
        assert abs(landed(tab) - captions[1].start) <= SEEK_SLACK_S
        status = tab.evaluate("""(name) => fetch(`/api/lectures/${name}/ask`, {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({question: 'why?'})})
            .then(r => r.status)""", LECTURE_NAME)
        assert status == 403
        context.close()


def test_no_serious_accessibility_violation_on_any_page_or_theme(tab, owner_room):
    axe = axe_api.Axe()

    def serious() -> list[str]:
        found = axe.run(tab).response["violations"]
        return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in found if v["impact"] in ("serious", "critical")]

    tab.goto(owner_room.url("/library"))
    tab.wait_for_selector(".lecture")
    tab.fill("#q", "rain")
    tab.wait_for_selector(".result-link mark")
    assert serious() == [], "library"
    for theme in THEMES:
        open_lecture(tab, owner_room, f"?theme={theme}#t=10.5")
        tab.wait_for_selector("#notes-body a.seek")
        tab.wait_for_function("() => document.querySelector('#transcript .cap.current') !== null")
        assert serious() == [], f"lecture page, {theme} theme"
    assert tab.errors == []


def test_the_lecture_page_fits_a_phone_and_200_percent_zoom(browser, owner_room, library):
    captions = library[1].captions
    for width, scale in ((375, 3), (640, 2)):  # a phone; 200 % zoom of a 1280-pixel window
        context = browser.new_context(viewport={"width": width, "height": 720}, device_scale_factor=scale)
        tab = context.new_page()
        for path in ("/library", f"/lecture/{LECTURE_NAME}"):
            tab.goto(owner_room.url(path))
            tab.wait_for_selector(".lecture, #transcript .cap")
            overflow = tab.evaluate("document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")
            assert overflow <= 0, f"{path} at {width} px: {overflow} px of horizontal scrolling"
        caption = tab.locator(f"#transcript .cap[data-utt='{captions[1].utt}']")
        box = caption.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        watch_seeks(tab)
        caption.click()
        assert abs(landed(tab) - captions[1].start) <= SEEK_SLACK_S
        context.close()


@pytest.fixture(scope="module")
def live_room(library) -> Iterator[tuple[RoomThread, Path]]:
    """A session being captioned: its journal holds the first three captions, its recording so far."""
    lecture = library[1]
    root = library[0].parent / "live-lectures"
    folder = root / "2026-12-01_0900"
    journal = Journal(folder)
    for caption in lecture.captions[:3]:
        journal.append(caption)
    journal.close()
    write_meta(folder, session=folder.name, language="en", started="2026-12-01T09:00:00+00:00")
    recording = new_part_path(folder, 0.0)
    recording.parent.mkdir(parents=True)
    recording.write_bytes(recording_parts(lecture.folder)[0].path.read_bytes())
    with RoomThread(room(root, live=LiveSession(folder, live_feed(folder)))) as thread:
        yield thread, folder


def test_a_live_lecture_shows_new_captions_and_replays_the_recording(tab, live_room, library):
    served, folder = live_room
    captions = library[1].captions
    tab.goto(served.url(f"/lecture/{folder.name}"))
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
    tab.wait_for_function("() => document.getElementById('status').textContent === 'live'")
    new = Final(utt=3, start=captions[3].start, end=captions[3].end, text=captions[3].text, lang="en")
    served.call(lambda: served.server.feed.publish_final(new))
    tab.wait_for_function("() => document.querySelectorAll('#transcript .cap').length === 4")
    assert tab.locator("#transcript .cap .tx").last.inner_text() == captions[3].text
    watch_seeks(tab)
    tab.click(f"#transcript .cap[data-utt='{captions[0].utt}']")  # jump back while the lecture goes on
    assert abs(landed(tab) - captions[0].start) <= SEEK_SLACK_S
    # the caption page of the live session has no serious accessibility violation either
    for query in [f"?mode=reading&theme={theme}" for theme in THEMES] + ["?mode=projector"]:
        tab.goto(served.url("/captions" + query))
        tab.wait_for_function("() => window.notsoundFeed && window.notsoundFeed.last >= 4")
        found = axe_api.Axe().run(tab).response["violations"]
        assert [v["id"] for v in found if v["impact"] in ("serious", "critical")] == [], query
    assert tab.errors == []
