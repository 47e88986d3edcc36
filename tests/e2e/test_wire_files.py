"""File downloads on a real server, read off the socket: originals and thumbnails (made on the
first request, then served from the backend) framed by their own size, with ranges, HEAD,
conditional requests and an ETag per variant."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from tests.conftest import SERVICE_KEY, new_database
from tests.e2e import wire
from tests.e2e.servers import Server, running

pytestmark = pytest.mark.slow

SCHEMA: dict[str, Any] = {
    "collections": {
        "albums": {
            "fields": {
                "title": "text",
                "cover": {"type": "file", "thumbs": ["100x100", "50x0", "30x30f"]},
                "notes": {"type": "file", "thumbs": ["100x100"]},
            },
            "rules": {"list": "", "view": "", "create": "", "update": ""},
        }
    }
}
ADMIN = {"Authorization": f"Bearer {SERVICE_KEY}"}


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"BAAS_DATABASE_URL": new_database(pg_server_url, template_db)}
    with running(tmp_path_factory.mktemp("files"), env) as running_server:
        with running_server.client() as client:
            applied = client.post("/api/admin/schema/apply", json={"document": SCHEMA})
            assert applied.status_code == 200, applied.text
        yield running_server


def image(kind: str = "PNG", size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", size, "teal")
    picture.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), "orange"))  # not one colour
    picture.save(out, kind)
    return out.getvalue()


def upload(server: Server, field: str, name: str, data: bytes, mime: str) -> str:
    """A new record holding `data` in `field`; the path of its download URL."""
    with server.client() as client:
        created = client.post(
            "/api/collections/albums/records",
            data={"title": name},
            files=[(field, (name, data, mime))],
        )
    assert created.status_code == 201, created.text
    record = created.json()
    return f"/api/files/albums/{record['id']}/{record[field]}"


def get(server: Server, target: str, **headers: str) -> wire.Answer:
    return wire.request(server.port, "GET", target, headers)


def head(server: Server, target: str, **headers: str) -> wire.Answer:
    return wire.request(server.port, "HEAD", target, headers)


def no_traceback(server: Server) -> None:
    log = server.output()
    assert "Traceback" not in log and "Content-Length" not in log, log[-3000:]


def test_a_thumbnail_is_framed_by_its_own_size_every_time(server: Server) -> None:
    path = upload(server, "cover", "c.png", image(), "image/png")
    first = get(server, f"{path}?thumb=100x100")  # made now
    assert first.status == 200
    assert Image.open(io.BytesIO(first.body)).size == (100, 100)
    for _ in range(3):  # from the backend
        again = get(server, f"{path}?thumb=100x100")
        assert again.status == 200
        assert again.headers["content-length"] == str(len(first.body))
        assert again.body == first.body
        assert again.headers["content-type"] == "image/png"
        assert again.headers["etag"] == first.headers["etag"]
    no_traceback(server)


def test_thumbnail_ranges_head_and_validators(server: Server) -> None:
    path = upload(server, "cover", "r.jpg", image("JPEG"), "image/jpeg")
    target = f"{path}?thumb=100x100"
    full = get(server, target).body  # made
    size = len(full)
    assert get(server, target).body == full  # served from the backend from here on
    etag = get(server, target).headers["etag"]

    described = head(server, target)
    assert described.status == 200
    assert described.headers["content-length"] == str(size)
    assert described.headers["content-type"] == "image/jpeg"
    assert described.headers["etag"] == etag
    assert described.headers["accept-ranges"] == "bytes"

    for spec, start, end in (("0-9", 0, 9), ("-7", size - 7, size - 1), ("10-", 10, size - 1)):
        part = get(server, target, Range=f"bytes={spec}")
        assert part.status == 206, spec
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert part.body == full[start : end + 1]
    past = get(server, target, Range=f"bytes={size}-")
    assert past.status == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    ranged_head = head(server, target, Range="bytes=0-9")
    assert ranged_head.status == 206
    assert ranged_head.headers["content-length"] == "10"

    assert get(server, target, **{"If-None-Match": etag}).status == 304
    original_etag = get(server, path).headers["etag"]
    assert get(server, target, **{"If-None-Match": original_etag}).body == full
    stale = get(server, target, Range="bytes=0-9", **{"If-Range": original_etag})
    assert (stale.status, stale.body) == (200, full)
    fresh = get(server, target, Range="bytes=0-9", **{"If-Range": etag})
    assert (fresh.status, fresh.body) == (206, full[:10])
    no_traceback(server)


def test_the_request_that_makes_a_thumbnail_honours_range_and_head(server: Server) -> None:
    path = upload(server, "cover", "m.png", image(), "image/png")
    part = get(server, f"{path}?thumb=50x0", Range="bytes=0-99")  # makes it
    full = get(server, f"{path}?thumb=50x0").body
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 0-99/{len(full)}"
    assert part.body == full[:100]

    described = head(server, f"{path}?thumb=30x30f")  # makes it
    made = get(server, f"{path}?thumb=30x30f")
    assert described.status == made.status == 200
    assert described.headers["content-length"] == str(len(made.body))
    assert described.headers["etag"] == made.headers["etag"]
    no_traceback(server)


def test_every_variant_has_its_own_etag(server: Server) -> None:
    path = upload(server, "cover", "e.png", image(), "image/png")
    variants = ["", "?thumb=100x100", "?thumb=50x0", "?thumb=30x30f"]
    first = [get(server, path + v).headers["etag"] for v in variants]
    second = [get(server, path + v).headers["etag"] for v in variants]
    assert first == second
    assert len(set(first)) == len(variants)


def test_a_gif_thumbnail_is_a_png_every_time(server: Server) -> None:
    path = upload(server, "cover", "a.gif", image("GIF"), "image/gif")
    answers = [get(server, f"{path}?thumb=100x100") for _ in range(2)]
    assert [a.headers["content-type"] for a in answers] == ["image/png", "image/png"]
    assert answers[0].body == answers[1].body
    assert Image.open(io.BytesIO(answers[1].body)).format == "PNG"


def test_originals_with_ranges_and_head(server: Server) -> None:
    data = image(size=(600, 400))
    path = upload(server, "cover", "o.png", data, "image/png")
    whole = get(server, path)
    assert (whole.status, whole.body) == (200, data)
    described = head(server, path)
    assert described.status == 200
    assert described.headers["content-length"] == str(len(data))
    assert described.headers["etag"] == whole.headers["etag"]
    part = get(server, path, Range="bytes=100-199")
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.body == data[100:200]


def test_a_file_that_is_no_image_is_served_as_it_is_for_a_thumbnail(server: Server) -> None:
    text = b"plain notes, " * 500
    path = upload(server, "notes", "n.txt", text, "text/plain")
    original = get(server, path)
    for _ in range(2):
        as_thumb = get(server, f"{path}?thumb=100x100")
        assert as_thumb.body == text
        assert as_thumb.headers["etag"] == original.headers["etag"]
    assert head(server, f"{path}?thumb=100x100").headers["content-length"] == str(len(text))
