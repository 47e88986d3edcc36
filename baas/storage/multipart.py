"""multipart/form-data as a stream of part events, read as the body arrives (nothing spooled).

The parsing is python-multipart's; this module turns its callbacks into `Start`, `Data` and `End`
events the caller handles one by one (awaiting a storage write per chunk), so a 1 GB upload is
never in memory or on local disk, and each part's limit is checked as its bytes arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from baas.errors import InvalidParameter

MAX_PARTS = 200  # parts in one request (fields and files)


@dataclass(frozen=True, slots=True)
class Start:
    name: str
    filename: str | None  # None: a plain form field
    content_type: str  # as the client declared it (never trusted for files)


@dataclass(frozen=True, slots=True)
class Data:
    chunk: bytes


@dataclass(frozen=True, slots=True)
class End:
    pass


Event = Start | Data | End


def boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None for any other type."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    value = options.get(b"boundary")
    if not value or len(value) > 200:
        raise _bad("the multipart/form-data Content-Type needs a boundary")
    return value


async def events(body: AsyncIterator[bytes], marker: bytes) -> AsyncIterator[Event]:
    """The parts of `body` as events, in order; a malformed body is a 400."""
    pending: list[Event] = []
    header: dict[bytes, bytes] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    parts = 0
    finished = False

    def on_part_begin() -> None:
        header.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.append(data[start:end])

    def on_header_end() -> None:
        header[b"".join(field).lower()] = b"".join(value)
        field.clear()
        value.clear()

    def on_headers_finished() -> None:
        nonlocal parts
        parts += 1
        if parts > MAX_PARTS:
            raise _bad(f"a request holds at most {MAX_PARTS} parts", "too_many_parts")
        pending.append(_start(header))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if end > start:
            pending.append(Data(bytes(data[start:end])))

    def on_part_end() -> None:
        pending.append(End())

    def on_end() -> None:
        nonlocal finished
        finished = True

    parser = MultipartParser(
        marker,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    async for chunk in body:
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise _bad(f"the multipart body is malformed: {exc}") from None
        for event in pending:
            yield event
        pending.clear()
    if not finished:
        raise _bad("the multipart body ended before its closing boundary")


def _start(header: dict[bytes, bytes]) -> Start:
    disposition, options = parse_options_header(header.get(b"content-disposition", b""))
    name = options.get(b"name")
    if disposition != b"form-data" or name is None:
        raise _bad('each part needs Content-Disposition: form-data; name="..."')
    filename = options.get(b"filename")
    content_type = header.get(b"content-type", b"application/octet-stream")
    return Start(
        name.decode("utf-8", "replace"),
        filename.decode("utf-8", "replace") if filename is not None else None,
        content_type.decode("latin-1"),
    )


def _bad(message: str, code: str = "invalid_multipart") -> InvalidParameter:
    return InvalidParameter(message, code=code)
