"""The slides benchmark's metrics and its parts that need no speech."""

from __future__ import annotations

from bench.slides_bench import alignment_bench, changed_correct_words, extraction_bench, term_found
from slides import Change, Corrector


def test_a_term_counts_only_when_its_words_are_there():
    assert term_found("cross-entropy", "we use the Cross entropy loss")
    assert term_found("ReLU", "the relu.")
    assert not term_found("backpropagation", "back propagation")
    assert not term_found("Adam", "atom and Adamson")


def test_changed_correct_words_counts_only_matching_words_under_a_change():
    sentence, term = "The perceptron adds up its weighted inputs.", "perceptron"
    raw = "The perceptrom adds up its weighted inputs."
    assert changed_correct_words(sentence, term, raw, Corrector(["perceptron"]).correct(raw).changes) == 0
    assert changed_correct_words(sentence, term, raw, Corrector(["weighed"]).correct(raw).changes) == 0
    wrong = Change(raw.index("inputs"), "inputs", "inputz", "spelling")  # a correct word, changed
    assert changed_correct_words(sentence, term, raw, [wrong]) == 1
    misheard = Change(raw.index("perceptrom"), "perceptrom", "perceptron", "spelling")
    assert changed_correct_words(sentence, term, raw, [misheard]) == 0


def test_extraction_and_text_alignment_parts_report_their_figures():
    figures = extraction_bench()
    assert set(figures) == {f"{k}: {m} s" for k in ("pptx 100 slides", "pdf 100 pages")
                            for m in ("read", "vocabulary")}
    assert all(v > 0 for v in figures.values())
    alignment = alignment_bench(seeds=range(1))
    assert alignment["captions"] == 80 and alignment["batch accuracy"] >= 0.85
