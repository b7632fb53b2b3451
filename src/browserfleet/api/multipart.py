"""A multipart/form-data request body streamed into files, never held in memory.

Every file part goes straight to a new file in the target directory (browsers.uploads makes
its name safe and unique); other fields are ignored. If the body breaks off or is refused,
every file this request created is removed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

from browserfleet.browsers.uploads import create_unique, safe_name
from browserfleet.errors import InvalidUpload

MAX_FILES = 20


@dataclass(slots=True)
class SavedFile:
    name: str
    path: Path
    size: int = 0


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    file: SavedFile | None = None
    fd: int | None = None


class _Collector:
    """The parser's callbacks: headers per part, and each file part's bytes queued for writing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved: list[SavedFile] = []
        self.pending: list[tuple[int, bytes]] = []  # (fd, data) to write once parsing returns
        self.finished = False
        self._part = _Part()
        self._header_field = b""
        self._header_value = b""
        self._open: list[int] = []

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self._part.headers.get(b"content-disposition"))
        filename = options.get(b"filename")
        if filename is None:
            return  # a plain form field: ignored
        if len(self.saved) >= MAX_FILES:
            raise InvalidUpload(f"at most {MAX_FILES} files per request")
        name = safe_name(filename.decode("utf-8", "replace"))
        path, fd = create_unique(self.directory, name)
        self._open.append(fd)
        self._part.file, self._part.fd = SavedFile(path.name, path), fd
        self.saved.append(self._part.file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.file is not None and part.fd is not None:
            part.file.size += end - start
            self.pending.append((part.fd, data[start:end]))

    def on_part_end(self) -> None:
        if self._part.fd is not None:
            self.pending.append((self._part.fd, b""))  # b"": close after the writes before it

    def on_end(self) -> None:
        self.finished = True

    def close_all(self) -> None:
        for fd in self._open:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open.clear()

    def flush(self) -> None:
        """Write what the parser produced (blocking; run in a thread)."""
        for fd, data in self.pending:
            if data:
                _write_all(fd, data)
            else:
                os.close(fd)
                self._open.remove(fd)
        self.pending.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def save_files(
    content_type: str | None, body: AsyncIterator[bytes], directory: Path
) -> list[SavedFile]:
    """Stream a multipart body into new files in `directory`; all or nothing."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidUpload("send the file as multipart/form-data")
    collector = _Collector(directory)
    parser = MultipartParser(boundary, _callbacks(collector))  # type: ignore[arg-type]
    try:
        async for chunk in body:
            parser.write(chunk)
            if collector.pending:
                await asyncio.to_thread(collector.flush)
        parser.finalize()
        await asyncio.to_thread(collector.flush)
        if not collector.finished:
            raise InvalidUpload("the multipart body ended early")
        if not collector.saved:
            raise InvalidUpload("no file part in the body (a part needs a filename)")
    except BaseException as exc:
        collector.close_all()
        for saved in collector.saved:
            with contextlib.suppress(OSError):
                saved.path.unlink()
        if isinstance(exc, ValueError):  # the parser's own errors
            raise InvalidUpload(f"malformed multipart body: {exc}") from None
        raise
    return collector.saved


def _callbacks(collector: _Collector) -> dict[str, object]:
    return {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_end",
        )
    }
