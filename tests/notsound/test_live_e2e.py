"""``notsound live`` end to end: files through VAD, the client, a real worker and the journal."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from library.folder import read_finals
from live.server import WorkerSettings
from notsound.liverun import LiveSettings, run_live
from tests import speech
from tests.live.processes import start_serve

pytestmark = pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lecture_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lecture") / "lecture.wav"
    return speech.write_wav(path, speech.lecture(speech.PARAGRAPH, gap_s=1.2))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def lecture_mp3(lecture_wav: Path) -> Path:
    out = lecture_wav.with_suffix(".mp3")
    _ffmpeg("-i", str(lecture_wav), "-codec:a", "libmp3lame", "-b:a", "64k", str(out))
    return out


@pytest.fixture(scope="module")
def lecture_mp4(lecture_wav: Path) -> Path:
    out = lecture_wav.with_suffix(".mp4")
    _ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=160x120:r=10", "-i", str(lecture_wav),
            "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out))
    return out


def _whisper_settings() -> WorkerSettings:
    return WorkerSettings(engine="whisper", port=0, warmup=False, threads=2)


def _transcript_text(session_dir: Path) -> str:
    return " ".join(c.text for c in read_finals(session_dir / "transcript.jsonl"))


@pytest.mark.parametrize("fixture", ["lecture_mp3", "lecture_mp4"])
async def test_file_input_fast_gives_the_paragraph(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    settings = LiveSettings(input=path, fast=True, out=tmp_path, session="file", plain=True, notes=False)
    result = await run_live(settings, _whisper_settings())
    captions = read_finals(result.session_dir / "transcript.jsonl")
    assert len(captions) == len(speech.PARAGRAPH)
    assert [c.utt for c in captions] == list(range(len(captions)))
    error = speech.wer(" ".join(speech.PARAGRAPH), _transcript_text(result.session_dir))
    assert error <= 0.30, error
    meta = json.loads((result.session_dir / "session.json").read_text())
    assert meta["engine"] == "whisper" and "ended" in meta
    assert not list((result.session_dir / "pending").iterdir()), "spool must be empty once all finals are in"


async def test_file_input_real_time_pacing_gives_the_paragraph_with_events(lecture_mp3, tmp_path):
    events = tmp_path / "events.jsonl"
    settings = LiveSettings(input=lecture_mp3, fast=False, out=tmp_path, session="rt", plain=True,
                            events=events, notes=False)
    started = time.monotonic()
    result = await run_live(settings, _whisper_settings())
    elapsed = time.monotonic() - started
    duration = len(speech.lecture(speech.PARAGRAPH, gap_s=1.2)) / 16000
    assert elapsed >= duration * 0.9, "real-time pacing must not run much faster than the audio"
    assert speech.wer(" ".join(speech.PARAGRAPH), _transcript_text(result.session_dir)) <= 0.30
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    finals = [r for r in rows if r["type"] == "final"]
    assert len(finals) == len(speech.PARAGRAPH)
    assert any(r["type"] == "partial" for r in rows), "a real-time stream gets partials"
    assert all(r["t"] >= 0 for r in rows) and [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    assert len(result.latencies) == len(speech.PARAGRAPH)


def _client_key(state_dir: Path) -> Path:
    """A key the worker on ``state_dir`` accepts, written to a key file as a user would."""
    from live.keys import KeyStore

    _, token = KeyStore(state_dir).create(name="test client")
    path = state_dir / "client.key"
    path.write_text(token + "\n")
    return path


def _start_worker(state_dir: Path, model: str = "rtf=0.4", port: int = 0) -> tuple[subprocess.Popen, int]:
    """A worker process on ``port`` (0: a free one; the port it got is returned)."""
    return start_serve(["--engine", "fake", "--model", model, "--no-warmup", "--state-dir", str(state_dir)],
                       state_dir / "worker.log", port=port, env=dict(os.environ))


async def test_worker_killed_mid_lecture_and_restarted_loses_nothing(lecture_wav, tmp_path):
    state = tmp_path / "state"
    key_file = _client_key(state)
    worker, port = _start_worker(state)
    settings = LiveSettings(server=f"ws://127.0.0.1:{port}/v1/stream", input=lecture_wav, fast=True,
                            out=tmp_path, session="crash", plain=True, notes=False, max_owed=2,
                            key_file=key_file)
    live = asyncio.create_task(run_live(settings, WorkerSettings()))
    try:
        transcript = tmp_path / "crash" / "transcript.jsonl"
        while not read_finals(transcript):  # wait for the first final, then kill mid-lecture
            await asyncio.sleep(0.05)
            assert not live.done(), live
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        await asyncio.sleep(1.0)  # the worker stays down a while; the client keeps its audio
        worker, _ = await asyncio.to_thread(_start_worker, state, port=port)  # same address
        result = await asyncio.wait_for(live, 120)
    finally:
        worker.kill()
        worker.wait()
    captions = read_finals(result.session_dir / "transcript.jsonl")
    lines = (result.session_dir / "transcript.jsonl").read_text().splitlines()
    assert [c.utt for c in captions] == list(range(len(speech.PARAGRAPH)))
    assert len(lines) == len(captions), "no final is journaled twice"
    assert result.reconnects >= 1


async def test_restarted_client_resends_spooled_audio_and_continues_numbering(tmp_path, lecture_wav):
    state = tmp_path / "state"
    key_file = _client_key(state)
    worker, port = _start_worker(state, model="rtf=0")
    try:
        session = tmp_path / "resume"
        pending = session / "pending"
        pending.mkdir(parents=True)
        # What a killed client leaves behind: utt 0 journaled, utt 1 spooled without a final.
        (session / "transcript.jsonl").write_text(json.dumps(
            {"type": "final", "utt": 0, "start": 0.5, "end": 3.0, "text": "earlier", "lang": "en",
             "emotion": "", "events": []}) + "\n" + '{"type":"final","utt":')  # torn tail
        spooled = speech.synth("this sentence was spoken before the crash")
        (pending / "1.pcm").write_bytes(spooled.astype("<i2").tobytes())
        (pending / "1.json").write_text(json.dumps({"utt": 1, "start": 4.0, "ended": False}))
        settings = LiveSettings(server=f"ws://127.0.0.1:{port}/v1/stream", input=lecture_wav, fast=True,
                                out=tmp_path, session="resume", plain=True, notes=False,
                                key_file=key_file)
        result = await run_live(settings, WorkerSettings())
    finally:
        worker.kill()
        worker.wait()
    captions = read_finals(result.session_dir / "transcript.jsonl")
    assert [c.utt for c in captions] == list(range(2 + len(speech.PARAGRAPH)))
    from bench.fake_engine import fake_text

    assert captions[1].text == fake_text(spooled) and captions[1].start == 4.0
    assert captions[2].start >= captions[1].end, "the resumed session's clock continues"
    assert not list(pending.iterdir())


def test_cli_live_with_fake_engine_prints_finals_and_session_folder(lecture_wav, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "notsound.cli", "live", "--input", str(lecture_wav), "--fast",
         "--engine", "fake", "--out", str(tmp_path), "--session", "cli", "--no-notes"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NOTSOUND_CONFIG": str(tmp_path / "none.toml")},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == len(speech.PARAGRAPH)
    assert all(line.split("] ", 1)[1].startswith("fake ") for line in lines)
    closing = [line for line in proc.stderr.splitlines() if line.startswith("session folder:")]
    assert closing and str(tmp_path / "cli") in closing[0]
    assert re.search(r"\d+\.\d× real time\)$", closing[0]) and "latency" not in closing[0], closing[0]


def test_cli_rejects_fast_without_input_and_missing_file(tmp_path):
    from notsound.cli import main

    assert main(["live", "--fast", "--engine", "fake"]) == 2
    assert main(["live", "--input", str(tmp_path / "nope.wav"), "--engine", "fake"]) == 2


def test_journal_never_duplicates_and_skips_torn_line(tmp_path):
    from library.folder import Journal
    from wire.protocol import Caption

    journal = Journal(tmp_path)
    assert journal.append(Caption(0, 0.0, 1.0, "a"))
    assert not journal.append(Caption(0, 0.0, 1.0, "a again"))
    journal.close()
    with open(tmp_path / "transcript.jsonl", "ab") as fh:
        fh.write(b'{"utt": 1, "start": 1.0, "en')
    again = Journal(tmp_path)
    assert again.next_utt == 1
    assert again.append(Caption(1, 1.0, 2.0, "b"))
    again.close()
    assert [c.text for c in read_finals(tmp_path / "transcript.jsonl")] == ["a", "b"]
    assert np.all(np.array([len(line) for line in (tmp_path / "transcript.jsonl").read_bytes().split(b"\n")[:-1]]) > 0)


def _live_cli(wav: Path, out: Path, session: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "notsound.cli", "live", "--input", str(wav), "--fast", "--engine", "fake",
         "--out", str(out), "--session", session],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "NOTSOUND_CONFIG": str(out / "none.toml"), **env},
    )


def _llm_env(url: str, key: str) -> dict[str, str]:
    return {"NOTSOUND_LLM_BASE_URL": url, "NOTSOUND_LLM_API_KEY": key, "NOTSOUND_LLM_MODEL": "test-model",
            "NOTSOUND_LLM_DEADLINE_S": "20", "NOTSOUND_NOTES_POLL_S": "0.1", "DEEPSEEK_API_KEY": ""}


def test_live_keeps_llm_notes_through_an_openai_compatible_server(lecture_wav, tmp_path):
    from tests.summarizer.llm_server import FakeLLM

    with FakeLLM() as llm:
        proc = _live_cli(lecture_wav, tmp_path, "notes", _llm_env(llm.url, "sk-live-canary"))
    assert proc.returncode == 0, proc.stderr
    notes = (tmp_path / "notes" / "notes.md").read_text()
    assert notes.startswith("# ") and "## " in notes
    assert llm.answered, "the notes update went to the configured endpoint"
    body = llm.answered[-1].json
    assert body["model"] == "test-model" and "tools" not in body
    sent = "".join(m["content"] for m in body["messages"])
    assert "fake " in sent, "the journaled captions are what the notes are made from"
    assert all("sk-live-canary" not in r.body.decode() for r in llm.requests)


def test_live_with_a_refused_llm_key_still_captions_everything(lecture_wav, tmp_path):
    from tests.summarizer.llm_server import FakeLLM

    with FakeLLM(script=[401] * 10) as llm:
        proc = _live_cli(lecture_wav, tmp_path, "refused", _llm_env(llm.url, "sk-bad"))
    assert proc.returncode == 0, proc.stderr
    captions = read_finals(tmp_path / "refused" / "transcript.jsonl")
    assert [c.utt for c in captions] == list(range(len(speech.PARAGRAPH)))
    assert len(llm.requests) == 1, "a refused key stops LLM calls for the session"
    assert "401" in proc.stderr or "refused" in proc.stderr.lower() or "key" in proc.stderr.lower()
