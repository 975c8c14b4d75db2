"""A SenseVoiceSmall model directory with random weights, built with FunASR's own classes.

Machines without the model hub still need to exercise the real loading and
inference code. :func:`build_random_sensevoice` writes a directory laid out like
a downloaded ``iic/SenseVoiceSmall``::

    config.yaml          the real model's keys, encoder shrunk unless full_size
    configuration.json   file_path_metas, as on the hub (paths relative to the folder)
    model.pt             state_dict() of funasr's SenseVoiceSmall built from config.yaml
    bpe.model            a sentencepiece model trained on a few lines plus SenseVoice's tags
    am.mvn               identity CMVN (zero shift, unit scale) in Kaldi nnet text format

The text it produces is nonsense, but every step from ``AutoModel(model=DIR)``
to the decoded string is the real one. ``full_size=True`` gives the real
model's shape (50 + 20 blocks, 512 wide, vocabulary of 25,055, ~234 M
parameters) for benchmarks.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
from pathlib import Path

from common.audio import SAMPLE_RATE
from models import EngineError

__all__ = ["build_random_sensevoice", "FULL_SIZE", "SPECIAL_TAGS"]

#: encoder and vocabulary of the real SenseVoiceSmall
FULL_SIZE = {
    "blocks": 50,
    "tp_blocks": 20,
    "width": 512,
    "heads": 4,
    "linear_units": 2048,
    "vocab_size": 25055,
}

#: the rich tags of the real vocabulary, so random output contains them too
SPECIAL_TAGS = tuple(
    f"<|{tag}|>"
    for tag in (
        "zh en yue ja ko nospeech "
        "HAPPY SAD ANGRY NEUTRAL FEARFUL DISGUSTED SURPRISED EMO_UNKNOWN "
        "Speech BGM Applause Laughter Cry Sneeze Breath Cough Sing Speech_Noise Event_UNK "
        "withitn woitn"
    ).split()
)

_TRAINING_TEXT = [
    "good morning everyone, today we talk about the water cycle.",
    "water evaporates from the oceans and rises into the sky.",
    "in the cold air it condenses into small drops and forms clouds.",
    "when the drops become heavy they fall back to the ground as rain.",
    "questions? please write them down, we answer them after the break.",
    "大家好，今天我们讨论水循环。谢谢大家，再见！",
]
_NUM_MELS, _LFR_M, _LFR_N = 80, 7, 6
# room left for pieces learned from the training text before padding starts
_LEARNED_PIECES = 96


#: config.yaml of the real SenseVoiceSmall (inference-relevant keys); the encoder shape is filled in
_CONFIG: dict = {
    "encoder": "SenseVoiceEncoderSmall",
    "encoder_conf": {
        "output_size": 512,
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 50,
        "tp_blocks": 20,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.1,
        "input_layer": "pe",
        "pos_enc_class": "SinusoidalPositionEncoder",
        "normalize_before": True,
        "kernel_size": 11,
        "sanm_shfit": 0,
        "selfattention_layer_type": "sanm",
    },
    "model": "SenseVoiceSmall",
    "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
    "tokenizer": "SentencepiecesTokenizer",
    "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
    "frontend": "WavFrontend",
    "frontend_conf": {
        "fs": SAMPLE_RATE,
        "window": "hamming",
        "n_mels": _NUM_MELS,
        "frame_length": 25,
        "frame_shift": 10,
        "lfr_m": _LFR_M,
        "lfr_n": _LFR_N,
        "cmvn_file": None,
    },
    "specaug": "SpecAugLFR",
    "specaug_conf": {
        "apply_time_warp": False,
        "time_warp_window": 5,
        "time_warp_mode": "bicubic",
        "apply_freq_mask": True,
        "freq_mask_width_range": [0, 30],
        "lfr_rate": _LFR_N,
        "num_freq_mask": 1,
        "apply_time_mask": True,
        "time_mask_width_range": [0, 12],
        "num_time_mask": 1,
    },
    "ctc_conf": {
        "dropout_rate": 0.0,
        "ctc_type": "builtin",
        "reduce": True,
        "ignore_nan_grad": True,
    },
    "normalize": None,
}


def _config(*, blocks: int, tp_blocks: int, width: int, heads: int, linear_units: int) -> dict:
    """config.yaml of SenseVoiceSmall with the encoder shape given."""
    config = copy.deepcopy(_CONFIG)
    config["encoder_conf"].update(
        output_size=width,
        attention_heads=heads,
        linear_units=linear_units,
        num_blocks=blocks,
        tp_blocks=tp_blocks,
    )
    return config


_CONFIGURATION = {
    "framework": "pytorch",
    "task": "auto-speech-recognition",
    "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "file_path_metas": {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"bpemodel": "bpe.model"},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    },
}


def _identity_mvn(dim: int) -> str:
    """Kaldi nnet text with <AddShift> zeros and <Rescale> ones, as funasr's load_cmvn reads it."""
    zeros, ones = " ".join(["0"] * dim), " ".join(["1"] * dim)
    return (
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {zeros} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {ones} ]\n"
        "</Nnet>\n"
    )


def _pseudo_words(count: int) -> list[str]:
    """``count`` distinct pronounceable nonsense words, each a whole-word piece."""
    onsets = "b d f g h k l m n p r s t v w z ch sh th".split()
    vowels = "a e i o u".split()
    codas = ["", "n", "r", "s", "t", "l", "m", "k"]
    syllables = ["".join(p) for p in itertools.product(onsets, vowels, codas)]
    words = itertools.chain(syllables, ("".join(p) for p in itertools.product(syllables, repeat=2)))
    seen: set[str] = set()  # "ba|sha" and "bas|ha" are the same word
    unique = (w for w in words if not (w in seen or seen.add(w)))
    return ["\u2581" + word for word in itertools.islice(unique, count)]


def _train_sentencepiece(vocab_size: int) -> bytes:
    """A unigram sentencepiece model of exactly ``vocab_size`` pieces.

    A few lines of text yield only so many pieces; pseudo-words fill the rest.
    """
    fixed = 3 + len(SPECIAL_TAGS)  # <unk> <s> </s> and the tags
    padding = max(0, vocab_size - fixed - _LEARNED_PIECES)
    for _ in range(4):
        proto = _train_once(vocab_size, _pseudo_words(padding))
        size = _piece_count(proto)
        if size == vocab_size:
            return proto
        padding += vocab_size - size
    raise EngineError(f"could not train a sentencepiece model of {vocab_size} pieces (got {size})")


def _train_once(vocab_size: int, padding: list[str]) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(_TRAINING_TEXT),
            model_writer=model,
            vocab_size=vocab_size,
            user_defined_symbols=list(SPECIAL_TAGS) + padding,
            model_type="unigram",
            hard_vocab_limit=False,
            character_coverage=1.0,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:  # e.g. a vocabulary smaller than the characters of the text
        raise EngineError(f"vocab_size {vocab_size} too small for the tokenizer: {exc}") from exc
    return model.getvalue()


def _write_weights(path: Path, config: dict, *, vocab_size: int, seed: int) -> None:
    """Build SenseVoiceSmall from ``config`` with seeded random weights and save its state."""
    from models.sensevoice import import_funasr

    torch, _ = import_funasr()
    from funasr.models.sense_voice.model import SenseVoiceSmall

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SenseVoiceSmall(
            specaug=config["specaug"],
            specaug_conf=config["specaug_conf"],
            encoder=config["encoder"],
            encoder_conf=config["encoder_conf"],
            ctc_conf=config["ctc_conf"],
            input_size=_NUM_MELS * _LFR_M,
            vocab_size=vocab_size,
            **config["model_conf"],
        )
    torch.save(model.state_dict(), path / "model.pt")


def build_random_sensevoice(
    path: str | Path,
    *,
    blocks: int = 2,
    tp_blocks: int = 1,
    width: int = 64,
    heads: int = 4,
    linear_units: int | None = None,
    vocab_size: int = 256,
    full_size: bool = False,
    seed: int = 0,
) -> Path:
    """Write a random-weight SenseVoiceSmall directory at ``path`` and return it.

    ``blocks``/``tp_blocks`` are the encoder's main and second-stage SANM blocks,
    ``width`` its model dimension, ``linear_units`` the feed-forward size
    (4 x width by default). ``full_size=True`` overrides them all with
    :data:`FULL_SIZE`. The same ``seed`` gives the same weights.
    """
    import yaml  # a dependency of funasr

    if full_size:
        shape = dict(FULL_SIZE)
    else:
        shape = dict(
            blocks=blocks,
            tp_blocks=tp_blocks,
            width=width,
            heads=heads,
            linear_units=linear_units or 4 * width,
            vocab_size=vocab_size,
        )
    if shape["width"] % shape["heads"] or shape["blocks"] < 1 or shape["tp_blocks"] < 0:
        raise EngineError(f"bad encoder shape {shape}: width must divide by heads, blocks >= 1")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bpe = _train_sentencepiece(shape.pop("vocab_size"))
    (path / "bpe.model").write_bytes(bpe)
    (path / "am.mvn").write_text(_identity_mvn(_NUM_MELS * _LFR_M), encoding="utf-8")
    config = _config(**shape)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (path / "configuration.json").write_text(json.dumps(_CONFIGURATION, indent=2), encoding="utf-8")
    _write_weights(path, config, vocab_size=_piece_count(bpe), seed=seed)
    return path


def _piece_count(model_proto: bytes) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model_proto).get_piece_size()
