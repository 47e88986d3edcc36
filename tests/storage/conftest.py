"""Storage fixtures: moto's S3 server for the run, settings for each backend, and `backend`,
one opened Backend per test for each of local and s3."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from baas.config import Settings
from baas.storage.backend import Backend, open_backend
from tests.storage.s3_server import MotoThread, make_bucket


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The URL of moto's S3, started once per run in a thread."""
    server = MotoThread().start()
    yield server.url
    server.stop()


def s3_settings_for(settings: Settings, url: str, bucket: str | None = None) -> Settings:
    """`settings` on the S3 at `url`, in a new bucket (or `bucket`, which is not created)."""
    if bucket is None:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        make_bucket(url, bucket)
    return settings.replace(
        storage_backend="s3",
        s3_endpoint=url,
        s3_bucket=bucket,
        s3_access_key="test",
        s3_secret_key="test",
        s3_region="us-east-1",
        s3_timeout_s=3,
    )


@pytest.fixture
def s3_settings(settings: Settings, s3_server: str) -> Settings:
    return s3_settings_for(settings, s3_server)


@pytest.fixture
def local_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(storage_dir=tmp_path / "files")


@pytest.fixture(params=["local", "s3"])
def backend_settings(request: pytest.FixtureRequest) -> Settings:
    """Settings for each backend (resolved here: the database fixtures cannot run in a loop)."""
    return request.getfixturevalue(f"{request.param}_settings")  # type: ignore[no-any-return]


@pytest.fixture
async def backend(backend_settings: Settings) -> AsyncIterator[Backend]:
    """An opened backend of each kind."""
    opened = open_backend(backend_settings)
    yield opened
    await opened.close()
