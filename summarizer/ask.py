"""``notsound ask``: a conversation with one lecture, grounded in its captions.

Layout of a request, built so that each request starts with the bytes of the
previous one (the provider's prefix cache serves all but the newest turn)::

    system     ASK_SYSTEM                              (byte-stable, one constant)
    user       material: header, <slides>, <notes kind="summary">, <notes kind="notes">,
               <transcript> with every caption as "[mm:ss] text"   <- the snapshot,
    assistant  ACK                                                    frozen in ask.jsonl
    [user/assistant: turns carried over from the previous window]
    user       [<transcript kind="new captions">...] Question: ...  <- one turn pair
    assistant  the answer as shown                                     per question,
    ...                                                                appended only
    user       the new question

The snapshot is written to ``ask.jsonl`` once and reused byte for byte; captions
journaled after it (a lecture still going on) come with the next question
instead of changing it. A lecture whose captions take more than
``snapshot_share`` of ``context_tokens`` is not given whole: the snapshot holds
the notes and summary, and each question comes with passages retrieved for it
(:mod:`summarizer.ask_search`). When the turns outgrow the budget a new window
starts with a fresh snapshot and the last ``carry_turns`` turns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import EXIT_USAGE
from library.folder import NOTES, SUMMARY, Final, TranscriptReader, session_ended, transcript_path
from library.index import INDEX_NAME
from slides.store import load_session_deck

from .ask_cite import Spans, check_citations, withhold
from .ask_prompts import (
    ACK,
    ASK_SYSTEM,
    caption_lines,
    material_header,
    new_captions_block,
    passages_block,
    snapshot_text,
    user_turn,
)
from .ask_search import expand, runs, search_captions, time_mentions
from .ask_store import (
    AskLock,
    Conversation,
    Snapshot,
    Turn,
    append_record,
    load_conversation,
    now_iso,
    start_over,
    turn_messages,
)
from .client import LLMClient, Message, Usage
from .errors import NoAPIKeyError, SummarizerError
from .prompts import deck_text, prompt_tokens
from .settings import AskSettings, LLMSettings, no_key_help
from .transcript import estimate_tokens

__all__ = ["AskError", "NothingToAskError", "QuestionError", "Answer", "LectureChat", "check_question",
           "read_text", "require_key"]

log = logging.getLogger(__name__)

#: tokens kept free for message framing and estimate error
MARGIN = 300
#: largest notes.md / summary.md read
MAX_FILE_BYTES = 4 << 20
#: most tokens of the deck's text in the material
SLIDES_BUDGET_TOKENS = 8000
#: captions around a time named in a question, each side
AROUND_S = 60.0


class AskError(SummarizerError):
    """A question that cannot be answered as asked."""


class NothingToAskError(AskError):
    """The session has no readable caption yet."""


class QuestionError(AskError):
    """An empty or too long question."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Answer:
    """One answer as shown: citations checked, nothing secret.

    Attributes:
        dropped: cited times that match no caption (shown as plain text).
        cited: citations kept.
        mode: ``whole`` (the transcript was in the prompt) or ``passages``.
    """

    text: str
    dropped: tuple[str, ...]
    cited: int
    usage: Usage
    mode: str


def check_question(question: str, settings: AskSettings) -> str:
    """The question, stripped; :class:`QuestionError` if it is empty or too long."""
    question = (question or "").strip()
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > settings.max_question_chars:
        raise QuestionError(f"the question has {len(question):,} characters; at most "
                            f"{settings.max_question_chars:,} are accepted ([ask] max_question_chars)")
    return question


def require_key(api_key: str | None) -> str:
    if not api_key:
        raise NoAPIKeyError(f"notsound ask needs an LLM; {no_key_help()}")
    return api_key


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """A text file of the session folder ("" when missing, unreadable or too large)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return ""
    if len(data) > limit:
        log.warning("%s is larger than %d bytes; not used", path, limit)
        return ""
    return data.decode("utf-8", errors="replace").strip()


def slides_text(folder: Path) -> str:
    """The session's deck (``slides.json``) as text; "" when there is none or it is unreadable."""
    deck = load_session_deck(folder)
    return deck_text(deck.slides, SLIDES_BUDGET_TOKENS) if deck is not None else ""


def _cut(text: str, budget: int) -> str:
    while text and estimate_tokens(text) > budget:
        text = text[: int(len(text) * 0.9 * budget / estimate_tokens(text))]
    return text


class LectureChat:
    """The conversation about one session, kept in its ``ask.jsonl``.

    Use as an async context manager: entering takes the session's ask lock
    (:class:`~summarizer.ask_store.AskBusyError` if another ``ask`` holds it
    past ``lock_wait_s``) and loads the conversation; ``new=True`` first moves
    the old one aside.
    """

    def __init__(self, session_dir: Path | str, llm: LLMSettings, settings: AskSettings, api_key: str,
                 *, new: bool = False):
        self.folder = Path(session_dir)
        self.llm_settings, self.settings = llm, settings
        self.new = new
        self.backup: Path | None = None
        self.conversation = Conversation()
        self.usage = Usage()
        self._key = require_key(api_key)
        self._lock = AskLock(self.folder, settings.lock_wait_s)
        self._reader = TranscriptReader(transcript_path(self.folder, settings.layer))
        self._finals: list[Final] = []
        self._client: LLMClient | None = None

    async def __aenter__(self) -> LectureChat:
        await asyncio.to_thread(self._lock.acquire)
        try:
            if self.new:
                self.backup = start_over(self.folder)
            self.conversation = load_conversation(self.folder)
        except BaseException:
            self._lock.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._client is not None:
                await self._client.aclose()
        finally:
            self._lock.release()

    # -- material ----------------------------------------------------------------

    def finals(self) -> list[Final]:
        """Every caption with text journaled so far (re-read cheaply on each call)."""
        self._finals.extend(f for f in self._reader.read_new() if f.text)
        if not self._finals:
            raise NothingToAskError(f"no captions in {self.folder} yet: nothing to ask about")
        return self._finals

    def _snapshot(self, finals: Sequence[Final], carry: Sequence[Turn]) -> Snapshot:
        s = self.settings
        budget = int(s.context_tokens * s.snapshot_share) - MARGIN
        live = not session_ended(self.folder)
        whole = estimate_tokens(caption_lines(finals)) + 60 <= budget
        header = material_header(self.folder.name, finals, live=live, whole=whole)
        room = budget - estimate_tokens(header) - (estimate_tokens(caption_lines(finals)) if whole else 0)
        extras = []
        for tag, kind, text in (("notes", "summary", read_text(self.folder / SUMMARY)),
                                ("notes", "notes", read_text(self.folder / NOTES)),
                                ("slides", "slides", slides_text(self.folder))):
            text = _cut(text, max(0, room - 20))
            if text:
                extras.append((tag, kind, text))
                room -= estimate_tokens(text) + 20
        material = self._redact(snapshot_text(header, finals if whole else None, extras))
        messages: list[Message] = [{"role": "user", "content": material}, {"role": "assistant", "content": ACK}]
        for turn in carry:
            messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
        return Snapshot("whole" if whole else "passages", len(finals), tuple(messages), now_iso())

    def _passages(self, question: str, finals: Sequence[Final]) -> str:
        s = self.settings
        where = {f.utt: i for i, f in enumerate(finals)}
        # The library's index when the session lives in one (a folder given by path elsewhere
        # gets no index file next to it); else its captions matched directly.
        hits = search_captions(self.folder.parent, question, lambda: {self.folder.name: finals},
                               session=self.folder.name, limit=s.passages,
                               index=(self.folder.parent / INDEX_NAME).is_file())
        wanted = [i for t in time_mentions(question) for i, f in enumerate(finals) if abs(f.start - t) <= AROUND_S]
        if not session_ended(self.folder):
            wanted += [i for i, f in enumerate(finals) if f.start >= finals[-1].end - s.recent_s]
        wanted += expand((where[u] for _, u in hits if u in where), s.neighbours, len(finals))
        budget, picked, kind = s.context_tokens // 8, [], "passages"
        if not wanted:  # a general question: captions spread evenly over the lecture
            step = max(1, sum(estimate_tokens(f.text) + 5 for f in finals) // budget + 1)
            wanted, kind = list(range(0, len(finals), step)), "captions spread over the lecture"
        for i in dict.fromkeys(wanted):
            budget -= estimate_tokens(finals[i].text) + 5
            if budget < 0:
                break
            picked.append(i)
        return passages_block(runs(finals, picked), kind=kind)

    def _turn_text(self, question: str, finals: Sequence[Final], snap: Snapshot, upto: int) -> str:
        if snap.mode == "passages":
            return self._redact(user_turn([self._passages(question, finals)], question))
        new = finals[upto:]  # the journal is append-only: captions are counted in file order
        return self._redact(user_turn([new_captions_block(new)] if new else [], question))

    def _redact(self, text: str) -> str:
        """``text`` without the key: what is sent is what is kept in ``ask.jsonl``."""
        return text.replace(self._key, "[redacted]") if len(self._key) >= 8 else text

    def request(self, question: str) -> tuple[list[Message], str, Snapshot | None]:
        """The messages for ``question``, its user message, and a new snapshot to record (or None)."""
        finals = self.finals()
        conv, fresh = self.conversation, None
        snap = conv.snapshot
        if snap is None:
            snap = fresh = self._snapshot(finals, ())
        upto = conv.turns[-1].upto if conv.turns and fresh is None else snap.upto
        turns = conv.turns if fresh is None else []
        user = self._turn_text(question, finals, snap, upto)
        messages = self._messages(snap, turns, user)
        if fresh is None and prompt_tokens(messages) + self.settings.max_answer_tokens > self.settings.context_tokens:
            carry = conv.turns[-self.settings.carry_turns:] if self.settings.carry_turns else []
            snap = fresh = self._snapshot(finals, carry)
            user = self._turn_text(question, finals, snap, snap.upto)
            messages = self._messages(snap, [], user)
        return messages, user, fresh

    @staticmethod
    def _messages(snap: Snapshot, turns: Sequence[Turn], user: str) -> list[Message]:
        return [{"role": "system", "content": ASK_SYSTEM}, *snap.messages, *turn_messages(turns),
                {"role": "user", "content": user}]

    # -- asking ------------------------------------------------------------------

    async def ask(self, question: str, on_delta: Callable[[str], None] | None = None) -> Answer:
        """Answer ``question`` (streaming pieces to ``on_delta``), check it, keep the turn.

        Raises:
            QuestionError: empty or too long (nothing is sent).
            NothingToAskError: no captions yet.
            LLMError: the API failed; the conversation is unchanged.
        """
        question = check_question(question, self.settings)
        messages, user, fresh = self.request(question)
        if self._client is None:
            self._client = LLMClient(self.llm_settings, self._key)
        result = await self._client.chat(messages, max_tokens=self.settings.max_answer_tokens, on_delta=on_delta)
        self.usage += result.usage
        checked = check_citations(withhold(result.text.strip(), key=self._key, system=ASK_SYSTEM),
                                  Spans(self._finals, self.settings.citation_slack_s))
        if fresh is not None:
            append_record(self.folder, fresh.record())
            self.conversation.earlier_turns += len(self.conversation.turns)
            self.conversation.snapshot, self.conversation.turns = fresh, []
        turn = Turn(question, user, checked.text, len(self._finals), now_iso(), checked.dropped)
        append_record(self.folder, turn.record())
        self.conversation.turns.append(turn)
        return Answer(checked.text, checked.dropped, checked.kept, result.usage, self.conversation.snapshot.mode)
