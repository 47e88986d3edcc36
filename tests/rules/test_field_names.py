"""Fields named like the rule scopes: a text field may be called `body` or `auth` (the schema
forbids those names only for relation and json fields, whose paths would be ambiguous), and then
`body` alone is that field, while `body.<field>` is still the incoming value."""

from __future__ import annotations

import pytest
from sqlglot import exp

from baas.db.sqltree import Params
from baas.query import QueryLimits
from baas.rules import engine
from baas.rules.resolver import pg_type
from baas.schema.diff import plan
from baas.schema.document import parse_document
from baas.schema.models import Schema
from tests.conftest import apply_schema

FIELDS = {"body": "text", "auth": "text"}
RULES = {"list": "body != ''", "create": "body.body != '' AND auth = 'x'"}


def client_filter(text: str) -> str:
    schema = plan(Schema(), parse_document({"collections": {"notes": {"fields": FIELDS}}})).schema
    c = schema.collection("notes")
    assert c is not None
    p = Params()
    auth_id = exp.Cast(this=p.arg("auth.id"), to=pg_type("uuid"))
    node = engine.filter_condition(
        schema, c, text, "rec", p, QueryLimits(), auth_id=auth_id, admin=False
    )
    return p.compile(node).sql


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("body = 'x'", '"rec"."body" = CAST($1 AS TEXT)'),
        ("body ILIKE '%x%'", '"rec"."body" ILIKE CAST($1 AS TEXT)'),
        ("auth = 'x'", '"rec"."auth" = CAST($1 AS TEXT)'),
        ("auth = 'x' AND auth.id IS NOT NULL", '"rec"."auth" = CAST('),
    ],
)
def test_a_field_named_body_or_auth_is_that_field(text: str, fragment: str) -> None:
    assert fragment in client_filter(text)


async def test_rules_may_name_such_fields(admin) -> None:
    await apply_schema(admin, {"collections": {"notes": {"fields": FIELDS, "rules": RULES}}})
    url = "/api/collections/notes/records"
    created = await admin.post(url, json={"body": "hi", "auth": "x"})
    assert created.status_code == 201, created.text
    response = await admin.get(url, params={"filter": "body = 'hi' AND auth = 'x'"})
    assert [r["id"] for r in response.json()["items"]] == [created.json()["id"]]
