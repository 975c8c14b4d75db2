"""The SenseVoice engine on a tiny random-weight model directory built with FunASR's classes.

The weights are random, so the text is nonsense; what these tests pin down is
everything around it: loading through the real FunASR code path, one batched
``generate`` per engine call, clean transcripts, int8, and the errors a user
sees when the model cannot be found.
"""

from __future__ import annotations

import http.server
import json
import logging
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
import yaml

from bench.sensevoice_random import SPECIAL_TAGS, build_random_sensevoice
from models import EngineError, EngineOptions, ModelNotFoundError, Transcript, create_engine
from models.sensevoice import LANGUAGES, MIN_SAMPLES, SenseVoiceEngine
from models.text import EMOTIONS, strip_emoji
from tests.speech import have_espeak, synth


def _assert_clean(transcript: Transcript) -> None:
    assert isinstance(transcript.text, str)
    assert "<|" not in transcript.text and "|>" not in transcript.text
    assert strip_emoji(transcript.text) == transcript.text
    assert transcript.text == " ".join(transcript.text.split())
    assert transcript.lang in LANGUAGES - {"auto", "nospeech"} | {""}
    assert transcript.emotion in EMOTIONS | {""}
    assert isinstance(transcript.events, tuple)
    assert all(isinstance(event, str) and event != "Speech" for event in transcript.events)


def test_espeak_is_installed_for_these_tests() -> None:
    assert have_espeak(), "espeak-ng and sox are required: apt-get install espeak-ng sox"


def test_tiny_directory_has_the_real_layout_and_a_consistent_vocabulary(sensevoice_dir) -> None:
    import sentencepiece as spm
    import torch

    config = yaml.safe_load((sensevoice_dir / "config.yaml").read_text())
    assert config["model"] == "SenseVoiceSmall"
    assert config["encoder"] == "SenseVoiceEncoderSmall"
    assert config["tokenizer"] == "SentencepiecesTokenizer"
    assert config["frontend"] == "WavFrontend"
    assert config["encoder_conf"]["num_blocks"] == 2 and config["encoder_conf"]["output_size"] == 64
    pieces = spm.SentencePieceProcessor(model_file=str(sensevoice_dir / "bpe.model"))
    assert all(pieces.piece_to_id(tag) != pieces.unk_id() for tag in SPECIAL_TAGS)
    assert pieces.get_piece_size() == 256
    state = torch.load(sensevoice_dir / "model.pt", map_location="cpu")
    assert state["ctc.ctc_lo.weight"].shape == (256, 64)
    mvn = (sensevoice_dir / "am.mvn").read_text().split()
    assert mvn.count("0") >= 560 and mvn.count("1") >= 560


def test_builder_is_reproducible_from_its_seed(sensevoice_dir, tmp_path) -> None:
    import torch

    again = build_random_sensevoice(tmp_path / "again", seed=0)
    other = build_random_sensevoice(tmp_path / "other", seed=1)
    weights = [
        torch.load(d / "model.pt", map_location="cpu") for d in (sensevoice_dir, again, other)
    ]
    key = "encoder.encoders0.0.self_attn.linear_q_k_v.weight"
    assert torch.equal(weights[0][key], weights[1][key])
    assert not torch.equal(weights[0][key], weights[2][key])
    assert (again / "bpe.model").read_bytes() == (sensevoice_dir / "bpe.model").read_bytes()


def test_tiny_model_loads_through_the_engine_on_cpu(sensevoice_engine, sensevoice_dir) -> None:
    assert sensevoice_engine.device == "cpu"
    assert sensevoice_engine.precision == "fp32"
    assert sensevoice_engine.model_dir == sensevoice_dir
    assert sensevoice_engine.model_ref == str(sensevoice_dir)


def test_registry_builds_the_sensevoice_engine(sensevoice_dir) -> None:
    engine = create_engine("sensevoice", EngineOptions(model=str(sensevoice_dir)))
    assert isinstance(engine, SenseVoiceEngine)
    assert engine.name == "sensevoice"


def test_three_clips_are_transcribed_in_one_generate_call(
    sensevoice_engine, sensevoice_clips
) -> None:
    seconds = [len(clip) / 16000 for clip in sensevoice_clips]
    assert all(0.5 <= s <= 3.0 for s in seconds) and len(set(seconds)) == 3
    before = list(sensevoice_engine.calls)

    transcripts = sensevoice_engine.transcribe(sensevoice_clips, "auto")

    assert sensevoice_engine.calls == [*before, 3]
    assert len(transcripts) == 3
    for transcript in transcripts:
        _assert_clean(transcript)
    assert any(t.text for t in transcripts)


def test_batched_results_keep_input_order_and_repeat_exactly(
    sensevoice_engine, sensevoice_clips
) -> None:
    batched = sensevoice_engine.transcribe(sensevoice_clips, "auto")
    one_by_one = [sensevoice_engine.transcribe([clip], "auto")[0] for clip in sensevoice_clips]
    assert batched == one_by_one
    assert sensevoice_engine.transcribe(sensevoice_clips[::-1], "auto") == batched[::-1]


def test_empty_and_too_short_clips_give_empty_text(sensevoice_engine, sensevoice_clips) -> None:
    empty = np.zeros(0, dtype=np.int16)
    blip = np.ones(MIN_SAMPLES - 1, dtype=np.float32) * 0.1
    before = len(sensevoice_engine.calls)

    assert sensevoice_engine.transcribe([empty, blip], "auto") == [Transcript(""), Transcript("")]
    assert len(sensevoice_engine.calls) == before  # nothing to send to the model

    mixed = sensevoice_engine.transcribe([empty, sensevoice_clips[0], blip], "auto")
    assert mixed[0] == Transcript("") and mixed[2] == Transcript("")
    assert mixed[1] == sensevoice_engine.transcribe([sensevoice_clips[0]], "auto")[0]
    assert sensevoice_engine.calls[before] == 1


def test_language_hint_is_reported_when_the_model_tags_none(
    sensevoice_engine, sensevoice_clips
) -> None:
    for transcript in sensevoice_engine.transcribe(sensevoice_clips, "en"):
        _assert_clean(transcript)
        assert transcript.lang  # the model's own tag, else the hint


def test_unsupported_language_is_an_engine_error(sensevoice_engine, sensevoice_clips) -> None:
    with pytest.raises(EngineError, match="language 'fr' not supported.*auto.*en"):
        sensevoice_engine.transcribe(sensevoice_clips[:1], "fr")


def test_int8_loads_and_mostly_agrees_with_fp32(sensevoice_dir, sensevoice_engine) -> None:
    clips = [
        synth("Good morning."),
        synth("Hello there."),
        synth("Questions?"),
        synth("Today we talk about the water cycle."),
        synth("Clouds."),
        synth("Rain falls back to the ground."),
    ]
    int8 = SenseVoiceEngine(
        EngineOptions(model=str(sensevoice_dir), device="cpu", precision="int8")
    )
    int8.load()
    assert int8.precision == "int8"

    quantized = [t.text for t in int8.transcribe(clips, "auto")]
    reference = [t.text for t in sensevoice_engine.transcribe(clips, "auto")]

    same = sum(q == r for q, r in zip(quantized, reference, strict=True))
    cer = jiwer.cer(reference, quantized)
    print(f"int8 vs fp32 on {len(clips)} clips: {same} identical, character error rate {cer:.3f}")
    # random weights give flat logits, so quantisation noise flips some argmax tokens
    assert cer < 0.15


def test_missing_directory_raises_model_not_found_with_hint(tmp_path) -> None:
    engine = SenseVoiceEngine(EngineOptions(model=str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(ModelNotFoundError) as caught:
        engine.load()
    message = str(caught.value)
    assert str(tmp_path / "nope") in message and "not found" in message
    assert "config.yaml and model.pt" in message
    assert "--model DIR" in message and "--model iic/SenseVoiceSmall" in message


def test_directory_without_weights_raises_model_not_found(sensevoice_dir, tmp_path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(sensevoice_dir, partial)
    (partial / "model.pt").unlink()
    with pytest.raises(ModelNotFoundError, match=r"has no model\.pt .*--model DIR"):
        SenseVoiceEngine(EngineOptions(model=str(partial), device="cpu")).load()


def test_weights_that_do_not_fit_the_config_fail_loudly(sensevoice_dir, tmp_path) -> None:
    other = build_random_sensevoice(tmp_path / "narrow", width=32, seed=1)
    shutil.copy(sensevoice_dir / "model.pt", other / "model.pt")
    with pytest.raises(EngineError, match="could not load the SenseVoice model"):
        SenseVoiceEngine(EngineOptions(model=str(other), device="cpu")).load()


def test_weights_missing_from_model_pt_fail_loudly(sensevoice_dir, tmp_path) -> None:
    import torch

    broken = shutil.copytree(sensevoice_dir, tmp_path / "broken")
    state = torch.load(broken / "model.pt", map_location="cpu")
    del state["encoder.tp_norm.weight"]
    torch.save(state, broken / "model.pt")
    with pytest.raises(EngineError, match=r"model\.pt lacks 1 weight.*encoder\.tp_norm\.weight"):
        SenseVoiceEngine(EngineOptions(model=str(broken), device="cpu")).load()


class _NoSuchModel(http.server.BaseHTTPRequestHandler):
    """A model hub that knows no models (ModelScope's JSON error shape)."""

    def do_GET(self) -> None:
        body = json.dumps({"Code": 10010205001, "Message": "model not found"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchModel)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "cache"))
    try:
        yield server.server_address[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hub_id_that_cannot_be_downloaded_raises_model_not_found_with_hint(empty_hub) -> None:
    engine = SenseVoiceEngine(EngineOptions(device="cpu"))
    with pytest.raises(ModelNotFoundError) as caught:
        engine.load()
    message = str(caught.value)
    assert "could not download iic/SenseVoiceSmall from the model hub" in message
    assert "404" in message
    assert "modelscope download --model iic/SenseVoiceSmall --local_dir DIR" in message
    assert "--model DIR" in message


@pytest.mark.parametrize(
    ("device", "precision", "match"),
    [
        ("cpu", "fp16", "fp16 needs a CUDA GPU"),
        ("cpu", "bf16", "precision 'bf16' not supported"),
        ("tpu", "fp32", "device 'tpu' not supported"),
    ],
)
def test_unsupported_device_and_precision_are_engine_errors(
    sensevoice_dir, device, precision, match
) -> None:
    options = EngineOptions(model=str(sensevoice_dir), device=device, precision=precision)
    with pytest.raises(EngineError, match=match):
        SenseVoiceEngine(options).load()


def test_loading_leaves_threads_random_state_and_log_alone(sensevoice_dir, caplog) -> None:
    import torch

    caplog.set_level(logging.DEBUG)

    threads = torch.get_num_threads()
    random.seed(1234)
    expected = (random.random(), np.random.default_rng(0).random())
    random.seed(1234)

    SenseVoiceEngine(EngineOptions(model=str(sensevoice_dir), device="cpu")).load()

    assert (random.random(), np.random.default_rng(0).random()) == expected
    assert torch.get_num_threads() == threads  # funasr alone would set 4
    assert [r.getMessage() for r in caplog.records if r.name == "root"] == []


_COLD_START = """
import logging, sys, time, warnings
import numpy as np
import torch  # torch adds warning filters of its own when imported
from models.base import EngineOptions
from models.sensevoice import SenseVoiceEngine

root = logging.getLogger()
before = (list(root.handlers), root.level, list(warnings.filters))
engine = SenseVoiceEngine(EngineOptions(model=sys.argv[1], device="cpu"))
engine.load()
started = time.perf_counter()
engine.transcribe([np.zeros(16000, dtype=np.float32)], "auto")
after = (list(root.handlers), root.level, list(warnings.filters))
print(before == after, f"{engine.load_seconds:.2f}", f"{time.perf_counter() - started:.2f}")
"""


def test_cold_start_leaves_logging_and_warning_filters_alone(sensevoice_dir) -> None:
    # a fresh process: importing funasr calls logging.basicConfig and filterwarnings("ignore")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _COLD_START, str(sensevoice_dir)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    unchanged, load_s, transcribe_s = out.stdout.split()
    print(f"cold start: load {load_s}s (funasr import included), first transcribe {transcribe_s}s")
    assert unchanged == "True"
    assert out.stdout.count("\n") == 1  # funasr printed nothing of its own to stdout


def test_threads_option_sets_torch_threads(sensevoice_dir) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        SenseVoiceEngine(EngineOptions(model=str(sensevoice_dir), device="cpu", threads=1)).load()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_describe_says_where_the_model_comes_from(sensevoice_dir, tmp_path) -> None:
    assert SenseVoiceEngine.describe().startswith("hub iic/SenseVoiceSmall (cached in ")
    assert SenseVoiceEngine.describe(str(sensevoice_dir)) == f"directory {sensevoice_dir}"
    assert SenseVoiceEngine.describe(str(tmp_path / "x")).endswith("(not found)")


def test_importing_the_engine_module_imports_neither_funasr_nor_torch() -> None:
    code = "import sys, models.sensevoice; print('funasr' in sys.modules, 'torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
