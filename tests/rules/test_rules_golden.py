"""Golden pairs for access rules: rule text -> SQL and parameters, and the posts of the seeded
database it lets through (auth.* and body.* bound). Same format and data as tests/query/golden;
BAAS_UPDATE_GOLDEN=1 rewrites the expectations."""

from __future__ import annotations

from pathlib import Path

from tests.query import golden_cases as g
from tests.query.golden_cases import check_compiles, check_matches, golden, seeded

GOLDEN = Path(__file__).parent / "golden"

__all__ = ["seeded"]  # the fixture, shared with the filter golden tests


@golden(GOLDEN)
def test_compiles_as_golden(path: Path, index: int) -> None:
    check_compiles(path, index)


@golden(GOLDEN)
async def test_selects_golden_matches(seeded, path: Path, index: int) -> None:
    await check_matches(seeded, path, index)


def test_every_case_is_a_rule() -> None:
    for path in g.case_files(GOLDEN):
        for case in g.load(path):
            assert case.get("rule") in ("list", "view", "create", "update", "delete"), case
