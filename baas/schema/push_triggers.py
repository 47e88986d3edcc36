"""The `push:` list of a collection in the schema file: notifications sent when records are
written, parsed and written back here.

    messages:
      fields: {recipient: {type: relation, collection: users}, text: text, ...}
      push:
        - on: create                       # or update (fires when an update makes it match)
          to: recipient                    # a relation field to users, single or multiple
          filter: "text != ''"             # optional, in the filter language
          title: "New message"             # jinja2 over `record` (sandboxed)
          body: "{{ record.text | truncate(80) }}"
          data: {chat: "{{ record.chat }}"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from baas.schema.models import Field, PushTrigger

MAX_TRIGGERS = 10
MAX_TEMPLATE = 2000
MAX_DATA_KEYS = 20
_KEYS = {
    "on",
    "to",
    "filter",
    "title",
    "body",
    "data",
    "sound",
    "thread",
    "collapse_key",
    "priority",
}
_TEMPLATED = ("title", "body", "sound", "thread", "collapse_key")
_SYNTAX = SandboxedEnvironment()


class Problems(Protocol):
    items: list[str]

    def add(self, path: str, message: str) -> None: ...


def parse_push(
    raw: Any, fields: Mapping[str, Field], users: str, path: str, problems: Problems
) -> tuple[PushTrigger, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_TRIGGERS:
        problems.add(path, f"must be a list of at most {MAX_TRIGGERS} triggers")
        return ()
    out = []
    for i, entry in enumerate(raw):
        trigger = _trigger(entry, fields, users, f"{path}[{i}]", problems)
        if trigger is not None:
            out.append(trigger)
    return tuple(out)


def _trigger(
    entry: Any, fields: Mapping[str, Field], users: str, path: str, problems: Problems
) -> PushTrigger | None:
    if not isinstance(entry, Mapping):
        problems.add(path, "must be a mapping with on, to, title and/or body")
        return None
    before = len(problems.items)
    for key in entry:
        if key not in _KEYS:
            problems.add(f"{path}.{key}", f"unknown key; one of: {', '.join(sorted(_KEYS))}")
    if entry.get("on") not in ("create", "update"):
        problems.add(f"{path}.on", "create or update")
    name = entry.get("to")
    to = fields.get(name) if isinstance(name, str) else None
    if to is None or to.type != "relation" or to.collection != users:
        problems.add(f"{path}.to", f"the name of a relation field to {users}")
    texts: dict[str, Any] = {k: entry[k] for k in _TEMPLATED if entry.get(k) is not None}
    for key, text in texts.items():
        _template(text, f"{path}.{key}", problems)
    if not (texts.get("title") or texts.get("body")):
        problems.add(f"{path}.title", "a trigger needs a title or a body")
    data = _data(entry.get("data"), f"{path}.data", problems)
    text = entry.get("filter")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEMPLATE):
        problems.add(f"{path}.filter", "a filter expression")
    if entry.get("priority", "high") not in ("high", "normal"):
        problems.add(f"{path}.priority", "high or normal")
    if len(problems.items) != before:
        return None
    return PushTrigger(
        on=entry["on"],
        to=entry["to"],
        filter=text,
        data=data,
        priority=entry.get("priority", "high"),
        **texts,
    )


def _template(text: Any, path: str, problems: Problems) -> None:
    if not isinstance(text, str) or len(text) > MAX_TEMPLATE:
        problems.add(path, f"a template of at most {MAX_TEMPLATE} characters")
        return
    try:
        _SYNTAX.parse(text)
    except TemplateSyntaxError as exc:
        problems.add(path, f"template syntax error on line {exc.lineno}: {exc.message}")


def _data(raw: Any, path: str, problems: Problems) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or len(raw) > MAX_DATA_KEYS or "aps" in raw:
        problems.add(path, f"a mapping of at most {MAX_DATA_KEYS} key -> template (not 'aps')")
        return ()
    for key, text in raw.items():
        _template(text, f"{path}.{key}", problems)
    return tuple((str(k), str(v)) for k, v in raw.items())


def push_doc(triggers: tuple[PushTrigger, ...]) -> list[dict[str, Any]]:
    out = []
    for t in triggers:
        doc: dict[str, Any] = {"on": t.on, "to": t.to}
        if t.filter is not None:
            doc["filter"] = t.filter
        for key in _TEMPLATED:
            if getattr(t, key):
                doc[key] = getattr(t, key)
        if t.data:
            doc["data"] = dict(t.data)
        if t.priority != "high":
            doc["priority"] = t.priority
        out.append(doc)
    return out


JSONSCHEMA: dict[str, Any] = {
    "type": ["array", "null"],
    "maxItems": MAX_TRIGGERS,
    "description": "Push notifications sent when records are created or updated.",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["on", "to"],
        "properties": {
            "on": {"enum": ["create", "update"]},
            "to": {"type": "string", "description": "A relation field to users."},
            "filter": {"type": "string", "maxLength": MAX_TEMPLATE},
            **{k: {"type": "string", "maxLength": MAX_TEMPLATE} for k in _TEMPLATED},
            "data": {
                "type": "object",
                "maxProperties": MAX_DATA_KEYS,
                "additionalProperties": {"type": "string"},
            },
            "priority": {"enum": ["high", "normal"]},
        },
    },
}
