"""Names: which collection and field names are valid, and the names of derived database objects.

User names become table and column names, so they follow PostgreSQL's identifier rules, checked in
bytes (PostgreSQL silently truncates past 63 bytes, so two long names would collide). Constraints,
indexes and triggers are named from the stable internal ids, never from user names.
"""

from __future__ import annotations

import re
import secrets

MAX_IDENTIFIER_BYTES = 63
_NAME = re.compile(r"[a-z][a-z0-9_]*")

# PostgreSQL reserved and type/function-name keywords (pg_get_keywords() catcode R and T), plus
# words of the filter language; quoting would make them legal SQL, but not readable filters.
RESERVED = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between binary both
    case cast check collate collation column concurrently constraint contains create cross
    current_catalog current_date current_role current_schema current_time current_timestamp
    current_user default deferrable desc distinct do else end except false fetch for foreign
    freeze from full grant group having ilike in initially inner intersect into is isnull
    join lateral leading left like limit localtime localtimestamp natural not notnull null
    offset on only or order outer overlaps placing primary references returning right select
    session_user similar some symmetric system_user table tablesample then to trailing true
    union unique user using variadic verbose when where window with
    """.split()  # noqa: SIM905
)
# Columns every PostgreSQL table has; a field may not shadow them.
SYSTEM_COLUMNS = frozenset({"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
# Keys the API itself adds to records (`expand` holds the expanded relations); a field of that
# name would be shadowed in every answer.
RECORD_KEYS = frozenset({"expand"})


def name_problem(name: object, kind: str) -> str | None:
    """Why `name` cannot name a collection or field, or None if it can."""
    if not isinstance(name, str) or not name:
        return f"{kind} name must be a non-empty string"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return f"{kind} name {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes"
    if not _NAME.fullmatch(name):
        return (
            f"{kind} name {name!r} must start with a lowercase letter and contain only "
            "lowercase letters, digits and underscores"
        )
    if name in RESERVED:
        return f"{kind} name {name!r} is a reserved word"
    if name.startswith("pg_"):
        return f"{kind} name {name!r} must not start with pg_"
    if name in SYSTEM_COLUMNS:
        return f"{kind} name {name!r} is a PostgreSQL system column"
    return None


def new_id() -> str:
    """A short random id for a collection, field or index (10 lowercase base32 characters)."""
    return secrets.token_hex(5)


def constraint_name(owner_id: str, kind: str) -> str:
    """Name of a derived object: `bs_<id>_<kind>`, e.g. bs_3f9a1c0b2d_fk."""
    return f"bs_{owner_id}_{kind}"
