"""Image sources: what a source names (`resolve_source`, the one dispatcher), and opening it.

Sources:
- `"digits"`: 5,000 real MNIST digits bundled with the package (offline default).
- `"twemoji"`: 3,491 colour emoji at 64x64 bundled with the package (`load_twemoji`).
- `"tfds:NAME[:SPLIT]"`: any TensorFlow Datasets image dataset, e.g.
  `"tfds:celeb_a"`, `"tfds:cifar10:train"`, `"tfds:lsun/bedroom"` (`load_tfds`).
- a folder of images (searched recursively; jpg, jpeg, png, bmp, gif): `folders`.
- a NumPy array of shape `(N, H, W)` or `(N, H, W, C)`: uint8 in [0, 255] or
  floats in [0, 1].

Training opens a source with `open_source`; `load_labelled` reads images with their
labels; the de-duplication experiment reads images in order. All three ask
`resolve_source` what a source is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from importlib import resources

import numpy as np

import tensorflow as tf

from dcgan_keras.data import folders

DIGITS = "digits"
TWEMOJI = "twemoji"
# The kinds of source, as messages name them: short, and with what they are.
_KINDS = {
    "digits": ("'digits'", "'digits' (the bundled MNIST digits)"),
    "twemoji": ("'twemoji'", "'twemoji' (the bundled colour emoji)"),
    "tfds": ("'tfds:NAME[:SPLIT]'", "'tfds:NAME[:SPLIT]' for a TensorFlow Datasets dataset (e.g. 'tfds:celeb_a')"),
    "folder": ("a folder path", "the path of an existing folder of images"),
    "numpy_file": ("a .npy/.npz file", "the path of a .npy or .npz file of images"),
    "array": ("a NumPy array", "a NumPy array"),
}
# What each kind is, for a source of a kind that is not read where it was given.
_WHAT = {
    "digits": "the bundled digits", "twemoji": "the bundled Twemoji", "tfds": "a TFDS dataset",
    "folder": "a folder", "numpy_file": "a NumPy file", "file": "a file", "array": "a NumPy array",
}
# The sources `make_dataset` (training) reads.
TRAINING_SOURCES = ("digits", "twemoji", "tfds", "folder", "array")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: 5,000 MNIST images (500 per class) and their labels.

    Returns:
        `(images, labels)`: uint8 arrays of shapes `(5000, 28, 28)` (0 is
        background, 255 ink) and `(5000,)` (0..9).
    """
    with resources.files("dcgan_keras").joinpath("assets/mnist_5k.npz").open("rb") as f:
        with np.load(f) as data:
            return data["images"], data["labels"]


def load_twemoji() -> dict[str, np.ndarray]:
    """The bundled Twemoji: 3,491 colour emoji at 64x64 and their labels.

    Twemoji graphics are Copyright Twitter, Inc and other contributors, CC BY 4.0
    (https://creativecommons.org/licenses/by/4.0/); the images of the
    emoji-datasource-twitter npm package 16.0.0, composited on white.

    Returns:
        A dict of arrays, one entry per image: `images` (uint8, `(3491, 64, 64, 3)`,
        RGB), `category` (10 Unicode groups, e.g. `"Smileys & Emotion"`), `subcategory`,
        `short_name` (e.g. `"female-technologist-tone3"`), `name`, `base` (the emoji a
        skin-tone variant belongs to), `skin_tone` (0 none, 1 light .. 5 dark), `gender`
        (`"male"`, `"female"`, `"neutral"` or `""`) and `filename`.
    """
    with resources.files("dcgan_keras").joinpath("assets/twemoji_64.npz").open("rb") as f:
        with np.load(f) as data:
            return {key: data[key] for key in data.files}


def twemoji_categories() -> list[str]:
    """The Twemoji categories, sorted: `load_labelled("twemoji")`'s labels index this list."""
    return sorted(set(load_twemoji()["category"].tolist()))


def resolve_source(source, accepted: tuple[str, ...] = TRAINING_SOURCES) -> tuple[str, object]:
    """What an image source names, read from the name alone: the one dispatcher of sources.

    Args:
        source: "digits", "twemoji", "tfds:NAME[:SPLIT]", a folder path, the
            path of a .npy or .npz file, or a NumPy array.
        accepted: the kinds the caller reads, of "digits", "twemoji", "tfds",
            "folder", "numpy_file" and "array".

    Returns:
        `(kind, value)`: the kind, and the array, the TFDS "NAME[:SPLIT]" or
        the path (the name for "digits" and "twemoji").

    Raises:
        TypeError: `source` is neither a path nor an array.
        ValueError: `source` names nothing that exists, or a kind not in
            `accepted`; the message lists what is.
    """
    if isinstance(source, np.ndarray):
        kind, value = "array", source
    elif isinstance(source, (str, os.PathLike)):
        value = os.fspath(source)
        if value in (DIGITS, TWEMOJI):
            kind = value
        elif value.startswith("tfds:"):
            kind = "tfds"
        elif os.path.isdir(value):
            kind = "folder"
        elif os.path.isfile(value) and value.endswith((".npy", ".npz")):
            kind = "numpy_file"
        else:
            kind = "file" if os.path.exists(value) else "missing"
    else:
        names = [_KINDS[k][0] for k in accepted]
        raise TypeError(
            f"source must be {', '.join(names[:-1])} or {names[-1]}. Received: source of type {type(source).__name__}"
        )
    if kind in accepted:
        return kind, value[len("tfds:"):] if kind == "tfds" else value
    names = [_KINDS[k][1] for k in accepted if k != "array"]
    listing = f"{', '.join(names[:-1])}, or {names[-1]}"
    if kind in ("file", "numpy_file") and "folder" in accepted and "numpy_file" not in accepted:
        raise ValueError(
            f"Cannot read images from {value!r}: it is a file, not a folder. Point --dataset at the "
            f"folder that holds the images (e.g. {os.path.dirname(value) or '.'!r}). Received: source={value!r}"
        )
    if kind == "missing":
        hint = (
            "a folder of images that does not exist" if os.sep in value or "/" in value
            else "an unknown dataset name"
        )
        raise ValueError(f"Cannot read images from {value!r}: it looks like {hint}. Use {listing}. Received: source={value!r}")
    shown = f"an array of shape {value.shape}" if kind == "array" else repr(value)
    raise ValueError(
        f"Cannot read images from {shown} here: it is {_WHAT[kind]}, and this reads {listing}. Received: source={shown}"
    )


def load_labelled(dataset: str, max_examples: int | None = None, data_dir: str | None = None):
    """Images and their class labels, for experiments that need labels (the features protocol).

    Args:
        dataset: "digits" (the bundled digits), "twemoji" (the bundled emoji,
            labelled by category: `twemoji_categories()`) or "tfds:NAME[:SPLIT]"
            (a TFDS dataset with labels, e.g. "tfds:cifar10", "tfds:svhn_cropped").
        max_examples: keep at most this many examples (digits: a fixed random
            subset, as they are sorted by class; TFDS: the first ones).
        data_dir: TFDS data folder.

    Returns:
        `(images, labels)` NumPy arrays: the images as stored (uint8 for
        TFDS), labels as int64.
    """
    kind, value = resolve_source(dataset, accepted=("digits", "twemoji", "tfds"))
    if kind == "digits":
        images, labels = load_digits()
        if max_examples:  # the bundled digits are sorted by class: take a random subset
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:max_examples])
            images, labels = images[keep], labels[keep]
    elif kind == "twemoji":
        emoji = load_twemoji()
        images, labels = emoji["images"], np.searchsorted(twemoji_categories(), emoji["category"])
        if max_examples:  # grouped by category: a random subset, as for the digits
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:max_examples])
            images, labels = images[keep], labels[keep]
    else:
        images, labels = _tfds_labelled(value, max_examples, data_dir)
    if max_examples:
        images, labels = images[:max_examples], labels[:max_examples]
    return images, np.asarray(labels).astype("int64")


def _tfds_labelled(spec: str, max_examples: int | None, data_dir: str | None):
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    split = split or "train"
    if max_examples and "[" not in split:
        split = f"{split}[:{int(max_examples)}]"
    ds, _, name, split = load_tfds(f"{name}:{split}", data_dir, labels=True)
    images, labels = [], []
    for image, label in tfds.as_numpy(ds):
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty.")
    return np.stack(images), np.asarray(labels)


def load_tfds(
    spec: str, data_dir: str | None = None, labels: bool = False, shuffle_files: bool = False
) -> tuple[tf.data.Dataset, int | None, str, str]:
    """One split of a TFDS image dataset: the one TFDS loader, for training and for labelled images.

    Args:
        spec: "NAME[:SPLIT]" ("train" when no split is given), e.g. "cifar10:test".
        data_dir: where TFDS keeps its datasets (TFDS' default when `None`).
        labels: elements are `(image, label)` (TFDS' `as_supervised`); else images.
        shuffle_files: read the split's files in a random order.

    Returns:
        `(dataset, size, name, split)`: size is the number of examples TFDS
        records for the split, `None` when it records none (e.g. 'train[:10%]').
    """
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    split = split or "train"
    if not name:
        raise ValueError(f"Name a TFDS dataset, e.g. 'tfds:mnist'. Received: source='tfds:{spec}'")
    try:
        ds, info = tfds.load(
            name, split=split, data_dir=data_dir, with_info=True, as_supervised=labels, shuffle_files=shuffle_files
        )
    except Exception as error:  # tfds raises many types; all mean "could not load"
        offline = "'twemoji'" if labels else "a folder of images"  # a folder has no labels
        raise RuntimeError(
            f"Could not load TFDS dataset {name!r} (split {split!r}){' with labels' if labels else ''}: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}\n"
            "If the dataset is not on disk yet, TFDS must download it, which needs "
            "network access: run once on a connected machine (e.g. `tfds build "
            f"{name}` or this same command), then copy the data folder here and pass "
            "data_dir (--data-dir). Check the name and split against the TFDS catalog. "
            f"Offline, use the bundled 'digits' or {offline}."
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
    if not labels:
        ds = ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)
    return ds, size, name, split


# -- opening a source for training ---------------------------------------------------------


@dataclasses.dataclass
class Source:
    """An opened image source: where `make_dataset` reads images from.

    Attributes:
        elements: the images of a source that is not indexable (TFDS);
            `None` for the others, whose elements are in `table`.
        count: how many elements (images).
        table: the indices of the elements (files, array rows) as one int64
            array, for indexable sources (shuffled by a permutation of all
            of them); `load` takes one index.
        load: element -> one image (H, W, C), uint8 or float32 in [0, 1].
        dtype: tf.uint8, or tf.float32 for float arrays.
        channels: the source's own channels (1 or 3).
        description: how error messages name the source.
        indexable: elements are cheap (paths, indices): shuffled completely.
        in_memory: loading is cheap (an array lookup).
        may_fail: loading can fail (files).
        failures: where failures met while reading are recorded (files).
    """

    elements: tf.data.Dataset | None
    count: int
    load: Callable
    dtype: tf.DType
    channels: int
    description: str
    indexable: bool = True
    in_memory: bool = True
    may_fail: bool = False
    failures: folders.UnreadableFiles | None = None
    table: np.ndarray | None = None
    fingerprint: Callable | None = None  # () -> a digest of the contents, for a cache file's manifest


def open_source(source, data_dir: str | None = None, image_size: int | None = None) -> Source:
    """Opens an image source for `make_dataset`: its images are not read yet, except a folder's sample.

    Args:
        source: "digits", "twemoji", "tfds:NAME[:SPLIT]", a folder path or a
            NumPy array (see the module docstring).
        data_dir: where TFDS keeps its datasets (TFDS' default when `None`).
        image_size: the side images are resized to: a folder's check warns of
            smaller images and decodes JPEGs at reduced scale.

    Returns:
        A `Source`; its `channels` are the source's own (1 or 3).
    """
    kind, value = resolve_source(source)
    if kind == "array":
        return _array_source(value, "The array")
    if kind == DIGITS:
        return _array_source(load_digits()[0], "The bundled digits")
    if kind == TWEMOJI:
        return _array_source(load_twemoji()["images"], "The bundled Twemoji")
    if kind == "tfds":
        return _tfds_source(value, data_dir)
    return _folder_source(value, image_size)


def infer_channels(source, data_dir: str | None = None) -> int:
    """The number of channels `make_dataset(source)` yields by default."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return 3  # folders are read as RGB unless channels=1 is asked for
    return open_source(source, data_dir).channels


def _digest(value) -> str:
    return hashlib.sha1(json.dumps(value, default=str).encode()).hexdigest()




def _array_source(array: np.ndarray, description: str) -> Source:
    array = _validated_array(array)
    images = tf.convert_to_tensor(array)
    return Source(
        fingerprint=lambda: _digest([array.shape, array.dtype.str, hashlib.sha1(np.ascontiguousarray(array)).hexdigest()]),
        elements=None,
        table=np.arange(int(images.shape[0]), dtype=np.int64),
        count=int(images.shape[0]),
        load=lambda i: tf.gather(images, i),
        dtype=tf.uint8 if images.dtype == tf.uint8 else tf.float32,
        channels=1 if images.shape[-1] == 1 else 3,
        description=description,
    )


def array_images(array: np.ndarray) -> tf.data.Dataset:
    """A validated NumPy array of images (uint8 or float in [0, 1]) as a dataset of single images."""
    return tf.data.Dataset.from_tensor_slices(_validated_array(array))


def _validated_array(array: np.ndarray) -> np.ndarray:
    """`array` as (N, H, W, C) uint8 or float32 in [0, 1], or a ValueError saying what is wrong."""
    array = np.asarray(array)
    shape = array.shape
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or len(array) == 0:
        raise ValueError(
            "A NumPy source must be a non-empty array of shape (N, H, W) or "
            f"(N, H, W, C) with C in (1, 3, 4). Received: array of shape {shape}"
        )
    if 0 in array.shape:
        raise ValueError(
            "A NumPy source must hold images of at least 1x1 pixels: this array has a height or width "
            f"of 0, so it holds no pixels (its size is 0). Received: array of shape {shape}"
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
    return array


def _tfds_source(spec: str, data_dir: str | None) -> Source:
    ds, size, name, split = load_tfds(spec, data_dir, shuffle_files=True)
    if size is None:
        size = int(ds.cardinality())
    if size < 0:
        raise ValueError(
            f"The number of images in TFDS dataset {name!r} (split {split!r}) is unknown, so an epoch "
            "would have no known length. Use a split whose size TFDS records (e.g. 'train'). "
            f"Received: source='tfds:{spec}'"
        )
    return Source(
        fingerprint=lambda: _digest([name, split, size, data_dir]),
        elements=ds,
        count=size,
        load=lambda image: image,
        dtype=tf.uint8,
        channels=1 if ds.element_spec.shape[-1] == 1 else 3,
        description=f"TFDS dataset {name!r} (split {split!r})",
        indexable=False,
        in_memory=False,
    )


def _folder_source(folder: str, image_size: int | None) -> Source:
    """A folder's image files, after a check of a sample of them (`folders.check_folder_sample`)."""
    # Warnings point at the code that called make_dataset (5 frames up: make_dataset, open_source, here).
    paths, scan = folders.check_folder_sample(folder, image_size, stacklevel=5)
    # The paths live in one tensor; epochs shuffle their indices (8 bytes each, not
    # a copy of every path per epoch) and each read looks its path up.
    # As bytes: a name that is not UTF-8 is read as it is on disk.
    names = tf.convert_to_tensor(np.array([os.fsencode(p) for p in paths], dtype=object))  # 10x faster than from a list
    root = os.fsencode(os.path.join(folder, ""))
    # JPEGs are decoded at reduced scale where they are at least twice image_size. When
    # no image of the sample is, the per-file choice (a header read, a cond and a switch)
    # is left out: a larger file outside the sample is then decoded whole (slower, the
    # same image).
    reduce = image_size if image_size and scan.largest_side >= 2 * image_size else None

    def fingerprint():
        stats = []
        for path in paths:
            try:
                info = os.stat(os.path.join(folder, path))
                stats.append((os.fsencode(path).hex(), info.st_size, info.st_mtime_ns))
            except OSError:
                stats.append((os.fsencode(path).hex(), -1, -1))
        return _digest([os.path.abspath(folder), stats])

    return Source(
        fingerprint=fingerprint,
        elements=None,
        table=np.arange(len(paths), dtype=np.int64),
        count=len(paths),
        load=lambda i: folders._read_rgb(tf.strings.join([root, tf.gather(names, i)]), reduce),
        dtype=tf.uint8,
        channels=3,
        description=f"The folder {folder!r}",
        in_memory=False,
        may_fail=True,
        failures=folders.UnreadableFiles(folder, names),
    )
