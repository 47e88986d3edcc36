"""Wide collections: records with more fields than a PostgreSQL function takes arguments (100,
so more than 50 name/value pairs for one json_build_object) are read, listed, written, searched
and expanded (one, many, nested) like narrow ones; the users collection too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import apply_schema, as_user

WIDTH = 70  # fields of each type below, cycled: 140 arguments for the record's own fields
TYPES = ("text", "integer", "datetime", "bool", "json", "date", "number", "email")
SAMPLE = {
    "text": "t",
    "integer": 7,
    "datetime": "2026-01-02T03:04:05.000006Z",
    "bool": True,
    "json": {"k": [1, 2]},
    "date": "2026-01-02",
    "number": 1.5,
    "email": "x@example.com",
}


def wide_fields(prefix: str) -> dict[str, Any]:
    fields: dict[str, Any] = {f"{prefix}{i:02d}": TYPES[i % len(TYPES)] for i in range(WIDTH)}
    fields[f"{prefix}_file"] = "file"
    fields[f"{prefix}_secret"] = {"type": "text", "hidden": True}
    return fields


def wide_values(prefix: str) -> dict[str, Any]:
    return {f"{prefix}{i:02d}": SAMPLE[TYPES[i % len(TYPES)]] for i in range(WIDTH)}


OPEN = {"list": "", "view": "", "create": "", "update": ""}
SCHEMA = {
    "collections": {
        "users": {"fields": wide_fields("u"), "rules": {"list": "", "view": ""}},
        "wide": {
            "fields": {
                **wide_fields("w"),
                "owner": {"type": "relation", "collection": "users"},
                "owners": {"type": "relation", "collection": "users", "multiple": True},
            },
            "search": ["w00", "w08"],
            "rules": OPEN,
        },
        "notes": {
            "fields": {
                "wide": {"type": "relation", "collection": "wide"},
                "wides": {"type": "relation", "collection": "wide", "multiple": True},
            },
            "rules": OPEN,
        },
    }
}
WIDE = "/api/collections/wide/records"
NOTES = "/api/collections/notes/records"


@pytest.fixture
async def records(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    await apply_schema(admin, SCHEMA)
    body = {"email": "wide@example.com", "password": "correct horse battery", **wide_values("u")}
    user = await admin.post("/api/admin/users", json=body)
    assert user.status_code == 201, user.text
    uid = user.json()["id"]
    wide = await admin.post(
        WIDE, json={**wide_values("w"), "w_secret": "s", "owner": uid, "owners": [uid]}
    )
    assert wide.status_code == 201, wide.text
    note = await admin.post(NOTES, json={"wide": wide.json()["id"], "wides": [wide.json()["id"]]})
    assert note.status_code == 201, note.text
    return {"user": user.json(), "wide": wide.json(), "note": note.json()}


async def _get(client: httpx.AsyncClient, url: str, **params: str) -> Any:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_wide_record_reads_as_written(
    anon: httpx.AsyncClient, records: dict[str, dict[str, Any]]
) -> None:
    wide = records["wide"]
    assert {k: wide[k] for k in wide_values("w")} == wide_values("w")
    assert "w_secret" not in wide
    one = await _get(anon, f"{WIDE}/{wide['id']}")
    assert one == wide
    listed = await _get(anon, WIDE, search="t")
    assert listed["items"] == [wide]


async def test_wide_records_expand_one_many_and_nested(
    anon: httpx.AsyncClient, records: dict[str, dict[str, Any]]
) -> None:
    user, wide, note = records["user"], records["wide"], records["note"]
    shown_user = await _get(anon, f"/api/collections/users/records/{user['id']}")
    assert {k: shown_user[k] for k in wide_values("u")} == wide_values("u")
    assert (await _get(anon, "/api/collections/users/records"))["items"] == [shown_user]

    got = await _get(anon, f"{WIDE}/{wide['id']}", expand="owner,owners")
    assert got["expand"] == {"owner": shown_user, "owners": [shown_user]}
    listed = await _get(anon, NOTES, expand="wide,wides,wide.owner,wides.owners")
    [item] = listed["items"]
    assert item["id"] == note["id"]
    nested_wide = {**wide, "expand": {"owner": shown_user}}
    assert item["expand"]["wide"] == nested_wide
    assert item["expand"]["wides"] == [{**wide, "expand": {"owners": [shown_user]}}]


async def test_wide_records_are_written(
    admin: httpx.AsyncClient, records: dict[str, dict[str, Any]]
) -> None:
    wide = records["wide"]
    changed = await admin.patch(f"{WIDE}/{wide['id']}", json={"w00": "changed", "w01": 8})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        **wide,
        "w00": "changed",
        "w01": 8,
        "updated": changed.json()["updated"],
    }
    created = await admin.post(NOTES, json={"wide": wide["id"]})
    assert created.status_code == 201, created.text
    got = await _get(admin, f"{NOTES}/{created.json()['id']}", expand="wide")
    assert got["expand"]["wide"] == changed.json()


async def test_a_wide_account_reads_itself(
    anon: httpx.AsyncClient, records: dict[str, dict[str, Any]]
) -> None:
    user = records["user"]
    me = await anon.get("/api/auth/me", headers=as_user(user["id"]))
    assert me.status_code == 200, me.text
    assert {k: me.json()[k] for k in wide_values("u")} == wide_values("u")
