"""`baas storage check`, run as a real process: local directory and an S3 nobody listens on."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Baas
from tests.storage.s3_server import free_port


def test_check_a_local_directory(baas: Baas, tmp_path: Path) -> None:
    result = baas("storage", "check")
    assert result.code == 0, result.text
    assert f"local directory {tmp_path / 'data' / 'storage'}: write, read, delete OK" in result.out
    assert [p.name for p in (tmp_path / "data" / "storage").iterdir()] == [".tmp"]


def test_check_an_unreachable_s3(baas: Baas, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    (tmp_path / ".env").write_text(
        "BAAS_STORAGE_BACKEND=s3\n"
        f"BAAS_S3_ENDPOINT={endpoint}\n"
        "BAAS_S3_BUCKET=files\n"
        "BAAS_S3_SECRET_KEY=hunter2-hunter2\n"
        "BAAS_S3_TIMEOUT_S=1\n"
    )
    result = baas("storage", "check")
    assert result.code == 1, result.text
    assert (
        f"error: file storage is unavailable: {endpoint}: cannot connect to the S3 service"
        in result.err
    )
    assert "Traceback" not in result.text
    assert "hunter2" not in result.text


def test_s3_settings_are_required(baas: Baas, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BAAS_STORAGE_BACKEND=s3\n")
    result = baas("storage", "check")
    assert result.code == 2
    assert "BAAS_S3_ENDPOINT: required when BAAS_STORAGE_BACKEND is s3" in result.err
    assert "BAAS_S3_BUCKET: required" in result.err
