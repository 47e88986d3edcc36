"""The guarded outbound client against real local sockets: hostile URLs in every notation never
connect, redirects are not followed (and a library that follows them is stopped at the hop),
connections are pinned to the address that was checked (DNS rebinding), TLS still verifies the
host name, and time and size are bounded. Both faces (async, and sync for threads) are tested.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from baas.net import (
    AddressPolicy,
    AddressRefused,
    Fetched,
    FetchFailed,
    FetchTimeout,
    GuardedAdapter,
    InvalidUrl,
    Limits,
    OutboundClient,
    OutboundError,
    PlainHttpRefused,
    ResponseTooLarge,
    UnresolvableHost,
    guard_session,
)
from tests.net.servers import Answer, Listener, Scripted, Seen, issue_certificate

QUICK = Limits(connect_s=2, read_s=2, total_s=3)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def trap() -> Iterator[Listener]:
    """127.0.0.1 (and ::1 on the same port when there is IPv6): where no fetch may arrive."""
    with Listener("127.0.0.1") as listener:
        yield listener


@pytest.fixture
def trap6(trap: Listener) -> Iterator[Listener | None]:
    if not ipv6_loopback():
        yield None
        return
    try:
        listener = Listener("::1", trap.port)
    except OSError:  # the port is taken on ::1
        yield None
        return
    with listener:
        yield listener


async def fetch(
    client: OutboundClient, url: str, face: str, method: str = "GET", **kw: Any
) -> Fetched:
    """One request through the async face, or through the sync one in a thread."""
    if face == "async":
        return await client.request(method, url, **kw)
    return await asyncio.to_thread(client.request_sync, method, url, **kw)


FACES = pytest.mark.parametrize("face", ["async", "sync"])

# URLs naming this machine (port {p}: the trap) or an internal network, in every notation.
HOSTILE = [
    "https://127.0.0.1:{p}/",
    "https://2130706433:{p}/",  # decimal
    "https://0x7f.0.0.1:{p}/",  # hex
    "https://0x7f000001:{p}/",
    "https://0177.0.0.1:{p}/",  # octal
    "https://017700000001:{p}/",
    "https://127.1:{p}/",  # short forms
    "https://127.0.1:{p}/",
    "https://localhost:{p}/",
    "https://LocalHost:{p}/x?y=1",
    "https://[::ffff:127.0.0.1]:{p}/",  # IPv4-mapped
    "https://[::ffff:7f00:1]:{p}/",
    "https://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
    "https://0.0.0.0:{p}/",  # reaches this host on Linux
    "https://0:{p}/",
    "https://[::]:{p}/",
    "https://[::1]:{p}/",
    "https://[::127.0.0.1]:{p}/",  # IPv4-compatible
    "https://[64:ff9b::7f00:1]:{p}/",  # NAT64
    "https://[2002:7f00:1::]:{p}/",  # 6to4
    "https://127.0.0.1.:{p}/",  # trailing dots
    "https://localhost.:{p}/",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.0.1/",
    "https://100.64.0.1/",
    "https://[fd00::1]/",
    "https://[fe80::1]/",
    "https://224.0.0.1/",
    "https://255.255.255.255/",
]


@FACES
@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_urls_never_connect(
    url: str, face: str, trap: Listener, trap6: Listener | None
) -> None:
    client = OutboundClient(limits=QUICK)
    try:
        with pytest.raises(OutboundError) as raised:
            await fetch(client, url.format(p=trap.port), face)
    finally:
        await client.aclose()
    # Refused whatever the notation; a name the resolver does not know fails as unresolvable,
    # and a notation the URL parser rejects (0177.0.0.1 for httpx) never gets that far.
    assert isinstance(raised.value, AddressRefused | UnresolvableHost | InvalidUrl), raised.value
    if isinstance(raised.value, AddressRefused):
        assert "BAAS_OUTBOUND_ALLOW_PRIVATE" in str(raised.value)
    assert trap.connections() == 0
    assert trap6 is None or trap6.connections() == 0


async def test_the_trap_would_have_seen_an_allowed_connection(trap: Listener) -> None:
    """The control for the table above: with loopback allowed, the same URL connects."""
    client = OutboundClient(AddressPolicy.allowing("127.0.0.0/8"), limits=Limits(total_s=0.3))
    try:
        with pytest.raises(FetchTimeout):  # it never answers
            await client.request("GET", f"https://2130706433:{trap.port}/")
    finally:
        await client.aclose()
    assert trap.connections() == 1


@FACES
async def test_plain_http_reaches_only_listed_networks(face: str, trap: Listener) -> None:
    public = {"public.test": ["93.184.216.34"]}
    client = OutboundClient(AddressPolicy.allowing("127.0.0.0/8"), resolver=resolver(public))
    try:
        with pytest.raises(PlainHttpRefused, match=r"use https://"):
            await fetch(client, "http://public.test/", face)
        with pytest.raises(PlainHttpRefused):  # nothing listed: plain HTTP reaches nothing
            await fetch(OutboundClient(), f"http://127.0.0.1:{trap.port}/", face)
    finally:
        await client.aclose()
    assert trap.connections() == 0


def resolver(names: dict[str, list[str]]) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, _port: int) -> Sequence[str]:
        if host in names:
            return names[host]
        raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")

    return resolve


# Redirects


@pytest.fixture
def redirecting(trap: Listener) -> Iterator[Scripted]:
    """A server on 127.0.0.2 (the one allowed address) that redirects to the trap."""
    to_trap = Answer(302, {"Location": f"http://127.0.0.1:{trap.port}/"})
    with Scripted("127.0.0.2", lambda _: to_trap) as server:
        yield server


ONLY_127_0_0_2 = AddressPolicy.allowing("127.0.0.2/32")


@FACES
async def test_a_redirect_is_an_answer_not_a_second_request(
    face: str, redirecting: Scripted, trap: Listener
) -> None:
    client = OutboundClient(ONLY_127_0_0_2)
    try:
        answer = await fetch(client, redirecting.url("/start"), face)
    finally:
        await client.aclose()
    assert answer.status == 302
    assert answer.header("location") == f"http://127.0.0.1:{trap.port}/"
    assert len(redirecting.requests) == 1 and trap.connections() == 0


def test_a_library_following_redirects_is_stopped_at_the_hop(
    redirecting: Scripted, trap: Listener
) -> None:
    """A requests session that follows redirects (requests' default) through the adapter: the
    hop to 127.0.0.1 opens its connection through the guard too, and is refused there."""
    client = OutboundClient(ONLY_127_0_0_2)
    session = requests.Session()
    session.mount("http://", GuardedAdapter(client))
    try:
        with pytest.raises(requests.ConnectionError) as raised:
            session.get(redirecting.url("/start"))
        assert isinstance(raised.value.__cause__, AddressRefused)
        assert "127.0.0.1, a loopback address" in str(raised.value)
        # The session the server's own code uses does not even try.
        guarded = guard_session(requests.Session(), client)
        with pytest.raises(requests.TooManyRedirects):
            guarded.get(redirecting.url("/again"))
    finally:
        session.close()
        client.close()
    assert len(redirecting.requests) == 2 and trap.connections() == 0


# The connection goes to the address that was checked


class Rebinding:
    """A name that resolves to 127.0.0.2 (allowed) once, then to 127.0.0.1 (refused)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, host: str, _port: int) -> Sequence[str]:
        assert host == "rebind.test"
        with self._lock:
            self.calls += 1
            return ["127.0.0.2"] if self.calls == 1 else ["127.0.0.1"]


@pytest.fixture
def same_port() -> Iterator[tuple[Scripted, Listener]]:
    """A server on 127.0.0.2 and the trap on 127.0.0.1, on the same port."""
    ok = Answer(200, {"Content-Type": "text/plain"}, b"pinned")
    for _ in range(20):
        server = Scripted("127.0.0.2", lambda _: ok)
        try:
            listener = Listener("127.0.0.1", server.port)
        except OSError:
            server._server.server_close()
            continue
        with server, listener:
            yield server, listener
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


@FACES
async def test_the_connection_is_pinned_to_the_checked_address(
    face: str, same_port: tuple[Scripted, Listener]
) -> None:
    server, trap = same_port
    rebinding = Rebinding()
    client = OutboundClient(ONLY_127_0_0_2, resolver=rebinding)
    url = f"http://rebind.test:{server.port}/doc"
    try:
        answer = await fetch(client, url, face)
        assert (answer.status, answer.body) == (200, b"pinned")
        # One resolution for the check and the connect alike, and the Host is the name.
        assert rebinding.calls == 1
        assert server.requests[0].host == f"rebind.test:{server.port}"
        # The server closed that connection; the next one resolves again, gets 127.0.0.1.
        with pytest.raises(AddressRefused, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            await fetch(client, url, face)
    finally:
        await client.aclose()
    assert len(server.requests) == 1 and trap.connections() == 0


@FACES
async def test_a_name_with_one_internal_address_is_refused_whole(
    face: str, same_port: tuple[Scripted, Listener]
) -> None:
    server, trap = same_port
    mixed = resolver({"mixed.test": ["127.0.0.2", "127.0.0.1"]})
    client = OutboundClient(ONLY_127_0_0_2, resolver=mixed)
    try:
        with pytest.raises(AddressRefused):
            await fetch(client, f"http://mixed.test:{server.port}/", face)
    finally:
        await client.aclose()
    assert not server.requests and trap.connections() == 0


@FACES
async def test_tls_verifies_the_host_name_on_the_pinned_address(face: str, tmp_path: Path) -> None:
    good = issue_certificate(tmp_path / "good", "pinned.test")
    other = issue_certificate(tmp_path / "other", "other.test")
    names = resolver({"pinned.test": ["127.0.0.2"]})
    ok = Answer(200, body=b"over tls")
    with Scripted("127.0.0.2", lambda _: ok, tls=good) as server:
        client = OutboundClient(ONLY_127_0_0_2, ca_file=good.ca_file, resolver=names)
        try:
            answer = await fetch(client, server.url("/", host="pinned.test"), face)
        finally:
            await client.aclose()
    assert answer.body == b"over tls"
    assert server.server_names == ["pinned.test"]  # SNI: the name, not the address
    assert server.requests[0].host == f"pinned.test:{server.port}"
    with Scripted("127.0.0.2", lambda _: ok, tls=other) as impostor:
        client = OutboundClient(ONLY_127_0_0_2, ca_file=other.ca_file, resolver=names)
        try:
            with pytest.raises(FetchFailed):  # a trusted certificate, for another name
                await fetch(client, impostor.url("/", host="pinned.test"), face)
        finally:
            await client.aclose()
    assert not impostor.requests


# Limits


def answering(answer: Answer) -> Callable[[Seen], Answer]:
    return lambda _: answer


@FACES
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_an_answer_over_the_size_cap_is_refused(face: str, chunked: bool) -> None:
    big = Answer(200, body=b"x" * 5000, chunked=chunked)
    with Scripted("127.0.0.2", answering(big)) as server:
        client = OutboundClient(ONLY_127_0_0_2)
        try:
            with pytest.raises(ResponseTooLarge, match="larger than 4096 bytes"):
                await fetch(client, server.url(), face, limits=Limits(max_bytes=4096))
            exact = await fetch(client, server.url(), face, limits=Limits(max_bytes=5000))
        finally:
            await client.aclose()
    assert len(exact.body) == 5000


@FACES
async def test_a_compressed_answer_is_refused(face: str) -> None:
    gzipped = Answer(200, {"Content-Encoding": "gzip"}, b"\x1f\x8b...")
    with Scripted("127.0.0.2", answering(gzipped)) as server:
        client = OutboundClient(ONLY_127_0_0_2)
        try:
            with pytest.raises(FetchFailed, match="compressed"):
                await fetch(client, server.url(), face)
        finally:
            await client.aclose()
    assert server.requests[0].headers["accept-encoding"] == "identity"


@FACES
async def test_a_silent_server_costs_the_total_timeout(face: str, trap: Listener) -> None:
    client = OutboundClient(AddressPolicy.allowing("127.0.0.1"))
    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeout, match=r"did not answer within 0\.3 s"):
            await fetch(client, f"http://127.0.0.1:{trap.port}/", face, limits=Limits(total_s=0.3))
    finally:
        await client.aclose()
    assert time.monotonic() - started < 2


@FACES
async def test_a_dripping_server_cannot_outlast_the_total_timeout(face: str) -> None:
    """Each chunk comes well within the read timeout; the whole answer would take 4 s."""
    drip = Answer(200, body=b"d" * 1024 * 40, chunked=True, drip_s=0.1)
    with Scripted("127.0.0.2", answering(drip)) as server:
        client = OutboundClient(ONLY_127_0_0_2)
        started = time.monotonic()
        try:
            with pytest.raises(FetchTimeout):
                await fetch(client, server.url(), face, limits=Limits(read_s=5, total_s=0.5))
        finally:
            await client.aclose()
    assert time.monotonic() - started < 2


@FACES
async def test_a_post_carries_its_body_and_our_headers(face: str) -> None:
    with Scripted("127.0.0.2", answering(Answer(201, body=b"{}"))) as server:
        client = OutboundClient(ONLY_127_0_0_2)
        try:
            answer = await fetch(
                client,
                server.url("/token"),
                face,
                "POST",
                headers={"Content-Type": "application/json", "Host": "elsewhere.test"},
                content=b'{"a":1}',
            )
        finally:
            await client.aclose()
    seen = server.requests[0]
    assert answer.status == 201 and (seen.method, seen.body) == ("POST", b'{"a":1}')
    assert seen.host == f"127.0.0.2:{server.port}"  # a caller cannot name another host
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "baas"
