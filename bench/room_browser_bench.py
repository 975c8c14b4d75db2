"""The lecture page in a real browser: time to the first caption of a long lecture, seek latency.

A synthetic lecture of ``--minutes`` (default 90) minutes: a caption every 4 s
(about 1350), a slide tag every 3 minutes, notes, and a recording of espeak-ng
speech encoded once with :class:`library.opus.OpusWriter` as a 5-minute part
and laid down as consecutive parts (so the page's part mapping is exercised:
part k plays session time 300 k ... 300 (k+1)). Served by the room on
127.0.0.1 port 0, opened ``--loads`` times in Debian's chromium (a fresh
browser context each time, nothing cached). Reported, p50/p95/max:

- ``first_caption_ms``: navigation start to the first caption button in the
  transcript (a MutationObserver set before the page's scripts run);
- ``ready_ms``: navigation start to the page being ready (every
  caption, slide and note in place);
- ``seek_ms``: a click on a caption to the audio's ``seeked`` event, for
  ``--seeks`` captions picked at random (seeded; every other one in the part
  playing), split into seeks inside the part playing and seeks that change
  parts (a new source is loaded).

``PYTHONPATH=$PWD .venv/bin/python -m bench.room_browser_bench [--json FILE]``.
Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.speech import missing_tools, synth
from library.folder import Final, Journal, new_part_path, write_atomic, write_meta
from library.opus import OpusWriter
from tests.notsound.room.browser_room import RoomThread, launch_chromium, room

PART_S = 300.0
CAPTION_EVERY_S = 4.0
NAME = "2026-11-30_0900"
SENTENCES = [
    "Water evaporates from the oceans and rises into the sky.",
    "In the cold air it condenses into small drops and forms clouds.",
    "When the drops become heavy they fall back to the ground as rain.",
    "Rivers carry the rain back to the sea, and the cycle starts again.",
]
FIRST_CAPTION_JS = """(() => {
  const seen = () => document.querySelector('#transcript button.cap');
  new MutationObserver((_, observer) => {
    if (window.firstCaptionMs === undefined && seen()) {
      window.firstCaptionMs = performance.now();
      observer.disconnect();
    }
  }).observe(document, {childList: true, subtree: true});
})();"""
SEEK_JS = """() => { const a = document.getElementById('audio');
  document.getElementById('transcript').addEventListener('pointerdown', () => { window.clickAt = performance.now(); },
                                                         {capture: true});
  a.addEventListener('seeked', () => { window.seekedAt = performance.now(); }); }"""


def _part(seconds: float, path: Path) -> None:
    block = np.concatenate([np.concatenate([synth(s), np.zeros(12_800, np.int16)]) for s in SENTENCES])
    writer = OpusWriter(path)
    written = 0
    while written < seconds * 16_000:
        writer.write(block)
        written += len(block)
    writer.close()


def build(library: Path, minutes: float) -> list[Final]:
    folder = library / NAME
    journal = Journal(folder)
    count = int(minutes * 60 / CAPTION_EVERY_S)
    finals = [Final(utt=i, start=i * CAPTION_EVERY_S, end=i * CAPTION_EVERY_S + 3.5, lang="en",
                    text=f"{SENTENCES[i % len(SENTENCES)]} ({i})", slide=1 + int(i * CAPTION_EVERY_S // 180))
              for i in range(count)]
    for final in finals:
        journal.append(final)
    journal.close()
    first = new_part_path(folder, 0.0)
    _part(PART_S, first)
    for k in range(1, int(np.ceil(minutes * 60 / PART_S))):
        new_part_path(folder, k * PART_S).write_bytes(first.read_bytes())
    notes = "\n".join(f"## Part {k + 1} [{k * 3:02d}:00]\n- {SENTENCES[k % 4]}" for k in range(int(minutes // 3)))
    write_atomic(folder / "notes.md", "# Notes\n\n" + notes + "\n")
    write_meta(folder, session=NAME, language="en", started="2026-11-30T09:00:00+00:00",
               ended="2026-11-30T10:30:00+00:00")
    return finals


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "max": round(ordered[-1], 1)}


def measure(browser, served: RoomThread, finals: list[Final], loads: int, seeks: int, seed: int) -> dict:
    first, ready, inside, across = [], [], [], []
    rng = random.Random(seed)
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(FIRST_CAPTION_JS)
        tab = context.new_page()
        tab.goto(served.url(f"/lecture/{NAME}"))
        tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
        first.append(tab.evaluate("window.firstCaptionMs"))
        ready.append(tab.evaluate("window.notsoundRoom.readyMs"))
        context.close()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.goto(served.url(f"/lecture/{NAME}"))
    tab.wait_for_function("() => window.notsoundRoom && window.notsoundRoom.ready")
    tab.evaluate(SEEK_JS)
    for i in range(seeks):
        was = int(tab.evaluate("window.notsoundRoom.time") // PART_S)
        same = [f for f in finals if int(f.start // PART_S) == was]
        caption = rng.choice(same if i % 2 else finals)  # every other seek stays in the part playing
        tab.evaluate("() => { window.seekedAt = undefined; }")
        tab.locator(f"#transcript .cap[data-utt='{caption.utt}']").click()
        tab.wait_for_function("() => window.seekedAt !== undefined")
        took = tab.evaluate("window.seekedAt - window.clickAt")
        (inside if int(caption.start // PART_S) == was else across).append(took)
        tab.evaluate("document.getElementById('audio').pause()")
    context.close()
    return {"first_caption_ms": quantiles(first), "ready_ms": quantiles(ready),
            "seek_ms_same_part": quantiles(inside), "seek_ms_other_part": quantiles(across)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=90.0)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seeks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if missing_tools():
        parser.error(f"needs {', '.join(missing_tools())}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "lectures"
        finals = build(library, args.minutes)
        with RoomThread(room(library)) as served, sync_playwright() as p:
            browser = launch_chromium(p)
            figures = measure(browser, served, finals, args.loads, args.seeks, args.seed)
            browser.close()
    figures = {"minutes": args.minutes, "captions": len(finals), **figures}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
