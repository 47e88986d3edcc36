"""Reading and writing schema files (YAML) without YAML 1.1's surprises.

Scalars follow YAML 1.2: only `true`/`false` are booleans (a field called `on` or `no` stays a
name) and dates stay strings; a key repeated in the same mapping is an error rather than silently
winning, and files are written in declaration order.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml

from baas.schema.document import SchemaError

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
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body
