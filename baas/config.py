"""Bootstrap settings: one frozen object built from defaults, `.env`, `BAAS_*` env and CLI flags.

Every setting is declared once in `SETTINGS` as (name, type, default, help); the CLI builds its
`baas serve` options from the same table, so `--help` always lists all of them with their defaults.
Nothing reads `os.environ` after start-up: the `Settings` object is passed explicitly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

ENV_PREFIX = "BAAS_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
STORAGE_BACKENDS = ("local", "s3")


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "Interface to listen on."),
    Setting("port", int, 8090, "TCP port to listen on."),
    Setting("workers", int, 1, "Server processes (each with its own pool and realtime listener)."),
    Setting("data_dir", Path, Path("baas_data"), "Data directory (embedded PostgreSQL, keys)."),
    Setting(
        "database_url",
        str,
        "",
        "PostgreSQL URL; empty starts an embedded PostgreSQL in <data_dir>/pg.",
        secret=True,
    ),
    Setting(
        "embedded_restarts",
        int,
        5,
        "Attempts in a row to restart a dead embedded PostgreSQL before giving up (0: none).",
    ),
    Setting("schema_file", Path, Path("baas.yaml"), "Schema file used by `baas schema`."),
    Setting("public_url", str, "", "URL clients reach the server at; default http://host:port."),
    Setting("cors_origins", list, [], "Comma-separated origins allowed by CORS ('*' = any)."),
    Setting("log_level", str, "info", "Log level: debug, info, warning, error."),
    Setting("log_format", str, "text", "Log format: text or json."),
    Setting("access_log", bool, True, "Log one line per request (written off the request path)."),
    Setting("service_key", str, "", "A service key accepted besides those in the DB.", secret=True),
    Setting(
        "secret_key",
        str,
        "",
        "Seals secrets at rest (32+ chars, same on every instance); empty: <data_dir>/secret.key.",
        secret=True,
    ),
    Setting("trusted_proxies", list, ["127.0.0.1"], "Proxies whose X-Forwarded-* are trusted."),
    Setting("db_pool_min", int, 2, "Minimum pooled database connections per process."),
    Setting("db_pool_max", int, 10, "Maximum pooled database connections per process."),
    Setting("db_statement_timeout_ms", int, 5000, "PostgreSQL statement_timeout for API queries."),
    Setting("db_acquire_timeout_s", float, 5.0, "Seconds to wait for a pooled connection."),
    Setting("db_command_timeout_s", float, 10.0, "Client-side timeout for any one query."),
    Setting("http_keepalive_s", int, 5, "Seconds an idle keep-alive connection stays open."),
    Setting("max_body_bytes", int, 1_048_576, "Largest request body accepted (bytes)."),
    Setting(
        "max_header_bytes", int, 16_384, "Largest request head: request line and headers (bytes)."
    ),
    Setting("default_per_page", int, 30, "Records per page when a list does not say."),
    Setting("max_per_page", int, 500, "Largest per_page a list accepts."),
    Setting("max_offset", int, 100_000, "Deepest offset a list accepts; use cursors beyond."),
    Setting("max_sort_fields", int, 5, "Most fields one sort may name."),
    Setting("max_batch_operations", int, 100, "Most operations in one POST /api/batch."),
    Setting("max_filter_length", int, 4096, "Longest filter (characters)."),
    Setting("max_filter_depth", int, 16, "Deepest nesting of parentheses in a filter."),
    Setting("max_filter_parts", int, 200, "Most operators, names and values in one filter."),
    Setting("max_filter_list", int, 100, "Most values in one IN (...) list or contains()."),
    Setting("max_path_depth", int, 3, "Most relations one path goes through (a.b.c)."),
    Setting("max_expand", int, 10, "Most paths in one expand."),
    Setting("max_expand_depth", int, 3, "Deepest expand path (readers.team.owner)."),
    Setting("realtime_max_subscriptions", int, 100, "Realtime subscriptions per connection."),
    Setting("realtime_max_channels", int, 20, "Realtime channels one connection may join."),
    Setting("realtime_max_message_bytes", int, 16_384, "Largest realtime client message."),
    Setting("realtime_max_messages_per_s", int, 50, "Realtime client messages a second (10 s)."),
    Setting("realtime_max_connections_per_user", int, 50, "Realtime connections per user."),
    Setting("realtime_max_connections_per_ip", int, 500, "Realtime connections per address."),
    Setting("realtime_max_queued_bytes", int, 262_144, "Unsent bytes before a slow client is cut."),
    Setting("realtime_idle_timeout_s", float, 75.0, "Seconds a silent realtime client may stay."),
    Setting("realtime_ping_interval_s", float, 25.0, "Seconds between realtime pings."),
    Setting("realtime_retention_s", int, 3600, "Seconds changes are kept for replay (`since`)."),
    Setting("realtime_max_replay", int, 10_000, "Most changes replayed for one `since`."),
    Setting(
        "realtime_poll_ms",
        int,
        500,
        "Milliseconds between looks at the change log for writes that woke nobody (psql).",
    ),
    Setting(
        "realtime_presence_timeout_s", int, 30, "Seconds before a dead instance leaves presence."
    ),
    Setting("storage_backend", str, "local", "File storage: local (a directory) or s3."),
    Setting(
        "storage_dir", Path, Path(""), "Directory of the local backend; empty: <data_dir>/storage."
    ),
    Setting("s3_endpoint", str, "", "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com."),
    Setting("s3_bucket", str, "", "S3 bucket files are stored in (it must exist)."),
    Setting("s3_region", str, "us-east-1", "S3 region (requests are signed for it)."),
    Setting("s3_access_key", str, "", "S3 access key id.", secret=True),
    Setting("s3_secret_key", str, "", "S3 secret access key.", secret=True),
    Setting(
        "s3_path_style",
        bool,
        True,
        "Path-style S3 URLs (endpoint/bucket/key); false: virtual-host.",
    ),
    Setting("s3_timeout_s", float, 10.0, "Seconds an S3 request may wait to connect or for data."),
    Setting(
        "s3_presigned_downloads",
        bool,
        False,
        "Redirect protected and public downloads to presigned S3 URLs.",
    ),
    Setting(
        "file_max_size",
        int,
        10_485_760,
        "Largest file a file field accepts when it declares no max_size (bytes).",
    ),
    Setting("file_token_ttl_s", int, 120, "Lifetime of file tokens (POST /api/files/token)."),
    Setting("jobs_concurrency", int, 8, "Jobs one server process runs at once (0: run none)."),
    Setting("jobs_poll_s", float, 1.0, "Seconds between looks for scheduled or retried jobs."),
    Setting("jobs_lease_s", float, 60.0, "Seconds before a silent worker's jobs run elsewhere."),
    Setting("jobs_backoff_base_s", float, 5.0, "First retry delay of a failed job (doubles)."),
    Setting("jobs_backoff_cap_s", float, 3600.0, "Longest delay between retries of a job."),
    Setting("push_concurrency", int, 64, "Push sends in flight at once per delivery job."),
    Setting("push_timeout_s", float, 10.0, "Seconds one push send may take."),
    Setting("apns_host", str, "", "APNs host[:port]; empty: Apple's (production or sandbox)."),
    Setting("fcm_url", str, "", "FCM v1 base URL; empty: https://fcm.googleapis.com/v1/projects."),
    Setting("push_ca_file", Path, Path(""), "Extra CA certificates (PEM) trusted for push."),
    Setting(
        "outbound_allow_private",
        list,
        [],
        "Internal networks (CIDR, comma-separated) server-side fetches may reach; empty: none.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}
MIN_SECRET_KEY_LENGTH = 32
MIN_HEADER_BYTES = 1024  # a smaller head has no room for a bearer token
# Values people paste from examples; a random key starts with one of these about once in 10^9.
_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "example",
    "your-",
    "your_",
    "yoursecret",
    "secret",
    "replace",
    "insert",
)


def key_problem(key: str) -> str | None:
    """Why `key` cannot be the install's secret key, or None."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return (
            f"must be at least {MIN_SECRET_KEY_LENGTH} characters (e.g. `openssl rand -base64 32`)"
        )
    lowered = key.lower()
    if len(set(key)) < 10 or lowered.startswith(_PLACEHOLDERS):
        return "looks like a placeholder: generate one with `openssl rand -base64 32`"
    return None


SERVICE_KEY_PREFIX = "baas_sk_"  # a bearer with it is checked as a service key, never as a JWT
MIN_SERVICE_KEY_SECRET = 32  # characters after the prefix (generated keys have 43)


def service_key_problem(key: str) -> str | None:
    """Why `key` cannot be a service key (it could never authenticate, or is guessable), or
    None."""
    how = f"e.g. {SERVICE_KEY_PREFIX}$(openssl rand -hex 32)"
    if not key.startswith(SERVICE_KEY_PREFIX):
        return (
            f"must start with {SERVICE_KEY_PREFIX} (a bearer without it is taken for an access "
            f"token and refused): {how}"
        )
    secret = key.removeprefix(SERVICE_KEY_PREFIX)
    if len(secret) < MIN_SERVICE_KEY_SECRET:
        return (
            f"must have at least {MIN_SERVICE_KEY_SECRET} characters after {SERVICE_KEY_PREFIX} "
            f"(it has {len(secret)}): {how}"
        )
    if not all("!" <= c <= "~" for c in secret):
        return f"must hold only visible ASCII characters (it is sent in a header): {how}"
    if len(set(secret)) < 10 or secret.lower().startswith(_PLACEHOLDERS):
        return f"looks like a placeholder: {how}"
    return None


class SettingsError(ValueError):
    """Raised with every problem found while building Settings."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8090
    workers: int = 1
    data_dir: Path = Path("baas_data")
    database_url: str = field(default="", repr=False)
    embedded_restarts: int = 5
    schema_file: Path = Path("baas.yaml")
    public_url: str = ""
    cors_origins: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    service_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_statement_timeout_ms: int = 5000
    db_acquire_timeout_s: float = 5.0
    db_command_timeout_s: float = 10.0
    http_keepalive_s: int = 5
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    default_per_page: int = 30
    max_per_page: int = 500
    max_offset: int = 100_000
    max_sort_fields: int = 5
    max_batch_operations: int = 100
    max_filter_length: int = 4096
    max_filter_depth: int = 16
    max_filter_parts: int = 200
    max_filter_list: int = 100
    max_path_depth: int = 3
    max_expand: int = 10
    max_expand_depth: int = 3
    realtime_max_subscriptions: int = 100
    realtime_max_channels: int = 20
    realtime_max_message_bytes: int = 16_384
    realtime_max_messages_per_s: int = 50
    realtime_max_connections_per_user: int = 50
    realtime_max_connections_per_ip: int = 500
    realtime_max_queued_bytes: int = 262_144
    realtime_idle_timeout_s: float = 75.0
    realtime_ping_interval_s: float = 25.0
    realtime_retention_s: int = 3600
    realtime_max_replay: int = 10_000
    realtime_poll_ms: int = 500
    realtime_presence_timeout_s: int = 30
    storage_backend: str = "local"
    storage_dir: Path = Path("")
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    s3_path_style: bool = True
    s3_timeout_s: float = 10.0
    s3_presigned_downloads: bool = False
    file_max_size: int = 10_485_760
    file_token_ttl_s: int = 120
    jobs_concurrency: int = 8
    jobs_poll_s: float = 1.0
    jobs_lease_s: float = 60.0
    jobs_backoff_base_s: float = 5.0
    jobs_backoff_cap_s: float = 3600.0
    push_concurrency: int = 64
    push_timeout_s: float = 10.0
    apns_host: str = ""
    fcm_url: str = ""
    push_ca_file: Path = Path("")
    outbound_allow_private: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        """True when the server runs its own PostgreSQL in the data directory."""
        return not self.database_url

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        dotenv_path: Path | None = Path(".env"),
    ) -> Settings:
        """Build settings: defaults < .env < environment < explicit overrides (CLI flags)."""
        raw: dict[str, Any] = {}
        if dotenv_path is not None and dotenv_path.is_file():
            raw.update(_from_env_mapping(dotenv_values(dotenv_path)))
        raw.update(_from_env_mapping(os.environ if environ is None else environ))
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_raw(raw)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Settings:
        """Convert and validate raw values (strings from env, or typed values)."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, value in raw.items():
            setting = _BY_NAME.get(name)
            if setting is None:
                problems.append(f"unknown setting {name!r}")
                continue
            try:
                values[name] = _convert(setting, value)
            except ValueError as exc:
                problems.append(f"{setting.env}: {exc}")
        if not problems:
            settings = cls(**values)
            problems = settings._problems()
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
        return settings

    def _problems(self) -> list[str]:
        problems = []
        if not 0 < self.port < 65536:
            problems.append("BAAS_PORT: must be between 1 and 65535")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"BAAS_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            problems.append(f"BAAS_LOG_FORMAT: must be one of {', '.join(LOG_FORMATS)}")
        for name in (
            "workers",
            "db_pool_min",
            "db_pool_max",
            "default_per_page",
            "max_per_page",
            *(s.name for s in SETTINGS if s.name.startswith("realtime_")),
        ):
            if getattr(self, name) < 1:
                problems.append(f"{_BY_NAME[name].env}: must be at least 1")
        if self.max_header_bytes < MIN_HEADER_BYTES:
            problems.append(f"BAAS_MAX_HEADER_BYTES: must be at least {MIN_HEADER_BYTES}")
        if self.embedded_restarts < 0:
            problems.append("BAAS_EMBEDDED_RESTARTS: must be 0 or more")
        if self.db_pool_min > self.db_pool_max:
            problems.append("BAAS_DB_POOL_MIN: must not exceed BAAS_DB_POOL_MAX")
        if self.default_per_page > self.max_per_page:
            problems.append("BAAS_DEFAULT_PER_PAGE: must not exceed BAAS_MAX_PER_PAGE")
        if self.database_url and urlsplit(self.database_url).scheme not in (
            "postgres",
            "postgresql",
        ):
            problems.append("BAAS_DATABASE_URL: must start with postgresql://")
        if self.public_url and urlsplit(self.public_url).scheme not in ("http", "https"):
            problems.append("BAAS_PUBLIC_URL: must be an http(s) URL")
        if self.service_key:
            problem = service_key_problem(self.service_key)
            if problem:
                problems.append(f"BAAS_SERVICE_KEY: {problem}")
        if self.secret_key:
            problem = key_problem(self.secret_key)
            if problem:
                problems.append(f"BAAS_SECRET_KEY: {problem}")
        return (
            problems + self._storage_problems() + self._job_problems() + self._outbound_problems()
        )

    def _outbound_problems(self) -> list[str]:
        problems = []
        for value in self.outbound_allow_private:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                problems.append(
                    f"BAAS_OUTBOUND_ALLOW_PRIVATE: {value!r} is not a network such as "
                    "10.0.0.0/8, 127.0.0.1/32 or fd00::/8"
                )
        return problems

    def _job_problems(self) -> list[str]:
        problems = []
        if self.jobs_concurrency < 0:
            problems.append("BAAS_JOBS_CONCURRENCY: must be 0 or more")
        for name in (
            "jobs_poll_s",
            "jobs_lease_s",
            "jobs_backoff_base_s",
            "jobs_backoff_cap_s",
            "push_concurrency",
            "push_timeout_s",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{_BY_NAME[name].env}: must be positive")
        if self.fcm_url and urlsplit(self.fcm_url).scheme not in ("http", "https"):
            problems.append("BAAS_FCM_URL: must be an http(s) URL")
        return problems

    def _storage_problems(self) -> list[str]:
        problems = []
        if self.storage_backend not in STORAGE_BACKENDS:
            problems.append(f"BAAS_STORAGE_BACKEND: must be one of {', '.join(STORAGE_BACKENDS)}")
        for name in ("s3_timeout_s", "file_max_size", "file_token_ttl_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{_BY_NAME[name].env}: must be positive")
        if self.storage_backend != "s3":
            return problems
        if not self.s3_bucket:
            problems.append("BAAS_S3_BUCKET: required when BAAS_STORAGE_BACKEND is s3")
        endpoint = urlsplit(self.s3_endpoint)
        if not self.s3_endpoint:
            problems.append("BAAS_S3_ENDPOINT: required when BAAS_STORAGE_BACKEND is s3")
        elif endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            problems.append("BAAS_S3_ENDPOINT: must be an http(s) URL, e.g. http://127.0.0.1:9000")
        elif endpoint.path.strip("/") or endpoint.query or endpoint.username:
            problems.append("BAAS_S3_ENDPOINT: must be scheme://host[:port] only (no path)")
        return problems


def _from_env_mapping(env: Mapping[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        value = env.get(setting.env)
        if value is not None:
            out[setting.name] = value
    return out


def _convert(setting: Setting, value: Any) -> Any:
    kind = setting.type
    if kind is list:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(item.strip() for item in items if item.strip())
    if not isinstance(value, str):
        return kind(value)
    value = value.strip()
    if kind is bool:
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"expected {kind.__name__}, got {value!r}") from None
