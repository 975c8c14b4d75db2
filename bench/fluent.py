"""Part ``fluent``: a lecturer who runs sentences together, scored per sentence.

The lecture's sentences are joined with 0.2-0.35 s pauses (:func:`bench.speech.fluent`),
so one utterance may hold several sentences, and what matters to a reader is
each sentence, not each utterance. For sentence ``i`` whose speech ends at
``e_i`` (known from how the audio was made):

- final latency = ``t(final holding the sentence's last words) - e_i``. With a
  meaningful transcript (whisper) the finals of the stream are aligned with the
  lecture's text (jiwer's word alignment) and the final is the one holding the
  last word of the sentence that was recognised; otherwise (random weights)
  it is the final whose utterance holds ``e_i``. A ``commit`` of that
  utterance (feature ``commit``: its final begins with the committed text)
  that already holds the word counts as its final, from when it came.
- visible latency = ``t(first partial or final of that utterance showing the
  final's words at that place, the last two) - e_i`` (only with a transcript).
- a sentence is *lost* when none of its words is in any final.
- finals per sentence: finals of the stream over its sentences (1.0 is one
  final a sentence; a long sentence split at 10 s counts more).

The same Spoken lectures played against a worker of an older tree give the
before figures (see ``bench/README.md``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.pipeline import run_streams, summary, wer, words
from bench.speech import LECTURE, VOICES, Spoken, fluent, pick_sentences, write_wav
from bench.worker import WorkerProcess

__all__ = ["fluent_lectures", "fluent_part", "sentence_rows"]


def fluent_lectures(sentences: int, streams: int, stream_speech_s: float) -> list[Spoken]:
    """The main fluent lecture (the first ``sentences`` of the lecture, one voice), then
    ``streams`` others: sentences rotated per stream, a new voice per sentence."""
    out = [fluent(LECTURE[:sentences])]
    for k in range(streams):
        texts = pick_sentences(LECTURE, stream_speech_s, rotate=3 * k)
        out.append(fluent(texts, seed=17 + k, voices=VOICES[k % len(VOICES):] + VOICES[:k % len(VOICES)]))
    return out


def _aligned_final(sentence_words: list[list[str]], hyp: list[str]) -> list[int | None]:
    """For each sentence, the index in ``hyp`` of its last recognised word (None: lost)."""
    import jiwer

    ref = [w for ws in sentence_words for w in ws]
    if not ref or not hyp:
        return [None] * len(sentence_words)
    to_hyp: dict[int, int] = {}
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                to_hyp[chunk.ref_start_idx + k] = chunk.hyp_start_idx + k
    out, at = [], 0
    for ws in sentence_words:
        found = [to_hyp[i] for i in range(at, at + len(ws)) if i in to_hyp]
        out.append(found[-1] if found else None)
        at += len(ws)
    return out


def sentence_rows(rows: list[dict], spoken: Spoken, with_text: bool) -> list[dict]:
    """One record per sentence of ``spoken``: the final that holds it and its latencies."""
    finals = sorted((r for r in rows if r["type"] == "final"), key=lambda r: r["utt"])
    commits: dict[int, list[dict]] = {}
    for row in rows:
        if row["type"] == "commit":
            commits.setdefault(row["utt"], []).append(row)
    shown: dict[int, list[tuple[float, list[str]]]] = {}
    for row in rows:
        shown.setdefault(row["utt"], []).append((row["t"], words(row["text"])))
    hyp: list[str] = []
    owner: list[int] = []
    for i, final in enumerate(finals):
        ws = words(final["text"])
        hyp += ws
        owner += [i] * len(ws)
    places = _aligned_final([words(t) for t in spoken.texts], hyp) if with_text else [None] * len(spoken.texts)
    out = []
    for (start, end), place in zip(spoken.spans, places, strict=True):
        if place is not None:
            final = finals[owner[place]]
        else:
            final = next((f for f in finals if f["start"] <= end <= f["end"] + 0.05), None)
        record = {"start": round(start, 3), "end": round(end, 3), "lost": with_text and place is None,
                  "utt": final["utt"] if final else None,
                  "final_latency_s": round(final["t"] - end, 3) if final else None,
                  "visible_latency_s": None}
        if place is not None:
            first = owner.index(owner[place])
            committed = next((r["t"] for r in commits.get(final["utt"], ())
                              if len(words(r["text"])) > place - first), None)
            if committed is not None and committed < final["t"]:
                record["final_latency_s"] = round(committed - end, 3)
                record["committed"] = True
            tail = hyp[max(place - 1, first):place + 1]
            seen = next((t for t, ws in shown.get(final["utt"], [])
                         if any(ws[i:i + len(tail)] == tail for i in range(len(ws) - len(tail) + 1))), None)
            record["visible_latency_s"] = round(seen - end, 3) if seen is not None else None
        out.append(record)
    return out


def _stats(per_sentence: list[dict], finals: int) -> dict:
    final = [s["final_latency_s"] for s in per_sentence if s["final_latency_s"] is not None]
    visible = [s["visible_latency_s"] for s in per_sentence if s["visible_latency_s"] is not None]
    return {"sentences": len(per_sentence), "finals": finals,
            "finals_per_sentence": round(finals / len(per_sentence), 3) if per_sentence else None,
            "committed_sentences": sum(bool(s.get("committed")) for s in per_sentence),
            "lost_sentences": sum(s["lost"] for s in per_sentence),
            "final_latency_s": summary(final), "visible_latency_s": summary(visible)}


def fluent_part(worker: WorkerProcess, spokens: list[Spoken], workdir: Path, with_text: bool) -> dict:
    """All of ``spokens`` at real time at once against ``worker``, scored per sentence."""
    workdir.mkdir(parents=True, exist_ok=True)
    wavs = [write_wav(workdir / f"fluent-{k}.wav", s.pcm) for k, s in enumerate(spokens)]
    meter = worker.meter()
    streams = asyncio.run(run_streams(worker.url, worker.key_file, wavs, workdir))
    usage = meter.stop().as_dict()
    per_sentence, finals, wers = [], 0, []
    for rows, spoken in zip(streams, spokens, strict=True):
        per_sentence += sentence_rows(rows, spoken, with_text)
        mine = sorted((r for r in rows if r["type"] == "final"), key=lambda r: r["utt"])
        finals += len(mine)
        if with_text:
            wers.append(wer(spoken.text, " ".join(r["text"] for r in mine)))
    out = {"streams": len(spokens), **_stats(per_sentence, finals), "worker": usage,
           "per_sentence": per_sentence}
    if with_text:
        out["streamed_wer"] = round(sum(wers) / len(wers), 4)
    return out
