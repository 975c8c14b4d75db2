"""Synthetic lecture transcripts: finals with realistic timing and topic structure.

About 140 words per minute of speech in English (about 260 characters in
Chinese), utterances of 2 to 12 seconds with short pauses, and a new topic
every ten minutes, so that token counts, chunking and the extractive scorer
see something shaped like a real lecture.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

__all__ = ["synthetic_finals", "write_session", "append_finals"]

TOPICS_EN = [
    ("gradient descent", ["learning rate", "loss function", "step size", "convergence", "minimum"]),
    ("backpropagation", ["chain rule", "partial derivative", "hidden layer", "weight update", "activation"]),
    ("regularization", ["overfitting", "weight decay", "dropout", "validation set", "penalty term"]),
    ("convolution", ["kernel", "feature map", "stride", "padding", "receptive field"]),
    ("attention", ["query vector", "key vector", "softmax", "context window", "transformer"]),
    ("optimisation", ["momentum", "adam optimiser", "batch size", "saddle point", "schedule"]),
    ("evaluation", ["precision", "recall", "confusion matrix", "test error", "baseline"]),
    ("generalisation", ["bias", "variance", "capacity", "training data", "sample size"]),
    ("probability", ["random variable", "expectation", "likelihood", "prior", "posterior"]),
]
TEMPLATES_EN = [
    "So the {a} is really about the {b}, and that is why we care about the {c}.",
    "Let me write this down: the {a} equals the {b} divided by the {c}, roughly {n}.",
    "If you remember last week, we said the {b} controls the {c}.",
    "Here is an example where the {a} is {n} and the {b} goes down quickly.",
    "A common mistake on the exam is to confuse the {b} with the {c}.",
    "Okay, any questions about the {a} before we move on to the {b}?",
    "In practice people choose the {b} by looking at the {c} on a plot.",
    "Notice that when the {b} is too large, the {a} does not settle at all.",
    "The definition in the textbook calls the {a} a function of the {c}.",
    "We will come back to the {c} when we talk about homework {n}.",
]
TOPICS_ZH = [
    ("梯度下降", ["学习率", "损失函数", "步长", "收敛", "最小值"]),
    ("反向传播", ["链式法则", "偏导数", "隐藏层", "权重更新", "激活函数"]),
    ("正则化", ["过拟合", "权重衰减", "随机失活", "验证集", "惩罚项"]),
    ("卷积", ["卷积核", "特征图", "步幅", "填充", "感受野"]),
    ("注意力", ["查询向量", "键向量", "归一化指数", "上下文窗口", "变换器"]),
]
TEMPLATES_ZH = [
    "所以{a}其实就是关于{b}的，这也是我们关心{c}的原因。",
    "我把它写下来：{a}等于{b}除以{c}，大概是{n}。",
    "大家还记得上周我们说过，{b}控制着{c}。",
    "举个例子，{a}是{n}的时候，{b}下降得很快。",
    "考试里常见的错误是把{b}和{c}搞混。",
    "好，关于{a}还有问题吗？然后我们讲{b}。",
    "实际中大家通过观察{c}的曲线来选择{b}。",
]


def _sentence(rng: random.Random, topic: tuple[str, list[str]], zh: bool) -> str:
    name, terms = topic
    b, c = rng.sample(terms, 2)
    template = rng.choice(TEMPLATES_ZH if zh else TEMPLATES_EN)
    return template.format(a=name, b=b, c=c, n=rng.choice(["0.01", "3", "42", "10 percent", "1e-4", "256"]))


def synthetic_finals(minutes: float, *, lang: str = "en", seed: int = 0, start_utt: int = 0) -> list[dict]:
    """Journal objects (``type: final``) for a lecture of about ``minutes`` minutes."""
    rng = random.Random(seed)
    zh = lang == "zh"
    topics = TOPICS_ZH if zh else TOPICS_EN
    rate = 4.3 if zh else 2.35  # characters or words per second of speech
    finals, t, utt = [], 0.0, start_utt
    while t < minutes * 60:
        topic = topics[int(t // 600) % len(topics)]
        text = "".join(_sentence(rng, topic, zh) for _ in range(rng.choice((1, 1, 2)))) if zh else \
            " ".join(_sentence(rng, topic, zh) for _ in range(rng.choice((1, 1, 2))))
        size = len(text) if zh else len(text.split())
        duration = size / rate
        finals.append({"type": "final", "utt": utt, "start": round(t, 2), "end": round(t + duration, 2),
                       "text": text, "lang": lang, "emotion": "NEUTRAL", "events": []})
        utt += 1
        t += duration + rng.uniform(0.3, 1.5)
    return finals


def append_finals(path: Path, finals: list[dict]) -> None:
    with Path(path).open("a", encoding="utf-8") as fh:
        for obj in finals:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_session(folder: Path, finals: list[dict], *, ended: bool = True, language: str = "auto") -> Path:
    """A session folder with ``transcript.jsonl`` and ``session.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    append_finals(folder / "transcript.jsonl", finals)
    meta = {"language": language, "engine": "fake", "model": "fake", "started": "2026-01-01T09:00:00"}
    if ended:
        meta["ended"] = "2026-01-01T10:30:00"
    (folder / "session.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder
