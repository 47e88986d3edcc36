"""File names: the client's name made safe to show, the stored name, and Content-Disposition.

A client's file name is never trusted as a path or a key: `display_name` keeps only a clean,
bounded last component to show and send back; `stored_name` derives the name used in records,
URLs and storage keys (an ASCII slug, random characters and the extension of the sniffed type),
which `STORED_NAME` validates before anything touches the database.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from typing import Literal
from urllib.parse import quote

MAX_NAME_CHARS = 150  # characters of a display name
MAX_SLUG_CHARS = 60  # characters of the stored name's readable part
RANDOM_CHARS = 10

STORED_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,70}_[a-z0-9]{10}(?:\.[a-z0-9]{1,10})?\Z")

_MAX_EXTENSION_CHARS = 16  # with the dot
_FALLBACK = "file"
# Controls, format characters (bidi overrides, zero-width) and lone surrogates.
_DROPPED = frozenset({"Cc", "Cf", "Cs"})
_PATH_SEPARATOR = re.compile(r"[/\\]")
_SPACES = re.compile(r" {2,}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")
_ALPHABET = string.ascii_lowercase + string.digits


def display_name(client_name: str | None) -> str:
    """The client's file name as it may be shown and sent back: never empty, never a path."""
    name = _PATH_SEPARATOR.split(client_name or "")[-1]
    name = "".join(" " if ch.isspace() else ch for ch in name if _kept(ch))
    name = _SPACES.sub(" ", unicodedata.normalize("NFC", name)).strip(" .")
    return _bounded(name) if name else _FALLBACK


def stored_name(display: str, extension: str) -> str:
    """The name in the record, the URL and the storage key: `<slug>_<random><extension>`.

    `extension` is the sniffed type's (".png") or ""; it must be a dot and 1-10 of [a-z0-9].
    """
    if extension and not _EXTENSION.fullmatch(extension):
        raise ValueError(f"not a stored file extension: {extension!r}")
    random = "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_CHARS))
    return f"{_slug(_split_extension(display)[0])}_{random}{extension}"


def content_disposition(kind: Literal["inline", "attachment"], display: str) -> str:
    """The Content-Disposition header for `display` (RFC 6266, filename* per RFC 5987)."""
    fallback = "".join(_ascii_fallback(ch) for ch in display) or _FALLBACK
    encoded = quote(display, safe="", errors="replace")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _kept(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) not in _DROPPED


def _split_extension(name: str) -> tuple[str, str]:
    """("photo", ".jpeg") for "photo.jpeg"; no extension when there is no stem or it is long."""
    stem, dot, suffix = name.rpartition(".")
    if not stem or not dot or len(dot + suffix) > _MAX_EXTENSION_CHARS:
        return name, ""
    return stem, dot + suffix


def _bounded(name: str) -> str:
    """`name` cut to MAX_NAME_CHARS, keeping its extension."""
    if len(name) <= MAX_NAME_CHARS:
        return name
    stem, extension = _split_extension(name)
    # The stem starts with neither a space nor a dot, so what is left of it is never empty.
    return stem[: MAX_NAME_CHARS - len(extension)].rstrip(" .") + extension


def _slug(stem: str) -> str:
    """ASCII [a-z0-9_-]: accents dropped, other runs of characters become "_" ("-" stays)."""
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode().lower()
    slug = _NOT_SLUG.sub(lambda m: "-" if set(m.group()) == {"-"} else "_", ascii_)
    return slug.strip("_-")[:MAX_SLUG_CHARS].rstrip("_-") or _FALLBACK


def _ascii_fallback(ch: str) -> str:
    """The character in a quoted filename: printable ASCII but quotes and backslashes."""
    if ch in '"\\':
        return ""
    if " " <= ch <= "~":
        return ch
    return "" if unicodedata.category(ch) in _DROPPED else "_"
