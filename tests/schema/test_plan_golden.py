"""Golden tests for the migration planner: (before, after) schema -> the exact plan, SQL included.

Each file in golden/ holds `before`, `after`, optionally `populated` (collections that have rows)
and the expected `plan` text or `problems`. Internal ids are random, so they are numbered in order
of appearance. Set BAAS_UPDATE_GOLDEN=1 to rewrite the expectations after a deliberate change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from baas.schema.diff import Plan, plan
from baas.schema.document import SchemaError, parse_document
from baas.schema.models import Schema

GOLDEN = Path(__file__).parent / "golden"
_ID = re.compile(r"bs_[0-9a-f]{10}")


def render_plan(result: Plan) -> str:
    lines = []
    for step in result.steps:
        mark = "  [destructive]" if step.destructive else ""
        lines.append(f"{step.action} {step.target}: {step.summary}{mark}")
        for statement in step.statements:
            check = (
                f"  -- must be 0, else: {statement.expect_zero}" if statement.expect_zero else ""
            )
            lines.append(f"    {statement.sql}{check}")
    return _number_ids("\n".join(lines) + "\n" if lines else "(no changes)\n")


def _number_ids(text: str) -> str:
    seen: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        return seen.setdefault(match[0], f"bs_#{len(seen) + 1}")

    return _ID.sub(number, text)


def _case(path: Path) -> tuple[Schema, Schema, frozenset[str]]:
    case = yaml.safe_load(path.read_text())
    live = plan(Schema(), parse_document(case["before"])).schema if case["before"] else Schema()
    wanted = parse_document(case["after"])
    return live, wanted, frozenset(case.get("populated", []))


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_plan(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    live, wanted, populated = _case(path)
    try:
        actual = {"plan": render_plan(plan(live, wanted, populated))}
    except SchemaError as exc:
        actual = {"problems": exc.problems}
    expected = {k: case[k] for k in ("plan", "problems") if k in case}
    if os.environ.get("BAAS_UPDATE_GOLDEN"):
        case.pop("plan", None)
        case.pop("problems", None)
        path.write_text(_dump({**case, **actual}))
        return
    assert actual == expected


def _dump(case: dict[str, object]) -> str:
    class Literal(str):
        pass

    def literal(dumper: yaml.SafeDumper, value: Literal) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")

    yaml.SafeDumper.add_representer(Literal, literal)
    if "plan" in case:
        case["plan"] = Literal(case["plan"])
    return yaml.safe_dump(case, sort_keys=False, width=1000)


def test_ids_survive_renames() -> None:
    """A renamed collection or field keeps its id, so its constraints keep their names."""
    live = plan(Schema(), parse_document({"collections": {"a": {"fields": {"x": "text"}}}})).schema
    renamed = parse_document(
        {
            "collections": {
                "b": {"renamed_from": "a", "fields": {"y": {"type": "text", "renamed_from": "x"}}}
            }
        }
    )
    after = plan(live, renamed).schema
    assert after.collections[0].id == live.collections[0].id
    assert after.collections[0].fields[0].id == live.collections[0].fields[0].id


def test_replanning_the_result_is_empty() -> None:
    for path in sorted(GOLDEN.glob("*.yaml")):
        live, wanted, populated = _case(path)
        try:
            result = plan(live, wanted, populated)
        except SchemaError:
            continue
        again = plan(result.schema, wanted, populated)
        assert again.empty, (path.stem, [s.summary for s in again.steps])
