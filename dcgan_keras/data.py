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

import os
from importlib import resources
from pathlib import Path

import numpy as np

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
    images, size_hint = _source_images(source, channels, data_dir)
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
    images, _ = _source_images(source, None, None)
    return _native_channels(images)


def _native_channels(images: tf.data.Dataset) -> int:
    channels = images.element_spec.shape[-1]
    return 1 if channels == 1 else 3


def _source_images(source, channels, data_dir) -> tuple[tf.data.Dataset, int | None]:
    """A dataset of single images (H, W, C) and, when known, its size."""
    if isinstance(source, np.ndarray):
        return _array_images(source), len(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be 'digits', 'tfds:NAME[:SPLIT]', a folder path or a NumPy "
            f"array. Received: source of type {type(source).__name__}"
        )
    source = os.fspath(source)
    if source == DIGITS:
        images, _ = load_digits()
        return _array_images(images), len(images)
    if source.startswith("tfds:"):
        return _tfds_images(source[len("tfds:"):], data_dir)
    if os.path.isdir(source):
        return _folder_images(source, channels)
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


def _array_images(array: np.ndarray) -> tf.data.Dataset:
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
            raise ValueError(
                "A NumPy source must be uint8 in [0, 255] or float in [0, 1]. "
                f"Received: dtype={array.dtype}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError("A NumPy source contains NaN or Inf values; clean or drop those images first.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                "Float NumPy images must be in [0, 1] (divide uint8 images by 255). "
                f"Received: values in [{low:.3g}, {high:.3g}]"
            )
        array = array.astype("float32")
    return tf.data.Dataset.from_tensor_slices(array)


def list_image_files(folder) -> list[str]:
    """Image files under `folder` (recursively), sorted."""
    files = sorted(
        str(p) for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise ValueError(
            f"No images found in folder {os.fspath(folder)!r} (searched recursively "
            f"for {', '.join(IMAGE_EXTENSIONS)}). Point --dataset at a folder that "
            "holds image files."
        )
    return files


def _folder_images(folder: str, channels: int | None) -> tuple[tf.data.Dataset, int]:
    files = list_image_files(folder)
    channels = channels or 3

    def read(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        return image

    ds = tf.data.Dataset.from_tensor_slices(files).map(read, num_parallel_calls=tf.data.AUTOTUNE)
    return ds, len(files)


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
