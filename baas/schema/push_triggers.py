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

`to` may also be a path through relations (`post.author`: the users the last relation names, of
the record the ones before lead to): every relation before the last names one record, the last
one is to users (single or multiple), and a path goes through at most as many relations as a
filter's may (`recipient_path`, checked against the whole schema when it is applied).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from baas.schema.models import Collection, Field, PushTrigger, Schema

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
    problem = _first_hop_problem(entry.get("to"), fields, users)
    if problem is not None:
        problems.add(f"{path}.to", problem)
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


class RecipientPathError(ValueError):
    """A trigger's `to` does not lead to users; the message says why."""


def _first_hop_problem(to: Any, fields: Mapping[str, Field], users: str) -> str | None:
    """What is wrong with the first field of `to`, in the trigger's own collection."""
    expected = f"the name of a relation field to {users}, or a path to one (post.author)"
    if not isinstance(to, str) or not to:
        return f"missing: {expected}"
    names = to.split(".")
    f = fields.get(names[0])
    try:
        _hop(f, names, 0, users)
    except RecipientPathError as exc:
        return str(exc)
    return None


def _hop(f: Field | None, names: list[str], i: int, users: str) -> None:
    """Raise RecipientPathError unless `f` (the field of names[i]) may be hop i of the path."""
    where = ".".join(names[: i + 1])
    last = i == len(names) - 1
    if f is None:
        raise RecipientPathError(f"{where}: no such field")
    if f.type != "relation":
        raise RecipientPathError(f"{where} is a {f.type} field: the path needs relations")
    if not last and f.multiple:
        raise RecipientPathError(
            f"{where} holds several records: only the last relation of the path may"
        )
    if last and f.collection != users:
        raise RecipientPathError(
            f"{where} is a relation to {f.collection}: the path must end with one to {users}"
        )


def recipient_path(
    schema: Schema, c: Collection, to: str, max_relations: int, users: str
) -> tuple[Field, ...]:
    """The relation fields `to` goes through from `c`, the last one to users; at most
    `max_relations` before the last (a filter's limit). RecipientPathError says what is wrong."""
    names = to.split(".")
    if len(names) - 1 > max_relations:
        raise RecipientPathError(
            f"{to} goes through {len(names) - 1} relations before its last field: at most"
            f" {max_relations}, as in filters"
        )
    hops: list[Field] = []
    current: Collection | None = c
    for i, name in enumerate(names):
        if current is None:
            raise RecipientPathError(f"{'.'.join(names[:i])} points to a missing collection")
        f = current.field(name)
        _hop(f, names, i, users)
        assert f is not None
        hops.append(f)
        current = schema.collection(f.collection or "")
    return tuple(hops)


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
            "to": {
                "type": "string",
                "description": "A relation field to users, or a path through single relations"
                " to one (post.author).",
            },
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
