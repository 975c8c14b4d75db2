"""Lectures through the compose pool, with one worker container killed mid-lecture.

``scripts/docker-check.sh`` (``make docker-check``) runs this on the host once nginx and
two worker containers (fake engine) are up: a few ``notsound live --server wss://...``
processes replay the same espeak-ng lecture in real time; when every lecture has a final
journaled and both workers hold streams, the worker with the most streams is killed
(``docker kill``, SIGKILL). The lectures on it reconnect through nginx to the other
worker and resend what is owed. Afterwards every session's ``transcript.jsonl`` must hold
exactly one final per utterance, each the fake engine's caption of that utterance.

It prints one JSON object of figures and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.fault_campaign import expected_texts, lecture_file
from bench.speech import LECTURE
from library.folder import read_finals

ROOT = Path(__file__).resolve().parents[1]
OPENED = re.compile(r"stream (\S+) opened")


def _health(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _start_lectures(args: argparse.Namespace, wav: Path, names: list[str]) -> list[subprocess.Popen]:
    env = {**os.environ, "NOTSOUND_CONFIG": str(args.work / "none.toml"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = []
    for name in names:
        log = open(args.work / f"{name}.log", "w")  # noqa: SIM115 (the process keeps it)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "notsound.cli", "live", "--server", args.url,
             "--key-file", str(args.key_file), "--ca", str(args.ca), "--input", str(wav),
             "--session", name, "--out", str(args.work / "sessions"), "--plain", "--no-notes"],
            cwd=args.work, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait_spread(args: argparse.Namespace, names: list[str], procs: list[subprocess.Popen]) -> dict[str, int]:
    """Streams per worker once every lecture has a final and every worker holds a stream."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise AssertionError("a lecture ended before a worker could be killed")
        counts = {name: _health(url)["streams"] for name, url in args.worker}
        journaled = [read_finals(args.work / "sessions" / n / "transcript.jsonl") for n in names]
        if min(counts.values()) >= 1 and all(journaled):
            return counts
        time.sleep(0.1)
    raise AssertionError("the lectures did not spread over the workers within 90 s")


def _docker_logs(docker: str, container: str) -> str:
    return subprocess.run([docker, "logs", container], capture_output=True, text=True, check=True).stderr


def _check_sessions(work: Path, names: list[str], expected: list[str]) -> int:
    finals = 0
    for name in names:
        path = work / "sessions" / name / "transcript.jsonl"
        captions = read_finals(path)
        assert [c.utt for c in captions] == list(range(len(expected))), f"{name}: utterances missing"
        assert [c.text for c in captions] == expected, f"{name}: captions of other audio"
        assert len(path.read_text().splitlines()) == len(expected), f"{name}: a final journaled twice"
        finals += len(captions)
    return finals


def run(args: argparse.Namespace) -> dict:
    args.work.mkdir(parents=True, exist_ok=True)
    wav = args.work / "lecture.wav"
    expected = expected_texts(lecture_file(wav, LECTURE[:args.sentences]))
    names = [f"room{i}" for i in range(args.lectures)]
    started = time.monotonic()
    procs = _start_lectures(args, wav, names)
    try:
        counts = _wait_spread(args, names, procs)
        victim = max(counts, key=counts.get)
        killed_at = time.monotonic()
        subprocess.run([args.docker, "kill", victim], check=True, capture_output=True)
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    finished = time.monotonic()
    assert codes == [0] * len(procs), f"notsound live exit codes {codes}; logs in {args.work}"
    finals = _check_sessions(args.work, names, expected)
    moved = set(OPENED.findall(_docker_logs(args.docker, victim)))
    survivors = [name for name, _ in args.worker if name != victim]
    reopened = set().union(*(OPENED.findall(_docker_logs(args.docker, s)) for s in survivors))
    assert moved and moved <= reopened, f"lectures of the killed worker {sorted(moved)} did not move"
    return {"lectures": len(names), "utterances_per_lecture": len(expected), "finals": finals,
            "duplicates": 0, "missing": 0, "streams_before_kill": counts, "killed": victim,
            "lectures_moved": sorted(moved), "lecture_audio_s": round(_wav_seconds(wav), 1),
            "kill_after_s": round(killed_at - started, 1),
            "done_after_kill_s": round(finished - killed_at, 1), "total_s": round(finished - started, 1)}


def _wav_seconds(path: Path) -> float:
    return (path.stat().st_size - 44) / 2 / 16000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="wss://HOST:PORT/v1/stream of nginx")
    p.add_argument("--key-file", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True, help="CA of nginx's certificate")
    p.add_argument("--worker", action="append", required=True, type=lambda s: tuple(s.split("=", 1)),
                   metavar="CONTAINER=HEALTH_URL", help="a worker container and its /health URL")
    p.add_argument("--docker", default="docker", help="docker command")
    p.add_argument("--work", type=Path, required=True, help="folder for the lecture and sessions")
    p.add_argument("--lectures", type=int, default=3)
    p.add_argument("--sentences", type=int, default=6, help="sentences of bench.speech.LECTURE")
    args = p.parse_args(argv)
    try:
        print(json.dumps(run(args)))
    except AssertionError as exc:
        print(f"docker check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
