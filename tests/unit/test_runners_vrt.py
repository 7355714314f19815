"""Visual regression on synthetic PNGs."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from runners.errors import ImageInvalid
from runners.vrt import compare


def png(width: int, height: int, color: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def with_box(base: bytes, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> bytes:
    image = Image.open(io.BytesIO(base)).convert("RGB")
    image.paste(color, box)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_identical_images_are_fully_similar() -> None:
    diff = compare(png(100, 50), png(100, 50), threshold=1.0)
    assert diff.differing_pixels == 0
    assert diff.similarity == 1.0
    assert diff.passed


def test_changed_area_is_the_share_of_differing_pixels() -> None:
    before = png(100, 100)
    after = with_box(before, (0, 0, 10, 10), (255, 0, 0))
    diff = compare(before, after, threshold=0.95)
    assert diff.differing_pixels == 100
    assert diff.diff_share == pytest.approx(0.01)
    assert diff.similarity == pytest.approx(0.99)
    assert diff.passed
    assert not compare(before, after, threshold=0.995).passed


def test_diff_image_marks_differences_in_red() -> None:
    before = png(20, 20)
    diff = compare(before, with_box(before, (5, 5, 6, 6), (0, 0, 0)), threshold=0.9)
    image = Image.open(io.BytesIO(diff.diff_png)).convert("RGB")
    assert image.size == (20, 20)
    assert image.getpixel((5, 5)) == (255, 0, 64)
    assert image.getpixel((0, 0)) != (255, 0, 64)


def test_different_sizes_count_the_missing_area_as_different() -> None:
    diff = compare(png(100, 100), png(100, 150), threshold=0.5)
    assert (diff.width, diff.height) == (100, 150)
    assert diff.differing_pixels == 100 * 50
    assert diff.similarity == pytest.approx(1 - 5000 / 15000)
    # Wider and taller the other way: the corner that neither has counts too.
    diff = compare(png(120, 100), png(100, 120), threshold=0.0)
    assert diff.differing_pixels == 120 * 120 - 100 * 100


def test_tolerance_ignores_small_channel_differences() -> None:
    before, after = png(10, 10, (100, 100, 100)), png(10, 10, (103, 100, 100))
    assert compare(before, after, threshold=1.0).differing_pixels == 100
    assert compare(before, after, threshold=1.0, tolerance=3).differing_pixels == 0


def test_unreadable_bytes_and_bad_thresholds() -> None:
    with pytest.raises(ImageInvalid):
        compare(b"not a png", png(1, 1), threshold=0.9)
    with pytest.raises(ValueError):
        compare(png(1, 1), png(1, 1), threshold=95)
