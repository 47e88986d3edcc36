"""Thumbnails: the size syntax a file field declares, and the resized image (Pillow).

Sizes follow PocketBase: `WxH` fills WxH and crops the overflow around the centre, `WxHt` and
`WxHb` crop from the top and the bottom, `WxHf` fits inside WxH without cropping (never
enlarging), `0xH` and `Wx0` keep the aspect ratio. `make_thumb` is synchronous (callers run it
in a thread): it decodes only with the plugin of the sniffed type, refuses images past
`MAX_PIXELS` before decoding them, applies the EXIF orientation, takes the first frame of an
animation and writes no metadata (no EXIF, so no GPS; no ICC profile).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal

from PIL import Image, ImageOps

Mode = Literal["center", "top", "bottom", "fit"]

MAX_PIXELS = 50_000_000  # of the source image, and of the thumbnail
MAX_SIDE = 9999  # what four digits can declare

THUMBABLE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

_SPEC = re.compile(r"([0-9]{1,4})x([0-9]{1,4})([tbf]?)")
_MODES: dict[str, Mode] = {"": "center", "t": "top", "b": "bottom", "f": "fit"}
_SUFFIXES = {mode: suffix for suffix, mode in _MODES.items()}
_CENTERING = {"center": (0.5, 0.5), "top": (0.5, 0.0), "bottom": (0.5, 1.0)}
_DECODERS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
# mime of the source -> (Pillow format, mime, save options) of the thumbnail
_ENCODERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "image/png": ("PNG", "image/png", {}),
    "image/jpeg": ("JPEG", "image/jpeg", {"quality": 85}),
    "image/gif": ("PNG", "image/png", {}),
    "image/webp": ("WEBP", "image/webp", {"quality": 85}),
}
# Pillow's decoders raise any of these on malformed or hostile input.
_DECODE_ERRORS = (
    OSError,  # includes UnidentifiedImageError and truncated data
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
)
# Pillow's own pixel limit (its warning is raised when warnings are errors).
_BOMBS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_TOO_LARGE = "the image is too large"


class ThumbError(Exception):
    """No thumbnail: the image cannot be decoded, or it (or the thumbnail) is too large."""


@dataclass(frozen=True)
class ThumbSpec:
    """A thumbnail size: `width`x`height` (one may be 0: from the aspect ratio) and the mode."""

    width: int
    height: int
    mode: Mode

    def __post_init__(self) -> None:
        if not (0 <= self.width <= MAX_SIDE and 0 <= self.height <= MAX_SIDE):
            raise ValueError(f"thumb sides must be 0-{MAX_SIDE}")
        if self.width == self.height == 0:
            raise ValueError("thumb 0x0 has no size")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}{_SUFFIXES[self.mode]}"


def parse_thumb(text: str) -> ThumbSpec | None:
    """The size `text` names ("100x100", "0x150", "100x100t"), or None when it names none."""
    match = _SPEC.fullmatch(text)
    if match is None or int(match[1]) == int(match[2]) == 0:
        return None
    return ThumbSpec(int(match[1]), int(match[2]), _MODES[match[3]])


def thumb_type(mime: str) -> str:
    """The type of the thumbnails of an image of type `mime` (a GIF's are PNG)."""
    return _ENCODERS[mime][1]


def make_thumb(data: bytes, spec: ThumbSpec, mime: str) -> tuple[bytes, str]:
    """The thumbnail `spec` of the image `data` of type `mime`: (its bytes, its type)."""
    if mime not in THUMBABLE:
        raise ThumbError(f"no thumbnails of {mime}")
    try:
        with Image.open(BytesIO(data), formats=[_DECODERS[mime]]) as source:
            _check_pixels(source.size, _TOO_LARGE)
            source.draft(None, (max(spec.width, spec.height),) * 2)  # JPEG: decode smaller
            image = _upright(source)
        thumb = _resize(image, spec)
        return _encode(thumb, mime)
    except _BOMBS:
        raise ThumbError(_TOO_LARGE) from None
    except _DECODE_ERRORS:
        raise ThumbError("the file is not a decodable image") from None


def _check_pixels(size: tuple[int, int], message: str) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise ThumbError(message)


def _upright(source: Image.Image) -> Image.Image:
    """The first frame, loaded, turned as its EXIF orientation says, in RGB or RGBA."""
    source.load()
    mode = "RGBA" if source.has_transparency_data else "RGB"
    ImageOps.exif_transpose(source, in_place=True)
    image = source.convert(mode)
    image.info.clear()  # EXIF, ICC, XMP, text chunks: none reaches the thumbnail
    return image


def _resize(image: Image.Image, spec: ThumbSpec) -> Image.Image:
    size = _target_size(image.size, spec)
    _check_pixels(size, "the thumbnail would be too large")
    if spec.mode != "fit" and spec.width and spec.height:
        return ImageOps.fit(
            image, size, method=Image.Resampling.LANCZOS, centering=_CENTERING[spec.mode]
        )
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def _target_size(size: tuple[int, int], spec: ThumbSpec) -> tuple[int, int]:
    """The thumbnail's size for a source of `size`."""
    width, height = size
    if spec.width == 0:
        return max(1, round(width * spec.height / height)), spec.height
    if spec.height == 0:
        return spec.width, max(1, round(height * spec.width / width))
    if spec.mode != "fit":
        return spec.width, spec.height
    scale = min(spec.width / width, spec.height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode(image: Image.Image, mime: str) -> tuple[bytes, str]:
    pillow_format, result_mime, options = _ENCODERS[mime]
    if pillow_format == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    out = BytesIO()
    image.save(out, format=pillow_format, **options)
    return out.getvalue(), result_mime
