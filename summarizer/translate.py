"""Live translation of finals through the configured LLM (``notsound live --translate LANG``).

:class:`Translator` runs as its own asyncio task beside capture and
captioning: :meth:`Translator.submit` only appends to a bounded queue, so a
slow, failing or refused LLM never delays a caption. The task translates one
final per request while it keeps up; when finals wait, consecutive ones go
together in one request (numbered lines, parsed back per caption). A final
already in the target language is not sent. Answers stream to ``on_partial``;
each accepted translation is appended to ``translations.jsonl`` (fsynced; the
journal is never rewritten) and passed to ``on_translation``. A restart of the
same session skips what is stored and translates the rest of the journal
after the live captions.

Failures: 401/402 stop translation for the session with one notice; 429/5xx
are retried by the client, then again after a growing pause (the queue waits,
nothing is dropped). An answer that is empty, much longer than its caption or
in the wrong language is retried once, then stored as untranslated. Prompt
layout: :mod:`summarizer.prompts` (``translate_system``, ``caption_turn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .client import LLMClient, Usage
from .errors import LLMError, LLMFatalError
from .notices import Notices
from .prompts import caption_turn, numbered_reply, parse_numbered, translate_system
from .settings import LLMSettings, no_key_help
from .transcript import estimate_tokens, read_finals
from .translations import (
    TRANSLATIONS,
    CaptionLike,
    Lag,
    TranslateSettings,
    Translation,
    already_in,
    answer_problem,
    append_translations,
    read_translations,
)

__all__ = ["TranslateSettings", "Lag", "Translator", "session_glossary"]

log = logging.getLogger(__name__)

#: statuses that refuse one request (its content or length), not the key or the model
REFUSED = (400, 422)

_MAX_CAPTION = 2_000  # characters of one caption sent
#: terms of the session's slides named in the system prompt at most
GLOSSARY_TERMS = 40


@dataclass(frozen=True)
class _Item:
    utt: int
    text: str
    lang: str
    queued_at: float
    live: bool
    tries: int = 0


# -- the task ----------------------------------------------------------------------------


class Translator:
    """Translates the finals of one session into ``target`` as they come.

    Args:
        session_dir: the session folder (``translations.jsonl`` goes there).
        target: the language code to translate into (``zh``, ``en`` ...).
        llm: endpoint settings; ``api_key``: the key (``None``: translation is off).
        settings: queue, batching and context settings.
        glossary: terms of the session's slides for the system prompt.
        notify: a one-line message for the user; each kind once.
        on_translation: each stored result (also the untranslated ones).
        on_partial: ``(utt, text so far)`` while an answer streams in.
        on_lag: the new :class:`Lag` whenever it changes.
    """

    def __init__(
        self,
        session_dir: Path | str,
        target: str,
        llm: LLMSettings | None = None,
        settings: TranslateSettings | None = None,
        api_key: str | None = None,
        *,
        glossary: Sequence[str] = (),
        notify: Callable[[str], None] | None = None,
        on_translation: Callable[[Translation], None] | None = None,
        on_partial: Callable[[int, str], None] | None = None,
        on_lag: Callable[[Lag], None] | None = None,
    ):
        self.session_dir = Path(session_dir)
        self.target = target.lower()
        self.settings = settings or TranslateSettings()
        base = llm or LLMSettings()
        self.llm_settings = dataclasses.replace(base, deadline_s=min(base.deadline_s, self.settings.deadline_s))
        self.usage = Usage()
        self.requests = 0
        self.skipped = 0  # finals already in the target language
        self.overflow = 0  # finals left for a later run because the queue was full
        self.system = translate_system(self.target, glossary)
        self._key = api_key
        self._notices = Notices(notify)
        self._on_translation, self._on_partial, self._on_lag = on_translation, on_partial, on_lag
        self._off: str | None = None if api_key else "no LLM API key"
        self._client: LLMClient | None = None
        self._live: deque[_Item] = deque()
        self._backlog: deque[_Item] = deque()
        self._busy: list[_Item] = []
        self._known = set(read_translations(self.session_dir, self.target))
        self._window: list[tuple[str, str]] = []
        self._failures = 0
        self._wake = asyncio.Event()

    # -- public ------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.session_dir / TRANSLATIONS

    @property
    def stopped_reason(self) -> str | None:
        """Why translation is off for this session (no key, 401/402 ...), or ``None``."""
        return self._off

    @property
    def lag(self) -> Lag:
        waiting = [i for i in (*self._busy, *self._live) if i.live]
        oldest = min((i.queued_at for i in waiting), default=None)
        age = 0.0 if oldest is None else time.monotonic() - oldest
        return Lag(len(waiting), age, len(self._backlog) + sum(not i.live for i in self._busy),
                   self._off is not None)

    def submit(self, caption: CaptionLike) -> None:
        """Queue a final (called from the caption path: never blocks, never raises)."""
        try:
            self._submit(caption)
        except Exception:  # the caption path must go on whatever happens here
            log.exception("cannot queue caption %s for translation", getattr(caption, "utt", "?"))

    async def run(self, stop: asyncio.Event) -> None:
        """Translate until ``stop`` is set, then for at most ``drain_s`` more; never raises."""
        if self._off:
            self._notices.tell("off", f"translation is off: {no_key_help()}. Captions continue.")
            return
        try:
            # openai's first import takes a while: not on the event loop that carries the captions
            await asyncio.to_thread(importlib.import_module, "openai")
            self._load_backlog()
            await self._loop(stop)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._loop(None), self.settings.drain_s)
        except Exception:
            log.exception("translation task failed")
            self._notices.tell("crash", "translation stopped after an unexpected error (see the log); captions continue")
        finally:
            await self.aclose()
        left = len(self._live) + len(self._backlog) + len(self._busy)
        if left and not self._off:
            log.warning("%d captions not translated yet; the next run of this session translates them", left)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- queue ---------------------------------------------------------------------

    def _submit(self, caption: CaptionLike) -> None:
        if self._off or caption.utt in self._known:
            return
        self._known.add(caption.utt)
        if already_in(caption, self.target):
            self.skipped += 1
            return
        if len(self._live) >= self.settings.max_queue:
            dropped = self._live.popleft()
            self._known.discard(dropped.utt)
            self.overflow += 1
            self._notices.tell("overflow", f"translation is {self.settings.max_queue} captions behind; "
                       "the oldest are left for the next run of this session")
        text = " ".join(caption.text.split())[:_MAX_CAPTION]
        self._live.append(_Item(caption.utt, text, caption.lang or "", time.monotonic(), True))
        self._wake.set()
        self._lag_changed()

    def _load_backlog(self) -> None:
        """Finals of earlier runs of this session that have no translation yet."""
        for final in read_finals(self.session_dir / "transcript.jsonl"):
            if final.utt in self._known or already_in(final, self.target):
                continue
            self._known.add(final.utt)
            self._backlog.append(_Item(final.utt, final.text[:_MAX_CAPTION], final.lang, time.monotonic(), False))
        if self._backlog:
            log.info("translating %d earlier captions of this session", len(self._backlog))
            self._lag_changed()

    def _take(self) -> list[_Item]:
        """The next request's captions: consecutive waiting ones, a retried one alone."""
        queue = self._live or self._backlog
        if not queue:
            return []
        if queue[0].tries:
            return [queue.popleft()]
        batch = [queue.popleft()]
        tokens = estimate_tokens(batch[0].text)
        while queue and len(batch) < self.settings.max_batch and not queue[0].tries:
            cost = estimate_tokens(queue[0].text)
            if tokens + cost > self.settings.batch_tokens:
                break
            batch.append(queue.popleft())
            tokens += cost
        return batch

    def _give_back(self, items: Sequence[_Item]) -> None:
        for item in reversed(items):
            (self._live if item.live else self._backlog).appendleft(item)

    async def _loop(self, stop: asyncio.Event | None) -> None:
        """Work the queue; with ``stop``, until it is set; without, until the queue is empty."""
        while not self._off and not (stop is not None and stop.is_set()):
            batch = self._take()
            if not batch:
                if stop is None:
                    return
                self._wake.clear()
                await _first(self._wake.wait(), stop.wait())
                continue
            self._busy = batch
            try:
                ok = await self._translate(batch)
            finally:
                self._busy = []
            self._lag_changed()
            if not ok and not self._off:
                self._give_back(batch)
                pause = min(self.settings.retry_s * 2 ** (self._failures - 1), self.settings.max_retry_s)
                waits = [asyncio.sleep(pause)] + ([stop.wait()] if stop is not None else [])
                await _first(*waits)

    # -- requests ---------------------------------------------------------------------

    def _messages(self, texts: Sequence[str]) -> list[dict[str, str]]:
        s = self.settings
        if len(self._window) >= max(1, s.context_turns):
            self._window = self._window[s.window_step:]
        while self._window and sum(estimate_tokens(u) + estimate_tokens(a) for u, a in self._window) > s.context_tokens:
            self._window = self._window[s.window_step:]
        messages = [{"role": "system", "content": self.system}]
        for user, assistant in self._window if s.context_turns else ():
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": caption_turn(texts)})
        return messages

    async def _translate(self, batch: list[_Item]) -> bool:
        """One request for ``batch``; ``False`` when it should be tried again later."""
        texts = [item.text for item in batch]
        messages = self._messages(texts)
        if self._client is None:
            self._client = LLMClient(self.llm_settings, self._key or "")
        stream = self._streamer(batch) if self.settings.stream and self._on_partial else None
        self.requests += 1
        max_tokens = min(4_000, sum(3 * estimate_tokens(t) + 30 for t in texts))
        try:
            result = await self._client.chat(messages, max_tokens=max_tokens, on_delta=stream)
        except LLMFatalError as exc:
            if exc.status in REFUSED:  # this request, not the session: the rest goes on
                self._refused(batch, exc)
                return True
            self._failed(exc)
            return False
        except LLMError as exc:
            self._failed(exc)
            return False
        self._failures = 0
        self.usage += result.usage
        self._accept(batch, parse_numbered(result.text, len(batch)))
        return True

    def _streamer(self, batch: list[_Item]) -> Callable[[str], None]:
        pieces: list[str] = []
        shown = [""] * len(batch)

        def on_delta(piece: str) -> None:
            pieces.append(piece)
            for i, text in enumerate(parse_numbered("".join(pieces), len(batch))):
                if text != shown[i]:
                    shown[i] = text
                    self._call(self._on_partial, batch[i].utt, text)

        return on_delta

    def _accept(self, batch: list[_Item], answers: list[str]) -> None:
        done: list[Translation] = []
        retry: list[_Item] = []
        for item, answer in zip(batch, answers, strict=True):
            problem = answer_problem(item.text, answer, self.target)
            if problem is None:
                done.append(Translation(item.utt, self.target, answer))
            elif item.tries == 0:
                log.info("caption %d: %s; trying once more", item.utt, problem)
                retry.append(dataclasses.replace(item, tries=1))
            else:
                log.warning("caption %d stays untranslated: %s", item.utt, problem)
                done.append(Translation(item.utt, self.target, None, problem))
        accepted = {t.utt: t.text for t in done if t.text is not None}
        good = [(item.text, accepted[item.utt]) for item in batch if item.utt in accepted]
        if good:  # the next request extends this one: the turn as it was asked and answered
            self._window.append((caption_turn([s for s, _ in good]), numbered_reply([t for _, t in good])))
        self._store(done)
        self._give_back(retry)

    def _store(self, rows: list[Translation]) -> None:
        if not rows:
            return
        try:
            append_translations(self.path, rows)
        except OSError as exc:  # shown anyway; a later run translates them again
            log.warning("cannot write %s: %s", self.path, exc)
            self._notices.tell("write", f"cannot write {self.path}: {exc.strerror}; translations are shown only")
        for row in rows:
            self._call(self._on_translation, row)

    def _refused(self, batch: list[_Item], exc: LLMFatalError) -> None:
        """The provider refused one request (400/422: content, length): captions of a batch
        are asked again one by one; a caption refused alone stays untranslated."""
        if len(batch) > 1:
            self._give_back([dataclasses.replace(item, tries=1) for item in batch])
            return
        log.warning("caption %d stays untranslated: the LLM refused it (%s)", batch[0].utt, exc.status)
        self._store([Translation(batch[0].utt, self.target, None, f"refused by the LLM ({exc.status})")])

    def _failed(self, exc: LLMError) -> None:
        if isinstance(exc, LLMFatalError):
            self._off = str(exc)
            self._live.clear()
            self._backlog.clear()
            self._notices.tell("fatal", f"translation stopped for this session: {exc}. Captions continue.")
            self._lag_changed()
            return
        self._failures += 1
        self._notices.tell("transient", f"translation is behind ({exc}); retrying")
        log.info("translation request failed (%s)", exc)

    # -- callbacks ---------------------------------------------------------------------

    def _lag_changed(self) -> None:
        if self._on_lag is not None:
            self._call(self._on_lag, self.lag)

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("translation callback failed")


def session_glossary(session_dir: Path | str, limit: int = GLOSSARY_TERMS) -> tuple[str, ...]:
    """The ranked terms of the session's slides (``slides.json``), or ``()`` without a deck."""
    from slides.store import load_session_deck
    from slides.vocabulary import build_vocabulary

    deck = load_session_deck(session_dir)
    return build_vocabulary(deck, limit) if deck is not None else ()


async def _first(*aws) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
