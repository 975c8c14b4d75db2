"""``notsound live``: microphone or file -> VAD -> worker -> terminal, journal and notes.

Without ``--server`` an embedded worker runs in this process on loopback, so
one command does everything on one laptop. Ctrl-C (or SIGTERM) ends the
session cleanly: the open utterance is ended, owed finals are awaited for a
bounded time and journaled; a second Ctrl-C quits at once. Audio still owed a
final stays in the session's ``pending/`` folder and is sent again the next
time the same session is started.

Unless ``record`` is off, the run appends its part of the session's recording
(``recording/``); a restarted session goes on after what is recorded, so the
parts lie end to end on the session's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.client import ClientOptions, Owed
from capture.pipeline import AudioSource, CaptureCallbacks, CaptureOptions, CapturePipeline, Resume
from capture.speakers import SpeakerLabeller
from capture.vad import VadOptions
from capture.voices import SpeakerTrack, encoder_installed
from common.secret_file import read_secret_file
from library.folder import (
    Journal,
    default_session_name,
    expire_recordings,
    list_sessions,
    read_finals,
    remove_if_unused,
    session_path,
)
from library.opus import recorded_until
from live.keys import KeyStore
from live.server import Worker, WorkerSettings
from wire.protocol import Caption, Commit, Partial

from .deck import LiveDeck, open_live_deck
from .view import CaptionView
from .web_feed import CaptionFeed

__all__ = ["LiveSettings", "LiveResult", "run_live", "read_key"]

@dataclass(frozen=True)
class LiveSettings:
    """``notsound live`` (TOML section ``[live]``).

    Attributes:
        server: worker URL (``ws://`` or ``wss://``); empty runs an embedded worker.
        session: session name; empty for ``YYYY-MM-DD_HHMM``.
        out: folder that holds the session folders.
        language: ``auto`` or a language code for the engine.
        input: audio or video file to caption instead of the microphone.
        device: input device name (substring) or index; empty for the default.
        fast: with ``input``, send audio as fast as the worker takes it.
        events: file to write every partial and final to, one JSON object a line.
        key_file: file holding the worker's API key (else ``NOTSOUND_KEY``).
        ca_file: CA bundle for a ``wss://`` worker with a private certificate.
        drain_timeout_s: at the end, how long to wait for owed finals.
        max_owed: with ``fast``, how many finals may be owed before reading waits.
        notes: keep ``notes.md`` current while captioning.
        translate: translate each final into this language (``zh``, ``en`` ...)
            through the configured LLM; empty: no translation.
        plain: print finals line by line even on a terminal.
        web: ``[HOST:]PORT`` of the caption page (``--web``); empty for none.
        web_token_file: file with the page's viewer token (else a random one
            when the page is not on loopback).
        web_owner_token_file: file with the owner's token off loopback (ask and
            exports in the lecture room; else a random one, printed as your link).
        web_max_viewers: pages connected at once.
        slides: the lecture's deck (``.pptx``, ``.pdf``, ``.md``, ``.txt``): stored in the
            session folder, its terms sent to the worker as hints, finals corrected
            against it and tagged with the slide; without it, a deck stored earlier.
        record: keep the session's audio in ``recording/`` (``--no-record``: off).
        keep_recordings_days: at the start of a run, delete the recordings of other
            sessions older than this many days (their text stays); 0 keeps them all.
        polish: when the lecture ends, polish it (``notsound polish``).
        speakers: label each final ``lecturer`` or ``audience-N`` from voice
            embeddings computed here, in memory only (``None``: when the speaker
            model is installed).
    """

    server: str = ""
    session: str = ""
    out: Path = Path("lectures")
    language: str = "auto"
    input: Path | None = None
    device: str = ""
    fast: bool = False
    events: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    drain_timeout_s: float = 30.0
    max_owed: int = 8
    notes: bool = True
    translate: str = ""
    plain: bool = False
    web: str = ""
    web_token_file: Path | None = None
    web_owner_token_file: Path | None = None
    web_max_viewers: int = 500
    slides: Path | None = None
    record: bool = True
    keep_recordings_days: float = 0.0
    polish: bool = False
    speakers: bool | None = None


@dataclass
class LiveResult:
    """What a run did; ``audio_s`` and ``wall_s`` (``fast`` runs only): seconds of audio
    captioned in this run and the wall seconds from its first audio to its newest final."""

    session_dir: Path
    finals: int = 0
    owed: int = 0
    latencies: list[float] = field(default_factory=list)
    reconnects: int = 0
    dropped_s: float = 0.0
    audio_s: float = 0.0
    wall_s: float = 0.0
    label_waits: list[float] = field(default_factory=list)


def read_key(key_file: Path | None, env: dict[str, str] | None = None) -> str | None:
    """The worker key from a file (first line) or ``NOTSOUND_KEY``; never from a flag."""
    env = dict(os.environ) if env is None else env
    if key_file is not None:
        return read_secret_file(key_file, "worker key")
    return env.get("NOTSOUND_KEY") or None


#: ``notes(session_dir, stop, notify)``: keeps ``notes.md`` current until ``stop``, then finishes it
NotesRunner = Callable[[Path, asyncio.Event, Callable[[str], None]], Awaitable[None]]
#: ``translate(session_dir, view, on_translation)``: the run's translator
#: (``summarizer.translate.Translator``): ``submit(caption)`` takes each new final, ``run(stop)``
#: works apart from the captions until ``stop``, then drains for a bounded time; it calls
#: ``on_translation(utt, text or None)`` (terminal and page) with each finished translation
TranslateRunner = Callable[[Path, CaptionView, Callable[[int, str | None], None]], Any]


class _EventLog:
    """``--events FILE``: every partial and final with seconds since the audio began."""

    def __init__(self, path: Path | None, clock: Callable[[], float]):
        self.clock = clock
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, kind: str, utt: int, text: str, **extra: Any) -> None:
        if self._fh is None:
            return
        row = {"t": round(self.clock(), 3), "type": kind, "utt": utt, "text": text, **extra}
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class LiveRun:
    """State of one ``notsound live`` run; :func:`run_live` drives it."""

    def __init__(self, settings: LiveSettings, view: CaptionView | None = None,
                 vad: VadOptions | None = None):
        self.settings = settings
        self.view = view or CaptionView(plain=settings.plain or None, clock=self.session_time, fast=settings.fast)
        self.vad = vad or VadOptions()
        name = settings.session or default_session_name()
        self.session_dir = session_path(name, settings.out)
        self.fresh_folder = not self.session_dir.exists()
        self.journal = Journal(self.session_dir)
        self.result = LiveResult(self.session_dir)
        self.stop = asyncio.Event()
        self.t0 = time.monotonic()  # monotonic time of audio position 0 (realtime sources)
        self.offset = max(self.journal.last_end, recorded_until(self.session_dir))
        self.events = _EventLog(settings.events, lambda: time.monotonic() - self.t0)
        self.capture: CapturePipeline | None = None
        self.first_utt = self.journal.next_utt
        self.position_s = 0.0  # seconds of audio read in this run
        self.feed: CaptionFeed | None = None  # the caption page's feed (--web)
        self.translator: Any = None  # set by run_live with --translate
        self.deck: LiveDeck | None = None  # the session's slides, if any

    def session_time(self) -> float:
        return self.offset + self.position_s

    # -- callbacks from the capture pipeline ---------------------------------

    def callbacks(self) -> CaptureCallbacks:
        return CaptureCallbacks(on_final=self.on_final, on_partial=self.on_partial, on_commit=self.on_commit,
                                on_state=self.view.set_state, on_open=self.on_open,
                                on_progress=self.on_progress, on_notice=self.view.notice)

    def on_final(self, caption: Caption, pending: Owed | None) -> None:
        journaled: Any = caption
        if self.deck is not None and caption.utt not in self.journal:
            caption, journaled = self.deck.annotate(caption)
        fresh = self.journal.append(journaled)
        if not fresh:
            return
        latency = self._latency(caption, pending)
        if latency is not None:
            self.result.latencies.append(latency)
        self.result.finals += 1
        if self.settings.fast:  # its speed: a fast run's latency is only time queued behind the worker
            self.result.audio_s = max(self.result.audio_s, caption.end - self.offset)
            self.result.wall_s = time.monotonic() - self.t0
            self.view.set_pace(self.result.audio_s, self.result.wall_s)
        speaker = {"speaker": caption.speaker} if getattr(caption, "speaker", "") else {}
        self.events.write("final", caption.utt, caption.text, start=caption.start, end=caption.end,
                          **speaker)
        self.view.on_final(caption, latency)
        if self.feed is not None:
            self.feed.publish_final(caption)
        if self.translator is not None:  # only queues: translation never delays a caption
            self.translator.submit(caption)

    def on_translation(self, utt: int, text: str | None) -> None:
        """The translation of final ``utt`` is done (``None``: it has none): terminal and page."""
        self.view.on_translation(utt, text)
        if self.feed is not None and text:
            self.feed.publish_translation(utt, text)

    def on_partial(self, partial: Partial) -> None:
        self.events.write("partial", partial.utt, partial.text)
        self.view.on_partial(partial)
        if self.feed is not None:
            self.feed.publish_partial(partial)

    def on_commit(self, commit: Commit) -> None:
        """Settled text of an open utterance: logged; the partials that follow begin with it."""
        self.events.write("commit", commit.utt, commit.text, samples=commit.samples)

    def on_open(self) -> None:
        self.t0 = time.monotonic()

    def on_progress(self, position_s: float, dropped_s: float) -> None:
        self.position_s = position_s
        self.view.set_dropped(dropped_s)
        self.result.dropped_s = dropped_s

    def _latency(self, caption: Caption, pending: Owed | None) -> float | None:
        """Seconds from the end of speech to now (realtime), or from the end's send (fast)."""
        now = time.monotonic()
        if self.settings.fast:
            ended_at = None if pending is None else pending.ended_at
            return None if ended_at is None else now - ended_at
        speech_end = caption.end - self.offset - self.vad.pad_s
        return max(0.0, now - (self.t0 + speech_end))

    def close(self) -> None:
        self.events.close()
        self.journal.close()


def _expire_recordings(run: LiveRun) -> None:
    days = run.settings.keep_recordings_days
    others = [p for p in list_sessions(run.settings.out) if p.resolve() != run.session_dir.resolve()]
    removed = expire_recordings(others, days)
    if removed:
        run.view.notice(f"deleted the recordings of {len(removed)} sessions older than {days:g} days "
                        "(their text is kept)")


def _make_source(settings: LiveSettings) -> AudioSource:
    from capture.sources import FileSource, MicrophoneSource

    if settings.input is not None:
        return FileSource(settings.input, realtime=not settings.fast)
    device: str | int | None = settings.device or None
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    return MicrophoneSource(device=device)


def _install_signals(run: LiveRun, main: asyncio.Task) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            run.stop.set()
            run.view.set_state("draining", "finishing captions; Ctrl-C again to quit now")
        else:
            main.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    return lambda: [loop.remove_signal_handler(s) for s in installed]


async def run_live(settings: LiveSettings, worker_settings: WorkerSettings,
                   view: CaptionView | None = None,
                   notes: NotesRunner | None = None,
                   translate: TranslateRunner | None = None,
                   source: AudioSource | None = None, ask: Any = None) -> LiveResult:
    """Caption until the input ends or a signal stops it; returns what happened.

    ``ask``: how the lecture room answers questions (``notsound.room.AskConfig``), if at all.
    """
    run = LiveRun(settings, view)
    view = run.view
    main = asyncio.current_task()
    assert main is not None
    remove_signals = _install_signals(run, main)
    stack = contextlib.AsyncExitStack()
    failed = True
    try:
        if settings.web:
            run.feed = await _caption_page(stack, run, ask)
        with view:
            url, key = settings.server, read_key(settings.key_file)
            if not url:
                url, key = await _embedded_worker(stack, worker_settings)
            run.journal.write_meta(session=run.session_dir.name, language=settings.language,
                                   server=url if settings.server else "embedded",
                                   started=run.journal.read_meta().get("started") or _now())
            await asyncio.to_thread(_expire_recordings, run)
            run.deck = await open_live_deck(run.session_dir, settings.slides, run.view.notice)
            run.translator = translate(run.session_dir, view, run.on_translation) if translate else None
            await _stream(run, url, key, source or _make_source(settings), notes)
            run.journal.write_meta(ended=_now(), engine=_ready(run, "engine"), model=_ready(run, "model"))
        failed = False
    finally:
        remove_signals()
        await stack.aclose()
        run.close()
        if failed and run.fresh_folder:  # failed before any audio: leave no empty folder behind
            remove_if_unused(run.session_dir)
    return run.result


async def _embedded_worker(stack: contextlib.AsyncExitStack, settings: WorkerSettings) -> tuple[str, str]:
    """A worker on loopback in this process, guarded by a random key of this process alone."""
    state = stack.enter_context(tempfile.TemporaryDirectory(prefix="notsound-keys-"))
    keys = KeyStore(state)
    _, key = keys.create(name="embedded")
    worker = await stack.enter_async_context(Worker(settings, keys=keys, mint_admin=False))
    return worker.url, key


async def _stream(run: LiveRun, url: str, key: str | None, source: AudioSource,
                  notes: NotesRunner | None) -> None:
    settings = run.settings
    capture = CapturePipeline(
        run.session_dir,
        ClientOptions(url=url, session=run.session_dir.name, key=key,
                      language=settings.language, ca_file=settings.ca_file,
                      # --fast into our own embedded worker: no pacing (its limit is off too)
                      max_rate=0.0 if settings.fast and not settings.server else ClientOptions.max_rate,
                      vocabulary=run.deck.vocabulary if run.deck else ()),
        run.callbacks(),
        CaptureOptions(vad=run.vad, fast=settings.fast, max_owed=settings.max_owed,
                       drain_timeout_s=settings.drain_timeout_s, record=settings.record),
        speakers=_speaker_track(run),
    )
    run.capture = capture
    resume = capture.recover(run.journal.utts, Resume(run.offset, run.first_utt))
    run.offset, run.first_utt = resume.offset, resume.first_utt
    notes_stop, translate_stop = asyncio.Event(), asyncio.Event()
    notes_task = (asyncio.create_task(notes(run.session_dir, notes_stop, run.view.notice))
                  if notes else None)
    translate_task = (asyncio.create_task(run.translator.run(translate_stop))
                      if run.translator is not None else None)
    try:
        await capture.run(source, resume, run.stop)
    finally:
        run.stop.set()
        translate_stop.set()  # drains (bounded) while the notes are finished
        if notes_task is not None:  # the last update sees every final journaled above
            notes_stop.set()
            run.view.set_state("draining", "updating notes.md")
            with contextlib.suppress(asyncio.CancelledError):
                await notes_task
        if translate_task is not None:
            run.view.set_state("draining", "translating the last captions")
            with contextlib.suppress(asyncio.CancelledError):
                await translate_task
        run.result.owed = capture.owed
        run.result.reconnects = capture.reconnects
        if capture.speakers is not None:
            run.result.label_waits = capture.speakers.stats.waits
        run.view.set_state("closed", "")


def _speaker_track(run: LiveRun) -> SpeakerTrack | None:
    """The run's speaker labels (``--speakers``), audience numbers going on after the journal's."""
    wanted = run.settings.speakers
    if wanted is False or (wanted is None and not encoder_installed()):
        return None
    numbers = [int(f.speaker.split("-")[1]) for f in read_finals(run.session_dir) if f.audience]
    # A fast run is about throughput: its finals wait for their labels as long as it takes.
    return SpeakerTrack(labeller=SpeakerLabeller(first_audience=max(numbers, default=0) + 1),
                        wait_s=60.0 if run.settings.fast else 1.0)


async def _caption_page(stack: contextlib.AsyncExitStack, run: LiveRun, ask: Any) -> CaptionFeed:
    """Serve the lecture room with this session live (``--web``) for the rest of the run;
    print where to open it."""
    from .room import open_live

    settings = run.settings
    room = await stack.enter_async_context(open_live(
        settings.web, run.session_dir, token_file=settings.web_token_file,
        owner_token_file=settings.web_owner_token_file, max_viewers=settings.web_max_viewers,
        ask=ask))
    print(room.describe(), file=sys.stderr, flush=True)
    assert room.feed is not None
    return room.feed


def _ready(run: LiveRun, attr: str) -> str | None:
    ready = run.capture.ready if run.capture else None
    return getattr(ready, attr) if ready else None


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")

