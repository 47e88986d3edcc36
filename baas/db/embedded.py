"""Embedded PostgreSQL: a private cluster in <data_dir>/pg, reachable only through a unix socket.

Binaries come from the `pgserver` wheel (PostgreSQL inside a PyPI package), else from
`initdb`/`pg_ctl` on PATH. Every baas process that uses the cluster holds a shared lock on
<data_dir>/pg.lock; the last one to leave stops PostgreSQL. A server killed with -9 leaves
PostgreSQL running; the next start adopts it (or, if PostgreSQL died too, starts it again and
PostgreSQL recovers from its WAL). While a server runs, `db.supervisor` starts it again if it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("baas.db.embedded")

DATABASE = "baas"
SUPERUSER = "postgres"
SYSTEM_USER = "baaspg"  # PostgreSQL refuses to run as root; it runs as this user instead
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.5432"
_PORT = 5432  # only names the socket file; the cluster listens on no TCP address
SETTLE_SECONDS = 15  # how long a crashed cluster may take to finish dying
_PROC = Path("/proc/self")


class EmbeddedError(RuntimeError):
    """The embedded PostgreSQL could not be found, initialised or started."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path
    postgres: Path

    @property
    def version(self) -> str:
        out = subprocess.run(
            [str(self.postgres), "--version"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip().rsplit(" ", 1)[-1]


def find_binaries() -> Binaries:
    """The pgserver wheel's binaries, else initdb/pg_ctl/postgres found on PATH."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for bindir in candidates:
        names = ("initdb", "pg_ctl", "postgres")
        if all((bindir / n).is_file() for n in names):
            return Binaries(*(bindir / n for n in names))
    raise EmbeddedError(
        "no PostgreSQL binaries found: install the 'pgserver' package, put initdb/pg_ctl on "
        "PATH, or set BAAS_DATABASE_URL to an existing PostgreSQL"
    )


class EmbeddedPostgres:
    """One embedded cluster; as a context manager: `with EmbeddedPostgres(dir) as pg: pg.url`."""

    def __init__(self, data_dir: Path, binaries: Binaries | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.binaries = binaries or find_binaries()
        self.socket_dir = _socket_dir(self.data_dir)
        self._usage_fd: int | None = None
        self._run_as = _system_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return embedded_url(self.data_dir)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Initialise the cluster if needed and make sure it is running; take a usage lock."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            self._usage_fd = os.open(self.data_dir / "pg.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._usage_fd, fcntl.LOCK_SH)
            if not (self.pgdata / "PG_VERSION").is_file():
                self._initdb()
            if self._adoptable():
                log.info("embedded PostgreSQL already running in %s", self.pgdata)
            else:
                self._start_with_retries()
            self._ensure_database()
        log.info(
            "embedded PostgreSQL %s: data in %s, socket in %s",
            self.binaries.version,
            self.pgdata,
            self.socket_dir,
        )

    def stop(self, *, discard: bool = False) -> None:
        """Release the usage lock; the last user stops PostgreSQL.

        A fast shutdown checkpoints; `discard=True` (for throwaway clusters, e.g. tests) skips that.
        """
        if self._usage_fd is None:
            return
        with self._start_lock():
            try:
                fcntl.flock(self._usage_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            if last and self._running():
                mode = "immediate" if discard else "fast"
                self._pg_ctl("stop", "-m", mode, "-w", "-t", "60")
                log.info("embedded PostgreSQL stopped")
            os.close(self._usage_fd)
            self._usage_fd = None

    def postmaster_alive(self) -> bool:
        """Whether the postmaster named in postmaster.pid lives (cheap: no subprocess)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return _process_alive(pid)

    def revive(self) -> bool:
        """Start PostgreSQL again after it stopped (it recovers from its WAL); False if it was
        running after all (another process started it first)."""
        with self._start_lock():
            if self._adoptable():
                return False
            self._pg_ctl_start()
            return True

    @contextlib.contextmanager
    def _start_lock(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.data_dir / "pg.start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _adoptable(self) -> bool:
        """A running cluster that answers; waits out one that is still dying (a crash)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while self._running():
            if self._answers():
                return True
            if time.monotonic() > deadline:
                raise EmbeddedError(f"PostgreSQL in {self.pgdata} runs but does not answer")
            time.sleep(0.1)
        return False

    def _start_with_retries(self) -> None:
        """Start; after a crash, leftover backends may hold shared memory for a moment."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            try:
                self._pg_ctl_start()
                return
            except EmbeddedError:
                if time.monotonic() > deadline:
                    raise
                log.warning("PostgreSQL did not start yet (recovering from a crash?); retrying")
                time.sleep(0.5)

    def _answers(self) -> bool:
        ready = self.binaries.pg_ctl.parent / "pg_isready"
        argv = [str(ready), "-q", "-h", str(self.socket_dir), "-p", str(_PORT)]
        return self._run(argv).returncode == 0

    def _running(self) -> bool:
        result = self._run([str(self.binaries.pg_ctl), "status", "-D", str(self.pgdata)])
        return result.returncode == 0

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory and move it into place only when complete,
        so an interrupted first start (Ctrl-C during initdb) leaves nothing half-made."""
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        if self.pgdata.exists():
            raise EmbeddedError(f"{self.pgdata} exists but holds no PostgreSQL cluster")
        scratch = self.data_dir / "pg.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(mode=0o700)
        self._hand_over(scratch)
        base = [str(self.binaries.initdb), "-D", str(scratch), "-U", SUPERUSER]
        base += ["--auth=trust", "--encoding=UTF8"]
        for locale in (["--locale=C.UTF-8"], ["--no-locale"]):
            result = self._run(base + locale)
            if result.returncode == 0:
                break
        else:
            raise EmbeddedError(f"initdb failed:\n{result.stderr}")
        with (scratch / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                "listen_addresses = ''\n"
                "unix_socket_permissions = 0700\n"
                "timezone = 'UTC'\n"
                "logging_collector = off\n"
            )
        scratch.rename(self.pgdata)

    def _pg_ctl_start(self) -> None:
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._hand_over(self.socket_dir)
        options = f"-k {self.socket_dir} -p {_PORT}"
        logfile = self.log_file
        if self._run_as and not logfile.exists():
            logfile.touch(mode=0o600)
            self._hand_over(logfile)
        self._pg_ctl("start", "-w", "-t", "120", "-l", str(logfile), "-o", options)

    def _pg_ctl(self, *args: str) -> None:
        result = self._run([str(self.binaries.pg_ctl), "-D", str(self.pgdata), *args])
        if result.returncode != 0:
            tail = _tail(self.log_file)
            raise EmbeddedError(f"pg_ctl {args[0]} failed: {result.stderr.strip()}\n{tail}")

    def _ensure_database(self) -> None:
        psql = self.binaries.pg_ctl.parent / "psql"
        if not psql.is_file():
            raise EmbeddedError(f"psql not found next to {self.binaries.pg_ctl}")
        base = [str(psql), "-h", str(self.socket_dir), "-p", str(_PORT), "-U", SUPERUSER]
        exists = "SELECT 1 FROM pg_database WHERE datname = 'baas'"  # DATABASE, a constant
        found = self._run([*base, "-d", "postgres", "-tAc", exists])
        if found.returncode != 0:
            raise EmbeddedError(f"embedded PostgreSQL is not answering: {found.stderr.strip()}")
        if found.stdout.strip() != "1":
            created = self._run([*base, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"])
            if created.returncode != 0:
                raise EmbeddedError(f"could not create database: {created.stderr.strip()}")

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program, as the unprivileged system user when we are root.

        A new session keeps Ctrl-C in the terminal from reaching PostgreSQL directly: the server
        shuts it down itself after it has drained its own requests.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.setdefault("LC_ALL", "C.UTF-8")
        user = self._run_as
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            user=user,
            group=user,
            cwd=str(self.data_dir),
            start_new_session=True,
            check=False,
        )

    def _hand_over(self, path: Path) -> None:
        """When running as root, give `path` to the system user and let it traverse the parents."""
        if self._run_as is None:
            return
        shutil.chown(path, self._run_as, self._run_as)
        _allow_traverse(path.parent)
        _allow_traverse_tree(self.binaries.postgres.parent.parent)


def embedded_url(data_dir: Path) -> str:
    """The URL of the embedded cluster of `data_dir` (also how a worker tells it is embedded)."""
    socket_dir = _socket_dir(data_dir.resolve())
    return f"postgresql://{SUPERUSER}@/{DATABASE}?host={quote(str(socket_dir))}"


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie does not: a killed postmaster stays one until its parent
    (often PID 1, which may reap late or never) collects it, and kill(pid, 0) still succeeds."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (we are PID 1): reaped now
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not _PROC.is_dir()  # /proc is there and the process is not
    except OSError:
        stat = ""
    if stat:
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _socket_dir(data_dir: Path) -> Path:
    preferred = data_dir / "run"
    if len(str(preferred).encode()) <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"baas-pg-{digest}"


def _system_user() -> str:
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--user-group", "--no-create-home", SYSTEM_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedError(
                f"running as root: PostgreSQL needs an unprivileged user and "
                f"`useradd {SYSTEM_USER}` failed: {result.stderr.strip()}"
            ) from None
        log.warning("created system user %r to run the embedded PostgreSQL", SYSTEM_USER)
    return SYSTEM_USER


def _allow_traverse(directory: Path) -> None:
    """Add o+x (traverse, not list) to `directory` and its parents where missing."""
    for path in (directory, *directory.parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("adding o+x to %s so the embedded PostgreSQL can reach its data", path)
            path.chmod(mode | stat.S_IXOTH)


def _allow_traverse_tree(root: Path) -> None:
    _allow_traverse(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            p = Path(dirpath) / name
            mode = p.stat().st_mode
            extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                p.chmod(mode | extra)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
