"""Image sources -> `tf.data` batches of images with pixel values in [-1, 1].

Sources:
- `"digits"`: 5,000 real MNIST digits bundled with the package (offline default).
- `"tfds:NAME[:SPLIT]"`: any TensorFlow Datasets image dataset, e.g.
  `"tfds:celeb_a"`, `"tfds:cifar10:train"`, `"tfds:lsun/bedroom"`.
- a folder of images (searched recursively; jpg, jpeg, png, bmp, gif).
- a NumPy array of shape `(N, H, W)` or `(N, H, W, C)`: uint8 in [0, 255] or
  floats in [0, 1].

Every image is centre-cropped to a square, resized to `image_size`, converted
to the requested number of channels and scaled to [-1, 1]. No augmentation,
as in the paper.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan_keras import _backend  # noqa: F401
import tensorflow as tf

from dcgan_keras.config import SUPPORTED_CHANNELS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DIGITS = "digits"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: 5,000 MNIST images (500 per class) and their labels.

    Returns:
        `(images, labels)`: uint8 arrays of shapes `(5000, 28, 28)` (0 is
        background, 255 ink) and `(5000,)` (0..9).
    """
    with resources.files("dcgan_keras").joinpath("assets/mnist_5k.npz").open("rb") as f:
        with np.load(f) as data:
            return data["images"], data["labels"]


def preprocess(images: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """Centre crop, resize, channel conversion and scaling to [-1, 1].

    Args:
        images: a batch `(N, H, W, C)` or one image `(H, W, C)`, uint8 in
            [0, 255] or float in [0, 1], with C in {1, 3, 4}.
        image_size: side of the square output.
        channels: 1 or 3.

    Returns:
        float32 images of side `image_size` with `channels` channels, in [-1, 1].
    """
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    if images.shape[-1] == 4:  # RGBA: drop alpha
        images = images[..., :3]
    height, width = tf.shape(images)[-3], tf.shape(images)[-2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    images = images[..., top : top + side, left : left + side, :]
    images = tf.image.resize(images, (image_size, image_size), method="area", antialias=True)
    if images.shape[-1] == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    elif images.shape[-1] == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    return tf.clip_by_value(images * 2.0 - 1.0, -1.0, 1.0)


def make_dataset(
    source="digits",
    image_size: int = 32,
    channels: int | None = None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool | str = True,
    drop_remainder: bool = True,
    data_dir: str | None = None,
) -> tf.data.Dataset:
    """Turns an image source into shuffled batches in [-1, 1].

    Args:
        source: `"digits"`, `"tfds:NAME[:SPLIT]"`, a folder path, or a NumPy
            array (see the module docstring).
        image_size: side of the square images.
        channels: 1 or 3; `None` keeps the source's own (digits: 1, folders: 3).
        batch_size: images per batch.
        shuffle: shuffle every epoch.
        seed: shuffle seed, for repeatable runs.
        cache: cache the preprocessed images in memory (`True`) or in a file
            (a path); `False` for datasets that do not fit.
        drop_remainder: drop the last, smaller batch (batch norm prefers
            equal batches).
        data_dir: where TFDS keeps its datasets (TFDS' default when `None`).

    Returns:
        A `tf.data.Dataset` of float32 batches `(batch, image_size, image_size, channels)`.

    Example:

    ```python
    ds = make_dataset("digits", image_size=32, batch_size=128)
    ds = make_dataset("tfds:celeb_a", image_size=64)
    ds = make_dataset("path/to/images/", image_size=64)
    ```
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size}")
    if channels is not None and channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 1, 3 or None (keep the source's). Received: channels={channels}")
    images, size_hint = _source_images(source, channels, data_dir, image_size)
    channels = channels or _native_channels(images)

    ds = images.map(
        lambda image: preprocess(image, image_size, channels),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if cache:
        ds = ds.cache() if cache is True else ds.cache(str(cache))
    if shuffle:
        ds = ds.shuffle(min(size_hint or 10_000, 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def infer_channels(source) -> int:
    """The number of channels `make_dataset(source)` yields by default."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return 3  # folders are read as RGB unless channels=1 is asked for
    images, _ = _source_images(source, None, None)
    return _native_channels(images)


def _native_channels(images: tf.data.Dataset) -> int:
    channels = images.element_spec.shape[-1]
    return 1 if channels == 1 else 3


def _source_images(source, channels, data_dir, image_size=None) -> tuple[tf.data.Dataset, int | None]:
    """A dataset of single images (H, W, C) and, when known, its size."""
    if isinstance(source, np.ndarray):
        return array_images(source), len(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be 'digits', 'tfds:NAME[:SPLIT]', a folder path or a NumPy "
            f"array. Received: source of type {type(source).__name__}"
        )
    source = os.fspath(source)
    if source == DIGITS:
        images, _ = load_digits()
        return array_images(images), len(images)
    if source.startswith("tfds:"):
        return _tfds_images(source[len("tfds:"):], data_dir)
    if os.path.isdir(source):
        return _folder_images(source, image_size)
    hint = (
        "a folder of images that does not exist" if os.sep in source or "/" in source
        else "an unknown dataset name"
    )
    raise ValueError(
        f"Cannot read images from {source!r}: it looks like {hint}. Use 'digits' "
        "(the bundled MNIST digits), 'tfds:NAME[:SPLIT]' for a TensorFlow Datasets "
        "dataset (e.g. 'tfds:celeb_a'), or the path of an existing folder of "
        f"images. Received: source={source!r}"
    )


def array_images(array: np.ndarray) -> tf.data.Dataset:
    """A validated NumPy array of images (uint8 or float in [0, 1]) as a dataset of single images."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or len(array) == 0:
        raise ValueError(
            "A NumPy source must be a non-empty array of shape (N, H, W) or "
            f"(N, H, W, C) with C in (1, 3, 4). Received: array of shape {array.shape}"
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            hint = (
                " If the values are 0..255, pass array.astype('uint8')."
                if np.issubdtype(array.dtype, np.integer) else ""
            )
            raise ValueError(
                "A NumPy source must be uint8 in [0, 255] or float in [0, 1]."
                f"{hint} Received: dtype={array.dtype}"
            )
        finite = np.isfinite(array).reshape(len(array), -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(
                f"A NumPy source contains NaN or Inf values in {len(bad)} of {len(array)} images "
                f"(indices {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''}); drop them first, "
                "e.g. array[np.isfinite(array).reshape(len(array), -1).all(axis=1)]."
            )
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                "Float NumPy images must be in [0, 1] (divide uint8 images by 255). "
                f"Received: values in [{low:.3g}, {high:.3g}]"
            )
        array = array.astype("float32")
    return tf.data.Dataset.from_tensor_slices(array)


def list_image_files(folder) -> list[str]:
    """Image files under `folder` (recursively, by extension), sorted."""
    files = sorted(
        str(p) for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        others = [p.name for p in Path(folder).rglob("*") if p.is_file()]
        found = (
            f"it holds {len(others)} other file(s), e.g. {', '.join(others[:3])}" if others
            else "it is empty"
        )
        raise ValueError(
            f"No images found in folder {os.fspath(folder)!r} (searched recursively "
            f"for {', '.join(IMAGE_EXTENSIONS)}; {found}). Point --dataset at a folder "
            "that holds image files (convert other formats to PNG or JPEG first)."
        )
    return files


@dataclasses.dataclass
class FolderScan:
    """What `scan_image_folder` found.

    Attributes:
        readable: image files that decode completely, sorted.
        unreadable: `{path: reason}` for files with an image extension that
            are empty, truncated, corrupt or not images at all.
        other_files: files without an image extension (never read).
        small: readable images whose shorter side is below `image_size`.
        modes: how many readable images have each PIL mode ("L", "RGB",
            "RGBA", "P", ...); all are converted to the requested channels.
    """

    readable: list[str]
    unreadable: dict[str, str]
    other_files: list[str]
    small: list[str]
    modes: dict[str, int]


def _check_image(path: str, image_size: int | None) -> tuple[str | None, bool, str | None]:
    """(error or None, is_small, mode) for one file, decoding it completely."""
    try:
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
            if image.format == "JPEG" and image_size:
                image.draft(image.mode, (image_size, image_size))  # decode at reduced scale: fast
            image.load()  # reads every byte: truncated files fail here
    except Exception as error:  # PIL raises many types; all mean "cannot be used"
        return f"{type(error).__name__}: {error}", False, None
    small = bool(image_size) and min(width, height) < image_size
    return None, small, mode


def scan_image_folder(folder, image_size: int | None = None) -> FolderScan:
    """Decodes every image file under `folder` once and sorts out the bad ones.

    Files are decoded completely (JPEGs at reduced scale, which is fast), so
    truncated files are caught as well as empty, corrupt and mislabelled ones.

    Args:
        folder: a folder of images (searched recursively).
        image_size: side the images will be resized to; images whose shorter
            side is smaller are listed in `small`.

    Returns:
        A `FolderScan`.

    Raises:
        ValueError: when the folder holds no readable image.
    """
    folder = os.fspath(folder)
    files = list_image_files(folder)
    image_files = set(files)
    other = sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and str(p) not in image_files)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        results = list(pool.map(lambda f: _check_image(f, image_size), files))
    scan = FolderScan([], {}, other, [], {})
    for path, (error, small, mode) in zip(files, results):
        if error:
            scan.unreadable[path] = error
            continue
        scan.readable.append(path)
        scan.modes[mode] = scan.modes.get(mode, 0) + 1
        if small:
            scan.small.append(path)
    if not scan.readable:
        examples = "; ".join(f"{os.path.basename(p)} ({r})" for p, r in list(scan.unreadable.items())[:3])
        raise ValueError(
            f"None of the {len(files)} image files in folder {folder!r} can be read: {examples}. "
            "They are empty, truncated or not images; replace them with valid PNG or JPEG files."
        )
    return scan


def _warn_about(scan: FolderScan, folder: str, image_size: int | None) -> None:
    total = len(scan.readable) + len(scan.unreadable)
    if scan.unreadable:
        examples = "; ".join(f"{os.path.relpath(p, folder)} ({r})" for p, r in list(scan.unreadable.items())[:5])
        warnings.warn(
            f"Skipped {len(scan.unreadable)} of {total} image files in {folder!r} that cannot be "
            f"read (empty, truncated, corrupt or not images): {examples}. Training uses the other "
            f"{len(scan.readable)}; fix or remove those files to silence this warning "
            "(dcgan_keras.data.scan_image_folder lists them all).",
            stacklevel=5,
        )
    if scan.other_files:
        examples = ", ".join(os.path.relpath(p, folder) for p in scan.other_files[:5])
        warnings.warn(
            f"Ignored {len(scan.other_files)} file(s) in {folder!r} without an image extension "
            f"({', '.join(IMAGE_EXTENSIONS)}): {examples}.",
            stacklevel=5,
        )
    if scan.small:
        warnings.warn(
            f"{len(scan.small)} of {len(scan.readable)} images in {folder!r} are smaller than "
            f"{image_size}x{image_size} (e.g. {os.path.relpath(scan.small[0], folder)}); they are "
            "upscaled and will look blurry. Use a smaller image_size (--image-size) or remove them.",
            stacklevel=5,
        )


def folder_images(folder, image_size: int | None = None, skip_errors: bool = True) -> tuple[tf.data.Dataset, list[str]]:
    """The readable images under `folder`, decoded as uint8 RGB, and their paths.

    The folder is checked with `scan_image_folder` first: unreadable files
    are left out, and they, other files and small images are counted in a
    warning.

    Args:
        folder: a folder of images (searched recursively, sorted by path).
        image_size: the training size, for the small-image warning.
        skip_errors: also skip, with a log line, a file that fails to decode
            later (changed on disk after the scan). Off, the i-th image is
            always the i-th path.

    Returns:
        `(dataset, paths)`: a dataset of `(H, W, 3)` uint8 images in the
        order of `paths`.
    """
    folder = os.fspath(folder)
    scan = scan_image_folder(folder, image_size)
    _warn_about(scan, folder, image_size)

    def read(path):
        # Always decoded as RGB (preprocess converts to gray): libjpeg cannot
        # turn CMYK JPEGs into one channel directly.
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    ds = tf.data.Dataset.from_tensor_slices(scan.readable).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return (ds.ignore_errors(log_warning=True) if skip_errors else ds), scan.readable


def _folder_images(folder: str, image_size: int | None) -> tuple[tf.data.Dataset, int]:
    ds, paths = folder_images(folder, image_size)
    return ds, len(paths)


def _tfds_images(spec: str, data_dir: str | None) -> tuple[tf.data.Dataset, int | None]:
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    split = split or "train"
    if not name:
        raise ValueError(f"Name a TFDS dataset, e.g. 'tfds:mnist'. Received: source='tfds:{spec}'")
    try:
        ds, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True, shuffle_files=True)
    except Exception as error:  # tfds raises many types; all mean "could not load"
        raise RuntimeError(
            f"Could not load TFDS dataset {name!r} (split {split!r}): {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}\n"
            "If the dataset is not on disk yet, TFDS must download it, which needs "
            "network access: run once on a connected machine (e.g. `tfds build "
            f"{name}` or this same command), then copy the data folder here and pass "
            "data_dir (--data-dir). Check the name and split against the TFDS catalog. "
            "Offline, use the bundled 'digits' or a folder of images."
        ) from error
    features = info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS dataset {name!r} has no 'image' feature (its features are "
            f"{sorted(features.keys())}); pick an image dataset."
        )
    size = None
    try:
        size = info.splits[split].num_examples
    except Exception:  # composite split strings such as 'train[:10%]'
        pass
    return ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE), size
