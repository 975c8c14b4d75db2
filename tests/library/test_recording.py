"""The recording's layout in the session folder: parts, offsets, deletion and retention."""

from __future__ import annotations

import os
import time

from library.folder import (
    RECORDING,
    TRANSCRIPT,
    expire_recordings,
    new_part_path,
    recording_parts,
    remove_if_unused,
    remove_recording,
)


def _touch(path, mtime: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"OggS")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_parts_are_numbered_in_turn_and_keep_their_offsets(tmp_path):
    assert recording_parts(tmp_path) == [] and new_part_path(tmp_path, 0).name == "000-0.000.opus"
    _touch(new_part_path(tmp_path, 0.0))
    second = _touch(new_part_path(tmp_path, 1834.5604))
    assert second.name == "001-1834.560.opus"
    (tmp_path / RECORDING / "notes.txt").write_text("not a part")
    assert [(p.number, p.offset) for p in recording_parts(tmp_path)] == [(0, 0.0), (1, 1834.56)]


def test_old_recordings_are_deleted_and_their_text_kept(tmp_path):
    now = time.time()
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, age_days in ((old, 40), (new, 2)):
        _touch(new_part_path(folder, 0.0), now - age_days * 86400)
        (folder / TRANSCRIPT).write_text("{}\n")
    assert expire_recordings([old, new], days=0, now=now) == []
    assert expire_recordings([old, new], days=30, now=now) == [old]
    assert not (old / RECORDING).exists() and (old / TRANSCRIPT).exists()
    assert recording_parts(new)
    assert remove_recording(new) and not remove_recording(new)


def test_an_empty_recording_folder_does_not_keep_an_unused_session(tmp_path):
    (tmp_path / "s" / RECORDING).mkdir(parents=True)
    assert remove_if_unused(tmp_path / "s")
    _touch(new_part_path(tmp_path / "t", 0.0))
    assert not remove_if_unused(tmp_path / "t")
