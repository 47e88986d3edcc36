"""Push fan-out benchmark: one notification to many devices, against local fake providers.

Starts the repository's fake APNs (HTTP/2 over TLS, token auth) and fake FCM (HTTP v1 and
Google's OAuth token endpoint) in this process, one `baas serve --workers 1` pointed at them
(BAAS_APNS_HOST, BAAS_PUSH_CA_FILE, BAAS_FCM_URL), configures the `push.apps` runtime setting
(an iOS app with a .p8 key, an Android app with a service account), and seeds --devices devices
straight into PostgreSQL (half iOS, half Android, two per user, all subscribed to the topic
`all`). After a small warm-up message (the provider clients, connections and threads exist
before the measurement), it sends `POST /api/push/send {"topics": ["all"], ...}` and polls the
message every 50 ms until nothing of it is pending.

Reports the time to all delivered (from just before the POST to the status poll that saw the
message settled, and to the last notification the fakes accepted), deliveries a second, the
sent/failed counts, what each fake received (missing, duplicated, unexpected tokens), the
server's RSS before the send and its peak during it (VmRSS sampled every 50 ms, and VmHWM reset
just before the send), the CPU of the server, PostgreSQL and this process (the fakes), the
latency of the status polls, and PASS/MISS against the targets: every device reached once, all
delivered in under 10 s, and memory bounded: the peak growth within a budget set by the sends in
flight (jobs at once x sends per job), not by the devices. `--compare` runs 2,000 and then
--devices devices, each on a fresh server, and says whether the peak growth scales with the
device count (growth per 1,000 more devices). Writes the results as JSON. Run
`python benchmarks/push.py --help` for the options; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python benchmarks/push.py): make its siblings importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.realtime import (
    cpu_mark,
    cpu_used,
    descendants,
    listening_pid,
    log_problems,
    log_size,
    memory_kb,
    source_state,
)
from benchmarks.records import (
    BenchError,
    Client,
    _matching,
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
)
from tests.push.apns_server import FakeApns, make_apns_key
from tests.push.fake_apps import BUNDLE_ID, KEY_ID, PACKAGE, TEAM_ID, apps_setting
from tests.push.fcm_server import FakeFcm

# The apps and credentials the fakes accept (as tests/push/conftest.py configures them).
PROJECT_ID = "acme-chat"
TOPIC = "all"
WARMUP_TOPIC = "bench-warmup"
TITLE = "Benchmark"
WARMUP_TITLE = "Warm-up"
BODY = "One notification to every device of the topic `all`."
PENDING = ("scheduled", "sending")
TARGET_S = 10.0
# Memory is bounded when it follows the work in flight, not the devices: a delivery job holds
# `push_concurrency` sends at a time and a process runs `jobs_concurrency` jobs, so the peak
# growth of a send should stay under a budget per send in flight, whatever the device count.
BASE_KB = 4096  # connections, TLS and HTTP/2 state, pools: there at any device count
KB_PER_SEND_IN_FLIGHT = 8
DEFAULT_JOBS_CONCURRENCY = 8  # BAAS_JOBS_CONCURRENCY's default
DEFAULT_PUSH_CONCURRENCY = 64  # BAAS_PUSH_CONCURRENCY's default
BATCH = 1000  # devices per delivery job (baas/push/delivery.py)
# --compare: holding every device of a message at once costs at least an asyncpg row per device
# (ids, a 64-163 character token, platform, app id: about 0.5 KB). Growth between the two runs
# of under half that per device is not loading them all.
MAX_MARGINAL_KB_PER_1000 = 250.0
LATE_FROM = 0.25  # "late growth": RSS growth after this fraction of the send (the ramp-up)
WATCH_S = 0.01  # how often the fakes' counts are read (the last delivery's time, +-10 ms)
RSS_EVERY_S = 0.05  # how often the server's VmRSS is sampled
SERVER_ENV = {"BAAS_ACCESS_LOG": "false"}  # 20 status polls a second would fill the log


# -- the devices ---------------------------------------------------------------------------------


@dataclass
class Devices:
    """What was seeded: the tokens each fake should receive, exactly once each."""

    ios: set[str]
    android: set[str]
    users: int
    warmup: int  # of them also subscribed to WARMUP_TOPIC
    seconds: float

    @property
    def total(self) -> int:
        return len(self.ios) + len(self.android)


def ios_token() -> str:
    return secrets.token_hex(32)  # 64 hex digits, as Apple's device tokens are


def android_token() -> str:
    # An FCM registration token: "<instance id>:APA91b<payload>", about 163 characters.
    return secrets.token_urlsafe(17)[:22] + ":APA91b" + secrets.token_urlsafe(101)[:134]


def device_rows(
    count: int, per_user: int, warmup: int
) -> tuple[list[tuple[Any, ...]], list[tuple[str, uuid.UUID]], set[str], set[str]]:
    """Rows of baas.push_devices and baas.push_topic_devices: platforms alternate (a user with
    two devices has one of each), tokens are unique."""
    ios: set[str] = set()
    android: set[str] = set()
    devices, topics = [], []
    user = uuid.uuid4()
    for i in range(count):
        if i % per_user == 0:
            user = uuid.uuid4()
        device = uuid.uuid4()
        if i % 2 == 0:
            mine, make, kind, app = ios, ios_token, "ios", BUNDLE_ID
        else:
            mine, make, kind, app = android, android_token, "android", PACKAGE
        token = make()
        while token in mine:
            token = make()
        mine.add(token)
        devices.append((device, user, kind, token, app, "en", f"bench device {i}"))
        topics.append((TOPIC, device))
        if i < warmup:
            topics.append((WARMUP_TOPIC, device))
    return devices, topics, ios, android


def seed_devices(database_url: str, count: int, per_user: int, warmup: int) -> Devices:
    """Insert the devices and their topic subscriptions with COPY (not measured)."""
    import asyncpg  # a baas dependency: present wherever baas is installed

    started = time.perf_counter()
    devices, topics, ios, android = device_rows(count, per_user, warmup)

    async def insert() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "push_devices",
                    schema_name="baas",
                    columns=["id", "user_id", "platform", "token", "app_id", "locale", "name"],
                    records=devices,
                )
                await conn.copy_records_to_table(
                    "push_topic_devices",
                    schema_name="baas",
                    columns=["topic", "device_id"],
                    records=topics,
                )
            # What autovacuum would have done long before a real send: planner statistics.
            await conn.execute("ANALYZE baas.push_devices")
            await conn.execute("ANALYZE baas.push_topic_devices")
        finally:
            await conn.close()

    asyncio.run(insert())
    elapsed = time.perf_counter() - started
    users = (count + per_user - 1) // per_user
    print(
        f"  seeded {count:,} devices ({len(ios):,} iOS, {len(android):,} Android, {users:,}"
        f" users) in {elapsed:.1f}s",
        flush=True,
    )
    return Devices(ios, android, users, min(warmup, count), elapsed)


# -- the server and the fakes --------------------------------------------------------------------


@dataclass
class Server:
    admin: Client
    proc: subprocess.Popen[bytes]
    pid: int  # the process serving (the only one, with one worker)
    data_dir: Path
    database_url: str  # for seeding
    markers: list[str]  # an external PostgreSQL's backends carry the scratch database's name
    log: Path
    notes: list[str] = field(default_factory=list)


def embedded_url(data_dir: Path) -> str:
    """The unix-socket URL of the server's embedded PostgreSQL (we run as its superuser)."""
    from baas.db.embedded import EmbeddedPostgres

    return EmbeddedPostgres(data_dir).url


@contextlib.contextmanager
def push_server(
    args: argparse.Namespace, work: Path, apns: FakeApns, fcm: FakeFcm, apns_key: str
) -> Iterator[Server]:
    """`baas serve --workers 1` pointed at the fakes, with `push.apps` set; stopped after."""
    work.mkdir(parents=True, exist_ok=True)
    service_key = "baas_sk_" + secrets.token_urlsafe(32)
    port = free_port()
    data_dir = work / "baas_data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAAS_")}
    env.update(
        {
            "BAAS_DATA_DIR": str(data_dir),
            "BAAS_SERVICE_KEY": service_key,
            "BAAS_APNS_HOST": f"{apns.host}:{apns.port}",
            "BAAS_PUSH_CA_FILE": apns.ca_file,
            "BAAS_FCM_URL": fcm.endpoint_base,
            "BAAS_OUTBOUND_ALLOW_PRIVATE": "127.0.0.0/8",  # the fake FCM is local
        }
    )
    env.update(SERVER_ENV)
    env.update(args.baas_env)
    notes = [f"baas: {k}={v}" for k, v in sorted({**SERVER_ENV, **args.baas_env}.items())]
    markers: list[str] = []
    with contextlib.ExitStack() as stack:
        proc, admin = launch_baas(stack, args, 1, port, env, work, service_key, markers, notes)
        database_url = env.get("BAAS_DATABASE_URL") or embedded_url(data_dir)
        applied = admin.expect(
            "PATCH", "/api/admin/settings", {"push.apps": apps_setting(apns_key, fcm)}
        )
        if not any(s["name"] == "push.apps" and s["set"] for s in applied["items"]):
            raise BenchError("PATCH /api/admin/settings did not set push.apps")
        print("[baas] push.apps: an iOS app (fake APNs) and an Android app (fake FCM)")
        pid = listening_pid(port, proc.pid)
        if pid != proc.pid:
            notes.append(f"baas: requests served by pid {pid}, a child of {proc.pid}")
        yield Server(admin, proc, pid, data_dir, database_url, markers, work / "baas.log", notes)


def postgres_pids(server: Server) -> list[int]:
    """The embedded postmaster's tree, or the scratch database's backends on an external one."""
    if server.markers:
        return _matching([int(p) for p in os.listdir("/proc") if p.isdigit()], server.markers)
    roots = postmaster_pid(server.data_dir)
    return [*roots, *descendants(roots)]


def reset_peak_rss(pid: int) -> bool:
    """Make the kernel's VmHWM start again from the current RSS (Linux: clear_refs 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- measuring -----------------------------------------------------------------------------------


class Watcher(threading.Thread):
    """Every 10 ms, how many notifications each fake has accepted since the start (and when
    that count changed); every 50 ms, the server's VmRSS."""

    def __init__(self, apns: FakeApns, fcm: FakeFcm, pid: int, expected: int) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.lists = {"apns": apns.received, "fcm": fcm.received}
        self.pid, self.expected = pid, expected
        self.base = {name: len(items) for name, items in self.lists.items()}
        self.counts = dict.fromkeys(self.lists, 0)
        self.first: float | None = None  # perf_counter() when the first arrived
        self.last: dict[str, float | None] = dict.fromkeys(self.lists)  # when a count last changed
        self.all_at: float | None = None  # ... when both together reached `expected`
        self.rss: list[tuple[float, int]] = []  # (perf_counter(), VmRSS KB)
        self._stop_event = threading.Event()

    @property
    def apns_base(self) -> int:
        return self.base["apns"]

    @property
    def fcm_base(self) -> int:
        return self.base["fcm"]

    def last_any(self) -> float | None:
        return max((t for t in self.last.values() if t is not None), default=None)

    def run(self) -> None:
        next_rss = 0.0
        while True:
            now = time.perf_counter()
            for name, items in self.lists.items():
                count = len(items) - self.base[name]
                if count != self.counts[name]:
                    self.counts[name] = count
                    self.last[name] = now
                    if self.first is None:
                        self.first = now
            if self.all_at is None and sum(self.counts.values()) >= self.expected:
                self.all_at = now
            if now >= next_rss:
                rss = memory_kb(self.pid).get("VmRSS")
                if rss is not None:
                    self.rss.append((now, rss))
                next_rss = now + RSS_EVERY_S
            if self._stop_event.wait(WATCH_S):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Polls:
    """The status polls of one message: when each status was first seen, and how long each
    GET took (the API's latency while the server is sending)."""

    seen: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter(), status)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = sorted(self.latencies_ms)
        if not ms:
            return {"count": 0}
        return {
            "count": len(ms),
            "p50_ms": round(ms[len(ms) // 2], 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1),
        }


def wait_settled(
    admin: Client, message: str, timeout: float, every: float
) -> tuple[dict[str, Any], float, Polls]:
    """Poll the message every `every` s until nothing of it is pending: its last status, when
    that poll answered (perf_counter()), and the polls."""
    deadline = time.perf_counter() + timeout
    polls = Polls()
    while True:
        asked = time.perf_counter()
        status = admin.expect("GET", f"/api/push/messages/{message}")
        now = time.perf_counter()
        polls.latencies_ms.append((now - asked) * 1000)
        if not polls.seen or polls.seen[-1][1] != status["status"]:
            polls.seen.append((now, status["status"]))
        if status["status"] not in PENDING or now >= deadline:
            return status, now, polls
        time.sleep(max(0.0, every - (time.perf_counter() - now)))


def send(admin: Client, topic: str, title: str) -> dict[str, Any]:
    body = {"topics": [topic], "title": title, "body": BODY}
    reply: dict[str, Any] = admin.expect("POST", "/api/push/send", body, status=202)
    return reply


def warm_up(server: Server, devices: Devices, args: argparse.Namespace) -> dict[str, Any] | None:
    """A small message first: the provider clients, TLS connections and FCM threads are then
    what a server that has sent before has; the measurement sees the send itself."""
    if devices.warmup == 0:
        return None
    started = time.perf_counter()
    message = send(server.admin, WARMUP_TOPIC, WARMUP_TITLE)
    status, _, _ = wait_settled(server.admin, message["id"], args.timeout, args.poll_interval)
    counts = status["counts"]
    elapsed = time.perf_counter() - started
    print(
        f"  warm-up: {devices.warmup:,} devices, {status['status']} in {elapsed:.2f}s"
        f" (sent {counts['sent']:,}, failed {counts['failed']:,})",
        flush=True,
    )
    if status["status"] != "sent" or counts["sent"] != devices.warmup:
        raise BenchError(
            f"the warm-up message did not reach its {devices.warmup} devices: {status['status']},"
            f" counts {counts}; failures: {failures(server.admin, message['id'])}"
        )
    return {"devices": devices.warmup, "seconds": round(elapsed, 3), "counts": counts}


def failures(admin: Client, message: str, limit: int = 5) -> list[dict[str, Any]]:
    """The first failed and retrying deliveries of a message, with the providers' reasons."""
    found = []
    for status in ("failed", "retrying"):
        with contextlib.suppress(BenchError, OSError, http.client.HTTPException):
            page = admin.expect(
                "GET", f"/api/push/messages/{message}/deliveries?status={status}&limit={limit}"
            )
            found += [
                {k: item.get(k) for k in ("status", "platform", "reason", "attempts")}
                for item in page["items"]
            ]
    return found


def tally(received: Sequence[str], expected: set[str]) -> dict[str, int]:
    """Notifications a fake accepted against the tokens it should have, once each."""
    counts = Counter(received)
    got = set(counts)
    return {
        "expected": len(expected),
        "received": len(received),
        "distinct": len(got),
        "missing": len(expected - got),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected": len(got - expected),
    }


def server_seconds(status: dict[str, Any]) -> dict[str, float | None]:
    """From the message's own timestamps (the server's clock): created -> fanned out ->
    finished."""

    def at(name: str) -> dt.datetime | None:
        value = status.get(name)
        if not value:
            return None
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))

    created, fanned, finished = at("created"), at("fanned_out"), at("finished")

    def span(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
        return None if a is None or b is None else round((b - a).total_seconds(), 3)

    return {
        "created_to_fanned_out": span(created, fanned),
        "fanned_out_to_finished": span(fanned, finished),
        "created_to_finished": span(created, finished),
    }


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None, gil: bool = False) -> Iterator[None]:
    """`py-spy record` on the server while the block runs (when asked for)."""
    if output is None:
        yield
        return
    exe = default_tool("py-spy")
    if exe is None:
        raise BenchError("--py-spy: py-spy is not installed (.venv/bin/pip install py-spy)")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(output.suffix, "flamegraph")
    argv = [str(exe), "record", "--pid", str(pid), "-o", str(output), "-f", fmt, "-r", "200"]
    argv.append("--nonblocking")
    if gil:
        argv.append("--gil")  # only the thread holding the GIL: where the server's CPU goes
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = b""
        print(f"  py-spy profile of the server written to {output}", flush=True)
        if proc.returncode not in (0, -signal.SIGINT):
            print(err.decode(errors="replace")[-500:], file=sys.stderr)


def measure(
    server: Server, apns: FakeApns, fcm: FakeFcm, devices: Devices, args: argparse.Namespace
) -> dict[str, Any]:
    """Send to every device and wait until nothing of the message is pending."""
    admin = server.admin
    pg = postgres_pids(server)
    if args.settle > 0:
        time.sleep(args.settle)
    log_from = log_size(server.log)
    before = memory_kb(server.pid)
    hwm_reset = reset_peak_rss(server.pid)
    watcher = Watcher(apns, fcm, server.pid, devices.total)
    watcher.start()
    time.sleep(RSS_EVERY_S)  # a first RSS sample before the send
    roles = {"server": [server.pid], "postgres": pg, "bench (fakes)": [os.getpid()]}
    cpu_before = cpu_mark(roles)
    with py_spy(server.pid, args.py_spy, args.py_spy_gil):
        t0 = time.perf_counter()
        message = send(admin, TOPIC, TITLE)
        accepted = time.perf_counter()
        status, t1, polls = wait_settled(admin, message["id"], args.timeout, args.poll_interval)
    cpu_after = cpu_mark(roles)
    watcher.stop()
    after = memory_kb(server.pid)
    settled = status["status"] not in PENDING
    apns_tokens = [r.token for r in apns.received[watcher.apns_base :]]
    fcm_messages = fcm.received[watcher.fcm_base :]
    fcm_tokens = [str(m.get("token")) for m in fcm_messages]
    wrong_title = sum(
        1 for r in apns.received[watcher.apns_base :] if _apns_title(r.payload) != TITLE
    ) + sum(1 for m in fcm_messages if (m.get("notification") or {}).get("title") != TITLE)
    received = {"apns": tally(apns_tokens, devices.ios), "fcm": tally(fcm_tokens, devices.android)}
    during = [kb for at, kb in watcher.rss if t0 <= at <= t1 + RSS_EVERY_S]
    rss_before = before.get("VmRSS", 0)
    peak_sampled = max([rss_before, *during])
    hwm = after.get("VmHWM")
    peak = max(peak_sampled, hwm or 0) if hwm_reset else peak_sampled
    growth = peak - rss_before
    elapsed = t1 - t0
    counts = status["counts"]
    problems, first_problems = log_problems(server.log, log_from)
    result = {
        "devices": devices.total,
        "ios": len(devices.ios),
        "android": len(devices.android),
        "users": devices.users,
        "seed_s": round(devices.seconds, 2),
        "message": message["id"],
        "status": status["status"],
        "settled": settled,
        "total": status.get("total"),
        "counts": counts,
        "seconds": {
            "to_settled": round(elapsed, 3),  # t0 (before the POST) to the poll that saw it
            "post_202": round(accepted - t0, 3),
            "to_first_received": _since(t0, watcher.first),
            "to_last_received": _since(t0, watcher.last_any()),
            "to_last_apns": _since(t0, watcher.last["apns"]),
            "to_last_fcm": _since(t0, watcher.last["fcm"]),
            "to_all_received": _since(t0, watcher.all_at),
            "statuses": [{"status": s, "at": round(at - t0, 3)} for at, s in polls.seen],
            "server": server_seconds(status),
        },
        "status_polls": polls.summary(),
        "deliveries_per_s": round(counts["sent"] / elapsed, 1) if elapsed > 0 else None,
        "received": received,
        "received_wrong_title": wrong_title,
        "failures": (
            failures(admin, message["id"]) if counts["failed"] or counts["retrying"] else []
        ),
        "memory_kb": {
            "before": before,
            "after": after,
            "peak_sampled": peak_sampled,
            "hwm_reset": hwm_reset,
            "peak": peak,
            "growth": growth,
            "growth_per_1000_devices": round(growth / (devices.total / 1000), 1),
            "samples": len(during),
            # (seconds since t0, VmRSS KB) about every 0.25 s: a plateau is bounded memory, a
            # slope all through the send is memory per device
            "timeline": timeline(watcher.rss, t0, t1),
            **late_growth(watcher.rss, t0, t1, devices.total),
        },
        "cpu": cpu_used(cpu_before, cpu_after),
        "server_log_problem_count": problems,
        "server_log_problems": first_problems,
    }
    print(
        f"  {devices.total:,} devices: {status['status']} in {elapsed:.2f}s (sent"
        f" {counts['sent']:,}, failed {counts['failed']:,}); received APNs"
        f" {received['apns']['received']:,}, FCM {received['fcm']['received']:,}; RSS"
        f" {rss_before / 1024:.1f} MB -> peak {peak / 1024:.1f} MB",
        flush=True,
    )
    return result


def _apns_title(payload: dict[str, Any]) -> Any:
    alert = payload.get("aps", {}).get("alert")
    return alert.get("title") if isinstance(alert, dict) else alert


def timeline(samples: Sequence[tuple[float, int]], t0: float, t1: float) -> list[list[float]]:
    """The RSS samples from t0 to t1, one in five (about every 0.25 s), and the last."""
    inside = [(at, kb) for at, kb in samples if t0 <= at <= t1 + RSS_EVERY_S]
    kept = inside[::5] + inside[-1:] if len(inside) % 5 != 1 else inside[::5]
    return [[round(at - t0, 2), kb] for at, kb in kept]


def late_growth(
    samples: Sequence[tuple[float, int]], t0: float, t1: float, devices: int
) -> dict[str, float | None]:
    """RSS growth after the first LATE_FROM of the send (once every job slot is busy), per
    1,000 devices sent meanwhile (assuming an even rate): what the server keeps per device
    sent, or its allocator's drift. About 0 when memory only follows the work in flight."""
    cut = t0 + LATE_FROM * (t1 - t0)
    after = [kb for at, kb in samples if cut <= at <= t1 + RSS_EVERY_S]
    if len(after) < 2 or t1 <= t0:
        return {"late_growth": None, "late_growth_per_1000_devices": None}
    grown = max(after) - after[0]
    sent = devices * (1 - LATE_FROM)
    return {"late_growth": grown, "late_growth_per_1000_devices": round(grown / sent * 1000, 1)}


def _since(t0: float, at: float | None) -> float | None:
    return None if at is None else round(at - t0, 3)


def run_once(args: argparse.Namespace, count: int, work: Path) -> dict[str, Any]:
    """Fresh fakes, a fresh server and database, `count` devices, one measured send."""
    print(f"\n== {count:,} devices ==", flush=True)
    apns_key, apns_public = make_apns_key()
    with contextlib.ExitStack() as stack:
        apns = stack.enter_context(
            FakeApns(team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=apns_public, topics={BUNDLE_ID})
        )
        fcm = stack.enter_context(FakeFcm(project_id=PROJECT_ID))
        print(f"[fakes] APNs on {apns.host}:{apns.port}, FCM on {fcm.url}", flush=True)
        server = stack.enter_context(push_server(args, work, apns, fcm, apns_key))
        devices = seed_devices(
            server.database_url, count, args.devices_per_user, min(args.warmup_devices, count)
        )
        warmup = warm_up(server, devices, args)
        result = measure(server, apns, fcm, devices, args)
        result["warmup"] = warmup
        result["notes"] = server.notes
        result["version"] = baas_version(args.baas)
    return result


# -- verdicts ------------------------------------------------------------------------------------


def delivered_ok(r: dict[str, Any]) -> bool:
    rec = r["received"]
    return (
        r["status"] == "sent"
        and r["counts"]["sent"] == r["devices"]
        and all(
            t["missing"] == 0 and t["duplicates"] == 0 and t["unexpected"] == 0
            for t in rec.values()
        )
        and rec["apns"]["received"] + rec["fcm"]["received"] == r["devices"]
    )


def in_flight(args: argparse.Namespace) -> tuple[int, int]:
    """(delivery jobs at once, sends in flight per job) of the server under test."""
    env = args.baas_env
    jobs = int(env.get("BAAS_JOBS_CONCURRENCY", DEFAULT_JOBS_CONCURRENCY))
    sends = int(env.get("BAAS_PUSH_CONCURRENCY", DEFAULT_PUSH_CONCURRENCY))
    return max(jobs, 1), max(min(sends, BATCH), 1)


def memory_budget_kb(args: argparse.Namespace) -> int:
    jobs, sends = in_flight(args)
    return BASE_KB + jobs * sends * KB_PER_SEND_IN_FLIGHT


def targets(r: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    seconds = r["seconds"]["to_settled"]
    growth = r["memory_kb"]["growth"]
    budget = memory_budget_kb(args)
    jobs, sends = in_flight(args)
    delivered = r["received"]["apns"]["received"] + r["received"]["fcm"]["received"]
    return {
        "all_delivered": {
            "target": f"{r['devices']:,} delivered once each",
            "value": delivered,
            "pass": delivered_ok(r),
        },
        "time": {
            "target": f"all delivered in < {args.target_s:g} s",
            "value": seconds,
            "pass": delivered_ok(r) and seconds < args.target_s,
        },
        "memory": {
            "target": f"peak growth < {budget / 1024:g} MB ({BASE_KB // 1024} MB + {jobs} jobs x"
            f" {sends} sends x {KB_PER_SEND_IN_FLIGHT} KB)",
            "value": round(growth / 1024, 2),
            "pass": growth < budget,
        },
    }


def scaling(
    small: dict[str, Any], large: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Does the peak growth follow the device count? The growth between the two runs per 1,000
    more devices; loading every device at once would cost about 500 KB per 1,000."""
    a, b = small["memory_kb"]["growth"], large["memory_kb"]["growth"]
    more = (large["devices"] - small["devices"]) / 1000
    marginal = (b - a) / more
    jobs, _ = in_flight(args)
    saturated = small["devices"] > (jobs - 1) * BATCH  # both runs had every job slot busy
    return {
        "devices": [small["devices"], large["devices"]],
        "growth_kb": [a, b],
        "device_ratio": round(large["devices"] / small["devices"], 2),
        "growth_ratio": round(b / a, 2) if a > 0 else None,
        "marginal_kb_per_1000_devices": round(marginal, 1),
        "time_s": [small["seconds"]["to_settled"], large["seconds"]["to_settled"]],
        "same_concurrency": saturated,
        "pass": marginal < MAX_MARGINAL_KB_PER_1000,
        "target": f"growth per 1,000 more devices < {MAX_MARGINAL_KB_PER_1000:g} KB",
    }


# -- report --------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def render(
    results: Sequence[dict[str, Any]], args: argparse.Namespace, compare: dict[str, Any] | None
) -> str:
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("devices (iOS/Android)", lambda r: f"{r['devices']:,} ({r['ios']:,}/{r['android']:,})"),
        ("status", lambda r: r["status"]),
        ("sent / failed", lambda r: f"{r['counts']['sent']:,} / {r['counts']['failed']:,}"),
        ("time to settled s", lambda r: fmt_s(r["seconds"]["to_settled"])),
        ("last received at s", lambda r: fmt_s(r["seconds"]["to_last_received"])),
        ("  last APNs at s", lambda r: fmt_s(r["seconds"]["to_last_apns"])),
        ("  last FCM at s", lambda r: fmt_s(r["seconds"]["to_last_fcm"])),
        ("first received at s", lambda r: fmt_s(r["seconds"]["to_first_received"])),
        ("POST answered s", lambda r: f"{r['seconds']['post_202']:.3f}"),
        ("server: fan-out s", lambda r: fmt_s(r["seconds"]["server"]["created_to_fanned_out"])),
        ("server: to finished s", lambda r: fmt_s(r["seconds"]["server"]["created_to_finished"])),
        ("deliveries/s", lambda r: f"{r['deliveries_per_s'] or 0:,.0f}"),
        ("status GET p50/max ms", lambda r: _polls(r["status_polls"])),
        ("APNs received", lambda r: _received(r["received"]["apns"])),
        ("FCM received", lambda r: _received(r["received"]["fcm"])),
        ("duplicates", lambda r: f"{sum(t['duplicates'] for t in r['received'].values()):,}"),
        ("RSS before MB", lambda r: fmt_mb(r["memory_kb"]["before"].get("VmRSS"))),
        ("RSS peak MB", lambda r: fmt_mb(r["memory_kb"]["peak"])),
        ("RSS growth MB", lambda r: fmt_mb(r["memory_kb"]["growth"])),
        ("growth KB/1,000 dev", lambda r: f"{r['memory_kb']['growth_per_1000_devices']:,.0f}"),
        ("late growth MB", lambda r: fmt_mb(r["memory_kb"]["late_growth"])),
        ("late KB/1,000 dev", lambda r: _num(r["memory_kb"]["late_growth_per_1000_devices"])),
        ("server CPU cores", lambda r: f"{r['cpu']['server']['cores']:.2f}"),
        ("postgres CPU cores", lambda r: f"{r['cpu']['postgres']['cores']:.2f}"),
        ("fakes+bench CPU cores", lambda r: f"{r['cpu']['bench (fakes)']['cores']:.2f}"),
        ("other procs cores", lambda r: f"{r['cpu']['other']['cores']:.2f}"),
        ("server CPU s", lambda r: f"{r['cpu']['server']['seconds']:.1f}"),
        ("postgres CPU s", lambda r: f"{r['cpu']['postgres']['seconds']:.1f}"),
    ]
    width = max(len(label) for label, _ in rows)
    cells = [[fn(r) for _, fn in rows] for r in results]
    col = max([14, *(len(c) for column in cells for c in column)])
    names = [f"{r['devices']:,} devices" for r in results]
    header = f"{'':<{width}}  " + "  ".join(f"{n:>{col}}" for n in names)
    lines = [header, "-" * len(header)]
    for i, (label, _) in enumerate(rows):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{c[i]:>{col}}" for c in cells))
    lines.append("")
    checks = [(r, c) for r in results for c in targets(r, args).values()]
    wide = max(len(c["target"]) for _, c in checks)
    for r, check in checks:
        verdict = "PASS" if check["pass"] else "MISS"
        value = check["value"]
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        lines.append(f"{verdict}  {r['devices']:>6,} devices  {check['target']:<{wide}}  ({shown})")
    if compare is not None:
        verdict = "PASS" if compare["pass"] else "MISS"
        a, b = compare["growth_kb"]
        lines.append(
            f"{verdict}  memory bounded: {compare['target']}"
            f" ({compare['marginal_kb_per_1000_devices']:,.0f} KB; growth {fmt_mb(a)} MB ->"
            f" {fmt_mb(b)} MB: {compare['device_ratio']:g}x the devices,"
            f" {compare['growth_ratio']}x the growth)"
        )
    warnings = []
    for r in results:
        label = f"{r['devices']:,} devices"
        if not r["settled"]:
            warnings.append(f"{label}: still {r['status']} after --timeout; counts {r['counts']}")
        if r["failures"]:
            warnings.append(f"{label}: failed or retrying deliveries, e.g. {r['failures']}")
        if r["received_wrong_title"]:
            warnings.append(
                f"{label}: {r['received_wrong_title']:,} notifications of another message"
                " arrived during the measurement"
            )
        if not r["memory_kb"]["hwm_reset"]:
            warnings.append(f"{label}: VmHWM could not be reset; the peak is the sampled one")
        if r["server_log_problem_count"]:
            first = r["server_log_problems"][0].splitlines()
            warnings.append(
                f"{label}: the server logged {r['server_log_problem_count']} warning(s)/error(s)"
                f" during the send; the first: {first[0] if first else '?'}"
            )
        other = r["cpu"]["other"]["cores"]
        if other >= 0.1:
            names = ", ".join(
                f"{p['command'][:50]} ({p['cores']:.2f})" for p in r["cpu"]["busiest_others"]
            )
            warnings.append(
                f"{label}: other processes used {other:.2f} cores during the send"
                + (f"; the busiest: {names}" if names else "")
            )
    if compare is not None and not compare["same_concurrency"]:
        jobs, _ = in_flight(args)
        warnings.append(
            f"--compare: the {compare['devices'][0]:,}-device run has fewer delivery jobs"
            f" ({BATCH:,} devices each) than the {jobs} a process runs at once, so fewer sends"
            " in flight: part of the difference in growth is that. Compare sizes above"
            f" {(jobs - 1) * BATCH:,} (e.g. --compare-devices 10000 --devices 30000) to see the"
            " growth per device alone"
        )
    if warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in warnings)
    return "\n".join(lines)


def _polls(p: dict[str, Any]) -> str:
    return f"{p['p50_ms']:,.0f} / {p['max_ms']:,.0f}" if p.get("count") else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _received(t: dict[str, int]) -> str:
    text = f"{t['received']:,}/{t['expected']:,}"
    if t["missing"] or t["unexpected"]:
        text += f" (-{t['missing']:,} +{t['unexpected']:,})"
    return text


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Fan one push notification out to many devices through the fake providers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-n", "--devices", type=int, default=10_000, help="devices seeded and sent to")
    p.add_argument(
        "--compare",
        action="store_true",
        help="run --compare-devices first, then --devices, each on a fresh server, and say"
        " whether the peak memory growth scales with the device count",
    )
    p.add_argument(
        "--compare-devices", type=int, default=2_000, help="the smaller run of --compare"
    )
    p.add_argument("--devices-per-user", type=int, default=2, help="devices each user has")
    p.add_argument(
        "--warmup-devices",
        type=int,
        default=200,
        help="devices of a warm-up message sent before the measured one (0: none, the send"
        " then also pays for creating the provider clients and their connections)",
    )
    p.add_argument(
        "--settle", type=float, default=1.0, help="seconds of quiet before the measured send"
    )
    p.add_argument("--poll-interval", type=float, default=0.05, help="seconds between status polls")
    p.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for the message to settle"
    )
    p.add_argument("--target-s", type=float, default=TARGET_S, help="the time target (seconds)")
    p.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="profile the server with py-spy during the measured send (.svg flame graph,"
        " .json speedscope, .txt raw); slows the server down somewhat",
    )
    p.add_argument(
        "--py-spy-gil",
        action="store_true",
        help="with --py-spy: sample only the thread holding the GIL (py-spy --gil)",
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
        help="extra setting for the baas server (repeatable), e.g. BAAS_PUSH_CONCURRENCY=128;"
        " overrides " + ", ".join(f"{k}={v}" for k, v in SERVER_ENV.items()),
    )
    p.add_argument("--baas", type=Path, default=default_tool("baas"), help="baas executable")
    p.add_argument("--start-timeout", type=float, default=120, help="seconds to wait for a server")
    p.add_argument(
        "-o", "--output", type=Path, help="JSON results file (default results/push-<next>.json)"
    )
    p.add_argument(
        "--keep-temp", action="store_true", help="keep the scratch directory (data, server log)"
    )
    args = p.parse_args(argv)
    args.baas_env = dict(split_env(p, item) for item in args.baas_env)
    for name in ("BAAS_APNS_HOST", "BAAS_PUSH_CA_FILE", "BAAS_FCM_URL"):
        if name in args.baas_env:
            p.error(f"--baas-env: {name} is set by the benchmark itself (the fakes)")
    if args.devices < 1 or args.devices_per_user < 1 or args.compare_devices < 1:
        p.error("--devices, --devices-per-user and --compare-devices must be positive")
    if args.compare and args.compare_devices >= args.devices:
        p.error("--compare-devices must be below --devices")
    if args.warmup_devices < 0 or args.settle < 0 or args.poll_interval <= 0:
        p.error("--warmup-devices and --settle must not be negative, --poll-interval positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.baas and args.baas.is_file()):
        print("error: the baas executable was not found: `pip install -e .` or pass --baas PATH.")
        return 2
    catch_signals()
    started = dt.datetime.now(dt.UTC)
    output: Path = args.output or numbered_output("push")
    work = Path(tempfile.mkdtemp(prefix="baas-bench-push-"))
    cpus = os.cpu_count() or 1
    sizes = [args.compare_devices, args.devices] if args.compare else [args.devices]
    print(
        f"push fan-out to {' then '.join(f'{n:,}' for n in sizes)} devices (topic {TOPIC!r}),"
        f" fake APNs and FCM in this process; scratch dir {work}",
        flush=True,
    )
    source = source_state()
    print(f"baas source: {source}", flush=True)
    busy = busy_before()
    results: list[dict[str, Any]] = []

    def each_size() -> None:
        for i, count in enumerate(sizes):
            results.append(run_once(args, count, work / f"run-{i + 1}"))

    ok = run_guarded(each_size, work, args.keep_temp)
    if not results:
        return 1
    compare = scaling(results[0], results[1], args) if len(results) == 2 else None
    print("\n" + render(results, args, compare))
    notes = [
        "one `baas serve --workers 1`; the fake APNs and FCM run in threads of the benchmark"
        f" process; all share this machine's {cpus} core(s)",
        "time to settled: from just before POST /api/push/send to the status poll (every"
        f" {args.poll_interval * 1000:g} ms) that saw nothing pending; last received: when the"
        f" fakes' count last changed (read every {WATCH_S * 1000:g} ms)",
        "memory: the server process's VmRSS just before the send; peak = the highest of VmRSS"
        f" sampled every {RSS_EVERY_S * 1000:g} ms and VmHWM (reset just before the send);"
        f" late growth: after the first {LATE_FROM:.0%} of the send",
        f"a warm-up message to {args.warmup_devices:,} of the devices precedes the measured one"
        if args.warmup_devices
        else "no warm-up: the send also creates the provider clients and connections",
        "devices seeded by COPY, then ANALYZE; CPU cores are over the send",
    ]
    if busy is not None:
        notes.append(f"CPU busy with other work just before the run: {busy:.0f}%")
    for note in notes:
        print(f"note: {note}")
    report = {
        "benchmark": "push",
        "started": started.isoformat(timespec="seconds"),
        "complete": ok,
        "machine": machine(busy),
        "versions": {"baas": results[0]["version"], "source": source},
        "config": {
            "devices": sizes,
            "devices_per_user": args.devices_per_user,
            "warmup_devices": args.warmup_devices,
            "settle_s": args.settle,
            "poll_interval_s": args.poll_interval,
            "timeout_s": args.timeout,
            "target_s": args.target_s,
            "memory_budget_kb": memory_budget_kb(args),
            "max_marginal_kb_per_1000_devices": MAX_MARGINAL_KB_PER_1000,
            "baas_workers": 1,
            "baas_database": "external" if args.database_url else "embedded",
            "baas_env": {**SERVER_ENV, **args.baas_env},
        },
        "results": results,
        "targets": {str(r["devices"]): targets(r, args) for r in results},
        "scaling": compare,
        "notes": notes,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nresults written to {output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
