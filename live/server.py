"""The caption worker: a WebSocket server on ``/v1/stream`` plus ``GET /health``.

Per-connection state lives in a :class:`StreamSession` local to the handler;
the server object only keeps the set of live sessions (registered and
unregistered in ``try/finally``) so that shutdown can drain them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from models import Engine, EngineOptions, create_engine

from .scheduler import Scheduler, SchedulerOptions
from .session import StreamLimits, StreamSession

__all__ = ["WorkerSettings", "Worker", "run_serve", "STREAM_PATH", "HEALTH_PATH"]

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/stream"
HEALTH_PATH = "/health"

#: ``process_request`` hook: return a Response to refuse the request, None to go on.
RequestHook = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]


@dataclass(frozen=True)
class WorkerSettings:
    """Everything ``notsound serve`` can be told (TOML section ``[worker]``).

    Attributes:
        host: address to bind; loopback unless you mean to share the worker.
        port: TCP port; 0 picks a free one.
        engine: ASR engine name (see ``notsound models``).
        model: hub id, model name or local directory; empty for the engine default.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        threads: CPU threads for the engine; 0 keeps the library default.
        warmup: run a short clip through the engine before accepting streams.
        partial_every_s: seconds of new audio between partials (stretches under load).
        batch_budget_s: most seconds of audio in one engine call.
        max_batch: most clips in one engine call.
        max_utterance_s: longest utterance accepted (the capture side splits at 20 s).
        drain_timeout_s: on shutdown, how long to wait for owed finals.
        audio_rate: audio a stream may send, as a multiple of real time (0: no limit).
        audio_burst_s: seconds of audio a stream may send at once (resend after a reconnect).
        messages_per_s: frames per second a stream may send (bursts of 4x).
        idle_timeout_s: close a stream that sent nothing for this long (0: never).
        max_owed: finals a stream may owe before the worker stops reading it.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    engine: str = "sensevoice"
    model: str = ""
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    warmup: bool = True
    partial_every_s: float = 0.6
    batch_budget_s: float = 30.0
    max_batch: int = 16
    max_utterance_s: float = 30.0
    drain_timeout_s: float = 30.0
    audio_rate: float = 2.0
    audio_burst_s: float = 60.0
    messages_per_s: float = 50.0
    idle_timeout_s: float = 300.0
    max_owed: int = 32

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            model=self.model or None,
            device=self.device,
            precision=self.precision,
            threads=self.threads or None,
        )

    def scheduler_options(self) -> SchedulerOptions:
        return SchedulerOptions(
            batch_budget_s=self.batch_budget_s,
            max_batch=self.max_batch,
            partial_every_s=self.partial_every_s,
        )

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(
            max_utterance_s=self.max_utterance_s,
            audio_rate=self.audio_rate,
            audio_burst_s=self.audio_burst_s,
            messages_per_s=self.messages_per_s,
            message_burst=4 * self.messages_per_s,
            idle_timeout_s=self.idle_timeout_s,
            max_owed=self.max_owed,
        )


@dataclass
class Worker:
    """A running caption worker. Use as ``async with Worker(settings) as worker``.

    ``engine`` may be passed in already built (tests, the embedded worker);
    otherwise it is created from the settings and loaded in a thread.
    ``request_hook`` is the authentication seam: it sees every HTTP request
    before the upgrade and may answer it (e.g. 401).
    """

    settings: WorkerSettings = field(default_factory=WorkerSettings)
    engine: Engine | None = None
    request_hook: RequestHook | None = None
    ssl: Any = None
    sessions: set[StreamSession] = field(default_factory=set, init=False)
    started_at: float = field(default=0.0, init=False)
    startup_s: float = field(default=0.0, init=False)
    _server: Server | None = field(default=None, init=False)
    _scheduler: Scheduler | None = field(default=None, init=False)
    _closing: bool = field(default=False, init=False)

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> Worker:
        t0 = time.monotonic()
        if self.engine is None:
            self.engine = create_engine(self.settings.engine, self.settings.engine_options())
            await asyncio.to_thread(self.engine.load)
        if self.settings.warmup:
            await asyncio.to_thread(self.engine.warmup)
        self._scheduler = Scheduler(self.engine, self.settings.scheduler_options())
        self._scheduler.start()
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            compression=None,
            max_size=self.stream_limits.max_frame_bytes,
            max_queue=self.stream_limits.max_queue_frames,
            ssl=self.ssl,
            server_header="notsound",
        )
        self.started_at = time.time()
        self.startup_s = time.monotonic() - t0
        log.info("worker ready on %s in %.2f s (engine %s, model %s)", self.url, self.startup_s,
                 self.engine.name, self.engine.model_ref)
        return self

    async def stop(self) -> None:
        """Stop accepting, deliver the finals still owed (bounded), close with 1001."""
        if self._server is None:
            return
        self._closing = True
        self._server.close(close_connections=False)
        drains = [s.drain_and_close(self.settings.drain_timeout_s) for s in list(self.sessions)]
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        await self._server.wait_closed()
        if self._scheduler is not None:
            await self._scheduler.stop()
        self._server = None
        log.info("worker stopped")

    async def __aenter__(self) -> Worker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def stream_limits(self) -> StreamLimits:
        return self.settings.stream_limits()

    @property
    def port(self) -> int:
        assert self._server is not None, "worker not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.settings.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.ssl else "ws"
        return f"{scheme}://{host}:{self.port}{STREAM_PATH}"

    # -- HTTP before the upgrade -------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            return _json_response(http.HTTPStatus.OK, self.health())
        if path != STREAM_PATH:
            return _json_response(http.HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path}"})
        if self._closing:
            return _json_response(http.HTTPStatus.SERVICE_UNAVAILABLE, {"error": "worker shutting down"})
        if self.request_hook is not None:
            answer = self.request_hook(connection, request)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return answer
        return None

    def health(self) -> dict[str, Any]:
        assert self.engine is not None and self._scheduler is not None
        stats = self._scheduler.stats
        return {
            "status": "closing" if self._closing else "ok",
            "engine": self.engine.name,
            "model": self.engine.model_ref,
            "streams": len(self.sessions),
            "queued_finals": self._scheduler.queued_finals,
            "engine_calls": stats.engine_calls,
            "finals": stats.finals,
            "partials": stats.partials,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    # -- streams -----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self._scheduler is not None and self.engine is not None
        session = StreamSession(ws, self._scheduler, self.engine, self.stream_limits)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)


def _json_response(status: http.HTTPStatus, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return Response(status.value, status.phrase, headers, data)


async def run_serve(settings: WorkerSettings, **worker_kwargs: Any) -> None:
    """``notsound serve``: run until SIGINT or SIGTERM, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Worker(settings, **worker_kwargs) as worker:
        print(f"notsound worker listening on {worker.url} (engine {worker.engine.name}, "
              f"started in {worker.startup_s:.1f} s)", flush=True)
        await stop.wait()
        log.info("shutting down: finishing owed finals")
