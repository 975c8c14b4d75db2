"""The caption page in a real browser: playwright driving Debian's chromium.

The captions come from a fake source (the feed is fed directly), so each test
takes a second or two. Screenshots of every mode and theme are kept in
``build/screenshots/`` (the README's copies are in ``docs/screenshots/``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notsound.room import RoomServer as CaptionPage
from notsound.web_feed import CaptionFeed
from tests.notsound.test_web import caption, start_page, stop_page
from wire.protocol import Partial

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
THEMES = ("dark", "light", "contrast")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (scripts/system-deps.sh)")

LECTURE = [
    "Good morning everyone, today we talk about the water cycle.",
    "Water evaporates from the oceans and rises into the sky.",
    "In the cold air it condenses into small drops and forms clouds.",
    "When the drops become heavy they fall back to the ground as rain.",
    "水循环是地球上最重要的过程之一。",
]
NOTES = """# Water cycle

## Evaporation [00:00–00:08]
- The sun heats the oceans; water **evaporates** and rises.
- See [the reading list](https://example.org/reading).

## Condensation [00:08–00:16]
- Cold air: vapour condenses into drops, drops form clouds.
"""

# Contrast of every text element against the background it is drawn on (WCAG 2.x formula).
CONTRAST_JS = """(selectors) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if (!el.getClientRects().length || !el.textContent.trim()) continue;
      const fg = rgb(getComputedStyle(el).color), bg = background(el);
      if (fg.length === 4 && fg[3] < 1) { out.push({sel, ratio: 0}); continue; }
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      out.push({sel, ratio: (a + 0.05) / (b + 0.05)});
    }
  }
  return out;
}"""

# Distinct text lines of the projector that are at least partly inside its visible window.
VISIBLE_LINES_JS = """() => {
  const box = document.getElementById("pj-window").getBoundingClientRect();
  const tops = new Set();
  const walker = document.createTreeWalker(document.getElementById("pj-text"), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(n);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && r.bottom > box.top + 1 && r.top < box.bottom - 1) tops.add(Math.round(r.top));
    }
  }
  return tops.size;
}"""

READING = [".tx", ".ts", ".ev", ".tr", ".partial", ".notes h2", ".notes-body li", ".notes-body h1",
           ".notes-body h2", ".notes-body a", ".bar h1", ".status", ".controls label", "select", "button"]
PROJECTOR = [".pj-final", ".pj-partial"]


@pytest.fixture
async def browser() -> AsyncIterator:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        await browser.close()


@pytest.fixture
async def page_server() -> AsyncIterator[CaptionPage]:
    page = await start_page(CaptionFeed("2026-11-29_0900"))
    yield page
    await stop_page(page)


def lecture(feed: CaptionFeed, count: int = len(LECTURE), first: int = 0) -> None:
    for utt in range(first, first + count):
        feed.publish_final(caption(utt, LECTURE[utt % len(LECTURE)], start=utt * 4.5))


async def open_page(browser, page_server: CaptionPage, query: str = "", width: int = 1100,
                    height: int = 640):
    context = await browser.new_context(viewport={"width": width, "height": height})
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await tab.goto(f"http://127.0.0.1:{page_server.port}/{query}")
    tab.errors = errors
    return tab


async def shown_finals(tab) -> list[tuple[int, str]]:
    return [tuple(row) for row in await tab.eval_on_selector_all(
        "#history .cap[data-seq]", "rows => rows.map(r => [Number(r.dataset.seq), r.querySelector('.tx').textContent])")]


async def wait_seq(tab, seq: int) -> None:
    await tab.wait_for_function("(n) => window.notsoundFeed && window.notsoundFeed.last >= n", arg=seq,
                                timeout=10_000)


async def screenshot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


async def test_finals_appear_in_order_and_the_partial_is_replaced_in_place(browser, page_server):
    feed = page_server.feed
    tab = await open_page(browser, page_server)
    lecture(feed, 3)
    await wait_seq(tab, 3)
    feed.publish_partial(Partial(utt=3, text="In the cold"))
    await tab.wait_for_function("() => document.getElementById('partial').textContent === 'In the cold'")
    feed.publish_partial(Partial(utt=3, text="In the cold air it condenses"))
    await tab.wait_for_function(
        "() => document.getElementById('partial').textContent === 'In the cold air it condenses'")
    assert await tab.locator(".partial").count() == 1
    feed.publish_final(caption(3, LECTURE[2], start=13.5))
    await wait_seq(tab, 4)
    assert await shown_finals(tab) == [(1, LECTURE[0]), (2, LECTURE[1]), (3, LECTURE[2]), (4, LECTURE[2])]
    assert await tab.locator("#partial").is_hidden()
    assert await tab.locator(".cap .ts").all_inner_texts() == ["[00:00]", "[00:04]", "[00:09]", "[00:13]"]
    assert tab.errors == []


async def test_partials_stay_out_of_live_regions_and_each_live_final_is_announced_once(browser,
                                                                                       page_server):
    feed = page_server.feed
    lecture(feed, 2)  # before the page opens: caught up, not announced
    tab = await open_page(browser, page_server)
    await wait_seq(tab, 2)
    feed.publish_partial(Partial(utt=2, text="a fragment"))
    await tab.wait_for_function("() => document.getElementById('partial').textContent === 'a fragment'")
    assert await tab.evaluate("document.getElementById('partial').closest('[aria-live],[role=log],"
                              "[role=status],[role=alert]') === null")
    assert await tab.evaluate("document.getElementById('pj-partial').closest('[aria-live]') === null")
    lecture(feed, 2, first=2)
    await wait_seq(tab, 4)
    announced = await tab.locator("#announce p").all_inner_texts()
    assert announced == [LECTURE[2], LECTURE[3]]


async def test_a_dropped_connection_catches_up_with_nothing_doubled(browser, page_server):
    feed = page_server.feed
    tab = await open_page(browser, page_server)
    lecture(feed, 2)
    await wait_seq(tab, 2)
    for viewer in list(feed.viewers):  # the network drops the page
        feed.leave(viewer)
        viewer.drop()
    lecture(feed, 3, first=2)  # said while the page was away
    await wait_seq(tab, 5)
    lecture(feed, 1, first=5)
    await wait_seq(tab, 6)
    shown = await shown_finals(tab)
    assert [seq for seq, _ in shown] == [1, 2, 3, 4, 5, 6]
    assert [text for _, text in shown] == [LECTURE[i % len(LECTURE)] for i in range(6)]
    assert feed.stats.joined == 2


async def test_a_script_in_a_caption_is_shown_as_text(browser, page_server):
    feed = page_server.feed
    tab = await open_page(browser, page_server)
    evil = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    feed.publish_final(caption(0, evil))
    feed.publish_partial(Partial(utt=1, text="<b onmouseover=alert(1)>partial</b>"))
    feed.set_notes("# Notes\n\n<script>window.pwned = 3</script>\n\n[x](javascript:window.pwned=4)")
    await wait_seq(tab, 1)
    await tab.wait_for_function("() => document.querySelector('#notes-body h1') !== null")
    assert (await shown_finals(tab))[0][1] == evil
    assert await tab.locator("#history script, #history img, #history b, #notes-body script").count() == 0
    assert await tab.locator("#notes-body a").count() == 0
    assert await tab.evaluate("window.pwned === undefined")


async def test_every_theme_has_text_contrast_of_at_least_4_5(browser, page_server):
    feed = page_server.feed
    lecture(feed, 4)
    feed.publish_final(dataclasses.replace(caption(4, LECTURE[4], start=18.0), lang="zh", events=("BGM",)))
    feed.publish_translation(0, "早上好，今天我们讨论水循环。")
    feed.publish_partial(Partial(utt=5, text="Clouds move with the wind"))
    feed.set_notes(NOTES)
    for theme in THEMES:
        for mode, selectors in (("reading", READING), ("projector", PROJECTOR)):
            tab = await open_page(browser, page_server, f"?theme={theme}&mode={mode}&lines=3")
            await wait_seq(tab, 5)
            await tab.wait_for_function("() => document.getElementById('pj-partial') &&"
                                        " document.getElementById('pj-partial').textContent !== ''")
            if mode == "reading":
                await tab.wait_for_function("() => document.querySelector('#notes-body a') !== null")
                await tab.wait_for_function("() => document.querySelector('.tr') !== null")
            results = await tab.evaluate(CONTRAST_JS, selectors)
            checked = {r["sel"] for r in results}
            assert checked == set(selectors), f"{theme}/{mode}: not shown: {set(selectors) - checked}"
            low = [r for r in results if r["ratio"] < 4.5]
            assert not low, f"{theme}/{mode}: contrast below 4.5:1: {low}"
            await screenshot(tab, f"{mode}-{theme}")
            await tab.context.close()


async def test_projector_mode_shows_at_most_the_configured_lines(browser, page_server):
    feed = page_server.feed
    lecture(feed, 10)
    feed.publish_partial(Partial(utt=10, text="and the newest words are at the bottom"))
    for lines in (2, 3):
        tab = await open_page(browser, page_server, f"?mode=projector&lines={lines}&size=48")
        await wait_seq(tab, 10)
        await tab.wait_for_function("() => document.getElementById('pj-partial').textContent !== ''")
        visible = await tab.evaluate(VISIBLE_LINES_JS)
        assert 1 <= visible <= lines, f"{visible} lines visible with lines={lines}"
        assert await tab.locator("#bar").is_hidden() and await tab.locator("#reading").is_hidden()
        newest = await tab.evaluate("""() => {
            const box = document.getElementById('pj-window').getBoundingClientRect();
            const r = document.getElementById('pj-partial').getBoundingClientRect();
            return r.bottom <= box.bottom + 1 && r.top >= box.top - 1;
        }""")
        assert newest, "the partial (the newest words) must be visible"
        await screenshot(tab, f"projector-{lines}-lines")
        await tab.context.close()


async def test_settings_come_from_the_url_and_are_remembered(browser, page_server):
    context = await browser.new_context(viewport={"width": 900, "height": 600})
    tab = await context.new_page()
    base = f"http://127.0.0.1:{page_server.port}/"
    await tab.goto(base + "?theme=light&mode=projector&lines=2&size=40")
    assert await tab.evaluate("document.body.className") == "theme-light mode-projector"
    await tab.goto(base)  # no parameters: what was chosen last time
    assert await tab.evaluate("document.body.className") == "theme-light mode-projector"
    assert await tab.evaluate("getComputedStyle(document.getElementById('pj-window')).fontSize") == "40px"
    await tab.keyboard.press("m")
    assert await tab.evaluate("document.body.className") == "theme-light mode-reading"
    await tab.select_option("#set-theme", "contrast")
    stored = json.loads(await tab.evaluate("localStorage.getItem('notsound.page')"))
    assert stored["theme"] == "contrast" and stored["mode"] == "reading" and stored["lines"] == 2
    await context.close()


async def test_reading_mode_reflows_at_200_percent_zoom(browser, page_server):
    lecture(page_server.feed, 5)
    page_server.feed.set_notes(NOTES)
    # 200 % zoom of a 1280-pixel window leaves 640 CSS pixels
    context = await browser.new_context(viewport={"width": 640, "height": 720}, device_scale_factor=2)
    tab = await context.new_page()
    await tab.goto(f"http://127.0.0.1:{page_server.port}/?mode=reading&theme=dark")
    await wait_seq(tab, 5)
    await tab.wait_for_function("() => document.querySelector('#notes-body li') !== null")
    overflow = await tab.evaluate("document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")
    assert overflow <= 0, f"{overflow} px of horizontal scrolling at 200 % zoom"
    history = await tab.locator("#history").bounding_box()
    notes = await tab.locator("#notes").bounding_box()
    assert notes["y"] >= history["y"] + history["height"] - 1, "notes go below the captions when narrow"
    await screenshot(tab, "reading-zoom-200")
    await context.close()
