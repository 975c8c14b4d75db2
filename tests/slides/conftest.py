"""The summarizer's fixtures (loopback LLM server, synthetic sessions) for the slides tests."""

from tests.summarizer.conftest import _no_real_key, fake_llm, session  # noqa: F401
