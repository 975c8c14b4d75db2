"""Rolling notes and the final summary through any OpenAI-compatible LLM.

- :class:`NotesTask` keeps ``notes.md`` current during ``notsound live``;
  :func:`run_notes` is ``notsound notes``.
- :func:`run_summary` is ``notsound summary`` (map-reduce for long lectures).
- :class:`LLMSettings`, :class:`NotesSettings`, :class:`SummarySettings` are
  filled by ``notsound.config.build_settings``; :func:`resolve_api_key` finds the key.

Importing this package does not import ``openai``; :mod:`summarizer.client`
does, when the first client is built.
"""

from .errors import (
    LLMError,
    LLMFatalError,
    LLMOutputError,
    LLMTransientError,
    NoAPIKeyError,
    SessionNotFoundError,
    SummarizerError,
    SummaryError,
)
from .files import DEFAULT_OUT, resolve_session, write_atomic
from .notes import NotesTask, run_notes
from .settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    LLMSettings,
    NotesSettings,
    SummarySettings,
    no_key_help,
    resolve_api_key,
)
from .summary import run_summary

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_OUT",
    "LLMError",
    "LLMFatalError",
    "LLMOutputError",
    "LLMSettings",
    "LLMTransientError",
    "NoAPIKeyError",
    "NotesSettings",
    "NotesTask",
    "SessionNotFoundError",
    "SummarizerError",
    "SummaryError",
    "SummarySettings",
    "no_key_help",
    "resolve_api_key",
    "resolve_session",
    "run_notes",
    "run_summary",
    "write_atomic",
]
