"""The engine configurations the benchmark compares, and the model folders they need.

Each :class:`EngineSpec` is one row of the tables: an engine name plus the
model, precision and device the worker is started with. The full-size
SenseVoice folder (random weights, the real shape: ~892 MB) is built once into
``bench/out/sensevoice-full/`` and reused; it is never committed (``bench/out``
is git-ignored).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from models import EngineOptions

__all__ = ["EngineSpec", "ENGINE_CHOICES", "select_specs", "prepare_models", "gpu_available"]

OUT_DIR = Path(__file__).resolve().parent / "out"
FULL_DIR = OUT_DIR / "sensevoice-full"
TINY_DIR = OUT_DIR / "sensevoice-tiny"
#: disk space the full-size folder needs, with a margin
FULL_SIZE_BYTES = 1_200_000_000


@dataclass(frozen=True)
class EngineSpec:
    """One engine configuration.

    Attributes:
        key: row name in the tables and the JSON.
        engine: registry name (``fake``, ``whisper``, ``sensevoice``).
        model: ``--model`` of the worker; filled in by :func:`prepare_models`
            for the SenseVoice folders.
        precision: ``fp32``, ``int8`` or ``fp16``.
        device: ``cpu`` or ``cuda``.
        threads: engine CPU threads (the machine's cores, at most 2 here).
    """

    key: str
    engine: str
    model: str = ""
    precision: str = "fp32"
    device: str = "cpu"
    threads: int = 2

    def options(self) -> EngineOptions:
        return EngineOptions(model=self.model or None, device=self.device,
                             precision=self.precision, threads=self.threads)

    def serve_args(self) -> list[str]:
        args = ["--engine", self.engine, "--precision", self.precision,
                "--device", self.device, "--threads", str(self.threads)]
        return args + (["--model", self.model] if self.model else [])


#: ``--engines`` names -> the configurations they select
ENGINE_CHOICES: dict[str, list[EngineSpec]] = {
    # "fake": no engine time at all (the pipeline's own cost), and a fake that sleeps 0.06 s per
    # second of audio, as long as SenseVoice fp32 computes here but without using the CPUs, so
    # its overhead is the scheduler's and the pipeline's alone, unaffected by CPU contention
    "fake": [EngineSpec("fake", "fake"), EngineSpec("fake-rtf0.06", "fake", model="rtf=0.06")],
    "whisper": [EngineSpec("whisper-tiny.en", "whisper")],
    "sensevoice": [
        EngineSpec("sensevoice-full-fp32", "sensevoice", precision="fp32"),
        EngineSpec("sensevoice-full-int8", "sensevoice", precision="int8"),
    ],
}


def select_specs(names: list[str], threads: int) -> list[EngineSpec]:
    unknown = [n for n in names if n not in ENGINE_CHOICES]
    if unknown:
        raise SystemExit(f"unknown engine {', '.join(unknown)}: choose from {', '.join(ENGINE_CHOICES)}")
    return [replace(spec, threads=threads) for n in names for spec in ENGINE_CHOICES[n]]


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_spec() -> EngineSpec:
    """Full-size SenseVoice on the GPU in fp16 (only used when CUDA is there)."""
    return EngineSpec("sensevoice-full-cuda-fp16", "sensevoice", model=str(FULL_DIR),
                      precision="fp16", device="cuda")


def _build(path: Path, full_size: bool) -> float:
    from bench.sensevoice_random import build_random_sensevoice

    if (path / "model.pt").exists() and (path / "config.yaml").exists():
        return 0.0
    if full_size:
        free = shutil.disk_usage(path.parent if path.parent.exists() else OUT_DIR.parent).free
        if free < FULL_SIZE_BYTES:
            raise SystemExit(f"building the full-size SenseVoice folder needs ~1.2 GB free at "
                             f"{path.parent}, only {free / 1e9:.1f} GB there: free some space "
                             "or drop --engines sensevoice")
    started = time.perf_counter()
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    build_random_sensevoice(tmp, full_size=full_size)
    tmp.rename(path)
    return time.perf_counter() - started


def prepare_models(specs: list[EngineSpec], *, tiny: bool = False) -> tuple[list[EngineSpec], dict]:
    """Build the SenseVoice folders the specs need; returns the specs with ``model`` set."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    info: dict = {}
    ready = []
    for spec in specs:
        if spec.engine == "sensevoice" and not spec.model:
            if "build_s" not in info:
                info["build_s"] = round(_build(FULL_DIR, full_size=True), 1)
                info["dir"] = str(FULL_DIR)
            spec = replace(spec, model=str(FULL_DIR))
        ready.append(spec)
    if tiny:
        info["tiny_build_s"] = round(_build(TINY_DIR, full_size=False), 1)
    return ready, info


def tiny_spec(threads: int) -> EngineSpec:
    return EngineSpec("sensevoice-tiny", "sensevoice", model=str(TINY_DIR), threads=threads)
