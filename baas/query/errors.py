"""Errors of the filter language: what is wrong, and where (1-based line and column)."""

from __future__ import annotations

from typing import Any


class FilterError(ValueError):
    """The filter cannot be accepted; `position` is (line, column) when known."""

    def __init__(self, message: str, position: tuple[int, int] | None = None) -> None:
        where = f" (line {position[0]}, column {position[1]})" if position else ""
        super().__init__(message + where)
        self.reason = message
        self.position = position


CALLED = "called"  # a call's meta: (first, last) offsets of its name in the source text


def position_at(text: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of a 0-based offset into `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class NameProblem(ValueError):
    """A resolver cannot resolve a name (unknown, hidden, or not allowed here)."""


def position_of(node: Any) -> tuple[int, int] | None:
    """The position of the first token under `node` that sqlglot recorded one for."""
    for candidate in node.walk() if hasattr(node, "walk") else ():
        meta = getattr(candidate, "meta", None) or {}
        if {"line", "col", "start", "end"} <= meta.keys():
            # sqlglot records the column where the token ends; step back to where it starts
            return int(meta["line"]), max(int(meta["col"]) - (meta["end"] - meta["start"]), 1)
    return None
