"""The "auth.oidc" runtime setting: which OpenID Connect providers an app signs in with, each
with its client ids, issuer and key URL (Google's and Apple's filled in).

Parsing checks each URL's form; `fetched_urls` names the URLs the server will fetch, which are
resolved and judged by the outbound client's rules when the setting is saved (and again at every
fetch): no internal addresses, plain http:// only to networks the operator allows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from baas.net import MAX_URL_CHARS, url_problem
from baas.runtime_settings import SettingValueError

MAX_CLIENT_IDS = 50
MAX_CLIENT_ID_CHARS = 255
PROVIDER_NAME = re.compile(r"[a-z0-9_-]{1,40}")
_PROVIDER_KEYS = ("client_ids", "issuer", "jwks_url")

BUILT_IN: dict[str, dict[str, Any]] = {
    "google": {
        "issuer": "https://accounts.google.com",
        "jwks_url": "https://www.googleapis.com/oauth2/v3/certs",
        "issuer_aliases": ("accounts.google.com",),  # Google's older tokens omit the scheme
    },
    "apple": {
        "issuer": "https://appleid.apple.com",
        "jwks_url": "https://appleid.apple.com/auth/keys",
        "issuer_aliases": (),
    },
}


def parse_providers(value: Any) -> dict[str, dict[str, Any]]:
    """Validate "auth.oidc"; return it with built-in issuers and key URLs filled in."""
    if not isinstance(value, Mapping):
        raise SettingValueError(
            'must be an object of provider name -> {"client_ids": [...], "issuer": ..., '
            '"jwks_url": ...}'
        )
    return {_provider_name(name): _parse_provider(name, entry) for name, entry in value.items()}


def _provider_name(name: Any) -> str:
    if not isinstance(name, str) or not PROVIDER_NAME.fullmatch(name):
        raise SettingValueError(
            f"provider name {str(name)[:50]!r}: must be 1-40 characters of a-z, 0-9, _ and -"
        )
    return name


def _parse_provider(name: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise SettingValueError(f"{name}: must be an object with client_ids, issuer, jwks_url")
    unknown = sorted(str(key)[:50] for key in entry if key not in _PROVIDER_KEYS)
    if unknown:
        raise SettingValueError(
            f"{name}: unknown key {', '.join(unknown)} (allowed: {', '.join(_PROVIDER_KEYS)})"
        )
    built_in = BUILT_IN.get(name, {})
    issuer = entry.get("issuer")
    if issuer is None and not built_in:
        raise SettingValueError(
            f"{name}.issuer: required for providers other than google and apple "
            "(the https URL its tokens carry in the iss claim)"
        )
    jwks_url = entry.get("jwks_url")
    return {
        "client_ids": _client_ids(name, entry.get("client_ids")),
        "issuer": built_in["issuer"] if issuer is None else _issuer(name, issuer),
        "jwks_url": built_in.get("jwks_url")
        if jwks_url is None
        else _url(name, "jwks_url", jwks_url),
    }


def _client_ids(name: str, value: Any) -> list[str]:
    if value is None:
        raise SettingValueError(f"{name}.client_ids: required (the app's OAuth client IDs)")
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_CLIENT_IDS
        or not all(_is_client_id(item) for item in value)
    ):
        raise SettingValueError(
            f"{name}.client_ids: must be a list of 1 to {MAX_CLIENT_IDS} client IDs of 1 to "
            f"{MAX_CLIENT_ID_CHARS} characters (apple: bundle or services IDs)"
        )
    return list(dict.fromkeys(value))


def _is_client_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CLIENT_ID_CHARS and value.isprintable()


def _issuer(name: str, value: Any) -> str:
    url = _url(name, "issuer", value)
    if urlsplit(url).query:
        raise SettingValueError(f"{name}.issuer: must not contain a ?query")
    return url


def _url(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_CHARS:
        raise SettingValueError(
            f"{name}.{key}: must be a URL of at most {MAX_URL_CHARS} characters"
        )
    problem = url_problem(value)
    if problem:
        raise SettingValueError(f"{name}.{key}: {problem}")
    return value


def fetched_urls(providers: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(setting path, URL) of every URL these parsed providers make the server fetch, except
    the built-in providers' own (discovery goes to the issuer's host)."""
    urls = []
    for name, config in providers.items():
        built_in = BUILT_IN.get(name, {})
        for key in ("issuer", "jwks_url"):
            url = config.get(key)
            if url and url != built_in.get(key):
                urls.append((f"{name}.{key}", str(url)))
    return urls
