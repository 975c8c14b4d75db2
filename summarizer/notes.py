"""Incremental notes: the task that keeps ``notes.md`` current while the lecture runs.

:class:`NotesTask` polls a transcript layer for appended finals: the live
journal ``transcript.jsonl`` during the lecture, the polished layer afterwards
where there is one (notes made from another layer are made again). After
``every_s`` seconds of new speech (and at the end) it sends the new part to the
LLM as the next turn of an append-only conversation (layout in
:mod:`summarizer.prompts`), checks the answer, appends it as a section and
replaces ``notes.md`` atomically, then the watermark ``notes.state.json``.
Without a key it keeps an extractive outline instead. LLM failures never
escape :meth:`NotesTask.run` or :meth:`NotesTask.flush`: transient ones are
retried later, 401/402 stop LLM calls for the session; each is told once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from slides import Deck, DeckError, SlideTracker, attach_deck, build_vocabulary, load_session_deck

from .client import LLMClient, Usage
from .errors import (
    LLMError,
    LLMFatalError,
    LLMOutputError,
    LLMTransientError,
    NoAPIKeyError,
    SummarizerError,
)
from .extractive import extractive_outline
from .files import (
    NOTES,
    NOTES_STATE,
    TRANSCRIPT,
    remove_stale_temps,
    session_ended,
    transcript_path,
)
from .notes_doc import (
    NotesState,
    Section,
    check_section,
    load_state,
    render_notes,
    render_outline,
    save_state,
    write_notes,
)
from .notices import Notices
from .prompts import Part, deck_glossary, notes_messages, prompt_tokens
from .questions import with_questions
from .settings import LLMSettings, NotesSettings, no_key_help
from .transcript import (
    Final,
    TranscriptReader,
    estimate_tokens,
    guess_language,
    speech_seconds,
    split_by_speech,
)

__all__ = ["NotesTask", "run_notes"]

log = logging.getLogger(__name__)

#: (start, end, title) of the sections named when a conversation window starts
Context = tuple[tuple[float, float, str], ...]

#: answers for one part that may fail the sanity check before it gets extractive notes
MAX_REJECTS = 2


class NotesTask:
    """Keeps ``notes.md`` of one session current.

    Args:
        session_dir: the session folder (holds ``transcript.jsonl``).
        llm: endpoint settings (used only with a key).
        notes: cadence, language and layout settings.
        api_key: the LLM key; ``None`` keeps an extractive outline instead.
        notify: called with a one-line message for things the user should
            know (notes off, LLM failing); each kind of message once.
        deck: the lecture's slides; default: the deck stored in the session
            folder, if any. Its titles and terms go to the model as a glossary,
            and each part's captions are marked with the slide they were about.
        layer: the transcript read: ``best`` (the polished one when there is
            one) or ``live`` (the journal, as during the lecture).
    """

    def __init__(
        self,
        session_dir: Path | str,
        llm: LLMSettings | None = None,
        notes: NotesSettings | None = None,
        api_key: str | None = None,
        notify: Callable[[str], None] | None = None,
        deck: Deck | None = None,
        layer: str = "best",
    ):
        self.session_dir = Path(session_dir)
        path = transcript_path(self.session_dir, layer)
        self.layer = "live" if path.name == TRANSCRIPT else "polished"
        self.deck = deck if deck is not None else load_session_deck(self.session_dir)
        self._glossary = ""  # built off the event loop on the first step (jieba, wordfreq)
        self._tracker: SlideTracker | None = None
        self._labels: dict[int, str] = {}
        self.llm_settings = llm or LLMSettings()
        self.settings = notes or NotesSettings()
        self.mode = "llm" if api_key else "extractive"
        self.usage = Usage()
        self.requests = 0
        self._key = api_key
        self._notices = Notices(notify)
        self._reader = TranscriptReader(path)
        self._finals: list[Final] = []
        self._pending: list[Final] = []
        self._client: LLMClient | None = None
        self._off: str | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._rejects: dict[int, int] = {}
        self._window: list[tuple[Part, str]] = []
        self._earlier: Context = ()
        self._spent = 0  # estimated prompt tokens sent (answered requests)
        self._fed = 0  # estimated transcript tokens in the notes
        self._lock = asyncio.Lock()
        self.state = self._load()

    # -- public ------------------------------------------------------------------

    @property
    def notes_path(self) -> Path:
        return self.session_dir / NOTES

    @property
    def pending(self) -> int:
        """Finals read but not yet in the notes."""
        return len(self._pending)

    @property
    def stopped_reason(self) -> str | None:
        """Why LLM calls stopped for this session (401/402 ...), or ``None``."""
        return self._off

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and update until ``stop`` is set; never raises for LLM or file trouble."""
        if self.mode == "extractive":
            self._tell_no_key()
        try:
            while not stop.is_set():
                await self.step(final=False)
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.poll_s)
                except asyncio.TimeoutError:
                    pass
        except Exception:
            log.exception("notes task failed")
            self._notices.tell("crash", "notes stopped after an unexpected error (see the log); captions continue")

    async def flush(self) -> None:
        """Bring the notes up to date with everything journaled (end of the lecture)."""
        try:
            await self.step(final=True)
        except Exception:
            log.exception("final notes update failed")
        finally:
            await self.aclose()
        if self._pending and self.mode == "llm":
            log.warning("notes miss %d captions; `notsound notes %s` finishes them later",
                        len(self._pending), self.session_dir)

    async def step(self, *, final: bool) -> bool:
        """Read new finals and update the notes if due; whether ``notes.md`` changed."""
        async with self._lock:
            if self.deck is not None and self._tracker is None:
                self._glossary, self._tracker = await asyncio.to_thread(_deck_helpers, self.deck)
            self._poll()
            if self.mode == "extractive":
                return self._extractive_step(final)
            return await self._llm_step(final)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- state -------------------------------------------------------------------

    def _load(self) -> NotesState:
        for name in (NOTES, NOTES_STATE):
            remove_stale_temps(self.session_dir, name)
        state = load_state(self.session_dir / NOTES_STATE)
        if state is not None and state.mode == "llm" and state.sections and self.mode == "extractive":
            self._off = "no API key: notes.md keeps the LLM notes it has"  # do not replace them
            return state
        if state is None or state.mode != self.mode or state.layer != self.layer:
            return NotesState(mode=self.mode, layer=self.layer)
        if state.sections:  # the notes may be one part ahead of the watermark: re-render
            try:
                self._write(state)
            except (OSError, LLMOutputError) as exc:
                log.warning("cannot re-render %s: %s", self.notes_path, exc)
        return state

    def _write(self, state: NotesState) -> None:
        if state.mode == "llm":
            markdown = render_notes(state, self.session_dir.name, self.llm_settings.model)
            write_notes(self.notes_path, with_questions(markdown, self._finals))
        save_state(self.session_dir / NOTES_STATE, state)

    def _poll(self) -> None:
        new = self._reader.read_new()
        if self._tracker is not None and self.deck is not None:
            for final in new:
                number = final.slide if final.slide is not None else self._tracker.push(final.text)
                slide = self.deck.slide(number)
                self._labels[final.utt] = slide.label if slide is not None else ""
        self._finals.extend(new)
        self._pending.extend(f for f in new if f.utt not in self.state.utts)

    def _language(self) -> str:
        if self.settings.language.lower() != "auto":
            return self.settings.language
        return guess_language(self._finals)

    # -- extractive ----------------------------------------------------------------

    def _tell_no_key(self) -> None:
        """How to turn LLM notes on: told once, in the terminal (``notes.md`` says it in one line)."""
        self._notices.tell("nokey", f"LLM notes are off, notes.md gets an outline instead; {no_key_help()}")

    def _extractive_step(self, final: bool) -> bool:
        if self._off:
            self._notices.tell("keep", f"{self._off}; set a key to continue them")
            return False
        if not self._pending or (not final and speech_seconds(self._pending) < self.settings.every_s):
            return False
        self.state.lang = self.state.lang or self._language()
        outline = extractive_outline(
            self._finals, window_s=self.settings.extract_window_s, per_window=self.settings.extract_sentences
        )
        try:
            markdown = render_outline(outline, self.session_dir.name, self.state.lang)
            write_notes(self.notes_path, with_questions(markdown, self._finals))
            self.state.utts.update(f.utt for f in self._pending)
            save_state(self.session_dir / NOTES_STATE, self.state)
        except (OSError, LLMOutputError) as exc:
            log.warning("cannot write %s: %s", self.notes_path, exc)
            return False
        self._pending = []
        return True

    # -- LLM ---------------------------------------------------------------------------

    def _request(self, part: Part) -> tuple[list[dict[str, str]], Context | None, int]:
        """Messages for ``part``, the context of a new window (``None``: same window), tokens.

        The current window is extended while the running prompt total stays
        within ``prompt_ratio`` times the transcript total; else a new window
        starts with the titles of the latest sections as context.
        """
        s = self.settings
        text_tokens = estimate_tokens(part.text)
        if self._window and len(self._window) < s.max_window_parts:
            messages = notes_messages(self.state.lang, self._window, part, self._earlier, self._glossary)
            cost = prompt_tokens(messages)
            if self._spent + cost <= s.prompt_ratio * (self._fed + text_tokens):
                return messages, None, cost
        recent = self.state.sections[-s.context_titles:] if s.context_titles else []
        earlier = tuple((x.start, x.end, x.title) for x in recent)
        messages = notes_messages(self.state.lang, [], part, earlier, self._glossary)
        return messages, earlier, prompt_tokens(messages)

    async def _llm_step(self, final: bool) -> bool:
        if self._off or not self._pending or (not final and time.monotonic() < self._retry_at):
            return False
        groups = split_by_speech(self._pending, self.settings.every_s)
        if not final and speech_seconds(groups[-1]) < self.settings.every_s:
            groups.pop()
        changed = False
        for group in groups:
            if not await self._write_part(group):
                break
            changed = True
        return changed

    async def _write_part(self, group: list[Final]) -> bool:
        self.state.lang = self.state.lang or self._language()
        labels = tuple(self._labels.get(f.utt, "") for f in group) if self._labels else ()
        part = Part(len(self.state.sections) + 1, tuple(group), labels)
        messages, fresh, cost = self._request(part)
        try:
            title, body, source = await self._ask(messages, part)
        except LLMError as exc:
            self._failed(exc)
            return False
        section = Section(part.first, part.last, part.start, part.end, title, body, source)
        utts = {f.utt for f in group}
        self.state.sections.append(section)
        self.state.utts |= utts
        try:
            self._write(self.state)
        except (OSError, LLMOutputError) as exc:
            self.state.sections.pop()
            self.state.utts -= utts
            self._failed(LLMTransientError(f"cannot write {self.notes_path}: {exc}"))
            return False
        self._pending = [f for f in self._pending if f.utt not in self.state.utts]
        if fresh is not None:
            self._window, self._earlier = [], fresh
        self._window.append((part, f"## {title}"))
        self._spent += cost
        self._fed += estimate_tokens(part.text)
        self._failures = 0
        return True

    async def _ask(self, messages: list[dict[str, str]], part: Part) -> tuple[str, str, str]:
        if self._client is None:
            self._client = LLMClient(self.llm_settings, self._key or "")
        self.requests += 1
        result = await self._client.chat(messages, max_tokens=self.settings.max_section_tokens)
        self.usage += result.usage
        try:
            return (*check_section(result.text, f"Part {part.index}"), "llm")
        except LLMOutputError as exc:
            self._rejects[part.first] = rejects = self._rejects.get(part.first, 0) + 1
            if rejects < MAX_REJECTS:
                raise
            log.warning("part %d: %s; using extractive notes for it", part.index, exc)
            return (*_extractive_section(part), "extractive")

    def _failed(self, exc: LLMError) -> None:
        if isinstance(exc, LLMFatalError):
            self._off = str(exc)
            self._notices.tell("fatal", f"LLM notes stopped for this session: {exc}. Captions continue.")
            return
        self._failures += 1
        wait = min(self.settings.retry_s * 2 ** (self._failures - 1), max(self.settings.retry_s, self.settings.every_s))
        self._retry_at = time.monotonic() + wait
        self._notices.tell("transient", f"LLM notes are behind ({exc}); retrying every {wait:.0f} s or so")
        log.info("notes update failed (%s); next try in %.0f s", exc, wait)


def _deck_helpers(deck: Deck) -> tuple[str, SlideTracker]:
    """The glossary for the notes prompt and a slide tracker for a deck."""
    return deck_glossary(deck.slides, build_vocabulary(deck)), SlideTracker(deck)


def _extractive_section(part: Part) -> tuple[str, str]:
    outline = extractive_outline(part.finals, window_s=1e9, per_window=5)
    heading, sentences = outline[0] if outline else ("", [])
    title = heading.split(" · ", 1)[-1] if " · " in heading else f"Part {part.index}"
    body = "\n".join(f"- {s.text}" for s in sentences) or "- (no usable text)"
    return title, body


async def _wait_for_end(session_dir: Path, stop: asyncio.Event, poll_s: float) -> None:
    while not stop.is_set():
        if session_ended(session_dir):
            stop.set()
            return
        await asyncio.sleep(poll_s)


async def run_notes(
    session_dir: Path | str,
    llm: LLMSettings,
    notes: NotesSettings,
    api_key: str | None,
    *,
    follow: bool = False,
    notify: Callable[[str], None] | None = None,
    slides: Path | None = None,
    layer: str = "best",
) -> NotesTask:
    """``notsound notes``: bring ``notes.md`` up to date (``follow``: until the lecture ends).

    Args:
        slides: a deck to store in the session and use (default: the stored one).
        layer: the transcript the notes are made from (see :class:`NotesTask`).

    Raises:
        LLMError: the notes could not be completed (key refused, API failing);
            what was done is kept and a later run continues from there.
        SummarizerError: ``slides`` cannot be read.
    """
    deck = None
    if slides is not None:
        try:
            deck = attach_deck(session_dir, slides)
        except DeckError as exc:
            raise SummarizerError(str(exc)) from None
    task = NotesTask(session_dir, llm, notes, api_key, notify, deck=deck, layer=layer)
    if follow:
        stop = asyncio.Event()
        watcher = asyncio.create_task(_wait_for_end(Path(session_dir), stop, notes.poll_s))
        try:
            await task.run(stop)
        finally:
            watcher.cancel()
    elif task.mode == "extractive" and not task.stopped_reason:
        task._tell_no_key()
    await task.flush()
    if task.stopped_reason and task.mode == "extractive":
        raise NoAPIKeyError(f"{task.stopped_reason}; to continue them: {no_key_help()}")
    if task.stopped_reason:
        raise LLMFatalError(f"notes incomplete: {task.stopped_reason}")
    if task.pending:
        raise LLMTransientError(f"notes incomplete: {task.pending} captions not yet in the notes; run again")
    return task
