"""Fault campaign: lectures captioned through a worker that keeps getting SIGKILLed.

A worker process (``notsound serve --engine fake``) is killed with SIGKILL at
random moments and restarted on the same port, again and again, while several
``notsound live`` processes replay espeak-ng lectures in real time. On top of
that:

- one or more capture processes are themselves SIGKILLed mid-lecture and
  restarted with the same ``--session`` and the rest of the lecture (a new
  file: a restarted capture goes on with new audio, it does not replay the
  old), so their spooled utterances are sent again and numbering continues;
- client 0 connects through a TCP proxy that drops connections in the middle
  of a binary (audio) frame.

Afterwards every session's ``transcript.jsonl`` is checked against what was
spoken: the utterances Silero VAD cuts from each file (the same segmenter,
run offline; the fake engine's caption is a checksum of the audio, so texts
must match exactly), plus, for a killed client, what its spool held at the
moment it died. Run by hand with bigger numbers::

    python -m bench.fault_campaign --clients 3 --sentences 16 --worker-kills 60 --client-kills 2

It prints a summary and writes ``bench/out/fault_campaign.json``.
``tests/live/test_faults.py`` runs it with small numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.audio import BYTES_PER_SAMPLE, SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "bench" / "out"

SENTENCES = [
    "Good morning everyone, today we talk about the water cycle.",
    "Water evaporates from the oceans and rises into the sky.",
    "In the cold air it condenses into small drops and forms clouds.",
    "When the drops become heavy they fall back to the ground as rain.",
    "Rivers carry the rain water back to the sea.",
    "Some of it soaks into the ground and becomes ground water.",
    "Plants pull water from the soil through their roots.",
    "Their leaves release it again into the air.",
    "This process is called transpiration.",
    "Snow stores water in the mountains during the winter.",
    "In spring the snow melts and the rivers rise.",
    "Lakes and glaciers hold most of the fresh water on earth.",
    "The sun drives the whole cycle with its heat.",
    "Next week we will look at the weather in more detail.",
    "Please read the second chapter before the next lecture.",
    "Are there any questions before we finish for today?",
]


@dataclass(frozen=True)
class CampaignOptions:
    """How hard to push.

    Attributes:
        clients: lectures captioned at once, each by a ``notsound live`` process.
        sentences: sentences per lecture (about 4.5 s each with the pause).
        continuation: sentences in the file a killed client goes on with.
        worker_kills: SIGKILLs of the worker (at least; more if the lectures last).
        client_kills: capture processes killed and restarted (clients 1, 2, ..., then 0).
        proxy_cuts: connections of client 0 cut mid audio frame by the proxy.
        uptime_s: the worker lives a random time in this range between kills.
        model: the fake engine's options (``rtf=0.05``: 50 ms per second of audio).
        seed: for the kill times and the sentence order.
        workdir: folder for sessions, logs and keys (a temporary one when None).
        out: folder for ``fault_campaign.json``; None writes nothing.
        timeout_s: give up after this long.
    """

    clients: int = 3
    sentences: int = 8
    continuation: int = 3
    worker_kills: int = 20
    client_kills: int = 1
    proxy_cuts: int = 3
    uptime_s: tuple[float, float] = (0.3, 1.2)
    model: str = "rtf=0.05"
    seed: int = 404
    workdir: Path | None = None
    out: Path | None = OUT_DIR
    timeout_s: float = 300.0


@dataclass
class SessionReport:
    name: str
    runs: int = 1  # capture processes that worked on it (1 + restarts)
    streams: int = 0  # WebSocket streams the workers opened for it
    spoken: int = 0
    journaled: int = 0
    duplicates: int = 0  # transcript lines repeating an utt
    lost: int = 0  # spoken, not journaled
    mismatched: int = 0  # journaled with a text other than its audio's
    gaps: int = 0  # utt numbers missing between 0 and the last one
    spooled_at_kill: list[int] = field(default_factory=list)
    spooled_journaled: int = 0


# -- speech and the expected utterances ------------------------------------------


def lecture_file(path: Path, sentences: list[str]) -> np.ndarray:
    """Write the lecture to ``path`` (WAV) and return its samples."""
    from tests import speech

    pcm = speech.lecture(sentences, gap_s=1.2)
    speech.write_wav(path, pcm)
    return pcm


def expected_texts(pcm: np.ndarray, first_utt: int = 0) -> list[str]:
    """What the fake engine says for each utterance Silero VAD cuts from ``pcm`` (0.1 s blocks,
    as ``FileSource`` delivers them)."""
    from bench.fake_engine import fake_text
    from capture.segmenter import Segmenter, UtteranceEnded

    segmenter = Segmenter(first_utt=first_utt)
    ended = []
    for i in range(0, len(pcm), 1600):
        ended += [e for e in segmenter.feed(pcm[i:i + 1600]) if isinstance(e, UtteranceEnded)]
    ended += [e for e in segmenter.flush() if isinstance(e, UtteranceEnded)]
    return [fake_text(e.utterance.pcm()) for e in ended]


# -- a proxy that cuts connections in the middle of an audio frame ---------------------


class FrameCutter:
    """Follows the client->worker byte stream (HTTP upgrade, then masked WebSocket frames) and
    says where to cut: inside the payload of the ``cut_at``-th binary frame."""

    def __init__(self, cut_at: int | None, rng: random.Random | None = None):
        self.cut_at = cut_at  # None: never cut
        self.rng = rng or random.Random(0)
        self.in_http = True
        self.http_tail = b""
        self.head = bytearray()
        self.remaining = 0  # payload bytes of the current frame still to come
        self.binary_frames = 0
        self.pending_cut: int | None = None  # bytes to forward before the cut (frame spans chunks)
        self.cut_frame: tuple[int, int] | None = None  # (payload length, payload bytes forwarded)
        self.cut_done = False  # the cut happened: part of a frame went out, then the stream ended

    def scan(self, data: bytes) -> int | None:
        """Offset in ``data`` to cut at (forward ``data[:offset]``, then drop), or None."""
        if self.pending_cut is not None:
            if self.pending_cut <= len(data):
                return self.pending_cut
            self.pending_cut -= len(data)
            return None
        i = 0
        if self.in_http:
            joined = self.http_tail + data
            end = joined.find(b"\r\n\r\n")
            if end < 0:
                self.http_tail = joined[-3:]
                return None
            self.in_http = False
            i = end + 4 - len(self.http_tail)
        while i < len(data):
            if self.remaining:
                take = min(self.remaining, len(data) - i)
                i += take
                self.remaining -= take
                continue
            self.head.append(data[i])
            i += 1
            size = self._header_size()
            if size is None or len(self.head) < size:
                continue
            opcode, length = self.head[0] & 0x0F, self._payload_length()
            self.head.clear()
            self.remaining = length
            if opcode == 0x2 and length >= 2:
                self.binary_frames += 1
                if self.binary_frames == self.cut_at:
                    keep = self.rng.randint(1, length - 1)
                    self.cut_frame = (length, keep)
                    if i + keep <= len(data):
                        return i + keep
                    self.pending_cut = i + keep - len(data)
                    return None
        return None

    def _header_size(self) -> int | None:
        if len(self.head) < 2:
            return None
        code = self.head[1] & 0x7F
        extended = 2 if code == 126 else 8 if code == 127 else 0
        return 2 + extended + (4 if self.head[1] & 0x80 else 0)

    def _payload_length(self) -> int:
        code = self.head[1] & 0x7F
        if code == 126:
            return int.from_bytes(self.head[2:4], "big")
        if code == 127:
            return int.from_bytes(self.head[2:10], "big")
        return code


class CuttingProxy:
    """TCP proxy to ``upstream_port``; its first ``cuts`` connections that carry enough audio are
    dropped in the middle of a binary frame (after 1-3 whole ones)."""

    def __init__(self, upstream_port: int, cuts: int, rng: random.Random):
        self.upstream_port = upstream_port
        self.cuts_left = cuts
        self.rng = rng
        self.connections = 0
        self.cuts: list[tuple[int, int]] = []  # (frame payload bytes, bytes forwarded before the cut)
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            worker_r, worker_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        cutter = FrameCutter(self.rng.randint(2, 4) if self.cuts_left > 0 else None, self.rng)
        if cutter.cut_at is not None:
            self.cuts_left -= 1  # reserved; given back if the connection ends first
        up = asyncio.create_task(self._pump(client_r, worker_w, cutter))
        down = asyncio.create_task(self._pump(worker_r, client_w, None))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if cutter.cut_done:
            self.cuts.append(cutter.cut_frame)
        elif cutter.cut_at is not None:
            self.cuts_left += 1
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        for writer in (client_w, worker_w):
            writer.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    cutter: FrameCutter | None) -> bool:
        """Copy until EOF (False) or until the cutter cuts (True: part of a frame went out, then FIN)."""
        try:
            while data := await reader.read(65536):
                cut = cutter.scan(data) if cutter is not None else None
                writer.write(data if cut is None else data[:cut])
                await writer.drain()
                if cut is not None:
                    cutter.cut_done = True
                    writer.write_eof()  # the worker reads half a frame, then the end of the stream
                    await asyncio.sleep(0.05)
                    return True
        except OSError:
            pass
        return False


# -- processes -----------------------------------------------------------------------


#: what ``notsound serve`` prints once it accepts streams, and how a lost bind reads
LISTENING = re.compile(r"listening on wss?://\S+:(\d+)/")
PORT_TAKEN = re.compile(r"(?i)address already in use")


async def wait_listening(proc: asyncio.subprocess.Process, log: Path, timeout: float = 60.0) -> int | None:
    """The port ``proc`` listens on, once its log says so; None if it exited (see the log)."""
    deadline = time.monotonic() + timeout
    while True:
        exited = proc.returncode is not None
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if exited:
            return None
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not listen within {timeout} s; see {log}")
        await asyncio.sleep(0.02)


def _env(workdir: Path) -> dict[str, str]:
    """No user config file; a capture waits up to 2 minutes for its last finals."""
    return {**os.environ, "NOTSOUND_CONFIG": str(workdir / "no-config.toml"),
            "NOTSOUND_LIVE_DRAIN_TIMEOUT_S": "120"}


class Campaign:
    def __init__(self, options: CampaignOptions, workdir: Path):
        self.o = options
        self.dir = workdir
        self.rng = random.Random(options.seed)
        self.port = 0  # the first worker picks one; restarts take the same
        self.restart_s = 0.0  # how long the last restart took
        self.state = workdir / "state"
        self.sessions = workdir / "sessions"
        self.worker: asyncio.subprocess.Process | None = None
        self.worker_runs = 0
        self.worker_kills = 0
        self.client_kills = 0
        self.kill_times: list[float] = []
        self.client_procs: list[asyncio.subprocess.Process] = []
        self.t0 = time.monotonic()

    # -- worker --

    async def start_worker(self) -> None:
        """Start a worker (on the port of the first one) and wait until its log says it listens;
        a restart retries while the killed worker's port is still taken."""
        started = time.monotonic()
        while True:
            path = self.dir / f"worker-{self.worker_runs:03d}.log"
            self.worker_runs += 1
            with open(path, "wb") as log:
                self.worker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "notsound.cli", "serve", "--engine", "fake", "--model", self.o.model,
                    "--port", str(self.port), "--no-warmup", "--state-dir", str(self.state),
                    cwd=ROOT, stdout=log, stderr=asyncio.subprocess.STDOUT, env=_env(self.dir))
            port = await wait_listening(self.worker, path)
            if port is not None:
                self.port = port
                self.restart_s = time.monotonic() - started
                return
            await self.worker.wait()
            if not (self.port and PORT_TAKEN.search(path.read_text(errors="replace"))):
                raise RuntimeError(f"the worker did not start; see {path}")
            if time.monotonic() - started > 60:
                raise TimeoutError(f"port {self.port} still taken after 60 s; see {path}")
            await asyncio.sleep(0.2)

    async def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        await self.worker.wait()
        self.worker_kills += 1
        self.kill_times.append(round(time.monotonic() - self.t0, 2))

    async def chaos(self, clients_done: asyncio.Event, lecture_s: float) -> None:
        """Kill and restart the worker until enough kills are done or the lectures are over.

        Uptimes are drawn from ``uptime_s`` but shortened as needed so that the kills
        fit in the first 70 % of the lectures however long a restart takes here.
        """
        self.t0 = time.monotonic()
        finish_by = self.t0 + 0.7 * lecture_s
        lo, hi = self.o.uptime_s
        while self.worker_kills < self.o.worker_kills and not clients_done.is_set():
            left = self.o.worker_kills - self.worker_kills
            room = (finish_by - time.monotonic()) / left - self.restart_s
            await asyncio.sleep(max(0.05, min(self.rng.uniform(lo, hi), room)))
            if clients_done.is_set():
                break
            await self.kill_worker()
            await self.start_worker()

    # -- clients --

    async def start_client(self, name: str, wav: Path, port: int, run: int) -> asyncio.subprocess.Process:
        log = open(self.dir / f"client-{name}-{run}.log", "wb")  # noqa: SIM115
        with log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notsound.cli", "live", "--server", f"ws://127.0.0.1:{port}/v1/stream",
                "--input", str(wav), "--session", name, "--out", str(self.sessions), "--no-notes",
                "--plain", "--key-file", str(self.state / "client.key"),
                cwd=ROOT, stdout=log, stderr=asyncio.subprocess.STDOUT, env=_env(self.dir),
                start_new_session=True)  # its own process group: a kill takes ffmpeg with it
        self.client_procs.append(proc)
        return proc

    async def stop_processes(self) -> None:
        """Whatever is still running after the campaign (only after a failure): ours, by pid."""
        for proc in self.client_procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self.worker is not None and self.worker.returncode is None:
            self.worker.terminate()
            await self.worker.wait()

    async def client_life(self, port: int, files: list[Path], kill: bool,
                          report: SessionReport, spools: dict[str, Any]) -> None:
        name = report.name
        proc = await self.start_client(name, files[0], port, 0)
        if kill:
            # Mid-lecture, once something is journaled and preferably while a final is owed
            # (an ended utterance in the spool), so the restart has something to resend.
            folder = self.sessions / name
            duration = _wav_seconds(files[0])
            kill_at = time.monotonic() + self.rng.uniform(0.35, 0.6) * duration
            latest = kill_at + 0.25 * duration
            while (time.monotonic() < kill_at or _lines(folder / "transcript.jsonl") < 1
                   or (_owed_in_spool(folder) < 1 and time.monotonic() < latest)):
                if proc.returncode is not None:
                    raise RuntimeError(f"client {name} ended before it could be killed")
                await asyncio.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the whole capture: python and its ffmpeg
            await proc.wait()
            self.client_kills += 1
            spools[name] = _read_session_state(self.sessions / name)
            proc = await self.start_client(name, files[1], port, 1)
            report.runs += 1
        code = await proc.wait()
        if code != 0:
            raise RuntimeError(f"client {name} exited with {code}; see {self.dir}/client-{name}-*.log")


def _wav_seconds(path: Path) -> float:
    return (path.stat().st_size - 44) / BYTES_PER_SAMPLE / SAMPLE_RATE


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _owed_in_spool(folder: Path) -> int:
    """Ended utterances waiting in the spool for their final."""
    owed = 0
    for meta in (folder / "pending").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            owed += bool(json.loads(meta.read_text()).get("ended"))
    return owed


def _read_session_state(folder: Path) -> dict[str, Any]:
    """Journal and spool of a session folder as a dead capture process left them."""
    from library.folder import read_finals

    journal = {c.utt: c.text for c in read_finals(folder / "transcript.jsonl")}
    spool: dict[int, tuple[bool, np.ndarray]] = {}
    for meta in (folder / "pending").glob("*.json"):
        info = json.loads(meta.read_text())
        pcm_path = meta.with_suffix(".pcm")
        data = pcm_path.read_bytes() if pcm_path.exists() else b""
        pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        if len(pcm):  # an empty entry is dropped on restart and its number used again
            spool[int(info["utt"])] = (bool(info["ended"]), pcm)
    return {"journal": journal, "spool": spool}


# -- accounting ------------------------------------------------------------------------


def _journal_lines(path: Path) -> list[dict]:
    rows = []
    for line in path.read_bytes().split(b"\n"):
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("utt"), int):
                rows.append(row)
    return rows


def account(report: SessionReport, folder: Path, expected: list[list[str]],
            at_kill: dict[str, Any] | None) -> None:
    """Fill in spoken, journaled, duplicates, lost, mismatched, gaps for one session."""
    from bench.fake_engine import fake_text

    rows = _journal_lines(folder / "transcript.jsonl")
    utts = [r["utt"] for r in rows]
    got = {r["utt"]: r["text"] for r in rows}
    report.journaled = len(got)
    report.duplicates = len(utts) - len(got)
    report.gaps = (max(got) + 1 - len(got)) if got else 0
    # What was spoken, utt by utt, and the text its audio must give.
    if at_kill is None:
        want = dict(enumerate(expected[0]))
    else:
        journal, spool = at_kill["journal"], at_kill["spool"]
        report.spooled_at_kill = sorted(set(spool) - set(journal))
        want = dict(journal)
        want.update({utt: fake_text(spool[utt][1]) for utt in report.spooled_at_kill})
        for utt, text in want.items():  # whole utterances are the ones the offline VAD cut
            whole = utt in journal or spool[utt][0]
            if whole and (utt >= len(expected[0]) or expected[0][utt] != text):
                report.mismatched += 1
        first = max(want) + 1 if want else 0  # the restarted capture numbers on from here
        want.update({first + i: text for i, text in enumerate(expected[1])})
        report.spooled_journaled = sum(1 for u in report.spooled_at_kill if got.get(u) == want[u])
    report.spoken = len(want)
    report.lost = sum(1 for utt in want if utt not in got)
    report.mismatched += sum(1 for utt, text in want.items() if utt in got and got[utt] != text)
    report.mismatched += sum(1 for utt in got if utt not in want)


def _log_tracebacks(workdir: Path, pattern: str) -> int:
    return sum(log.read_text(errors="replace").count("Traceback") for log in workdir.glob(pattern))


def _streams_by_session(workdir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for log in workdir.glob("worker-*.log"):
        for name in re.findall(r"stream (\S+) opened", log.read_text(errors="replace")):
            counts[name] = counts.get(name, 0) + 1
    return counts


# -- the campaign ----------------------------------------------------------------------


async def run_campaign(options: CampaignOptions) -> dict[str, Any]:
    """Run the campaign; returns the report (also written to ``options.out``)."""
    with contextlib.ExitStack() as stack:
        workdir = options.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        workdir.mkdir(parents=True, exist_ok=True)
        return await _run(options, workdir)


async def _run(o: CampaignOptions, workdir: Path) -> dict[str, Any]:
    from live.keys import KeyStore

    campaign = Campaign(o, workdir)
    _, token = KeyStore(campaign.state).create(name="fault campaign")
    (campaign.state / "client.key").write_text(token + "\n")
    names = [f"lecture{i}" for i in range(o.clients)]
    victims = set((names[1:] + names[:1])[: o.client_kills])
    files: dict[str, list[Path]] = {}
    expected: dict[str, list[list[str]]] = {}
    pool = list(SENTENCES)
    for name in names:
        campaign.rng.shuffle(pool)
        parts = [pool[: o.sentences]] + ([pool[o.sentences:][: o.continuation] or pool[: o.continuation]]
                                         if name in victims else [])
        files[name], expected[name] = [], []
        for part_no, sentences in enumerate(parts):
            path = workdir / f"{name}-{part_no}.wav"
            pcm = await asyncio.to_thread(lecture_file, path, sentences)
            files[name].append(path)
            expected[name].append(await asyncio.to_thread(expected_texts, pcm))

    reports = {name: SessionReport(name) for name in names}
    at_kill: dict[str, Any] = {}
    try:
        await campaign.start_worker()
    except BaseException:
        await campaign.stop_processes()
        raise
    proxy = CuttingProxy(campaign.port, o.proxy_cuts, campaign.rng)
    proxy_port = await proxy.start()
    clients_done = asyncio.Event()
    lives = [asyncio.create_task(campaign.client_life(
        proxy_port if i == 0 else campaign.port, files[name], name in victims, reports[name], at_kill))
        for i, name in enumerate(names)]
    lecture_s = min(_wav_seconds(paths[0]) for paths in files.values())
    chaos = asyncio.create_task(campaign.chaos(clients_done, lecture_s))
    started = time.monotonic()
    try:
        done, _ = await asyncio.wait({*lives, chaos}, timeout=o.timeout_s, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        await asyncio.wait_for(asyncio.gather(*lives), max(1.0, o.timeout_s - (time.monotonic() - started)))
        clients_done.set()
        await asyncio.wait_for(chaos, 60)
    finally:
        for task in (*lives, chaos):
            task.cancel()
        await asyncio.gather(*lives, chaos, return_exceptions=True)
        await proxy.stop()
        await campaign.stop_processes()
    elapsed = time.monotonic() - started

    streams = _streams_by_session(workdir)
    for name, report in reports.items():
        report.streams = streams.get(name, 0)
        account(report, campaign.sessions / name, expected[name], at_kill.get(name))
    sessions = [asdict(r) for r in reports.values()]
    total = {key: sum(s[key] for s in sessions)
             for key in ("streams", "spoken", "journaled", "duplicates", "lost", "mismatched", "gaps")}
    result = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()},
        **total,
        "reconnects": total["streams"] - sum(r.runs for r in reports.values()),
        "worker_kills": campaign.worker_kills,
        "client_kills": campaign.client_kills,
        "proxy_connections": proxy.connections,
        "proxy_mid_frame_cuts": len(proxy.cuts),
        "proxy_cuts": [{"frame_bytes": f, "forwarded": k} for f, k in proxy.cuts],
        "kill_times_s": campaign.kill_times,
        "worker_log_tracebacks": _log_tracebacks(workdir, "worker-*.log"),
        "client_log_tracebacks": _log_tracebacks(workdir, "client-*.log"),
        "elapsed_s": round(elapsed, 1),
        "sessions": sessions,
    }
    if o.out is not None:
        o.out.mkdir(parents=True, exist_ok=True)
        (o.out / "fault_campaign.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"fault campaign: {result['elapsed_s']} s, {result['worker_kills']} worker kills, "
        f"{result['client_kills']} client kills, {result['proxy_mid_frame_cuts']} connections cut mid-frame",
        f"  streams {result['streams']}  reconnects {result['reconnects']}  spoken {result['spoken']}  "
        f"journaled {result['journaled']}  duplicates {result['duplicates']}  lost {result['lost']}  "
        f"mismatched {result['mismatched']}  gaps {result['gaps']}",
        f"  tracebacks in logs: worker {result['worker_log_tracebacks']}, "
        f"capture {result['client_log_tracebacks']}",
    ]
    for s in result["sessions"]:
        lines.append(f"  {s['name']}: runs {s['runs']} streams {s['streams']} spoken {s['spoken']} "
                     f"journaled {s['journaled']} dup {s['duplicates']} lost {s['lost']}"
                     + (f" spooled at kill {s['spooled_at_kill']} -> journaled {s['spooled_journaled']}"
                        if s["runs"] > 1 else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.fake_engine import offer_fake_engine

    offer_fake_engine()  # the workers it starts run --engine fake
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = CampaignOptions()
    p.add_argument("--clients", type=int, default=defaults.clients)
    p.add_argument("--sentences", type=int, default=defaults.sentences, help="per lecture (~4.5 s each)")
    p.add_argument("--continuation", type=int, default=defaults.continuation)
    p.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
    p.add_argument("--client-kills", type=int, default=defaults.client_kills)
    p.add_argument("--proxy-cuts", type=int, default=defaults.proxy_cuts)
    p.add_argument("--uptime", type=float, nargs=2, default=defaults.uptime_s, metavar=("MIN_S", "MAX_S"))
    p.add_argument("--model", default=defaults.model, help="fake engine options")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--workdir", type=Path, help="keep sessions and logs here (default: a temp folder)")
    p.add_argument("--timeout", type=float, default=defaults.timeout_s)
    args = p.parse_args(argv)
    options = CampaignOptions(
        clients=args.clients, sentences=args.sentences, continuation=args.continuation,
        worker_kills=args.worker_kills, client_kills=args.client_kills, proxy_cuts=args.proxy_cuts,
        uptime_s=tuple(args.uptime), model=args.model, seed=args.seed, workdir=args.workdir,
        timeout_s=args.timeout)
    result = asyncio.run(run_campaign(options))
    print(summary(result))
    print(f"wrote {OUT_DIR / 'fault_campaign.json'}")
    bad = result["duplicates"] or result["lost"] or result["mismatched"] or result["gaps"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # tests.speech makes the lectures
    sys.exit(main())
