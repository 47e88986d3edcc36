"""The real content type of an upload, from its first bytes (never the client's word for it).

`sniff` trusts only the bytes: markup a browser would render (HTML, SVG, XML) is recognised the
way browsers sniff it (WHATWG MIME Sniffing), so "a .png that is HTML" is HTML; binary formats
come from puremagic's signatures, with zip and Matroska containers told apart here; then JSON,
plain text, and `application/octet-stream` for the rest. `allowed` matches a type against a
field's patterns, `renders_active_content` says which types must never be served inline, and
`extension_for` names a type's conventional extension.
"""

from __future__ import annotations

import codecs
import mimetypes
import re
from collections.abc import Sequence

import puremagic

SNIFF_BYTES = 4096  # how much of the start callers pass (more is fine)

OCTET_STREAM = "application/octet-stream"

INLINE_UNSAFE = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        # Chromium renders these as MHTML, a document with script.
        "message/rfc822",
        "multipart/related",
    }
)

_WHITESPACE = b"\t\n\x0c\r "
_TAG_END = frozenset(b"\t\n\x0c\r />")
_BINARY_BYTES = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))

# WHATWG "rules for identifying an unknown MIME type", the scriptable patterns (lowercase).
_HTML_TAGS = tuple(
    b"<" + tag
    for tag in (
        b"!doctype html",
        b"html",
        b"head",
        b"script",
        b"iframe",
        b"h1",
        b"div",
        b"font",
        b"table",
        b"a",
        b"style",
        b"title",
        b"b",
        b"body",
        b"br",
        b"p",
    )
)

_JSON_START = re.compile(
    rb"""\{\s*(?:"|\}|\Z)
       |\[\s*(?:[\[\]{"\-0-9]|true|false|null|\Z)""",
    re.VERBOSE,
)

# `<?xml ...?>`, `<?xml-stylesheet ...?>`, `<!DOCTYPE svg ... [internal subset]>`
_DECLARATION = re.compile(rb"<\?xml.*?\?>|<!doctype[^>\[]*(?:\[.*?\]\s*)?>", re.DOTALL)

_ZIP = b"PK\x03\x04"
_ZIP_MIMETYPES = re.compile(rb"application/(?:vnd\.oasis\.opendocument\.[a-z.-]+|epub\+zip)")
_OOXML = {
    b"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_EBML = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = re.compile(rb"\x42\x82[\x81-\x88](webm|matroska)")
_SIGNATURES = ((b"\x00asm", "application/wasm"),)  # formats puremagic does not know

# puremagic's names for some types, and the ones we answer with.
_CANONICAL = {
    "image/x-ms-bmp": "image/bmp",
    "image/x-icon": "image/vnd.microsoft.icon",
    "application/x-gzip": "application/gzip",
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "application/x-sqlite3": "application/vnd.sqlite3",
    "application/x-matroska": "video/x-matroska",
}

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/avif": ".avif",
    "image/heif": ".heif",
    "image/heic": ".heic",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/vnd.microsoft.icon": ".ico",
    "image/svg+xml": ".svg",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/html": ".html",
    "application/json": ".json",
    "application/xml": ".xml",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "application/ogg": ".ogg",
    "audio/wav": ".wav",
    "audio/flac": ".flac",
    "application/zip": ".zip",
    "application/gzip": ".gz",
    "application/x-tar": ".tar",
    "application/x-7z-compressed": ".7z",
    "application/vnd.rar": ".rar",
    "application/epub+zip": ".epub",
    "application/vnd.sqlite3": ".sqlite",
    "application/wasm": ".wasm",
    _OOXML[b"word/"]: ".docx",
    _OOXML[b"xl/"]: ".xlsx",
    _OOXML[b"ppt/"]: ".pptx",
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
}
_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")
# Python's built-in table only: the system's mime.types would make answers differ per host.
_PYTHON_TYPES = mimetypes.MimeTypes()


def sniff(head: bytes) -> str:
    """The MIME type of content starting with `head` (an empty file is empty text)."""
    if not head:
        return "text/plain"
    text = _ascii_compatible(head)
    textual = _is_text(text)
    return _markup_type(text) or _binary_type(head, textual) or _text_type(text, textual)


def allowed(mime: str, patterns: Sequence[str]) -> bool:
    """Whether `mime` matches one of `patterns` (`image/png`, `image/*`); no patterns: any type."""
    if not patterns:
        return True
    mime = _essence(mime)
    major = mime.split("/", 1)[0]
    return any(p == mime or p == f"{major}/*" for p in map(_essence, patterns))


def renders_active_content(mime: str) -> bool:
    """Whether a browser would run script in it, shown inline: served as an attachment then."""
    mime = _essence(mime)
    return mime in INLINE_UNSAFE or mime.endswith("+xml")


def extension_for(mime: str) -> str:
    """The conventional extension of `mime`, with its dot (".png"); "" when there is none."""
    mime = _essence(mime)
    if mime == OCTET_STREAM:
        return ""
    extension = _EXTENSIONS.get(mime) or _PYTHON_TYPES.guess_extension(mime, strict=False) or ""
    return extension if _EXTENSION.fullmatch(extension) else ""


def _essence(mime: str) -> str:
    """A MIME type without parameters, lowercase: "Text/HTML; charset=x" -> "text/html"."""
    return mime.split(";", 1)[0].strip().lower()


def _ascii_compatible(head: bytes) -> bytes:
    """`head` without its byte order mark; UTF-16 is transcoded to UTF-8 (bad units: U+FFFD)."""
    if head.startswith(_UTF8_BOM):
        return head[len(_UTF8_BOM) :]
    for bom, codec in _UTF16_BOMS:
        if head.startswith(bom):
            body = head[len(bom) :]
            return body[: len(body) // 2 * 2].decode(codec, errors="replace").encode()
    return head


def _is_text(data: bytes) -> bool:
    """No binary data byte, and UTF-8 (a character cut by the end of the head is fine)."""
    if not _BINARY_BYTES.isdisjoint(data):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _markup_type(data: bytes) -> str | None:
    """HTML, SVG or XML, by the first tag after the prolog (XML declaration, comments, doctype)."""
    lower = data.lower()
    at, prolog = _skip_prolog(lower)
    if prolog == "html":
        return "text/html"
    if _tag_at(lower, at, b"<svg"):
        return "image/svg+xml"
    if any(_tag_at(lower, at, tag) for tag in _HTML_TAGS):
        return "text/html"
    if prolog == "xml":
        return "application/xml"
    return "text/html" if prolog == "comment" else None


def _skip_prolog(lower: bytes) -> tuple[int, str | None]:
    """Where the first element may start, and what came before it: "xml" (a declaration, a
    processing instruction or a doctype), "comment" (only comments: WHATWG's `<!--` rule makes
    that HTML), "html" (an HTML doctype, or a comment that never ends) or None (no prolog)."""
    at, seen = 0, None
    while True:
        at = _skip_whitespace(lower, at)
        if lower.startswith(b"<!--", at):
            end = lower.find(b"-->", at + 4)
            if end < 0:
                return at, seen or "html"
            at, seen = end + 3, seen or "comment"
        elif _tag_at(lower, at, b"<!doctype html"):
            return at, "html"
        elif lower.startswith(b"<?xml", at) or lower.startswith(b"<!doctype", at):
            found = _DECLARATION.match(lower, at)
            if found is None:
                return at, "xml"
            at, seen = found.end(), "xml"
        else:
            return at, seen


def _skip_whitespace(data: bytes, at: int) -> int:
    while at < len(data) and data[at] in _WHITESPACE:
        at += 1
    return at


def _tag_at(data: bytes, at: int, tag: bytes) -> bool:
    """Whether `data` has `tag` at `at`, followed by a tag-terminating byte."""
    end = at + len(tag)
    return data.startswith(tag, at) and end < len(data) and data[end] in _TAG_END


def _text_type(text: bytes, textual: bool) -> str:
    """JSON (by its start: the head may cut it), plain text, or bytes."""
    if not textual:
        return OCTET_STREAM
    return "application/json" if _JSON_START.match(text.lstrip(_WHITESPACE)) else "text/plain"


def _binary_type(head: bytes, textual: bool) -> str | None:
    """A binary format known by its signature, or None."""
    if head.startswith(_ZIP):
        return _zip_type(head)
    if head.startswith(_EBML):
        return _ebml_type(head)
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return _puremagic_type(head, textual)


def _zip_type(head: bytes) -> str:
    """A zip archive, or the document format it carries: OpenDocument and EPUB by their first
    entry `mimetype`, Office Open XML by its part folders; the local file headers in `head` say."""
    names = []
    for match in re.finditer(re.escape(_ZIP), head):
        header = head[match.start() : match.start() + 30]
        if len(header) < 30:
            break
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        name = head[match.start() + 30 : match.start() + 30 + name_length]
        names.append(name)
        if name == b"mimetype" and len(names) == 1 and header[8:10] == b"\x00\x00":  # stored
            content = head[match.start() + 30 + name_length + extra_length :]
            found = _ZIP_MIMETYPES.match(content)
            if found:
                return found.group().decode()
    for folder, mime in _OOXML.items():
        if any(name.startswith(folder) for name in names):
            return mime
    return "application/zip"


def _ebml_type(head: bytes) -> str:
    """WebM or Matroska, by the EBML header's DocType."""
    found = _EBML_DOCTYPE.search(head, 0, 64)
    return "video/webm" if found and found.group(1) == b"webm" else "video/x-matroska"


def _puremagic_type(head: bytes, textual: bool) -> str | None:
    """puremagic's best guess among binary types; textual formats are decided elsewhere.

    Matches at the end of `head` are ignored (it is not the end of the file), and so are
    signatures of fewer than 4 bytes on content that reads as text ("BM" is no bitmap then).
    Ties of confidence go to the types this module knows, so answers do not hang on the order
    of puremagic's table.
    """
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return None
    shortest = 4 if textual else 1
    candidates = [
        (float(m.confidence), _CANONICAL.get(str(m.mime_type), str(m.mime_type)))
        for m in matches
        if m.mime_type and m.offset >= 0 and len(m.byte_match) >= shortest
    ]
    candidates = [(c, mime) for c, mime in candidates if not _is_textual(mime)]
    if not candidates:
        return None
    best = max(c for c, _ in candidates)
    tied = [mime for c, mime in candidates if c == best]
    return next((mime for mime in tied if mime in _EXTENSIONS), tied[0])


def _is_textual(mime: str) -> bool:
    """Types whose detection is ours (markup, JSON, text), never puremagic's."""
    major, _, minor = mime.partition("/")
    return major in ("text", "message") or any(
        word in minor for word in ("xml", "json", "html", "javascript", "ecmascript")
    )
