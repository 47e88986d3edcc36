"""Client file names made safe: display names, stored names, Content-Disposition."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baas.storage.names import (
    MAX_NAME_CHARS,
    STORED_NAME,
    content_disposition,
    display_name,
    stored_name,
)

NAMES = st.one_of(
    st.none(),
    st.text(),
    st.text(st.characters(exclude_categories=())),  # with lone surrogates
    st.text(alphabet="./\\ \t\n\x00\u202e\u200b\u00a0a\u00e9\u65e5\U0001f600-_", max_size=300),
)
EXTENSIONS = st.sampled_from(["", ".png", ".jpg", ".tar", ".sqlite", ".a1"])


@pytest.mark.parametrize(
    ("client", "shown"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("C:\\Users\\me\\My Photo.JPG", "My Photo.JPG"),
        ("..", "file"),
        (".", "file"),
        ("...", "file"),
        ("", "file"),
        (None, "file"),
        ("dir/", "file"),
        ("  spaced \t  out\n.txt ", "spaced out .txt"),
        (".hidden", "hidden"),
        ("trailing dots...", "trailing dots"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("zero\u200bwidth\ufeff.txt", "zerowidth.txt"),
        ("nul\x00and\x07bell.txt", "nulandbell.txt"),
        ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # NFC
        ("日本語のファイル.pdf", "日本語のファイル.pdf"),
    ],
)
def test_display_name(client: str | None, shown: str) -> None:
    assert display_name(client) == shown


def test_long_name_keeps_its_extension() -> None:
    shown = display_name("x" * 400 + ".jpeg")
    assert len(shown) == MAX_NAME_CHARS
    assert shown.endswith("x.jpeg")


def test_long_name_with_a_long_suffix_is_cut() -> None:
    shown = display_name("x" * 200 + "." + "y" * 200)
    assert len(shown) == MAX_NAME_CHARS
    assert shown == "x" * MAX_NAME_CHARS


def test_long_name_cut_before_spaces_and_dots() -> None:
    shown = display_name("a" * 144 + " . . . . . " + "b" * 100 + ".png")
    assert shown == "a" * 144 + ".png"


@pytest.mark.parametrize(
    ("shown", "slug"),
    [
        ("photo.png", "photo"),
        ("My Photo (1).JPG", "my_photo_1"),
        ("Ünïcödé résumé.docx", "unicode_resume"),
        ("my-file--v2.txt", "my-file-v2"),
        ("a - b.txt", "a_b"),
        ("日本語のファイル.pdf", "file"),
        ("___.txt", "file"),
        ("ﬁle№1.txt", "fileno1"),  # NFKD
        ("file", "file"),
        ("archive.tar.gz", "archive_tar"),
    ],
)
def test_stored_name(shown: str, slug: str) -> None:
    name = stored_name(shown, ".png")
    assert STORED_NAME.fullmatch(name)
    assert re.fullmatch(re.escape(slug) + r"_[a-z0-9]{10}\.png", name)


def test_stored_name_without_extension() -> None:
    assert re.fullmatch(r"photo_[a-z0-9]{10}", stored_name("photo.png", ""))


def test_stored_name_is_random() -> None:
    assert len({stored_name("a", ".png") for _ in range(20)}) == 20


def test_stored_name_slug_is_bounded() -> None:
    name = stored_name("ab" * 100, ".txt")
    assert STORED_NAME.fullmatch(name)
    assert len(name.rsplit("_", 1)[0]) == 60


@pytest.mark.parametrize("extension", ["png", ".PNG", ".tar.gz", ".", "/x", ".abcdefghijk"])
def test_stored_name_refuses_bad_extensions(extension: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        stored_name("a", extension)


@pytest.mark.parametrize(
    "name",
    [
        "a_0123456789\n",
        "A_0123456789",
        "_a_0123456789",
        "a_012345678",
        "a_0123456789.",
        "../a_0123456789",
        "a_0123456789.png/x",
    ],
)
def test_stored_name_pattern_refuses(name: str) -> None:
    assert not STORED_NAME.fullmatch(name)
    assert not STORED_NAME.match(name)


@given(NAMES)
def test_display_name_is_always_safe(client: str | None) -> None:
    shown = display_name(client)
    assert shown
    assert len(shown) <= MAX_NAME_CHARS
    assert "/" not in shown and "\\" not in shown
    assert shown not in (".", "..")
    assert shown == shown.strip(" .")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in shown)


@given(NAMES, EXTENSIONS)
def test_stored_name_always_matches(client: str | None, extension: str) -> None:
    name = stored_name(display_name(client), extension)
    assert STORED_NAME.fullmatch(name)
    assert name.endswith(extension)


@given(NAMES)
def test_content_disposition_round_trips(client: str | None) -> None:
    shown = display_name(client)
    header = content_disposition("attachment", shown)
    assert header.isascii()
    assert not any(ch < " " or ch == "\x7f" for ch in header)
    parsed = re.fullmatch(r'attachment; filename="([^"\\]+)"; filename\*=UTF-8\'\'(\S+)', header)
    assert parsed is not None
    fallback, encoded = parsed.groups()
    kept = len(shown) - shown.count('"') - shown.count("\\")  # one character for each other
    assert len(fallback) == (kept or len("file"))
    assert unquote(encoded, errors="strict") == shown


def test_content_disposition_ascii() -> None:
    assert content_disposition("inline", "report 2024.pdf") == (
        "inline; filename=\"report 2024.pdf\"; filename*=UTF-8''report%202024.pdf"
    )


def test_content_disposition_quotes_and_backslashes() -> None:
    assert content_disposition("attachment", 'say "hi" \\ bye.txt') == (
        "attachment; filename=\"say hi  bye.txt\"; filename*=UTF-8''say%20%22hi%22%20%5C%20bye.txt"
    )


def test_content_disposition_unicode() -> None:
    header = content_disposition("attachment", "résumé 日本.pdf")
    assert header.startswith('attachment; filename="r_sum_ __.pdf"; ')
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert encoded == "r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf"
    assert unquote(encoded) == "résumé 日本.pdf"


def test_content_disposition_of_only_quotes() -> None:
    assert content_disposition("inline", '"""').startswith('inline; filename="file"; ')
