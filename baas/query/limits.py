"""The named limits of the filter language: each bounds a cost a client controls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueryLimits:
    max_length: int = 4096  # characters of one filter
    max_depth: int = 16  # nested parentheses and brackets
    max_nodes: int = 200  # operators, names and values in one filter
    max_in_list: int = 100  # values in one IN (...) list
    max_relation_depth: int = 3  # relation hops in one path (author.team.owner)
    max_json_path: int = 8  # keys in one path into a json field
