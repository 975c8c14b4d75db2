"""``notsound ask --all QUESTION``: one answer across every lecture, from search hits.

The question's words are searched in the lecture index (all sessions under
OUT); each hit comes with its neighbouring captions, grouped by lecture, each
line led by ``[SESSION mm:ss]``. One request (system prompt ``ALL_SYSTEM``,
then the passages and the question) gets the answer; every ``[SESSION mm:ss]``
in it is checked against that session's captions. Nothing is stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from library.folder import DEFAULT_OUT, Final, list_sessions, read_layer

from .ask import Answer, NothingToAskError, check_question, require_key
from .ask_cite import Spans, check_library_citations, withhold
from .ask_prompts import ALL_SYSTEM, library_block, user_turn
from .ask_search import expand, runs, search_captions
from .client import LLMClient
from .settings import AskSettings, LLMSettings
from .transcript import estimate_tokens

__all__ = ["ask_library"]

log = logging.getLogger(__name__)

#: hits asked of the index per question
HITS = 24


def _finals_of(out: Path, sessions: list[str]) -> dict[str, list[Final]]:
    return {name: [f for f in read_layer(out / name) if f.text] for name in sessions}


def _passages(out: Path, question: str, settings: AskSettings) -> tuple[list[str], dict[str, list[Final]]]:
    """The passage blocks (best lectures first) and the captions of each lecture they come from."""
    hits = search_captions(out, question, lambda: _finals_of(out, [p.name for p in list_sessions(out)]),
                           session=None, limit=HITS)
    finals = _finals_of(out, list(dict.fromkeys(s for s, _ in hits)))
    by_session: dict[str, list[int]] = defaultdict(list)
    for session, utt in hits:
        where = {f.utt: i for i, f in enumerate(finals.get(session, []))}
        if utt in where:
            by_session[session].append(where[utt])
    budget, blocks = settings.context_tokens // 2, []
    for session, positions in by_session.items():
        picked = expand(positions, settings.neighbours, len(finals[session]))
        block = library_block(session, runs(finals[session], picked))
        budget -= estimate_tokens(block)
        if budget < 0 and blocks:
            break
        blocks.append(block)
    return blocks, {s: finals[s] for s in by_session}


async def ask_library(
    out: Path | str | None,
    question: str,
    llm: LLMSettings,
    settings: AskSettings,
    api_key: str | None,
    on_delta: Callable[[str], None] | None = None,
) -> Answer:
    """Answer ``question`` from every lecture under ``out``, citing ``[SESSION mm:ss]``.

    Raises:
        NoAPIKeyError: no key (exit code 2).
        QuestionError: empty or too long.
        NothingToAskError: no caption anywhere matches the question's words.
        LLMError: the API failed.
    """
    key = require_key(api_key)
    question = check_question(question, settings)
    out = Path(out).expanduser() if out else DEFAULT_OUT
    if not out.is_dir():  # never make a lectures folder (and an index in it) for a mistyped --out
        raise NothingToAskError(f"no lectures folder {out}: pass --out DIR")
    blocks, finals = _passages(out, question, settings)
    if not blocks:
        raise NothingToAskError(f"no lecture under {out} mentions the words of this question")
    messages = [{"role": "system", "content": ALL_SYSTEM}, {"role": "user", "content": user_turn(blocks, question)}]
    client = LLMClient(llm, key)
    try:
        result = await client.chat(messages, max_tokens=settings.max_answer_tokens, on_delta=on_delta)
    finally:
        await client.aclose()
    spans = {s: Spans(f, settings.citation_slack_s) for s, f in finals.items()}
    checked = check_library_citations(withhold(result.text.strip(), key=key, system=ALL_SYSTEM), spans)
    return Answer(checked.text, checked.dropped, checked.kept, result.usage, "library")
