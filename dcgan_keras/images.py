"""Pure NumPy helpers for images in [-1, 1]: grids, uint8 conversion, PNG files."""

from __future__ import annotations

import os

import numpy as np

from dcgan_keras.files import atomic_path


def to_uint8(images) -> np.ndarray:
    """Maps pixel values in [-1, 1] to uint8 in [0, 255] (values outside are clipped)."""
    images = np.asarray(images, dtype="float32")
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype("uint8")


def from_uint8(pixels) -> np.ndarray:
    """Maps uint8 pixels in [0, 255] back to float32 values in [-1, 1] (the inverse of `to_uint8`)."""
    return np.asarray(pixels, dtype="float32") / 127.5 - 1.0


def image_grid(images, rows: int | None = None, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tiles a batch of images into one image.

    Args:
        images: array `(N, H, W, C)` with pixel values in [-1, 1].
        rows: number of rows; by default the grid is as square as possible.
        padding: pixels between images and around the grid.
        pad_value: pixel value of the padding, in [-1, 1].

    Returns:
        float32 array `(rows * (H + p) + p, cols * (W + p) + p, C)` in [-1, 1].
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "image_grid needs a non-empty batch of shape (N, H, W, C). "
            f"Received: images of shape {images.shape}"
        )
    n, height, width, channels = images.shape
    if rows is None:
        rows = int(np.floor(np.sqrt(n)))
        while n % rows and rows > 1 and (n + rows - 1) // rows * rows - n >= rows:
            rows -= 1
    if not 1 <= rows <= n:
        raise ValueError(
            f"rows must be in 1..{n}: a grid of {n} image(s) has at most {n} row(s). Received: rows={rows}"
        )
    cols = -(-n // rows)
    grid = np.full(
        (rows * (height + padding) + padding, cols * (width + padding) + padding, channels),
        pad_value, dtype="float32",
    )
    for index, image in enumerate(images):
        r, c = divmod(index, cols)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(image, path) -> str:
    """Writes one image in [-1, 1] of shape `(H, W, C)` as a PNG, atomically."""
    from PIL import Image

    pixels = to_uint8(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return os.fspath(path)


# The formats `save_image` writes, by file extension (all of them lossless but JPEG).
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def image_format(path, option: str = "path") -> str:
    """The PIL format named by `path`'s extension (`IMAGE_FORMATS`), or a ValueError naming `option`."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in IMAGE_FORMATS:
        raise ValueError(
            f"Cannot tell which image format to write from the name {os.fspath(path)!r}: end it with one of "
            f"{', '.join(IMAGE_FORMATS)} (e.g. grid.png). Received: {option}={os.fspath(path)!r}"
        )
    return IMAGE_FORMATS[extension]


def save_image(image, path) -> str:
    """Writes one image in [-1, 1] of shape `(H, W, C)` atomically, in the format its extension names.

    `.png` (as `save_png`), `.jpg`/`.jpeg` (quality 95), `.webp` (lossless), `.bmp`,
    `.gif`, `.tif`/`.tiff`; any other name is a ValueError, raised before anything is written.
    """
    from PIL import Image

    image_format_ = image_format(path)
    pixels = to_uint8(image)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(image_format_, {})
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format=image_format_, **options)
    return os.fspath(path)


def numbered_grid(images, path, scale: int = 2) -> str:
    """Writes a grid of images in [-1, 1] with each image's index drawn in its corner.

    Args:
        images: `(N, H, W, C)` images in [-1, 1].
        path: the PNG file to write (its folder is created).
        scale: nearest-neighbour upscaling, so that the numbers stay legible.

    Returns:
        `path`.
    """
    from PIL import Image, ImageDraw

    images = np.asarray(images, dtype="float32")
    n, h, w, _ = images.shape
    padding = 2
    grid = to_uint8(image_grid(images, padding=padding))
    pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).convert("RGB")
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    cols = (grid.shape[1] - padding) // (w + padding)
    for i in range(n):
        r, c = divmod(i, cols)
        x, y = (padding + c * (w + padding)) * scale, (padding + r * (h + padding)) * scale
        draw.rectangle([x, y, x + 6 * len(str(i)) + 2, y + 11], fill=(255, 255, 0))
        draw.text((x + 1, y), str(i), fill=(255, 0, 0))
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    pil.save(path)
    return os.fspath(path)
