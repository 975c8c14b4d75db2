"""The extractive outline that keeps notes.md going without an LLM key."""

from __future__ import annotations

import asyncio
import re

from library.history import session_info
from summarizer import NotesTask
from summarizer.extractive import extractive_outline, terms
from summarizer.files import NOTES, NOTES_OUTLINE_LINE
from summarizer.transcript import Final

from .conftest import CANARY, llm_settings, notes_settings
from .synthetic import synthetic_finals, write_session


def test_terms_skip_stop_words():
    assert terms("So the Learning rate is what we tune") == ["learning", "rate", "tune"]


def test_chinese_terms_are_dictionary_words_not_character_pairs():
    assert terms("梯度下降的学习率") == ["梯度", "下降", "学习"]
    assert terms("所以我们用反向传播计算梯度") == ["反向", "传播", "计算", "梯度"]  # 所以, 我们: stop words


def test_a_chinese_outline_heading_names_words_that_were_said():
    said = ["梯度下降的学习率决定了收敛速度。", "学习率太大的时候，梯度下降不会收敛。",
            "我们用梯度下降求损失函数的最小值。", "梯度下降每一步沿着负梯度方向走。"]
    finals = [Final(i, 10.0 * i, 10.0 * i + 8, text, "zh") for i, text in enumerate(said)]
    heading, sentences = extractive_outline(finals, window_s=300, per_window=2)[0]
    top = heading.split(" · ")[1].split(", ")
    assert len(top) == 3 and "梯度" in top
    assert all(word in "".join(said) for word in top)
    assert not {"度下", "习率", "降的"} & set(top)  # pairs across word boundaries
    assert len(sentences) == 2


def test_the_most_informative_sentences_of_each_window_are_kept_in_order():
    finals = [
        Final(0, 0, 5, "Okay, so, yeah, right."),
        Final(1, 10, 15, "The eigenvalue of the covariance matrix gives the variance of the principal component."),
        Final(2, 20, 25, "Well, you know, that is it."),
        Final(3, 30, 35, "Principal component analysis projects data onto eigenvectors."),
        Final(4, 310, 315, "Next week: gradient descent and the learning rate."),
        Final(5, 320, 325, "Gradient descent follows the negative gradient downhill."),
    ]
    outline = extractive_outline(finals, window_s=300, per_window=2)
    assert [h.split(" · ")[0] for h, _ in outline] == ["00:00–05:00", "05:00–10:00"]
    first = [s.text for s in outline[0][1]]
    assert first == [finals[1].text, finals[3].text]
    assert "gradient" in outline[1][0] and "principal" in outline[0][0]


async def test_without_a_key_notes_md_is_an_outline_and_the_set_up_is_told_once_not_written(tmp_path):
    folder = write_session(tmp_path / "s", synthetic_finals(22))
    told: list[str] = []
    task = NotesTask(folder, None, notes_settings(every_s=60), None, told.append)
    stop = asyncio.Event()
    runner = asyncio.create_task(task.run(stop))
    for _ in range(600):  # until the running task has said so
        if told:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    await task.flush()
    text = (folder / NOTES).read_text()
    assert text.startswith(f"# Lecture notes — s\n\n{NOTES_OUTLINE_LINE}\n\n## 00:00–05:00 · ")
    assert "notsound notes --help" in NOTES_OUTLINE_LINE and len(NOTES_OUTLINE_LINE) < 80
    assert "API_KEY" not in text and [line for line in text.splitlines() if line.startswith("_")] == [
        NOTES_OUTLINE_LINE], "one short line, not the set-up instructions"
    windows = re.findall(r"^## (\d\d:\d\d)–(\d\d:\d\d) · (.+)$", text, re.M)
    assert [w[0] for w in windows] == ["00:00", "05:00", "10:00", "15:00", "20:00"]
    assert "gradient" in windows[0][2] and "backpropagation" in windows[2][2]  # topics last 10 min
    assert len(re.findall(r"^- \[\d\d:\d\d\] ", text, re.M)) == 5 * 3
    assert len(told) == 1 and "LLM notes are off" in told[0]
    assert all(name in told[0] for name in ("DEEPSEEK_API_KEY", "NOTSOUND_LLM_API_KEY", "NOTSOUND_LLM_KEY_FILE"))


async def test_a_key_added_later_replaces_the_outline_with_llm_notes(fake_llm, tmp_path):
    folder = write_session(tmp_path / "s", synthetic_finals(4))
    await NotesTask(folder, None, notes_settings(every_s=60)).flush()
    assert NOTES_OUTLINE_LINE in (folder / NOTES).read_text()
    task = NotesTask(folder, llm_settings(fake_llm), notes_settings(every_s=60), CANARY)
    await task.flush()
    text = (folder / NOTES).read_text()
    assert NOTES_OUTLINE_LINE not in text and "_Live notes by deepseek-chat" in text
    assert task.pending == 0 and len(task.state.sections) >= 2


async def test_without_a_key_existing_llm_notes_are_kept(fake_llm, tmp_path):
    folder = write_session(tmp_path / "s", synthetic_finals(3))
    await NotesTask(folder, llm_settings(fake_llm), notes_settings(every_s=60), CANARY).flush()
    before = (folder / NOTES).read_text()
    told: list[str] = []
    await NotesTask(folder, None, notes_settings(every_s=60), None, told.append).flush()
    assert (folder / NOTES).read_text() == before
    assert told and "keeps the LLM notes" in told[0]


async def test_without_a_key_history_titles_the_lecture_by_its_first_sentence_not_the_outlines_keywords(tmp_path):
    said = ["Today: the method of Lagrange multipliers.", "It might seem amiable to ask why.",
            "We might ask what a constraint costs, and ask again.", "The amiable answer might wait."]
    finals = [{"type": "final", "utt": i, "start": 20.0 * i, "end": 20.0 * i + 15, "text": text, "lang": "en"}
              for i, text in enumerate(said)]
    folder = write_session(tmp_path / "s", finals)
    await NotesTask(folder, None, notes_settings(every_s=60)).flush()
    heading = re.search(r"^## 00:00–05:00 · (.+)$", (folder / NOTES).read_text(), re.M)
    assert heading and "might" in heading.group(1), "the outline's sections keep their keywords"
    assert session_info(folder).title == "Today: the method of Lagrange multipliers"
