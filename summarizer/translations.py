"""The values of live translation: settings, lag, language checks.

The file ``translations.jsonl`` and its reader and appender belong to the
session-folder format (:mod:`library.translations`, re-exported by
:mod:`library.folder`); they are named here too for this package's callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from common.script import HAN, HANGUL, KANA, cjk_count
from library.folder import TRANSLATIONS, Translation, append_translations, read_translations

__all__ = [
    "TRANSLATIONS",
    "TranslateSettings",
    "Lag",
    "CaptionLike",
    "Translation",
    "already_in",
    "answer_problem",
    "append_translations",
    "read_translations",
]

_UNKNOWN = ("", "auto", "unk", "unknown", "nospeech", "und")
#: the letters each CJK target language is written in
_SCRIPTS = {"zh": re.compile(f"[{HAN}]"), "ja": re.compile(f"[{HAN}{KANA}]"), "ko": re.compile(f"[{HANGUL}{HAN}]")}


@dataclass(frozen=True)
class TranslateSettings:
    """Live translation (section ``[translate]``; the target is ``[live] translate``).

    Attributes:
        max_queue: captions waiting at most; beyond it the oldest wait for the
            next run of the session instead (counted in ``overflow``).
        max_batch: captions translated together at most when the queue is behind.
        batch_tokens: estimated caption tokens of one request at most.
        context_turns: earlier turns (request + accepted answer) kept as context
            at most; when full, the oldest ``window_step`` go at once, so the
            cached prefix breaks once per step.
        window_step: see ``context_turns``.
        context_tokens: estimated tokens of those turns at most.
        deadline_s: one request at most this long, retries included.
        retry_s: pause after a failed request; doubles up to ``max_retry_s``.
        max_retry_s: see ``retry_s``.
        drain_s: at the end of the run, how long the queue may still be worked on.
        stream: stream answers (``on_partial`` sees them as they come).
    """

    max_queue: int = 2_000
    max_batch: int = 8
    batch_tokens: int = 600
    context_turns: int = 8
    window_step: int = 4
    context_tokens: int = 1_500
    deadline_s: float = 30.0
    retry_s: float = 1.0
    max_retry_s: float = 30.0
    drain_s: float = 30.0
    stream: bool = True

    def __post_init__(self) -> None:
        if min(self.max_queue, self.max_batch, self.batch_tokens, self.window_step) < 1:
            raise ValueError("max_queue, max_batch, batch_tokens and window_step must be positive")
        if self.context_turns < 0 or self.context_tokens < 0 or self.window_step > max(1, self.context_turns):
            raise ValueError("context_turns and context_tokens must be 0 or more, window_step at most context_turns")
        if self.deadline_s <= 0 or self.retry_s < 0 or self.max_retry_s < self.retry_s or self.drain_s < 0:
            raise ValueError("deadline_s must be positive, 0 <= retry_s <= max_retry_s, drain_s 0 or more")


@dataclass(frozen=True)
class Lag:
    """How far translation is behind: live captions waiting (or in a request) and the oldest one's age."""

    captions: int = 0
    seconds: float = 0.0
    backlog: int = 0  # earlier captions of the session still to do (after a restart)
    stopped: bool = False  # translation is off for the rest of the session (401/402 ...)


class CaptionLike(Protocol):
    """What :meth:`Translator.submit` reads: a journal ``Final`` or a live ``Caption``."""

    utt: int
    text: str
    lang: str


# -- languages -----------------------------------------------------------------------


def _family(code: str) -> str:
    code = (code or "").lower().replace("_", "-").split("-")[0]
    return "zh" if code in ("zh", "yue", "cmn", "wuu") else code


def _share(text: str, family: str) -> float | None:
    """Share of the letters of ``text`` in ``family``'s script; ``None`` without letters."""
    letters = sum(1 for ch in text if ch.isalpha())
    if not letters:
        return None
    script = _SCRIPTS.get(family)
    if script is None:  # alphabetic targets: letters that are not CJK
        return 1 - cjk_count(text) / letters
    return len(script.findall(text)) / letters


def already_in(caption: CaptionLike, target: str) -> bool:
    """Whether ``caption`` needs no translation into ``target`` (or has nothing to translate).

    For CJK targets the script decides (engines label code-switched speech
    loosely); for alphabetic ones a caption mostly in CJK script is sent, else
    its ``lang`` decides, and an unlabelled one counts as already there.
    """
    family = _family(target)
    share = _share(caption.text, family)
    if share is None:
        return True
    if family in _SCRIPTS:
        return share >= 0.5
    if share < 0.5:
        return False
    lang = _family(caption.lang)
    return lang in _UNKNOWN or lang == family


def _width(text: str) -> int:
    return len(text) + cjk_count(text)  # CJK characters take two cells, like their words


def answer_problem(source: str, answer: str, target: str) -> str | None:
    """Why ``answer`` is no usable translation of ``source`` into ``target``, or ``None``."""
    if not answer.strip():
        return "empty answer"
    if _width(answer) > 3 * _width(source) + 20:
        return "answer much longer than the caption"
    share = _share(answer, _family(target))
    if share is not None and share < 0.3:
        return "answer not in the target language"
    return None


