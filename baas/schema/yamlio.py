"""Reading and writing schema files (YAML) without YAML 1.1's surprises.

Scalars follow YAML 1.2: only `true`/`false` are booleans (a field called `on` or `no` stays a
name) and dates stay strings; a key repeated in the same mapping is an error rather than silently
winning, and files are written in declaration order. Rewriting a file someone wrote keeps their
text (comments, short forms, key order) for every collection that did not change.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml

from baas.schema.document import SchemaError, parse_document

HEADER = "# yaml-language-server: $schema=./baas.schema.json\n"


# YAML 1.2 core schema scalars. YAML 1.1 (PyYAML's default) also reads yes/no/on/off as booleans,
# 2026-01-31 as a date object (which a date default then rejects), 1:30 as 90 and 0755 as octal.
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_SCALARS = (
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
)
_REPLACED = {tag for tag, _, _ in _SCALARS} | {"tag:yaml.org,2002:timestamp"}


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _SCALARS:
    _Loader.add_implicit_resolver(_tag, _regexp, _first)


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    assert isinstance(text, str)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)  # 0755 is 755, as in YAML 1.2


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            continue  # construct_mapping reports it, with its position
        if key in seen:
            line = key_node.start_mark.line + 1
            raise SchemaError([f"line {line}: {key!r} is defined twice in the same mapping"])
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SchemaError([f"{where}not valid YAML: {problem}"]) from None


class _Dumper(yaml.SafeDumper):
    pass


# Quote every string that either YAML 1.1 or 1.2 would read as something else ('on', '1e3').
for _tag, _regexp, _first in _SCALARS:
    _Dumper.add_implicit_resolver(_tag, _regexp, _first)


def _short_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, (str, int, float, bool)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _short_list)


def dump_yaml(document: Any) -> str:
    return HEADER + _dump_body(document)


def _dump_body(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def rewrite_yaml(old_text: str, document: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """`document` as a schema file that keeps `old_text`'s own lines for each collection it
    declares the same way, and the names of those collections. A file whose collections are not
    a block mapping (or that does not parse) is replaced whole."""
    whole = dump_yaml(document)
    wanted = document.get("collections") or {}
    try:
        old_schema = parse_document(load_yaml(old_text))
        new_schema = parse_document(document)
        layout = _collection_layout(old_text)
    except (SchemaError, yaml.YAMLError):
        return whole, ()
    if layout is None or not wanted:
        return whole, ()
    lines = old_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start, end, indent, spans = layout
    out, kept = lines[:start], []
    for name, definition in wanted.items():
        span = spans.get(name)
        if span is not None and old_schema.collection(name) == new_schema.collection(name):
            out.extend(lines[span[0] : span[1]])
            kept.append(name)
        else:
            block = _dump_body({name: definition})
            out.extend(" " * indent + line for line in block.splitlines(keepends=True))
    out.extend(lines[end:])
    text = "".join(out)
    try:  # a layout this does not foresee must not change what the file means
        same = parse_document(load_yaml(text)) == new_schema
    except SchemaError:
        same = False
    return (text, tuple(kept)) if same else (whole, ())


_Span = tuple[int, int]


def _comment_within(line: str, column: int) -> bool:
    """A comment line indented no deeper than `column` (deeper ones belong to the block above)."""
    stripped = line.lstrip()
    return stripped.startswith("#") and len(line) - len(stripped) <= column


def _trailer(line: str, indent: int) -> bool:
    return not line.strip() or (indent > 0 and _comment_within(line, indent - 1))


def _collection_layout(text: str) -> tuple[int, int, int, dict[str, _Span]] | None:
    """Where the `collections` block mapping's entries are: the first entry's line, the line
    after the last, the entries' indentation, and each entry's lines (with the comment lines
    right above its name)."""
    root = yaml.compose(text, Loader=_Loader)
    if not isinstance(root, yaml.MappingNode):
        return None
    block = next(
        (value for key, value in root.value if key.value == "collections"),
        None,
    )
    if not isinstance(block, yaml.MappingNode) or block.flow_style or not block.value:
        return None
    lines = text.splitlines()
    starts: list[int] = []
    for key, _ in block.value:
        first, column = key.start_mark.line, key.start_mark.column
        while starts and first - 1 > starts[-1] and _comment_within(lines[first - 1], column):
            first -= 1
        starts.append(first)
    end = block.end_mark.line + (0 if block.end_mark.column == 0 else 1)
    indent = block.value[0][0].start_mark.column
    while end - 1 > starts[-1] and _trailer(lines[end - 1], indent):
        end -= 1  # blank lines and outdented comments after the last entry stay after it
    bounds = [*starts[1:], end]
    entries = zip(block.value, starts, bounds, strict=True)
    spans = {str(key.value): (s, e) for (key, _), s, e in entries}
    return starts[0], end, indent, spans
