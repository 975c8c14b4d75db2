"""Fixtures for summarizer tests: the loopback OpenAI-compatible server, sessions, settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from summarizer import LLMSettings, NotesSettings

from .llm_server import FakeLLM
from .synthetic import synthetic_finals, write_session

#: a made-up key; tests assert it never leaves the Authorization header
CANARY = "sk-canary-7f3a9c1e5b"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def llm_settings(fake: FakeLLM, **kw) -> LLMSettings:
    base = dict(base_url=fake.url, timeout_s=5.0, deadline_s=10.0, max_retries=2)
    base.update(kw)
    return LLMSettings(**base)


def notes_settings(**kw) -> NotesSettings:
    base = dict(every_s=30.0, poll_s=0.02, retry_s=0.05)
    base.update(kw)
    return NotesSettings(**base)


@pytest.fixture
def session(tmp_path: Path):
    """A factory: ``session(minutes, lang=..., ended=...)`` -> a session folder."""

    def make(minutes: float = 5, *, lang: str = "en", ended: bool = True, name: str = "2026-01-01_0900") -> Path:
        return write_session(tmp_path / name, synthetic_finals(minutes, lang=lang), ended=ended)

    return make


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEEPSEEK_API_KEY", "NOTSOUND_LLM_API_KEY", "OPENAI_API_KEY", "NOTSOUND_LLM_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
