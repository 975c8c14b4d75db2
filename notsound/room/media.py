"""The lecture's media for the room: recording parts (with Range), slide images, exports.

- A recording part is served by Starlette's ``FileResponse`` (``Range`` answered
  with 206, ``Accept-Ranges: bytes``). The part being written by a live run is
  served as long as it is at the moment of the request: the response never
  sends more than the size it announced, so the finished part replays while
  the lecture goes on.
- A PDF deck's page is rendered with pypdfium2 to PNG (encoded here with
  zlib, no imaging library) from ``slides.pdf`` in the session folder, kept in
  a small cache bounded by bytes; pdfium is not thread-safe, so one lock
  serialises every render. PPTX and text decks have no images.
- Exports are ``library.export`` as ``notsound export`` writes them.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

from starlette.responses import FileResponse
from starlette.types import Send

from library.export import export_session
from library.folder import translation_texts
from slides.store import SLIDES_PDF, slide_labels

from .paths import NotFound

__all__ = ["PartResponse", "SlideImages", "encode_png", "export_text", "EXPORT_TYPES"]

#: export format in the URL -> (library.export format, bilingual, file suffix, content type)
EXPORT_TYPES = {
    "srt": ("srt", False, "srt", "application/x-subrip; charset=utf-8"),
    "vtt": ("vtt", False, "vtt", "text/vtt; charset=utf-8"),
    "txt": ("txt", False, "txt", "text/plain; charset=utf-8"),
    "md": ("md", False, "md", "text/markdown; charset=utf-8"),
    "bilingual-srt": ("srt", True, "bilingual.srt", "application/x-subrip; charset=utf-8"),
    "bilingual-vtt": ("vtt", True, "bilingual.vtt", "text/vtt; charset=utf-8"),
}


class PartResponse(FileResponse):
    """A recording part: as ``FileResponse``, but a whole-file answer stops at the size it
    announced (the part of a live run grows while it is sent)."""

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if send_header_only:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        left = self.stat_result.st_size if self.stat_result is not None else 0
        async with self._open_file() as file:
            while True:
                chunk = await file.read(min(self.chunk_size, left)) if left > 0 else b""
                left -= len(chunk)
                more = bool(chunk) and left > 0
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return


def encode_png(width: int, height: int, rgb: bytes, stride: int) -> bytes:
    """An 8-bit RGB PNG of ``height`` rows of ``stride`` bytes (``width`` * 3 used)."""
    row = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:y * stride + row] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + \
        chunk(b"IEND", b"")


class SlideImages:
    """PDF pages as PNG, rendered once and kept (at most ``max_bytes`` of images).

    Attributes:
        width: pixels across a rendered page.
    """

    def __init__(self, width: int = 960, max_bytes: int = 48 << 20, max_pages: int = 2000):
        self.width = width
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._images: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # pdfium: one call at a time, in any thread

    def png(self, folder: Path, number: int) -> bytes:
        """Page ``number`` of the session's PDF deck as PNG; :class:`NotFound` when there is none."""
        path = folder / SLIDES_PDF
        try:
            st = path.stat()
        except OSError:
            raise NotFound(str(number)) from None
        key = (str(folder), st.st_size, st.st_mtime_ns, number)
        with self._lock:
            cached = self._images.get(key)
            if cached is not None:
                self._images.move_to_end(key)
                return cached
            image = self._render(path, number)
            self._images[key] = image
            self._bytes += len(image)
            while self._bytes > self.max_bytes and len(self._images) > 1:
                _, old = self._images.popitem(last=False)
                self._bytes -= len(old)
        return image

    def _render(self, path: Path, number: int) -> bytes:
        import pypdfium2 as pdfium

        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            raise NotFound(str(number)) from None
        try:
            if not 1 <= number <= min(len(document), self.max_pages):
                raise NotFound(str(number))
            page = document[number - 1]
            scale = self.width / max(1.0, page.get_width())
            bitmap = page.render(scale=min(scale, 4.0), rev_byteorder=True)
            try:
                if bitmap.n_channels != 3:
                    raise NotFound(str(number))
                return encode_png(bitmap.width, bitmap.height, bytes(bitmap.buffer), bitmap.stride)
            finally:
                bitmap.close()
                page.close()
        finally:
            document.close()


def export_text(folder: Path, kind: str, layer: str) -> tuple[str, str, str]:
    """``(text, file name, content type)`` of one export; :class:`NotFound` for an unknown kind
    or a bilingual export without translations."""
    if kind not in EXPORT_TYPES:
        raise NotFound(kind)
    fmt, bilingual, suffix, ctype = EXPORT_TYPES[kind]
    translations = None
    if bilingual:
        translations = translation_texts(folder)
        if not translations:
            raise NotFound(kind)
    labels = slide_labels(folder) if fmt == "md" else None
    text = export_session(folder, fmt, translations=translations, bilingual=bilingual,
                          slide_labels=labels, layer=layer)
    return text, f"{folder.name}.{suffix}", ctype
