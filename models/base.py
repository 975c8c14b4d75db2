"""The ASR engine interface shared by every engine."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.audio import SAMPLE_RATE
from common.errors import EXIT_USAGE, NotSoundError

__all__ = [
    "SAMPLE_RATE",
    "Transcript",
    "Segment",
    "DecodeHints",
    "KINDS",
    "EngineOptions",
    "Engine",
    "EngineError",
    "EngineEntryError",
    "ModelNotFoundError",
    "NO_HINTS",
    "UnknownEngineError",
    "as_float32",
]



@dataclass(frozen=True)
class Transcript:
    """What an engine returns for one piece of audio.

    Attributes:
        text: clean caption text, without engine tags or emoji.
        lang: language code the engine detected or was told ("en", "zh", ...).
        emotion: emotion label where the engine gives one ("NEUTRAL", "HAPPY", ...).
        events: audio events such as ``("BGM", "Laughter")``.
        words: ``(word, start, end)`` with seconds into the clip, for a final of an
            engine that times its words (:attr:`Engine.times_words`); empty otherwise.
            Their texts joined are ``text`` (up to spaces).
    """

    text: str
    lang: str = ""
    emotion: str = ""
    events: tuple[str, ...] = ()
    words: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Segment:
    """A stretch of a long clip decoded for accuracy (:meth:`Engine.transcribe_long`).

    Attributes:
        start: seconds into the clip where it starts.
        end: seconds where it ends.
        text: clean text.
        lang: language code.
        words: ``(word, start, end)`` with seconds into the clip, where the engine gives them.
    """

    start: float
    end: float
    text: str
    lang: str = ""
    words: tuple[tuple[str, float, float], ...] = ()


#: Job kinds an engine is asked to decode: a final (accuracy first) or a partial (speed first).
KINDS = ("final", "partial")


@dataclass(frozen=True)
class DecodeHints:
    """What an engine may use besides the audio of one clip.

    Hints are per clip, so one batched call can serve clips of several streams.
    Engines without prompting or hotword support ignore them.

    Attributes:
        context: the stream's most recent final text (a bounded tail), for engines that
            condition on previous text (faster-whisper ``initial_prompt``).
        vocabulary: terms likely to be spoken (e.g. from the lecture's slides), for engines
            that take hotwords (faster-whisper ``hotwords``).
    """

    context: str = ""
    vocabulary: tuple[str, ...] = ()


NO_HINTS = DecodeHints()


@dataclass(frozen=True)
class EngineOptions:
    """How to build an engine.

    Attributes:
        model: hub id, model name or local directory; ``None`` for the engine's default.
        device: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` (GPU) or ``int8`` (CPU fast path where the engine has one).
        threads: CPU threads for inference; ``None`` leaves the library default.
        itn: inverse text normalisation ("twenty one" -> "21") where the engine supports it.
        beam_size: beam width for finals (decoded for accuracy), where the engine has a
            beam search (whisper); CTC engines (SenseVoice) decode every job the same way.
        partial_beam_size: beam width for partials (decoded for speed; 1 is greedy).
        partial_precision: precision of partials where the engine decodes them with a
            copy of the model of their own (whisper): ``auto`` is ``int8`` on CPU and
            ``precision`` elsewhere; or ``fp32``, ``fp16``, ``int8`` as for ``precision``.
    """

    model: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    threads: int | None = None
    itn: bool = True
    beam_size: int = 5
    partial_beam_size: int = 1
    partial_precision: str = "auto"


class EngineError(NotSoundError, RuntimeError):
    """An engine could not be built or failed on audio."""


class ModelNotFoundError(EngineError):
    """The model directory or hub id could not be resolved; the message says what to do."""


class EngineEntryError(EngineError):
    """A ``NOTSOUND_ENGINES`` entry that cannot be used; the message names the entry and what is wrong."""

    exit_code = EXIT_USAGE


class UnknownEngineError(EngineError, KeyError):
    """No engine of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def as_float32(audio: np.ndarray) -> np.ndarray:
    """Mono 16 kHz audio as float32 in [-1, 1], whatever numeric type it came in."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise EngineError(f"audio must be mono (1-D), got shape {audio.shape}")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    if audio.dtype == np.float32:
        return audio
    if np.issubdtype(audio.dtype, np.floating):
        return audio.astype(np.float32)
    raise EngineError(f"audio must be int16 or float, got {audio.dtype}")


class Engine(abc.ABC):
    """An ASR engine: a batch of 16 kHz mono clips in, one :class:`Transcript` each out.

    Engines are built by :func:`models.registry.create_engine`, loaded once with
    :meth:`load`, and then called from a single thread at a time (the worker's
    scheduler owns the engine), so implementations need no locking.
    """

    #: registry name, e.g. ``"sensevoice"``
    name: str = ""
    #: True when one call decodes its clips together, padded to the longest; the worker
    #: then measures at start whether batching pays on its machine (``live.calibrate``)
    pads_batches: bool = False
    #: True when :class:`DecodeHints` change what the engine decodes (prompt, hotwords)
    takes_hints: bool = False
    #: True when a final's :attr:`Transcript.words` carries word times (the worker then
    #: offers protocol feature ``commit``: settled words are cut off a long open utterance)
    times_words: bool = False

    def __init__(self, options: EngineOptions | None = None):
        self.options = options or EngineOptions()

    @property
    def model_ref(self) -> str:
        """The model id or directory this engine loads (for ``ready`` and logs)."""
        return self.options.model or self.default_model()

    @classmethod
    def default_model(cls) -> str:
        """Where the engine loads its model from when none is given."""
        return ""

    @classmethod
    def describe(cls, model: str | None = None) -> str:
        """One line for ``notsound models``: where this engine would load from."""
        return model or cls.default_model()

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load weights; may be slow. Called once before the first :meth:`transcribe`."""

    def warmup(self) -> None:
        """Run one short clip through the model so the first caption is not slow."""
        self.transcribe([np.zeros(SAMPLE_RATE // 2, dtype=np.float32)], "auto")

    @abc.abstractmethod
    def transcribe(self, batch: Sequence[np.ndarray], language: str = "auto", *,
                   hints: Sequence[DecodeHints] | None = None, kind: str = "final") -> list[Transcript]:
        """Transcribe every clip of ``batch`` (int16 or float32, 16 kHz mono).

        ``hints`` gives one :class:`DecodeHints` per clip (``None``: none for any clip).
        ``kind`` is ``"final"`` (decode for accuracy, e.g. beam search) or ``"partial"``
        (decode for speed); engines whose decoding has no such choice (CTC) ignore it.
        """

    def transcribe_long(self, audio: np.ndarray, language: str = "auto",
                        hints: DecodeHints = NO_HINTS) -> list[Segment]:
        """Decode one long clip (up to about 30 s, across utterance borders) for accuracy.

        For an after-class pass (``notsound polish``). Engines that time their
        text override this; the default is the clip's final as one segment.
        """
        [result] = self.transcribe([audio], language, hints=[hints], kind="final")
        if not result.text:
            return []
        return [Segment(0.0, len(audio) / SAMPLE_RATE, result.text, result.lang)]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model."""
