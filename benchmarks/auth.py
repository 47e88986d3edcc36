"""Auth load benchmark: reading as a signed-in user, refreshing and signing in, on baas and
PocketBase side by side, driven by wrk with the machinery of benchmarks/records.py.

Each system in turn is started and seeded as records.py does it (the `posts` collection, 10,000
records), given a verified user with 1,000 unpublished posts of their own (and, with --users,
more users to sign in as), and loaded with:

  get-one       GET one record by id as the service key (baas) or a superuser (PocketBase)
  get-one-user  GET one record by id as the user (bearer access token), under the view rule
                "published, or the caller's own"; ids drawn from the records it admits
  refresh       exchange a refresh credential for new tokens
  sign-in       email and password sign-in: argon2id (baas) against bcrypt (PocketBase)

Prints req/s, p50 and p99 per workload and system, the baas/PocketBase ratios and what a user's
token costs against the admin credential on each system; writes the results as JSON. Run
`python benchmarks/auth.py --help` for the options; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python benchmarks/auth.py): make its sibling importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import (
    PB_READ_RULE,
    READ_RULE,
    Client,
    Comparison,
    Result,
    Target,
    baas_target,
    build_parser,
    check_args,
    check_sample,
    lua_get_one,
    lua_static,
    lua_string,
    measure,
    pocketbase_target,
    ratios,
    run,
    seed,
    seed_baas_chunk,
    seed_record,
    write_script,
)

WORKLOADS = ("get-one", "get-one-user", "refresh", "sign-in")
OWN_RECORDS = 1_000  # unpublished posts of the user: the rule's `author = auth.id` branch
MAX_BAAS_SESSIONS = 100  # per account; a new one beyond it ends the least recently used
BAAS_RATE_LIMITS_OFF = {"rate.sign_in_ip": "off", "rate.sign_in_account": "off"}


@dataclass(frozen=True)
class AuthApi:
    """How one system signs a user in, refreshes, and takes an access token."""

    sign_in_path: str
    identity_key: str  # the sign-in body's email field
    token_key: str  # the access token in a sign-in answer
    bearer: str  # what precedes the token in the Authorization header
    refresh_path: str


API = {
    "baas": AuthApi("/api/auth/sign-in", "email", "access_token", "Bearer ", "/api/auth/refresh"),
    "pb": AuthApi(
        "/api/collections/users/auth-with-password",
        "identity",
        "token",
        "",  # PocketBase's SDKs send the bare token (it accepts "Bearer " too)
        "/api/collections/users/auth-refresh",
    ),
}


@dataclass(frozen=True)
class Login:
    email: str
    password: str


@dataclass(frozen=True)
class Users:
    """The benchmark's users on one system. The first one reads (the records the view rule
    shows it: published seeded ones, then its own unpublished ones) and refreshes; sign-in goes
    round all of them."""

    logins: list[Login]
    admitted: list[str]
    hidden: str | None  # an unpublished record of nobody's: the reader must get 404


@dataclass(frozen=True)
class Workload:
    """One workload on one system: a checked sample request, and the wrk script of each run."""

    caller: Client
    sample: tuple[str, str, Any, int]  # method, path, body, expected status
    script: Callable[[], Path]


# -- the user and their records ------------------------------------------------------------------


def prepare_baas(target: Target, count: int) -> Users:
    """Rate limits off, `count` verified users, the first one's unpublished posts; it signed in."""
    admin = Client(target.base_url, target.admin_headers)
    admin.expect("PATCH", "/api/admin/settings", BAAS_RATE_LIMITS_OFF)

    def create(login: Login) -> str:
        body = {"email": login.email, "password": login.password, "verified": True}
        return str(admin.expect("POST", "/api/admin/users", body, status=201)["id"])

    logins = new_logins(count)
    reader = create_users(create, logins)[0]
    own = seed(
        OWN_RECORDS,
        lambda chunk: seed_baas_chunk(admin, chunk, lambda i: own_record(i, reader)),
        batch=100,
    )
    target.notes.append("baas: sign-in rate limits off (rate.sign_in_ip, rate.sign_in_account)")
    target.notes.append(f"baas posts: view rule {READ_RULE!r}")
    return seeded_users(target, logins, own)


def prepare_pb(target: Target, count: int) -> Users:
    """`count` verified users (created by the superuser), the first one's unpublished posts; it
    signed in."""
    admin = Client(target.base_url, target.admin_headers)

    def create(login: Login) -> str:
        body = {
            "email": login.email,
            "password": login.password,
            "passwordConfirm": login.password,
            "verified": True,
        }
        return str(admin.expect("POST", "/api/collections/users/records", body)["id"])

    logins = new_logins(count)
    reader = create_users(create, logins)[0]

    def create_own(chunk: range) -> list[str]:
        path = target.create_path
        return [str(admin.expect("POST", path, own_record(i, reader))["id"]) for i in chunk]

    own = seed(OWN_RECORDS, create_own, batch=50)
    limiter = admin.expect("GET", "/api/settings")["rateLimits"]["enabled"]
    target.notes.append(f"pb: rate limiter {'on' if limiter else 'off'} (off is its default)")
    return seeded_users(target, logins, own)


def new_logins(count: int) -> list[Login]:
    return [Login(f"bench-user-{k}@example.com", secrets.token_urlsafe(18)) for k in range(count)]


def create_users(create: Callable[[Login], str], logins: list[Login]) -> list[str]:
    """Their ids, in order; four at a time (each costs a password hash)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(create, logins))


def own_record(i: int, author: str) -> dict[str, Any]:
    return {**seed_record(i), "title": f"Draft {i}", "published": False, "author": author}


def seeded_users(target: Target, logins: list[Login], own: list[str]) -> Users:
    published = [rid for i, rid in enumerate(target.ids) if seed_record(i)["published"]]
    hidden = next(
        (rid for i, rid in enumerate(target.ids) if not seed_record(i)["published"]), None
    )
    return Users(logins=logins, admitted=published + own, hidden=hidden)


def reader_headers(target: Target, users: Users) -> dict[str, str]:
    """The first user signed in anew (a baas access token lives 15 minutes): its bearer."""
    api = API[target.system]
    token = sign_in(Client(target.base_url), api, users.logins[0])[api.token_key]
    return {"Authorization": api.bearer + token}


def sign_in_body(api: AuthApi, login: Login) -> dict[str, str]:
    return {api.identity_key: login.email, "password": login.password}


def sign_in(client: Client, api: AuthApi, login: Login) -> Any:
    """The decoded answer of a password sign-in that must succeed."""
    return client.expect("POST", api.sign_in_path, sign_in_body(api, login))


def refresh_tokens(client: Client, login: Login, count: int) -> list[str]:
    """`count` new baas sessions of `login` (their refresh tokens), signed in four at a time."""
    api = API["baas"]

    def one(_: int) -> str:
        return str(sign_in(client, api, login)["refresh_token"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


# -- workloads -----------------------------------------------------------------------------------

# baas refresh tokens work once: the token in a response is the next request's. Lua runs per
# wrk thread, not per connection, so a thread holds its connections' tokens in a pool: a request
# takes one, its response puts the successor back. Each session thus has one refresh in flight at
# a time and never sees a token twice. wrk calls request() once more on its first thread to check
# the script, and never sends that request: each thread gets one session more than connections.
LUA_REFRESH_CHAIN = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = {path}
local tokens = {tokens}
local per_thread = {per_thread}
local threads = 0
local free = {{}}

function setup(thread)
  thread:set("first", threads * per_thread)
  threads = threads + 1
end

function init(args)
  for i = first + 1, first + per_thread do free[#free + 1] = tokens[i] end
end

function request()
  -- the pool is empty only after a refresh failed; this token fails too, so it shows
  local token = table.remove(free) or "no-refresh-token-left-after-a-failure"
  return wrk.format(nil, path, nil, '{{"refresh_token":"' .. token .. '"}}')
end

function response(status, headers, body)
  local token = body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then free[#free + 1] = token end
end
"""


def refresh_sessions(args: argparse.Namespace) -> int:
    """baas sessions a refresh run uses: one per connection (wrk gives each thread
    connections // threads), plus the one per thread that wrk's script check takes."""
    return (args.connections // args.threads + 1) * args.threads


def lua_refresh_chain(path: str, tokens: Sequence[str], per_thread: int) -> str:
    return LUA_REFRESH_CHAIN.format(
        path=lua_string(path), tokens=lua_list(tokens), per_thread=str(per_thread)
    )


# Sign-in goes round the users' logins, one request after another.
LUA_SIGN_IN = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = {path}
local bodies = {bodies}
local n = 0

function request()
  n = n + 1
  return wrk.format(nil, path, nil, bodies[n % #bodies + 1])
end
"""


def lua_list(values: Sequence[str]) -> str:
    return "{" + ", ".join(lua_string(v) for v in values) + "}"


def get_one(args: argparse.Namespace, target: Target, users: Users, lua: Path) -> Workload:
    script = write_script(
        lua / f"{target.system}-get-one.lua",
        target.admin_headers,
        lua_get_one(target.record_prefix, target.ids, lua / f"{target.system}-ids.txt"),
    )
    sample = ("GET", target.record_prefix + target.ids[0], None, 200)
    return Workload(Client(target.base_url, target.admin_headers), sample, lambda: script)


def get_one_user(args: argparse.Namespace, target: Target, users: Users, lua: Path) -> Workload:
    headers = reader_headers(target, users)
    reader = Client(target.base_url, headers)
    if users.hidden is not None:  # the rule must be in force, not a public view
        hidden = ("GET", target.record_prefix + users.hidden, None, 404)
        check_sample(reader, target, "get-one-user", hidden)
    ids_file = lua / f"{target.system}-admitted.txt"
    script = write_script(
        lua / f"{target.system}-get-one-user.lua",
        headers,
        lua_get_one(target.record_prefix, users.admitted, ids_file),
    )
    sample = ("GET", target.record_prefix + users.admitted[-1], None, 200)  # one of its own
    return Workload(reader, sample, lambda: script)


def refresh(args: argparse.Namespace, target: Target, users: Users, lua: Path) -> Workload:
    api = API[target.system]
    path = lua / f"{target.system}-refresh.lua"
    if target.system == "pb":  # its tokens are reusable: the same request over and over
        headers = reader_headers(target, users)
        script = write_script(path, headers, lua_static("POST", api.refresh_path))
        reader = Client(target.base_url, headers)
        return Workload(reader, ("POST", api.refresh_path, None, 200), lambda: script)
    public = Client(target.base_url)
    per_thread = refresh_sessions(args) // args.threads

    def chained() -> Path:  # fresh sessions for every wrk run: a run ends with tokens in flight
        tokens = refresh_tokens(public, users.logins[0], per_thread * args.threads)
        return write_script(path, {}, lua_refresh_chain(api.refresh_path, tokens, per_thread))

    first = refresh_tokens(public, users.logins[0], 1)[0]
    return Workload(public, ("POST", api.refresh_path, {"refresh_token": first}, 200), chained)


def sign_in_workload(args: argparse.Namespace, target: Target, users: Users, lua: Path) -> Workload:
    api = API[target.system]
    bodies = [json.dumps(sign_in_body(api, x), separators=(",", ":")) for x in users.logins]
    script = write_script(
        lua / f"{target.system}-sign-in.lua",
        {},
        LUA_SIGN_IN.format(path=lua_string(api.sign_in_path), bodies=lua_list(bodies)),
    )
    sample = ("POST", api.sign_in_path, sign_in_body(api, users.logins[-1]), 200)
    return Workload(Client(target.base_url), sample, lambda: script)


PLANS: dict[str, Callable[[argparse.Namespace, Target, Users, Path], Workload]] = {
    "get-one": get_one,
    "get-one-user": get_one_user,
    "refresh": refresh,
    "sign-in": sign_in_workload,
}


# -- the run -------------------------------------------------------------------------------------


def bench_system(
    args: argparse.Namespace, system: str, work: Path, lua_dir: Path
) -> tuple[Target, list[Result]]:
    """Start one system, seed it and its users, load it with every chosen workload, stop it."""
    if system == "baas":
        with baas_target(args, work) as target:
            return target, bench_auth(args, target, prepare_baas(target, args.users), lua_dir)
    with pocketbase_target(
        args, work, view_rule=PB_READ_RULE, request_log=system == "pb"
    ) as target:
        return target, bench_auth(args, target, prepare_pb(target, args.users), lua_dir)


def bench_auth(
    args: argparse.Namespace, target: Target, users: Users, lua_dir: Path
) -> list[Result]:
    target.notes.append(
        f"{target.system}: get-one-user draws from {len(users.admitted):,} admitted records"
        f" ({OWN_RECORDS:,} of them the user's own, unpublished); sign-in goes round"
        f" {len(users.logins)} user(s)"
    )
    results = []
    for name in args.workloads:
        workload = PLANS[name](args, target, users, lua_dir)
        sample = check_sample(workload.caller, target, name, workload.sample)
        results.append(measure(args, target, name, workload.script, len(sample.body)))
    return results


def user_overheads(results: Sequence[Result]) -> dict[str, float]:
    """get-one-user req/s over get-one req/s, per system."""
    by_key = {(r.workload, r.system): r.requests_per_sec for r in results}
    out = {}
    for system in ("baas", "pb", "pb-nolog"):
        user, admin = by_key.get(("get-one-user", system)), by_key.get(("get-one", system))
        if user and admin:
            out[system] = user / admin
    return out


def compare(results: Sequence[Result]) -> list[Comparison]:
    return [
        Comparison("ratios", "ratios (baas/pb req/s)", ratios(results, WORKLOADS)),
        Comparison(
            "ratios_pb_log_off",
            "ratios (baas/pb-nolog req/s)",
            ratios(results, WORKLOADS, other="pb-nolog"),
        ),
        Comparison(
            "user_overheads",
            "user token vs service key/superuser (get-one-user/get-one req/s)",
            user_overheads(results),
        ),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser(
        "Load-test auth on baas and PocketBase side by side with wrk.", WORKLOADS, "auth", "on"
    )
    p.add_argument(
        "--users",
        type=int,
        default=1,
        help="verified users per system; sign-in goes round them (the first one also reads and"
        " refreshes)",
    )
    args = check_args(p, p.parse_args(argv), WORKLOADS)
    if args.users < 1:
        p.error("--users must be positive")
    sessions = refresh_sessions(args)
    if "refresh" in args.workloads and "baas" in args.systems and sessions > MAX_BAAS_SESSIONS:
        p.error(
            f"refresh on baas: one session per connection and one per thread ({sessions}), and"
            f" baas keeps {MAX_BAAS_SESSIONS} per account; use fewer --connections"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args, "auth", bench_system, WORKLOADS, compare, {"users": args.users})


if __name__ == "__main__":
    sys.exit(main())
