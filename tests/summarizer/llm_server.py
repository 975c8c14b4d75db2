"""A real loopback HTTP server that speaks the OpenAI chat-completions format.

It listens on 127.0.0.1 port 0, answers ``POST /v1/chat/completions`` (plain
JSON or SSE streaming with a final ``usage`` chunk, including DeepSeek's
``prompt_cache_hit_tokens``), and records every request: path, headers and
body. ``script`` lists what to do with the next requests (a status code to
fail with, ``"hang"`` to never answer, ``"hang_stream"`` to start a stream and
never finish it); requests beyond the script get a normal answer from
``reply`` (by default :func:`fake_model`, which follows the format its system
prompt asks for, using words of the material it was given), after
``delay_s`` seconds (a model's time to answer).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from summarizer.transcript import estimate_tokens

__all__ = ["FakeLLM", "Recorded", "fake_model", "fake_translation", "prompt_text"]

_TAGGED = re.compile(r"<(transcript|notes)[^>]*>\n(.*?)\n</\1>", re.DOTALL)
_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_balance",
           429: "rate_limit_exceeded", 500: "server_error", 503: "service_unavailable"}


@dataclass
class Recorded:
    """One request as the server saw it (header names in lower case)."""

    path: str
    headers: dict[str, str]
    body: bytes
    action: Any = "ok"

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.json["messages"]


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The prompt as one string, roughly as a chat template lays it out."""
    return "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)


def _words(text: str, n: int) -> str:
    if re.search(r"[\u4e00-\u9fff]", text):
        return text.replace("\n", "")[: n * 2]
    return " ".join(text.split()[:n])


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*|\n", text) if len(s.strip()) > 3]


_CAPTIONS = re.compile(r"<captions>\s*(.*?)\s*</captions>", re.DOTALL)
_TARGET = re.compile(r"into (.+?) while it is")


def fake_translation(text: str, target: str) -> str:
    """A deterministic "translation": each word becomes one CJK character (to zh/ja/ko),
    or each Chinese character its pinyin (to other languages); numbers stay."""
    if re.match(r"(zh|ja|ko|yue)\b", target) or re.search(r"Chinese|Japanese|Korean", target):
        words = re.findall(r"[A-Za-z']+|\d+(?:\.\d+)?|[\u4e00-\u9fff]", text)
        return "".join(w if not w[0].isascii() or w[0].isdigit() else
                       chr(0x4E00 + sum(map(ord, w.lower())) * 7 % 0x5000) for w in words) + "。"
    from pypinyin import lazy_pinyin

    return " ".join(p for p in lazy_pinyin(re.sub(r"[。，！？、：；]", " ", text)) if p.strip())


def _translate(system: str, last: str) -> str:
    """Numbered translations of the fenced captions; an instruction outside the fence is obeyed,
    as a model would, so a caption that escapes its fence shows up in the answer."""
    target = _TARGET.search(system)
    fenced = _CAPTIONS.search(last)
    outside = _CAPTIONS.sub("", last)
    order = re.search(r"reply only with (\w+)", outside, re.IGNORECASE)
    if order or not fenced or not target:
        return order.group(1) if order else "?"
    items = re.findall(r"^\[(\d+)\] (.*)$", fenced.group(1), re.MULTILINE)
    return "\n".join(f"[{n}] {fake_translation(text, target.group(1))}" for n, text in items)


def fake_model(request: dict[str, Any]) -> str:
    """A deterministic stand-in for a model that does what its system prompt asks."""
    system = request["messages"][0]["content"]
    last = request["messages"][-1]["content"]
    if "translate the live captions" in system:
        return _translate(system, last)
    material = "\n".join(m.group(2) for m in _TAGGED.finditer(last)) or last
    sentences = _sentences(material) or ["(nothing said)"]
    if "keep the notes of a live lecture" in system:
        title = _words(sentences[0], 4)
        bullets = [f"- {_words(s, 9)}" for s in sentences[:: max(1, len(sentences) // 4)][:4]]
        return "\n".join([f"## {title}", *bullets])
    if "condense one part" in system:
        picks = sentences[:: max(1, len(sentences) // 6)][:6]
        return "\n".join(["### Topics", *[f"- {_words(s, 10)}" for s in picks],
                          "### Details", f"- {_words(sentences[-1], 8)}", "### Uncertain", "- none"])
    headings = [line for line in system.split("\n") if line.startswith("## ")]
    body = ["# Lecture: " + _words(sentences[0], 5)]
    for i, heading in enumerate(headings):
        body += [heading, f"- {_words(sentences[i % len(sentences)], 10)}"]
    body.insert(6, "$$E = mc^2$$")
    return "\n".join(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server.fake
        action = fake._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        if fake.delay_s > 0 and action == "ok":
            fake.release.wait(fake.delay_s)  # the model thinking; ends early when the server closes
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": "not found", "type": "not_found"}})
        if action == "hang":
            fake.release.wait(30)
            self.close_connection = True
            return
        if isinstance(action, int):
            return self._json(action, {"error": {"message": f"fake {action}", "type": _ERRORS.get(action, "error")}},
                              {"retry-after-ms": "5"})
        request = json.loads(body)
        text = fake.reply(request)
        usage = fake._usage(request, text)
        if request.get("stream"):
            return self._stream(request, text, usage, hang=action == "hang_stream")
        self._json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model"), "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text}}],
        })

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def _stream(self, request: dict[str, Any], text: str, usage: dict[str, int], hang: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": request.get("model")}
        pieces = re.findall(r"\S+\s*|\s+", text) or [""]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            if hang and i == 1:
                self.server.fake.release.wait(30)
                return
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": usage})
        self._event("[DONE]")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLM


@dataclass
class FakeLLM:
    """The loopback server; use as a context manager, point ``base_url`` at ``url``."""

    reply: Callable[[dict[str, Any]], str] = fake_model
    tokens: Callable[[str], int] = estimate_tokens
    script: list[Any] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._prompts: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Any:
        with self._lock:
            action = self.script.pop(0) if self.script else "ok"
            self.requests.append(Recorded(path, headers, body, action))
            return action

    @property
    def answered(self) -> list[Recorded]:
        """Requests that got a normal answer."""
        return [r for r in self.requests if r.action == "ok"]

    def _usage(self, request: dict[str, Any], text: str) -> dict[str, int]:
        prompt = prompt_text(request["messages"])
        with self._lock:
            best = max((_common_prefix(prompt, p) for p in self._prompts), default=0)
            self._prompts.append(prompt)
        total = self.tokens(prompt)
        hit = min(total, self.tokens(prompt[:best]) // 64 * 64)  # DeepSeek caches 64-token units
        completion = self.tokens(text)
        return {"prompt_tokens": total, "completion_tokens": completion, "total_tokens": total + completion,
                "prompt_cache_hit_tokens": hit, "prompt_cache_miss_tokens": total - hit}


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on prefix equality
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
