"""Email addresses: the one syntax check every address passes, wherever it enters.

Sign-up, sign-in, reset and verification requests, email changes, provider (OIDC) addresses,
accounts and superusers made by the admin API or the CLI, and `email` fields of collections all
call `email_address`, so no door accepts what another refuses.

What passes: exactly one `@`; before it a dot-atom (letters, digits and ``!#$%&'*+-/=?^_`{|}~``,
single dots between them, no quoting) of 1-64 bytes; after it a host name of at least two labels
(letters, digits and inner hyphens, or an internationalised name that IDNA 2008 accepts), not
ending in a number; no whitespace or control characters; at most 254 characters in all, counted
with the domain in its ASCII (A-label) form, the form it is returned in, lower-cased.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets
MAX_LOCAL_PART = 64  # bytes, RFC 5321 4.5.3.1.1
EXAMPLE = "name@example.com"

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


class InvalidEmail(ValueError):
    """Not an email address; the message says what is wrong and what to send instead."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"not an email address: {problem}; send one such as {EXAMPLE}")


def email_address(text: str) -> str:
    """`text` if it is an email address, with its domain lower-cased in ASCII (IDNA A-labels);
    InvalidEmail otherwise."""
    if not text:
        raise InvalidEmail("it is empty")
    if len(text) > MAX_ADDRESS:  # its ASCII form is no shorter
        raise InvalidEmail(f"it is longer than {MAX_ADDRESS} characters")
    if any(c.isspace() or unicodedata.category(c) in _INVISIBLE for c in text):
        raise InvalidEmail("it contains a space or a control character")
    if text.count("@") != 1:
        raise InvalidEmail("it must contain exactly one @")
    local, domain = text.split("@")
    _check_local(local)
    address = f"{local}@{_ascii_domain(domain)}"
    if len(address) > MAX_ADDRESS:
        raise InvalidEmail(f"it is longer than {MAX_ADDRESS} characters")
    return address


def _check_local(local: str) -> None:
    if not local:
        raise InvalidEmail("there is nothing before the @")
    if len(local.encode()) > MAX_LOCAL_PART:
        raise InvalidEmail(f"the part before the @ is longer than {MAX_LOCAL_PART} bytes")
    if not _LOCAL.fullmatch(local):
        raise InvalidEmail(
            "the part before the @ may hold letters, digits and !#$%&'*+-/=?^_`{|}~ "
            "with single dots between them"
        )


def _ascii_domain(domain: str) -> str:
    """The domain in lower-case ASCII; InvalidEmail if it is not a host name with a dot."""
    if not domain:
        raise InvalidEmail("there is nothing after the @")
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidEmail(f"the domain {domain!r} needs a dot, as in example.com")
    ascii_labels = [_ascii_label(label, domain) for label in labels]
    if ascii_labels[-1].isdigit():
        raise InvalidEmail(f"the domain {domain!r} is a number, not a host name")
    return ".".join(ascii_labels)


def _ascii_label(label: str, domain: str) -> str:
    lowered = label.lower()
    if lowered.isascii() and _LDH_LABEL.fullmatch(lowered) and not lowered.startswith("xn--"):
        return lowered  # a plain host name label: the common case, without IDNA's tables
    try:
        encoded = idna.encode(label, uts46=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        encoded = ""
    if not encoded or "." in encoded:
        raise InvalidEmail(
            f"the domain {domain!r} is not a valid host name (letters, digits and inner hyphens "
            "in each dot-separated part)"
        )
    return encoded
