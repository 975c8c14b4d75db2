"""Word segmentation shared by the search index and the extractive outline.

Chinese is written without spaces, and SQLite FTS5's ``unicode61`` tokenizer
takes a whole run of Chinese characters as one token (so 梯度 would not find
梯度下降). Text with Chinese characters is therefore cut into words by jieba
(a dictionary segmenter) in its search mode, which also emits the shorter
dictionary words inside a long one (卷积神经网络 → 卷积, 神经, 网络, 神经网,
神经网络), and the words are joined by spaces for ``unicode61``. Text without
Chinese characters is left to ``unicode61`` as it is.

jieba loads its dictionary (about a second) on first use: once per process,
lazily, with its log messages silenced.
"""

from __future__ import annotations

import logging
import re
import threading
from types import ModuleType

from common.script import HAN_RUN, has_han

__all__ = [
    "segment_for_index",
    "query_terms",
    "chinese_words",
    "keywords",
    "has_han",
    "warm_up",
]

#: what ``unicode61`` keeps as token characters: letters and digits (not ``_``)
_TOKEN = re.compile(r"[^\W_]+")
_LATIN = re.compile(r"[a-zA-Z][a-zA-Z'\-]{2,}")
_STOP_EN = frozenset("""
the and for are but not you all any can had her was one our out has have him his how its may new now
old see two who did get got let put say she too use that this with from they will would there their
what when which were been into than then them these those some such only also just very more most
other about after again could should because being does doing each few here over same so own off
why where while your yours ours okay yeah right well like know think going want really actually
thing things gonna kind sort lot lots mean said says make made let's it's that's we're you're i'm
""".split())
#: two-character words a lecturer says all the time that name no topic
_STOP_ZH = frozenset("""
我们 你们 他们 她们 它们 大家 自己 这个 那个 这些 那些 这样 那样 这里 那里 这么 那么 什么 怎么 为什么
就是 其实 所以 因为 然后 但是 而且 或者 如果 虽然 还是 已经 可以 可能 应该 需要 一个 一些 一下 一点
时候 现在 知道 觉得 没有 不是 关于 原因 比如 例如 今天 上周 下周 同学 同学们 大概 非常 真的 的话
""".split())

_lock = threading.Lock()
_jieba: ModuleType | None = None


def _segmenter() -> ModuleType:
    """jieba, initialised once per process (thread-safe), its log quiet."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) rather than at the first Chinese text."""
    _segmenter()


def segment_for_index(text: str) -> str:
    """``text`` as space-separated words for FTS5 ``unicode61`` (jieba search mode for Chinese)."""
    if not has_han(text):
        return text
    return " ".join(w for w in _segmenter().lcut_for_search(text) if not w.isspace())


def _drop_covered(words: list[str]) -> list[str]:
    """Words of a search-mode cut, less each word that shorter words of the cut spell out.

    Search mode cuts 神经网络 into 神经, 网络, 神经网, 神经网络: a text holding the
    long word also holds the short ones, but a text where the segmenter split
    the phrase differently may hold only the short ones, so the query asks for those.
    """
    kept = []
    for word in words:
        covered = [False] * len(word)
        for other in words:
            if other != word and len(other) < len(word):
                at = word.find(other)
                while at >= 0:
                    covered[at : at + len(other)] = [True] * len(other)
                    at = word.find(other, at + 1)
        if not all(covered) and word not in kept:
            kept.append(word)
    return kept


def query_terms(query: str) -> list[list[str]]:
    """The query as groups of tokens: each group is one phrase for FTS5, groups are ANDed.

    A whitespace-separated chunk without Chinese is one phrase of its
    ``unicode61`` tokens (``self-attention`` → ``self attention``); a chunk with
    Chinese gives one group per word of jieba's search-mode cut. Everything is
    plain text: quotes, ``*``, ``-``, ``:``, parentheses, AND, NEAR have no
    special meaning. Tokens are lower-case.
    """
    groups: list[list[str]] = []
    for chunk in query.split():
        if not has_han(chunk):
            tokens = [t.lower() for t in _TOKEN.findall(chunk)]
            if tokens and tokens not in groups:
                groups.append(tokens)
            continue
        words = [t for w in _segmenter().lcut_for_search(chunk.lower()) for t in _TOKEN.findall(w)]
        for word in _drop_covered(words):
            if [word] not in groups:
                groups.append([word])
    return groups


def chinese_words(text: str) -> list[str]:
    """Chinese words of two characters or more in ``text``, in order (jieba's precise mode)."""
    if not has_han(text):
        return []
    return [w for w in _segmenter().lcut(text) if len(w) >= 2 and HAN_RUN.fullmatch(w)]


def keywords(text: str) -> list[str]:
    """Content words: lower-case Latin words of 3+ letters and Chinese words of 2+ characters, less stop words.

    Latin words come first, then Chinese words, each in the order of the text.
    """
    out = [w.lower() for w in _LATIN.findall(text) if w.lower() not in _STOP_EN]
    out.extend(w for w in chinese_words(text) if w not in _STOP_ZH)
    return out
