"""The caption worker: a WebSocket server on ``/v1/stream`` plus ``GET /health``.

Per-connection state lives in a :class:`StreamSession` local to the handler;
the server object only keeps the set of live sessions (registered and
unregistered in ``try/finally``) so that shutdown can drain them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from common.errors import NotSoundError
from common.limits import is_loopback
from models import Engine, EngineOptions, create_engine
from wire.protocol import (
    CLOSE_KEY_REVOKED,
    CLOSE_TOO_MANY_STREAMS,
    FEATURE_COMMIT,
    FEATURE_PAUSE,
    FEATURE_POLISH,
    FEATURE_VOCABULARY,
)

from .admin import ADMIN_PREFIX, authenticate, handle_admin, json_response
from .calibrate import ANY_BATCH, BatchPolicy, calibrate_batching
from .keys import KeyRecord, KeyStore, KeyStoreError
from .scheduler import Scheduler, SchedulerOptions
from .session import StreamSession
from .stream import StreamLimits

__all__ = ["WorkerSettings", "Worker", "WorkerError", "run_serve", "STREAM_PATH", "HEALTH_PATH"]

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
        threads: CPU threads for the engine; 0 for all cores but one, which stays
            free for the event loop (and, in ``notsound live``, the capture side):
            on 2 cores one engine thread halved the pipeline's overhead (make bench).
        warmup: run a short clip through the engine before accepting streams.
        beam_size: beam width of finals (decoded for accuracy; whisper). SenseVoice is a
            CTC model and decodes finals and partials the same way: it ignores both beams.
        partial_beam_size: beam width of partials (decoded for speed; 1 is greedy).
        partial_precision: precision of partials (whisper, which decodes them with a copy
            of the model of their own): ``auto`` is ``int8`` on CPU, where a partial of
            tiny.en takes half the time of an fp32 one, and ``precision`` on a GPU.
        early_finals: offer the ``pause`` feature: decode an utterance as soon as the
            client's VAD sees its speech stop, before the pause is long enough to end it.
        commit: offer the ``commit`` feature where the engine times its words (whisper):
            the settled sentences of a long open utterance are final before it ends.
        polish: offer the ``polish`` feature: take after-class windows of recordings
            (``notsound polish --server``), decoded only when no live job needs the engine.
        calibrate: time batched against one-at-a-time engine calls at start-up and
            batch only where it was faster (engines that pad batches: SenseVoice).
        partial_call_s: most estimated engine seconds of one call of partials.
        partial_every_s: seconds of new audio between partials (stretches under load).
        batch_budget_s: most seconds of audio in one engine call.
        max_batch: most clips in one engine call.
        max_utterance_s: longest utterance accepted (the capture side splits at 10 s).
        drain_timeout_s: on shutdown, how long to wait for owed finals.
        audio_rate: audio a stream may send, as a multiple of real time (0: no limit).
        audio_burst_s: seconds of audio a stream may send at once (resend after a reconnect).
        messages_per_s: frames per second a stream may send (bursts of 4x).
        idle_timeout_s: close a stream that sent nothing for this long (0: never).
        max_owed: finals a stream may owe before the worker stops reading it.
        auth: require an API key (``Authorization: Bearer``) on ``/v1/stream``;
            turning it off is refused unless ``host`` is a loopback address.
        state_dir: folder of ``keys.json`` (shared by workers that share keys);
            empty for ``$NOTSOUND_STATE_DIR`` or ``~/.local/state/notsound``.
        max_streams_per_key: concurrent streams one key may hold, unless the
            key sets its own ``max_streams``.
        tls_cert / tls_key: PEM certificate chain and private key: serve ``wss://``.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    engine: str = "sensevoice"
    model: str = ""
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    warmup: bool = True
    beam_size: int = 5
    partial_beam_size: int = 1
    partial_precision: str = "auto"
    early_finals: bool = True
    commit: bool = True
    polish: bool = True
    calibrate: bool = True
    partial_call_s: float = 0.35
    partial_every_s: float = 0.3
    batch_budget_s: float = 30.0
    max_batch: int = 16
    max_utterance_s: float = 30.0
    drain_timeout_s: float = 30.0
    audio_rate: float = 2.0
    audio_burst_s: float = 60.0
    messages_per_s: float = 50.0
    idle_timeout_s: float = 300.0
    max_owed: int = 32
    auth: bool = True
    state_dir: str = ""
    max_streams_per_key: int = 8
    tls_cert: str = ""
    tls_key: str = ""

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            model=self.model or None,
            device=self.device,
            precision=self.precision,
            threads=self.threads or default_threads(),
            beam_size=self.beam_size,
            partial_beam_size=self.partial_beam_size,
            partial_precision=self.partial_precision,
        )

    def scheduler_options(self) -> SchedulerOptions:
        return SchedulerOptions(
            batch_budget_s=self.batch_budget_s,
            max_batch=self.max_batch,
            partial_every_s=self.partial_every_s,
            partial_call_s=self.partial_call_s,
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
    ``keys`` is the key store; by default it is opened from ``settings.state_dir``
    when ``settings.auth`` is on. ``request_hook`` sees every stream request
    after authentication and may answer it instead of upgrading.
    """

    settings: WorkerSettings = field(default_factory=WorkerSettings)
    engine: Engine | None = None
    keys: KeyStore | None = None
    request_hook: RequestHook | None = None
    #: how clips share engine calls; None: measured at start (``settings.calibrate``)
    batch_policy: BatchPolicy | None = None
    #: create an admin key on first start when the key store has none (``notsound serve``)
    mint_admin: bool = True
    #: plaintext admin key minted on first start (shown once by ``run_serve``)
    new_admin_key: str | None = field(default=None, init=False)
    sessions: set[StreamSession] = field(default_factory=set, init=False)
    started_at: float = field(default=0.0, init=False)
    startup_s: float = field(default=0.0, init=False)
    _server: Server | None = field(default=None, init=False)
    _scheduler: Scheduler | None = field(default=None, init=False)
    _closing: bool = field(default=False, init=False)
    _watch: asyncio.Task | None = field(default=None, init=False)
    tls: bool = field(default=False, init=False)

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> Worker:
        t0 = time.monotonic()
        self._check_exposure()
        ssl_context = self._ssl_context()
        if self.settings.auth and self.keys is None:
            self.keys = KeyStore(self.settings.state_dir or None)
        if self.keys is not None and self.mint_admin:
            self.new_admin_key = await asyncio.to_thread(self.keys.ensure_admin)
        if self.engine is None:
            self.engine = create_engine(self.settings.engine, self.settings.engine_options())
            await asyncio.to_thread(self.engine.load)
        if self.settings.warmup:
            await asyncio.to_thread(self.engine.warmup)
        policy = self.batch_policy or ANY_BATCH
        if self.batch_policy is None and self.settings.calibrate:
            policy = await asyncio.to_thread(calibrate_batching, self.engine, self.settings.max_batch)
        self._scheduler = Scheduler(self.engine, self.settings.scheduler_options(), policy)
        self._scheduler.start()
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            compression=None,
            max_size=self.stream_limits.max_frame_bytes,
            max_queue=self.stream_limits.max_queue_frames,
            ssl=ssl_context,
            server_header="notsound",
        )
        self.tls = ssl_context is not None
        if self.keys is not None:
            self._watch = asyncio.create_task(self._watch_keys(), name="key-watch")
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
        if self._watch is not None:
            self._watch.cancel()
        self._server.close(close_connections=False)
        drains = [s.drain_and_close(self.settings.drain_timeout_s) for s in list(self.sessions)]
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        await self._server.wait_closed()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self.keys is not None:
            await asyncio.to_thread(self.keys.flush_usage)
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
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{host}:{self.port}{STREAM_PATH}"

    # -- HTTP before the upgrade -------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            return json_response(http.HTTPStatus.OK, self.health())
        if path.startswith(ADMIN_PREFIX) and self.keys is not None:
            return await asyncio.to_thread(handle_admin, self.keys, request)
        if path != STREAM_PATH:
            return json_response(http.HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
        if self._closing:
            return json_response(http.HTTPStatus.SERVICE_UNAVAILABLE, {"error": "worker shutting down"})
        if self.keys is not None:
            record = authenticate(self.keys, request)
            if isinstance(record, Response):
                return record
            connection.key_record = record  # read by _handle
        if self.request_hook is not None:
            answer = self.request_hook(connection, request)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return answer
        return None

    @property
    def features(self) -> tuple[str, ...]:
        """Optional protocol features this worker offers in ``ready``."""
        hints = self.engine is not None and self.engine.takes_hints
        commit = self.settings.commit and self.engine is not None and self.engine.times_words
        return (((FEATURE_PAUSE,) if self.settings.early_finals else ()) + ((FEATURE_VOCABULARY,) if hints else ())
                + ((FEATURE_POLISH,) if self.settings.polish else ()) + ((FEATURE_COMMIT,) if commit else ()))

    def health(self) -> dict[str, Any]:
        assert self.engine is not None and self._scheduler is not None
        stats = self._scheduler.stats
        return {
            "status": "closing" if self._closing else "ok",
            "engine": self.engine.name,
            "model": self.engine.model_ref,
            "streams": len(self.sessions),
            "queued_finals": self._scheduler.queued_finals,
            "batching": {**self._scheduler.policy.describe(),
                         "max_batch": min(self._scheduler.policy.max_batch, self.settings.max_batch)},
            "engine_calls": stats.engine_calls,
            "finals": stats.finals,
            "partials": stats.partials,
            "polish_jobs": stats.polish,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    # -- streams -----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self._scheduler is not None and self.engine is not None
        record: KeyRecord | None = getattr(ws, "key_record", None)
        session = StreamSession(ws, self._scheduler, self.engine, self.stream_limits,
                                key_id=record.id if record else None,
                                features=self.features)
        if record is not None:
            limit = record.max_streams or self.settings.max_streams_per_key
            held = sum(1 for s in self.sessions if s.key_id == record.id)
            if held >= limit:
                await session.refuse("too_many_streams",
                                     f"this key already holds {held} streams (limit {limit})",
                                     CLOSE_TOO_MANY_STREAMS)
                return
            self.keys.record_use(record.id, stream=True)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if record is not None and self.keys is not None:
                self.keys.record_use(record.id, audio_s=session.audio_s)

    async def _watch_keys(self, every_s: float = 1.0) -> None:
        """Close the streams of revoked keys (revoked by the CLI, the admin API or another worker)."""
        assert self.keys is not None
        while True:
            await asyncio.sleep(every_s)
            try:
                revoked = await asyncio.to_thread(self.keys.revoked_ids)
            except KeyStoreError as exc:
                log.error("cannot re-read API keys: %s", exc)
                continue
            for session in [s for s in self.sessions if s.key_id in revoked]:
                log.warning("closing stream %s: its key %s was revoked", session.name, session.key_id)
                asyncio.create_task(session.refuse("key_revoked", "this key was revoked", CLOSE_KEY_REVOKED))

    def _check_exposure(self) -> None:
        if not self.settings.auth and not is_loopback(self.settings.host):
            raise WorkerError(
                f"refusing to serve {self.settings.host} without authentication: "
                "--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost)"
            )

    def _ssl_context(self) -> ssl.SSLContext | None:
        cert, key = self.settings.tls_cert, self.settings.tls_key
        if not cert and not key:
            return None
        if not (cert and key):
            raise WorkerError("TLS needs both --tls-cert FILE and --tls-key FILE")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise WorkerError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
        return context


def default_threads() -> int:
    """Engine threads when none are configured: every core but one."""
    return max(1, (os.cpu_count() or 2) - 1)


class WorkerError(NotSoundError, RuntimeError):
    """The worker cannot start as configured; the message says what to change."""


async def run_serve(settings: WorkerSettings, **worker_kwargs: Any) -> None:
    """``notsound serve``: run until SIGINT or SIGTERM, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Worker(settings, **worker_kwargs) as worker:
        if worker.new_admin_key:
            print(f"admin key (shown once, store it now): {worker.new_admin_key}", flush=True)
        print(f"notsound worker listening on {worker.url} (engine {worker.engine.name}, "
              f"started in {worker.startup_s:.1f} s)", flush=True)
        await stop.wait()
        log.info("shutting down: finishing owed finals")
