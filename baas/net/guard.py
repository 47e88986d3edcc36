"""Every outbound connection: resolve the host once, judge each address, connect to a judged one.

These are httpcore network backends (async and sync): the client's connection pools open every
connection through them, so no request, and no hop a library might follow, reaches a socket
unchecked. The connection goes to the address that was judged, never to the name again, so a
name that resolves to a public address for the check and to 127.0.0.1 a moment later (DNS
rebinding) still reaches the public one. TLS is unaffected: httpcore starts it with the URL's
host as server name (SNI and certificate check), and the Host header is the URL's.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import httpcore

from baas.net.addresses import AddressPolicy, IPAddress
from baas.net.errors import AddressRefused, PlainHttpRefused, UnresolvableHost

# host, port -> the host's addresses as text; tests pass their own to play DNS tricks.
Resolver = Callable[[str, int], Sequence[str]]
SocketOptions = Iterable[Any]  # httpcore passes them through to the socket


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (hosts file, DNS): each address once, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(
    host: str, port: int, policy: AddressPolicy, resolver: Resolver, plain: bool
) -> list[IPAddress]:
    """`host`'s addresses, all of them allowed; raises when any one is not (a name that mixes
    public and internal addresses is refused whole, not tried address by address)."""
    if plain and not policy.allowed:
        raise PlainHttpRefused(host)  # no network is listed: plain HTTP reaches nothing
    try:
        addresses = [ipaddress.ip_address(text) for text in resolver(host, port)]
    except (OSError, UnicodeError, ValueError):
        raise UnresolvableHost(host) from None
    if not addresses:
        raise UnresolvableHost(host)
    for address in addresses:
        verdict = policy.refusal(address)
        if verdict is not None:
            raise AddressRefused(host, address, verdict)
        if plain and not policy.listed(address):
            raise PlainHttpRefused(host)
    return addresses


class AsyncGuard(httpcore.AsyncNetworkBackend):
    """Connections for the async pools; `plain` pools (http://) reach listed networks only."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver, *, plain: bool) -> None:
        self._check = functools.partial(
            checked_addresses, policy=policy, resolver=resolver, plain=plain
        )
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = _deadline(timeout)
        try:
            with anyio.fail_after(timeout):
                check = functools.partial(self._check, host, port)
                addresses = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, _left(deadline), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
            else:
                return _ClosedIfTlsFails(stream)
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ClosedIfTlsFails(httpcore.AsyncNetworkStream):
    """A connection that closes itself when its TLS handshake is cancelled (the client's total
    timeout): httpcore closes it only when the handshake raises an Exception."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._inner.aclose()
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class SyncGuard(httpcore.NetworkBackend):
    """Connections for the sync pools (code that runs in threads); see `AsyncGuard`."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver, *, plain: bool) -> None:
        self._check = functools.partial(
            checked_addresses, policy=policy, resolver=resolver, plain=plain
        )
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _deadline(timeout)
        addresses = self._check(host, port)  # the system resolver has its own timeouts
        failure: Exception = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    str(address), port, _left(deadline), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None) -> float | None:
    """Seconds left for the next address; none left is a connect timeout."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ConnectTimeout("no address answered in time")
    return left
