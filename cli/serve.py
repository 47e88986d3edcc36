"""`baas serve`: start PostgreSQL if embedded, then uvicorn; stop both cleanly on Ctrl-C.

The embedded PostgreSQL is supervised from this process (the parent of uvicorn's workers, or the
one worker): it is started again whenever it dies, once for all workers (`db.supervisor`).

Its options are generated from the settings table, so `--help` lists every setting.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Optional

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from baas.app import check_secret_key, create_app, tune_gc
from baas.config import SETTINGS, Setting, Settings
from baas.http.protocol import HeadLimitedProtocol
from cli.runtime import embedded_if_needed, load_settings

log = logging.getLogger("baas")


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run(settings: Settings) -> None:
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it unwinds through the
    # embedded PostgreSQL's stop instead of killing the process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_term)
    with embedded_if_needed(settings, supervise=True) as resolved:
        problem = asyncio.run(check_secret_key(resolved))
        if problem:  # before uvicorn, which would bury it in a traceback
            typer.secho(f"error: {problem}", fg="red", err=True)
            raise typer.Exit(1)
        common: dict[str, Any] = dict(
            host=resolved.host,
            port=resolved.port,
            loop=_loop(),
            # httptools, with the request-head limit (uvicorn's h11 reads the same setting)
            http=HeadLimitedProtocol,
            h11_max_incomplete_event_size=resolved.max_header_bytes,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=",".join(resolved.trusted_proxies),
            timeout_keep_alive=resolved.http_keepalive_s,
            timeout_graceful_shutdown=10,
            # realtime: the sans-I/O implementation (no tasks of its own per connection), no
            # compression (a zlib context per connection costs more memory than it saves)
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_max_size=resolved.realtime_max_message_bytes,
        )
        if resolved.workers == 1:
            config = uvicorn.Config(create_app(resolved), **common)
            tune_gc()
        else:
            # Workers are separate processes: they rebuild the same settings from the environment.
            for setting in SETTINGS:
                value = getattr(resolved, setting.name)
                os.environ[setting.env] = _env_value(value)
            config = uvicorn.Config(
                "baas.app:app_from_env", factory=True, workers=resolved.workers, **common
            )
        _serve(config, resolved)


def _serve(config: uvicorn.Config, settings: Settings) -> None:
    """What `uvicorn.run` does, on a socket bound here so that "baas listening" can wait for it."""
    # uvicorn says "running" as it binds, before the app has started: ours replaces it
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(_not_running_yet)
    try:
        sock = config.bind_socket()  # exits with uvicorn's message if the address is taken
    finally:
        uvicorn_log.removeFilter(_not_running_yet)
    announced = _announce_when_listening(sock, settings)
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn once it has shut down
        pass
    finally:
        announced.set()
        sock.close()
    if config.workers == 1 and not server.started:  # the app failed to start (logged)
        raise typer.Exit(3)


def _not_running_yet(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Uvicorn running on")


def _announce_when_listening(sock: socket.socket, settings: Settings) -> threading.Event:
    """Log "baas listening" once the socket accepts connections: uvicorn binds it first, and a
    worker starts listening on it only when the app has started, so the bind is not the moment.
    Setting the returned event stops the watch (the server stopped first)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            except OSError:  # closed: the server stopped
                return
            if listening:
                log.info(
                    "baas listening on http://%s:%d (public URL %s)",
                    settings.host,
                    sock.getsockname()[1],
                    settings.base_url,
                )
                return

    threading.Thread(target=watch, name="baas-listening", daemon=True).start()
    return stop


def _env_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown_default(setting: Setting) -> str:
    """The default as it would be written in the environment (secrets masked)."""
    shown = "" if setting.default in ("", []) else _env_value(setting.default)
    if not shown:
        return "(none)"
    return "***" if setting.secret else shown


def _option(setting: Setting) -> inspect.Parameter:
    kind = {int: int, float: float, bool: bool, Path: Path}.get(setting.type, str)
    help_text = f"{setting.help} (env {setting.env}, default: {_shown_default(setting)})"
    flag = "--" + setting.name.replace("_", "-")
    decls = [f"{flag}/--no-{setting.name.replace('_', '-')}"] if kind is bool else [flag]
    return inspect.Parameter(
        setting.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, *decls, help=help_text, show_default=False),
        annotation=Optional[kind],  # noqa: UP045 (typer reads the annotation at runtime)
    )


def serve(**options: Any) -> None:
    """Start the server (with an embedded PostgreSQL unless BAAS_DATABASE_URL is set)."""
    settings = load_settings(options, quiet=False)
    run(settings)


serve.__signature__ = inspect.Signature([_option(s) for s in SETTINGS])  # type: ignore[attr-defined]
