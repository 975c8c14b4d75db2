"""One error root: every error a user can meet is a NotSoundError, and the command reports each as one line."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import notsound.cli
from common.errors import EXIT_ERROR, EXIT_USAGE, NotSoundError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("notsound", "live", "capture", "wire", "common", "models", "summarizer", "library", "slides")
#: internal control flow, caught where it is raised: never shown to a user (besides ``_private`` classes)
INTERNAL = {"notsound.web_feed.FeedFull", "notsound.room.paths.NotFound"}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                    found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_a_user_can_meet_derives_from_the_root():
    classes = _exception_classes()
    outside = sorted(path for path, cls in classes.items()
                     if not issubclass(cls, NotSoundError)
                     and path not in INTERNAL and not path.rsplit(".", 1)[1].startswith("_"))

    assert outside == []
    assert len(classes) >= 40, "the walk found the packages' errors"
    assert INTERNAL <= set(classes), "the exemptions still exist"


@pytest.mark.parametrize(("path", "also"), [
    ("notsound.config.ConfigError", ValueError),
    ("notsound.web.WebError", RuntimeError),
    ("live.server.WorkerError", RuntimeError),
    ("models.base.EngineError", RuntimeError),
    ("models.base.UnknownEngineError", KeyError),
    ("wire.protocol.ProtocolError", ValueError),
    ("library.search.QueryError", ValueError),
])
def test_the_roots_keep_the_builtin_bases_callers_catch(path, also):
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)

    assert issubclass(cls, NotSoundError) and issubclass(cls, also)


def test_one_session_not_found_error_for_the_library_and_the_summarizer():
    import summarizer
    from library.folder import FolderError, SessionNotFoundError
    from summarizer.errors import SessionNotFoundError as from_errors

    assert summarizer.SessionNotFoundError is SessionNotFoundError is from_errors
    assert issubclass(SessionNotFoundError, FolderError) and SessionNotFoundError.exit_code == EXIT_USAGE
    with pytest.raises(SessionNotFoundError):
        summarizer.resolve_session("nope", ROOT / "no-such-folder")


def test_the_exit_code_is_the_class_one_unless_the_error_is_given_its_own():
    assert NotSoundError("x").exit_code == EXIT_ERROR
    assert NotSoundError("x", exit_code=7).exit_code == 7
    assert NotSoundError.exit_code == EXIT_ERROR, "an instance's code leaves the class alone"
    assert str(NotSoundError("what to do")) == "what to do"


def test_common_imports_no_other_package_of_ours():
    ours = set(PACKAGES) - {"common"}
    imported = set()
    for path in (ROOT / "common").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])

    assert imported & ours == set()


def _one_of_each_package():
    from capture.client import ClientError
    from capture.sources import CaptureError
    from library.folder import FolderError, SessionNotFoundError
    from live.keys import KeyStoreError
    from live.server import WorkerError
    from models import EngineError, UnknownEngineError
    from notsound.config import ConfigError
    from notsound.web import WebError
    from slides import SlidesError
    from summarizer import NoAPIKeyError, SummarizerError
    from wire.protocol import ProtocolError

    return [
        (CaptureError, EXIT_ERROR), (ClientError, EXIT_ERROR), (FolderError, EXIT_ERROR),
        (SessionNotFoundError, EXIT_USAGE), (KeyStoreError, EXIT_ERROR), (WorkerError, EXIT_ERROR),
        (EngineError, EXIT_ERROR), (UnknownEngineError, EXIT_ERROR), (ConfigError, EXIT_USAGE),
        (WebError, EXIT_ERROR), (SlidesError, EXIT_ERROR), (SummarizerError, EXIT_ERROR),
        (NoAPIKeyError, EXIT_USAGE), (ProtocolError, EXIT_ERROR), (notsound.cli.CommandError, EXIT_ERROR),
    ]


@pytest.mark.parametrize(("cls", "code"), _one_of_each_package(), ids=lambda v: getattr(v, "__name__", v))
def test_an_error_of_each_package_is_one_line_and_its_exit_code(cls, code, monkeypatch, capsys):
    def fail(args, toml):
        raise cls(f"{cls.__name__}: what to do next")

    monkeypatch.setattr(notsound.cli, "_cmd_models", fail)

    assert notsound.cli.main(["models"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"notsound: {cls.__name__}: what to do next\n"
    assert captured.out == ""


def test_an_error_given_its_own_code_exits_with_it(monkeypatch, capsys):
    def fail(args, toml):
        raise notsound.cli.CommandError("--fast needs --input FILE", EXIT_USAGE)

    monkeypatch.setattr(notsound.cli, "_cmd_models", fail)

    assert notsound.cli.main(["models"]) == EXIT_USAGE
    assert capsys.readouterr().err == "notsound: --fast needs --input FILE\n"


def test_real_failures_of_three_packages_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOTSOUND_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "keys.json").write_text("{not json")
    assert notsound.cli.main(["keys", "list", "--state-dir", str(tmp_path)]) == EXIT_ERROR  # live.keys
    assert capsys.readouterr().err.count("\n") == 1

    assert notsound.cli.main(["export", "nope", "-f", "srt", "--out", str(tmp_path)]) == EXIT_USAGE  # library
    assert capsys.readouterr().err.startswith("notsound: no session 'nope'")

    monkeypatch.setenv("NOTSOUND_WORKER_PORT", "not-a-port")  # notsound.config
    assert notsound.cli.main(["models"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("notsound: ") and err.count("\n") == 1 and "Traceback" not in err
