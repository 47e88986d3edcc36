"""Reading and writing schema files (YAML) without YAML 1.1's surprises.

Only `true`/`false` are booleans (a field called `on` or `no` stays a name), a key repeated in the
same mapping is an error rather than silently winning, and files are written in declaration order.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from baas.schema.document import SchemaError

HEADER = "# yaml-language-server: $schema=./baas.schema.json\n"


class _Loader(yaml.SafeLoader):
    pass


# Replace YAML 1.1's bool resolver (yes/no/on/off) with YAML 1.2's (true/false only).
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise SchemaError([f"line {line}: {key!r} is defined twice in the same mapping"])
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


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


def _short_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, (str, int, float, bool)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _short_list)


def dump_yaml(document: Any) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body
