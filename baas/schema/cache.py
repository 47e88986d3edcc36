"""The schema cache: the live schema of this process, reloaded whenever any instance changes it.

Other layers read collections from here (no database round trip) and memoise what they compile
from the schema (SQL text, OpenAPI) with `memo`, which is emptied on every reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from baas.schema.models import Collection, Field, Schema
from baas.schema.names import constraint_name

log = logging.getLogger("baas.schema")
T = TypeVar("T")


class SchemaCache:
    def __init__(self, schema: Schema | None = None) -> None:
        self._memo: dict[Any, Any] = {}
        self._by_name: dict[str, Collection] = {}
        self._constraints: dict[str, tuple[Collection, tuple[str, ...]]] = {}
        self.schema = Schema()
        self.set(schema or Schema())

    @property
    def version(self) -> int:
        return self.schema.version

    def set(self, schema: Schema) -> None:
        """Replace the schema (and forget everything compiled from the old one)."""
        if schema.version != self.schema.version:
            log.info("schema version %s -> %s", self.schema.version, schema.version)
        self.schema = schema
        self._by_name = {c.name: c for c in schema.collections}
        self._constraints = _constraint_map(schema)
        self._memo = {}

    def collection(self, name: str) -> Collection | None:
        return self._by_name.get(name)

    def constraint(self, name: str) -> tuple[Collection, tuple[str, ...]] | None:
        """The collection and field names a constraint or index enforces."""
        return self._constraints.get(name)

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """`build()` once per schema version and key."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memo[key] = build()
            return value


def _constraint_map(schema: Schema) -> dict[str, tuple[Collection, tuple[str, ...]]]:
    out: dict[str, tuple[Collection, tuple[str, ...]]] = {}
    for c in schema.collections:
        for f in c.fields:
            for kind in ("ck", "uq", "fk", "rel", "ix"):
                out[constraint_name(f.id, kind)] = (c, (f.name,))
        for index in c.indexes:
            kind = "uix" if index.unique else "idx"
            out[constraint_name(index.id, kind)] = (c, index.fields)
        out[constraint_name(c.id, "pk")] = (c, ("id",))
    return out


def field_of(c: Collection, name: str) -> Field | None:
    return c.field(name)
