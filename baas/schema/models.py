"""Collections as data: the frozen model every other layer reads the schema from.

A `Schema` holds `Collection`s, each with `Field`s and `Index`es. Collections and fields carry a
stable internal `id` (assigned when first applied) that names their database objects (constraints,
indexes, triggers), so renaming a collection or field renames only its table or column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYSTEM_FIELDS = ("id", "created", "updated")
RULE_OPERATIONS = ("list", "view", "create", "update", "delete")
ON_DELETE = ("cascade", "set_null", "restrict")
TABLE_SCHEMA = "public"  # collections are tables here; system tables live in `baas`


@dataclass(frozen=True)
class Default:
    """A declared default value; `now=True` for the special `now` of datetime/date fields."""

    value: Any
    now: bool = False

    @property
    def is_now(self) -> bool:
        return self.now


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    id: str = ""
    required: bool = False
    nullable: bool = True
    default: Default | None = None
    unique: bool = False
    hidden: bool = False
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    values: tuple[str, ...] = ()
    multiple: bool = False
    collection: str | None = None
    on_delete: str | None = None
    max_size: int | None = None
    mime_types: tuple[str, ...] = ()
    protected: bool = False
    serve_inline: bool = False  # HTML/SVG/XML shown inline (still sandboxed), not as attachments
    thumbs: tuple[str, ...] = ()
    system: bool = False  # built in (users' auth fields): written by baas, not by clients
    private: bool = False  # users only: shown to the account itself and admins, nobody else
    renamed_from: str | None = field(default=None, compare=False)

    @property
    def not_null(self) -> bool:
        """Whether the column is NOT NULL (multi-valued fields are never null, only empty)."""
        return self.required or not self.nullable or self.multiple

    @property
    def is_relation(self) -> bool:
        return self.type == "relation"


@dataclass(frozen=True)
class Index:
    fields: tuple[str, ...]
    unique: bool = False
    id: str = ""


@dataclass(frozen=True)
class Rules:
    """Who may do what: None = locked (service keys and superusers only), "" = anyone,
    otherwise a condition in the filter language (with `auth.*`, and `body.*` for writes)."""

    list: str | None = None
    view: str | None = None
    create: str | None = None
    update: str | None = None
    delete: str | None = None

    def for_operation(self, operation: str) -> str | None:
        rule: str | None = getattr(self, operation)
        return rule


@dataclass(frozen=True)
class PushTrigger:
    """Push a notification when a record is created, or updated so that it matches `filter`, to
    the users a relation field names; texts are jinja2 templates over the record."""

    on: str  # create | update
    to: str  # a relation field to users (one or many)
    title: str = ""
    body: str = ""
    filter: str | None = None
    data: tuple[tuple[str, str], ...] = ()
    sound: str | None = None
    thread: str | None = None
    collapse_key: str | None = None
    priority: str = "high"


@dataclass(frozen=True)
class Collection:
    name: str
    fields: tuple[Field, ...]
    indexes: tuple[Index, ...] = ()
    id: str = ""
    renamed_from: str | None = field(default=None, compare=False)
    rules: Rules = Rules()
    search: tuple[str, ...] = ()  # text fields searched by `search=`, with a GIN index
    search_language: str = "simple"
    push: tuple[PushTrigger, ...] = ()

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Schema:
    collections: tuple[Collection, ...] = ()
    version: int = 0

    def collection(self, name: str) -> Collection | None:
        for c in self.collections:
            if c.name == name:
                return c
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.collections)
