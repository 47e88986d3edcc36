"""The OpenAPI document: a valid OpenAPI 3.1 description of the live schema, which real responses
from the API conform to."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from baas.context import AppContext
from baas.openapi.document import openapi_document
from tests.conftest import apply_schema

SCHEMA: dict[str, Any] = {
    "collections": {
        "authors": {
            "fields": {
                "name": {
                    "type": "text",
                    "required": True,
                    "min": 2,
                    "max": 50,
                    "pattern": "[A-Za-z ]+",
                },
                "email": {"type": "email", "unique": True},
                "homepage": "url",
                "password_hash": {"type": "text", "hidden": True},
            }
        },
        "blog_posts": {
            "fields": {
                "title": {"type": "text", "required": True, "max": 200},
                "views": {"type": "integer", "min": 0, "max": 1000000, "default": 0},
                "rating": {"type": "number", "min": 0, "max": 5},
                "published": {"type": "bool", "nullable": False, "default": False},
                "published_at": {"type": "datetime", "default": "now"},
                "day": "date",
                "meta": "json",
                "status": {"type": "select", "values": ["draft", "live"], "default": "draft"},
                "tags": {
                    "type": "select",
                    "values": ["a", "b", "c"],
                    "multiple": True,
                    "max": 2,
                },
                "author": {"type": "relation", "collection": "authors", "required": True},
                "reviewers": {"type": "relation", "collection": "authors", "multiple": True},
                "cover": "file",
                "attachments": {"type": "file", "multiple": True, "max": 3},
                "secret": {"type": "json", "hidden": True},
            },
            "indexes": [["published", "created"]],
        },
    }
}
POSTS = "/api/collections/blog_posts/records"
AUTHORS = "/api/collections/authors/records"


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def document(admin: httpx.AsyncClient) -> dict[str, Any]:
    await apply_schema(admin, SCHEMA)
    return await _document(admin)


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for one component schema, its $refs resolved inside the whole document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:openapi#/components/schemas/{name}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _conforms(document: dict[str, Any], name: str, instance: Any) -> None:
    errors = [e.message for e in _validator(document, name).iter_errors(instance)]
    assert errors == [], f"{name}: {errors}"


def _rejects(document: dict[str, Any], name: str, instance: Any) -> None:
    assert not _validator(document, name).is_valid(instance), f"{name} accepted {instance!r}"


def _response_schema(document: dict[str, Any], path: str, method: str, status: str) -> Any:
    response = document["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


# -- the document itself -----------------------------------------------------------------------


async def test_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


async def test_document_of_a_new_install_is_valid(client: httpx.AsyncClient) -> None:
    document = await _document(client)
    validate(document)
    collections = {p.split("/")[3] for p in document["paths"] if p.startswith("/api/collections/")}
    assert collections == {"users"}  # built in
    assert "/api/auth/sign-in" in document["paths"]
    assert "/api/health" in document["paths"]


async def test_every_collection_has_paths_and_schemas(document: dict[str, Any]) -> None:
    paths, schemas = document["paths"], document["components"]["schemas"]
    for name, title in (("authors", "Authors"), ("blog_posts", "BlogPosts")):
        base = f"/api/collections/{name}/records"
        assert set(paths[base]) == {"get", "post"}
        assert set(paths[base + "/{id}"]) >= {"get", "patch", "put", "delete"}
        assert {f"{title}Record", f"{title}Create", f"{title}Update", f"{title}Page"} <= set(
            schemas
        )
        assert _response_schema(document, base, "post", "201") == {
            "$ref": f"#/components/schemas/{title}Record"
        }
        assert _response_schema(document, base, "get", "200") == {
            "$ref": f"#/components/schemas/{title}Page"
        }


async def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method != "parameters"
    ]
    assert len(ids) == len(set(ids))
    assert {"listBlogPosts", "createBlogPosts", "getAuthors", "deleteAuthors"} <= set(ids)


async def test_record_schema_leaves_out_hidden_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    author = schemas["AuthorsRecord"]["properties"]
    assert set(author) == {"id", "created", "updated", "name", "email", "homepage"}
    assert "secret" not in schemas["BlogPostsRecord"]["properties"]
    assert "secret" not in schemas["BlogPostsRecord"]["required"]


async def test_field_options_are_reflected(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    post = schemas["BlogPostsRecord"]["properties"]
    create = schemas["BlogPostsCreate"]
    assert create["required"] == ["title", "author"]
    assert "required" not in schemas["BlogPostsUpdate"]
    assert post["title"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert post["views"]["anyOf"][0] == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 1000000,
    }
    assert post["views"]["default"] == 0
    assert post["published"] == {"type": "boolean", "default": False}
    assert post["status"]["anyOf"][0] == {"type": "string", "enum": ["draft", "live"]}
    assert post["tags"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["a", "b", "c"]},
        "uniqueItems": True,
        "maxItems": 2,
    }
    assert post["author"] == {"type": "string", "format": "uuid"}
    assert post["reviewers"]["items"] == {"type": "string", "format": "uuid"}
    assert post["attachments"]["maxItems"] == 3
    assert "default" not in post["published_at"]  # 'now' is not a JSON value
    assert "cover" not in create["properties"]  # files are uploaded, not written as JSON
    name = schemas["AuthorsRecord"]["properties"]["name"]
    assert name["minLength"] == 2
    assert name["maxLength"] == 50
    assert name["pattern"] == "^(?:[A-Za-z ]+)$"  # fullmatch, as the server checks it


async def test_component_names_never_collide(admin: httpx.AsyncClient) -> None:
    names = ["error", "foo_1", "foo1", "foo__bar", "foo_bar", "posts", "posts_page", "page"]
    await apply_schema(admin, {"collections": {n: {"fields": {"x": "text"}} for n in names}})
    document = await _document(admin)
    validate(document)
    schemas = document["components"]["schemas"]
    assert len(schemas) == 1 + 4 * (len(names) + 1)  # + the built-in users
    assert "code" in schemas["Error"]["properties"]["error"]["properties"]
    for name in names:
        record = _response_schema(
            document, f"/api/collections/{name}/records/{{id}}", "get", "200"
        )["$ref"].rsplit("/", 1)[1]
        assert set(schemas[record]["properties"]) == {"id", "created", "updated", "x"}


async def test_document_follows_schema_changes(admin: httpx.AsyncClient, ctx: AppContext) -> None:
    await apply_schema(admin, SCHEMA)
    first = await _document(admin)
    assert openapi_document(ctx.schema, ctx.settings, "1") is openapi_document(
        ctx.schema, ctx.settings, "1"
    )  # built once per schema version
    changed = {"collections": {**SCHEMA["collections"], "comments": {"fields": {"body": "text"}}}}
    await apply_schema(admin, changed)
    second = await _document(admin)
    assert "/api/collections/comments/records" not in first["paths"]
    assert "/api/collections/comments/records" in second["paths"]
    assert first["info"]["version"].endswith("+schema.2")  # 1 added the built-in users
    assert second["info"]["version"].endswith("+schema.3")
    validate(second)


# -- real responses conform to the document -------------------------------------------------------


async def _author(admin: httpx.AsyncClient, **values: Any) -> dict[str, Any]:
    body = {"name": "Ada Lovelace", "email": "ada@example.com", **values}
    response = await admin.post(AUTHORS, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_records_conform(admin: httpx.AsyncClient, document: dict[str, Any]) -> None:
    ada = await _author(admin, homepage="https://ada.example", password_hash="x")
    grace = await _author(admin, name="Grace Hopper", email="grace@example.com")
    _conforms(document, "AuthorsRecord", ada)
    _conforms(document, "AuthorsRecord", grace)
    full = {
        "title": "Notes",
        "views": 3,
        "rating": 4.5,
        "published": True,
        "published_at": "2026-01-31T12:00:00Z",
        "day": "2026-01-31",
        "meta": {"nested": [1, "two", None]},
        "status": "live",
        "tags": ["a", "c"],
        "author": ada["id"],
        "reviewers": [grace["id"], ada["id"]],
        "secret": {"k": 1},
    }
    minimal = {"title": "Short", "author": grace["id"]}
    for body in (full, minimal):
        _conforms(document, "BlogPostsCreate", body)
        created = await admin.post(POSTS, json=body)
        assert created.status_code == 201, created.text
        _conforms(document, "BlogPostsRecord", created.json())
        assert "secret" not in created.json()
    record = created.json()
    patched = await admin.patch(f"{POSTS}/{record['id']}", json={"tags": [], "rating": None})
    assert patched.status_code == 200, patched.text
    _conforms(document, "BlogPostsUpdate", {"tags": [], "rating": None})
    _conforms(document, "BlogPostsRecord", patched.json())
    page = await admin.get(POSTS, params={"per_page": 1})
    assert page.status_code == 200
    assert page.json()["next_cursor"] is not None
    _conforms(document, "BlogPostsPage", page.json())
    last = await admin.get(POSTS, params={"skip_total": "true", "per_page": 5})
    assert last.json()["total"] is None
    _conforms(document, "BlogPostsPage", last.json())


@pytest.mark.parametrize(
    "body",
    [
        {"author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"},  # title is required
        {"title": "", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"},
        {"title": "x" * 201, "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b"},
        {"title": "t", "author": None},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "views": -1},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "views": 1.5},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "rating": 6},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "status": "gone"},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "tags": ["a", "a"]},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "tags": ["a", "b", "c"]},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "published": None},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "created": "x"},
        {"title": "t", "author": "0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", "nope": 1},
    ],
)
async def test_bodies_the_schema_rejects_the_api_rejects(
    admin: httpx.AsyncClient, document: dict[str, Any], body: dict[str, Any]
) -> None:
    _rejects(document, "BlogPostsCreate", body)
    response = await admin.post(POSTS, json=body)
    assert response.status_code == 400, response.text
    _conforms(document, "Error", response.json())


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        ({"email": ""}, True),  # an optional email or URL may be empty
        ({"homepage": ""}, True),
        ({"email": "ada@example.com", "homepage": "https://ada.example/x"}, True),
        ({"email": "ada"}, False),  # (jsonschema checks "uri" only with rfc3987 installed)
    ],
)
async def test_email_and_url_formats_match_the_server(
    admin: httpx.AsyncClient, document: dict[str, Any], values: dict[str, Any], accepted: bool
) -> None:
    body = {"name": "Ada", **values}
    assert _validator(document, "AuthorsCreate").is_valid(body) is accepted
    response = await admin.post(AUTHORS, json=body)
    assert (response.status_code == 201) is accepted, response.text
    if accepted:
        _conforms(document, "AuthorsRecord", response.json())


async def test_text_bounds_and_pattern_match_the_server(
    admin: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    for name, accepted in (("Ada", True), ("A", False), ("Ada1", False), ("1Ada", False)):
        body = {"name": name}
        assert _validator(document, "AuthorsCreate").is_valid(body) is accepted, name
        response = await admin.post(AUTHORS, json=body)
        assert (response.status_code == 201) is accepted, response.text


async def test_error_bodies_conform(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    missing = await admin.get(f"{POSTS}/0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b")
    assert missing.status_code == 404
    bad_page = await admin.get(POSTS, params={"per_page": 0})
    assert bad_page.status_code == 400
    invalid = await admin.post(POSTS, json={"title": 5})
    assert invalid.status_code == 400
    assert set(invalid.json()["error"]["fields"]) == {"title", "author"}
    del client.headers["Authorization"]
    anonymous = await client.get(POSTS)
    assert anonymous.status_code == 403  # no rules declared: locked
    for response in (missing, bad_page, invalid, anonymous):
        schema = _response_schema(
            document,
            "/api/collections/blog_posts/records",
            "get",
            str(response.status_code) if response.status_code != 404 else "404",
        )
        assert schema == {"$ref": "#/components/schemas/Error"}
        _conforms(document, "Error", response.json())
        assert response.json()["error"]["request_id"]


async def test_ids_in_paths_are_uuids(document: dict[str, Any]) -> None:
    item = document["paths"]["/api/collections/authors/records/{id}"]
    (parameter,) = item["parameters"]
    assert parameter == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    jsonschema.validate("0190f5a0-8c1e-7d2b-9f3a-1c2d3e4f5a6b", parameter["schema"])


async def test_every_route_is_described(admin) -> None:  # type: ignore[no-untyped-def]
    """Each path the app routes (records paths per collection) appears in the document."""
    from starlette.routing import Route, WebSocketRoute

    from baas.app import create_app
    from baas.config import Settings

    await admin.post("/api/admin/schema/apply", json={"document": {"collections": {"c": {}}}})
    document = (await admin.get("/api/openapi.json")).json()
    app = create_app(Settings(database_url="postgresql://unused"))
    for r in app.routes:
        if isinstance(r, WebSocketRoute):
            continue  # /api/realtime: OpenAPI has no WebSockets (the README documents it)
        assert isinstance(r, Route)
        path = r.path.replace("{collection}", "c").replace("{name}", "{name}")
        if r.path.startswith("/api/files/"):
            path = r.path  # one generic path for every collection's files
        if path == "/api/openapi.json" or not path.startswith("/api/"):
            continue  # the document itself, and the HTML pages email links open
        assert path in document["paths"], path
        for method in r.methods or ():
            if method != "HEAD":
                assert method.lower() in document["paths"][path], (path, method)


# -- the document is exact: security, statuses, writable fields, media types, bounds -------------


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]


async def test_records_and_push_take_an_optional_token(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    optional = [{}, {"bearer": []}]
    for path, method, op in _operations(document):
        if path.startswith("/api/collections/") or path == "/api/batch":
            assert op["security"] == optional, (path, method)
    for path in ("/api/push/devices", "/api/push/topics"):
        assert document["paths"][path]["get"]["security"] == optional
    assert "security" not in document["paths"]["/api/push/send"]["post"]  # the default: bearer
    assert document["security"] == [{"bearer": []}]
    public = {"collections": {**SCHEMA["collections"], "notes": {"rules": {"list": ""}}}}
    await apply_schema(admin, public)
    listed = await anon.get("/api/collections/notes/records")
    assert listed.status_code == 200  # no token, and none needed
    sent = await anon.post("/api/push/send", json={"title": "hi", "users": []})
    assert sent.status_code == 401  # credentials would help: documented, and not a 403
    assert "401" in document["paths"]["/api/push/send"]["post"]["responses"]


async def test_every_operation_lists_the_statuses_of_the_layers_it_crosses(
    document: dict[str, Any],
) -> None:
    for path, method, op in _operations(document):
        responses = op["responses"]
        assert {"401", "414", "431"} <= set(responses), (path, method)
        body = op.get("requestBody")
        if body is not None:
            assert {"400", "413"} <= set(responses), (path, method)
            if "application/json" in body["content"]:
                assert "415" in responses, (path, method)
        if path not in ("/api/auth/jwks.json", "/api/auth/methods", "/api/health/live"):
            assert "503" in responses, (path, method)
    item = document["paths"][f"{POSTS}/{{id}}"]
    assert "400" in item["get"]["responses"]  # fields=, expand=, unknown parameters
    assert {"404", "415"} <= set(item["put"]["responses"])
    assert set(item["put"]["requestBody"]["content"]) == {"application/json"}


async def test_the_statuses_the_server_answers_are_documented(
    admin: httpx.AsyncClient, anon: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    ada = await _author(admin)
    post = await admin.post(POSTS, json={"title": "t", "author": ada["id"]})
    assert post.status_code == 201
    url = f"{POSTS}/{post.json()['id']}"
    bad_fields = await admin.get(url, params={"fields": "nope"})
    multipart_put = await admin.put(url, files={"cover": ("a.txt", b"x", "text/plain")})
    rules = {"rules": {"view": "", "update": "title = 'never'"}}
    await apply_schema(
        admin,
        {
            "collections": {
                **SCHEMA["collections"],
                "blog_posts": {**SCHEMA["collections"]["blog_posts"], **rules},
            }
        },
    )
    refused_update = await anon.patch(url, json={"views": 2})
    for response, method, status in (
        (bad_fields, "get", 400),
        (multipart_put, "put", 415),
        (refused_update, "patch", 404),
    ):
        assert response.status_code == status, response.text
        assert str(status) in document["paths"][f"{POSTS}/{{id}}"][method]["responses"]
        _conforms(document, "Error", response.json())


async def test_users_auth_fields_are_not_offered_as_writable(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    system = {"email", "password_hash", "verified", "disabled", "anonymous", "last_sign_in"}
    for name in ("UsersCreate", "UsersUpdate"):
        assert not system & set(schemas[name]["properties"]), name
        assert schemas[name]["additionalProperties"] is False
    users = [v for k, v in schemas.items() if k.startswith("Users")]
    others = {p: v for p, v in document["paths"].items() if "authors" not in p}
    assert "password_hash" not in str((users, others))  # the column is never named
    record = schemas["UsersRecord"]
    assert {"verified", "disabled", "anonymous"} <= set(record["properties"])
    assert not {"verified", "disabled", "anonymous"} & set(record["required"])  # private
    assert "email" not in record["properties"]  # hidden
    assert "id" not in schemas["BlogPostsUpdate"]["properties"]  # the id is in the path


async def test_users_records_conform_for_the_account_and_for_others(
    admin: httpx.AsyncClient, document: dict[str, Any], ctx: AppContext
) -> None:
    created = await admin.post(
        "/api/admin/users", json={"email": "ann@example.com", "password": "a long passphrase 42"}
    )
    assert created.status_code == 201, created.text
    own = await admin.get(f"/api/collections/users/records/{created.json()['id']}")
    assert own.status_code == 200
    _conforms(document, "UsersRecord", own.json())
    _conforms(document, "UsersRecord", {k: v for k, v in own.json().items() if k != "verified"})


async def test_jwks_is_declared_with_its_media_type(
    anon: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    ok = document["paths"]["/api/auth/jwks.json"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/jwk-set+json"}
    response = await anon.get("/api/auth/jwks.json")
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    jsonschema.validate(response.json(), ok["content"]["application/jwk-set+json"]["schema"])


async def test_search_is_offered_only_where_declared(admin: httpx.AsyncClient) -> None:
    searchable = {**SCHEMA["collections"]["blog_posts"], "search": ["title"]}
    await apply_schema(admin, {"collections": {**SCHEMA["collections"], "blog_posts": searchable}})
    document = await _document(admin)

    def names(path: str) -> set[str]:
        return {p["name"] for p in document["paths"][path]["get"]["parameters"]}

    assert "search" in names(POSTS)
    assert "search" not in names(AUTHORS)
    refused = await admin.get(AUTHORS, params={"search": "x"})
    assert refused.status_code == 400


async def test_list_bounds_come_from_the_settings(
    admin: httpx.AsyncClient, document: dict[str, Any], ctx: AppContext
) -> None:
    parameters = {p["name"]: p["schema"] for p in document["paths"][POSTS]["get"]["parameters"]}
    settings = ctx.settings
    assert parameters["per_page"]["maximum"] == settings.max_per_page
    assert parameters["per_page"]["minimum"] == 1
    assert parameters["filter"]["maxLength"] == settings.max_filter_length
    assert parameters["page"]["minimum"] == 1
    too_many = await admin.get(POSTS, params={"per_page": settings.max_per_page + 1})
    assert too_many.status_code == 400
    most = await admin.get(POSTS, params={"per_page": settings.max_per_page})
    assert most.status_code == 200
    batch = document["paths"]["/api/batch"]["post"]["requestBody"]["content"]
    operations = batch["application/json"]["schema"]["properties"]["operations"]
    assert operations["maxItems"] == settings.max_batch_operations


async def test_auth_refusals_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "403" in paths["/api/auth/email-change"]["post"]["responses"]  # wrong_password
    assert "403" in paths["/api/auth/password"]["post"]["responses"]
    for path in ("/api/auth/mfa/totp/disable", "/api/auth/mfa/recovery-codes"):
        assert {"409", "429"} <= set(paths[path]["post"]["responses"])  # mfa_not_enabled
    oidc = paths["/api/auth/oidc/{provider}"]["post"]
    assert oidc["security"] == [{}, {"bearer": []}]  # signs in, or links when signed in
