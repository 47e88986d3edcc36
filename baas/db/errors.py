"""SQLSTATE -> ApiError: the one table that turns PostgreSQL and asyncpg errors into ours.

Integrity errors keep the constraint/column PostgreSQL reported, so the records layer can name the
field in its message; everything unexpected becomes an internal error (logged, never shown).

Driver failures are recognised by class, never by message: a socket error, any asyncpg interface
or internal-client error ("connection is closed", "cannot switch to state ...; another operation
is in progress"), a connect that timed out, or a SQLSTATE saying the server is going or gone, all
become `503 database_unavailable` (`DatabaseUnavailable`), and the pool throws such a connection
away. Only the two asyncpg errors about the arguments we passed (`DataError`, a client
configuration error, both raised before anything is sent) stay internal errors: they are bugs,
and the connection is still fine.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from baas.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidValue,
    ServiceUnavailable,
)

RULE_DENIED = "BA403"  # raised by baas.check_rule() (system migration 0002)
RELATION_HIDDEN = "BA404"  # raised by baas.check_relation() (system migration 0011)


class DatabaseError(ApiError):
    """A PostgreSQL error translated to an API error; keeps what PostgreSQL named."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str = "",
        constraint: str = "",
        column: str = "",
        table: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.sqlstate = sqlstate
        self.constraint = constraint
        self.column = column
        self.table = table


class UniqueViolation(DatabaseError):
    status, code = 409, "unique_violation"


class ForeignKeyViolation(DatabaseError):
    status, code = 409, "foreign_key_violation"


class NotNullViolation(DatabaseError):
    status, code = 400, "validation_failed"


class CheckViolation(DatabaseError):
    status, code = 400, "validation_failed"


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached, or the connection to it broke mid-way; retry later."""

    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable", **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": "1"})
        super().__init__(message, **kw)


class DatabaseTimeout(ServiceUnavailable):
    """The database did not answer in time (a client-side timeout: the query may still run)."""

    code = "database_timeout"

    def __init__(self, message: str = "the database did not answer in time", **kw: Any) -> None:
        kw.setdefault("headers", {"Retry-After": "1"})
        super().__init__(message, **kw)


class UnexpectedDatabaseError(Exception):
    """Not the client's doing; rendered as a 500 with the request id only."""


# (status, code, message); the message is ours, never PostgreSQL's text.
_BY_SQLSTATE: dict[str, tuple[type[ApiError], str, str]] = {
    "22001": (InvalidValue, "invalid_value", "a value is too long for its field"),
    "22003": (InvalidValue, "invalid_value", "a number is out of range"),
    "22007": (InvalidValue, "invalid_value", "a date or time value is malformed"),
    "22008": (InvalidValue, "invalid_value", "a date or time value is out of range"),
    "22021": (InvalidValue, "invalid_value", "text must not contain NUL bytes"),
    "22P02": (InvalidValue, "invalid_value", "a value has the wrong format for its field"),
    "22P05": (InvalidValue, "invalid_value", "JSON text must not contain \\u0000"),
    "2201B": (InvalidValue, "invalid_value", "invalid regular expression"),
    "54000": (BadRequest, "too_complex", "the request is too large or complex"),
    "54001": (BadRequest, "too_complex", "the request is nested too deeply"),
    "40001": (Conflict, "write_conflict", "a concurrent write conflicted with this one; retry"),
    "40P01": (Conflict, "write_conflict", "a concurrent write conflicted with this one; retry"),
    "55P03": (Conflict, "locked", "the data is locked by another operation; retry"),
    "57014": (ServiceUnavailable, "statement_timeout", "the query took too long"),
    "53300": (ServiceUnavailable, "database_busy", "the database has no free connections"),
    "57P01": (DatabaseUnavailable, "database_unavailable", "the database is shutting down"),
    "57P02": (DatabaseUnavailable, "database_unavailable", "the database is recovering"),
    "57P03": (DatabaseUnavailable, "database_unavailable", "the database is starting up"),
    "42P01": (ServiceUnavailable, "schema_changed", "the schema changed during the request; retry"),
    "42703": (ServiceUnavailable, "schema_changed", "the schema changed during the request; retry"),
}


def translate(exc: BaseException) -> ApiError | UnexpectedDatabaseError:
    """Map an asyncpg/OS error to an ApiError (or mark it unexpected)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        return _from_postgres(exc)
    if isinstance(exc, TimeoutError):
        return DatabaseTimeout()
    if connection_failed(exc):
        return DatabaseUnavailable()
    return UnexpectedDatabaseError(repr(exc))


# Errors about what we asked asyncpg to send: the connection is fine, the caller has a bug.
_CALLER_ERRORS = (asyncpg_base.DataError, asyncpg_base.ClientConfigurationError)
_DRIVER_FAILURES = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_CONNECTION_GONE = ("08", "57P01", "57P02", "57P03")  # SQLSTATEs: the session is over


def connection_failed(exc: BaseException) -> bool:
    """True if `exc` means the connection it came from can no longer be trusted: a driver
    failure, a lost socket, or the server ending the session (shutdown, crash, restart)."""
    if isinstance(exc, (DatabaseUnavailable, DatabaseTimeout)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "").startswith(_CONNECTION_GONE)
    return isinstance(exc, _DRIVER_FAILURES) and not isinstance(exc, _CALLER_ERRORS)


def _from_postgres(exc: asyncpg.PostgresError) -> ApiError | UnexpectedDatabaseError:
    state = exc.sqlstate or ""
    names = {
        "sqlstate": state,
        "constraint": getattr(exc, "constraint_name", None) or "",
        "column": getattr(exc, "column_name", None) or "",
        "table": getattr(exc, "table_name", None) or "",
    }
    if state == "23505":
        return UniqueViolation("a record with this value already exists", **names)
    if state == "23503":
        return ForeignKeyViolation("a related record is missing or still referenced", **names)
    if state == RELATION_HIDDEN:  # a target the caller may not view: as if it were missing
        return ForeignKeyViolation("a related record is missing", **names)
    if state == "23502":
        return NotNullViolation("a required value is missing", **names)
    if state == "23514":
        return CheckViolation("a value is not allowed", **names)
    if state == RULE_DENIED:
        return Forbidden(
            "the record would not satisfy the collection's rule for this operation",
            code="rule_denied",
        )
    if state in _BY_SQLSTATE:
        cls, code, message = _BY_SQLSTATE[state]
        headers = {"Retry-After": "1"} if issubclass(cls, ServiceUnavailable) else None
        return cls(message, code=code, headers=headers)
    if state.startswith("22"):  # any other data exception: a value PostgreSQL cannot take
        return InvalidValue("a value is not acceptable to the database", code="invalid_value")
    if state.startswith("08"):
        return DatabaseUnavailable()
    return UnexpectedDatabaseError(f"{type(exc).__name__} {state}: {exc}")
