"""One reader for every secret file: worker key, LLM API key, viewer token."""

from __future__ import annotations

import logging

import pytest

from common.secret_file import MAX_SECRET_FILE_BYTES, SecretFileError, read_secret_file

SECRET = "ns_0123abcd_s3cr3t-value"


def _file(tmp_path, data: bytes, mode: int = 0o600):
    path = tmp_path / "key"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_the_secret_is_the_first_non_empty_line_stripped(tmp_path):
    path = _file(tmp_path, f"\ufeff\n   \n  {SECRET}  \r\nsecond line\n".encode())
    assert read_secret_file(path, "worker key") == SECRET


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _file(tmp_path, f"{SECRET}\n".encode())
    assert read_secret_file("~/key", "worker key") == SECRET


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "is empty: put the worker key on its first line"),
    (b" \n\t\n", "is empty"),
    (SECRET.encode() + b"\xff\xfe\n", "is not UTF-8"),
    (SECRET.encode() * (MAX_SECRET_FILE_BYTES // len(SECRET) + 1), "is over 64 KiB"),
])
def test_an_unusable_file_is_refused_naming_the_file_but_never_the_secret(tmp_path, data, problem):
    path = _file(tmp_path, data)
    with pytest.raises(SecretFileError, match=problem) as caught:
        read_secret_file(path, "worker key")
    assert str(path) in str(caught.value) and SECRET not in str(caught.value)
    assert isinstance(caught.value, OSError)


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(SecretFileError, match=r"cannot read the LLM API key file .*missing: No such file"):
        read_secret_file(tmp_path / "missing", "LLM API key")


def test_a_file_others_can_read_is_used_with_a_warning_to_chmod_it(tmp_path, caplog):
    path = _file(tmp_path, f"{SECRET}\n".encode(), mode=0o644)
    with caplog.at_level(logging.WARNING, logger="common.secret_file"):
        assert read_secret_file(path, "viewer token") == SECRET
    assert [r.getMessage() for r in caplog.records] == [
        f"the viewer token file {path} can be read by other users: chmod 600 {path}"]
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="common.secret_file"):
        assert read_secret_file(path, "viewer token") == SECRET
    assert caplog.records == []
