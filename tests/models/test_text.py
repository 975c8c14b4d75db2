"""Cleaning SenseVoice's raw output: tags out of the text, into language, emotion, events."""

from __future__ import annotations

import pytest

from models.base import Transcript
from models.text import join_pieces, parse_sensevoice, strip_emoji


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "<|en|><|NEUTRAL|><|BGM|><|withitn|>Hello there.",
            Transcript("Hello there.", "en", "NEUTRAL", ("BGM",)),
        ),
        (
            "<|zh|><|HAPPY|><|Speech|><|withitn|>你好。<|zh|><|NEUTRAL|><|Laughter|><|woitn|>再见",
            Transcript("你好。再见", "zh", "HAPPY", ("Laughter",)),
        ),
        (
            "<|en|><|SAD|><|Speech|><|woitn|>the first part<|en|><|SAD|><|Applause|><|woitn|>and the second",
            Transcript("the first part and the second", "en", "SAD", ("Applause",)),
        ),
        (
            "<|yue|><|ANGRY|><|Cough|><|withitn|>唔該。<|en|><|SURPRISED|><|Cough|><|withitn|>Thank you!",
            Transcript("唔該。 Thank you!", "yue", "ANGRY", ("Cough",)),
        ),
        (
            "<|ja|><|EMO_UNKNOWN|><|Speech|><|withitn|>こんにちは、世界。",
            Transcript("こんにちは、世界。", "ja", "", ()),
        ),
        (
            "<|ko|><|FEARFUL|><|Cry|><|woitn|>안녕하세요 여러분",
            Transcript("안녕하세요 여러분", "ko", "FEARFUL", ("Cry",)),
        ),
        ("<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|woitn|>", Transcript("", "", "", ())),
        ("", Transcript("", "", "", ())),
    ],
)
def test_real_style_raw_output_becomes_clean_transcript(raw: str, expected: Transcript) -> None:
    assert parse_sensevoice(raw) == expected


def test_events_are_ordered_unique_and_exclude_speech() -> None:
    raw = (
        "<|en|><|NEUTRAL|><|Laughter|><|withitn|>one<|en|><|NEUTRAL|><|Speech|><|withitn|>two"
        "<|en|><|NEUTRAL|><|BGM|><|withitn|>three<|en|><|NEUTRAL|><|Laughter|><|withitn|>four"
    )
    assert parse_sensevoice(raw).events == ("Laughter", "BGM")


def test_first_real_language_and_emotion_win_over_nospeech_and_unknown() -> None:
    raw = "<|nospeech|><|EMO_UNKNOWN|><|Breath|><|woitn|><|en|><|DISGUSTED|><|Speech|><|woitn|>ugh"
    assert parse_sensevoice(raw) == Transcript("ugh", "en", "DISGUSTED", ("Breath",))


def test_unknown_and_malformed_tags_are_dropped_from_text() -> None:
    raw = "<|en|><|NEUTRAL|><|GBG|><|withitn|>keep <|foo_bar|>this|> text <|en"
    result = parse_sensevoice(raw)
    assert result.text == "keep this text"
    assert "<|" not in result.text and "|>" not in result.text
    assert result.events == ()


def test_emoji_from_rich_postprocessing_are_removed() -> None:
    # what funasr's rich_transcription_postprocess makes of tagged output
    raw = "🎼😀Hello there. 😊 Great 👏 job 👍🏽 ❤️ 🇨🇳 👨‍👩‍👧 1️⃣"
    assert parse_sensevoice(raw).text == "Hello there. Great job"


def test_emoji_stripping_keeps_cjk_punctuation_and_symbols() -> None:
    text = "今天25°C，天气很好！「引用」《书名》、…… © ½ café naïve → ok"
    assert strip_emoji(text) == text


def test_whitespace_is_normalised() -> None:
    raw = "<|en|><|NEUTRAL|><|Speech|><|withitn|>  lots \t of\n\n space  "
    assert parse_sensevoice(raw).text == "lots of space"


def test_pieces_join_without_space_only_between_cjk() -> None:
    assert join_pieces(["你好。", "再见"]) == "你好。再见"
    assert join_pieces(["Hello.", "How are you?"]) == "Hello. How are you?"
    assert join_pieces(["Hello.", "你好"]) == "Hello. 你好"
    assert join_pieces(["", "a", "", "b"]) == "a b"
