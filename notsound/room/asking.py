"""``ask`` in the lecture page: the conversation of ``notsound ask``, streamed as NDJSON.

The same :class:`summarizer.ask.LectureChat` as the terminal (same
``ask.jsonl``, same lock, same prompts: the question and the captions go into
the prompt fenced, as the terminal sends them), with the LLM settings and key
the CLI would use; the key stays in this process (never in a page, a URL, a
log or an answer). Lines of the stream::

    {"delta": "text"}                       pieces of the answer as they arrive
    {"done": true, "answer": "...", "citations": [{"label", "utt", "t"}]}
    {"error": "message"}                    instead of "done"

The pieces are the answer with :func:`summarizer.ask_cite.withhold` applied to
all of it so far, less its last ``len(key)`` characters (so no part of a key
is sent before it can be recognised); ``done`` carries the checked answer,
which the page shows in place of the pieces.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import NotSoundError
from library.folder import Final, read_layer
from summarizer.ask import LectureChat
from summarizer.ask_cite import cited_times, parse_time, withhold
from summarizer.ask_prompts import ASK_SYSTEM
from summarizer.ask_store import load_conversation
from summarizer.settings import AskSettings, LLMSettings

__all__ = ["AskConfig", "citations", "conversation", "stream_answer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AskConfig:
    """How the room asks: the CLI's ``[llm]`` and ``[ask]`` settings and the LLM key."""

    llm: LLMSettings
    settings: AskSettings
    key: str = field(repr=False)


def citations(answer: str, finals: Sequence[Final], slack_s: float = 3.0) -> list[dict[str, Any]]:
    """The answer's cited times with the caption each one points at (``utt`` null: none)."""
    ordered = sorted((f for f in finals if f.text), key=lambda f: f.start)
    starts = [f.start for f in ordered]
    out = []
    for bracket, time_text in cited_times(answer):
        seconds = parse_time(time_text)
        if seconds is None:
            continue
        i = bisect.bisect_right(starts, seconds) - 1  # the caption said at that second, else the next
        utt = None
        if i >= 0 and seconds <= ordered[i].end + slack_s:
            utt = ordered[i].utt
        elif i + 1 < len(ordered) and ordered[i + 1].start <= seconds + 1 + slack_s:
            utt = ordered[i + 1].utt
        label = bracket if bracket == f"[{time_text}]" else time_text
        out.append({"label": label, "utt": utt, "t": seconds})
    return out


def conversation(folder: Path, layer: str) -> list[dict[str, Any]]:
    """The turns of the session's current conversation, with their citations."""
    finals = read_layer(folder, layer)
    return [{"question": t.question, "answer": t.answer, "citations": citations(t.answer, finals)}
            for t in load_conversation(folder).turns]


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


async def stream_answer(folder: Path, question: str, config: AskConfig) -> AsyncIterator[bytes]:
    """The NDJSON lines of one answer (see the module docstring)."""
    pieces: asyncio.Queue[str] = asyncio.Queue()

    async def ask():
        async with LectureChat(folder, config.llm, config.settings, config.key) as chat:
            answer = await chat.ask(question, pieces.put_nowait)
            return answer, chat.finals()

    task = asyncio.create_task(ask())
    text, sent, hold = "", "", len(config.key)
    try:
        while not task.done() or not pieces.empty():
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            text += getter.result()
            shown = withhold(text, key=config.key, system=ASK_SYSTEM)
            ready = shown[:max(0, len(shown) - hold)]
            if len(ready) > len(sent) and ready.startswith(sent):
                yield _line({"delta": ready[len(sent):]})
                sent = ready
        answer, finals = task.result()
        yield _line({"done": True, "answer": answer.text, "citations": citations(answer.text, finals)})
    except NotSoundError as exc:
        yield _line({"error": _redact(str(exc), config.key)})
    except Exception:  # noqa: BLE001 - the stream ends with a line, never a torn body
        log.exception("an answer in the lecture room failed")
        yield _line({"error": "the answer failed; see the server's log"})
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _redact(text: str, key: str) -> str:
    return text.replace(key, "[redacted]") if len(key) >= 8 else text
