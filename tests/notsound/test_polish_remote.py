"""``notsound polish --server``: the windows decoded by a worker (feature ``polish``), beside a live stream."""

from __future__ import annotations

import asyncio

import pytest

from bench.fake_engine import FakeEngine, fake_text
from library.folder import POLISH_WORK, POLISHED, read_meta
from live.server import Worker, WorkerSettings
from models import EngineOptions
from notsound.polish import PolishError, polish_session
from notsound.polish_remote import RemoteDecoder
from tests.live.conftest import RawClient, noise

from .test_polish import lecture_session


def settings(**kw) -> WorkerSettings:
    return WorkerSettings(**{"host": "127.0.0.1", "port": 0, "engine": "fake", "warmup": False, "auth": False,
                             "calibrate": False, "partial_every_s": 0.3, **kw})


def local_layer(tmp_path) -> bytes:
    folder = lecture_session(tmp_path / "local")
    polish_session(folder, FakeEngine(EngineOptions()), window_s=5.0)
    return (folder / POLISHED).read_bytes()


class DroppingEngine(FakeEngine):
    """The fake engine; on its ``drop_at``-th polish window the worker's connections are cut
    (before that window's answer can go out)."""

    def __init__(self, drop_at: int):
        super().__init__(EngineOptions(model="per_call=0.005"))
        self.drop_at = drop_at
        self.windows = 0
        self.worker: Worker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def transcribe_long(self, audio, language="auto", hints=None):
        self.windows += 1
        if self.windows == self.drop_at:
            sessions = list(self.worker.sessions)
            self.loop.call_soon_threadsafe(lambda: [s.ws.transport.abort() for s in sessions])
        return super().transcribe_long(audio, language)


async def test_polish_over_the_wire_writes_the_local_layer_while_a_lecture_is_captioned_beside_it(tmp_path):
    expected = local_layer(tmp_path)
    folder = lecture_session(tmp_path / "remote")
    clips = [noise(0.8, seed) for seed in range(8)]
    async with Worker(settings(), engine=FakeEngine(EngineOptions(model="per_call=0.005"))) as worker:
        lecture = await RawClient.open(worker.url, session="lecture")

        async def speak() -> None:
            for utt, clip in enumerate(clips):
                await lecture.send_utterance(utt, clip, t=float(utt), pace=0.01)

        speaking = asyncio.create_task(speak())
        decoder = RemoteDecoder(worker.url, session="remote")
        result = await asyncio.to_thread(polish_session, folder, decoder, window_s=5.0)
        await asyncio.to_thread(decoder.close)  # a blocking close: the worker runs on this loop
        await speaking
        finals = await lecture.wait_finals(len(clips))
        kinds = list(worker.engine.kinds)
        await lecture.ws.close()
    assert (folder / POLISHED).read_bytes() == expected, "the same layer as a polish on this machine"
    assert [(f.utt, f.text) for f in finals] == [(u, fake_text(c)) for u, c in enumerate(clips)]
    assert kinds.count("polish") == result.windows == result.total >= 3
    assert read_meta(folder)["polished"]["beam"] is None, "the worker's own beam"
    assert not (folder / POLISH_WORK).exists()


async def test_a_dropped_connection_resends_the_window_not_answered_and_the_layer_is_whole(tmp_path):
    expected = local_layer(tmp_path)
    folder = lecture_session(tmp_path / "remote")
    engine = DroppingEngine(drop_at=2)
    async with Worker(settings(), engine=engine) as worker:
        engine.worker, engine.loop = worker, asyncio.get_running_loop()
        decoder = RemoteDecoder(worker.url, session="remote", backoff_s=0.01)
        result = await asyncio.to_thread(polish_session, folder, decoder, window_s=5.0)
        await asyncio.to_thread(decoder.close)  # a blocking close: the worker runs on this loop
    assert (folder / POLISHED).read_bytes() == expected
    assert decoder.connects == 2 and engine.windows == result.windows + 1, "window 2 was decoded again"


async def test_a_worker_without_the_feature_is_named_and_nothing_is_written(tmp_path):
    folder = lecture_session(tmp_path / "remote")
    async with Worker(settings(polish=False), engine=FakeEngine(EngineOptions())) as worker:
        decoder = RemoteDecoder(worker.url)
        with pytest.raises(PolishError, match="does not offer the `polish` feature"):
            await asyncio.to_thread(polish_session, folder, decoder, window_s=5.0)
    assert not (folder / POLISHED).exists() and not (folder / POLISH_WORK).exists()


async def test_a_worker_that_cannot_be_reached_gives_up_with_a_message(tmp_path):
    folder = lecture_session(tmp_path / "remote")
    async with Worker(settings(), engine=FakeEngine(EngineOptions())) as worker:
        url = worker.url
    decoder = RemoteDecoder(url, attempts=2, backoff_s=0.0)
    with pytest.raises(PolishError, match="lost the worker .* 2 times"):
        await asyncio.to_thread(polish_session, folder, decoder, window_s=5.0)
    assert not (folder / POLISHED).exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--engine", "whisper"], "with --server the worker's engine polishes"),
    (["--window-s", "30"], "--window-s must be between 5 and 29.4 seconds"),
])
def test_polish_server_refuses_local_engine_flags_and_windows_the_worker_cannot_take(tmp_path, capsys, flags,
                                                                                      message):
    from notsound.cli import main

    folder = lecture_session(tmp_path / "s")
    code = main(["polish", str(folder), "--server", "ws://127.0.0.1:9/v1/stream", *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert not (folder / POLISHED).exists()
