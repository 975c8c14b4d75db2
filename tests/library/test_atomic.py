"""Appending records durably: one helper for the journal, translations and ask.jsonl."""

from __future__ import annotations

import os
import stat

import pytest

from library.folder import append_durable


def test_append_creates_the_file_with_its_mode_and_writes_exactly_the_records(tmp_path):
    path = tmp_path / "ask.jsonl"
    append_durable(path, b'{"n":1}\n', mode=0o600)
    append_durable(path, b'{"n":2}\n{"n":3}\n', mode=0o600)
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_torn_last_line_gets_a_newline_before_the_next_record(tmp_path):
    path = tmp_path / "translations.jsonl"
    path.write_bytes(b'{"utt":0}\n{"utt":1,"te')  # a writer died mid-line
    append_durable(path, b'{"utt":2}\n')
    assert path.read_bytes().split(b"\n") == [b'{"utt":0}', b'{"utt":1,"te', b'{"utt":2}', b""]


def test_the_records_are_complete_when_they_are_fsynced(tmp_path, monkeypatch):
    path = tmp_path / "transcript.jsonl"
    path.write_bytes(b"torn")
    synced: list[bytes] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.pread(fd, 1 << 16, 0))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    record = b'{"text":"' + "字".encode() * 5000 + b'"}\n'
    append_durable(path, record)
    assert synced == [b"torn\n" + record]
    assert path.read_bytes() == b"torn\n" + record


def test_a_file_that_cannot_be_opened_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        append_durable(tmp_path / "missing-folder" / "x.jsonl", b"x\n")
