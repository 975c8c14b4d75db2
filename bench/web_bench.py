"""Caption page under load: many viewers on loopback during an accelerated lecture.

The page is the lecture room's live feed (``notsound.room``: Starlette on uvicorn), as
``notsound live --web`` serves it.

A synthetic lecture (utterances of 2-9 s with 0.4-1.5 s pauses, ~2.5 words a
second, a partial every 0.6 s of speech, the final 0.3 s after the end) is
played ``--speed`` times faster than real time into the real ``LiveRun``
callbacks (journal with fsync, plain terminal view, the caption feed) twice in
the same process: first with no page at all, then with ``--viewers`` WebSocket
clients (in a second process) connected to the caption page. Reported:

- whether every viewer received every final exactly once, in order;
- the page's added delay: from the moment the final reached ``on_final`` to its
  arrival at each viewer (p50/p95/max over all viewers and finals);
- memory per viewer: the server's RSS with the viewers connected minus before,
  divided by the number of viewers (and the same at the end of the lecture);
- caption handling latency of the capture side (from the moment a final is due
  to the end of ``on_final``: event-loop delay plus the journal, the view and
  the feed), without and with viewers.

``.venv/bin/python -m bench.web_bench`` (defaults: 200 viewers, 30 minutes, 30x);
``--json FILE`` keeps the figures. Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from notsound.liverun import LiveRun, LiveSettings
from notsound.room import LiveSession, RoomServer, room_for
from notsound.view import CaptionView
from notsound.web import WebSettings
from notsound.web_feed import CaptionFeed, FeedLimits
from wire.protocol import Caption, Partial

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("water evaporates from the oceans rises into the sky condenses into small drops forms "
         "clouds heavy rain falls back to the ground rivers carry it to the sea again").split()
_FINAL_PREFIX = '{"type":"final","seq":'


@dataclass(frozen=True)
class Event:
    t: float  # lecture seconds when it is due
    utt: int
    text: str
    final: bool
    start: float = 0.0
    end: float = 0.0


def synthetic_lecture(minutes: float, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    t, utt = 0.5, 0
    while t < minutes * 60:
        length = rng.uniform(2.0, 9.0)
        words = [rng.choice(WORDS) for _ in range(max(1, round(length * 2.5)))]
        for k in range(1, int(length / 0.6) + 1):
            said = words[: max(1, len(words) * k * 6 // int(length * 10))]
            events.append(Event(t + k * 0.6, utt, " ".join(said), False))
        events.append(Event(t + length + 0.3, utt, " ".join(words).capitalize() + ".", True, t, t + length))
        t += length + rng.uniform(0.4, 1.5)
        utt += 1
    return sorted(events, key=lambda e: e.t)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 2), "p95_ms": round(pct(values, 0.95) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2), "n": len(values)}


async def play(run: LiveRun, events: list[Event], speed: float) -> tuple[list[float], dict[int, float]]:
    """Deliver the events on time; returns handling latencies and when each seq reached on_final."""
    latencies: list[float] = []
    arrived: dict[int, float] = {}
    t0 = time.monotonic()
    for event in events:
        due = t0 + event.t / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if event.final:
            arrived[len(arrived) + 1] = time.monotonic()
            run.on_final(Caption(utt=event.utt, start=event.start, end=event.end, text=event.text,
                                 lang="en", emotion="NEUTRAL", events=()), None)
            latencies.append(time.monotonic() - due)
        else:
            run.on_partial(Partial(utt=event.utt, text=event.text))
    return latencies, arrived


def live_run(out: Path, session: str) -> LiveRun:
    console = Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
    settings = LiveSettings(out=out, session=session, plain=True, notes=False)
    return LiveRun(settings, CaptionView(console, plain=True))


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def with_viewers(args: argparse.Namespace, out: Path, events: list[Event]) -> dict:
    run = live_run(out, "viewers")
    feed = CaptionFeed("viewers", FeedLimits(max_viewers=args.viewers + 10))
    run.feed = feed
    results = out / "viewers.json"
    room = room_for(out, WebSettings(port=0, ping_interval_s=60), LiveSession(run.session_dir, feed))
    async with RoomServer(room) as page:
        rss0 = rss_mb()
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.web_bench", "--viewer-clients", str(args.viewers),
             "--url", f"ws://127.0.0.1:{page.port}/feed", "--results", str(results)], cwd=ROOT)
        try:
            if not await wait_until(lambda: len(feed.viewers) == args.viewers, 120):
                raise RuntimeError(f"only {len(feed.viewers)} of {args.viewers} viewers connected")
            await asyncio.sleep(1.0)  # settle: the clients' connections are idle now
            rss_connected = rss_mb()
            latencies, arrived = await play(run, events, args.speed)
            caught_up = await wait_until(
                lambda: all(not feed.pending(v) for v in feed.viewers), 120)
            rss_end = rss_mb()
        finally:
            await page.stop()
            await asyncio.to_thread(clients.wait, 120)
            run.close()
    received = json.loads(results.read_text())
    finals = len(arrived)
    complete = sum(1 for seqs in received if [s for s, _ in seqs] == list(range(1, finals + 1)))
    delays = [t - arrived[s] for seqs in received for s, t in seqs if s in arrived]
    return {
        "viewers": args.viewers, "connected": len(received), "finals": finals,
        "viewers_with_every_final_once_in_order": complete, "dropped": feed.stats.dropped,
        "caught_up": caught_up, "partials_published": feed.stats.partials,
        "page_delay": summary(delays),
        "handling": summary(latencies),
        "rss_mb": {"before": round(rss0, 1), "connected": round(rss_connected, 1), "end": round(rss_end, 1)},
        "kb_per_viewer_connected": round((rss_connected - rss0) * 1024 / args.viewers, 1),
        "kb_per_viewer_end": round((rss_end - rss0) * 1024 / args.viewers, 1),
    }


async def server_main(args: argparse.Namespace) -> dict:
    events = synthetic_lecture(args.minutes)
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        out = Path(tmp)
        run = live_run(out, "baseline")
        try:
            baseline, _ = await play(run, events, args.speed)
        finally:
            run.close()
        loaded = await with_viewers(args, out, events)
    return {"lecture_min": args.minutes, "speed": args.speed, "load_avg": os.getloadavg(),
            "handling_no_viewers": summary(baseline), **loaded}


# -- the viewers' process ---------------------------------------------------------------


async def viewer(url: str, got: list[tuple[int, float]]) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, compression=None, max_size=1 << 20, ping_interval=None) as ws:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                if frame.startswith(_FINAL_PREFIX):
                    got.append((int(frame[len(_FINAL_PREFIX):frame.index(",", len(_FINAL_PREFIX))]),
                                time.monotonic()))


async def clients_main(args: argparse.Namespace) -> None:
    got: list[list[tuple[int, float]]] = [[] for _ in range(args.viewer_clients)]
    tasks = []
    for i in range(args.viewer_clients):
        tasks.append(asyncio.create_task(viewer(args.url, got[i])))
        if i % 20 == 19:
            await asyncio.sleep(0.05)  # do not flood the listen backlog
    await asyncio.gather(*tasks, return_exceptions=True)
    Path(args.results).write_text(json.dumps(got))


def report(r: dict) -> str:
    rows = [
        f"lecture: {r['lecture_min']} min at {r['speed']}x, {r['finals']} finals, "
        f"{r['partials_published']} partials; load average {r['load_avg'][0]:.2f}",
        f"viewers: {r['connected']}/{r['viewers']} connected, {r['viewers_with_every_final_once_in_order']} "
        f"got every final once and in order, {r['dropped']} dropped",
        f"page delay after the final: p50 {r['page_delay']['p50_ms']} ms, p95 {r['page_delay']['p95_ms']} ms, "
        f"max {r['page_delay']['max_ms']} ms",
        f"memory: {r['kb_per_viewer_connected']} kB per viewer connected, {r['kb_per_viewer_end']} kB "
        f"at the end (RSS {r['rss_mb']})",
        f"caption handling (capture side): no viewers p50 {r['handling_no_viewers']['p50_ms']} ms / "
        f"p95 {r['handling_no_viewers']['p95_ms']} ms; {r['viewers']} viewers p50 {r['handling']['p50_ms']} ms"
        f" / p95 {r['handling']['p95_ms']} ms",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--viewers", type=int, default=200)
    p.add_argument("--minutes", type=float, default=30.0, help="lecture length (default 30)")
    p.add_argument("--speed", type=float, default=30.0, help="times faster than real time (default 30)")
    p.add_argument("--json", type=Path, help="write the figures to FILE")
    p.add_argument("--viewer-clients", type=int, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.viewer_clients:
        asyncio.run(clients_main(args))
        return 0
    result = asyncio.run(server_main(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
