"""File fields over HTTP: multipart uploads on record writes, downloads with the record's view
rule or a file token, ranges and conditional requests, thumbnails, and cleanup."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from typing import Any

import httpx
import jwt
import pytest
from PIL import Image

from baas.context import AppContext
from tests.auth.conftest import sign_up
from tests.conftest import apply_schema

SCHEMA: dict[str, Any] = {
    "collections": {
        "docs": {
            "fields": {
                "title": "text",
                "owner": {"type": "relation", "collection": "users"},
                "views": "integer",
                "public_file": {"type": "file", "max_size": 2_000_000},
                "secret": {"type": "file", "protected": True},
                "photo": {
                    "type": "file",
                    "mime_types": ["image/png", "image/jpeg"],
                    "thumbs": ["50x50", "40x0"],
                    "max_size": 1_000_000,
                },
                "photos": {"type": "file", "multiple": True, "max": 3, "mime_types": ["image/*"]},
                "tiny": {"type": "file", "max_size": 1024},
                "page": {"type": "file", "serve_inline": True},
            },
            "rules": {
                "list": "",
                "view": "owner = auth.id",
                "create": "",
                "update": "",
                "delete": "",
            },
        }
    }
}


def png(width: int = 120, height: int = 80, colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def url(record: dict[str, Any], name: str) -> str:
    return f"/api/files/docs/{record['id']}/{name}"


@pytest.fixture
async def docs(admin: httpx.AsyncClient) -> httpx.AsyncClient:
    await apply_schema(admin, SCHEMA)
    return admin


async def create(
    client: httpx.AsyncClient, files: list[tuple[str, tuple[str, bytes, str]]], **fields: Any
) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    return await client.post("/api/collections/docs/records", data=data, files=files)


async def cleaned(ctx: AppContext) -> None:
    """Run the cleaner until nothing due is left (the background cleaner of this app may hold
    some keys at the same moment: they are skipped, not waited for, by a sweep)."""
    for _ in range(100):
        await ctx.file_cleaner.sweep()
        due = "SELECT count(*) FROM baas.file_cleanup WHERE due <= now()"
        if await ctx.db.fetchval(due) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cleanup list did not empty")


async def stored_keys(ctx: AppContext) -> list[str]:
    return [r["key"] for r in await ctx.db.fetch("SELECT key FROM baas.files ORDER BY key")]


async def test_upload_on_create_and_download_round_trip(docs: httpx.AsyncClient) -> None:
    body = os.urandom(300_000)
    answer = await create(
        docs, [("public_file", ("report 2026.bin", body, "text/plain"))], title="r"
    )
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["title"] == "r"
    name = record["public_file"]
    assert name.startswith("report_2026_") and name.endswith("")  # binary: no extension
    got = await docs.get(url(record, name))
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
    assert got.headers["content-type"] == "application/octet-stream"  # sniffed, not declared
    assert got.headers["content-length"] == str(len(body))
    assert 'filename="report 2026.bin"' in got.headers["content-disposition"]
    assert got.headers["content-disposition"].startswith("inline")
    assert got.headers["etag"]
    assert got.headers["x-content-type-options"] == "nosniff"
    download = await docs.get(url(record, name), params={"download": "true"})
    assert download.headers["content-disposition"].startswith("attachment")
    inline = await docs.get(url(record, name), params={"download": "false"})
    assert inline.headers["content-disposition"].startswith("inline")
    for loose in ("1", "True", "yes", ""):  # booleans are exactly true or false
        refused = await docs.get(url(record, name), params={"download": loose})
        assert refused.status_code == 400, (loose, refused.text)
        error = refused.json()["error"]
        assert (error["code"], error["parameter"], error["value"]) == (
            "invalid_boolean",
            "download",
            loose,
        )


async def test_json_fields_ride_along_as_a_json_part(docs: httpx.AsyncClient) -> None:
    files = [
        ("@json", ("", b'{"title": "t", "views": 7}', "application/json")),
        ("photo", ("p.png", png(), "image/png")),
    ]
    answer = await docs.post("/api/collections/docs/records", files=files)
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert (record["title"], record["views"]) == ("t", 7)
    assert record["photo"].endswith(".png")


async def test_plain_form_fields_take_their_field_types(docs: httpx.AsyncClient) -> None:
    answer = await create(docs, [("photo", ("p.png", png(), "image/png"))], title="x", views=3)
    assert answer.status_code == 201, answer.text
    assert answer.json()["views"] == 3


async def test_html_posing_as_png_is_refused_and_nothing_is_kept(
    docs: httpx.AsyncClient, ctx: AppContext
) -> None:
    html = b"<!doctype html><script>alert(1)</script>" + b" " * 5000
    answer = await create(docs, [("photo", ("cat.png", html, "image/png"))], title="bad")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["fields"]["photo"]["code"] == "file_type_not_allowed"
    assert "text/html" in error["fields"]["photo"]["message"]
    listed = await docs.get("/api/collections/docs/records")
    assert listed.json()["items"] == []
    await cleaned(ctx)
    assert await ctx.db.fetchval("SELECT count(*) FROM baas.file_cleanup") == 0


async def test_size_limit_is_enforced_while_reading(
    docs: httpx.AsyncClient, ctx: AppContext
) -> None:
    answer = await create(docs, [("tiny", ("a.txt", b"x" * 1025, "text/plain"))], title="big")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["tiny"]["code"] == "file_too_large"
    ok = await create(docs, [("tiny", ("a.txt", b"x" * 1024, "text/plain"))], title="fits")
    assert ok.status_code == 201, ok.text
    staged = await ctx.db.fetch("SELECT key, due <= now() AS due FROM baas.file_cleanup")
    assert [r["due"] for r in staged] == [True] * len(staged)  # the refused one: due at once
    await cleaned(ctx)
    assert await ctx.db.fetchval("SELECT count(*) FROM baas.file_cleanup") == 0
    assert len(await stored_keys(ctx)) == 1


async def test_multi_file_field_add_remove_replace(
    docs: httpx.AsyncClient, ctx: AppContext
) -> None:
    first = await create(
        docs,
        [
            ("photos", ("a.png", png(colour="red"), "image/png")),
            ("photos", ("b.png", png(colour="blue"), "image/png")),
        ],
        title="album",
    )
    assert first.status_code == 201, first.text
    record = first.json()
    a, b = record["photos"]
    path = f"/api/collections/docs/records/{record['id']}"
    added = await docs.patch(path, files=[("photos+", ("c.png", png(colour="green"), "image/png"))])
    assert added.status_code == 200, added.text
    assert added.json()["photos"][:2] == [a, b] and len(added.json()["photos"]) == 3
    too_many = await docs.patch(path, files=[("photos+", ("d.png", png(), "image/png"))])
    assert too_many.status_code == 400
    assert too_many.json()["error"]["fields"]["photos"]["code"] == "too_many"
    removed = await docs.patch(path, json={"photos-": [a]})
    assert removed.status_code == 200, removed.text
    assert a not in removed.json()["photos"]
    gone = await docs.get(url(record, a))
    assert gone.status_code == 404
    replaced = await docs.patch(path, files=[("photos", ("e.png", png(), "image/png"))])
    assert len(replaced.json()["photos"]) == 1
    unknown = await docs.patch(path, json={"photos-": ["nope_abcdefghij.png"]})
    assert unknown.status_code == 400
    await cleaned(ctx)
    keys = await stored_keys(ctx)
    assert len(keys) == 1
    for key in keys:
        assert await ctx.storage.size(key) is not None
    assert await ctx.db.fetchval("SELECT count(*) FROM baas.file_cleanup") == 0


async def test_replacing_and_deleting_remove_the_old_objects(
    docs: httpx.AsyncClient, ctx: AppContext
) -> None:
    record = (await create(docs, [("photo", ("p.png", png(), "image/png"))], title="r")).json()
    [old_key] = await stored_keys(ctx)
    path = f"/api/collections/docs/records/{record['id']}"
    thumb = await docs.get(url(record, record["photo"]), params={"thumb": "50x50"})
    assert thumb.status_code == 200
    replaced = await docs.patch(path, files=[("photo", ("q.png", png(colour="blue"), "image/png"))])
    assert replaced.status_code == 200, replaced.text
    await cleaned(ctx)
    assert await ctx.storage.size(old_key) is None
    assert (
        await ctx.storage.size(
            old_key.rpartition("/")[0] + "/thumbs/" + old_key.rpartition("/")[2] + "/50x50"
        )
        is None
    )
    [new_key] = await stored_keys(ctx)
    assert await ctx.storage.size(new_key) is not None
    assert (await docs.delete(path)).status_code == 204
    assert await stored_keys(ctx) == []
    await cleaned(ctx)
    assert await ctx.storage.size(new_key) is None


async def test_clearing_a_field_with_null(docs: httpx.AsyncClient, ctx: AppContext) -> None:
    record = (await create(docs, [("photo", ("p.png", png(), "image/png"))], title="r")).json()
    path = f"/api/collections/docs/records/{record['id']}"
    cleared = await docs.patch(path, json={"photo": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["photo"] is None
    assert await stored_keys(ctx) == []


async def test_protected_files_need_the_view_rule_or_a_file_token(
    docs: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    alice = await sign_up(anon, "alice@example.com")
    bob = await sign_up(anon, "bob@example.com")
    created = await anon.post(  # as alice: a user links only to accounts they may view
        "/api/collections/docs/records",
        headers=alice.headers,
        data={"owner": alice.id, "title": "mine"},
        files=[
            ("secret", ("notes.txt", b"for alice only", "text/plain")),
            ("public_file", ("hello.txt", b"hello", "text/plain")),
        ],
    )
    assert created.status_code == 201, created.text
    record = created.json()
    secret = url(record, record["secret"])
    assert (await anon.get(secret)).status_code == 404
    assert (await anon.get(secret, headers=bob.headers)).status_code == 404
    mine = await anon.get(secret, headers=alice.headers)
    assert mine.status_code == 200 and mine.content == b"for alice only"
    assert mine.headers["content-type"].startswith("text/plain")
    assert "private" in mine.headers["cache-control"]
    assert (await anon.get(url(record, record["public_file"]))).content == b"hello"
    assert (await docs.get(secret)).status_code == 200  # the service key passes every rule

    assert (await anon.post("/api/files/token")).status_code == 401
    issued = await anon.post("/api/files/token", headers=alice.headers)
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert (await anon.get(secret, params={"token": token})).status_code == 200
    bobs = (await anon.post("/api/files/token", headers=bob.headers)).json()["token"]
    assert (await anon.get(secret, params={"token": bobs})).status_code == 404
    forged = await anon.get(secret, params={"token": token[:-4] + "AAAA"})
    assert forged.status_code == 401
    access_as_file_token = await anon.get(secret, params={"token": alice.tokens["access_token"]})
    assert access_as_file_token.status_code == 401  # only file tokens go in URLs
    thumb = await anon.get(secret, params={"thumb": "50x50"})
    assert thumb.status_code == 404  # derived endpoints check the same rule first


async def test_file_tokens_expire_and_end_with_the_session(
    docs: httpx.AsyncClient, anon: httpx.AsyncClient, ctx: AppContext
) -> None:
    alice = await sign_up(anon, "alice@example.com")
    created = await anon.post(
        "/api/collections/docs/records",
        headers=alice.headers,
        data={"owner": alice.id},
        files=[("secret", ("notes.txt", b"for alice only", "text/plain"))],
    )
    assert created.status_code == 201, created.text
    record = created.json()
    secret = url(record, record["secret"])
    claims = jwt.decode(alice.tokens["access_token"], options={"verify_signature": False})
    mine = {"sub": alice.id, "sid": claims["sid"], "role": "user"}
    expired, _ = ctx.signer.sign(mine, -60, "file")  # beyond the clock-skew leeway
    refused = await anon.get(secret, params={"token": expired})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_expired"
    token = (await anon.post("/api/files/token", headers=alice.headers)).json()["token"]
    assert (await anon.get(secret, params={"token": token})).status_code == 200
    signed_out = await anon.post(
        "/api/auth/sign-out",
        headers=alice.headers,
        json={"refresh_token": alice.tokens["refresh_token"]},
    )
    assert signed_out.status_code in (200, 204), signed_out.text
    ended = await anon.get(secret, params={"token": token})
    assert ended.status_code == 401
    assert ended.json()["error"]["code"] == "session_ended"


async def test_ranges_and_conditional_requests(docs: httpx.AsyncClient) -> None:
    body = bytes(range(256)) * 40
    record = (await create(docs, [("public_file", ("r.bin", body, "x/y"))], title="r")).json()
    path = url(record, record["public_file"])
    part = await docs.get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == body[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(body)}"
    tail = await docs.get(path, headers={"Range": "bytes=-5"})
    assert tail.content == body[-5:]
    open_ended = await docs.get(path, headers={"Range": f"bytes={len(body) - 3}-"})
    assert open_ended.content == body[-3:]
    beyond = await docs.get(path, headers={"Range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(body)}"
    several = await docs.get(path, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == body
    etag = part.headers["etag"]
    cached = await docs.get(path, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    since = await docs.get(path, headers={"If-Modified-Since": part.headers["last-modified"]})
    assert since.status_code == 304
    stale = await docs.get(path, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert stale.status_code == 200
    head = await docs.head(path)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(body)) and head.content == b""


async def test_thumbnails_only_for_declared_sizes(docs: httpx.AsyncClient) -> None:
    record = (
        await create(docs, [("photo", ("p.png", png(120, 80), "image/png"))], title="t")
    ).json()
    path = url(record, record["photo"])
    square = await docs.get(path, params={"thumb": "50x50"})
    assert square.status_code == 200, square.text
    assert square.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(square.content)).size == (50, 50)
    again = await docs.get(path, params={"thumb": "50x50"})  # now from the backend
    assert again.content == square.content
    assert again.headers["etag"] != (await docs.get(path)).headers["etag"]
    wide = await docs.get(path, params={"thumb": "40x0"})
    assert Image.open(io.BytesIO(wide.content)).size == (40, 27)
    refused = await docs.get(path, params={"thumb": "300x300"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "thumb_not_allowed"
    unknown = await docs.get(path, params={"size": "1"})
    assert unknown.status_code == 400


async def test_active_content_is_served_as_an_attachment(docs: httpx.AsyncClient) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    record = (
        await create(docs, [("public_file", ("x.svg", svg, "image/svg+xml"))], title="s")
    ).json()
    got = await docs.get(url(record, record["public_file"]))
    assert got.headers["content-type"] == "image/svg+xml"
    assert got.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in got.headers["content-security-policy"]


async def test_a_field_may_serve_active_content_inline_still_sandboxed(
    docs: httpx.AsyncClient,
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>'
    record = (await create(docs, [("page", ("logo.svg", svg, "image/svg+xml"))], title="s")).json()
    got = await docs.get(url(record, record["page"]))
    assert got.content == svg
    assert got.headers["content-disposition"].startswith("inline")
    assert "sandbox" in got.headers["content-security-policy"]
    asked = await docs.get(url(record, record["page"]), params={"download": "true"})
    assert asked.headers["content-disposition"].startswith("attachment")


async def test_traversal_names_are_neutralised(docs: httpx.AsyncClient) -> None:
    answer = await create(
        docs, [("public_file", ("../../etc/passwd", b"root:x:0:0", "text/plain"))], title="t"
    )
    assert answer.status_code == 201, answer.text
    record = answer.json()
    name = record["public_file"]
    assert "/" not in name and ".." not in name and name.startswith("passwd_")
    got = await docs.get(url(record, name))
    assert 'filename="passwd"' in got.headers["content-disposition"]
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e", "x" * 300):
        assert (await docs.get(f"/api/files/docs/{record['id']}/{bad}")).status_code == 404
    assert (await docs.get(f"/api/files/docs/not-a-uuid/{name}")).status_code == 404
    assert (await docs.get(f"/api/files/nope/{record['id']}/{name}")).status_code == 404


async def test_files_of_a_dropped_field_are_cleaned_up(
    docs: httpx.AsyncClient, ctx: AppContext
) -> None:
    await create(docs, [("tiny", ("a.txt", b"abc", "text/plain"))], title="t")
    [key] = await stored_keys(ctx)
    smaller = {"collections": {"docs": {**SCHEMA["collections"]["docs"]}}}
    fields = dict(smaller["collections"]["docs"]["fields"])
    del fields["tiny"]
    smaller["collections"]["docs"]["fields"] = fields
    await apply_schema(docs, smaller, allow_destructive=True)
    assert await stored_keys(ctx) == []
    await cleaned(ctx)
    assert await ctx.storage.size(key) is None


async def test_json_writes_cannot_invent_file_names(docs: httpx.AsyncClient) -> None:
    answer = await docs.post("/api/collections/docs/records", json={"photo": "x_abcdefghij.png"})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["photo"]["code"] == "file_not_found"


@pytest.mark.parametrize(
    "number", ["-9223372036854775809", "18446744073709551616", "1e400", "1" + "0" * 30]
)
async def test_numbers_in_a_form_are_read_exactly_as_in_a_json_body(
    docs: httpx.AsyncClient, number: str
) -> None:
    """A number past a double's precision or range is refused by its field, by name, whether it
    comes in a JSON body, a form's @json part or a plain form field: never rounded first."""
    raw = f'{{"title": "t", "views": {number}}}'.encode()
    headers = {"content-type": "application/json"}
    as_json = await docs.post("/api/collections/docs/records", content=raw, headers=headers)
    as_part = await docs.post(
        "/api/collections/docs/records", files=[("@json", ("", raw, "application/json"))]
    )
    as_field = await create(docs, [("photo", ("p.png", png(), "image/png"))], views=number)
    for answer in (as_json, as_part, as_field):
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "validation_failed", error
        assert error["fields"]["views"] == as_json.json()["error"]["fields"]["views"], error


async def test_a_malformed_json_part_says_which_part(docs: httpx.AsyncClient) -> None:
    files = [("@json", ("", b'{"title": }', "application/json"))]
    answer = await docs.post("/api/collections/docs/records", files=files)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "malformed_json"
    assert error["message"].startswith("the @json part is not valid JSON")
    assert (error["line"], error["column"]) == (1, 11)
