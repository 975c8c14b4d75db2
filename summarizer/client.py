"""The LLM client: the only module that imports ``openai`` (lazily, on construction).

One :class:`LLMClient` per session wraps ``openai.AsyncOpenAI`` pointed at any
OpenAI-compatible ``base_url``. The package's own retries handle 408/409/429/5xx
and connection errors (exponential backoff, ``Retry-After``); a per-request
``timeout_s`` bounds each HTTP attempt and an overall ``deadline_s`` bounds the
whole call. 401/402/403 (bad key, no balance) and 404 (unknown model) raise
:class:`~summarizer.errors.LLMFatalError`; everything worth trying again later
raises :class:`~summarizer.errors.LLMTransientError`.

No tools are ever offered to the model, and the key never goes into a prompt:
it only travels in the ``Authorization`` header, and any message that contains
it is redacted before sending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import LLMFatalError, LLMTransientError
from .settings import LLMSettings

__all__ = ["Usage", "ChatResult", "LLMClient", "Message"]

log = logging.getLogger(__name__)

Message = dict[str, str]

_FATAL = {
    401: "the LLM API rejected the key (401): check DEEPSEEK_API_KEY / NOTSOUND_LLM_API_KEY",
    402: "the LLM account has no balance left (402): top it up and run the command again",
    403: "the LLM API refused this key (403): check its permissions",
    404: "model or endpoint not found (404): check NOTSOUND_LLM_MODEL and NOTSOUND_LLM_BASE_URL",
}


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the API (0 where it reports none).

    Attributes:
        cached_tokens: prompt tokens served from the provider's prefix cache
            (DeepSeek ``prompt_cache_hit_tokens``, OpenAI ``cached_tokens``).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class ChatResult:
    """The text of one answer, why it stopped, and its usage."""

    text: str
    finish_reason: str | None
    usage: Usage


def _usage_from(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    data = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
    cached = data.get("prompt_cache_hit_tokens")
    if cached is None:
        cached = (data.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0), int(cached))


class LLMClient:
    """Chat completions against one endpoint with one key.

    Args:
        settings: endpoint, model, timeouts and retries.
        api_key: the key; sent only as ``Authorization: Bearer``.
    """

    def __init__(self, settings: LLMSettings, api_key: str):
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ImportError("the openai package is needed for LLM notes: pip install 'openai>=1.40'") from exc
        self.settings = settings
        self._openai = openai
        self._key = api_key
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=settings.base_url,
            timeout=openai.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s)),
            max_retries=settings.max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _redact(self, messages: Sequence[Message]) -> list[Message]:
        out = []
        for message in messages:
            content = message["content"]
            if len(self._key) >= 8 and self._key in content:
                log.warning("a prompt contained the API key; it was redacted")
                content = content.replace(self._key, "[redacted]")
            out.append({"role": message["role"], "content": content})
        return out

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        on_delta: Callable[[str], None] | None = None,
    ) -> ChatResult:
        """One completion; with ``on_delta`` it streams and calls it with each piece of text.

        Raises:
            LLMFatalError: bad key, no balance, refused, unknown model.
            LLMTransientError: timeouts, the deadline, 429/5xx after retries,
                connection errors, an empty or malformed answer.
        """
        started = time.monotonic()
        try:
            return await asyncio.wait_for(
                self._chat(self._redact(messages), max_tokens, on_delta), self.settings.deadline_s
            )
        except asyncio.TimeoutError:
            raise LLMTransientError(
                f"no complete answer within the {self.settings.deadline_s:g} s deadline"
            ) from None
        except self._openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except self._openai.APITimeoutError:
            raise LLMTransientError(f"request timed out after {time.monotonic() - started:.0f} s") from None
        except self._openai.APIConnectionError as exc:
            raise LLMTransientError(f"cannot reach {self.settings.base_url}: {exc}") from None
        except self._openai.APIError as exc:  # malformed answers, stream errors
            raise LLMTransientError(f"LLM API error: {exc}") from None

    def _status_error(self, exc: Any) -> Exception:
        status = exc.status_code
        if status in _FATAL:
            return LLMFatalError(_FATAL[status], status)
        if status in (400, 422):
            return LLMFatalError(f"the LLM API refused the request ({status}): {exc.message}", status)
        return LLMTransientError(f"LLM API answered {status} after {self.settings.max_retries} retries")

    async def _chat(
        self, messages: list[Message], max_tokens: int, on_delta: Callable[[str], None] | None
    ) -> ChatResult:
        params: dict[str, Any] = dict(
            model=self.settings.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=self.settings.temperature,
        )
        if on_delta is None:
            resp = await self._client.chat.completions.create(**params)
            if not resp.choices:
                raise LLMTransientError("the LLM answer had no choices")
            choice = resp.choices[0]
            return ChatResult(choice.message.content or "", choice.finish_reason, _usage_from(resp.usage))
        return await self._stream(params, on_delta)

    async def _stream(self, params: dict[str, Any], on_delta: Callable[[str], None]) -> ChatResult:
        stream = await self._client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        pieces: list[str] = []
        finish: str | None = None
        usage = Usage()
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage_from(chunk.usage)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        pieces.append(choice.delta.content)
                        on_delta(choice.delta.content)
                    finish = choice.finish_reason or finish
        return ChatResult("".join(pieces), finish, usage)
