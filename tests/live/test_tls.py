"""A shared worker's security end to end: wss:// with a private CA, API keys on the stream, admin API.

Everything runs against a real :class:`~live.server.Worker` on loopback port 0
with the fake engine; certificates are made in the test with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.fake_engine import fake_text
from capture.client import ClientError, ClientOptions, StreamClient
from live.keys import KeyStore
from live.server import Worker, WorkerError
from notsound.cli import main
from wire.protocol import (
    CLOSE_KEY_REVOKED,
    CLOSE_TOO_MANY_STREAMS,
    Caption,
    End,
    Error,
    Hello,
    Ready,
    Start,
    decode_worker,
    encode,
)

from .conftest import noise, worker_settings

# -- certificates ----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the worker's certificate is signed by
    cert: Path  # worker certificate chain (PEM) for 127.0.0.1 and localhost
    key: Path  # its private key (PEM)
    other_ca: Path  # a CA that signed nothing the worker has


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _make_ca("notsound test CA")
    other_cert, _ = _make_ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("notsound worker")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Pki(
        ca=_write_pem(folder / "ca.pem", ca_cert.public_bytes(pem)),
        cert=_write_pem(folder / "worker.pem", cert.public_bytes(pem) + ca_cert.public_bytes(pem)),
        key=_write_pem(folder / "worker.key", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        other_ca=_write_pem(folder / "other-ca.pem", other_cert.public_bytes(pem)),
    )


# -- workers and streams -----------------------------------------------------------

MakeWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def make_worker(make_worker, tmp_path) -> MakeWorker:
    """Like conftest's, but with a key store in ``tmp_path/state`` (auth on)."""

    async def _make(**settings) -> Worker:
        settings.setdefault("auth", True)
        settings.setdefault("state_dir", str(tmp_path / "state"))
        return await make_worker("per_call=0.005", **settings)

    return _make


class Stream:
    """An authenticated raw v1 stream whose incoming messages are recorded in the background."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.received: list = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str | None, session: str = "s",
                   ssl_context: ssl.SSLContext | None = None) -> Stream:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await connect(url, additional_headers=headers, compression=None, ssl=ssl_context,
                           open_timeout=10)
        await ws.send(encode(Hello(session=session)))
        return cls(ws)

    async def _read(self) -> None:
        try:
            while True:
                self.received.append(decode_worker(await self.ws.recv()))
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def _wait() -> None:
            while not predicate():
                if self.task.done():
                    raise AssertionError(f"stream closed ({self.ws.close_code}) first: {self.received!r}")
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def utterance(self, utt: int, pcm: np.ndarray, timeout: float = 10.0) -> Caption:
        """Send one utterance and wait for its final."""
        await self.ws.send(encode(Start(utt=utt, t=float(utt))))
        for i in range(0, len(pcm), 16000):
            await self.ws.send(pcm[i:i + 16000].astype("<i2").tobytes())
        await self.ws.send(encode(End(utt=utt)))
        await self.until(lambda: any(isinstance(m, Caption) and m.utt == utt for m in self.received), timeout)
        return next(m for m in self.received if isinstance(m, Caption) and m.utt == utt)

    async def closed(self, timeout: float = 10.0) -> int | None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        return self.ws.close_code

    @property
    def errors(self) -> list[Error]:
        return [m for m in self.received if isinstance(m, Error)]

    async def aclose(self) -> None:
        await self.ws.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def streams() -> AsyncIterator[Callable[..., Awaitable[Stream]]]:
    opened: list[Stream] = []

    async def _open(*args, **kwargs) -> Stream:
        stream = await Stream.open(*args, **kwargs)
        opened.append(stream)
        return stream

    yield _open
    for stream in opened:
        await stream.aclose()


def _key(worker: Worker, name: str = "student", **kw) -> tuple[str, str]:
    """A new stream key in the worker's own folder: (id, plaintext)."""
    record, token = KeyStore(worker.settings.state_dir).create(name=name, **kw)
    return record.id, token


async def _stream_count(worker: Worker) -> int:
    return worker.health()["streams"]


async def _wait_streams(worker: Worker, expected: int, timeout: float = 10.0) -> None:
    async def _poll() -> None:
        while await _stream_count(worker) != expected:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_poll(), timeout)


# -- TLS ---------------------------------------------------------------------------


async def test_tls_worker_serves_wss_captions_to_a_stream_client_trusting_the_private_ca(pki, make_worker):
    worker = await make_worker(tls_cert=str(pki.cert), tls_key=str(pki.key))
    assert worker.url.startswith("wss://127.0.0.1:")
    _, token = _key(worker)
    clips = [noise(0.4 + 0.1 * i, seed=i) for i in range(3)]
    finals: list[Caption] = []
    client = StreamClient(ClientOptions(url=worker.url, session="tls", key=token, ca_file=pki.ca),
                          on_final=lambda caption, pending: finals.append(caption))
    for i, pcm in enumerate(clips):
        client.resend(i, float(i), pcm)
    stop = asyncio.Event()
    stop.set()  # send what is queued, wait for every final, say bye
    await asyncio.wait_for(client.run(stop), 20)
    assert [(c.utt, c.text) for c in finals] == [(i, fake_text(pcm)) for i, pcm in enumerate(clips)]
    assert client.stats.reconnects == 0 and client.owed == 0


async def test_plain_ws_to_the_tls_port_fails_with_an_exception_not_a_hang(pki, make_worker, streams):
    worker = await make_worker(tls_cert=str(pki.cert), tls_key=str(pki.key))
    _, token = _key(worker)
    plain = worker.url.replace("wss://", "ws://")
    # websockets reports the TLS alert it got instead of HTTP as InvalidMessage; a reset is an OSError.
    # A stall would end in open_timeout's TimeoutError (an OSError too), hence the check after.
    with pytest.raises((InvalidHandshake, OSError)) as info:
        await asyncio.wait_for(connect(plain, additional_headers={"Authorization": f"Bearer {token}"},
                                       open_timeout=10), 15)
    assert not isinstance(info.value, TimeoutError), "the TLS port must refuse plain HTTP, not stall"
    # ...and the worker is unharmed: a wss:// stream still works.
    context = ssl.create_default_context(cafile=str(pki.ca))
    stream = await streams(worker.url, token, ssl_context=context)
    pcm = noise(0.3, 7)
    assert (await stream.utterance(0, pcm)).text == fake_text(pcm)


async def test_client_with_the_wrong_ca_refuses_the_worker_certificate(pki, make_worker):
    worker = await make_worker(tls_cert=str(pki.cert), tls_key=str(pki.key))
    _, token = _key(worker)
    client = StreamClient(ClientOptions(url=worker.url, session="mitm", key=token, ca_file=pki.other_ca),
                          on_final=lambda caption, pending: None)
    client.resend(0, 0.0, noise(0.3, 1))
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(ClientError, match="(?i)certificate") as info:
        await asyncio.wait_for(client.run(stop), 15)
    assert "--ca" in str(info.value)  # says what to do next
    assert client.pending, "nothing was handed to an untrusted server"


@pytest.mark.parametrize("which", ["cert only", "key only"])
async def test_worker_with_half_a_tls_configuration_refuses_to_start(pki, which):
    cert, key = (str(pki.cert), "") if which == "cert only" else ("", str(pki.key))
    worker = Worker(worker_settings(tls_cert=cert, tls_key=key))
    with pytest.raises(WorkerError, match="--tls-cert FILE and --tls-key FILE"):
        await worker.start()


async def test_worker_with_a_certificate_that_does_not_match_its_key_refuses_to_start(pki, tmp_path):
    stray = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    wrong_key = _write_pem(tmp_path / "stray.key", stray)
    worker = Worker(worker_settings(tls_cert=str(pki.cert), tls_key=str(wrong_key)))
    with pytest.raises(WorkerError, match="cannot load TLS certificate"):
        await worker.start()


# -- API keys on the stream -------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer ns_0123abcd_" + "A" * 43, "Basic dXNlcjpwYXNz"])
async def test_missing_or_unknown_key_gets_401_before_the_upgrade(make_worker, header):
    worker = await make_worker()
    headers = {"Authorization": header} if header else None
    with pytest.raises(InvalidStatus) as info:
        await connect(worker.url, additional_headers=headers, open_timeout=5)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in json.loads(response.body)["error"]
    assert worker.health()["streams"] == 0


async def test_revoking_a_key_from_another_store_closes_its_stream_4007_and_spares_other_keys(
        make_worker, streams):
    worker = await make_worker()
    doomed_id, doomed = _key(worker, "leaver")
    _, kept = _key(worker, "stayer")
    victim = await streams(worker.url, doomed, session="victim")
    other = await streams(worker.url, kept, session="other")
    for stream, seed in ((victim, 1), (other, 2)):
        pcm = noise(0.3, seed)
        assert (await stream.utterance(0, pcm)).text == fake_text(pcm)

    # The CLI or another worker revokes the key: a separate store on the same folder.
    assert KeyStore(worker.settings.state_dir).revoke(doomed_id)
    assert await victim.closed(timeout=30) == CLOSE_KEY_REVOKED  # the worker re-reads keys every second
    assert [e.code for e in victim.errors] == ["key_revoked"]

    pcm = noise(0.5, 3)  # the other key's stream goes on
    assert (await other.utterance(1, pcm)).text == fake_text(pcm)
    with pytest.raises(InvalidStatus) as info:  # and the revoked key cannot come back
        await connect(worker.url, additional_headers={"Authorization": f"Bearer {doomed}"}, open_timeout=5)
    assert info.value.response.status_code == 401


async def test_streams_over_the_per_key_limit_get_an_error_and_close_4006(make_worker, streams):
    worker = await make_worker(max_streams_per_key=2)
    _, token = _key(worker)
    _, capped = _key(worker, "one stream only", max_streams=1)
    first = await streams(worker.url, token, session="a")
    second = await streams(worker.url, token, session="b")
    await first.until(lambda: any(isinstance(m, Ready) for m in first.received))
    await second.until(lambda: any(isinstance(m, Ready) for m in second.received))

    third = await streams(worker.url, token, session="c")
    assert await third.closed() == CLOSE_TOO_MANY_STREAMS
    assert [e.code for e in third.errors] == ["too_many_streams"]
    assert "limit 2" in third.errors[0].message

    alone = await streams(worker.url, capped, session="d")  # the key's own limit beats the default
    await alone.until(lambda: any(isinstance(m, Ready) for m in alone.received))
    extra = await streams(worker.url, capped, session="e")
    assert await extra.closed() == CLOSE_TOO_MANY_STREAMS

    pcm = noise(0.3, 4)  # the streams within the limit are served
    assert (await second.utterance(0, pcm)).text == fake_text(pcm)
    await first.aclose()  # a slot frees up when a stream ends
    await _wait_streams(worker, 2)
    again = await streams(worker.url, token, session="f")
    assert (await again.utterance(0, pcm)).text == fake_text(pcm)


async def test_no_auth_on_a_public_address_is_refused():
    worker = Worker(worker_settings(auth=False, host="0.0.0.0"))
    with pytest.raises(WorkerError, match="loopback"):
        await worker.start()


def test_cli_serve_no_auth_on_a_public_address_exits_with_a_one_line_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    code = main(["serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", "--engine", "fake"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("notsound: refusing to serve 0.0.0.0 without authentication")
    assert "Traceback" not in err


def _http(method: str, url: str, token: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_admin_api_over_http_creates_a_key_that_then_streams(make_worker, streams):
    worker = await make_worker()
    admin = worker.new_admin_key  # minted on first start, as `notsound serve` prints it
    assert admin
    base = f"http://127.0.0.1:{worker.port}/admin/keys"

    status, body = await asyncio.to_thread(_http, "POST", base + "?name=room+101&max_streams=3", admin)
    assert status == 201, body
    token, record = body["key"], body["record"]
    assert record["name"] == "room 101" and record["max_streams"] == 3 and not record["admin"]

    stream = await streams(worker.url, token, session="room-101")
    pcm = noise(0.4, 5)
    assert (await stream.utterance(0, pcm)).text == fake_text(pcm)

    status, _ = await asyncio.to_thread(_http, "POST", base + "?name=sneaky", token)
    assert status == 403, "a stream key may not make keys"
    status, listed = await asyncio.to_thread(_http, "GET", base, admin)
    assert status == 200 and record["id"] in {k["id"] for k in listed["keys"]}
    assert all("key" not in k and "sha256" not in k for k in listed["keys"])

    status, _ = await asyncio.to_thread(_http, "DELETE", f"{base}/{record['id']}", admin)
    assert status == 200
    assert await stream.closed(timeout=5) == CLOSE_KEY_REVOKED
