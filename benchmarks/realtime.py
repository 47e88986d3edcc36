"""Realtime load benchmark: many WebSocket subscribers of one collection, a steady write rate.

Starts `baas serve` in a scratch directory (once per --workers count: 1 and 2 worker processes
by default), gives it an `events` collection (`seq` integer, `body` text) and, for each variant,

  public  the list rule is "" (public); the subscribers are anonymous: no query per change
  rule    the list rule is an expression (default `auth.id IS NOT NULL`); each subscriber
          authenticates as its own (anonymous-auth) user: one rule query per change

opens --subscribers WebSocket connections to /api/realtime from --client-procs processes (a lean
RFC 6455 client on asyncio protocols, uvloop when installed) or, with --client native, from one
process of benchmarks/wsload.c (epoll, compiled with gcc on first use), each subscribed to
`events`; measures
the server's memory per idle connection; then POSTs --rate records a second for --duration seconds
(as the service key) and checks that every subscriber receives every record exactly once.

Reports the deliveries expected, received, lost and duplicated, the delivery latency (from the
201 of the write to the receipt of its change, time.time() on both sides of this machine) p50,
p90, p99 and max, the CPU used by the server, PostgreSQL and the load generator, connections the
server closed (with their close codes), and PASS/MISS against the targets: write
acknowledgements p99 under 50 ms while fanning out, delivery p99 under 200 ms, zero lost events,
under 50 KB of server memory per idle connection. Writes the results as JSON.
Run `python benchmarks/realtime.py --help` for the options; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import collections
import contextlib
import datetime as dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import orjson

if not __package__:  # run as a script (python benchmarks/realtime.py): make its sibling importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import (
    HOST,
    BenchError,
    Client,
    _matching,
    _proc_stat,
    baas_version,
    busy_before,
    catch_signals,
    default_tool,
    free_port,
    launch_baas,
    machine,
    numbered_output,
    postmaster_pid,
    run_guarded,
    split_env,
    tail,
)

COLLECTION = "events"
WS_PATH = "/api/realtime"
VARIANTS = ("public", "rule")
DEFAULT_RULE = "auth.id IS NOT NULL"
TARGET_P99_MS = 200.0
TARGET_ACK_P99_MS = 50.0  # writes acknowledged while the server fans out
TARGET_KB_PER_CONNECTION = 50.0
# The server's defaults would refuse 5,000 connections from one address (and one user).
SERVER_ENV = {
    "BAAS_REALTIME_MAX_CONNECTIONS_PER_IP": "100000",
    "BAAS_REALTIME_MAX_CONNECTIONS_PER_USER": "100000",
    "BAAS_ACCESS_LOG": "false",
}
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBSCRIPTION = "s"
SUBSCRIBE = orjson.dumps({"type": "subscribe", "id": SUBSCRIPTION, "collection": COLLECTION})
PONG = orjson.dumps({"type": "pong"})
NONZERO = bytes([0] + [1] * 255)  # bytes.translate table: a count -> received or not
PROBE_SEQ = -1  # the probe's record, written before the subscribers connect
CLIENTS = ("python", "native")
WSLOAD_SOURCE = Path(__file__).resolve().with_name("wsload.c")
WSLOAD_CFLAGS = ("-O2", "-Wall", "-Wextra")


class SetupError(Exception):
    """A subscriber could not connect, upgrade, authenticate or subscribe; the message says why."""


# -- the lean WebSocket client -------------------------------------------------------------------


class Fleet:
    """What one client process's connections saw, besides their own counts."""

    def __init__(self) -> None:
        self.phase = "setup"  # setup, idle, writes, drain, closing
        self.closes: Counter[str] = Counter()  # "<phase> <code>" -> connections the server closed
        self.errors: Counter[str] = Counter()  # "error" messages by code
        self.ended: Counter[str] = Counter()  # "unsubscribed" sent by the server, by reason
        self.other: Counter[str] = Counter()  # message types not expected here
        self.actions: Counter[str] = Counter()  # change actions other than "create"
        self.unexpected_samples: list[Any] = []  # first changes not of this run's writes
        self.error_samples: list[Any] = []
        self.pings = 0  # JSON pings answered
        self.ws_pings = 0  # WebSocket ping frames answered
        self.deflate = 0  # connections that negotiated permessage-deflate
        self.noticed = asyncio.Event()  # set by the first unexpected change (the probe's)

    def note_unexpected(self, change: Any) -> None:
        if len(self.unexpected_samples) < 5:
            self.unexpected_samples.append(change)
        self.noticed.set()


class WsConn(asyncio.Protocol):
    """One subscriber: the HTTP upgrade, unmasked server frames, masked client frames.

    Counts each change by the record's `seq` (duplicates too) and, if `sampled`, remembers when
    the first copy of each arrived (time.time() when its bytes were read)."""

    def __init__(
        self,
        fleet: Fleet,
        host: str,
        port: int,
        token: str | None,
        planned: int,
        sampled: bool,
        deflate: bool,
    ) -> None:
        self.fleet = fleet
        self.token = token
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {WS_PATH} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()  # subscribed, or why not
        self.lost: asyncio.Future[None] = loop.create_future()  # the connection is gone
        self.stage = "connect"  # connect, handshake, auth, subscribe, subscribed
        self.head = b""  # the upgrade response so far
        self.upgraded = False
        self.buf = b""  # an incomplete frame
        self.fragments: list[bytes] | None = None
        self.fragments_compressed = False
        self.inflater: Any = None
        self.inflate_bits = 15
        self.inflate_reset = False  # server_no_context_takeover
        self.subscribed = False
        self.ended = False  # the server ended the subscription
        self.closed = False
        self.closing = False  # we started the close
        self.close_code: int | None = None
        self.counts = bytearray(planned)  # seq -> copies received (at most 255)
        self.times = array.array("d", bytes(8 * planned)) if sampled else None
        self.got = 0  # distinct seqs received
        self.dups = 0
        self.unexpected = 0
        self.last_change_id = -1
        self.out_of_order = 0
        self.messages = 0  # "changes" messages
        self.changes = 0
        self.received_bytes = 0
        self.last_receipt = 0.0

    @property
    def live(self) -> bool:
        return self.subscribed and not self.ended and not self.closed

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass of it
        self.stage = "handshake"
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.closed:
            self.closed = True
            if not self.closing:
                self.close_code = 1006  # no close frame: the connection just went
                self.fleet.closes[f"{self.fleet.phase} 1006"] += 1
        self._fail(f"connection lost during {self.stage} (no close frame)")

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            self._frames(data)
        else:
            self._handshake(data)

    # the upgrade

    def _handshake(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 65536:
                self._abort("handshake: response headers too long")
            return
        head, rest = self.head[:end].decode("latin-1"), self.head[end + 4 :]
        self.head = b""
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self._abort(f"handshake: HTTP {' '.join(status[1:]) or lines[0]!r}")
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self._abort("handshake: wrong Sec-WebSocket-Accept")
            return
        extensions = headers.get("sec-websocket-extensions", "")
        if "permessage-deflate" in extensions:
            self.fleet.deflate += 1
            bits = re.search(r"server_max_window_bits\s*=\s*\"?(\d+)", extensions)
            self.inflate_bits = int(bits.group(1)) if bits else 15
            self.inflate_reset = "server_no_context_takeover" in extensions
            self.inflater = zlib.decompressobj(-self.inflate_bits)
        elif extensions:
            self._abort(f"handshake: extensions not offered: {extensions}")
            return
        self.upgraded = True
        if self.token is not None:
            self.stage = "auth"
            self.send(orjson.dumps({"type": "auth", "token": self.token}))
        else:
            self.stage = "subscribe"
            self.send(SUBSCRIBE)
        if rest:
            self._frames(rest)

    # frames

    def _frames(self, data: bytes) -> None:
        now = time.time()
        self.received_bytes += len(data)
        buf = self.buf + data if self.buf else data
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4])
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10])
                start = pos + 10
            if b1 & 0x80:
                self._abort("protocol: the server masked a frame")
                return
            end = start + length
            if end > n:
                break
            self._frame(buf[pos], buf[start:end], now)
            if self.closed:
                return
            pos = end
        self.buf = buf[pos:] if pos < n else b""

    def _frame(self, b0: int, payload: bytes, now: float) -> None:
        opcode = b0 & 0x0F
        if opcode >= 8:  # control frames: never fragmented
            if opcode == 9:
                self.fleet.ws_pings += 1
                self._send(0x8A, payload)
            elif opcode == 8:
                self._close_received(payload)
            elif opcode != 10:
                self._abort(f"protocol: unknown control opcode {opcode}")
            return
        if opcode == 0:
            if self.fragments is None:
                self._abort("protocol: continuation frame without a first frame")
                return
            self.fragments.append(payload)
            if not b0 & 0x80:
                return
            payload = b"".join(self.fragments)
            self.fragments = None
            compressed = self.fragments_compressed
        else:
            compressed = bool(b0 & 0x40)
            if not b0 & 0x80:
                self.fragments = [payload]
                self.fragments_compressed = compressed
                return
        if compressed:
            if self.inflater is None:
                self._abort("protocol: a compressed frame without permessage-deflate")
                return
            if self.inflate_reset:
                self.inflater = zlib.decompressobj(-self.inflate_bits)
            payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
        if opcode == 2:
            self.fleet.other["<binary frame>"] += 1
            return
        self._message(payload, now)

    def _message(self, payload: bytes, now: float) -> None:
        try:
            message = orjson.loads(payload)
            kind = message.get("type")
        except (orjson.JSONDecodeError, AttributeError):
            self.fleet.other["<not a JSON object>"] += 1
            return
        if kind == "changes":
            self.messages += 1
            self.last_receipt = now
            counts, times = self.counts, self.times
            for change in message.get("changes") or ():
                self.changes += 1
                try:
                    seq = change["record"]["seq"]
                    change_id = change["change_id"]
                except (KeyError, TypeError):
                    self.unexpected += 1
                    self.fleet.note_unexpected(change)
                    continue
                if change_id <= self.last_change_id:
                    self.out_of_order += 1
                else:
                    self.last_change_id = change_id
                action = change.get("action")
                if action != "create":
                    self.fleet.actions[str(action)] += 1
                if type(seq) is int and 0 <= seq < len(counts):
                    copies = counts[seq]
                    if copies:
                        self.dups += 1
                        if copies < 255:
                            counts[seq] = copies + 1
                    else:
                        counts[seq] = 1
                        self.got += 1
                        if times is not None:
                            times[seq] = now
                else:
                    self.unexpected += 1
                    self.fleet.note_unexpected(change)
        elif kind == "ping":
            self.fleet.pings += 1
            self.send(PONG)
        elif kind == "subscribed":
            self.subscribed = True
            self.stage = "subscribed"
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "auth_ok":
            self.stage = "subscribe"
            self.send(SUBSCRIBE)
        elif kind == "error":
            code = str(message.get("code"))
            self.fleet.errors[code] += 1
            if len(self.fleet.error_samples) < 5:
                self.fleet.error_samples.append(message)
            self._fail(f"error during {self.stage}: {code}: {message.get('message')}")
        elif kind == "unsubscribed":
            self.ended = True
            self.fleet.ended[str(message.get("reason"))] += 1
            self._fail(f"unsubscribed by the server during {self.stage}: {message.get('reason')}")
        else:
            self.fleet.other[str(kind)] += 1

    def _close_received(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
        reason = payload[2:].decode(errors="replace")
        self.close_code = code
        if not self.closing:
            self.fleet.closes[f"{self.fleet.phase} {code}"] += 1
            self._send(0x88, payload[:2])  # echo the close
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._fail(f"closed by the server during {self.stage}: {code} {reason}".rstrip())

    # sending

    def send(self, data: bytes) -> None:
        self._send(0x81, data)

    def _send(self, first: int, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        n = len(data)
        mask = os.urandom(4)
        if n < 126:
            header = bytes((first, 0x80 | n))
        elif n < 65536:
            header = bytes((first, 0xFE)) + n.to_bytes(2)
        else:
            header = bytes((first, 0xFF)) + n.to_bytes(8)
        masked = b""
        if n:
            key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
            masked = (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")
        transport.write(header + mask + masked)

    def close(self) -> None:
        """Start a normal close (1000); the server's echo closes the transport."""
        if not self.closed and not self.closing:
            self.closing = True
            self._send(0x88, (1000).to_bytes(2))

    def _abort(self, reason: str) -> None:
        self.closed = True
        self.closing = True
        if self.transport is not None:
            self.transport.abort()
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(SetupError(reason))


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"the open-files limit is {hard} (hard); {needed} are needed: raise it (ulimit -Hn)"
        )
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is installed (it is a baas dependency), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def open_subscriber(conn: WsConn, host: str, port: int, within: float) -> None:
    """Connect, upgrade, authenticate if it has a token, subscribe; SetupError if it fails."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            await loop.create_connection(lambda: conn, host, port)
            await conn.ready
    except TimeoutError:
        conn._abort("timeout")
        raise SetupError(f"no answer within {within:g}s during {conn.stage}") from None
    except OSError as exc:
        conn.closed = True
        if not conn.lost.done():
            conn.lost.set_result(None)
        raise SetupError(f"connect: {exc.strerror or type(exc).__name__}") from None


# -- the client processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    number: int
    host: str
    port: int
    indices: range  # global subscriber numbers of this process
    tokens: list[str] | None  # one per subscriber (rule variant), else anonymous
    planned: int  # writes planned: seqs 0 .. planned-1
    sample_every: int
    connect_rate: float  # connections a second, this process
    setup_timeout: float
    deflate: bool


class LagMonitor:
    """How late the event loop wakes a 20 ms sleep: the client's own delay, while measuring."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.active = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.02)
            if self.active:
                self.samples.append((loop.time() - before - 0.02) * 1000)


def client_process(cfg: ClientConfig, pipe: Connection) -> None:
    """A client process: open its subscribers, then follow the main process's commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    raise_fd_limit(len(cfg.indices) + 100)
    with contextlib.suppress(BrokenPipeError, EOFError):  # the main process went away
        run_async(client_main(cfg, pipe))


async def client_main(cfg: ClientConfig, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    fleet = Fleet()
    conns: list[WsConn] = []
    failures: Counter[str] = Counter()

    async def open_one(k: int, index: int) -> None:
        token = cfg.tokens[k] if cfg.tokens is not None else None
        sampled = index % cfg.sample_every == 0
        conn = WsConn(fleet, cfg.host, cfg.port, token, cfg.planned, sampled, cfg.deflate)
        conns.append(conn)
        try:
            await open_subscriber(conn, cfg.host, cfg.port, cfg.setup_timeout)
        except SetupError as exc:
            failures[str(exc)] += 1

    started = loop.time()
    tasks = []
    for k, index in enumerate(cfg.indices):
        delay = started + k / cfg.connect_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(open_one(k, index)))
    await asyncio.gather(*tasks)
    fleet.phase = "idle"
    subscribed = [c for c in conns if c.subscribed]
    lag = LagMonitor()
    lag_task = asyncio.create_task(lag.run())
    pipe.send(
        (
            "ready",
            {
                "subscribed": len(subscribed),
                "failures": dict(failures),
                "seconds": loop.time() - started,
            },
        )
    )
    while True:
        try:  # in a thread: the pipe stays blocking (an event loop reader would make it not)
            command = await asyncio.to_thread(pipe.recv)
        except EOFError:
            command = ("exit",)
        if command[0] == "phase":
            fleet.phase = command[1]
            lag.active = command[1] in ("writes", "drain")
        elif command[0] == "finish":
            _, acks, due, deadline = command
            await drain(subscribed, acks, deadline)
            lag.active = False
            result = tally(cfg, fleet, conns, subscribed, acks, due, lag.samples)
            pipe.send(("result", result))
        elif command[0] == "close":
            fleet.phase = "closing"
            for conn in conns:
                conn.close()
            open_ones = [c.lost for c in conns if not c.lost.done()]
            if open_ones:
                await asyncio.wait(open_ones, timeout=5)
            for conn in conns:
                if not conn.closed and conn.transport is not None:
                    conn.transport.abort()
            lag_task.cancel()
            pipe.send(("closed", {}))
            return
        else:
            lag_task.cancel()
            return


async def drain(subscribed: list[WsConn], acks: array.array[float], deadline: float) -> None:
    """Wait until every live subscriber holds every acknowledged write, or until `deadline`."""
    target = sum(1 for t in acks if not math.isnan(t))
    while time.time() < deadline:
        if all(c.got >= target for c in subscribed if c.live):
            return
        await asyncio.sleep(0.05)


def tally(
    cfg: ClientConfig,
    fleet: Fleet,
    conns: list[WsConn],
    subscribed: list[WsConn],
    acks: array.array[float],
    due: array.array[float],
    lag_ms: list[float],
) -> dict[str, Any]:
    """This process's counts, and its latency samples (ms) against the writes' ack times (and
    against the times they were due to be sent)."""
    expected = [seq for seq, t in enumerate(acks) if not math.isnan(t)]
    acked_mask = int.from_bytes(bytes(0 if math.isnan(t) else 1 for t in acks))
    target = len(expected)
    latencies = array.array("d")
    from_due = array.array("d")
    slowest = array.array("d", [math.nan]) * len(acks)  # per write: the latest sampled receipt
    lost = incomplete = lost_on_closed = unacked = 0
    last_receipt = 0.0
    for conn in subscribed:
        have_bits = int.from_bytes(conn.counts.translate(NONZERO))
        have = (have_bits & acked_mask).bit_count()
        unacked += (have_bits & ~acked_mask).bit_count()
        if have < target:
            incomplete += 1
            lost += target - have
            if not conn.live:
                lost_on_closed += target - have
        last_receipt = max(last_receipt, conn.last_receipt)
        times = conn.times
        if times is not None:
            for seq in expected:
                received = times[seq]
                if received:
                    ms = (received - acks[seq]) * 1000
                    latencies.append(ms)
                    from_due.append((received - due[seq]) * 1000)
                    if not ms <= slowest[seq]:  # also replaces NaN
                        slowest[seq] = ms
    return {
        "process": cfg.number,
        "subscribers": len(subscribed),
        "connections": len(conns),
        "sampled": sum(1 for c in subscribed if c.times is not None),
        "delivered": sum(c.got for c in subscribed),
        "lost": lost,
        "incomplete_subscribers": incomplete,
        "lost_on_closed": lost_on_closed,
        "closed_subscribers": sum(1 for c in subscribed if c.closed),
        "ended_subscriptions": sum(1 for c in subscribed if c.ended),
        "duplicates": sum(c.dups for c in subscribed),
        "unacknowledged_received": unacked,
        "unexpected": sum(c.unexpected for c in subscribed),
        "out_of_order": sum(c.out_of_order for c in subscribed),
        "messages": sum(c.messages for c in subscribed),
        "changes": sum(c.changes for c in subscribed),
        "received_bytes": sum(c.received_bytes for c in conns),
        "last_receipt": last_receipt,
        "closes": dict(fleet.closes),
        "errors": dict(fleet.errors),
        "error_samples": fleet.error_samples,
        "ended": dict(fleet.ended),
        "other_messages": dict(fleet.other),
        "actions": dict(fleet.actions),
        "unexpected_samples": fleet.unexpected_samples,
        "pings": fleet.pings,
        "ws_pings": fleet.ws_pings,
        "deflate": fleet.deflate,
        "loop_lag_ms": lag_ms,
        "latencies": latencies,
        "from_due": from_due,
        "slowest": slowest,
    }


# -- the native client ---------------------------------------------------------------------------


class ClientPipe(Protocol):
    """What the driver needs of a client process's end of the conversation: a multiprocessing
    Connection for the Python clients, a NativeClient for wsload."""

    def send(self, obj: Any) -> None: ...
    def poll(self, timeout: float) -> bool: ...
    def recv(self) -> Any: ...
    def close(self) -> None: ...


def native_client_binary() -> Path:
    """benchmarks/wsload.c compiled with gcc, cached by the hash of its source and flags."""
    source = WSLOAD_SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(WSLOAD_CFLAGS).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "baas-bench"
    binary = cache / f"wsload-{digest}"
    if binary.is_file():
        return binary
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BenchError("--client native needs gcc (or cc) to compile benchmarks/wsload.c")
    cache.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    built = subprocess.run(
        [gcc, *WSLOAD_CFLAGS, "-o", str(partial), str(WSLOAD_SOURCE), "-lm"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BenchError(f"compiling {WSLOAD_SOURCE} failed:\n{built.stderr}")
    os.replace(partial, binary)
    print(f"compiled {WSLOAD_SOURCE.name} -> {binary}", flush=True)
    return binary


class NativeClient:
    """wsload as the one client process: the driver's commands and the replies it expects
    (ready, result, closed) as lines on the program's stdin and stdout, behind the pipe
    (send/poll/recv/close) and process (pid/join/is_alive/terminate) interfaces that `load`
    uses with the Python clients."""

    def __init__(self, binary: Path, cfg: ClientConfig, work: Path) -> None:
        self.work = work
        argv = [
            str(binary),
            "--host",
            cfg.host,
            "--port",
            str(cfg.port),
            "--subscribers",
            str(len(cfg.indices)),
            "--planned",
            str(cfg.planned),
            "--connect-rate",
            repr(cfg.connect_rate),
            "--setup-timeout",
            repr(cfg.setup_timeout),
        ]
        if cfg.tokens is not None:  # each subscriber sends its line: the whole auth message
            auth = work / "wsload-auth.jsonl"
            auth.write_bytes(
                b"".join(orjson.dumps({"type": "auth", "token": t}) + b"\n" for t in cfg.tokens)
            )
            argv += ["--auth-file", str(auth)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        self.buffer = b""
        self.eof = False

    # the pipe

    def send(self, command: tuple[Any, ...]) -> None:
        if command[0] == "finish":
            _, acks, due, deadline = command
            path = self.work / "wsload-acks.bin"
            with path.open("wb") as f:  # native doubles: the acks, then the due times
                acks.tofile(f)
                due.tofile(f)
            line = f"finish {deadline!r} {path}"
        else:
            line = " ".join(str(part) for part in command)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def poll(self, timeout: float | None) -> bool:
        """A whole line (or the end of the output) within `timeout` seconds (None: waits)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer and not self.eof:
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left < 0) or not select.select([fd], [], [], left)[0]:
                return False
            chunk = os.read(fd, 1 << 20)
            self.buffer += chunk
            self.eof = not chunk
        return True

    def recv(self) -> tuple[str, dict[str, Any]]:
        self.poll(None)
        line, newline, self.buffer = self.buffer.partition(b"\n")
        if not newline:
            raise EOFError
        kind, _, payload = line.decode().partition(" ")
        message = orjson.loads(payload or b"{}")
        if kind == "result":
            message["slowest"] = [math.nan if ms is None else ms for ms in message["slowest"]]
            for key in ("error_samples", "unexpected_samples"):  # raw JSON text, cut at 400
                message[key] = [_parsed(text) for text in message[key]]
        return kind, message

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    # the process

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        self.proc.terminate()


def _parsed(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


# -- the server ----------------------------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    port: int
    service_key: str
    proc: subprocess.Popen[bytes]
    pid: int  # a process that accepts the connections (the only one, with one worker)
    data_dir: Path
    markers: list[str]  # an external PostgreSQL's backends carry the scratch database's name
    log: Path
    version: str
    notes: list[str] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)  # every process serving connections

    @property
    def admin(self) -> Client:
        return Client(self.base_url, {"Authorization": f"Bearer {self.service_key}"})


def schema(list_rule: str) -> dict[str, Any]:
    return {
        "collections": {
            COLLECTION: {
                "fields": {"seq": {"type": "integer", "required": True}, "body": "text"},
                "rules": {"list": list_rule, "view": list_rule},
            }
        }
    }


@contextlib.contextmanager
def realtime_server(
    args: argparse.Namespace, work: Path, list_rule: str, workers: int = 1
) -> Iterator[Server]:
    """`baas serve --workers N` with the `events` collection under `list_rule`; stopped
    after."""
    work.mkdir(parents=True, exist_ok=True)
    service_key = "baas_sk_" + secrets.token_urlsafe(32)
    port = free_port()
    data_dir = work / "baas_data"
    log = work / "baas.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAAS_")}
    env.update({"BAAS_DATA_DIR": str(data_dir), "BAAS_SERVICE_KEY": service_key})
    env.update(SERVER_ENV)
    env.update(args.baas_env)
    notes = [f"baas: {k}={v}" for k, v in sorted({**SERVER_ENV, **args.baas_env}.items())]
    markers: list[str] = []
    with contextlib.ExitStack() as stack:
        proc, admin = launch_baas(
            stack, args, workers, port, env, work, service_key, markers, notes
        )
        base = f"http://{HOST}:{port}"
        applied = admin.expect("POST", "/api/admin/schema/apply", {"document": schema(list_rule)})
        print(f"[baas] schema version {applied['version']}: {COLLECTION}, list rule {list_rule!r}")
        serving = serving_pids(port, proc.pid, workers)
        pid = serving[0]
        if serving != [proc.pid]:
            shown = ", ".join(str(p) for p in serving)
            notes.append(f"baas: connections accepted by pid(s) {shown}, children of {proc.pid}")
        yield Server(
            base_url=base,
            port=port,
            service_key=service_key,
            proc=proc,
            pid=pid,
            data_dir=data_dir,
            markers=markers,
            log=log,
            version=baas_version(args.baas),
            notes=notes,
            workers=serving,
        )


def serving_pids(port: int, root: int, workers: int, within: float = 30) -> list[int]:
    """The `workers` processes (`root` or its descendants) that accept connections on `port`:
    with several workers, the children that hold the listening socket (the supervisor holds
    it too, but serves nothing)."""
    deadline = time.monotonic() + within
    while True:
        holders = listening_pids(port, root)
        children = [p for p in holders if p != root]
        found = children if workers > 1 else holders[:1]
        if len(found) >= workers or time.monotonic() > deadline:
            return found or [root]
        time.sleep(0.1)


def listening_pids(port: int, root: int) -> list[int]:
    """The processes (`root` and its descendants) holding the socket that listens on `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    found = []
    for pid in [root, *descendants([root])]:
        with contextlib.suppress(OSError):
            if any(_holds(pid, fd, inodes) for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(pid)
    return found


def _holds(pid: int, fd: str, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
    return False


def listening_pid(port: int, root: int) -> int:
    """The process (`root` or a descendant) holding the socket that listens on `port`."""
    return next(iter(listening_pids(port, root)), root)


def descendants(roots: Sequence[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(entry)
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    found, todo = [], list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KB."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def workers_memory_kb(pids: Sequence[int]) -> dict[str, int]:
    """VmRSS and VmHWM of the server's worker processes, summed, in KB."""
    total: Counter[str] = Counter()
    for pid in pids:
        total.update(memory_kb(pid))
    return dict(total)


def postgres_pids(server: Server) -> list[int]:
    """The PostgreSQL processes serving this run: the embedded postmaster's tree, or the
    backends of the scratch database on an external server."""
    if server.markers:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        return _matching(pids, server.markers)
    roots = postmaster_pid(server.data_dir)
    return [*roots, *descendants(roots)]


@dataclass(frozen=True)
class CpuMark:
    at: float
    ticks: dict[str, int]  # role -> CPU ticks so far
    busy: int  # all CPUs, from /proc/stat
    interrupts: int  # of which irq and softirq: the kernel's work, loopback TCP included
    others: dict[int, int]  # every other process -> its own CPU ticks so far


def cpu_mark(roles: dict[str, list[int]]) -> CpuMark:
    ticks = {}
    for role, pids in roles.items():
        total = 0
        for pid in pids:
            stat = _proc_stat(pid)
            total += stat[1] if stat else 0
        ticks[role] = total
    ours = {pid for pids in roles.values() for pid in pids}
    others = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in ours:
            own = own_ticks(entry)
            if own is not None:
                others[int(entry)] = own
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    busy = sum(values[:8]) - values[3] - values[4]  # user..steal, minus idle and iowait
    return CpuMark(time.monotonic(), ticks, busy, values[5] + values[6], others)


def own_ticks(pid: int | str) -> int | None:
    """utime + stime of a process, without its reaped children's (a shell's children would
    otherwise show up on it when they exit)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    return "?"


def cpu_used(before: CpuMark, after: CpuMark) -> dict[str, Any]:
    """Per role: CPU seconds and cores (seconds per wall second) between two marks; the same
    for interrupts, for everything else, and for the busiest other processes."""
    hz = os.sysconf("SC_CLK_TCK")
    wall = max(after.at - before.at, 1e-9)
    out: dict[str, Any] = {}
    for role in before.ticks:
        seconds = (after.ticks[role] - before.ticks[role]) / hz
        out[role] = {"seconds": round(seconds, 2), "cores": round(seconds / wall, 3)}
    ours = sum(after.ticks.values()) - sum(before.ticks.values())
    kernel = after.interrupts - before.interrupts
    other = max(0.0, (after.busy - before.busy - ours - kernel) / hz)
    out["interrupts"] = {"seconds": round(kernel / hz, 2), "cores": round(kernel / hz / wall, 3)}
    out["other"] = {"seconds": round(other, 2), "cores": round(other / wall, 3)}
    busiest = sorted(
        (
            (ticks - before.others[pid], pid)
            for pid, ticks in after.others.items()
            if pid in before.others
        ),
        reverse=True,
    )[:3]
    out["busiest_others"] = [
        {"pid": pid, "command": command_line(pid), "cores": round(t / hz / wall, 3)}
        for t, pid in busiest
        if t / hz / wall >= 0.02
    ]
    return out


LOG_ENTRY = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ +([A-Z]+) ")


def log_problems(log: Path, since: int, keep: int = 3) -> tuple[int, list[str]]:
    """How many warnings and errors the server logged after byte `since`, and the first `keep`
    of them, each with the lines that follow it (its traceback)."""
    try:
        with log.open("rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return 0, []
    count = 0
    kept: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        entry = LOG_ENTRY.match(line)
        if entry is None:
            if current is not None and len(current) < 80:
                current.append(line)  # a traceback, or a message on several lines
            continue
        current = None
        if entry.group(1) in ("WARNING", "ERROR", "CRITICAL"):
            count += 1
            if len(kept) < keep:
                current = [line]
                kept.append(current)
    return count, ["\n".join(block) for block in kept]


def log_size(log: Path) -> int:
    with contextlib.suppress(OSError):
        return log.stat().st_size
    return 0


# -- set-up: users, the probe --------------------------------------------------------------------


def anonymous_tokens(server: Server, count: int) -> list[str]:
    """Access tokens of `count` new (anonymous-auth) users: cheap to make, no password hash."""
    server.admin.expect(
        "PATCH",
        "/api/admin/settings",
        {"auth.anonymous": True, "rate.sign_up_ip": "off", "auth.access_token_ttl": 3600},
    )
    public = Client(server.base_url)
    started = time.perf_counter()

    def one(_: int) -> str:
        return str(public.expect("POST", "/api/auth/anonymous", status=201)["access_token"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(one, range(count)))
    print(f"  {count:,} users signed in in {time.perf_counter() - started:.1f}s", flush=True)
    return tokens


async def probe(server: Server, token: str | None, deflate: bool) -> dict[str, Any]:
    """One subscriber and one write before the load: a server that does not speak the protocol
    fails the run here, with what it answered."""
    fleet = Fleet()
    conn = WsConn(fleet, HOST, server.port, token, 0, False, deflate)
    try:
        await open_subscriber(conn, HOST, server.port, 30)
    except SetupError as exc:
        raise BenchError(f"probe subscriber: {exc}\n{tail(server.log)}") from None
    headers = {"Authorization": f"Bearer {server.service_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        path = f"/api/collections/{COLLECTION}/records"
        reply = await http.post(path, json={"seq": PROBE_SEQ, "body": "probe"})
        acked = time.time()
        if reply.status_code != 201:
            raise BenchError(f"probe write: POST {path} answered {reply.status_code}: {reply.text}")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await fleet.noticed.wait()
    conn.close()
    if not fleet.unexpected_samples:
        raise BenchError(
            f"probe: the write was not delivered within 10s (closes {dict(fleet.closes)}, errors"
            f" {fleet.error_samples}, other {dict(fleet.other)})\n{tail(server.log)}"
        )
    change = fleet.unexpected_samples[0]
    if not isinstance(change, dict) or (change.get("record") or {}).get("seq") != PROBE_SEQ:
        raise BenchError(f"probe: unexpected change {change!r}")
    latency = (conn.last_receipt - acked) * 1000
    await asyncio.wait([conn.lost], timeout=5)
    return {"change": change, "latency_ms": round(latency, 2), "deflate": bool(fleet.deflate)}


# -- the writer ----------------------------------------------------------------------------------


@dataclass
class Writes:
    planned: int
    acks: array.array[float]  # seq -> time.time() of its 201, NaN if it failed
    due: array.array[float]  # seq -> time.time() it was due to be sent
    statuses: Counter[str]  # failures: HTTP status or exception name
    failure_samples: list[str]
    ack_ms: list[float]  # scheduled send -> 201
    send_lag_ms: list[float]  # scheduled send -> sent (the writer waiting for a connection)
    connections: int  # HTTP connections the writer opened
    resent: int  # writes sent again after the server closed an idle keep-alive connection
    started: float
    finished: float

    @property
    def acknowledged(self) -> int:
        return sum(1 for t in self.acks if not math.isnan(t))


class HttpWriter:
    """Keep-alive HTTP/1.1 POSTs of JSON, one request at a time per connection.

    Lean on purpose: at 100 writes a second httpx costs a fifth of a core, and its pool scans
    every queued request at each hand-over, which takes a whole core once answers slow down."""

    def __init__(self, server: Server, path: str) -> None:
        self.port = server.port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
            f"Authorization: Bearer {server.service_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.opened = 0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(HOST, self.port)

    async def post(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes
    ) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        if length is None:
            raise ValueError(f"an answer without Content-Length: {head[:200]!r}")
        return int(head[9:12]), await reader.readexactly(int(length.group(1)))


async def write_phase(server: Server, args: argparse.Namespace) -> Writes:
    """POST `seq` 0..n-1 at a fixed rate, open loop: when every connection waits for an answer,
    the next write opens another (up to --writer-max-connections; beyond, writes queue)."""
    loop = asyncio.get_running_loop()
    planned = round(args.rate * args.duration)
    acks = array.array("d", [math.nan]) * planned
    statuses: Counter[str] = Counter()
    samples: list[str] = []
    ack_ms: list[float] = []
    send_lag_ms: list[float] = []
    padding = "x" * args.body_bytes
    http = HttpWriter(server, f"/api/collections/{COLLECTION}/records")
    Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
    idle: list[Conn] = [await http.connect() for _ in range(args.writer_connections)]
    backlog: collections.deque[tuple[int, float]] = collections.deque()
    busy: set[asyncio.Task[None]] = set()
    retried = [0]  # writes sent again on a new connection

    def failed(seq: int, what: str, detail: str) -> None:
        statuses[what] += 1
        if len(samples) < 5:
            samples.append(f"seq {seq}: {what} {detail}"[:400])

    async def write(conn: Conn | None, seq: int, scheduled: float) -> None:
        while True:
            payload = orjson.dumps({"seq": seq, "body": padding})
            try:
                async with asyncio.timeout(60):
                    send_lag_ms.append((loop.time() - scheduled) * 1000)
                    if conn is not None:
                        try:
                            status, body = await http.post(conn, payload)
                        except (ConnectionError, asyncio.IncompleteReadError) as exc:
                            if getattr(exc, "partial", b""):
                                raise
                            # Not a byte of an answer: the server had closed this idle
                            # keep-alive connection (BAAS_HTTP_KEEPALIVE_S). Once more on a new
                            # one; a write it did take would show up as a duplicate delivery.
                            retried[0] += 1
                            conn[1].close()
                            conn = None
                    if conn is None:
                        conn = await http.connect()
                        status, body = await http.post(conn, payload)
                now = time.time()
                if status == 201:
                    acks[seq] = now
                    ack_ms.append((loop.time() - scheduled) * 1000)
                else:
                    failed(seq, str(status), body[:300].decode(errors="replace"))
            except (
                OSError,
                EOFError,
                ValueError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ) as exc:
                failed(seq, type(exc).__name__, str(exc))  # not retried: it may have committed
                if conn is not None:
                    conn[1].close()
                conn = None
            if not backlog:
                break
            seq, scheduled = backlog.popleft()
        if conn is not None:
            idle.append(conn)

    started_wall = time.time()
    start = loop.time() + 0.01
    to_wall = time.time() - loop.time()
    due = array.array("d", (start + seq / args.rate + to_wall for seq in range(planned)))
    for seq in range(planned):
        scheduled = start + seq / args.rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle or len(busy) < args.writer_max_connections:
            task = asyncio.create_task(write(idle.pop() if idle else None, seq, scheduled))
            busy.add(task)
            task.add_done_callback(busy.discard)
        else:
            backlog.append((seq, scheduled))
    while busy:
        await asyncio.gather(*busy)
    finished = time.time()
    for _, writer in idle:
        writer.close()
    return Writes(
        planned,
        acks,
        due,
        statuses,
        samples,
        ack_ms,
        send_lag_ms,
        http.opened,
        retried[0],
        started_wall,
        finished,
    )


# -- one variant ---------------------------------------------------------------------------------


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles of `values` (sorted here), plus min and max."""
    ordered = sorted(values)
    if not ordered:
        return {**{f"p{p:g}": None for p in points}, "min": None, "max": None}
    out: dict[str, float | None] = {}
    for p in points:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        out[f"p{p:g}"] = round(ordered[rank - 1], 2)
    out["min"] = round(ordered[0], 2)
    out["max"] = round(ordered[-1], 2)
    return out


def receive(pipes: Sequence[ClientPipe], kind: str, timeout: float) -> list[dict[str, Any]]:
    """The `kind` message of every client process, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    answers = []
    for number, pipe in enumerate(pipes):
        if not pipe.poll(max(0.0, deadline - time.monotonic())):
            raise BenchError(f"client process {number} sent no {kind!r} within {timeout:g}s")
        try:
            got, payload = pipe.recv()
        except EOFError:
            raise BenchError(f"client process {number} exited before {kind!r}") from None
        if got != kind:
            raise BenchError(f"client process {number} sent {got!r}, expected {kind!r}")
        answers.append(payload)
    return answers


def broadcast(pipes: Sequence[ClientPipe], *command: Any) -> None:
    for pipe in pipes:
        pipe.send(command)


def merge_counters(parts: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part[key])
    return dict(total)


def run_variant(
    args: argparse.Namespace, variant: str, work: Path, workers: int = 1
) -> dict[str, Any]:
    rule = "" if variant == "public" else args.rule
    print(f"\n== {variant}, {workers} worker(s): list rule {rule!r} ==", flush=True)
    with realtime_server(args, work / f"{variant}-w{workers}", rule, workers) as server:
        tokens = None
        if variant == "rule":
            tokens = anonymous_tokens(server, args.users or args.subscribers)
        probed = run_async(probe(server, tokens[0] if tokens else None, args.deflate))
        print(f"  probe: one subscriber got its change {probed['latency_ms']:.1f}ms after the 201")
        time.sleep(2)
        memory_before = workers_memory_kb(server.workers)
        log_start = log_size(server.log)
        result = load(args, server, tokens, memory_before)
        problems, first = log_problems(server.log, log_start)
        result.update(
            {
                "variant": variant,
                "workers": workers,
                "list_rule": rule,
                "authenticated": tokens is not None,
                "users": len(tokens) if tokens else 0,
                "probe": probed,
                "server_log_problem_count": problems,
                "server_log_problems": first,
                "version": server.version,
                "notes": server.notes,
            }
        )
    return result


def load(
    args: argparse.Namespace,
    server: Server,
    tokens: list[str] | None,
    memory_before: dict[str, int],
) -> dict[str, Any]:
    """Open the subscribers, measure idle memory, write, wait for the deliveries, count."""
    planned = round(args.rate * args.duration)
    context = mp.get_context("spawn")  # this process has threads: no fork
    procs: list[Any] = []
    pipes: list[ClientPipe] = []
    native = args.client == "native"
    client_procs = 1 if native else args.client_procs
    per = -(-args.subscribers // client_procs)
    try:
        for number in range(client_procs):
            indices = range(number * per, min(args.subscribers, (number + 1) * per))
            cfg = ClientConfig(
                number=number,
                host=HOST,
                port=server.port,
                indices=indices,
                tokens=[tokens[i % len(tokens)] for i in indices] if tokens else None,
                planned=planned,
                sample_every=args.sample_every,
                connect_rate=args.connect_rate / client_procs,
                setup_timeout=args.setup_timeout,
                deflate=args.deflate,
            )
            if native:
                client = NativeClient(args.wsload, cfg, server.data_dir.parent)
                procs.append(client)
                pipes.append(client)
                continue
            parent, child = context.Pipe()
            proc = context.Process(
                target=client_process, args=(cfg, child), name=f"realtime-client-{number}"
            )
            proc.daemon = True
            proc.start()
            child.close()
            procs.append(proc)
            pipes.append(parent)
        print(
            f"  connecting {args.subscribers:,} subscribers from "
            + ("the native client (wsload)" if native else f"{client_procs} process(es)")
            + f" at {args.connect_rate:g}/s",
            flush=True,
        )
        setup_limit = args.subscribers / args.connect_rate + args.setup_timeout + 60
        ready = receive(pipes, "ready", setup_limit)
        subscribed = sum(r["subscribed"] for r in ready)
        failures = merge_counters(ready, "failures")
        setup_s = max(r["seconds"] for r in ready)
        print(f"  {subscribed:,} of {args.subscribers:,} subscribed in {setup_s:.1f}s", flush=True)
        for reason, count in sorted(failures.items(), key=lambda kv: -kv[1]):
            print(f"    failed: {count:,} x {reason}", flush=True)
        broadcast(pipes, "phase", "idle")
        time.sleep(args.idle)
        memory_idle = workers_memory_kb(server.workers)
        delta_kb = memory_idle.get("VmRSS", 0) - memory_before.get("VmRSS", 0)
        per_connection = delta_kb / subscribed if subscribed else None
        if per_connection is not None:
            print(
                f"  server RSS {memory_before.get('VmRSS', 0) / 1024:.1f} MB before,"
                f" {memory_idle.get('VmRSS', 0) / 1024:.1f} MB with {subscribed:,} idle"
                f" subscribers: {per_connection:.1f} KB per connection",
                flush=True,
            )
        roles = {
            "server": server.workers,
            "postgres": postgres_pids(server),
            "clients": [p.pid for p in procs],
            "writer": [os.getpid()],
        }
        broadcast(pipes, "phase", "writes")
        print(
            f"  writing {planned:,} records at {args.rate:g}/s for {args.duration:g}s", flush=True
        )
        mark_start = cpu_mark(roles)
        writes = run_async(write_phase(server, args))
        mark_writes = cpu_mark(roles)
        memory_writes = workers_memory_kb(server.workers)
        broadcast(pipes, "phase", "drain")
        last_ack = max((t for t in writes.acks if not math.isnan(t)), default=time.time())
        deadline = max(last_ack, time.time()) + args.drain_timeout
        broadcast(pipes, "finish", writes.acks, writes.due, deadline)
        print(
            f"  {writes.acknowledged:,} writes acknowledged; waiting up to"
            f" {args.drain_timeout:g}s for the deliveries",
            flush=True,
        )
        parts = receive(pipes, "result", args.drain_timeout + 300)
        mark_drained = cpu_mark(roles)
        memory_after = workers_memory_kb(server.workers)
        broadcast(pipes, "close")
        with contextlib.suppress(BenchError):
            receive(pipes, "closed", 30)
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.close()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return summarize(
        args,
        writes,
        ready,
        parts,
        {
            "before": memory_before,
            "idle": memory_idle,
            "after_writes": memory_writes,
            "after_drain": memory_after,
            "idle_delta_kb": delta_kb,
            "kb_per_idle_connection": None if per_connection is None else round(per_connection, 2),
        },
        {
            "writes": cpu_used(mark_start, mark_writes),
            "writes_and_drain": cpu_used(mark_start, mark_drained),
            "write_seconds": round(mark_writes.at - mark_start.at, 2),
            "drain_seconds": round(mark_drained.at - mark_writes.at, 2),
        },
        {"subscribed": subscribed, "failures": failures, "seconds": round(setup_s, 2)},
        deadline,
    )


def summarize(
    args: argparse.Namespace,
    writes: Writes,
    ready: list[dict[str, Any]],
    parts: list[dict[str, Any]],
    memory: dict[str, Any],
    cpu: dict[str, Any],
    setup: dict[str, Any],
    deadline: float,
) -> dict[str, Any]:
    acknowledged = writes.acknowledged
    subscribed = setup["subscribed"]
    latencies: list[float] = []
    from_due: list[float] = []
    slowest = [math.nan] * writes.planned
    # the native client is one process and computes its percentiles over all its deliveries
    computed = [
        (p.pop("latency_ms"), p.pop("latency_from_due_ms")) for p in parts if "latency_ms" in p
    ]
    for part in parts:
        latencies.extend(part.pop("latencies", ()))
        from_due.extend(part.pop("from_due", ()))
        for seq, ms in enumerate(part.pop("slowest")):
            if not ms <= slowest[seq]:
                slowest[seq] = ms
    lag = [x for part in parts for x in part.pop("loop_lag_ms")]
    total = {
        key: sum(p[key] for p in parts)
        for key in (
            "delivered",
            "lost",
            "incomplete_subscribers",
            "lost_on_closed",
            "closed_subscribers",
            "ended_subscriptions",
            "duplicates",
            "unacknowledged_received",
            "unexpected",
            "out_of_order",
            "messages",
            "changes",
            "received_bytes",
            "sampled",
            "pings",
            "ws_pings",
            "deflate",
        )
    }
    last_receipt = max(p["last_receipt"] for p in parts)
    last_ack = max((t for t in writes.acks if not math.isnan(t)), default=math.nan)
    span = writes.finished - writes.started
    points = (50, 90, 99, 99.9)
    return {
        "subscribers": args.subscribers,
        "subscribed": subscribed,
        "config_rate": args.rate,
        "setup": setup,
        "writes": {
            "planned": writes.planned,
            "acknowledged": acknowledged,
            "failed": dict(writes.statuses),
            "failure_samples": writes.failure_samples,
            "rate_per_s": round(acknowledged / span, 1) if span > 0 else None,
            "ack_ms": percentiles(writes.ack_ms, (50, 99)),
            "send_lag_ms": percentiles(writes.send_lag_ms, (50, 99)),
            "connections": writes.connections,
            "resent_on_closed_keepalive": writes.resent,
        },
        "deliveries": {
            "expected": acknowledged * subscribed,
            "received": total["delivered"],
            "lost": total["lost"],
            "lost_on_closed_connections": total["lost_on_closed"],
            "incomplete_subscribers": total["incomplete_subscribers"],
            "duplicates": total["duplicates"],
            "unacknowledged_writes_received": total["unacknowledged_received"],
            "unexpected_changes": total["unexpected"],
            "change_id_out_of_order": total["out_of_order"],
            "messages": total["messages"],
            "changes_per_message": (
                round(total["changes"] / total["messages"], 2) if total["messages"] else None
            ),
            "received_mb": round(total["received_bytes"] / 1e6, 1),
            "drain_s_after_last_ack": (
                round(last_receipt - last_ack, 2) if last_receipt and last_ack == last_ack else None
            ),
        },
        "latency_ms": computed[0][0]
        if computed
        else {
            **percentiles(latencies, points),
            "samples": len(latencies),
            "sampled_subscribers": total["sampled"],
            "negative": sum(1 for x in latencies if x < 0),
        },
        "slowest_subscriber_ms": percentiles([x for x in slowest if x == x], (50, 99)),
        # from when each write was due to be sent: what a reader sees when acks lag behind
        "latency_from_due_ms": computed[0][1] if computed else percentiles(from_due, (50, 99)),
        # with deliveries missing: how long before the drain window closed the last one came
        # (short: the server was still catching up, and the missing ones may just be late)
        "last_delivery_before_deadline_s": (
            round(deadline - last_receipt, 2) if total["lost"] and last_receipt else None
        ),
        "client_loop_lag_ms": percentiles(lag, (50, 99)),
        "memory_kb": memory,
        "cpu": cpu,
        "server_closes": merge_counters(parts, "closes"),
        "server_errors": merge_counters(parts, "errors"),
        "server_error_samples": [s for p in parts for s in p["error_samples"]][:5],
        "subscriptions_ended": merge_counters(parts, "ended"),
        "other_messages": merge_counters(parts, "other_messages"),
        "other_actions": merge_counters(parts, "actions"),
        "unexpected_samples": [s for p in parts for s in p["unexpected_samples"]][:5],
        "pings_answered": total["pings"],
        "ws_pings_answered": total["ws_pings"],
        "deflate_connections": total["deflate"],
        "client_processes": [
            {"process": p["process"], "subscribers": r["subscribed"]}
            for p, r in zip(parts, ready, strict=True)
        ],
    }


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    p99 = result["latency_ms"]["p99"]
    lost = result["deliveries"]["lost"]
    kb = result["memory_kb"]["kb_per_idle_connection"]
    return {
        "all_subscribed": {
            "target": f"{result['subscribers']:,} subscribed",
            "value": result["subscribed"],
            "pass": result["subscribed"] == result["subscribers"],
        },
        "ack_p99": {
            "target": f"write ack p99 < {TARGET_ACK_P99_MS:g} ms",
            "value": result["writes"]["ack_ms"]["p99"],
            "pass": result["writes"]["ack_ms"]["p99"] is not None
            and result["writes"]["ack_ms"]["p99"] < TARGET_ACK_P99_MS,
        },
        "p99_latency": {
            "target": f"p99 < {TARGET_P99_MS:g} ms",
            "value": p99,
            "pass": p99 is not None and p99 < TARGET_P99_MS,
        },
        "zero_lost": {
            "target": "0 lost events",
            "value": lost,
            "pass": lost == 0 and result["deliveries"]["expected"] > 0,
        },
        "idle_memory": {
            "target": f"< {TARGET_KB_PER_CONNECTION:g} KB per idle connection",
            "value": kb,
            "pass": kb is not None and kb < TARGET_KB_PER_CONNECTION,
        },
    }


# -- report --------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items())) or "none"


def render(results: dict[str, dict[str, Any]]) -> str:
    variants = list(results)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("list rule", lambda r: repr(r["list_rule"])),
        ("server workers", lambda r: str(r["workers"])),
        ("subscribed", lambda r: f"{r['subscribed']:,}/{r['subscribers']:,}"),
        ("writes acked", lambda r: f"{r['writes']['acknowledged']:,}/{r['writes']['planned']:,}"),
        ("write rate /s", lambda r: str(r["writes"]["rate_per_s"])),
        ("write ack p50 ms", lambda r: fmt_ms(r["writes"]["ack_ms"]["p50"])),
        ("write ack p99 ms", lambda r: fmt_ms(r["writes"]["ack_ms"]["p99"])),
        ("deliveries expected", lambda r: f"{r['deliveries']['expected']:,}"),
        ("deliveries received", lambda r: f"{r['deliveries']['received']:,}"),
        ("lost", lambda r: f"{r['deliveries']['lost']:,}"),
        ("duplicates", lambda r: f"{r['deliveries']['duplicates']:,}"),
        ("latency p50 ms", lambda r: fmt_ms(r["latency_ms"]["p50"])),
        ("latency p90 ms", lambda r: fmt_ms(r["latency_ms"]["p90"])),
        ("latency p99 ms", lambda r: fmt_ms(r["latency_ms"]["p99"])),
        ("latency max ms", lambda r: fmt_ms(r["latency_ms"]["max"])),
        ("slowest sub p99 ms", lambda r: fmt_ms(r["slowest_subscriber_ms"]["p99"])),
        ("from due p50 ms", lambda r: fmt_ms(r["latency_from_due_ms"]["p50"])),
        ("from due p99 ms", lambda r: fmt_ms(r["latency_from_due_ms"]["p99"])),
        ("changes per message", lambda r: str(r["deliveries"]["changes_per_message"])),
        ("drain after last ack s", lambda r: str(r["deliveries"]["drain_s_after_last_ack"])),
        ("server CPU cores", lambda r: f"{r['cpu']['writes']['server']['cores']:.2f}"),
        ("postgres CPU cores", lambda r: f"{r['cpu']['writes']['postgres']['cores']:.2f}"),
        ("clients CPU cores", lambda r: f"{r['cpu']['writes']['clients']['cores']:.2f}"),
        ("writer CPU cores", lambda r: f"{r['cpu']['writes']['writer']['cores']:.2f}"),
        ("irq+softirq cores", lambda r: f"{r['cpu']['writes']['interrupts']['cores']:.2f}"),
        ("other procs cores", lambda r: f"{r['cpu']['writes']['other']['cores']:.2f}"),
        ("server CPU s (writes)", lambda r: f"{r['cpu']['writes']['server']['seconds']:.1f}"),
        ("client loop lag p99 ms", lambda r: fmt_ms(r["client_loop_lag_ms"]["p99"])),
        ("server RSS idle MB", lambda r: f"{r['memory_kb']['idle'].get('VmRSS', 0) / 1024:.1f}"),
        ("KB per idle conn", lambda r: fmt_ms(r["memory_kb"]["kb_per_idle_connection"])),
        ("server closes", lambda r: fmt_counts(r["server_closes"])),
    ]
    width = max(len(label) for label, _ in rows)
    cells = {v: [fn(results[v]) for _, fn in rows] for v in variants}
    col = max([12, *(len(c) for v in variants for c in cells[v] if len(c) < 40)])
    header = f"{'':<{width}}  " + "  ".join(f"{v:>{col}}" for v in variants)
    lines = [header, "-" * len(header)]
    for i, (label, _) in enumerate(rows):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{cells[v][i]:>{col}}" for v in variants))
    lines.append("")
    for variant in variants:
        result = results[variant]
        for check in targets(result).values():
            verdict = "PASS" if check["pass"] else "MISS"
            value = check["value"]
            shown = f"{value:,.1f}" if isinstance(value, float) else f"{value}"
            lines.append(f"{verdict}  {variant:<9} {check['target']:<32} ({shown})")
    warnings = []
    for variant in variants:
        r = results[variant]
        d = r["deliveries"]
        for label, value in (
            ("subscriber set-up failures", fmt_counts(r["setup"]["failures"])),
            ("write failures", fmt_counts(r["writes"]["failed"])),
            ("server error messages", fmt_counts(r["server_errors"])),
            ("subscriptions ended by the server", fmt_counts(r["subscriptions_ended"])),
            ("unexpected message types", fmt_counts(r["other_messages"])),
            ("actions other than create", fmt_counts(r["other_actions"])),
        ):
            if value != "none":
                warnings.append(f"{variant}: {label}: {value}")
        for key in (
            "lost_on_closed_connections",
            "unacknowledged_writes_received",
            "unexpected_changes",
            "change_id_out_of_order",
        ):
            if d[key]:
                warnings.append(f"{variant}: {key.replace('_', ' ')}: {d[key]:,}")
        if d["incomplete_subscribers"]:
            warnings.append(
                f"{variant}: {d['incomplete_subscribers']:,} subscriber(s) missed events"
            )
        quiet = r["last_delivery_before_deadline_s"]
        if quiet is not None:
            warnings.append(
                f"{variant}: the last delivery came {quiet:.1f}s before the drain window closed;"
                " a longer --drain-timeout tells late deliveries from lost ones"
            )
        rate, wanted = r["writes"]["rate_per_s"], r["config_rate"]
        if rate is not None and rate < 0.95 * wanted:
            warnings.append(
                f"{variant}: the server took {rate:g} writes/s, not {wanted:g} (acks p50"
                f" {fmt_ms(r['writes']['ack_ms']['p50'])} ms): latency from the ack understates"
                " the delay; from when each write was due: p50"
                f" {fmt_ms(r['latency_from_due_ms']['p50'])} ms, p99"
                f" {fmt_ms(r['latency_from_due_ms']['p99'])} ms"
            )
        if r["latency_ms"]["negative"]:
            warnings.append(
                f"{variant}: {r['latency_ms']['negative']:,} deliveries arrived before the"
                " writer saw the 201 (negative latency; counted as is)"
            )
        if r["server_log_problem_count"]:
            first = r["server_log_problems"][0].splitlines()
            shown = first[0] + (f" ... {first[-1]}" if len(first) > 1 else "")
            warnings.append(
                f"{variant}: the server logged {r['server_log_problem_count']} warning(s)/"
                f"error(s) during the load (in the JSON, with tracebacks); the first: {shown}"
            )
        clients = r["cpu"]["writes"]["clients"]["cores"]
        procs = len(r["client_processes"])
        if clients > 0.9 * procs:
            warnings.append(
                f"{variant}: the client processes were CPU-bound ({clients:.2f} cores for"
                f" {procs}): latencies include client delay"
            )
        other = r["cpu"]["writes"]["other"]["cores"]
        if other >= 0.1:
            names = ", ".join(
                f"{p['command'][:60]} ({p['cores']:.2f})"
                for p in r["cpu"]["writes"]["busiest_others"]
            )
            warnings.append(
                f"{variant}: other processes used {other:.2f} cores while writing"
                + (f"; the busiest: {names}" if names else "")
            )
    if warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in warnings)
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------


def source_state() -> str:
    """The commit of this checkout, and whether the server's code differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "baas", "cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in baas/ or cli/" if changed else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Load-test baas realtime: many subscribers of one collection, steady writes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-s", "--subscribers", type=int, default=5000, help="WebSocket subscribers")
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default="native",
        help="the subscribers: native: one process of benchmarks/wsload.c (compiled with gcc),"
        " which keeps up with the server; or Python processes (--client-procs)",
    )
    p.add_argument(
        "--client-procs",
        type=int,
        default=2,
        help="processes the Python subscribers are spread over",
    )
    p.add_argument("-r", "--rate", type=float, default=100, help="writes a second")
    p.add_argument("-d", "--duration", type=float, default=30, help="seconds of writes")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help='public (list rule "", anonymous subscribers) and/or rule (--rule, a user each)',
    )
    p.add_argument("--rule", default=DEFAULT_RULE, help="the list rule of the `rule` variant")
    p.add_argument(
        "--workers",
        default="1,2",
        help="`baas serve --workers` of each run, comma-separated: every variant runs once per"
        " count, each on a fresh server, all in one report",
    )
    p.add_argument(
        "--users",
        type=int,
        default=0,
        help="users of the rule variant, spread over the subscribers (0: one per subscriber)",
    )
    p.add_argument(
        "--connect-rate", type=float, default=500, help="new connections a second (all processes)"
    )
    p.add_argument(
        "--setup-timeout",
        type=float,
        default=60,
        help="seconds one subscriber may take to connect, upgrade and subscribe",
    )
    p.add_argument(
        "--idle", type=float, default=5, help="seconds idle before measuring server memory"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30,
        help="seconds after the last write to wait for missing deliveries",
    )
    p.add_argument(
        "--sample-every",
        type=int,
        default=10,
        help="keep latency samples of every Nth subscriber (all are counted; the native client"
        " keeps every delivery's)",
    )
    p.add_argument(
        "--writer-connections", type=int, default=4, help="HTTP connections the writer opens first"
    )
    p.add_argument(
        "--writer-max-connections",
        type=int,
        default=64,
        help="more are opened while all wait for answers, up to this many",
    )
    p.add_argument("--body-bytes", type=int, default=64, help="size of each record's `body`")
    p.add_argument(
        "--deflate",
        action="store_true",
        help="offer permessage-deflate, as browsers do (default: no compression)",
    )
    p.add_argument(
        "--database-url",
        default="",
        help="external PostgreSQL (e.g. postgresql://postgres@127.0.0.1:5432/postgres); a scratch"
        " database is created there and dropped afterwards. Default: embedded PostgreSQL",
    )
    p.add_argument(
        "--baas-env",
        action="append",
        default=[],
        metavar="BAAS_NAME=VALUE",
        help="extra setting for the baas server (repeatable); overrides "
        + ", ".join(f"{k}={v}" for k, v in SERVER_ENV.items()),
    )
    p.add_argument("--baas", type=Path, default=default_tool("baas"), help="baas executable")
    p.add_argument("--start-timeout", type=float, default=120, help="seconds to wait for a server")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="JSON results file (default results/realtime-<next number>.json)",
    )
    p.add_argument(
        "--keep-temp", action="store_true", help="keep the scratch directory (data, server logs)"
    )
    args = p.parse_args(argv)
    args.baas_env = dict(split_env(p, item) for item in args.baas_env)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        p.error(f"--variants: choose from {', '.join(VARIANTS)} (got {args.variants!r})")
    args.variants = [v for v in VARIANTS if v in variants]
    try:
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        counts = []
    if not counts or any(w < 1 for w in counts):
        p.error(f"--workers: comma-separated positive counts, e.g. 1,2 (got {args.workers!r})")
    args.workers = list(dict.fromkeys(counts))
    positive = ("subscribers", "client_procs", "rate", "duration", "connect_rate", "sample_every")
    if any(getattr(args, name) <= 0 for name in positive) or args.writer_connections < 1:
        p.error(
            "--subscribers, --client-procs, --rate, --duration, --connect-rate,"
            " --sample-every and --writer-connections must be positive"
        )
    if args.client == "python" and args.client_procs > args.subscribers:
        p.error("--client-procs must not exceed --subscribers")
    if args.client == "native" and args.deflate:
        p.error("--client native does not speak permessage-deflate (--deflate)")
    if args.writer_max_connections < args.writer_connections:
        p.error("--writer-max-connections must not be below --writer-connections")
    if args.users < 0 or args.body_bytes < 0 or args.idle < 0 or args.drain_timeout < 0:
        p.error("--users, --body-bytes, --idle and --drain-timeout must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.baas and args.baas.is_file()):
        print("error: the baas executable was not found: `pip install -e .` or pass --baas PATH.")
        return 2
    try:
        raise_fd_limit(args.subscribers + 1000)  # the server inherits it
        args.wsload = native_client_binary() if args.client == "native" else None
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    catch_signals()
    started = dt.datetime.now(dt.UTC)
    output: Path = args.output or numbered_output("realtime")
    work = Path(tempfile.mkdtemp(prefix="baas-bench-rt-"))
    cpus = os.cpu_count() or 1
    clients = (
        "the native client (wsload)"
        if args.client == "native"
        else f"{args.client_procs} process(es)"
    )
    print(
        f"{args.subscribers:,} subscribers over {clients}, {args.rate:g} writes/s for"
        f" {args.duration:g}s, variants {', '.join(args.variants)}, server workers"
        f" {', '.join(map(str, args.workers))}; scratch dir {work}",
        flush=True,
    )
    source = source_state()
    print(f"baas source: {source}", flush=True)
    busy = busy_before()
    results: dict[str, dict[str, Any]] = {}

    def each_variant() -> None:
        for variant in args.variants:
            for workers in args.workers:
                results[f"{variant}/w{workers}"] = run_variant(args, variant, work, workers)

    ok = run_guarded(each_variant, work, args.keep_temp, (httpx.HTTPError,))
    if not results:
        return 1
    print("\n" + render(results))
    notes = [
        "one `baas serve --workers N` per column (`/wN`); the load generator shares this"
        f" machine's {cpus} core(s) with it; with several workers the kernel spreads the"
        " subscribers and the writes over them, and each worker reads the change log itself",
        "latency: time.time() when a subscriber read the change minus time.time() when the"
        " writer got the write's 201; "
        + (
            "every delivery to every subscriber (native client: wsload, one epoll process;"
            " its clock is CLOCK_REALTIME)"
            if args.client == "native"
            else f"full samples from every {args.sample_every}th subscriber, counts from all"
        ),
        "memory: VmRSS of the server's worker processes (summed) with all subscribers idle"
        " minus before they connected, over the subscribers",
        "CPU cores: over the write phase (server = the worker processes, without PostgreSQL;"
        " clients = the subscriber processes"
        + (", here wsload)" if args.client == "native" else ")"),
        f"subscribers {'offer' if args.deflate else 'do not offer'} permessage-deflate",
    ]
    if busy is not None:
        notes.append(f"CPU busy with other work just before the run: {busy:.0f}%")
    for note in notes:
        print(f"note: {note}")
    report = {
        "benchmark": "realtime",
        "started": started.isoformat(timespec="seconds"),
        "complete": ok,
        "machine": machine(busy),
        "versions": {"baas": next(iter(results.values()))["version"], "source": source},
        "config": {
            "subscribers": args.subscribers,
            "client": args.client,
            "client_procs": 1 if args.client == "native" else args.client_procs,
            "rate_per_s": args.rate,
            "duration_s": args.duration,
            "variants": args.variants,
            "rule": args.rule,
            "users": args.users,
            "connect_rate": args.connect_rate,
            "idle_s": args.idle,
            "drain_timeout_s": args.drain_timeout,
            "sample_every": args.sample_every,
            "writer_connections": args.writer_connections,
            "writer_max_connections": args.writer_max_connections,
            "body_bytes": args.body_bytes,
            "deflate": args.deflate,
            "baas_workers": args.workers,
            "baas_database": "external" if args.database_url else "embedded",
            "baas_env": {**SERVER_ENV, **args.baas_env},
        },
        "results": results,
        "targets": {v: targets(r) for v, r in results.items()},
        "notes": notes,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults written to {output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
