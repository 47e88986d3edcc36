"""The outbound HTTP client every server-side fetch goes through (OpenID Connect documents, FCM's
OAuth token and sends): guarded connections, no redirects, timeouts and a size cap.

- Every connection is opened by `guard` (the host resolved once, each address judged by the
  `AddressPolicy`, the connection pinned to a judged address). http:// only reaches networks the
  operator listed; everything else is https://, trusting certifi's roots (plus a CA file, for
  push's local test servers).
- Redirects are never followed: a 3xx is an answer like any other, which callers treat as a
  failure. So there is no second hop to check; and libraries that follow redirects themselves
  (through `GuardedAdapter`) open each hop through the same guard.
- Limits: connect, read (each wait for data) and total seconds, and the largest answer read;
  answers are asked for and accepted uncompressed only, so the cap counts the real bytes.
- Failures are `OutboundError`s with our own messages; nothing of a body is in them.

The async face serves the event loop, `request_sync` code that runs in threads (pyfcm).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
import certifi
import httpcore
import httpx

from baas.net.addresses import AddressPolicy, parse_networks
from baas.net.errors import FetchFailed, FetchTimeout, InvalidUrl, ResponseTooLarge
from baas.net.guard import AsyncGuard, Resolver, SyncGuard, checked_addresses, system_resolver

if TYPE_CHECKING:
    from baas.config import Settings

MAX_URL_CHARS = 2000
MAX_CONNECTIONS = 100  # per pool (one for https, one for http); FCM runs up to 32 threads per app
KEEPALIVE_S = 30.0
USER_AGENT = "baas"
# Headers the client alone writes: framing, the host it checked, and no compression.
_OWN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "accept-encoding", "connection", "te"}
)


@dataclass(frozen=True)
class Limits:
    connect_s: float = 5.0
    read_s: float = 10.0  # the longest wait for the next bytes
    total_s: float = 15.0  # the whole exchange
    max_bytes: int = 1024 * 1024  # the largest answer body read

    def within(self, seconds: float | None) -> Limits:
        """These limits, none longer than `seconds`."""
        if seconds is None:
            return self
        return replace(
            self,
            connect_s=min(self.connect_s, seconds),
            read_s=min(self.read_s, seconds),
            total_s=min(self.total_s, seconds),
        )


@dataclass(frozen=True)
class Fetched:
    """An answer, read whole: status, headers (names lower-cased) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), or None."""
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    url: httpcore.URL
    host_header: bytes


def url_problem(url: str) -> str | None:
    """Why `url` can never be fetched (its form alone, nothing resolved), or None."""
    try:
        _target(url)
    except InvalidUrl as exc:
        return str(exc)
    return None


def _target(url: str) -> _Target:
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_CHARS:
        raise InvalidUrl(f"must be a URL of at most {MAX_URL_CHARS} characters")
    if not url.isprintable() or " " in url:
        raise InvalidUrl("must not contain spaces or control characters")
    try:
        parsed = httpx.URL(url)
        host, port = parsed.raw_host.decode("ascii"), parsed.port
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise InvalidUrl("is not a valid URL") from None
    if port is not None and not 0 < port < 65536:
        raise InvalidUrl("is not a valid URL (port out of range)")
    if not host:
        raise InvalidUrl("must name a host, as in https://issuer.example.com")
    if parsed.scheme not in ("https", "http"):
        raise InvalidUrl("must be an https:// URL")
    if parsed.userinfo:
        raise InvalidUrl("must not contain a user name or password")
    if parsed.fragment or "#" in url:
        raise InvalidUrl("must not contain a #fragment")
    port = port or (443 if parsed.scheme == "https" else 80)
    return _Target(
        parsed.scheme,
        host,
        port,
        httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=port, target=parsed.raw_path
        ),
        parsed.netloc,
    )


class OutboundClient:
    """See the module docstring. One per process (the push CA gets its own, `ca_file`)."""

    def __init__(
        self,
        policy: AddressPolicy | None = None,
        *,
        limits: Limits | None = None,
        ca_file: Path | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = policy or AddressPolicy()
        self.limits = limits or Limits()
        self._resolver = resolver
        self._ssl = ssl.create_default_context(cafile=certifi.where())
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._async_pools: dict[str, httpcore.AsyncConnectionPool] = {}
        self._sync_pools: dict[str, httpcore.ConnectionPool] = {}
        self._sync_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, ca_file: Path | None = None) -> OutboundClient:
        return cls(policy_from_settings(settings), ca_file=ca_file)

    async def check_url(self, url: str) -> None:
        """Raise the `OutboundError` a fetch of `url` would fail with before connecting (its form,
        its host's addresses, plain HTTP); the same check every connection makes."""
        target = _target(url)
        check = functools.partial(
            checked_addresses,
            target.host,
            target.port,
            self.policy,
            self._resolver,
            target.scheme == "http",
        )
        await anyio.to_thread.run_sync(check, abandon_on_cancel=True)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        limits: Limits | None = None,
    ) -> Fetched:
        """One exchange, its answer read whole; raises `OutboundError`."""
        target, limits = _target(url), limits or self.limits
        pool = self._async_pool(target.scheme)
        with _translated(target, limits):
            async with asyncio.timeout(limits.total_s):
                async with pool.stream(
                    method.encode("ascii"),
                    target.url,
                    headers=_headers(target, method, headers, content),
                    content=content,
                    extensions={"timeout": _timeouts(limits)},
                ) as response:
                    body = await _read_async(response.aiter_stream(), response, target, limits)
        return Fetched(response.status, _decoded(response.headers), body)

    def request_sync(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        limits: Limits | None = None,
    ) -> Fetched:
        """`request` for code running in a thread; the total time is checked between reads."""
        target, limits = _target(url), limits or self.limits
        deadline = time.monotonic() + limits.total_s
        pool = self._sync_pool(target.scheme)
        with (
            _translated(target, limits),
            pool.stream(
                method.encode("ascii"),
                target.url,
                headers=_headers(target, method, headers, content),
                content=content,
                extensions={"timeout": _timeouts(limits)},
            ) as response,
        ):
            body = _read_sync(response.iter_stream(), response, target, limits, deadline)
        return Fetched(response.status, _decoded(response.headers), body)

    async def aclose(self) -> None:
        pools, self._async_pools = self._async_pools, {}
        for pool in pools.values():
            await pool.aclose()
        self.close()

    def close(self) -> None:
        with self._sync_lock:
            pools, self._sync_pools = self._sync_pools, {}
        for pool in pools.values():
            pool.close()

    def _async_pool(self, scheme: str) -> httpcore.AsyncConnectionPool:
        pool = self._async_pools.get(scheme)
        if pool is None:
            guard = AsyncGuard(self.policy, self._resolver, plain=scheme == "http")
            pool = self._async_pools[scheme] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                max_connections=MAX_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_S,
                network_backend=guard,
            )
        return pool

    def _sync_pool(self, scheme: str) -> httpcore.ConnectionPool:
        with self._sync_lock:
            pool = self._sync_pools.get(scheme)
            if pool is None:
                guard = SyncGuard(self.policy, self._resolver, plain=scheme == "http")
                pool = self._sync_pools[scheme] = httpcore.ConnectionPool(
                    ssl_context=self._ssl,
                    max_connections=MAX_CONNECTIONS,
                    keepalive_expiry=KEEPALIVE_S,
                    network_backend=guard,
                )
            return pool


def policy_from_settings(settings: Settings) -> AddressPolicy:
    return AddressPolicy(parse_networks(settings.outbound_allow_private))


def _headers(
    target: _Target, method: str, given: Mapping[str, str] | None, content: bytes
) -> list[tuple[bytes, bytes]]:
    headers = [(b"Host", target.host_header), (b"Accept-Encoding", b"identity")]
    if content or method.upper() in ("POST", "PUT", "PATCH"):
        headers.append((b"Content-Length", str(len(content)).encode()))
    names = set()
    for name, value in (given or {}).items():
        names.add(name.lower())
        if name.lower() not in _OWN_HEADERS:
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
    if "user-agent" not in names:
        headers.append((b"User-Agent", USER_AGENT.encode()))
    return headers


def _timeouts(limits: Limits) -> dict[str, float]:
    read = min(limits.read_s, limits.total_s)
    return {"connect": limits.connect_s, "read": read, "write": read, "pool": limits.connect_s}


def _decoded(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers)


def _check_head(response: httpcore.Response, target: _Target, limits: Limits) -> None:
    headers = dict(_decoded(response.headers))
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchFailed(f"{target.host} answered compressed although identity was asked for")
    declared = headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(target, limits)


async def _read_async(
    chunks: AsyncIterator[bytes], response: httpcore.Response, target: _Target, limits: Limits
) -> bytes:
    _check_head(response, target, limits)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limits.max_bytes:
            raise _too_large(target, limits)
    return bytes(body)


def _read_sync(
    chunks: Iterator[bytes],
    response: httpcore.Response,
    target: _Target,
    limits: Limits,
    deadline: float,
) -> bytes:
    _check_head(response, target, limits)
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limits.max_bytes:
            raise _too_large(target, limits)
        if time.monotonic() > deadline:
            raise _timed_out(target, limits)
    return bytes(body)


def _too_large(target: _Target, limits: Limits) -> ResponseTooLarge:
    return ResponseTooLarge(f"{target.host}'s answer is larger than {limits.max_bytes} bytes")


def _timed_out(target: _Target, limits: Limits) -> FetchTimeout:
    return FetchTimeout(f"{target.host} did not answer within {limits.total_s:g} s")


@contextlib.contextmanager
def _translated(target: _Target, limits: Limits) -> Iterator[None]:
    """httpcore's and the clock's exceptions as ours, in our words."""
    try:
        yield
    except (TimeoutError, httpcore.TimeoutException):
        raise _timed_out(target, limits) from None
    except httpcore.ConnectError:
        raise FetchFailed(f"could not connect to {target.host}:{target.port}") from None
    except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError, UnicodeError):
        raise InvalidUrl("cannot be requested (a header or the URL is malformed)") from None
    except (httpcore.ProtocolError, httpcore.NetworkError):
        raise FetchFailed(f"the connection to {target.host} broke off") from None
