"""Decks made on the spot: PowerPoint with python-pptx, PDF with fpdf2, Markdown as text.

Also used by ``bench/slides_bench.py``. Nothing is downloaded; the Chinese PDF
uses the Noto CJK font of the Debian package fonts-noto-cjk when it is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["CJK_FONT", "LECTURE_DECK", "write_pptx", "write_pdf", "write_markdown", "grouped_table_pptx"]

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

#: (title, bullets, notes) of a 12-slide deck about neural networks
LECTURE_DECK: list[tuple[str, list[str], str]] = [
    ("Neural Networks", ["A perceptron computes a weighted sum of its inputs",
                         "Stacking layers gives a multilayer perceptron"], "Welcome, course logistics"),
    ("Activation Functions", ["Sigmoid squashes values between zero and one",
                              "Tanh is centred at zero", "ReLU keeps positive values"], ""),
    ("Loss Functions", ["Mean squared error for regression",
                        "Cross-entropy loss for classification with softmax outputs"], ""),
    ("Gradient Descent", ["Follow the negative gradient of the loss",
                          "The learning rate sets the step size"], "Draw the valley picture"),
    ("Backpropagation", ["The chain rule gives every partial derivative",
                         "Gradients flow backwards through the computational graph"], ""),
    ("Stochastic Gradient Descent", ["Minibatches estimate the gradient cheaply",
                                     "Noise helps escape saddle points"], ""),
    ("Momentum and Adam", ["Momentum accumulates a velocity",
                           "Adam adapts the learning rate per parameter"], ""),
    ("Regularization", ["Overfitting means low training error but high test error",
                        "Weight decay and dropout fight overfitting"], ""),
    ("Convolutional Networks", ["Convolution kernels slide over the image",
                                "Pooling reduces the feature map resolution"], ""),
    ("Recurrent Networks", ["An LSTM keeps a memory cell across time steps",
                            "Vanishing gradients make long sequences hard"], ""),
    ("Attention and Transformers", ["Self-attention compares queries with keys",
                                    "The transformer stacks attention and feedforward layers"], ""),
    ("Summary", ["Backpropagation plus gradient descent trains the whole network",
                 "Next week: embeddings and tokenization"], "Remind them of the homework"),
]


def write_pptx(path: Path, slides: Sequence[tuple[str, Sequence[str], str]]) -> Path:
    """A .pptx with a title, a bulleted body and speaker notes per slide."""
    from pptx import Presentation

    prs = Presentation()
    for title, bullets, notes in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0] if bullets else ""
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    prs.save(str(path))
    return path


def grouped_table_pptx(path: Path) -> Path:
    """One slide: text boxes out of order on the page, a group of two boxes, a table, notes."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    slide.shapes.title.text = "Layout Test"

    def box(shapes, left, top, text):
        shape = shapes.add_textbox(Inches(left), Inches(top), Inches(2), Inches(0.5))
        shape.text_frame.text = text
        return shape

    box(slide.shapes, 5, 4, "bottom right")  # added first, read last
    box(slide.shapes, 0.5, 2.15, "upper left")  # a little lower than its neighbour: same row
    box(slide.shapes, 5, 2.05, "upper right")
    group = slide.shapes.add_group_shape()
    box(group.shapes, 0.5, 3, "grouped one")
    box(group.shapes, 3, 3, "grouped two")
    rows = slide.shapes.add_table(2, 2, Inches(0.5), Inches(5), Inches(4), Inches(1)).table
    for r, row in enumerate((("term", "meaning"), ("ReLU", "rectified linear unit"))):
        for c, text in enumerate(row):
            rows.cell(r, c).text = text
    slide.notes_slide.notes_text_frame.text = "say the table aloud"
    prs.save(str(path))
    return path


def write_pdf(path: Path, pages: Sequence[Sequence[str]], *, font: Path | None = None,
              password: str | None = None, footer: str = "") -> Path:
    """A PDF with one page per item, each line of text below the last (first line: title)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape")
    pdf.set_auto_page_break(False)
    family = "Helvetica"
    if font is not None:
        pdf.add_font("cjk", fname=str(font))
        family = "cjk"
    if password is not None:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    for number, lines in enumerate(pages, 1):
        pdf.add_page()
        pdf.set_font(family, size=24)
        for line in lines:
            pdf.cell(0, 14, line, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font(family, size=16)
        if footer:
            pdf.set_y(-20)
            pdf.cell(0, 8, f"{footer}    {number}", new_x="LMARGIN", new_y="NEXT")
        if not lines:
            pdf.rect(20, 20, 200, 120, style="F")  # a picture, no text: like a scanned page
    pdf.output(str(path))
    return path


def write_markdown(path: Path, slides: Sequence[tuple[str, Sequence[str], str]]) -> Path:
    parts = []
    for title, bullets, notes in slides:
        block = f"# {title}\n" + "".join(f"- {b}\n" for b in bullets)
        parts.append(block + (f"<!-- {notes} -->\n" if notes else ""))
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


#: the order a lecturer shows LECTURE_DECK's slides in, going back twice
SCHEDULE = [1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12]
FILLERS = [
    "okay so let us think about this for a moment",
    "does that make sense to everyone",
    "I will leave this up for a second",
    "you will see this again in the homework",
    "right, good question",
]


def synthetic_talk(schedule: Sequence[int] = SCHEDULE, *, per_slide: int = 5, seed: int = 0
                   ) -> list[tuple[int, str]]:
    """(slide number, caption) pairs of a talk that follows ``schedule`` through LECTURE_DECK.

    Each caption rewords a bullet of the slide on screen (some of its words dropped,
    filler added) or is pure filler, so the text alone is a noisy guide to the slide.
    """
    import random

    rng = random.Random(seed)
    talk: list[tuple[int, str]] = []
    for number in schedule:
        title, bullets, _ = LECTURE_DECK[number - 1]
        for _ in range(per_slide):
            if rng.random() < 0.2:
                talk.append((number, rng.choice(FILLERS)))
                continue
            words = rng.choice(bullets + [title]).lower().split()
            kept = [w for w in words if rng.random() < 0.7] or words[:1]
            talk.append((number, f"{rng.choice(['so', 'and', 'now', 'here'])} {' '.join(kept)} {rng.choice(FILLERS)}"))
    return talk
