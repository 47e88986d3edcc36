"""The `baas` command, run as a real process against the test database (BAAS_DATABASE_URL set,
so no embedded PostgreSQL starts), in a temporary working directory."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from jsonschema import Draft202012Validator

from baas.app import create_app
from baas.config import SETTINGS, Setting
from baas.schema.document import parse_document
from baas.schema.yamlio import HEADER, dump_yaml, load_yaml
from tests.cli.conftest import BAAS, Baas, Result, _env
from tests.conftest import SERVICE_KEY, asgi_with_state, settings_for

POSTS: dict[str, Any] = {
    "collections": {
        "posts": {
            "fields": {
                "title": {"type": "text", "required": True, "max": 200},
                "body": "text",
                "views": {"type": "integer", "min": 0, "default": 0},
            },
            "indexes": [["views", "created"]],
        }
    }
}


def _write(tmp_path: Path, document: dict[str, Any], name: str = "baas.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dump_yaml(document), encoding="utf-8")
    return path


def _ok(result: Result) -> Result:
    assert result.code == 0, result.text
    return result


def _query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _columns(database_url: str, table: str) -> list[str]:
    rows = _query(
        database_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [r["column_name"] for r in rows]


# -- init ----------------------------------------------------------------------------------------


def test_init_writes_a_valid_starter(baas: Baas, tmp_path: Path) -> None:
    result = _ok(baas("init"))
    assert "baas.yaml" in result.out
    text = (tmp_path / "baas.yaml").read_text()
    assert text.startswith(HEADER)
    jsonschema = json.loads((tmp_path / "baas.schema.json").read_text())
    Draft202012Validator.check_schema(jsonschema)
    document = load_yaml(text)
    assert list(Draft202012Validator(jsonschema).iter_errors(document)) == []
    assert parse_document(document).names == ("users", "posts")  # users is built in
    assert _ok(baas("schema", "jsonschema")).out.strip() == json.dumps(jsonschema, indent=2)


async def test_the_starter_keeps_booleans_out_of_null(
    baas: Baas, database_url: str, tmp_path: Path
) -> None:
    """A null `published` would drop a post out of a `published = true` rule unnoticed."""
    _ok(baas("init"))
    _ok(baas("schema", "apply", "--yes"))
    application = create_app(settings_for(database_url, tmp_path / "data"))
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=asgi_with_state(application, state))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"Authorization": f"Bearer {SERVICE_KEY}"},
        ) as client:
            records = "/api/collections/posts/records"
            created = await client.post(records, json={"title": "Hello"})
            assert created.status_code == 201, created.text
            assert created.json()["published"] is False
            post = f"{records}/{created.json()['id']}"
            assert (await client.patch(post, json={"published": True})).status_code == 200

            refused = await client.patch(post, json={"published": None})
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["code"] == "validation_failed"
            assert error["fields"]["published"]["code"] == "not_nullable"
            assert (await client.get(post)).json()["published"] is True
            on_create = await client.post(records, json={"title": "x", "published": None})
            assert on_create.status_code == 400, on_create.text


def test_init_refuses_to_overwrite_without_force(baas: Baas, tmp_path: Path) -> None:
    (tmp_path / "baas.yaml").write_text("collections: {}\n")
    refused = baas("init")
    assert refused.code == 1
    assert "--force" in refused.err
    assert (tmp_path / "baas.yaml").read_text() == "collections: {}\n"
    _ok(baas("init", "--force"))
    assert "posts:" in (tmp_path / "baas.yaml").read_text()


def test_init_into_a_new_directory(baas: Baas, tmp_path: Path) -> None:
    _ok(baas("init", "app/schema"))
    assert (tmp_path / "app/schema/baas.yaml").is_file()
    assert (tmp_path / "app/schema/baas.schema.json").is_file()


# -- schema diff / apply / history / pull --------------------------------------------------------


def test_schema_workflow(baas: Baas, tmp_path: Path, database_url: str) -> None:
    _write(tmp_path, POSTS)
    diff = _ok(baas("schema", "diff"))
    assert "Plan against schema version 1" in diff.out  # 1 added the built-in users
    assert re.search(r"1\. create collection posts", diff.out), diff.out
    assert "CREATE TABLE" not in diff.out
    assert "CREATE TABLE" in _ok(baas("schema", "diff", "--sql")).out
    plan = json.loads(_ok(baas("schema", "diff", "--json")).out)
    assert plan["base_version"] == 1
    assert plan["destructive"] is False
    assert plan["steps"][0]["action"] == "create_collection"
    assert plan["steps"][0]["target"] == "posts"
    assert all(step["statements"] for step in plan["steps"])

    applied = _ok(baas("schema", "apply", "--yes"))
    assert "Applied: the schema is now at version 2." in applied.out
    assert _columns(database_url, "posts") == ["id", "created", "updated", "title", "body", "views"]

    assert "No changes" in _ok(baas("schema", "diff")).out
    assert json.loads(_ok(baas("schema", "diff", "--json")).out)["steps"] == []
    again = _ok(baas("schema", "apply", "--yes"))
    assert "No changes" in again.out
    assert "Applied" not in again.out

    history = _ok(baas("schema", "history")).out
    assert re.search(r"^v2\s", history, re.MULTILINE), history
    assert "create collection posts" in history

    pulled = _ok(baas("schema", "pull", "--stdout")).out
    assert pulled.startswith(HEADER)
    assert parse_document(load_yaml(pulled)) == parse_document(POSTS)


def test_pull_writes_the_schema_file(baas: Baas, tmp_path: Path) -> None:
    source = _write(tmp_path, POSTS, "source.yaml")
    _ok(baas("schema", "apply", "--yes", "--file", str(source)))
    result = _ok(baas("schema", "pull"))
    assert "version 2" in result.out
    pulled = (tmp_path / "baas.yaml").read_text()
    assert load_yaml(pulled) == load_yaml(_ok(baas("schema", "pull", "--stdout")).out)
    assert parse_document(load_yaml(pulled)) == parse_document(POSTS)
    assert "No changes" in _ok(baas("schema", "diff")).out


HAND_WRITTEN = """\
# yaml-language-server: $schema=./baas.schema.json
# The blog's collections.
collections:
  # What the front page lists
  posts:
    fields:
      title: {type: text, required: true, max: 200}   # short titles
      body: text
      views: {type: integer, min: 0, default: 0}
    indexes:
      - [views, created]
"""


def test_pull_never_overwrites_a_hand_written_file_unasked(
    baas: Baas, baas_on_terminal: Baas, tmp_path: Path
) -> None:
    schema_file = tmp_path / "baas.yaml"
    backup = tmp_path / "baas.yaml.bak"
    schema_file.write_text(HAND_WRITTEN)
    _ok(baas("schema", "apply", "--yes"))
    same = _ok(baas("schema", "pull"))
    assert "already matches schema version 2; left as it is" in same.out
    assert schema_file.read_text() == HAND_WRITTEN and not backup.exists()

    with_tags = json.loads(json.dumps(POSTS))
    with_tags["collections"]["tags"] = {"fields": {"name": {"type": "text", "unique": True}}}
    _ok(baas("schema", "apply", "--yes", "--file", str(_write(tmp_path, with_tags, "new.yaml"))))

    refused = baas("schema", "pull")  # a script: no terminal to ask on
    assert refused.code == 1, refused.text
    assert "Refusing to overwrite baas.yaml" in refused.err
    assert "--force" in refused.err and "--stdout" in refused.err
    assert schema_file.read_text() == HAND_WRITTEN and not backup.exists()
    declined = baas_on_terminal("schema", "pull", answer="n")
    assert declined.code == 1, declined.text
    assert "Overwrite it, keeping the old file as baas.yaml.bak?" in declined.out
    assert schema_file.read_text() == HAND_WRITTEN and not backup.exists()

    for pull in (
        lambda: baas_on_terminal("schema", "pull", answer="y"),
        lambda: baas("schema", "pull", "--force"),
    ):
        schema_file.write_text(HAND_WRITTEN)
        pulled = _ok(pull())
        assert backup.read_text() == HAND_WRITTEN
        assert "Wrote schema version 3 to baas.yaml." in pulled.out
        assert "The previous file is kept as baas.yaml.bak; posts kept as written." in pulled.out
        text = schema_file.read_text()
        assert text.startswith(HAND_WRITTEN)  # comments and short forms of posts kept
        assert "tags:" in text
        assert parse_document(load_yaml(text)) == parse_document(with_tags)
        assert "No changes" in _ok(baas("schema", "diff")).out


def test_schema_file_from_env_and_flag(baas: Baas, tmp_path: Path, database_url: str) -> None:
    _write(tmp_path, POSTS, "other.yaml")
    assert "create collection posts" in _ok(baas("schema", "diff", "-f", "other.yaml")).out
    missing = baas("schema", "diff")
    assert missing.code == 1
    assert "baas.yaml not found" in missing.err
    env = {**_env(database_url, tmp_path), "BAAS_SCHEMA_FILE": "other.yaml"}
    done = subprocess.run(
        [BAAS, "schema", "diff"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "create collection posts" in done.stdout


def test_apply_without_yes_and_without_a_terminal_refuses(
    baas: Baas, tmp_path: Path, database_url: str
) -> None:
    _write(tmp_path, POSTS)
    result = baas("schema", "apply")
    assert result.code == 1, result.text
    assert "Refusing to apply without confirmation (no terminal to ask on)" in result.err
    assert "re-run with --yes" in result.err
    assert _columns(database_url, "posts") == []


def test_apply_asks_on_a_terminal(
    baas_on_terminal: Baas, tmp_path: Path, database_url: str
) -> None:
    _write(tmp_path, POSTS)
    declined = baas_on_terminal("schema", "apply", answer="n")
    assert declined.code == 1, declined.text
    assert "Apply these changes?" in declined.out
    assert "Nothing done." in declined.err
    assert _columns(database_url, "posts") == []
    applied = _ok(baas_on_terminal("schema", "apply", answer="y"))
    assert "Applied: the schema is now at version 2." in applied.out
    assert "title" in _columns(database_url, "posts")


def test_destructive_change_needs_confirmation(
    baas: Baas, tmp_path: Path, database_url: str
) -> None:
    _write(tmp_path, POSTS)
    _ok(baas("schema", "apply", "--yes"))
    smaller = json.loads(json.dumps(POSTS))
    del smaller["collections"]["posts"]["fields"]["body"]
    _write(tmp_path, smaller)

    refused = baas("schema", "apply", "--yes")
    assert refused.code == 1
    assert "Refusing destructive steps" in refused.err
    assert "drop field posts.body" in refused.out
    assert "DESTRUCTIVE" in refused.out
    assert "body" in _columns(database_url, "posts")

    plan = json.loads(_ok(baas("schema", "diff", "--json")).out)
    assert plan["destructive"] is True

    applied = _ok(baas("schema", "apply", "--allow-destructive", "--yes"))
    assert "version 2" in applied.out
    assert "body" not in _columns(database_url, "posts")
    assert re.search(r"^v2\s", _ok(baas("schema", "history")).out, re.MULTILINE)


def test_rename_keeps_the_data(baas: Baas, tmp_path: Path, database_url: str) -> None:
    _write(tmp_path, POSTS)
    _ok(baas("schema", "apply", "--yes"))
    _query(database_url, "INSERT INTO posts (title, body, views) VALUES ('kept', 'text', 7)")
    renamed: dict[str, Any] = {
        "collections": {
            "articles": {
                "renamed_from": "posts",
                "fields": {
                    "headline": {
                        "type": "text",
                        "required": True,
                        "max": 200,
                        "renamed_from": "title",
                    },
                    "body": "text",
                    "views": {"type": "integer", "min": 0, "default": 0},
                },
                "indexes": [["views", "created"]],
            }
        }
    }
    _write(tmp_path, renamed)
    diff = _ok(baas("schema", "diff")).out
    assert "rename collection posts to articles" in diff
    assert "rename field articles.title to headline" in diff
    assert "DESTRUCTIVE" not in diff
    _ok(baas("schema", "apply", "--yes"))
    rows = _query(database_url, "SELECT headline, body, views FROM articles")
    assert [tuple(r) for r in rows] == [("kept", "text", 7)]
    assert _columns(database_url, "posts") == []
    assert "No changes" in _ok(baas("schema", "diff")).out  # renamed_from is now a no-op


def test_invalid_schema_file_lists_every_problem(baas: Baas, tmp_path: Path) -> None:
    (tmp_path / "baas.yaml").write_text(
        "collections:\n"
        "  posts:\n"
        "    fields:\n"
        "      title: {type: text, colour: red}\n"
        "      body: {type: text, max: -1}\n"
        "      state: {type: select}\n"
        "      owner: {type: relation, collection: people}\n"
        "  Bad: {}\n"
    )
    for command in (("schema", "validate"), ("schema", "diff"), ("schema", "apply", "--yes")):
        result = baas(*command)
        assert result.code == 1, result.text
        assert result.err.startswith("error: baas.yaml has 5 problems:\n"), result.err
        for problem in (
            "collections.posts.fields.title.colour: unknown option for type text",
            "collections.posts.fields.body.max: must be a whole number of at least 0",
            "collections.posts.fields.state.values: a select field needs",
            "collections.posts.fields.owner.collection: no collection named 'people'",
            "collections.Bad: collection name 'Bad' must start with a lowercase letter",
        ):
            assert f"  - {problem}" in result.err, result.err
            assert result.err.count(problem) == 1, result.err  # each said once
        assert len(result.err.splitlines()) == 6, result.err
        assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("collections:\n  posts: [\n", "line 3, column 1: not valid YAML"),
        ("collections:\n  a: {}\n  a: {}\n", "line 3: 'a' is defined twice"),
    ],
)
def test_malformed_yaml_names_the_line(baas: Baas, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "baas.yaml").write_text(text)
    for command in ("validate", "diff"):
        result = baas("schema", command)
        assert result.code == 1
        assert result.err.startswith("error: baas.yaml has 1 problem:\n"), result.err
        assert result.err.count(message) == 1, result.err
        assert "Traceback" not in result.err


def test_validate_needs_no_database(baas: Baas, tmp_path: Path) -> None:
    _write(tmp_path, POSTS)
    no_database = {"BAAS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = _ok(baas("schema", "validate", extra_env=no_database))
    assert result.out == "baas.yaml is valid: 2 collections (users included).\n"


def test_history_of_a_new_install_shows_the_built_in_users(baas: Baas) -> None:
    history = _ok(baas("schema", "history")).out
    assert re.search(r"^v1\s.*\ssystem\s", history, re.MULTILINE), history
    assert "create collection users" in history


# -- keys ----------------------------------------------------------------------------------------


async def _baas_async(database_url: str, tmp_path: Path, *args: str) -> Result:
    done = await anyio.run_process(
        [BAAS, *args], cwd=tmp_path, env=_env(database_url, tmp_path), check=False
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


async def _status_with(client: httpx.AsyncClient, key: str, expected: int) -> int:
    """The status of an admin request with `key`, waiting for the NOTIFY to reach the app."""
    status = 0
    for _ in range(50):
        response = await client.get("/api/admin/keys", headers={"Authorization": f"Bearer {key}"})
        status = response.status_code
        if status == expected:
            break
        await asyncio.sleep(0.1)
    return status


async def test_keys_create_list_revoke(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    created = await _baas_async(database_url, tmp_path, "keys", "create", "ci")
    assert created.code == 0, created.text
    key = created.out.strip()
    assert re.fullmatch(r"baas_sk_[A-Za-z0-9_-]{43}", key), created.out
    assert "Store it now" in created.err
    assert key not in created.err
    assert await _status_with(client, key, 200) == 200

    listed = await _baas_async(database_url, tmp_path, "keys", "list")
    assert listed.code == 0, listed.text
    (line,) = listed.out.splitlines()
    key_id, prefix, state, name = line.split()
    assert prefix == key[:14] + "…"
    assert (state, name) == ("active", "ci")
    assert key not in listed.out

    revoked = await _baas_async(database_url, tmp_path, "keys", "revoke", key_id)
    assert revoked.code == 0, revoked.text
    assert key_id in revoked.out
    listed = await _baas_async(database_url, tmp_path, "keys", "list")
    assert listed.out.split()[2] == "revoked"
    assert await _status_with(client, key, 401) == 401

    again = await _baas_async(database_url, tmp_path, "keys", "revoke", key_id)
    assert again.code == 1
    assert "no active service key" in again.err


def test_revoking_a_malformed_id_fails_cleanly(baas: Baas) -> None:
    result = baas("keys", "revoke", "not-an-id")
    assert result.code == 1
    assert "no active service key" in result.err
    assert "Traceback" not in result.err


def test_keys_create_needs_a_name(baas: Baas) -> None:
    assert baas("keys", "create").code == 2
    for name in ("", "x" * 101):
        result = baas("keys", "create", name)
        assert result.code == 1
        assert "1-100 characters" in result.err
    assert "No service keys yet" in _ok(baas("keys", "list")).out


# -- serve --help --------------------------------------------------------------------------------


def _expected_default(setting: Setting) -> str:
    value = setting.default
    if value in ("", []):
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(value) if isinstance(value, list) else str(value)


def _help_entries(text: str) -> dict[str, str]:
    """`--help`'s options, each flag with its whole description (wrapped lines joined)."""
    section = text.split("\nOptions:\n", 1)[1]
    entries: dict[str, str] = {}
    flag = ""
    for line in section.splitlines():
        start = re.match(r"  (?:-\w, )?(--[a-z0-9-]+)", line)
        if start:
            flag = start[1]
            entries[flag] = line
        elif line.startswith(" ") and flag:
            # click wraps at spaces and after hyphens ("eu-" / "west-1")
            glue = "" if entries[flag].endswith("-") else " "
            entries[flag] += glue + line.lstrip()
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


@pytest.mark.parametrize("columns", ["80", "240"])
def test_serve_help_lists_every_setting(baas: Baas, columns: str) -> None:
    text = _ok(baas("serve", "--help", extra_env={"COLUMNS": columns})).out
    width = min(int(columns), 120)  # past 120 columns the help does not grow wider
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    entries = _help_entries(text)
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        described = f"{setting.help} (env {setting.env}, default: {_expected_default(setting)})"
        assert described in entries[flag], (flag, entries[flag])
        if setting.type is bool:
            assert entries[flag].startswith(f"{flag} / --no-{setting.name.replace('_', '-')} ")
    assert len([e for e in entries.values() if "(env BAAS_" in e]) == len(SETTINGS)
    # the descriptions keep a readable column: wrapped lines start no further right than 34
    option_lines = text.split("Options:\n")[1].splitlines()
    assert all(len(line) - len(line.lstrip()) <= 34 for line in option_lines if line.strip())


def test_help_lists_commands_whole_at_80_columns(baas: Baas) -> None:
    groups = ["", "schema", "keys", "superuser", "users", "mail", "settings", "signing-keys"]
    for group in [*groups, "storage", "jobs", "push"]:
        text = _ok(baas(*group.split(), "--help", extra_env={"COLUMNS": "80"})).out
        assert max(len(line) for line in text.splitlines()) <= 80, group
        assert "…" not in text and "..." not in text.split("Commands:")[1], text


def test_settings_errors_exit_2(baas: Baas) -> None:
    result = baas("serve", "--port", "70000")
    assert result.code == 2
    assert "BAAS_PORT" in result.err


def test_top_level_help(baas: Baas) -> None:
    result = _ok(baas("--help"))
    for command in ("serve", "init", "schema", "keys"):
        assert command in result.out


def test_version(baas: Baas) -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    expected = f"baas {pyproject['project']['version']}\n"
    for flag in ("--version", "-V"):
        result = _ok(baas(flag))
        assert result.out == expected
        assert result.err == ""
    assert "--version" in _ok(baas("--help")).out
