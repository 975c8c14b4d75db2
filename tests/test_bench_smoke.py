"""Smoke test of ``make bench``'s building blocks: fake engine, a few seconds of espeak-ng speech.

Asserts the shape of the report and values that must hold whatever the
machine's speed (counts, orderings, signs); never a timing bound.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from bench import run, speech
from bench.engines import EngineSpec
from bench.offline import cut_utterances, throughput_part
from bench.pipeline import concurrency_part
from bench.report import print_report
from bench.worker import WorkerProcess
from models import EngineOptions, create_engine

pytestmark = pytest.mark.skipif(bool(speech.missing_tools()), reason="espeak-ng and sox are required")

TEXTS = ["Water evaporates from the oceans.", "Let us look at a diagram."]


def test_bench_main_writes_a_report_with_every_part(tmp_path: Path):
    out = tmp_path / "bench.json"
    code = run.main(["--engines", "fake", "--parts", "latency,engine,concurrency,memory,gpu",
                     "--sentences", "2", "--memory-mark-s", "30", "--memory-sensevoice-mark-s", "0",
                     "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"meta", "targets", "models", "engines", "memory", "gpu", "speech"} <= report.keys()
    assert report["meta"]["runtime_s"] > 0 and report["meta"]["json"] == str(out)
    assert report["speech"]["utterances"] == 2
    fake = report["engines"]["fake"]
    latency = fake["latency"]
    assert latency["utterances"] == 2
    final = latency["final_latency_s"]
    assert 0 < final["p50"] <= final["p95"] <= final["max"] < math.inf
    assert latency["worker"]["cpu_s"] >= 0 and latency["worker"]["rss_mb"] > 0
    assert [u["utt"] for u in latency["per_utterance"]] == [0, 1]
    assert fake["engine"]["utterances"] == 2 and fake["engine"]["audio_s"] > 3
    assert fake["overhead"]["matched"] == 2
    assert "concurrency" not in fake, "the fake engines are only latency baselines"
    paced = report["engines"]["fake-rtf0.06"]
    assert paced["latency"]["utterances"] == 2 and paced["overhead"]["matched"] == 2
    assert paced["engine"]["engine_s"]["p50"] > fake["engine"]["engine_s"]["p50"]
    memory = report["memory"]["fake"]
    assert len(memory["rss_at_marks_mb"]) == 3 and all(x > 0 for x in memory["rss_at_marks_mb"])
    assert memory["audio_s"] >= 90 and isinstance(memory["growth_first_to_last_pct"], float)
    assert report["gpu"]["line"]


def test_batching_part_batches_finals_of_four_streams():
    pcm = speech.lecture(TEXTS)
    utterances = cut_utterances(pcm)
    assert len(utterances) == 2
    engine = create_engine("fake", EngineOptions(model="per_call=0.01"))
    engine.load()
    result = throughput_part(engine, utterances, streams=4, per_stream=2)
    assert result["utterances"] == 8
    assert result["one_at_a_time"]["largest_batch"] == 1
    assert result["one_at_a_time"]["engine_calls"] == 8
    assert result["batched"]["largest_batch"] > 1
    assert result["one_at_a_time"]["audio_s"] == result["batched"]["audio_s"] > 0
    assert result["ratio"] > 0


def test_concurrency_part_reports_each_level_until_the_limit(tmp_path: Path):
    wav = speech.write_wav(tmp_path / "short.wav", speech.lecture(TEXTS[:1], tail_s=0.8))
    with WorkerProcess(EngineSpec("fake", "fake")) as worker:
        # Whether a level holds is a latency limit, which depends on the machine: one every
        # level meets and one none can, so that the outcome does not.
        result = concurrency_part(worker, lambda n: [wav] * n, tmp_path, [1, 2], limit_s=math.inf,
                                  log=lambda m: None)
        unmet = concurrency_part(worker, lambda n: [wav] * n, tmp_path / "unmet", [1, 2], limit_s=0.0,
                                 log=lambda m: None)
    assert [lv["streams"] for lv in result["levels"]] == [1, 2]
    assert all(lv["utterances"] == lv["streams"] for lv in result["levels"])
    assert result["max_streams"] == 2 and result["levels"][-1]["holds"]
    assert [(lv["streams"], lv["holds"]) for lv in unmet["levels"]] == [(1, False)], "the search ends there"
    assert unmet["max_streams"] is None and unmet["levels"][0]["utterances"] == 1


def test_report_prints_every_table():
    report = json.loads(json.dumps(_sample_report()))
    console = Console(file=io.StringIO(), width=200)
    print_report(report, console)
    text = console.file.getvalue()
    for title in ("1. Pipeline latency", "2. Engine alone", "3. Concurrent", "4. Batched", "5. Worker memory"):
        assert title in text
    assert "GPU: not available here" in text


def _sample_report() -> dict:
    lat = {"n": 3, "p50": 1.0, "p95": 1.2, "max": 1.3, "mean": 1.1}
    worker = {"wall_s": 10, "cpu_s": 2, "cores": 0.2, "rss_mb": 100}
    latency = {"utterances": 3, "final_latency_s": lat, "first_partial_s": lat,
               "partial_interval_s": lat, "worker": worker}
    feed = {"audio_s_per_s": 10.0, "largest_batch": 4}
    return {
        "engines": {"sensevoice-full-int8": {
            "latency": latency,
            "engine": {"engine_s": lat, "rtf": 0.1},
            "overhead": {"overhead_s": lat, "ratio": 0.05, "ratio_median": 0.04},
            "concurrency": {"levels": [{"streams": 2, "final_latency_s": lat, "worker": worker}],
                            "max_streams": 2},
            "batching": {"one_at_a_time": feed, "batched": {**feed, "audio_s_per_s": 14.0},
                         "ratio": 1.4},
        }},
        "memory": {"fake": {"mark_s": 3600, "marks": 3, "audio_s": 10800, "wall_s": 5,
                            "speedup_x_realtime": 2000, "rss_at_marks_mb": [40, 40, 40.1],
                            "growth_first_to_last_pct": 0.25, "worker_cores": 0.3}},
        "gpu": {"line": "not available here"},
        "meta": {"machine": "test", "loadavg_start": [0], "loadavg_end": [0], "runtime_s": 1,
                 "json": "bench.json"},
    }


def test_sentences_are_scored_by_the_final_that_holds_their_last_words():
    from bench.fluent import sentence_rows

    spoken = speech.Spoken(pcm=speech.fluent(TEXTS).pcm, texts=TEXTS, spans=[(0.5, 2.0), (2.3, 3.5)])
    rows = [
        {"type": "partial", "utt": 0, "t": 1.2, "text": "Water evaporates"},
        {"type": "partial", "utt": 0, "t": 2.6, "text": "Water evaporates from the ocean. Let"},
        {"type": "partial", "utt": 0, "t": 3.8, "text": "Water evaporates from the ocean. Let us look at a"},
        {"type": "final", "utt": 0, "t": 4.1, "start": 0.3, "end": 3.7,
         "text": "Water evaporates from the ocean. Let us look at a diagram."},
    ]
    first, second = sentence_rows(rows, spoken, with_text=True)
    assert first["utt"] == second["utt"] == 0 and not first["lost"]
    assert first["final_latency_s"] == pytest.approx(4.1 - 2.0)
    assert first["visible_latency_s"] == pytest.approx(2.6 - 2.0)  # "the ocean" first shown then
    assert second["final_latency_s"] == pytest.approx(4.1 - 3.5)
    assert second["visible_latency_s"] == pytest.approx(4.1 - 3.5)  # "a diagram" only in the final
    gone = sentence_rows([{**rows[-1], "text": "Let us look at a diagram."}], spoken, with_text=True)
    assert gone[0]["lost"] and gone[0]["final_latency_s"] == pytest.approx(4.1 - 2.0)  # by time
    assert not gone[1]["lost"]
    untimed = sentence_rows(rows, spoken, with_text=False)
    assert [r["final_latency_s"] for r in untimed] == [first["final_latency_s"], second["final_latency_s"]]
    assert all(r["visible_latency_s"] is None for r in untimed)


def test_fluent_speech_runs_sentences_together_with_short_pauses():
    spoken = speech.fluent(TEXTS, voices=("en-us", "en-gb+f3"))
    (_, end0), (start1, end1) = spoken.spans
    assert 0.2 <= start1 - end0 <= 0.35
    assert len(spoken.pcm) / speech.SAMPLE_RATE == pytest.approx(end1 + 1.0, abs=0.01)
    on = round(start1 * speech.SAMPLE_RATE)
    assert not spoken.pcm[round(end0 * speech.SAMPLE_RATE) + 1:on - 1].any()  # the pause is silence
    assert abs(int(spoken.pcm[on])) > speech.SPEECH_LEVEL  # speech starts where the span says
