"""The schema cache: the live schema of this process, reloaded whenever any instance changes it.

Other layers read collections from here (no database round trip) and memoise what they compile
from the schema (SQL text, OpenAPI) with `memo`, which is emptied on every reload.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from baas.schema.models import Collection, Schema
from baas.schema.names import constraint_name

log = logging.getLogger("baas.schema")
T = TypeVar("T")
LRU_SIZE = 2048  # compiled statements kept per process (client-chosen shapes)


class SchemaCache:
    def __init__(self, schema: Schema | None = None) -> None:
        self._memo: dict[Any, Any] = {}
        self._lru: OrderedDict[Any, Any] = OrderedDict()
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
        self._lru = OrderedDict()

    def collection(self, name: str) -> Collection | None:
        return self._by_name.get(name)

    def constraint(self, name: str) -> tuple[Collection, tuple[str, ...]] | None:
        """The collection and field names a constraint or index enforces."""
        return self._constraints.get(name)

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """`build()` once per schema version and key (for a fixed set of keys)."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memo[key] = build()
            return value

    def lru(self, key: Any, build: Callable[[], T]) -> T:
        """Like `memo`, for keys clients choose (filters, sorts): at most LRU_SIZE are kept."""
        lru = self._lru
        try:
            value = lru[key]
        except KeyError:
            value = lru[key] = build()
            if len(lru) > LRU_SIZE:
                lru.popitem(last=False)
            return value
        lru.move_to_end(key)
        return value  # type: ignore[no-any-return]


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
