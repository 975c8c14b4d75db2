"""Readers for each deck format: ``(number, title, text, notes)`` per slide.

Called by :func:`slides.deck.read_deck`, which checks the suffix and the size
first and cleans and limits the text afterwards. Each reader turns what its
parser raises on a bad file into one :class:`~slides.errors.DeckError`.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .deck import MAX_DECK_CHARS, MAX_FIELD_CHARS, MAX_SLIDES, clean_text
from .errors import DeckError

__all__ = ["read_pptx", "read_pdf", "read_text", "split_text"]

#: a .pptx is a zip: refuse more than this unpacked (zip bombs) or this many members
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
MAX_ZIP_MEMBERS = 20_000
#: PDF lines on at least this share of pages (and at least 4 pages) are running headers/footers
RUNNING_SHARE = 0.6

#: shapes whose tops are this close (a quarter inch, in EMU) are read as one row, left to right
ROW_EMU = 228_600

Item = tuple[int, str, str, str]


def _too_many(name: str, count: int, unit: str = "slides") -> DeckError:
    return DeckError(f"{name} has {count} {unit}, more than the {MAX_SLIDES} a deck may have: "
                     "pass a shorter deck (e.g. only this lecture's part)")


# -- PowerPoint ------------------------------------------------------------------


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise DeckError(f"{path.name} is not a readable .pptx file (corrupt, or password "
                        "protected? save it again without a password)") from None
    if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
        raise DeckError(f"{path.name} unpacks to more than {MAX_UNZIPPED_BYTES // 2**20} MiB: "
                        "export it without media, or as PDF")


def read_pptx(path: Path) -> list[Item]:
    """Slides of a PowerPoint file: title, body in reading order (groups, tables), notes."""
    _check_zip(path)
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        presentation = pptx.Presentation(str(path))
        count = len(presentation.slides)
        if count > MAX_SLIDES:
            raise _too_many(path.name, count)
        return [_pptx_slide(n, slide) for n, slide in enumerate(presentation.slides, 1)]
    except DeckError:
        raise
    except (PackageNotFoundError, KeyError, ValueError, AttributeError, TypeError, SyntaxError,
            zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        # lxml's XMLSyntaxError is a SyntaxError; an encrypted or oddly compressed zip member
        # raises RuntimeError or NotImplementedError
        raise DeckError(f"{path.name} is not a readable .pptx file ({type(exc).__name__}: "
                        f"{str(exc)[:120]}): save it again from PowerPoint") from None


def _pptx_slide(number: int, slide) -> Item:
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text if title_shape is not None and title_shape.has_text_frame else ""
    skip = {title_shape.shape_id} if title_shape is not None else set()
    blocks = [text for text in _shapes_text(slide.shapes, skip) if text.strip()]
    if not title.strip() and blocks:
        first, _, rest = blocks[0].strip().partition("\n")
        title, blocks[0] = first, rest
    notes = ""
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text
    return number, title, "\n".join(b for b in blocks if b.strip()), notes


def _position(shape) -> tuple[int, int]:
    """Row (tops within a quarter inch are one row), then left edge."""
    return ((shape.top or 0) // ROW_EMU, shape.left or 0)


def _shapes_text(shapes, skip: set[int]) -> Iterator[str]:
    """Text of ``shapes`` top to bottom, then left to right; groups in place, recursively."""
    from pptx.enum.shapes import PP_PLACEHOLDER
    from pptx.shapes.group import GroupShape

    furniture = {PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER}
    for shape in sorted(shapes, key=_position):
        if shape.shape_id in skip:
            continue
        if shape.is_placeholder and shape.placeholder_format.type in furniture:
            continue
        # By class, not shape_type: python-pptx raises on shape_type for ink and other
        # shapes it does not model; those hold no text we can read and are skipped.
        if isinstance(shape, GroupShape):
            yield from _shapes_text(shape.shapes, skip)
        elif getattr(shape, "has_table", False):
            yield _table_text(shape.table)
        elif getattr(shape, "has_text_frame", False):
            yield shape.text_frame.text


def _table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells = [cell.text.replace("\n", " ").strip() for cell in row.cells]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# -- PDF -----------------------------------------------------------------------


def read_pdf(path: Path) -> list[Item]:
    """Pages of a PDF with a text layer: title = first line, running headers/footers dropped."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise DeckError(f"{path.name} is password protected: save an unprotected copy "
                            "(or export the slides again without a password)") from None
        raise DeckError(f"{path.name} is not a readable PDF (corrupt?): {exc}") from None
    try:
        count = len(document)
        if count > MAX_SLIDES:
            raise _too_many(path.name, count, "pages")
        pages, chars = [], 0
        for i in range(count):  # bounded as it is read: compressed streams can expand hugely
            pages.append(_pdf_page_text(document, i))
            chars += sum(len(line) for line in pages[-1])
            if chars > MAX_DECK_CHARS:
                raise DeckError(f"{path.name} holds more than {MAX_DECK_CHARS:,} characters of text: "
                                "not a lecture deck we can use")
    except pdfium.PdfiumError as exc:
        raise DeckError(f"{path.name}: a page could not be read (corrupt PDF?): {exc}") from None
    finally:
        document.close()
    running = _running_lines(pages)
    items = []
    for number, lines in enumerate(pages, 1):
        kept = [line for line in lines if _digitless(line) not in running and not _page_number(line)]
        title = kept[0] if kept else ""
        items.append((number, title, "\n".join(kept[1:]), ""))
    return items


def _pdf_page_text(document, index: int) -> list[str]:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range(0, min(textpage.count_chars(), 2 * MAX_FIELD_CHARS))
        finally:
            textpage.close()
    finally:
        page.close()
    return [line for line in clean_text(text).split("\n") if line]


_PAGE_NUMBER = re.compile(r"^(?:(?:page|slide|p\.)\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$", re.I)


def _page_number(line: str) -> bool:
    return bool(_PAGE_NUMBER.match(line.strip()))


def _digitless(line: str) -> str:
    return re.sub(r"\d+", "#", line)


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Lines that repeat on most pages but for their numbers (course name and page in a footer)."""
    if len(pages) < 4:
        return set()
    counts = Counter(key for lines in pages for key in {_digitless(line) for line in lines})
    return {line for line, n in counts.items() if n >= RUNNING_SHARE * len(pages)}


# -- Markdown and plain text ---------------------------------------------------

_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^ {0,3}(?:-{3,}|\*{3,}|_{3,})\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_FRONT_MATTER_LINE = re.compile(r"^[\w-]+\s*:")


def read_text(path: Path) -> list[Item]:
    """Sections of a Markdown or text file: one slide per heading, ``---`` rule or form feed."""
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    return split_text(text)


def _strip_front_matter(lines: list[str]) -> list[str]:
    if not lines or not _RULE.match(lines[0]) or not lines[0].startswith("-"):
        return lines
    for i in range(1, min(len(lines), 40)):
        if _RULE.match(lines[i]):
            inner = [line for line in lines[1:i] if line.strip()]
            if all(_FRONT_MATTER_LINE.match(line) or line.startswith(" ") for line in inner):
                return lines[i + 1:]
            return lines
    return lines


def split_text(text: str) -> list[Item]:
    """``(number, title, text, notes)`` per section; HTML comments become speaker notes."""
    sections: list[tuple[str, list[str]]] = []
    title, body, code = "", [], False
    lines = _strip_front_matter(text.replace("\r\n", "\n").replace("\f", "\n---\n").split("\n"))

    def close() -> None:
        if title.strip() or any(line.strip() for line in body):
            sections.append((title, list(body)))

    for line in lines:
        if _FENCE.match(line):
            code = not code
        heading = None if code else _HEADING.match(line)
        if not code and _RULE.match(line):
            close()
            title, body = "", []
        elif heading:
            if title or any(b.strip() for b in body):
                close()
                body = []
            title = heading.group(1)
        else:
            body.append(line)
    close()
    items = []
    for number, (head, body_lines) in enumerate(sections, 1):
        block = "\n".join(body_lines)
        notes = "\n".join(m.strip() for m in _COMMENT.findall(block))
        block = _COMMENT.sub("", block).strip()
        if not head and block:
            head, _, block = block.partition("\n")
        items.append((number, head, block, notes))
    return items
