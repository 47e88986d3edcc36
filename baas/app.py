"""create_app(settings) -> Starlette: routes, middleware, the error handler and the lifespan.

The lifespan opens the pool, refuses a non-durable PostgreSQL, applies system migrations, loads
the schema and service keys, and LISTENs so this process follows changes made by any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from baas.admin import api as admin_api
from baas.admin import auth_api as admin_auth_api
from baas.auth import api as auth_api
from baas.auth import keys, passwords, sessions, superusers, tokens
from baas.auth import pages as auth_pages
from baas.auth.bearer import authenticate
from baas.auth.crypto import SecretBox, SecretKeyError, check_install, load_secret_key
from baas.auth.housekeeping import Housekeeper
from baas.auth.mail import Mailer, Templates
from baas.auth.oidc import OidcVerifier
from baas.background import Background
from baas.config import Settings
from baas.context import AppContext
from baas.db import bells
from baas.db.durability import check_durability
from baas.db.embedded import embedded_url
from baas.db.listener import Listener
from baas.db.migrate import Migration, migrate
from baas.db.pool import Database, PoolOptions
from baas.db.supervisor import GAVE_UP, read_state
from baas.errors import ApiError, MethodNotAllowed, NotFound
from baas.http import health
from baas.http.access_log import AccessLog
from baas.http.health import Liveness
from baas.http.middleware import Authenticate, RequestMiddleware
from baas.http.request import context, request_id
from baas.http.responses import error_response, json_response
from baas.http.routing import route
from baas.jobs import queue as jobs_queue
from baas.loops import Loop
from baas.net import OutboundClient
from baas.openapi.document import openapi_document
from baas.push import api as push_api
from baas.realtime import api as realtime_api
from baas.realtime import changelog, channels
from baas.realtime.channels import Channels
from baas.realtime.hub import Hub
from baas.realtime.service import Realtime
from baas.records import api as records_api
from baas.runtime_settings import CHANNEL as SETTINGS_CHANNEL
from baas.runtime_settings import RuntimeSettings
from baas.schema import service as schema_service
from baas.schema.cache import SchemaCache
from baas.storage import api as storage_api
from baas.storage import cleanup
from baas.storage.backend import open_backend
from baas.storage.cleanup import FileCleaner
from baas.storage.download import FILE_TOKEN

log = logging.getLogger("baas")
CONNECT_ATTEMPTS = 20
T = TypeVar("T")


def package_version() -> str:
    try:
        return version("baas")
    except PackageNotFoundError:
        return "0.0.0"


def pool_options(settings: Settings) -> PoolOptions:
    return PoolOptions(
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        acquire_timeout_s=settings.db_acquire_timeout_s,
        command_timeout_s=settings.db_command_timeout_s,
    )


async def _while_unavailable(action: Callable[[], Awaitable[T]], retrying: str) -> T:
    """`action`, tried again with backoff while it fails with `database_unavailable` (up to
    CONNECT_ATTEMPTS times); `retrying` is logged with the reason each time."""
    delay = 0.25
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await action()
        except ApiError as exc:
            if attempt == CONNECT_ATTEMPTS or exc.code != "database_unavailable":
                raise
            log.warning(retrying, exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


async def _open_database(settings: Settings) -> Database:
    """Open the pool, retrying while PostgreSQL starts (containers start in any order)."""
    try:
        return await _while_unavailable(
            lambda: Database.open(settings.database_url, pool_options(settings)),
            "PostgreSQL is not reachable yet (%s); retrying",
        )
    except ApiError as exc:
        raise RuntimeError(f"cannot connect to PostgreSQL: {exc.message}") from exc


async def prepare(db: Database) -> list[Migration]:
    """Bring a database up to this version: system migrations, then the built-in users."""
    async with db.connection() as conn:
        applied = await migrate(conn)
    await schema_service.ensure_auth_collection(db)
    return applied


async def open_context(settings: Settings, db: Database) -> AppContext:
    """The context over a prepared database: the install's secrets checked, keys, schema and
    runtime settings loaded. Servers and CLI commands alike; nothing is started."""
    box = SecretBox(load_secret_key(settings.secret_key, settings.data_dir))
    await check_install(db, box)
    await tokens.ensure_signing_key(db, box)
    ring = keys.KeyRing(settings.service_key)
    await ring.reload(db)
    runtime = RuntimeSettings()
    await runtime.reload(db, box)
    signer = tokens.Signer(settings.base_url, _token_lifetime(settings, runtime))
    await signer.reload(db, box)
    outbound = OutboundClient.from_settings(settings)
    ctx = AppContext(
        settings=settings,
        db=db,
        schema=SchemaCache(await schema_service.load(db)),
        keys=ring,
        box=box,
        signer=signer,
        runtime=runtime,
        mailer=Mailer(db, box, runtime, Templates(settings.data_dir / "templates" / "mail")),
        outbound=outbound,
        oidc=OidcVerifier(outbound),
        storage=open_backend(settings),
    )
    ctx.file_cleaner = FileCleaner(ctx)
    await ctx.revoked.reload(db)
    return ctx


def _token_lifetime(settings: Settings, runtime: RuntimeSettings) -> Callable[[str], int]:
    """How long the install's signed tokens of each type live, as now configured."""

    def lifetime(token_type: str) -> int:
        if token_type == FILE_TOKEN:
            return settings.file_token_ttl_s
        return int(runtime["auth.access_token_ttl"])

    return lifetime


async def check_secret_key(settings: Settings) -> str | None:
    """Why the server cannot start with this secret key (a placeholder, or not the key this
    database was set up with), or None. Also prepares the database, so workers start faster."""
    try:
        box = SecretBox(load_secret_key(settings.secret_key, settings.data_dir))
    except SecretKeyError as exc:
        return str(exc)
    db = await _open_database(settings)
    try:
        await prepare(db)
        await check_install(db, box)
    except SecretKeyError as exc:
        return str(exc)
    finally:
        await db.close()
    return None


async def _start_through_outages(settings: Settings) -> tuple[AppContext, Listener, Realtime]:
    """`start`, again from the top while the database goes away mid-start (a worker starting
    while the embedded PostgreSQL is being restarted): a failed start would stop the server."""
    return await _while_unavailable(
        lambda: start(settings), "the database went away while starting (%s); starting again"
    )


async def start(settings: Settings) -> tuple[AppContext, Listener, Realtime]:
    """Everything a process needs before it serves its first request."""
    if not settings.database_url:
        raise RuntimeError("no database URL: start the server with `baas serve`")
    db = await _open_database(settings)
    ctx: AppContext | None = None
    listener: Listener | None = None
    live: Realtime | None = None
    try:
        await check_durability(db)
        applied = await prepare(db)
        if applied:
            log.info("applied %d system migration(s)", len(applied))
        ctx = await open_context(settings, db)
        live = Realtime(Hub(ctx), Channels(ctx))
        ctx.background = Background(ctx)
        listener = _listener(ctx, live)
        await listener.start()
        await live.start()
        await ctx.mailer.start()
        ctx.file_cleaner.start()
        await ctx.background.start()
        setup = await superusers.prepare_setup(db, settings.data_dir)
    except BaseException:
        # undo what started (each step bounded, whatever the others did); then the cause
        await shutdown(
            [("database pool", db.close, STOP_STEP_S)]
            if ctx is None
            else stop_steps(ctx, listener, live)
        )
        raise
    cache = ctx.schema
    if setup is not None:
        log.warning(
            "no superuser yet: run `baas superuser create EMAIL`, or POST the setup token from "
            "%s to %s/api/admin/setup",
            setup,
            settings.base_url,
        )
    log.info(
        "schema version %d, %d collection(s); pid %d",
        cache.version,
        len(cache.schema.collections),
        os.getpid(),
    )
    return ctx, listener, live


STOP_STEP_S = 5.0  # one shutdown step, at most; then the next one runs regardless
DRAIN_S = 10.0  # work spawned by requests (after-response tasks), at most
Step = tuple[str, Callable[[], Awaitable[object]], float]


def stop_steps(ctx: AppContext, listener: Listener | None, live: Realtime | None) -> list[Step]:
    """What `stop` does, in order: the producers of work first, the pool last."""
    steps: list[Step] = []
    if live is not None:
        steps.append(("realtime", live.stop, STOP_STEP_S))
    if ctx.background is not None:
        grace = STOP_STEP_S + ctx.background.worker.options.shutdown_grace_s
        steps.append(("job worker", ctx.background.stop, grace))
    steps.append(("background work", lambda: ctx.drain(DRAIN_S), DRAIN_S + 1))
    if listener is not None:
        steps.append(("listener", listener.stop, STOP_STEP_S))
    steps += [
        ("mailer", ctx.mailer.stop, STOP_STEP_S),
        ("file cleaner", ctx.file_cleaner.stop, STOP_STEP_S),
        ("storage", ctx.storage.close, STOP_STEP_S),
        ("oidc", ctx.oidc.close, STOP_STEP_S),
        ("database pool", ctx.db.close, STOP_STEP_S),
    ]
    return steps


async def stop(ctx: AppContext, listener: Listener, live: Realtime) -> None:
    await shutdown(stop_steps(ctx, listener, live))


async def shutdown(steps: Sequence[Step]) -> None:
    """Run every step, each bounded in time, whatever the others did: with the database down,
    the steps that need it fail (one line each) and the rest still run. Ends with one line
    naming each step and how it went."""
    began = time.monotonic()
    outcomes = []
    for name, step, limit_s in steps:
        outcome = "ok"
        try:
            async with asyncio.timeout(limit_s):
                await step()
        except TimeoutError:
            outcome = "timed out"
            log.warning("shutdown: %s did not finish within %gs; going on", name, limit_s)
        except Exception as exc:
            outcome = "failed"
            reason = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            log.warning("shutdown: %s failed (%s); going on", name, reason)
        outcomes.append(f"{name} {outcome}")
    log.info("shutdown in %.1fs: %s", time.monotonic() - began, ", ".join(outcomes))


def _listener(ctx: AppContext, live: Realtime) -> Listener:
    listener = Listener(ctx.settings.database_url, pool_options(ctx.settings))

    async def reload_schema(_payload: str = "") -> None:
        schema = await schema_service.load(ctx.db)
        if schema.version != ctx.schema.version:
            ctx.schema.set(schema)

    async def reload_keys(_payload: str = "") -> None:
        await ctx.keys.reload(ctx.db)

    async def reload_revoked(subject: str = "") -> None:
        await ctx.revoked.reload(ctx.db, subject or None)

    async def reload_signing_keys(_payload: str = "") -> None:
        await ctx.signer.reload(ctx.db, ctx.box)

    async def reload_settings(_payload: str = "") -> None:
        await ctx.runtime.reload(ctx.db, ctx.box)
        ctx.mailer.wake()  # SMTP may just have been configured

    async def wake_cleaner(_payload: str = "") -> None:
        ctx.file_cleaner.wake()

    async def wake_worker(_payload: str = "") -> None:
        ctx.background.wake()

    async def reload_all() -> None:
        live.hub.wake()  # changes committed while the connection was down
        ctx.file_cleaner.wake()
        ctx.background.wake()
        await reload_schema()
        await reload_keys()
        await reload_revoked()
        await reload_signing_keys()
        await reload_settings()

    listener.subscribe(schema_service.CHANNEL, reload_schema)
    listener.subscribe(keys.CHANNEL, reload_keys)
    listener.subscribe(sessions.CHANNEL, reload_revoked)
    listener.subscribe(tokens.CHANNEL, reload_signing_keys)
    listener.subscribe(SETTINGS_CHANNEL, reload_settings)
    listener.subscribe(changelog.CHANNEL, live.hub.on_notify)
    listener.subscribe(channels.PRESENCE, live.channels.on_presence)
    listener.subscribe(channels.BROADCAST, live.channels.on_broadcast)
    listener.subscribe(cleanup.CHANNEL, wake_cleaner)
    listener.subscribe(jobs_queue.CHANNEL, wake_worker)
    listener.on_connect(reload_all)
    # Writes of this process wake its readers once committed; other instances hear of changes
    # by a NOTIFY sent after commit (`baas.db.bells`), and of jobs and cleanups by their polls.
    ctx.db.bells.on(bells.CHANGES, live.hub.wake)
    ctx.db.bells.share(bells.CHANGES)
    ctx.db.bells.on(bells.JOBS, ctx.background.wake)
    ctx.db.bells.on(bells.FILE_CLEANUP, ctx.file_cleaner.wake)
    return listener


def _liveness(
    ctx: AppContext, listener: Listener, live: Realtime, housekeeper: Housekeeper
) -> Liveness:
    """What must keep running for this process to recover from anything by itself."""
    liveness = Liveness()
    liveness.add("listener", lambda: None if listener.alive else "stopped")
    loops = [ctx.mailer.loop, ctx.file_cleaner.loop, housekeeper.loop, live.channels.beats]
    if ctx.background.enabled:
        worker = ctx.background.worker
        loops += [worker.claims, worker.leases, ctx.background.cron.loop]
    for loop in loops:
        liveness.add(loop.name, functools.partial(_loop_problem, loop))
    settings = ctx.settings
    if settings.database_url == embedded_url(settings.data_dir):
        liveness.add("embedded postgres", lambda: _embedded_problem(settings.data_dir))
    return liveness


def _loop_problem(loop: Loop) -> str | None:
    return None if loop.alive else "stopped"


def _embedded_problem(data_dir: Path) -> str | None:
    state = read_state(data_dir)
    return state.message if state is not None and state.state == GAVE_UP else None


GC_THRESHOLD = 50_000  # allocations between young collections (the default is 2,000)


def tune_gc() -> None:
    """Objects alive after start-up (modules, caches, the schema) are never collected: freeze
    them out of the collector's scans; and collect young objects less often. Realtime fan-out
    allocates in bursts, and with the defaults the collector took a large share of its time."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, old)


def create_app(settings: Settings, *, authenticate: Authenticate = authenticate) -> Starlette:
    """The application; `authenticate` maps each request's credentials to an Identity."""
    access_log = AccessLog(settings.log_format) if settings.access_log else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        ctx, listener, live = await _start_through_outages(settings)
        housekeeper = Housekeeper(ctx.db)
        housekeeper.start()
        warm = asyncio.create_task(asyncio.to_thread(passwords.warm_up))
        if access_log is not None:
            access_log.start()
        liveness = _liveness(ctx, listener, live, housekeeper)
        try:
            yield {"ctx": ctx, "realtime": live, "liveness": liveness}
        finally:
            steps: list[Step] = [("password warm-up", lambda: asyncio.wait({warm}), STOP_STEP_S)]
            if access_log is not None:
                steps.append(("access log", access_log.close, STOP_STEP_S))
            steps.append(("housekeeping", housekeeper.stop, STOP_STEP_S))
            await shutdown(steps + stop_steps(ctx, listener, live))

    async def openapi(request: Request) -> Response:
        ctx = context(request)
        return json_response(openapi_document(ctx.schema, settings, package_version()))

    middleware = [
        Middleware(
            RequestMiddleware,
            authenticate=authenticate,
            max_body_bytes=settings.max_body_bytes,
            https=settings.base_url.startswith("https://"),
            access_log=access_log,
        )
    ]
    if settings.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_credentials=False,  # bearer tokens, never cookies: nothing to share
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                max_age=600,
            ),
        )
    app = Starlette(
        routes=[
            *records_api.routes,
            *realtime_api.routes,
            *storage_api.routes,
            *push_api.routes,
            *auth_api.routes,
            *admin_api.routes,
            *admin_auth_api.routes,
            *auth_pages.routes,
            *health.routes,
            route("/api/openapi.json", GET=openapi),
        ],
        middleware=middleware,
        # (unhandled errors: the request middleware logs them once and answers the JSON 500)
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # an API answers the path it was asked, or 404
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request_id(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error: ApiError = MethodNotAllowed(
            f"{request.method} is not allowed here", headers=dict(exc.headers or {})
        )
    elif exc.status_code == 404:
        error = NotFound(f"no route for {request.url.path}", code="route_not_found")
    else:
        error = ApiError(exc.detail, status=exc.status_code, code="http_error")
    return error_response(error, request_id(request))


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory baas.app:app_from_env` (what `baas serve` runs per worker)."""
    from baas.logs import setup_logging

    settings = Settings.load()
    setup_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_gc()
    return app
