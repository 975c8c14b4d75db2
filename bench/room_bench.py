"""The lecture room under a library of 200 lectures, over HTTP to a real uvicorn.

A library of ``--lectures`` generated session folders (20-60 minutes each,
English and Chinese captions every ~5 s, notes for every other one; one of
them 90 minutes long with a recording part, and live) is served by the room
in a second process (``notsound.room`` on port 0, as ``notsound open`` and
``live --web`` serve it). Measured from this process, one request at a time
on a kept-alive connection:

- the library list (``/api/lectures``): the first (cold: every folder read)
  and then p50/p95 of ``--requests``;
- search round trip (``/api/search``, English and Chinese words): the first
  (the index is built) and then p50/p95;
- the 90-minute lecture's JSON (``/api/lectures/NAME``): first and p50/p95, its size;
- the server's RSS idle, and with 20 open lecture pages (20 clients that
  loaded the lecture's JSON and hold its live feed open);
- then ``bench.web_bench``'s check on the same server code: 200 live viewers
  during an accelerated lecture, each must get every caption once, in order.

``.venv/bin/python -m bench.room_bench`` (``--json FILE`` keeps the figures).
Timings on shared CPUs are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from library.folder import Final, encode_final, write_atomic, write_meta

ROOT = Path(__file__).resolve().parents[1]
EN = ("gradient descent learning rate momentum convex function loss surface batch normalization "
      "regularization overfitting validation backpropagation neuron activation optimizer").split()
ZH = list("学习率梯度下降动量凸函数损失曲面正则化过拟合验证集反向传播神经元激活优化器")
LONG = "2026-11-30_0900"


def _sentence(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(rng.choice(ZH) for _ in range(rng.randint(8, 20))) + "。"
    words = [rng.choice(EN) for _ in range(rng.randint(6, 16))]
    return " ".join(words).capitalize() + "."


def write_library(out: Path, lectures: int, seed: int = 11) -> Path:
    """``lectures`` session folders under ``out``; the newest one is 90 minutes long."""
    rng = random.Random(seed)
    for i in range(lectures):
        name = LONG if i == 0 else f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}_{8 + i % 9:02d}00"
        minutes = 90 if i == 0 else rng.uniform(20, 60)
        folder = out / name
        folder.mkdir(parents=True)
        rows, t, utt = [], 0.0, 0
        while t < minutes * 60:
            length = rng.uniform(2.0, 7.0)
            rows.append(encode_final(Final(utt=utt, start=round(t, 3), end=round(t + length, 3),
                                           text=_sentence(rng), lang="en", emotion="NEUTRAL", events=())))
            t += length + rng.uniform(0.3, 1.5)
            utt += 1
        write_atomic(folder / "transcript.jsonl", b"".join(rows), durable=False)
        write_meta(folder, session=name, language="auto", started=f"{name[:10]}T{name[11:13]}:00:00+00:00")
        if i % 2 == 0:
            write_atomic(folder / "notes.md", f"# Notes\n\n## [00:00] {_sentence(rng)}\n\n- {_sentence(rng)}\n",
                         durable=False)
    (out / LONG / "recording").mkdir()
    write_atomic(out / LONG / "recording" / "000-0.000.opus", os.urandom(4 << 20), durable=False)
    return out


# -- the server's process ------------------------------------------------------------------


async def serve(library: Path, port_file: Path) -> None:
    from notsound.room import LiveSession, RoomServer, live_feed, room_for
    from notsound.web import WebSettings

    live = LiveSession(library / LONG, live_feed(library / LONG))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with RoomServer(room_for(library, WebSettings(port=0, ping_interval_s=60), live)) as server:
        write_atomic(port_file, str(server.port), durable=False)
        await stop.wait()


# -- the measuring process --------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"first_ms": round(values[0] * 1000, 1), "p50_ms": round(statistics.median(ordered[1:]) * 1000, 1),
            "p95_ms": round(pick(0.95), 1), "n": len(values)}


def timed(client, url: str, **params) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = client.get(url, params=params or None)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r


async def hold_pages(base: str, pages: int) -> list[Any]:
    """``pages`` clients that loaded the long lecture and keep its live feed open."""
    import httpx
    from websockets.asyncio.client import connect

    held = []
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(pages):
            data = (await client.get(f"/api/lectures/{LONG}")).json()
            ws = await connect(base.replace("http", "ws") + data["feed"], max_size=None)
            hello = json.loads(await ws.recv())
            for _ in range(hello["last"]):  # the catch-up: every caption of the lecture so far
                await ws.recv()
            held.append(ws)
    return held


def measure(base: str, pid: int, requests: int, pages: int) -> dict[str, Any]:
    import httpx

    result: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        result["rss_idle_mb"] = round(rss_mb(pid), 1)
        result["library"] = summary([timed(client, "/api/lectures")[0] for _ in range(requests)])
        result["lectures_listed"] = len(client.get("/api/lectures").json()["lectures"])
        words = [*EN, *("学习率", "梯度下降", "反向传播", "正则化")]
        times, hits = [], 0
        for i in range(requests):
            elapsed, r = timed(client, "/api/search", q=words[i % len(words)])
            times.append(elapsed)
            hits += len(r.json()["results"])
        result["search"] = summary(times)
        result["search_hits_per_query"] = round(hits / requests, 1)
        lecture = [timed(client, f"/api/lectures/{LONG}") for _ in range(max(5, requests // 5))]
        result["lecture_90min"] = summary([t for t, _ in lecture])
        body = lecture[-1][1]
        result["lecture_90min_kb"] = round(len(body.content) / 1024, 1)
        result["lecture_90min_captions"] = len(body.json()["captions"])
        result["rss_after_requests_mb"] = round(rss_mb(pid), 1)
    held = asyncio.run(_pages_rss(base, pid, pages))
    result.update(held)
    return result


async def _pages_rss(base: str, pid: int, pages: int) -> dict[str, Any]:
    held = await hold_pages(base, pages)
    try:
        await asyncio.sleep(1.0)  # settle: the pages are idle now
        return {"open_pages": len(held), "rss_open_pages_mb": round(rss_mb(pid), 1)}
    finally:
        await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)


def viewers_check(viewers: int, minutes: float, speed: float) -> dict[str, Any]:
    from bench import web_bench

    args = argparse.Namespace(viewers=viewers, minutes=minutes, speed=speed)
    with tempfile.TemporaryDirectory(prefix="room-viewers-") as tmp:
        return asyncio.run(web_bench.with_viewers(args, Path(tmp), web_bench.synthetic_lecture(minutes)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="room-bench-") as tmp:
        t0 = time.perf_counter()
        library = write_library(Path(tmp) / "lectures", args.lectures)
        made_s = time.perf_counter() - t0
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, "-m", "bench.room_bench", "--serve", str(library),
                                   "--port-file", str(port_file)], cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the room's server did not start")
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            result = {"lectures": args.lectures, "library_written_s": round(made_s, 1),
                      **measure(base, server.pid, args.requests, args.pages)}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    if args.viewers:
        result["live_viewers"] = viewers_check(args.viewers, args.minutes, args.speed)
    result["load_avg"] = os.getloadavg()
    return result


def report(r: dict[str, Any]) -> str:
    lib, search, lecture = r["library"], r["search"], r["lecture_90min"]
    rows = [
        f"library of {r['lectures']} lectures ({r['lectures_listed']} listed); load average {r['load_avg'][0]:.2f}",
        f"library list: first {lib['first_ms']} ms, then p50 {lib['p50_ms']} ms, p95 {lib['p95_ms']} ms",
        f"search round trip: first {search['first_ms']} ms (index built), then p50 {search['p50_ms']} ms, "
        f"p95 {search['p95_ms']} ms ({r['search_hits_per_query']} hits a query)",
        f"90-minute lecture JSON ({r['lecture_90min_captions']} captions, {r['lecture_90min_kb']} kB): "
        f"first {lecture['first_ms']} ms, then p50 {lecture['p50_ms']} ms, p95 {lecture['p95_ms']} ms",
        f"server RSS: idle {r['rss_idle_mb']} MB, after the requests {r['rss_after_requests_mb']} MB, "
        f"with {r['open_pages']} open lecture pages (live feed held) {r['rss_open_pages_mb']} MB",
    ]
    v = r.get("live_viewers")
    if v:
        rows.append(f"live viewers: {v['connected']}/{v['viewers']} connected, "
                    f"{v['viewers_with_every_final_once_in_order']} got every one of {v['finals']} finals once "
                    f"and in order, {v['dropped']} dropped; page delay p50 {v['page_delay']['p50_ms']} ms, "
                    f"p95 {v['page_delay']['p95_ms']} ms; {v['kb_per_viewer_connected']} kB a viewer")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lectures", type=int, default=200)
    p.add_argument("--requests", type=int, default=100, help="requests per measure (default 100)")
    p.add_argument("--pages", type=int, default=20, help="open lecture pages (default 20)")
    p.add_argument("--viewers", type=int, default=200, help="live viewers (0: skip that check)")
    p.add_argument("--minutes", type=float, default=30.0, help="their lecture's length (default 30)")
    p.add_argument("--speed", type=float, default=30.0, help="times faster than real time (default 30)")
    p.add_argument("--json", type=Path, help="write the figures to FILE")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.port_file))
        return 0
    result = run(args)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
