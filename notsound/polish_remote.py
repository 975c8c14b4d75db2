"""``notsound polish SESSION --server URL``: the windows decoded by a shared worker (feature ``polish``).

:class:`RemoteDecoder` is the :class:`~notsound.polish.WindowDecoder` of a
worker: one job at a time over one WebSocket (each window's prompt is the
text of the window before it, as on this machine), the job's PCM in 1 s
frames. The worker decodes it at its lowest priority, so a window may wait
while lectures are being captioned; there is no answer timeout (the
connection's pings tell a dead worker). A dropped connection, or a worker
going away, is retried with backoff and the window not answered is sent
again; the work file and lock of :func:`~notsound.polish.polish_session`
keep a killed polish resumable exactly as a local one.
"""

from __future__ import annotations

import itertools
import logging
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from common.audio import SAMPLE_RATE
from models import DecodeHints, Segment
from wire.protocol import (
    FEATURE_POLISH,
    MAX_AUDIO_FRAME_BYTES,
    MAX_CONTEXT,
    MAX_POLISH_S,
    Error,
    Hello,
    Polish,
    Polished,
    PolishEnd,
    Ready,
    clean_vocabulary,
    decode_worker,
    encode,
)

from .polish import PolishError

__all__ = ["RemoteDecoder", "RETRIED_CLOSES"]

log = logging.getLogger(__name__)

#: close codes after which the same window is sent again on a new connection: abnormal
#: closure, worker going away or restarting, idle, engine failure, overloaded
RETRIED_CLOSES = frozenset({1001, 1006, 1011, 1012, 1013, 4005, 4008, 4009})


class _Retry(Exception):
    """The connection went away in a way worth another try."""


class RemoteDecoder:
    """Polish windows decoded by the worker at ``url``; see the module docstring.

    Args:
        url: ``ws://`` or ``wss://`` worker URL.
        key: API key (``Authorization: Bearer``), or None on a worker without auth.
        ca_file: CA bundle for a ``wss://`` worker with a private certificate.
        session: the session's name, for the worker's log.
        attempts: connections tried for one window before giving up.
    """

    def __init__(self, url: str, *, key: str | None = None, ca_file: Path | None = None,
                 session: str = "polish", attempts: int = 6, backoff_s: float = 0.5,
                 open_timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep):
        self.url = url
        self.key = key
        self.ca_file = ca_file
        self.session = session if _session_name_ok(session) else "polish"
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.open_timeout_s = open_timeout_s
        self.sleep = sleep
        self.ready: Ready | None = None
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._jobs = itertools.count()

    # -- WindowDecoder ---------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """The worker's engine and model (its beam is its own: ``null``)."""
        ready = self._retrying(lambda ws: self.ready)
        assert ready is not None
        return {"engine": ready.engine, "model": ready.model, "beam": None}

    def decode(self, audio: np.ndarray, offset: float, language: str, hints: DecodeHints) -> list[Segment]:
        limit = int(MAX_POLISH_S * SAMPLE_RATE)
        if len(audio) > limit:  # one caption longer than a window: its tail is what the worker cannot take
            log.warning("the window at %.1f s is %.1f s long: its last %.1f s are left out", offset,
                        len(audio) / SAMPLE_RATE, (len(audio) - limit) / SAMPLE_RATE)
            audio = audio[:limit]
        request = dict(offset=round(offset, 3), language=language, context=hints.context[-MAX_CONTEXT:],
                       vocabulary=clean_vocabulary(hints.vocabulary))
        return self._retrying(lambda ws: self._job(ws, audio, request))

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # -- one job -----------------------------------------------------------------

    def _job(self, ws: ClientConnection, audio: np.ndarray, request: dict) -> list[Segment]:
        job = next(self._jobs)
        ws.send(encode(Polish(job=job, **request)))
        data = np.asarray(audio, dtype="<i2").tobytes()
        for i in range(0, len(data), MAX_AUDIO_FRAME_BYTES):
            ws.send(data[i:i + MAX_AUDIO_FRAME_BYTES])
        ws.send(encode(PolishEnd(job=job)))
        while True:
            msg = decode_worker(ws.recv())
            if isinstance(msg, Polished) and msg.job == job:
                return [Segment(s.start, s.end, s.text, s.lang, s.words) for s in msg.segments]
            if isinstance(msg, Error) and msg.job == job:
                raise PolishError(f"the worker at {self.url} could not polish the window at {request['offset']} s: "
                                  f"{msg.message} ({msg.code}); run the same polish again to retry it")
            if isinstance(msg, Error) and msg.job is None:
                log.warning("worker error: %s (%s)", msg.message, msg.code)  # its close follows

    # -- connections ---------------------------------------------------------------

    def _retrying(self, work: Callable[[ClientConnection], Any]) -> Any:
        for attempt in range(self.attempts):
            try:
                return work(self._connection())
            except (_Retry, TimeoutError, OSError) as exc:
                self._drop()
                log.info("polish: connection to %s lost (%s); trying again", self.url, exc)
                self.sleep(min(10.0, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0))
            except ConnectionClosed as exc:
                self._drop()
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                reason = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
                if code not in RETRIED_CLOSES:
                    raise PolishError(f"the worker at {self.url} closed the polish: {reason} ({code})") from None
                log.info("polish: worker closed %d (%s); trying again", code, reason)
                self.sleep(min(10.0, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0))
        raise PolishError(f"lost the worker at {self.url} {self.attempts} times in a row: run the same polish "
                          "again to continue after the last window done")

    def _connection(self) -> ClientConnection:
        if self._ws is not None:
            return self._ws
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else None
        try:
            ws = connect(self.url, additional_headers=headers, compression=None, open_timeout=self.open_timeout_s,
                         ssl=self._ssl_context(), max_size=2**20, user_agent_header="notsound-polish")
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise PolishError(f"worker refused the key (HTTP {status}): check --key-file / NOTSOUND_KEY") from None
            raise _Retry(f"HTTP {status}") from None
        except InvalidURI as exc:
            raise PolishError(f"bad worker URL {self.url!r}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise PolishError(f"TLS certificate of {self.url} not trusted: {exc.verify_message}; "
                              "pass --ca FILE for a private CA") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _Retry(str(exc) or type(exc).__name__) from None
        self._ws = ws
        self._hello(ws)
        return ws

    def _hello(self, ws: ClientConnection) -> None:
        ws.send(encode(Hello(session=self.session)))
        first = decode_worker(ws.recv(timeout=self.open_timeout_s))
        if not isinstance(first, Ready):
            raise PolishError(f"worker answered {first.type} to hello: {getattr(first, 'message', '')}")
        if FEATURE_POLISH not in first.features:
            self.close()
            offered = ", ".join(first.features) or "none"
            raise PolishError(f"the worker at {self.url} does not offer the `{FEATURE_POLISH}` feature (it offers: "
                              f"{offered}): it is older than this client or has [worker] polish = false; "
                              "upgrade it, or polish on this machine without --server")
        self.ready = first
        self.connects += 1

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def _session_name_ok(name: str) -> bool:
    """Whether ``name`` is a valid ``hello.session``."""
    return 0 < len(name) <= 128 and all(c.isalnum() or c in "-_.:" for c in name) and not name.startswith(".")
