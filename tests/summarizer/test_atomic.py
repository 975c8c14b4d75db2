"""notes.md is never half-written: a writer is SIGKILLed at random moments."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from summarizer import NotesTask
from summarizer.files import NOTES, NOTES_STATE
from summarizer.notes_doc import NotesState, Section, load_state, render_notes

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from tests.summarizer.test_atomic import version
from summarizer.notes_doc import render_notes, save_state, write_notes
folder, k = Path(sys.argv[1]), 0
while True:
    k = k % 40 + 1
    state = version(k)
    write_notes(folder / "notes.md", render_notes(state, "s", "m"))
    save_state(folder / "notes.state.json", state)
    if k == 1:
        print("ready", flush=True)
"""


def version(k: int) -> NotesState:
    """The k-th notes the writer produces: k sections of about 1 KB each."""
    sections = [Section(i * 10, i * 10 + 9, i * 120.0, i * 120.0 + 110, f"Topic {i}",
                        "\n".join(f"- point {i}.{j} " + "word " * 30 for j in range(6)))
                for i in range(k)]
    return NotesState(mode="llm", lang="en", utts=set(range(k * 10)), sections=sections)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_notes_md_is_old_or_new_after_sigkill_at_random_moments(tmp_path):
    valid = {render_notes(version(k), "s", "m") for k in range(1, 41)}
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    for round_ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(ROOT)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.12))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        text = (tmp_path / NOTES).read_text()
        assert text in valid, f"torn notes.md after kill {round_} (seed {seed})"
        assert text.startswith("# Lecture notes — s\n")
        assert re.findall(r"^## \S+ · Topic \d+$", text, re.M)
        assert load_state(tmp_path / NOTES_STATE) is not None, f"torn state (seed {seed})"
    NotesTask(tmp_path, None, None, None)  # starting up clears temp files a killed writer left
    assert not list(tmp_path.glob(".*.tmp"))
