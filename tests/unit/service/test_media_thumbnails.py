"""Thumbnail geometry (pure) and generation with Pillow on generated images."""

import io
from pathlib import Path

import pytest
from PIL import Image

from edgehs.errors import Codes, MatrixError
from edgehs.service import thumbnails
from edgehs.service.thumbnails import crop_geometry, make_thumbnail, scale_size


@pytest.mark.parametrize(("src", "req", "out"), [
    ((400, 200), (100, 100), (100, 50)),
    ((200, 400), (100, 100), (50, 100)),
    ((1000, 100), (320, 240), (320, 32)),
    ((640, 480), (320, 240), (320, 240)),
    ((100, 50), (320, 240), None),  # smaller: never upscaled
    ((500, 100), (320, 240), (320, 64)),  # bigger in one direction only
])
def test_scale_size(src: tuple[int, int], req: tuple[int, int],
                    out: tuple[int, int] | None) -> None:
    assert scale_size(*src, *req) == out


@pytest.mark.parametrize(("src", "req", "box", "out"), [
    ((400, 200), (96, 96), (100, 0, 300, 200), (96, 96)),
    ((200, 400), (96, 48), (0, 150, 200, 250), (96, 48)),
    # The image is too small for the request in one direction: cut to the ratio, no upscale.
    ((100, 50), (80, 80), (25, 0, 75, 50), (50, 50)),
])
def test_crop_geometry(src: tuple[int, int], req: tuple[int, int],
                       box: tuple[int, int, int, int], out: tuple[int, int]) -> None:
    assert crop_geometry(*src, *req) == (box, out)


def test_crop_geometry_small_source() -> None:
    assert crop_geometry(30, 20, 96, 96) is None


def write_image(path: Path, size: tuple[int, int], fmt: str, mode: str = "RGB",
                **save: object) -> Path:
    Image.new(mode, size, "red" if mode != "P" else 1).save(path, fmt, **save)
    return path


def decode(data: bytes | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(data))


def test_png_scale_and_crop(tmp_path: Path) -> None:
    src = write_image(tmp_path / "a", (400, 200), "PNG", "RGBA")
    scaled = make_thumbnail(src, 100, 100, "scale")
    assert (scaled.content_type, scaled.width, scaled.height) == ("image/png", 100, 50)
    assert decode(scaled.data).size == (100, 50)
    assert decode(scaled.data).mode == "RGBA"
    cropped = make_thumbnail(src, 64, 64, "crop")
    assert decode(cropped.data).size == (64, 64)


def test_jpeg_stays_jpeg_and_uses_draft(tmp_path: Path) -> None:
    src = write_image(tmp_path / "a", (2000, 1500), "JPEG")
    thumb = make_thumbnail(src, 320, 240, "scale")
    assert thumb.content_type == "image/jpeg"
    assert decode(thumb.data).size == (320, 240)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[thumbnails.EXIF_ORIENTATION] = 6  # rotated 90 degrees: shown as 150 x 300
    src = write_image(tmp_path / "a", (300, 150), "JPEG", exif=exif.tobytes())
    thumb = make_thumbnail(src, 100, 100, "scale")
    assert decode(thumb.data).size == (50, 100)


def test_small_static_original_is_its_own_thumbnail(tmp_path: Path) -> None:
    src = write_image(tmp_path / "a", (20, 10), "PNG")
    thumb = make_thumbnail(src, 96, 96, "crop")
    assert (thumb.data, thumb.content_type, thumb.width, thumb.height) == (
        None, "image/png", 20, 10)


def test_small_animated_gif_gets_a_static_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), c) for c in ("red", "green", "blue")]
    src = tmp_path / "a.gif"
    frames[0].save(src, "GIF", save_all=True, append_images=frames[1:])
    thumb = make_thumbnail(src, 96, 96, "scale")
    assert thumb.content_type == "image/png"
    assert decode(thumb.data).size == (20, 10)


def test_not_an_image(tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(MatrixError) as err:
        make_thumbnail(src, 32, 32, "crop")
    assert (err.value.status, err.value.errcode) == (400, Codes.UNKNOWN)


def test_too_many_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thumbnails, "MAX_THUMBNAIL_PIXELS", 100)
    src = write_image(tmp_path / "a", (20, 10), "PNG")
    with pytest.raises(MatrixError) as err:
        make_thumbnail(src, 8, 8, "crop")
    assert (err.value.status, err.value.errcode) == (413, Codes.TOO_LARGE)
