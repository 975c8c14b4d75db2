"""Benchmark of the lecture library: the search index (and, from its section below, ``ask``).

A library of synthetic lectures is written into a temporary lectures folder
in the journal format of ``notsound live`` (``library.folder.encode_final``):
by default 200 lectures of 90 minutes with 1,500 captions each, every other
one in Chinese. Each lecture has a subject (a handful of machine-learning
terms plus words drawn from a large vocabulary: made-up English words, and
real Chinese words from jieba's dictionary), so queries hit some lectures
and not others, as in a real library.

Index part — what it measures:
- build: ``open_index(out).update()`` on an empty index (jieba's dictionary load included);
- update after one new lecture: the incremental ``update()`` that finds and reads it
  (a Chinese one: jieba makes those the slower kind);
- update with nothing new: what every ``notsound search`` pays before searching;
- search latency p50/p95/max over ``--queries`` queries (English and Chinese
  words, two-word queries, FTS syntax, misses), limit 20, the index warm;
  target p95 ≤ 50 ms;
- index size on disk (WAL checkpointed).
Wall times are printed with CPU times beside them (``build_cpu_s``,
``search_cpu_ms``): on a shared machine the wall figures include waiting for a core.

    python bench/library_bench.py [--lectures 200] [--captions 1500] [--queries 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.script import HAN_RUN  # noqa: E402
from library.folder import Final, encode_final, write_meta  # noqa: E402
from library.index import INDEX_NAME, open_index  # noqa: E402
from tests.summarizer.synthetic import TOPICS_EN, TOPICS_ZH  # noqa: E402

LECTURE_S = 90 * 60
TARGET_P95_MS = 50.0

EN_TEMPLATES = [
    "so the {a} depends on the {b}", "let us write the {a} as a function of {b}",
    "remember that {a} and {b} are not the same", "here the {a} goes down when the {b} grows",
    "a typical mistake is to mix up {a} with {b}", "the {a} of {c} is what we compute next",
    "if the {b} is small then the {a} converges", "okay so {a} {b} and then {c}",
]
ZH_TEMPLATES = [
    "所以{a}取决于{b}", "我们把{a}写成{b}的函数", "注意{a}和{b}不是一回事", "当{b}变大的时候{a}会下降",
    "常见的错误是把{a}和{b}搞混", "接下来我们计算{c}的{a}", "如果{b}很小那么{a}就会收敛", "好那么{a}{b}然后是{c}",
]
QUERY_SYNTAX = ['"self-attention"', "gradient*", "NEAR(gradient descent)", "learning AND rate", "-dropout",
                'kernel:"stride"', "(softmax)", "梯度 OR 收敛"]


def english_vocabulary(rng: random.Random, size: int) -> list[str]:
    """Made-up but pronounceable English-like words ("velotrane"), distinct."""
    onsets, vowels, codas = "b c d f g k l m n p r s t v z br cl dr gr pl st tr".split(), "a e i o u ia ou".split(), \
        ["", "n", "r", "s", "l", "nt", "st"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 3)))
                  + rng.choice(codas))
    return sorted(words)


def chinese_vocabulary(rng: random.Random, size: int) -> list[str]:
    """Real words of 2-4 characters from jieba's dictionary (the common ones)."""
    import jieba

    words = []
    with jieba.dt.get_dict_file() as fh:
        for line in fh:
            word, freq = line.decode("utf-8").split()[:2]
            if 2 <= len(word) <= 4 and int(freq) >= 200 and HAN_RUN.fullmatch(word):
                words.append(word)
    return rng.sample(words, min(size, len(words)))


def _subject(rng: random.Random, zh: bool, vocab: list[str]) -> list[str]:
    topics = TOPICS_ZH if zh else TOPICS_EN
    words = [w for name, terms in rng.sample(topics, 2) for w in [name, *terms]]
    return words + rng.sample(vocab, 40)


def lecture_lines(rng: random.Random, zh: bool, vocab: list[str], captions: int) -> bytes:
    subject, templates = _subject(rng, zh, vocab), ZH_TEMPLATES if zh else EN_TEMPLATES
    weights = [1 / (rank + 1) for rank in range(len(subject))]  # Zipf-like: a few words dominate
    step, out = LECTURE_S / captions, []
    for utt in range(captions):
        a, b, c = rng.choices(subject, weights, k=3)
        text = rng.choice(templates).format(a=a, b=b, c=c)
        if rng.random() < 0.3:
            text += ("，" if zh else ", ") + rng.choice(templates).format(a=c, b=a, c=b)
        start = utt * step + rng.uniform(0, 0.4)
        out.append(encode_final(Final(utt, round(start, 2), round(start + step * 0.85, 2), text,
                                      "zh" if zh else "en")))
    return b"".join(out)


def write_library(out: Path, lectures: int, captions: int, seed: int = 0) -> dict[str, list[str]]:
    """``lectures`` session folders under ``out``; returns the vocabularies used."""
    rng = random.Random(seed)
    vocab = {"en": english_vocabulary(rng, 3000), "zh": chinese_vocabulary(rng, 3000)}
    for i in range(lectures):
        write_lecture(out, i, captions, vocab, rng)
    return vocab


def write_lecture(out: Path, i: int, captions: int, vocab: dict[str, list[str]], rng: random.Random) -> Path:
    zh = i % 2 == 1
    day, hour = divmod(i, 4)
    month, dom = divmod(day, 28)
    name = f"2026-{1 + month % 12:02d}-{1 + dom:02d}_{8 + 2 * hour:02d}00"
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "transcript.jsonl").write_bytes(lecture_lines(rng, zh, vocab["zh" if zh else "en"], captions))
    write_meta(folder, session=name, language="zh" if zh else "en", engine="synthetic",
               started=f"{name[:10]}T{name[11:13]}:00:00", ended=f"{name[:10]}T{name[11:13]}:30:00")
    return folder


def queries(rng: random.Random, vocab: dict[str, list[str]], count: int) -> list[str]:
    """A mix: topic terms, vocabulary words, two-word queries, FTS syntax, misses."""
    topic_terms = [w for topics in (TOPICS_EN, TOPICS_ZH) for name, terms in topics for w in [name, *terms]]
    makers: list[Callable[[], str]] = [
        lambda: rng.choice(topic_terms),
        lambda: rng.choice(vocab["en"]),
        lambda: rng.choice(vocab["zh"]),
        lambda: f"{rng.choice(vocab['en'])} {rng.choice(topic_terms[:45])}",
        lambda: rng.choice(vocab["zh"]) + rng.choice(vocab["zh"]),
        lambda: rng.choice(QUERY_SYNTAX),
        lambda: "xq" + rng.choice(vocab["en"]),  # no such word
    ]
    return [makers[i % len(makers)]() for i in range(count)]


def _index_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob(INDEX_NAME + "*"))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- index ------------------------------------------------------------------------


def index_part(args: argparse.Namespace, out: Path, vocab: dict[str, list[str]]) -> dict:
    began, cpu = time.perf_counter(), time.process_time()
    with open_index(out) as index:
        built = index.update()
    build_s, build_cpu_s = time.perf_counter() - began, time.process_time() - cpu
    size = _index_bytes(out)  # closing the last connection checkpointed the WAL
    new = args.lectures | 1  # an odd number: a Chinese lecture, the slower kind to index
    write_lecture(out, new, args.captions, vocab, random.Random(args.seed + 1))
    with open_index(out) as index:
        began = time.perf_counter()
        one = index.update()
        one_s = time.perf_counter() - began
        began = time.perf_counter()
        index.update()
        idle_s = time.perf_counter() - began
        rows = index.count()
        latencies, cpu_ms, hits = [], [], 0
        for query in queries(random.Random(args.seed + 2), vocab, args.queries):
            began, cpu = time.perf_counter(), time.thread_time()
            hits += len(index.search(query, limit=20))
            latencies.append((time.perf_counter() - began) * 1000)
            cpu_ms.append((time.thread_time() - cpu) * 1000)
    return {
        "lectures": args.lectures, "captions_per_lecture": args.captions, "rows": rows,
        "build_s": round(build_s, 2), "build_cpu_s": round(build_cpu_s, 2), "build_captions": built.captions,
        "update_one_lecture_s": round(one_s, 3), "update_one_lecture_captions": one.captions,
        "update_nothing_new_ms": round(idle_s * 1000, 1),
        "queries": len(latencies), "hits_per_query": round(hits / len(latencies), 1),
        "search_ms": {"p50": round(statistics.median(latencies), 2), "p95": round(_pct(latencies, 0.95), 2),
                      "max": round(max(latencies), 2)},
        "search_cpu_ms": {"p50": round(statistics.median(cpu_ms), 2), "p95": round(_pct(cpu_ms, 0.95), 2)},
        "search_p95_target_ms": TARGET_P95_MS, "search_p95_ok": _pct(latencies, 0.95) <= TARGET_P95_MS,
        "index_mb": round(size / 1e6, 1), "journals_mb": round(sum(
            p.stat().st_size for p in out.glob("*/transcript.jsonl")) / 1e6, 1),
    }


# -- ask --------------------------------------------------------------------------
# The ``ask`` measurement (prompt tokens per turn, repeated-prefix share) goes here as
# ``ask_part(args, out, vocab) -> dict``, registered in PARTS below.

PARTS: dict[str, Callable[[argparse.Namespace, Path, dict[str, list[str]]], dict]] = {"index": index_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lectures", type=int, default=200, help="lectures in the library (default 200)")
    parser.add_argument("--captions", type=int, default=1500, help="captions per lecture (default 1500)")
    parser.add_argument("--queries", type=int, default=300, help="search queries timed (default 300)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="notsound-library-") as tmp:
        out = Path(tmp) / "lectures"
        began = time.perf_counter()
        vocab = write_library(out, args.lectures, args.captions, args.seed)
        report = {"library": {"lectures": args.lectures, "captions": args.captions,
                              "generate_s": round(time.perf_counter() - began, 1)}}
        for part in parts:
            report[part] = PARTS[part](args, out, vocab)
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
