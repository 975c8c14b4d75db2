"""Screenshots of the lecture room for the README: ``python scripts/screenshots.py [OUT_DIR]``.

Builds the browser tests' fixture lecture (espeak-ng speech, a PDF deck, notes)
and two more lectures in a temporary library, serves it on 127.0.0.1 port 0
and photographs each page with Debian's chromium (``scripts/system-deps.sh``)
into ``docs/screenshots/`` (or OUT_DIR):

- ``room-library.png``: the library, newest first, with badges;
- ``room-search.png``: a search and its marked snippets;
- ``room-lecture-dark.png`` / ``room-lecture-light.png``: the lecture page
  playing, with the slide of the moment, notes and an answered question;
- ``room-phone.png``: the lecture page 375 px wide.

Run from the repository root with ``PYTHONPATH=$PWD``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.notsound.room.browser_room import RoomThread, launch_chromium, room
from tests.notsound.room.lecture_fixture import LECTURE_NAME, write_lecture, write_plain_lecture
from tests.summarizer.llm_server import FakeLLM

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
OTHERS = [
    ("2026-11-23_1000", "Photosynthesis turns light into sugar in the leaves.", "2026-11-23T10:00:00+00:00"),
    ("2026-11-16_1000", "Plate tectonics moves the continents a few centimetres a year.",
     "2026-11-16T10:00:00+00:00"),
]


def library(root: Path):
    lecture = write_lecture(root)
    for name, sentence, started in OTHERS:
        write_plain_lecture(root, name, [sentence], started)
    return lecture


def show_lecture(tab, served: RoomThread, theme: str, at: float) -> None:
    tab.goto(served.url(f"/lecture/{LECTURE_NAME}?theme={theme}#t={at}"))
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
    tab.wait_for_function("() => { const i = document.getElementById('slide-img');"
                          " return i.hidden || (i.complete && i.naturalWidth > 0); }")


def ask(tab, question: str) -> None:
    tab.fill("#question", question)
    tab.press("#question", "Enter")
    tab.locator("#turns a.cite").first.wait_for()
    tab.evaluate("() => { document.activeElement.blur(); document.getElementById('side').scrollTop = 0; }")


def shoot(browser, served: RoomThread, out: Path, at: float) -> list[Path]:
    made = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.goto(served.url("/library?theme=dark"))
    tab.wait_for_selector(".lecture")
    made.append(out / "room-library.png")
    tab.screenshot(path=str(made[-1]))
    tab.fill("#q", "rain")
    tab.press("#q", "Enter")
    tab.wait_for_selector(".result-link mark")
    made.append(out / "room-search.png")
    tab.screenshot(path=str(made[-1]))
    for i, theme in enumerate(("dark", "light")):
        show_lecture(tab, served, theme, at)
        if i == 0:
            ask(tab, "What happens to the drops in cold air?")
        made.append(out / f"room-lecture-{theme}.png")
        tab.screenshot(path=str(made[-1]))
    context.close()
    phone = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2)
    tab = phone.new_page()
    show_lecture(tab, served, "dark", at)
    made.append(out / "room-phone.png")
    tab.screenshot(path=str(made[-1]))
    phone.close()
    return made


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lecture = library(Path(tmp) / "lectures")
        cited = lecture.captions[2]
        said = int(cited.start) + 1  # a second into the caption
        stamp = f"{said // 60:02d}:{said % 60:02d}"
        with FakeLLM(reply=lambda request: f"Cold air condenses the vapour into small drops [{stamp}],"
                     " which form clouds.") as llm, \
                RoomThread(room(Path(tmp) / "lectures", llm_url=llm.url)) as served, \
                sync_playwright() as p:
            browser = launch_chromium(p)
            made = shoot(browser, served, out, at=cited.start + 1.0)
            browser.close()
    for path in made:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
