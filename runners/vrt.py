"""Visual regression: compare two PNG screenshots pixel by pixel.

Pure: bytes in, a value out. Images of different sizes are compared on the union of both
sizes; a pixel that exists in only one of them counts as different.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageChops, UnidentifiedImageError

from runners.errors import ImageInvalid

_HIGHLIGHT = (255, 0, 64)


@dataclass(frozen=True)
class VisualDiff:
    """``diff_share`` is the share of differing pixels (0..1), ``similarity`` is
    ``1 - diff_share``; ``diff_png`` shows the new image faded with differences in red."""

    width: int
    height: int
    differing_pixels: int
    diff_share: float
    similarity: float
    threshold: float
    passed: bool
    diff_png: bytes


def _load(data: bytes, which: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageInvalid(f"the {which} screenshot is not a readable image: {exc}") from exc


def _on_canvas(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(image, (0, 0))
    return canvas


def compare(before: bytes, after: bytes, threshold: float, tolerance: int = 0) -> VisualDiff:
    """Compare two PNGs. ``threshold`` is the least similarity (0..1) that passes, so a
    node's ``threshold: 95`` is 0.95 here; ``tolerance`` (0..255) is the largest channel
    difference still counted as equal. Raises ``ImageInvalid`` for unreadable bytes and
    ``ValueError`` for a threshold or tolerance out of range."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within 0..1, got {threshold}")
    if not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be within 0..255, got {tolerance}")
    old, new = _load(before, "previous"), _load(after, "new")
    width, height = max(old.width, new.width), max(old.height, new.height)
    common = (min(old.width, new.width), min(old.height, new.height))
    old, new = _on_canvas(old, (width, height)), _on_canvas(new, (width, height))

    # Largest difference over the four channels, then a 0/255 mask of differing pixels.
    channels = ImageChops.difference(old, new).split()
    largest = channels[0]
    for channel in channels[1:]:
        largest = ImageChops.lighter(largest, channel)
    mask = largest.point(lambda value: 255 if value > tolerance else 0)
    # Outside the overlap a pixel exists in one image only: always a difference.
    if common != (width, height):
        outside = Image.new("L", (width, height), 255)
        outside.paste(0, (0, 0, *common))
        mask = ImageChops.lighter(mask, outside)

    differing = mask.histogram()[255]
    total = width * height
    share = differing / total if total else 0.0
    similarity = 1.0 - share
    return VisualDiff(
        width=width,
        height=height,
        differing_pixels=differing,
        diff_share=share,
        similarity=similarity,
        threshold=threshold,
        passed=similarity >= threshold,
        diff_png=_diff_image(new, mask),
    )


def _diff_image(new: Image.Image, mask: Image.Image) -> bytes:
    # The new screenshot, greyed and faded so the red differences stand out.
    faded = Image.blend(
        new.convert("L").convert("RGB"), Image.new("RGB", new.size, (255, 255, 255)), 0.6
    )
    red = Image.new("RGB", new.size, _HIGHLIGHT)
    out = io.BytesIO()
    Image.composite(red, faded, mask).save(out, format="PNG")
    return out.getvalue()
