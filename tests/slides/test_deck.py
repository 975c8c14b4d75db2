"""Reading decks: PowerPoint, PDF, Markdown and text; Chinese; every kind of bad deck."""

from __future__ import annotations

import json
import zipfile

import pytest

from slides import DeckError, attach_deck, load_session_deck, read_deck
from slides import deck as deck_module
from slides.store import SLIDES_FILE

from .decks import CJK_FONT, LECTURE_DECK, grouped_table_pptx, write_markdown, write_pdf, write_pptx


def test_pptx_gives_titles_bodies_and_speaker_notes(tmp_path):
    deck = read_deck(write_pptx(tmp_path / "nn.pptx", LECTURE_DECK))
    assert [s.number for s in deck.slides] == list(range(1, 13))
    first = deck.slides[0]
    assert first.title == "Neural Networks"
    assert first.text == ("A perceptron computes a weighted sum of its inputs\n"
                          "Stacking layers gives a multilayer perceptron")
    assert first.notes == "Welcome, course logistics"
    assert deck.slides[4].label == "Slide 5 · Backpropagation"
    assert deck.source_name == "nn.pptx" and len(deck.sha256) == 64


def test_pptx_reads_groups_and_tables_top_to_bottom_then_left_to_right(tmp_path):
    slide = read_deck(grouped_table_pptx(tmp_path / "layout.pptx")).slides[0]
    assert slide.title == "Layout Test"
    assert slide.text.split("\n") == [
        "upper left", "upper right", "grouped one", "grouped two", "bottom right",
        "term | meaning", "ReLU | rectified linear unit",
    ]
    assert slide.notes == "say the table aloud"


def test_a_chinese_pptx_keeps_its_text(tmp_path):
    slides = [("卷积神经网络", ["卷积层提取特征", "池化层降低维度"], "先讲梯度下降")]
    slide = read_deck(write_pptx(tmp_path / "cnn.pptx", slides)).slides[0]
    assert (slide.title, slide.text, slide.notes) == ("卷积神经网络", "卷积层提取特征\n池化层降低维度", "先讲梯度下降")


def test_pdf_gives_one_slide_per_page_titled_by_its_first_line(tmp_path):
    pages = [["Gradient Descent", "Follow the negative gradient"], ["Backpropagation", "The chain rule"],
             ["Dropout", "Randomly drop units"], ["Summary", "Train the network"]]
    deck = read_deck(write_pdf(tmp_path / "deck.pdf", pages, footer="Deep Learning 101"))
    assert [(s.title, s.text) for s in deck.slides] == [tuple(p) for p in pages]


@pytest.mark.skipif(not CJK_FONT.is_file(), reason="needs fonts-noto-cjk")
def test_a_chinese_pdf_keeps_its_text(tmp_path):
    deck = read_deck(write_pdf(tmp_path / "zh.pdf", [["反向传播", "链式法则计算梯度"]], font=CJK_FONT))
    assert (deck.slides[0].title, deck.slides[0].text) == ("反向传播", "链式法则计算梯度")


def test_markdown_splits_at_headings_and_rules_and_keeps_comments_as_notes(tmp_path):
    path = tmp_path / "deck.md"
    path.write_text("---\nmarp: true\n---\n# One\n- a\n```python\n# not a heading\n```\n"
                    "<!-- say hello -->\n---\nTwo without heading\nbody\n## Three\ntext\n", encoding="utf-8")
    deck = read_deck(path)
    assert [(s.title, s.notes) for s in deck.slides] == [("One", "say hello"), ("Two without heading", ""),
                                                         ("Three", "")]
    assert "# not a heading" in deck.slides[0].text
    assert deck.slides[1].text == "body"


def test_text_with_form_feeds_is_split_into_pages(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text("Title A\nbody a\fTitle B\nbody b\n", encoding="utf-8")
    assert [(s.title, s.text) for s in read_deck(path).slides] == [("Title A", "body a"), ("Title B", "body b")]


@pytest.mark.parametrize("name, content, message", [
    ("talk.key", b"keynote", "unknown slides format '.key'.*export Keynote"),
    ("broken.pptx", b"PK\x03\x04 not a zip at all", "not a readable .pptx"),
    ("broken.pdf", b"%PDF-1.4\nnonsense", "not a readable PDF"),
    ("empty.md", b"", "is empty"),
])
def test_bad_files_get_one_clear_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DeckError, match=message):
        read_deck(path)


def test_a_zip_that_is_not_a_presentation_is_refused(tmp_path):
    path = tmp_path / "fake.pptx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a presentation")
    with pytest.raises(DeckError, match="not a readable .pptx"):
        read_deck(path)


def test_a_password_protected_pdf_says_so(tmp_path):
    path = write_pdf(tmp_path / "locked.pdf", [["Secret", "text"]], password="s3cret")
    with pytest.raises(DeckError, match="password protected"):
        read_deck(path)


def test_a_scan_without_a_text_layer_says_so(tmp_path):
    path = write_pdf(tmp_path / "scan.pdf", [[], []])
    with pytest.raises(DeckError, match="has no text.*OCR"):
        read_deck(path)


def test_a_missing_file_is_a_deck_error(tmp_path):
    with pytest.raises(DeckError, match="cannot read slides"):
        read_deck(tmp_path / "nowhere.pptx")


def test_more_than_300_slides_are_refused(tmp_path):
    md = tmp_path / "huge.md"
    md.write_text("".join(f"# Slide {i}\ntext\n" for i in range(500)), encoding="utf-8")
    with pytest.raises(DeckError, match="more than the 300|more than 300"):
        read_deck(md)
    pdf = write_pdf(tmp_path / "huge.pdf", [[f"Page {i}"] for i in range(301)])
    with pytest.raises(DeckError, match="301 pages, more than the 300"):
        read_deck(pdf)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(deck_module, "MAX_FILE_BYTES", 1000)
    path = write_pptx(tmp_path / "big.pptx", LECTURE_DECK[:1])
    with pytest.raises(DeckError, match="MiB a deck may have"):
        read_deck(path)


def test_a_deck_is_stored_in_the_session_and_read_back(tmp_path):
    folder = tmp_path / "session"
    deck = attach_deck(folder, write_markdown(tmp_path / "d.md", LECTURE_DECK))
    stored = json.loads((folder / SLIDES_FILE).read_text(encoding="utf-8"))
    assert stored["source_name"] == "d.md" and stored["sha256"] == deck.sha256
    assert stored["slides"][3]["title"] == "Gradient Descent"
    assert load_session_deck(folder) == deck


def test_a_bad_deck_leaves_the_stored_deck_alone(tmp_path):
    folder = tmp_path / "session"
    deck = attach_deck(folder, write_markdown(tmp_path / "d.md", LECTURE_DECK))
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 junk")
    with pytest.raises(DeckError):
        attach_deck(folder, tmp_path / "bad.pdf")
    assert load_session_deck(folder) == deck


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1, "slides": "x"}', b"[]",
                                     b'{"version": 1, "source_name": "a", "sha256": "b", '
                                     b'"slides": [{"number": true, "title": "t"}]}'])
def test_an_unreadable_slides_json_is_ignored_not_fatal(tmp_path, content):
    (tmp_path / SLIDES_FILE).write_bytes(content)
    assert load_session_deck(tmp_path) is None


def test_no_slides_json_means_no_deck(tmp_path):
    assert load_session_deck(tmp_path) is None


def test_a_pptx_over_the_slide_limit_is_refused_before_its_slides_are_read(tmp_path, monkeypatch):
    from slides import readers

    monkeypatch.setattr(readers, "MAX_SLIDES", 3)
    with pytest.raises(DeckError, match="has 4 slides, more than the 3"):
        read_deck(write_pptx(tmp_path / "long.pptx", LECTURE_DECK[:4]))


def test_a_pptx_that_unpacks_too_large_is_refused(tmp_path, monkeypatch):
    from slides import readers

    monkeypatch.setattr(readers, "MAX_UNZIPPED_BYTES", 10_000)
    with pytest.raises(DeckError, match="unpacks to more than"):
        read_deck(write_pptx(tmp_path / "bomb.pptx", LECTURE_DECK[:1]))
