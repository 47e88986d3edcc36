"""Thumbnails: the size syntax, PocketBase's resize modes, formats, orientation, and limits."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image, ImageDraw

from baas.storage.thumbs import (
    MAX_PIXELS,
    THUMBABLE,
    ThumbError,
    ThumbSpec,
    make_thumb,
    parse_thumb,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def banded(fmt: str = "PNG") -> bytes:
    """400x300: a red top third, a green middle third, a blue bottom third."""
    image = Image.new("RGB", (400, 300), GREEN)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 399, 99), fill=RED)
    draw.rectangle((0, 200, 399, 299), fill=BLUE)
    return encode(image, fmt)


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring `width`x`height` 1-bit pixels: cheap to make, a bomb to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def thumb(data: bytes, size: str, mime: str = "image/png") -> Image.Image:
    spec = parse_thumb(size)
    assert spec is not None
    out, _ = make_thumb(data, spec, mime)
    return Image.open(io.BytesIO(out))


def close(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("100x100", (100, 100)),
        ("100x25", (100, 25)),
        ("100x100t", (100, 100)),
        ("100x100b", (100, 100)),
        ("800x800", (800, 800)),  # crop modes enlarge, as PocketBase's do
        ("100x100f", (100, 75)),
        ("30x100f", (30, 22)),
        ("800x800f", (400, 300)),  # fit never enlarges
        ("0x150", (200, 150)),
        ("80x0", (80, 60)),
        ("0x600", (800, 600)),
        ("0x150f", (200, 150)),
    ],
)
def test_sizes(size: str, expected: tuple[int, int]) -> None:
    assert thumb(banded(), size).size == expected


@pytest.mark.parametrize(
    ("size", "colour"),
    [("100x25t", RED), ("100x25", GREEN), ("100x25b", BLUE)],
)
def test_crop_anchor(size: str, colour: tuple[int, int, int]) -> None:
    """100x25 of a 400x300 image keeps a 400x100 band: the top, middle or bottom third."""
    image = thumb(banded(), size).convert("RGB")
    for xy in [(0, 0), (99, 0), (0, 24), (99, 24), (50, 12)]:
        assert close(image.getpixel(xy), colour), (size, xy)


def test_centre_crop_keeps_all_bands_of_a_square() -> None:
    image = thumb(banded(), "90x90").convert("RGB")
    assert close(image.getpixel((89, 0)), RED)
    assert close(image.getpixel((89, 45)), GREEN)
    assert close(image.getpixel((89, 89)), BLUE)


@pytest.mark.parametrize(
    ("fmt", "mime", "result_mime", "result_format"),
    [
        ("PNG", "image/png", "image/png", "PNG"),
        ("JPEG", "image/jpeg", "image/jpeg", "JPEG"),
        ("GIF", "image/gif", "image/png", "PNG"),
        ("WEBP", "image/webp", "image/webp", "WEBP"),
    ],
)
def test_formats(fmt: str, mime: str, result_mime: str, result_format: str) -> None:
    data, made = make_thumb(banded(fmt), ThumbSpec(50, 50, "center"), mime)
    assert made == result_mime
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == result_format
        assert image.size == (50, 50)


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_transparency_is_kept(fmt: str, mime: str) -> None:
    source = encode(Image.new("RGBA", (40, 40), (255, 0, 0, 0)), fmt)
    image = thumb(source, "20x20", mime)
    assert image.mode == "RGBA"
    pixel = image.getpixel((10, 10))
    assert isinstance(pixel, tuple) and pixel[3] == 0


def test_palette_png_with_transparency() -> None:
    source = Image.new("P", (40, 40), 0)
    source.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    source.paste(1, (20, 0, 40, 40))
    image = thumb(encode(source, "PNG", transparency=0), "20x20")
    assert image.mode == "RGBA"
    left = image.getpixel((0, 10))
    assert isinstance(left, tuple) and left[3] == 0
    assert close(image.getpixel((19, 10)), BLUE)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in (RED, BLUE)]
    source = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    data, mime = make_thumb(source, ThumbSpec(20, 20, "center"), "image/gif")
    assert mime == "image/png"
    with Image.open(io.BytesIO(data)) as image:
        assert not getattr(image, "is_animated", False)
        assert close(image.convert("RGB").getpixel((10, 10)), RED)


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in (RED, BLUE)]
    source = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    image = thumb(source, "20x20", "image/webp")
    assert not getattr(image, "is_animated", False)
    assert close(image.convert("RGB").getpixel((10, 10)), RED)


def exif_jpeg(orientation: int) -> bytes:
    image = Image.new("RGB", (400, 300), RED)
    ImageDraw.Draw(image).rectangle((0, 0, 199, 299), fill=BLUE)  # left half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Camera Maker"
    exif[0x8825] = {0x0001: "N", 0x0002: (51.0, 30.0, 0.0)}  # GPS
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied() -> None:
    """Orientation 6: the camera was turned; shown rotated 90 degrees clockwise (portrait)."""
    image = thumb(exif_jpeg(6), "150x0", "image/jpeg")
    assert image.size == (150, 200)
    rgb = image.convert("RGB")
    assert close(rgb.getpixel((75, 5)), BLUE)  # the left half is now on top
    assert close(rgb.getpixel((75, 195)), RED)


def test_thumbnails_carry_no_metadata() -> None:
    image = thumb(exif_jpeg(1), "100x0", "image/jpeg")
    assert image.size == (100, 75)
    assert "exif" not in image.info
    assert not image.getexif()
    assert "icc_profile" not in image.info


def test_png_text_and_icc_are_not_copied() -> None:
    from PIL import ImageCms, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(Image.new("RGB", (40, 40), RED), "PNG", pnginfo=info, icc_profile=icc)
    image = thumb(source, "20x20")
    assert "Comment" not in image.info
    assert "icc_profile" not in image.info


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, banded()[:200]],
    ids=["empty", "text", "png signature only", "truncated png"],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ThumbError, match="not a decodable image"):
        make_thumb(data, ThumbSpec(10, 10, "center"), "image/png")


def test_decoders_are_those_of_the_declared_type() -> None:
    with pytest.raises(ThumbError):
        make_thumb(banded("PNG"), ThumbSpec(10, 10, "center"), "image/jpeg")


@pytest.mark.parametrize("mime", ["image/svg+xml", "image/tiff", "application/pdf"])
def test_other_types_have_no_thumbnails(mime: str) -> None:
    assert mime not in THUMBABLE
    with pytest.raises(ThumbError):
        make_thumb(banded(), ThumbSpec(10, 10, "center"), mime)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (8000, 8000),  # 64 MP: past our limit, under Pillow's
        (10000, 10000),  # 100 MP: Pillow warns
        (20000, 20000),  # 400 MP: Pillow refuses
    ],
)
def test_huge_images_are_refused_before_decoding(width: int, height: int) -> None:
    assert width * height > MAX_PIXELS
    started = time.perf_counter()
    with pytest.raises(ThumbError, match="the image is too large"):
        make_thumb(png_header(width, height), ThumbSpec(100, 100, "center"), "image/png")
    assert time.perf_counter() - started < 1


def test_huge_thumbnails_of_extreme_aspect_ratios_are_refused() -> None:
    tall = encode(Image.new("L", (1, 10000)), "PNG")
    with pytest.raises(ThumbError, match="thumbnail would be too large"):
        make_thumb(tall, ThumbSpec(1000, 0, "center"), "image/png")


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("100x100", ThumbSpec(100, 100, "center")),
        ("100x50t", ThumbSpec(100, 50, "top")),
        ("100x50b", ThumbSpec(100, 50, "bottom")),
        ("100x50f", ThumbSpec(100, 50, "fit")),
        ("0x150", ThumbSpec(0, 150, "center")),
        ("80x0", ThumbSpec(80, 0, "center")),
        ("9999x9999", ThumbSpec(9999, 9999, "center")),
        ("0x10f", ThumbSpec(0, 10, "fit")),
    ],
)
def test_parse_thumb(text: str, spec: ThumbSpec) -> None:
    assert parse_thumb(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize(
    "text",
    [
        "0x0",
        "0x0f",
        "x100",
        "100x",
        "100x100z",
        "10000x1",
        "1x10000",
        "100X100",
        " 100x100",
        "100x100\n",
        "-1x10",
        "\u0661\u0660\u0660x100",
        "",
    ],
)
def test_parse_thumb_refuses(text: str) -> None:
    assert parse_thumb(text) is None


def test_leading_zeros_are_not_canonical() -> None:
    assert str(parse_thumb("0100x050")) == "100x50"


@pytest.mark.parametrize(("width", "height"), [(0, 0), (-1, 10), (10000, 10)])
def test_thumb_spec_refuses_impossible_sizes(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="thumb"):
        ThumbSpec(width, height, "center")
