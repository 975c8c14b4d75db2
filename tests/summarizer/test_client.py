"""The LLM client against the loopback server: retries, fatal answers, deadlines, the key."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from common.secret_file import SecretFileError
from summarizer.client import LLMClient
from summarizer.errors import LLMFatalError, LLMTransientError
from summarizer.settings import LLMSettings, resolve_api_key

from .conftest import CANARY, llm_settings

MESSAGES = [{"role": "system", "content": "You keep the notes of a live lecture."},
            {"role": "user", "content": "<transcript>\nGradient descent. Step size.\n</transcript>"}]


async def _chat(fake, **kw):
    client = LLMClient(llm_settings(fake, **kw), CANARY)
    try:
        return await client.chat(MESSAGES, max_tokens=100)
    finally:
        await client.aclose()


def test_importing_summarizer_does_not_import_openai():
    code = "import sys, summarizer; assert 'openai' not in sys.modules, 'openai imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_429_then_200_is_retried_by_the_openai_package(fake_llm):
    fake_llm.script = [429]
    result = await _chat(fake_llm)
    assert result.text.startswith("## ")
    assert [r.action for r in fake_llm.requests] == [429, "ok"]
    assert fake_llm.requests[0].body == fake_llm.requests[1].body


@pytest.mark.parametrize("codes", [[500], [503], [500, 503]])
async def test_server_errors_are_retried(fake_llm, codes):
    fake_llm.script = list(codes)
    result = await _chat(fake_llm)
    assert result.usage.prompt_tokens > 0
    assert len(fake_llm.requests) == len(codes) + 1


async def test_server_errors_beyond_the_retries_are_transient(fake_llm):
    fake_llm.script = [503, 503, 503]
    with pytest.raises(LLMTransientError):
        await _chat(fake_llm)
    assert len(fake_llm.requests) == 3


@pytest.mark.parametrize("status", [401, 402])
async def test_bad_key_and_no_balance_are_fatal_and_not_retried(fake_llm, status):
    fake_llm.script = [status]
    with pytest.raises(LLMFatalError) as info:
        await _chat(fake_llm)
    assert info.value.status == status
    assert str(status) in str(info.value)
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("action", ["hang", "hang_stream"])
async def test_an_answer_that_never_finishes_hits_the_deadline(fake_llm, action):
    fake_llm.script = [action]
    client = LLMClient(llm_settings(fake_llm, deadline_s=0.4, max_retries=0), CANARY)
    on_delta = (lambda s: None) if action == "hang_stream" else None
    # the 0.4 s deadline ends it, not the 5 s request timeout nor the server's 30 s hang
    with pytest.raises(LLMTransientError, match=r"within the 0\.4 s deadline"):
        await asyncio.wait_for(client.chat(MESSAGES, max_tokens=50, on_delta=on_delta), 20)
    await client.aclose()


async def test_request_timeout_is_transient(fake_llm):
    fake_llm.script = ["hang", "hang"]
    with pytest.raises(LLMTransientError):
        await _chat(fake_llm, timeout_s=0.2, max_retries=1, deadline_s=10)
    assert len(fake_llm.requests) == 2


async def test_streaming_yields_pieces_and_deepseek_cache_usage(fake_llm):
    client = LLMClient(llm_settings(fake_llm), CANARY)
    pieces: list[str] = []
    first = await client.chat(MESSAGES, max_tokens=100, on_delta=pieces.append)
    again = await client.chat(MESSAGES, max_tokens=100)
    await client.aclose()
    assert "".join(pieces) == first.text and len(pieces) > 3
    assert fake_llm.requests[0].json["stream"] is True
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    assert again.usage.cached_tokens == (again.usage.prompt_tokens // 64) * 64


async def test_key_travels_only_in_the_authorization_header(fake_llm):
    leaked = [{"role": "user", "content": f"the key is {CANARY}"}]
    client = LLMClient(llm_settings(fake_llm), CANARY)
    await client.chat(MESSAGES + leaked, max_tokens=10)
    await client.aclose()
    request = fake_llm.requests[0]
    assert request.headers["authorization"] == f"Bearer {CANARY}"
    assert CANARY not in request.path
    assert CANARY.encode() not in request.body
    assert "tools" not in request.json and "functions" not in request.json


def test_key_comes_from_the_environment_or_a_key_file(tmp_path):
    settings = LLMSettings()
    assert resolve_api_key(settings, env={}) is None
    assert resolve_api_key(settings, env={"DEEPSEEK_API_KEY": "a"}) == "a"
    assert resolve_api_key(settings, env={"DEEPSEEK_API_KEY": "a", "NOTSOUND_LLM_API_KEY": "b"}) == "b"
    key_file = tmp_path / "key"
    key_file.write_text("sk-file\n")
    key_file.chmod(0o600)
    assert resolve_api_key(LLMSettings(key_file=key_file), env={}) == "sk-file"
    key_file.write_text("\n")
    with pytest.raises(SecretFileError, match="LLM API key file .* is empty"):
        resolve_api_key(LLMSettings(key_file=key_file), env={})


def test_llm_settings_come_from_toml_env_and_flags():
    from notsound.config import build_settings

    settings = build_settings(LLMSettings, "llm", toml={"llm": {"model": "qwen2.5"}},
                              env={"NOTSOUND_LLM_BASE_URL": "http://localhost:11434/v1",
                                   "NOTSOUND_LLM_API_KEY": "not-a-setting"})
    assert (settings.base_url, settings.model) == ("http://localhost:11434/v1", "qwen2.5")
    assert LLMSettings().base_url == "https://api.deepseek.com" and LLMSettings().model == "deepseek-chat"
