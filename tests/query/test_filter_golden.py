"""Golden pairs for the filter language: filter text -> SQL and parameters, and the records the
SQL selects from a seeded database. See golden_cases.py for the file format.

One test per case (`comparisons-07` is the eighth case of golden/comparisons.yaml). Set
BAAS_UPDATE_GOLDEN=1 to rewrite the expectations after a deliberate change, then read the diff:
every SQL text and every `matches` list in these files has been checked by hand, and where the
compiler was wrong the file says what is right (those cases fail until it is fixed: regenerating
before then would bless the bug).
"""

from __future__ import annotations

from pathlib import Path

from tests.query import golden_cases as g
from tests.query.golden_cases import check_compiles, check_matches, golden, seeded

__all__ = ["seeded"]  # a fixture


@golden()
def test_compiles_as_golden(path: Path, index: int) -> None:
    check_compiles(path, index)


@golden()
async def test_selects_golden_matches(seeded, path: Path, index: int) -> None:
    await check_matches(seeded, path, index)


def test_every_case_names_one_thing_to_compile() -> None:
    allowed = {"filter", "rule", "sort", "collection", "admin", "auth", "body"}
    for path in g.case_files():
        for case in g.load(path):
            assert ("filter" in case) != ("sort" in case), (path.stem, case)
            assert set(g.inputs(case)) <= allowed, (path.stem, case)
            assert ("error" in case) != ("sql" in case), (path.stem, case)
