"""Thumbnail geometry and generation with Pillow (blocking: run it in an executor).

https://spec.matrix.org/v1.19/client-server-api/#thumbnails

1. "scale" keeps the aspect ratio and fits the image inside the requested box (one side equal to
   the request, the other smaller), as Synapse does.
2. "crop" returns the requested aspect ratio: the largest centred box of that ratio is cut from
   the image, then scaled down to the requested size.
3. Never upscale: when the image is no larger than the request in both directions, the original
   is served as it is (if it is a static JPEG/PNG/GIF/WebP), else re-encoded at its own size; a
   crop the image is too small for is returned at the crop box's own size.
4. Thumbnails are static (the first frame); ``animated=true`` is accepted but not honoured.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported only when a thumbnail is made: it would cost the idle server ~2 MiB RSS.

from edgehs.errors import Codes, MatrixError

# Content types we try to thumbnail, and the only Pillow decoders we let near uploaded bytes.
THUMBNAIL_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"})
PIL_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
FORMAT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                "WEBP": "image/webp"}
# Larger images get 413 M_TOO_LARGE instead of a decode that could exhaust a Pi's memory.
MAX_THUMBNAIL_PIXELS = 7680 * 4320
JPEG_QUALITY = 80
EXIF_ORIENTATION = 0x0112
SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90 degrees: width <-> height

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Thumbnail:
    data: bytes | None  # None: serve the original file, it is already small enough
    content_type: str
    width: int
    height: int


def base_type(content_type: str | None) -> str:
    """``image/PNG; foo=bar`` -> ``image/png``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def can_thumbnail(content_type: str | None) -> bool:
    return base_type(content_type) in THUMBNAIL_TYPES


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, Codes.UNKNOWN, "Cannot generate thumbnails for the requested content")


def scale_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int] | None:
    """The size of a "scale" thumbnail, or None when the source already fits (step 3)."""
    if src_w <= width and src_h <= height:
        return None
    if width * src_h < height * src_w:  # width is the binding side
        return width, max(1, (width * src_h) // src_w)
    return max(1, (height * src_w) // src_h), height


def crop_geometry(src_w: int, src_h: int, width: int, height: int
                  ) -> tuple[Box, tuple[int, int]] | None:
    """(crop box, output size) of a "crop" thumbnail, or None when the source already fits."""
    if src_w <= width and src_h <= height:
        return None
    if src_w * height > src_h * width:  # source is wider than the requested ratio
        box_w, box_h = max(1, (src_h * width) // height), src_h
    else:
        box_w, box_h = src_w, max(1, (src_w * height) // width)
    left, top = (src_w - box_w) // 2, (src_h - box_h) // 2
    box = (left, top, left + box_w, top + box_h)
    # Scale the box down to the request; never up (step 3).
    out = (width, height) if box_w > width else (box_w, box_h)
    return box, out


def _normalise(img: Image.Image) -> Image.Image:
    """RGB or RGBA, so that resizing filters properly (palette images resize coarsely)."""
    alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    mode = "RGBA" if alpha else "RGB"
    return img if img.mode == mode else img.convert(mode)


def _encode(img: Image.Image, source_format: str) -> tuple[bytes, str]:
    out = io.BytesIO()
    if source_format == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), "image/jpeg"
    img.save(out, "PNG")
    return out.getvalue(), "image/png"


def make_thumbnail(path: Path, width: int, height: int, method: str) -> Thumbnail:
    """Read the image at ``path`` and thumbnail it; 400 M_UNKNOWN if it is not a supported
    image, 413 M_TOO_LARGE if it has too many pixels. Blocking."""
    from PIL import Image

    try:
        with Image.open(path, formats=PIL_FORMATS) as img:
            return _thumbnail(img, width, height, method)
    except Image.DecompressionBombError as exc:
        raise MatrixError(413, Codes.TOO_LARGE, "Content is too large to thumbnail") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what broken images raise
        raise cannot_thumbnail() from exc


def _thumbnail(img: Image.Image, width: int, height: int, method: str) -> Thumbnail:
    from PIL import Image, ImageOps

    source_format = img.format or ""
    if img.width * img.height > MAX_THUMBNAIL_PIXELS:
        raise MatrixError(413, Codes.TOO_LARGE, "Content is too large to thumbnail")
    animated = bool(getattr(img, "is_animated", False))
    orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    upright = orientation == 1
    src_w, src_h = img.size[::-1] if orientation in SWAPPED_ORIENTATIONS else img.size
    if method == "crop":
        geometry = crop_geometry(src_w, src_h, width, height)
        target = None if geometry is None else geometry[1]
    else:
        target = scale_size(src_w, src_h, width, height)
    if target is None and not animated and upright and source_format in FORMAT_TYPES:
        # Step 3: small, static and not rotated by EXIF: the original is the thumbnail.
        return Thumbnail(None, FORMAT_TYPES[source_format], src_w, src_h)
    if source_format == "JPEG" and target is not None:
        # Let the JPEG decoder shrink by 1/2..1/8 while decoding: far less memory and time.
        side = max(width, height)
        img.draft("RGB", (side, side))
    img.seek(0)
    frame = _normalise(ImageOps.exif_transpose(img))
    if method == "crop":
        geometry = crop_geometry(frame.width, frame.height, width, height)
        if geometry is not None:
            box, size = geometry
            frame = frame.crop(box)
            if frame.size != size:
                frame = frame.resize(size, Image.Resampling.LANCZOS)
    else:
        size_or_none = scale_size(frame.width, frame.height, width, height)
        if size_or_none is not None:
            frame = frame.resize(size_or_none, Image.Resampling.LANCZOS)
    data, content_type = _encode(frame, source_format)
    return Thumbnail(data, content_type, frame.width, frame.height)
