"""Settings of the summarizer, filled by ``notsound.config.build_settings``, and the API key lookup.

Sections: ``[llm]`` (:class:`LLMSettings`), ``[notes]`` (:class:`NotesSettings`),
``[summary]`` (:class:`SummarySettings`), ``[ask]`` (:class:`AskSettings`); each field can also be set with
``NOTSOUND_<SECTION>_<FIELD>``, e.g. ``NOTSOUND_LLM_MODEL=deepseek-reasoner`` or
``NOTSOUND_LLM_BASE_URL=http://localhost:11434/v1`` (Ollama).

The API key is deliberately not a setting: it comes from the environment
(``NOTSOUND_LLM_API_KEY``, else ``DEEPSEEK_API_KEY``) or from the file named by
the ``key_file`` setting, never from TOML values or command-line flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.secret_file import read_secret_file

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "KEY_ENV_VARS",
    "LLMSettings",
    "NotesSettings",
    "SummarySettings",
    "AskSettings",
    "resolve_api_key",
    "no_key_help",
]


DEFAULT_BASE_URL = "https://api.deepseek.com"
#: DeepSeek's general chat model; change with ``NOTSOUND_LLM_MODEL`` or ``[llm] model``.
DEFAULT_MODEL = "deepseek-chat"
#: Looked up in this order.
KEY_ENV_VARS = ("NOTSOUND_LLM_API_KEY", "DEEPSEEK_API_KEY")

STYLES = ("detailed", "concise", "study", "action-items")


@dataclass
class LLMSettings:
    """How to reach the LLM (section ``[llm]``).

    Attributes:
        base_url: any OpenAI-compatible endpoint; DeepSeek by default, e.g.
            ``https://api.openai.com/v1`` or ``http://localhost:11434/v1`` (Ollama).
        model: model name at that endpoint (DeepSeek: ``deepseek-chat``).
        timeout_s: limit for one HTTP attempt (connect at most 10 s; then the
            wait for each piece of the answer).
        deadline_s: limit for a whole call, retries included; a call past it
            is abandoned (notes: retried later).
        max_retries: retries of the ``openai`` package for 408/409/429/5xx and
            connection errors, with its exponential backoff and Retry-After.
        temperature: sampling temperature.
        context_tokens: input budget of one request (estimated tokens); a final
            summary of a longer transcript is made in parts and merged.
        key_file: a file holding the API key (when it is not in the environment).
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    timeout_s: float = 120.0
    deadline_s: float = 300.0
    max_retries: int = 2
    temperature: float = 0.3
    context_tokens: int = 48_000
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {self.base_url!r}")
        if not self.model:
            raise ValueError("model must not be empty")
        if self.timeout_s <= 0 or self.deadline_s <= 0:
            raise ValueError("timeout_s and deadline_s must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if self.context_tokens < 2_000:
            raise ValueError("context_tokens must be at least 2000")


@dataclass
class NotesSettings:
    """Rolling ``notes.md`` (section ``[notes]``).

    Attributes:
        every_s: seconds of new speech that trigger an update (and at the end).
        language: ``auto`` (follow the lecture), or a code such as ``zh``/``en``.
        poll_s: how often the transcript journal is checked for new finals.
        retry_s: wait after a failed call before the next try (doubles, capped at
            ``every_s``).
        prompt_ratio: prompt tokens sent per transcript token, at most (running
            total, estimated). Each update extends the current conversation
            (so the provider's prefix cache serves all but the new part) while
            that stays within this ratio, else starts a fresh conversation
            after the system prompt (see ``bench/notes_bench.py``).
        max_window_parts: transcript parts one conversation holds at most.
        context_titles: titles of the latest sections given when a fresh
            conversation starts, for continuity.
        max_section_tokens: output limit for one notes section.
        extract_window_s: extractive outline (no key): minutes per block, in seconds.
        extract_sentences: extractive outline: sentences kept per block.
    """

    every_s: float = 120.0
    language: str = "auto"
    poll_s: float = 1.0
    retry_s: float = 30.0
    prompt_ratio: float = 2.9
    max_window_parts: int = 8
    context_titles: int = 3
    max_section_tokens: int = 700
    extract_window_s: float = 300.0
    extract_sentences: int = 3

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.poll_s <= 0 or self.retry_s < 0:
            raise ValueError("every_s and poll_s must be positive, retry_s 0 or more")
        if self.max_window_parts < 1 or self.extract_sentences < 1 or self.extract_window_s <= 0:
            raise ValueError("max_window_parts, extract_sentences and extract_window_s must be positive")
        if self.prompt_ratio < 0 or self.context_titles < 0:
            raise ValueError("prompt_ratio and context_titles must be 0 or more")


@dataclass
class SummarySettings:
    """The final summary (section ``[summary]``).

    Attributes:
        style: ``detailed``, ``concise``, ``study`` or ``action-items``.
        language: ``auto`` (follow the lecture), ``zh``, ``en`` ...
        max_output_tokens: output limit of the final summary request.
        part_output_tokens: output limit of each partial summary (map step).
        slides_share: at most this share of ``context_tokens`` goes to slides.
        stream: stream the summary to the terminal while it is written
            (only when standard output is a terminal).
        layer: the transcript summarised: ``best`` (the polished one when there is
            one, see ``notsound polish``) or ``live``.
    """

    style: str = "detailed"
    language: str = "auto"
    max_output_tokens: int = 4_000
    part_output_tokens: int = 1_500
    slides_share: float = 0.25
    stream: bool = True
    layer: str = "best"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, not {self.style!r}")
        if not 0 <= self.slides_share <= 0.6:
            raise ValueError("slides_share must be between 0 and 0.6")


@dataclass
class AskSettings:
    """Questions about a lecture, ``notsound ask`` (section ``[ask]``).

    Attributes:
        context_tokens: prompt budget of one request (estimated tokens; sized
            for DeepSeek's 64k context with room for the answer). A lecture
            whose material takes more than ``snapshot_share`` of it is
            answered from retrieved passages instead of the whole transcript.
        snapshot_share: at most this share of ``context_tokens`` goes to the
            transcript snapshot (with notes, summary, slides); the rest holds
            the turns. When the turns outgrow it, a new snapshot starts.
        max_answer_tokens: output limit of one answer.
        max_question_chars: longer questions are refused.
        passages: search hits per question on the retrieval path.
        neighbours: captions kept on each side of a hit.
        recent_s: on the retrieval path during a live lecture, the latest
            seconds of captions come with every question.
        citation_slack_s: a cited ``[mm:ss]`` may lie this far outside a caption.
        lock_wait_s: how long a second ``ask`` on the same session waits for
            the first before it gives up.
        carry_turns: turns repeated (question and answer) when a new snapshot starts.
        stream: stream answers to the terminal (only when it is one).
        layer: the transcript asked about: ``best`` (polished when there is one) or ``live``.
    """

    context_tokens: int = 56_000
    snapshot_share: float = 0.6
    max_answer_tokens: int = 1_500
    max_question_chars: int = 4_000
    passages: int = 8
    neighbours: int = 2
    recent_s: float = 300.0
    citation_slack_s: float = 3.0
    lock_wait_s: float = 2.0
    carry_turns: int = 2
    stream: bool = True
    layer: str = "best"

    def __post_init__(self) -> None:
        if self.context_tokens < 2_000:
            raise ValueError("context_tokens must be at least 2000")
        if not 0.1 <= self.snapshot_share <= 0.9:
            raise ValueError("snapshot_share must be between 0.1 and 0.9")
        if self.max_answer_tokens < 64 or self.max_question_chars < 1 or self.passages < 1:
            raise ValueError("max_answer_tokens (>= 64), max_question_chars and passages must be positive")
        if min(self.neighbours, self.carry_turns) < 0 or min(self.recent_s, self.citation_slack_s, self.lock_wait_s) < 0:
            raise ValueError("neighbours, carry_turns, recent_s, citation_slack_s and lock_wait_s must be 0 or more")


def resolve_api_key(settings: LLMSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The LLM key from the environment, else from ``settings.key_file``; ``None`` if none.

    Raises:
        SecretFileError: the key file is named but cannot be read or is empty.
    """
    env = os.environ if env is None else env
    for name in KEY_ENV_VARS:
        value = (env.get(name) or "").strip()
        if value:
            return value
    if settings.key_file is not None:
        return read_secret_file(settings.key_file, "LLM API key")
    return None


def no_key_help() -> str:
    """How to turn LLM notes and summaries on."""
    return (
        "no LLM API key: set DEEPSEEK_API_KEY (DeepSeek, the default) or NOTSOUND_LLM_API_KEY "
        "(any OpenAI-compatible API, with NOTSOUND_LLM_BASE_URL and NOTSOUND_LLM_MODEL; "
        "for a local Ollama any non-empty key works), or name a key file with "
        "NOTSOUND_LLM_KEY_FILE / [llm] key_file"
    )
