"""The sniffed type of an upload, from its first bytes; type patterns; inline safety; extensions."""

from __future__ import annotations

import gzip
import io
import random
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from baas.storage.sniff import (
    SNIFF_BYTES,
    allowed,
    extension_for,
    renders_active_content,
    sniff,
)


def image(fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (8, 6), "red").save(out, fmt)
    return out.getvalue()


def zipped(*entries: tuple[str, str], deflate: bool = False) -> bytes:
    out = io.BytesIO()
    compression = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><script>alert(1)</script></svg>'
)
EBML = (
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82"
)
OOXML = "application/vnd.openxmlformats-officedocument"

CASES = [
    # images, made by Pillow
    ("png", image("PNG"), "image/png"),
    ("png rgba", image("PNG", "RGBA"), "image/png"),
    ("jpeg", image("JPEG"), "image/jpeg"),
    ("gif", image("GIF"), "image/gif"),
    ("webp", image("WEBP"), "image/webp"),
    ("bmp", image("BMP"), "image/bmp"),
    ("tiff", image("TIFF"), "image/tiff"),
    ("ico", image("ICO"), "image/vnd.microsoft.icon"),
    ("avif", image("AVIF"), "image/avif"),
    # documents, archives, media: their signatures
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
    ("pdf ascii", b"%PDF-1.4\n1 0 obj\n<< >>\n", "application/pdf"),
    ("zip", zipped(("a.txt", "hi")), "application/zip"),
    ("zip deflated", zipped(("a.txt", "hi" * 100), deflate=True), "application/zip"),
    ("gzip", gzip.compress(b"hello"), "application/gzip"),
    (
        "docx",
        zipped(("[Content_Types].xml", "<Types/>"), ("word/document.xml", "<w/>"), deflate=True),
        f"{OOXML}.wordprocessingml.document",
    ),
    (
        "xlsx",
        zipped(("docProps/app.xml", "<a/>"), ("xl/workbook.xml", "<w/>")),
        f"{OOXML}.spreadsheetml.sheet",
    ),
    ("pptx", zipped(("ppt/presentation.xml", "<p/>")), f"{OOXML}.presentationml.presentation"),
    (
        "odt",
        zipped(("mimetype", "application/vnd.oasis.opendocument.text"), ("content.xml", "<x/>")),
        "application/vnd.oasis.opendocument.text",
    ),
    (
        "epub",
        zipped(("mimetype", "application/epub+zip"), ("a.xhtml", "<x/>")),
        "application/epub+zip",
    ),
    ("zip saying it is html", zipped(("mimetype", "text/html"), ("a", "b")), "application/zip"),
    ("7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(40), "application/x-7z-compressed"),
    ("rar", b"Rar!\x1a\x07\x01\x00" + bytes(40), "application/vnd.rar"),
    ("sqlite", b"SQLite format 3\x00" + bytes(84), "application/vnd.sqlite3"),
    ("wasm", b"\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00", "application/wasm"),
    (
        "mp4 isom",
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(40),
        "video/mp4",
    ),
    ("mp4 mp42", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(40), "video/mp4"),
    ("webm", EBML + b"\x84webm" + bytes(40), "video/webm"),
    ("mkv", EBML + b"\x88matroska" + bytes(40), "video/x-matroska"),
    ("mp3 id3", b"ID3\x03\x00\x00\x00\x00\x00\x0f" + bytes(40), "audio/mpeg"),
    ("mp3 frame", b"\xff\xfb\x90\x64" + bytes(40), "audio/mpeg"),
    ("ogg", b"OggS\x00\x02\x00\x00" + bytes(40), "application/ogg"),
    ("wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), "audio/wav"),
    ("flac", b"fLaC\x00\x00\x00\x22" + bytes(40), "audio/flac"),
    # HTML, as a browser would sniff it
    ("doctype", b"<!doctype html><title>x</title>", "text/html"),
    ("DOCTYPE", b"<!DOCTYPE HTML PUBLIC>", "text/html"),
    ("leading spaces", b"  \r\n\t<html>", "text/html"),
    ("bom script", b"\xef\xbb\xbf<script>alert(1)</script>", "text/html"),
    ("upper case", b"<HTML><BODY>", "text/html"),
    ("comment", b"<!-- x --><p>hi</p>", "text/html"),
    ("comment no space", b"<!--x--><p>hi</p>", "text/html"),
    ("unterminated comment", b"<!-- x", "text/html"),
    ("a", b"<a href='javascript:alert(1)'>x</a>", "text/html"),
    ("b", b"<b>bold</b>", "text/html"),
    ("br self-closing", b"<br/>", "text/html"),
    ("iframe", b"<iframe src=x>", "text/html"),
    ("utf-16 html", "\ufeff<html><b>x</b>".encode("utf-16-le"), "text/html"),
    ("xhtml", b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">', "text/html"),
    # SVG and XML
    ("svg", SVG, "image/svg+xml"),
    ("svg after space", b"\n " + SVG, "image/svg+xml"),
    ("svg xml declaration", b'<?xml version="1.0" encoding="UTF-8"?>\n' + SVG, "image/svg+xml"),
    (
        "svg doctype",
        b'<?xml version="1.0"?>\n<!-- made by hand -->\n'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' + SVG,
        "image/svg+xml",
    ),
    (
        "svg doctype internal subset",
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x" [\n<!ENTITY ns "http://x/">\n]>\n'
        + SVG,
        "image/svg+xml",
    ),
    ("svg comment first", b"<!-- icon -->" + SVG, "image/svg+xml"),
    ("xml", b'<?xml version="1.0"?><note/>', "application/xml"),
    ("xml stylesheet", b'<?xml-stylesheet href="x.xsl"?><note/>', "application/xml"),
    ("xml cut in its declaration", b'<?xml version="1.0" enc', "application/xml"),
    # JSON
    ("json object", b'{"a": [1, 2, {"b": null}]}', "application/json"),
    ("json array", b' \n[{"id": 1}, {"id": 2}]', "application/json"),
    ("json empty", b"{}", "application/json"),
    ("json cut", b'{"items": [' + b'"abcdefgh", ' * (SNIFF_BYTES // 12), "application/json"),
    ("json bom", b"\xef\xbb\xbf[1, 2]", "application/json"),
    # text
    ("ascii", b"hello world\n", "text/plain"),
    ("accents", "héllo wörld, ça va ?".encode(), "text/plain"),
    ("cut in a character", "café".encode()[:4], "text/plain"),
    ("cut after accents", "naïve é".encode() * 500 + "é".encode()[:1], "text/plain"),
    ("bracketed", b"[Unit]\nDescription=x\n", "text/plain"),
    ("braced", b"{not json}", "text/plain"),
    ("markdown", b"# Title\n\n<b>not first</b>", "text/plain"),
    ("script later", b"hello <script>alert(1)</script>", "text/plain"),
    ("bare tag", b"<html", "text/plain"),
    ("php", b"<?php echo 1; ?>", "text/plain"),
    ("looks like bmp", b"BMW is a car\n", "text/plain"),
    ("looks like mp3", b"ID3 tags explained\n", "text/plain"),
    ("looks like mail", b"From: me\nTo: you\n\nhi\n", "text/plain"),
    ("utf-16 text", "\ufeffplain text".encode("utf-16-le"), "text/plain"),
    ("empty", b"", "text/plain"),
    # bytes
    ("all bytes", bytes(range(256)), "application/octet-stream"),
    ("random", random.Random(7).randbytes(SNIFF_BYTES), "application/octet-stream"),
    ("nul in text", b"hello\x00world", "application/octet-stream"),
    ("latin-1", "café".encode("latin-1") + b" au lait", "application/octet-stream"),
]


@pytest.mark.parametrize(("head", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sniff(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_html_named_png_is_html() -> None:
    """Only the bytes count: there is no name or declared type to be fooled by."""
    assert sniff(b"<html><body onload=alert(1)>x.png") == "text/html"


def test_only_the_head_counts() -> None:
    """An SVG closing tag at the end of a binary head is no SVG (puremagic reads footers)."""
    assert sniff(b"\x00\x01\x02\x03" * 10 + b"</svg>\n") == "application/octet-stream"


@given(st.binary(max_size=SNIFF_BYTES))
def test_sniff_always_answers(head: bytes) -> None:
    mime = sniff(head)
    assert mime == mime.strip().lower()
    assert mime.count("/") == 1


@given(
    st.sampled_from([b"", b"\xef\xbb\xbf"]),
    st.text(alphabet="\t\n\x0c\r ", max_size=20),
    st.sampled_from([b"<html>", b"<SCRIPT>", b"<!DOCTYPE html>", b"<Body ", b"<p>", b"<!-- -->"]),
    st.binary(max_size=200),
)
def test_html_stays_html(bom: bytes, space: str, tag: bytes, rest: bytes) -> None:
    assert sniff(bom + space.encode() + tag + rest) == "text/html"


@pytest.mark.parametrize(
    ("mime", "patterns", "expected"),
    [
        ("image/png", [], True),
        ("image/png", ["image/png"], True),
        ("image/png", ["image/*"], True),
        ("image/png", ["IMAGE/PNG"], True),
        ("Image/PNG", ["image/*"], True),
        ("image/svg+xml", ["image/*"], True),
        ("image/png", ["image/jpeg", "application/pdf"], False),
        ("text/html", ["image/*"], False),
        ("application/pdf", ["image/*", "application/pdf"], True),
        ("text/plain; charset=utf-8", ["text/plain"], True),
        ("imagex/png", ["image/*"], False),
        ("image/png", ["*"], False),
    ],
)
def test_allowed(mime: str, patterns: list[str], expected: bool) -> None:
    assert allowed(mime, patterns) is expected


@pytest.mark.parametrize(
    "mime",
    [
        "text/html",
        "TEXT/HTML; charset=utf-8",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/rss+xml",
        "message/rfc822",
    ],
)
def test_renders_active_content(mime: str) -> None:
    assert renders_active_content(mime)


@pytest.mark.parametrize(
    "mime",
    ["image/png", "image/jpeg", "text/plain", "text/css", "application/pdf", "application/json"],
)
def test_does_not_render_active_content(mime: str) -> None:
    assert not renders_active_content(mime)


@pytest.mark.parametrize(
    ("mime", "extension"),
    [
        ("image/png", ".png"),
        ("image/jpeg", ".jpg"),
        ("image/gif", ".gif"),
        ("image/webp", ".webp"),
        ("image/svg+xml", ".svg"),
        ("application/pdf", ".pdf"),
        ("text/plain", ".txt"),
        ("text/plain; charset=utf-8", ".txt"),
        ("application/json", ".json"),
        ("text/html", ".html"),
        ("application/xml", ".xml"),
        ("video/mp4", ".mp4"),
        ("application/zip", ".zip"),
        ("application/gzip", ".gz"),
        (f"{OOXML}.wordprocessingml.document", ".docx"),
        ("audio/mpeg", ".mp3"),
        ("image/tiff", ".tiff"),
        ("text/csv", ".csv"),  # from Python's own table
        ("application/octet-stream", ""),
        ("application/x-nothing-known", ""),
        ("", ""),
    ],
)
def test_extension_for(mime: str, extension: str) -> None:
    assert extension_for(mime) == extension


def test_every_sniffed_type_has_an_extension() -> None:
    for name, head, expected in CASES:
        if expected != "application/octet-stream":
            assert extension_for(sniff(head)), name
