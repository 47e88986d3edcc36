"""The built-in `users` collection: the auth fields every app gets, plus whatever it adds.

Every schema has `users`. Its system fields (email, password_hash, verified, disabled, anonymous,
last_sign_in) are written by the auth API only: the records API never accepts them and never
returns the hidden ones, and no rule or filter may read `password_hash`. The others (`verified`,
`disabled`, `anonymous`) are private: shown only to the account itself and to admins, unless the
schema file shares one (`verified: {private: false}`). `name` and `avatar` are
ordinary fields a schema file may redefine. A schema file may add fields, indexes and rules; with
no `rules` key, users list, view and update only their own record and anyone may sign up (the
create rule governs sign-up: null closes it, an expression may test `body.email`).
"""

from __future__ import annotations

from dataclasses import replace

from baas.schema.emails import MAX_ADDRESS
from baas.schema.models import Collection, Default, Field, Rules

AUTH_COLLECTION = "users"
MAX_EMAIL_LENGTH = MAX_ADDRESS
SECRET_FIELDS = frozenset({"password_hash"})  # never readable, not even by rules


def _account_flag(name: str) -> Field:
    """A system boolean of an account, private to the account itself and admins."""
    return Field(
        name=name, type="bool", nullable=False, default=Default(False), system=True, private=True
    )


SYSTEM_FIELDS: tuple[Field, ...] = (
    Field(name="email", type="email", unique=True, hidden=True, system=True, max=MAX_EMAIL_LENGTH),
    Field(name="password_hash", type="text", hidden=True, system=True),
    *(_account_flag(name) for name in ("verified", "disabled", "anonymous")),
    Field(name="last_sign_in", type="datetime", hidden=True, system=True),
)
DEFAULT_FIELDS: tuple[Field, ...] = (
    Field(name="name", type="text", max=200),
    Field(name="avatar", type="file", mime_types=("image/*",), max_size=5_000_000),
)
SYSTEM_NAMES = frozenset(f.name for f in SYSTEM_FIELDS)
# The system fields a schema file may share with other users (`verified: {private: false}`).
SHAREABLE = frozenset(f.name for f in SYSTEM_FIELDS if f.private)
# Keys the auth API adds to a users record in its own views (/api/auth/me, the admin API): a
# field of that name would be shadowed there.
VIEW_KEYS = frozenset({"has_password", "mfa_enabled", "providers", "active_sessions"})
DEFAULT_RULES = Rules(list="id = auth.id", view="id = auth.id", create="", update="id = auth.id")


def default_users() -> Collection:
    return Collection(
        name=AUTH_COLLECTION, fields=(*SYSTEM_FIELDS, *DEFAULT_FIELDS), rules=DEFAULT_RULES
    )


def with_built_ins(
    users: Collection, rules: Rules | None, private: dict[str, bool] | None = None
) -> Collection:
    """A declared `users` collection: the system fields (with the `private` choices the file
    made), `name`/`avatar` unless redefined, then the app's own fields; default rules when none
    were declared."""
    declared = {f.name for f in users.fields}
    defaults = tuple(f for f in DEFAULT_FIELDS if f.name not in declared)
    return replace(
        users,
        fields=(*system_fields(private or {}), *defaults, *users.fields),
        rules=DEFAULT_RULES if rules is None else rules,
    )


def system_fields(private: dict[str, bool], ids: dict[str, str] | None = None) -> tuple[Field, ...]:
    """The built-in fields, with `private` changed where asked (and their stored ids)."""
    out = []
    for f in SYSTEM_FIELDS:
        changes: dict[str, object] = {}
        if f.name in private and f.name in SHAREABLE:
            changes["private"] = private[f.name]
        if ids and f.name in ids:
            changes["id"] = ids[f.name]
        out.append(replace(f, **changes) if changes else f)  # type: ignore[arg-type]
    return tuple(out)


def shared_choices(users: Collection) -> dict[str, bool]:
    """The system fields whose `private` differs from the built-in: what a schema file says."""
    built_in = {f.name: f.private for f in SYSTEM_FIELDS}
    return {
        f.name: f.private
        for f in users.fields
        if f.system and f.name in SHAREABLE and f.private != built_in[f.name]
    }


def declared_fields(users: Collection) -> tuple[Field, ...]:
    """The fields a schema file lists for `users`: not the system ones, nor unchanged defaults."""
    return tuple(f for f in users.fields if not f.system and not _is_default(f))


def _is_default(f: Field) -> bool:
    return any(replace(d, id=f.id) == f for d in DEFAULT_FIELDS)
