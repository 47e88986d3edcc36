"""Supervision of the embedded PostgreSQL: notice that it died and start it again, with backoff.

`baas serve` runs the supervisor as a thread of its own process, the one that started the cluster
and holds its usage lock (uvicorn workers only use the cluster). Exactly one process per data
directory supervises: the holder of an exclusive lock on `<data_dir>/pg.supervisor.lock`; another
`baas serve` on the same directory stands by and takes over when the holder exits. Restarts run
under the cluster's start lock, so a CLI command starting the cluster at the same moment adopts
it instead of starting a second one.

Every CHECK_S seconds the supervisor looks whether the postmaster lives. When it does not, it
starts PostgreSQL again at once (PostgreSQL recovers from its write-ahead log), then with
exponential backoff between failed attempts. After `max_restarts` attempts in a row without a
PostgreSQL that stays up for STABLE_S, it gives up. Its state is written to
`<data_dir>/pg.supervisor.json`, read by the liveness endpoint of every worker: a supervisor that
gave up fails liveness, so an orchestrator restarts the server (whose start then says why
PostgreSQL cannot run).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from baas.db.embedded import EmbeddedError, EmbeddedPostgres

log = logging.getLogger("baas.db.embedded")

CHECK_S = 1.0
STABLE_S = 60.0  # up this long after a restart: the next death starts a new count
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
STATE_FILE = "pg.supervisor.json"
LOCK_FILE = "pg.supervisor.lock"

UP, RESTARTING, GAVE_UP = "up", "restarting", "gave_up"


@dataclass(frozen=True)
class SupervisorState:
    state: str  # UP, RESTARTING or GAVE_UP
    restarts: int  # restarts since the server started
    message: str = ""
    pid: int = 0  # the supervising process


def read_state(data_dir: Path) -> SupervisorState | None:
    """The supervisor's last word for `data_dir`, or None if there is none (or it is unreadable)."""
    try:
        raw = orjson.loads((data_dir / STATE_FILE).read_bytes())
        return SupervisorState(**raw)
    except (OSError, ValueError, TypeError):
        return None


class Supervisor:
    """A thread that keeps one embedded cluster running (see the module docstring)."""

    def __init__(
        self, pg: EmbeddedPostgres, *, max_restarts: int, check_s: float = CHECK_S
    ) -> None:
        self.pg = pg
        self.max_restarts = max_restarts
        self.check_s = check_s
        self.restarts = 0
        self._attempts = 0  # restart attempts since PostgreSQL was last up for STABLE_S
        self._restarted_at = 0.0
        self._gave_up = False
        self._last_error = ""
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baas-pg-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising (before the cluster is stopped on purpose); waits for a restart in
        progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def supervising(self) -> bool:
        """This process holds the supervisor lock (another one may stand by)."""
        return self._lock_fd is not None

    def _run(self) -> None:
        while True:
            if self._supervises() and not self._gave_up and not self.pg.postmaster_alive():
                self._revive()
            if self._stop.wait(self.check_s):
                return

    def _supervises(self) -> bool:
        return self._lock_fd is not None or self._take_lock()

    def _take_lock(self) -> bool:
        fd = os.open(self.pg.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self._write(UP)
        return True

    def _revive(self) -> None:
        started = time.monotonic()
        if started - self._restarted_at > STABLE_S:
            self._attempts = 0
        log.warning("embedded PostgreSQL is not running (it died?); starting it again")
        self._write(RESTARTING, "PostgreSQL died; restarting it")
        while not self._stop.is_set():
            if self._attempts >= self.max_restarts:
                self._give_up()
                return
            if self._attempts and self._stop.wait(self._backoff_s()):
                return
            self._attempts += 1
            self._last_error = ""
            try:
                ours = self.pg.revive()
            except EmbeddedError as exc:
                self._last_error = str(exc)
                log.warning(
                    "could not start embedded PostgreSQL (attempt %d of %d): %s",
                    self._attempts,
                    self.max_restarts,
                    _gist(exc),
                )
                continue
            self.restarts += 1
            self._restarted_at = time.monotonic()
            log.warning(
                "embedded PostgreSQL is back after %.1fs (%s)",
                self._restarted_at - started,
                "restarted" if ours else "started by another process",
            )
            self._write(UP)
            return

    def _backoff_s(self) -> float:
        return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (self._attempts - 1)))

    def _give_up(self) -> None:
        self._gave_up = True
        reason = self._last_error or "it died again after each restart"
        message = (
            f"gave up restarting the embedded PostgreSQL after {self._attempts} attempt(s): "
            f"{_gist(reason)}"
        )
        log.error("%s; liveness fails from now on (see %s)", message, self.pg.log_file)
        self._write(GAVE_UP, message)

    def _write(self, state: str, message: str = "") -> None:
        """Publish the state for the workers' liveness (written whole, then renamed)."""
        target = self.pg.data_dir / STATE_FILE
        scratch = target.with_suffix(".tmp")
        body = SupervisorState(state, self.restarts, message, os.getpid())
        try:
            scratch.write_bytes(orjson.dumps(asdict(body)))
            os.replace(scratch, target)
        except OSError as exc:
            log.warning("could not write %s: %s", target, exc)


def _gist(value: object) -> str:
    """One line out of pg_ctl's words and the log's tail: PostgreSQL's last FATAL if any."""
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    fatal = [line for line in lines if "FATAL:" in line or "PANIC:" in line]
    if fatal:
        return fatal[-1].split("FATAL:", 1)[-1].split("PANIC:", 1)[-1].strip()
    return lines[0] if lines else ""
