"""SenseVoiceSmall through FunASR: one batched ``generate`` call per engine call.

The model comes from a local directory (``config.yaml`` + ``model.pt``, as
downloaded from the hub or written by ``bench/sensevoice_random.py``) or from
a ModelScope hub id such as ``iic/SenseVoiceSmall``. A hub id is looked up in
the local ModelScope cache first and downloaded only when missing, so a machine
that downloaded it once works offline afterwards.

funasr and torch are imported in :meth:`SenseVoiceEngine.load`, never at import.
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    SAMPLE_RATE,
    DecodeHints,
    Engine,
    EngineError,
    EngineOptions,
    ModelNotFoundError,
    Transcript,
    as_float32,
)
from .text import parse_sensevoice

__all__ = [
    "SenseVoiceEngine",
    "DEFAULT_MODEL",
    "LANGUAGES",
    "MIN_SAMPLES",
    "is_hub_id",
    "import_funasr",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "iic/SenseVoiceSmall"
#: short names accepted for the default hub id
_ALIASES = {"SenseVoiceSmall": DEFAULT_MODEL}
#: language hints SenseVoiceSmall understands
LANGUAGES = frozenset({"auto", "zh", "en", "yue", "ja", "ko", "nospeech"})
#: clips shorter than this (0.1 s) are not sent to the model and get empty text
MIN_SAMPLES = SAMPLE_RATE // 10
_PRECISIONS = ("fp32", "fp16", "int8")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_NEEDED_FILES = ("config.yaml", "model.pt")
_INSTALL_HINT = "the sensevoice engine needs funasr and torch: pip install 'funasr>=1.1,<2' torch"


def is_hub_id(model: str) -> bool:
    """True when ``model`` names a hub model (``owner/name``), not a local directory."""
    if os.path.exists(model):
        return False
    return _HUB_ID.fullmatch(_ALIASES.get(model, model)) is not None


def _modelscope_cache() -> Path:
    return Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope")


def _check_model_dir(directory: Path) -> Path:
    """``directory`` if it holds a SenseVoice model, else :class:`ModelNotFoundError`."""
    hint = (
        f"pass --model DIR of a downloaded SenseVoiceSmall, or --model {DEFAULT_MODEL} "
        "on a machine that reaches the model hub"
    )
    if not directory.is_dir():
        raise ModelNotFoundError(
            f"model directory {directory} not found (expected {' and '.join(_NEEDED_FILES)}): {hint}"
        )
    missing = [name for name in _NEEDED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"model directory {directory} has no {' or '.join(missing)} "
            f"(expected {' and '.join(_NEEDED_FILES)}): {hint}"
        )
    return directory


def _download(model_id: str) -> Path:
    """Local snapshot of hub model ``model_id``: from the ModelScope cache, else downloaded."""
    hint = (
        f"download it on a connected machine with `modelscope download --model {model_id} "
        "--local_dir DIR` and pass --model DIR"
    )
    try:
        from modelscope.hub.snapshot_download import snapshot_download
    except ImportError as exc:
        raise ModelNotFoundError(
            f"loading {model_id} from the model hub needs modelscope (pip install modelscope); "
            f"or {hint}"
        ) from exc
    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not cached (CacheNotFound) or an unreadable cache: try the hub
        logger.info("%s is not in the ModelScope cache; downloading it", model_id)
    try:
        return Path(snapshot_download(model_id))
    except Exception as exc:  # network, HTTP and hub errors come in many types
        reason = " ".join(str(exc).split())[:300]
        local = Path(model_id).resolve()
        raise ModelNotFoundError(
            f"could not download {model_id} from the model hub ({type(exc).__name__}: {reason}): "
            f"{hint} (if you meant a local directory: {local} does not exist)"
        ) from exc


class _FunasrChatter(logging.Filter):
    """Drops funasr's INFO and WARNING lines logged straight on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or f"{os.sep}funasr{os.sep}" not in record.pathname


@contextmanager
def _contained(torch: Any) -> Iterator[None]:
    """Undo what importing funasr and building an AutoModel do to the rest of the process.

    Importing funasr imports every submodule, one of which calls
    ``logging.basicConfig(level=INFO)`` and ``warnings.filterwarnings("ignore")``;
    ``AutoModel`` calls ``basicConfig`` again and seeds the global random
    generators of random, numpy and torch with 0. Its own log lines while
    loading ("trust_remote_code: False", ...) are dropped unless errors.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    guard, chatter = logging.NullHandler(), _FunasrChatter()
    root.addHandler(guard)  # makes basicConfig a no-op
    root.addFilter(chatter)
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.random.get_rng_state()
    try:
        with warnings.catch_warnings():  # restores the warning filters on exit
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.removeFilter(chatter)
        root.setLevel(level)


def import_funasr() -> tuple[Any, Any]:
    """``(torch, funasr.AutoModel)``, imported without funasr's process-wide side effects."""
    try:
        import torch
    except ImportError as exc:
        raise EngineError(f"{_INSTALL_HINT} ({exc})") from exc
    try:
        with _contained(torch):
            from funasr import AutoModel
    except ImportError as exc:
        raise EngineError(f"{_INSTALL_HINT} ({exc})") from exc
    return torch, AutoModel


def _with_language(transcript: Transcript, language: str) -> Transcript:
    """``transcript`` with the language asked for when the model tagged none."""
    if transcript.lang or language in ("auto", "nospeech"):
        return transcript
    return replace(transcript, lang=language)


class SenseVoiceEngine(Engine):
    """SenseVoiceSmall (FunASR): text, language, emotion and audio events per clip.

    Precision: ``fp32`` anywhere, ``int8`` on CPU (dynamic quantisation of the
    linear layers), ``fp16`` on CUDA (half weights under autocast).
    """

    name = "sensevoice"
    #: one ``generate`` call pads its clips to the longest: the worker measures whether batching pays
    pads_batches = True

    def __init__(self, options: EngineOptions | None = None):
        super().__init__(options)
        #: number of clips of every ``generate`` call so far (one per non-empty batch)
        self.calls: list[int] = []
        #: resolved torch device after :meth:`load` ("cpu", "cuda:0", ...)
        self.device: str | None = None
        #: the directory the weights came from, after :meth:`load`
        self.model_dir: Path | None = None
        #: precision in use after :meth:`load` ("fp32", "fp16" or "int8")
        self.precision: str | None = None
        #: seconds :meth:`load` took (imports included)
        self.load_seconds: float | None = None
        self._auto: Any = None
        self._torch: Any = None

    @classmethod
    def default_model(cls) -> str:
        return DEFAULT_MODEL

    @classmethod
    def describe(cls, model: str | None = None) -> str:
        ref = model or DEFAULT_MODEL
        if is_hub_id(ref):
            model_id = _ALIASES.get(ref, ref)
            return f"hub {model_id} (cached in {_modelscope_cache()} when downloaded)"
        directory = Path(ref).expanduser().resolve()
        return f"directory {directory}" + ("" if directory.is_dir() else " (not found)")

    # -- loading ---------------------------------------------------------------------

    def _resolve_model_dir(self) -> Path:
        ref = self.model_ref
        if is_hub_id(ref):
            return _check_model_dir(_download(_ALIASES.get(ref, ref)))
        return _check_model_dir(Path(ref).expanduser())

    def _resolve_device(self, torch: Any) -> str:
        device = (self.options.device or "auto").lower()
        if device == "auto":
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            return device
        if re.fullmatch(r"cuda(:\d+)?", device):
            if not torch.cuda.is_available():
                raise EngineError(
                    f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU: "
                    "use --device cpu (or auto)"
                )
            index = int(device.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise EngineError(
                    f"device {device!r}: only {torch.cuda.device_count()} GPU(s) visible"
                )
            return f"cuda:{index}"
        raise EngineError(f"device {device!r} not supported: use auto, cpu, cuda or cuda:N")

    def _check_precision(self, device: str) -> str:
        precision = (self.options.precision or "fp32").lower()
        if precision not in _PRECISIONS:
            raise EngineError(
                f"precision {precision!r} not supported: use {', '.join(_PRECISIONS)}"
            )
        if precision == "fp16" and device == "cpu":
            raise EngineError("precision fp16 needs a CUDA GPU: use fp32 or int8 on CPU")
        if precision == "int8" and device != "cpu":
            raise EngineError("precision int8 is the CPU path: use fp16 or fp32 on a GPU")
        return precision

    def load(self) -> None:
        """Resolve the model, check device and precision, build funasr's AutoModel."""
        started = time.perf_counter()
        if self.options.threads is not None and self.options.threads < 1:
            raise EngineError(f"threads must be at least 1, got {self.options.threads}")
        torch, auto_model_class = import_funasr()
        device = self._resolve_device(torch)
        precision = self._check_precision(device)
        model_dir = self._resolve_model_dir()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        auto = self._build(torch, auto_model_class, model_dir, device)
        if precision == "int8":
            auto.model = self._quantize_int8(torch, auto.model)
        elif precision == "fp16":
            auto.model.half()
        self._torch, self._auto = torch, auto
        self.device, self.precision, self.model_dir = device, precision, model_dir
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "sensevoice loaded from %s on %s (%s) in %.2fs",
            model_dir,
            device,
            precision,
            self.load_seconds,
        )

    @staticmethod
    def _build(torch: Any, auto_model_class: Any, model_dir: Path, device: str) -> Any:
        """funasr's AutoModel for ``model_dir``; funasr's many failure types become EngineError."""
        printed = io.StringIO()  # funasr prints its version and weight problems to stdout
        try:
            with _contained(torch), redirect_stdout(printed):
                auto = auto_model_class(
                    model=str(model_dir),
                    device=device,
                    ncpu=torch.get_num_threads(),  # funasr otherwise sets torch to 4 threads
                    disable_update=True,
                    disable_pbar=True,
                    disable_log=True,
                    ignore_init_mismatch=False,  # weights of the wrong shape fail loudly
                    frontend_conf={"dither": 0.0},  # same audio, same text
                )
        except Exception as exc:
            raise EngineError(f"could not load the SenseVoice model in {model_dir}: {exc}") from exc
        finally:
            logger.debug("funasr printed: %s", printed.getvalue().strip())
        # funasr keeps random weights for parameters missing from model.pt and only prints it
        missing = re.findall(r"miss key in ckpt: ([^,\s]+)", printed.getvalue())
        if missing:
            raise EngineError(
                f"could not load the SenseVoice model in {model_dir}: model.pt lacks "
                f"{len(missing)} weight(s) that config.yaml needs, e.g. {missing[0]}"
            )
        return auto

    @staticmethod
    def _quantize_int8(torch: Any, model: Any) -> Any:
        """``model`` with int8 dynamically quantised linear layers (CPU)."""
        # eager-mode quantisation is deprecated in favour of torchao, but still works
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )

    # -- inference -------------------------------------------------------------------

    def transcribe(self, batch: Sequence[np.ndarray], language: str = "auto", *,
                   hints: Sequence[DecodeHints] | None = None, kind: str = "final") -> list[Transcript]:
        """Transcribe every clip of ``batch`` in one ``generate`` call; short clips give ``""``.

        SenseVoice is a CTC model: finals and partials decode the same way (``kind`` is
        ignored), and it takes neither a text prompt nor hotwords (``hints`` are ignored).
        """
        if self._auto is None:
            raise EngineError("SenseVoiceEngine.transcribe called before load()")
        language = (language or "auto").lower()
        if language not in LANGUAGES:
            raise EngineError(
                f"language {language!r} not supported by SenseVoice: use one of {', '.join(sorted(LANGUAGES))}"
            )
        clips = [as_float32(clip) for clip in batch]
        todo = [i for i, clip in enumerate(clips) if len(clip) >= MIN_SAMPLES]
        results = [Transcript("") for _ in clips]
        if not todo:
            return results
        raw = self._generate([clips[i] for i in todo], language)
        for i, text in zip(todo, raw, strict=True):
            results[i] = _with_language(parse_sensevoice(text), language)
        return results

    def _generate(self, clips: list[np.ndarray], language: str) -> list[str]:
        """Raw SenseVoice strings for ``clips``, in order, from a single ``generate`` call."""
        self.calls.append(len(clips))
        try:
            with self._autocast():
                out = self._auto.generate(
                    input=clips,
                    cache={},
                    language=language,
                    use_itn=self.options.itn,
                    batch_size=len(clips),
                    disable_pbar=True,
                )
        except Exception as exc:
            raise EngineError(
                f"SenseVoice inference failed on {len(clips)} clip(s): {exc}"
            ) from exc
        if len(out) != len(clips):
            raise EngineError(f"SenseVoice returned {len(out)} results for {len(clips)} clips")
        # funasr gives every clip of a list the same key, so order is all that maps results back
        return [str(item.get("text", "")) for item in out]

    @contextmanager
    def _autocast(self) -> Iterator[None]:
        """fp16 weights need autocast: funasr feeds float32 features to the half model."""
        if self.precision == "fp16":
            with self._torch.autocast(device_type="cuda", dtype=self._torch.float16):
                yield
        else:
            yield

    def close(self) -> None:
        """Drop the model (and the CUDA cache it used)."""
        torch, self._auto = self._torch, None
        if torch is not None and self.device and self.device.startswith("cuda"):
            torch.cuda.empty_cache()
