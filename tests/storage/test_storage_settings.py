"""The storage settings: defaults, validation at load time, secrets kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from baas.config import Settings, SettingsError
from baas.storage.local import storage_root

S3 = {
    "BAAS_STORAGE_BACKEND": "s3",
    "BAAS_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
    "BAAS_S3_BUCKET": "files",
}


def _load(**env: str) -> Settings:
    return Settings.load(environ=env, dotenv_path=None)


def test_defaults() -> None:
    s = _load()
    assert s.storage_backend == "local"
    assert storage_root(s) == Path("baas_data") / "storage"
    assert (s.s3_region, s.s3_path_style, s.s3_timeout_s) == ("us-east-1", True, 10.0)
    assert (s.file_max_size, s.file_token_ttl_s, s.s3_presigned_downloads) == (
        10_485_760,
        120,
        False,
    )


def test_storage_dir() -> None:
    assert storage_root(_load(BAAS_STORAGE_DIR="/srv/files")) == Path("/srv/files")
    assert storage_root(_load(BAAS_STORAGE_DIR="")) == Path("baas_data") / "storage"


def test_s3_settings_load() -> None:
    s = _load(**S3, BAAS_S3_PATH_STYLE="false", BAAS_S3_TIMEOUT_S="2.5")
    assert (s.storage_backend, s.s3_bucket, s.s3_path_style, s.s3_timeout_s) == (
        "s3",
        "files",
        False,
        2.5,
    )


@pytest.mark.parametrize(
    ("env", "problems"),
    [
        ({"BAAS_STORAGE_BACKEND": "ftp"}, ["BAAS_STORAGE_BACKEND: must be one of local, s3"]),
        (
            {"BAAS_STORAGE_BACKEND": "s3"},
            [
                "BAAS_S3_BUCKET: required when BAAS_STORAGE_BACKEND is s3",
                "BAAS_S3_ENDPOINT: required when BAAS_STORAGE_BACKEND is s3",
            ],
        ),
        (
            {**S3, "BAAS_S3_ENDPOINT": "s3.amazonaws.com"},
            ["BAAS_S3_ENDPOINT: must be an http(s) URL"],
        ),
        ({**S3, "BAAS_S3_ENDPOINT": "http://minio:9000/files"}, ["BAAS_S3_ENDPOINT: must be"]),
        ({**S3, "BAAS_S3_TIMEOUT_S": "0"}, ["BAAS_S3_TIMEOUT_S: must be positive"]),
        ({"BAAS_FILE_MAX_SIZE": "-1"}, ["BAAS_FILE_MAX_SIZE: must be positive"]),
    ],
)
def test_invalid_storage_settings(env: dict[str, str], problems: list[str]) -> None:
    with pytest.raises(SettingsError) as raised:
        _load(**env)
    for problem in problems:
        assert problem in str(raised.value)


def test_s3_keys_stay_out_of_repr() -> None:
    s = _load(**S3, BAAS_S3_ACCESS_KEY="AKIAEXAMPLEKEY", BAAS_S3_SECRET_KEY="hunter2-secret")
    assert "AKIAEXAMPLEKEY" not in repr(s)
    assert "hunter2-secret" not in repr(s)
