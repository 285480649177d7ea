"""Image sources -> `tf.data` batches of images with pixel values in [-1, 1].

Sources:
- `"digits"`: 5,000 real MNIST digits bundled with the package (offline default).
- `"twemoji"`: 3,491 colour emoji at 64x64 bundled with the package (`load_twemoji`).
- `"tfds:NAME[:SPLIT]"`: any TensorFlow Datasets image dataset, e.g.
  `"tfds:celeb_a"`, `"tfds:cifar10:train"`, `"tfds:lsun/bedroom"`.
- a folder of images (searched recursively; jpg, jpeg, png, bmp, gif).
- a NumPy array of shape `(N, H, W)` or `(N, H, W, C)`: uint8 in [0, 255] or
  floats in [0, 1].

Every image is centre-cropped to a square, resized to `image_size`, converted
to the requested number of channels and scaled to [-1, 1]. No augmentation,
as in the paper. Every epoch has a known number of batches; images are kept in
memory as uint8 only when they fit a budget, and read again otherwise
(docs/data.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import random
import threading
import warnings
from collections.abc import Callable
from importlib import resources

import numpy as np
from PIL import Image

import tensorflow as tf

from dcgan_keras.config import SUPPORTED_CHANNELS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DIGITS = "digits"
TWEMOJI = "twemoji"
CACHE_MODES = ("auto", "memory", "off")
# cache="auto" keeps images in memory up to this many bytes (uint8, already resized).
# TensorFlow itself takes ~0.7 GB of RSS; with this budget a process stays under ~1.5 GB
# whatever the folder's number of files (docs/data.md); very large images take more while
# they are decoded (MAX_IMAGE_PIXELS). 10k images at 64x64x3 take 0.12 GB,
# 50k 0.6 GB and CelebA (202,599) 2.5 GB at 64x64x3, 0.6 GB at 32x32x3: streamed.
CACHE_BUDGET_BYTES = 512 * 1024**2
# Images mixed by the shuffle buffer after a cache. Sources already in memory
# (arrays, digits) fill it fast; decoded ones (folders, TFDS) fill it before
# their first batch, so theirs is smaller.
SHUFFLE_BUFFER = 10_000
DECODED_SHUFFLE_BUFFER = 1_024
# The first pass that fills a cache is already in a random order (a permutation of
# the files or indices): its buffer holds only what it takes to finish the cache in
# epoch 1 (a bigger one would be filled, by decoding, before the first batch). Later
# passes, from the cache, use the buffers above.
# Files of a folder decoded up front (a random sample; all of a smaller folder).
SAMPLE_FILES = 256
# A folder where more than this fraction of the checked image files cannot be read is
# refused: it is not what was meant, or it is damaged. Fewer are skipped with a warning
# (a crawl whose other half are error pages still trains on the good half).
MAX_UNREADABLE_FRACTION = 0.75
# Decoded files are checked for failures in groups of this many (one check a group).
CHECK_GROUP = 64
# The formats TensorFlow's `tf.io.decode_image` reads, by the names PIL gives them. PIL opens
# more (TIFF, AVIF, HEIC, ...), often under a .jpg or .png name; training cannot read those.
DECODER_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# The most pixels one image may have as decoded (a JPEG is decoded at reduced scale when it
# is at least twice image_size). Decoding and resizing take ~15 bytes a pixel while the
# image is in flight (uint8 frame, float32 crop), so 40 Mpx (e.g. 7300 x 5500) is ~0.6 GB
# per image; larger images are skipped and named. Raise it for a machine with the memory.
MAX_IMAGE_PIXELS = 40_000_000

_LOG = logging.getLogger("dcgan_keras")
_plain = tf.autograph.experimental.do_not_convert


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
    if dataset == "digits":
        images, labels = load_digits()
        if max_examples:  # the bundled digits are sorted by class: take a random subset
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:max_examples])
            images, labels = images[keep], labels[keep]
    elif dataset == TWEMOJI:
        emoji = load_twemoji()
        images, labels = emoji["images"], np.searchsorted(twemoji_categories(), emoji["category"])
        if max_examples:  # grouped by category: a random subset, as for the digits
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:max_examples])
            images, labels = images[keep], labels[keep]
    elif dataset.startswith("tfds:"):
        images, labels = _tfds_labelled(dataset[len("tfds:"):], max_examples, data_dir)
    else:
        raise ValueError(
            f"dataset must be 'digits', 'twemoji' or 'tfds:NAME[:SPLIT]' (with labels). Received: dataset={dataset!r}")
    if max_examples:
        images, labels = images[:max_examples], labels[:max_examples]
    return images, np.asarray(labels).astype("int64")


def _tfds_labelled(spec: str, max_examples: int | None, data_dir: str | None):
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    split = split or "train"
    if max_examples and "[" not in split:
        split = f"{split}[:{int(max_examples)}]"
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, shuffle_files=False)
    except Exception as error:  # tfds raises many types; all mean "could not load"
        raise RuntimeError(
            f"Could not load TFDS dataset {name!r} (split {split!r}) with labels: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            "Downloads need network access; offline, use --dataset digits."
        ) from error
    images, labels = [], []
    for image, label in tfds.as_numpy(ds):
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty.")
    return np.stack(images), np.asarray(labels)


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
    images = _crop_resize(images, image_size, channels)
    return tf.clip_by_value(images * 2.0 - 1.0, -1.0, 1.0)


def make_dataset(
    source="digits",
    image_size: int = 32,
    channels: int | None = None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool | str | os.PathLike = "auto",
    drop_remainder: bool = True,
    data_dir: str | None = None,
    cache_budget: int = CACHE_BUDGET_BYTES,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Turns an image source into shuffled batches in [-1, 1], with a known number per epoch.

    Images are read, centre-cropped and resized to `image_size` as uint8 (float32
    for a float array), kept in memory when they fit `cache_budget` and read
    again from the source otherwise, and scaled to [-1, 1] float32 per batch.
    Nothing is decoded before the first batch is asked for, except a sample of
    a folder's files (`SAMPLE_FILES`), checked up front.

    Every epoch has exactly `N // batch_size` batches (`ds.cardinality()` is
    known, so Keras shows a real progress bar and never finds the end of the
    data inside a training step). A file that cannot be decoded while reading
    is skipped, logged (`dcgan_keras` logger) and replaced by the next image.

    Args:
        source: `"digits"`, `"tfds:NAME[:SPLIT]"`, a folder path, or a NumPy
            array (see the module docstring).
        image_size: side of the square images.
        channels: 1 or 3; `None` keeps the source's own (digits: 1, folders: 3).
        batch_size: images per batch (the global batch under `shard`).
        shuffle: shuffle every epoch: the list of files (or array indices) is
            reshuffled completely, by one permutation per epoch; data read
            from a cache is mixed through a bounded buffer (`SHUFFLE_BUFFER`
            images, `DECODED_SHUFFLE_BUFFER` for folders and TFDS), only the
            images an epoch leaves out and two more in the first, permuted
            pass that fills the cache.
        seed: shuffle seed, for repeatable runs.
        cache: `"auto"` keeps the resized uint8 images in memory when
            `N x image_size^2 x channels` bytes fit `cache_budget` and reads
            them from the source every epoch otherwise; `"memory"` always
            keeps them; a file path (e.g. `"./cache/celeb_a"`) caches them in
            that file; `"off"` never caches. `True` and `False` mean
            `"memory"` and `"off"`.
        drop_remainder: drop the last, smaller batch (batch norm prefers
            equal batches).
        data_dir: where TFDS keeps its datasets (TFDS' default when `None`).
        cache_budget: bytes of images that `cache="auto"` may keep in memory.
        shard: `(num_workers, worker_index)` under a multi-worker strategy
            (see `input_shard`): this worker reads only its share of the
            files (or images), and the dataset keeps `N // batch_size`
            global batches per epoch.

    Returns:
        A `tf.data.Dataset` of float32 batches `(batch, image_size, image_size, channels)`
        with pixel values in [-1, 1].

    Raises:
        ValueError: for a bad argument, a source without images, or fewer
            images than one batch.

    Example:

    ```python
    ds = make_dataset("digits", image_size=32, batch_size=128)
    ds = make_dataset("tfds:celeb_a", image_size=64)
    ds = make_dataset("path/to/images/", image_size=64, cache="off")
    ```
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size}")
    if channels is not None and channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 1, 3 or None (keep the source's). Received: channels={channels}")
    _check_cache_argument(cache)
    num_shards, index = _check_shard(shard)
    src = _open_source(source, data_dir, image_size)
    channels = channels or src.channels

    count = src.count  # images (files) in the whole source, all workers together
    if count < batch_size and (drop_remainder or num_shards > 1):
        raise ValueError(
            f"{src.description} has {count} image(s), fewer than one batch of {batch_size}, so an "
            "epoch would have no training step. Use a smaller batch size (--batch-size "
            f"{max(1, count)} or less) or add images. Received: batch_size={batch_size}, images={count}"
        )
    elements, table, local_count = src.elements, src.table, count
    if num_shards > 1:
        if table is None:
            elements = elements.shard(num_shards, index)
        else:
            table = table[index::num_shards]
        local_count = len(range(index, count, num_shards))
    if drop_remainder or num_shards > 1:
        # Under a multi-worker strategy each global step takes batch_size / num_workers
        # images from every worker (tf.distribute splits the worker's batches), so
        # count // batch_size global batches last one pass over the worker's share.
        per_epoch = count // batch_size * batch_size
    else:
        per_epoch = count

    item_bytes = image_size * image_size * channels * src.dtype.size
    mode = _cache_mode(cache, local_count * item_bytes, cache_budget)
    # No tensor-dependent Python control flow in these functions: traced as
    # written, without autograph's conversion (seconds before the first batch).
    fit = _plain(lambda element: _fit(src.load(element), image_size, channels, src.dtype))

    if src.indexable:
        # One permutation of all files (indices) per epoch, made in one op: the
        # first file is read at once. A cache keeps the first pass's order: the
        # list is reshuffled every epoch only when streaming.
        reshuffle = mode == "off"
        if src.may_fail:
            images = _decode_files(table, seed, shuffle, reshuffle, fit, src.failures)
        else:
            images = _epoch_orders(table, seed, shuffle, reshuffle).map(fit, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        images = elements.map(fit, num_parallel_calls=tf.data.AUTOTUNE)
    if mode == "memory":
        images = images.cache()
    elif mode != "off":
        _claim_cache_file(mode, {
            "source": src.description, "images": count, "contents": src.fingerprint() if src.fingerprint else None,
            "image_size": image_size, "channels": channels, "dtype": src.dtype.name, "shard": [num_shards, index],
        })
        images = images.cache(mode)
    if shuffle and (mode != "off" or not src.indexable):
        buffer = SHUFFLE_BUFFER if src.in_memory else DECODED_SHUFFLE_BUFFER
        # At least 2 batches: the cache is complete only if its first pass ends in epoch 1.
        buffer = min(local_count, max(buffer, 2 * batch_size))
        # A permuted first pass (indexable, cached) needs no mixing, only to read past its
        # own end within epoch 1 to complete the cache: the images an epoch leaves out
        # (fewer than a batch) and one more, so the first batch waits for few decodes.
        first = min(buffer, max(2, local_count - per_epoch + 2)) if src.indexable else buffer
        images = _mixed(images, first, buffer, seed)
    # A known, exact epoch length: images of files that fail while reading are
    # replaced by the next ones (the stream repeats), never missing.
    images = images.repeat().take(per_epoch)
    ds = images.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(_plain(_to_minus_one_one), num_parallel_calls=tf.data.AUTOTUNE)
    if num_shards > 1:
        options = tf.data.Options()  # sharded here by file; tf.distribute must not shard again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.unreadable_files = src.failures  # for `guards.EpochLengthGuard`'s message (None: cannot fail)
    return ds


# Cache files this process holds a lock on: path -> open lock file.
_CACHE_LOCKS: dict = {}


def _claim_cache_file(path: str, manifest: dict) -> None:
    """Makes the cache file `path` safe to use: locked for this process, fresh, and without a killed fill's leftovers.

    - Lock: an exclusive `fcntl` lock on `PATH.lock`, held until the process ends; a
      cache in use by another live process is refused (two fills would collide).
    - Leftovers: `PATH_*.lockfile` and `PATH_*.tempstate*` of a fill that was killed
      (no other process holds the lock) are removed, so the fill starts again.
    - Freshness: `PATH.manifest.json` records what the cache holds (the source, its
      files' names, sizes and times, image size and channels); a cache of anything
      else is removed, with a warning, and filled again.
    """
    import glob

    from dcgan_keras.files import atomic_write_json

    if path not in _CACHE_LOCKS:
        lock = open(path + ".lock", "a")
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): no lock
            pass
        except OSError:
            lock.close()
            raise ValueError(
                f"The cache file {path!r} is in use by another process (a run reading or filling it). "
                f"Wait for it to finish, or use another cache path (--cache). Received: cache={path!r}"
            ) from None
        _CACHE_LOCKS[path] = lock
        for leftover in glob.glob(glob.escape(path) + "_*.lockfile") + glob.glob(glob.escape(path) + "_*.tempstate*"):
            os.remove(leftover)  # of a fill that was killed: no live process holds the lock
            _LOG.warning("Removed %s, left by a cache fill that was stopped; the cache is filled again.", leftover)
    manifest_path = path + ".manifest.json"
    cached = [path + ".index", *glob.glob(glob.escape(path) + ".data-*")]
    if os.path.exists(path + ".index"):
        try:
            with open(manifest_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old != manifest:
            changed = (
                "it has no readable record of its contents" if old is None
                else "its " + ", ".join(key for key in manifest if old.get(key) != manifest[key]) + " changed"
            )
            for name in cached:
                os.remove(name)
            warnings.warn(
                f"The cache file {path!r} held other images than asked for ({changed}); it was removed "
                "and is filled again from the source.",
                stacklevel=4,
            )
    atomic_write_json(manifest_path, manifest)


def _permutation(size, epoch_seed) -> tf.Tensor:
    """The order of `size` elements in the epoch of `epoch_seed`: the same in a dataset and eagerly."""
    size = tf.cast(size, tf.int64)
    seed = tf.stack([tf.cast(epoch_seed, tf.int64), size])
    return tf.random.experimental.stateless_shuffle(tf.range(size), seed=seed)


def _epoch_orders(
    table: np.ndarray, seed: int | None, shuffle: bool, reshuffle: bool, positions: bool = False
) -> tf.data.Dataset:
    """The elements of `table`, one epoch, in a random order when `shuffle`: a new one every epoch when `reshuffle`.

    One seed per iteration (`Dataset.random`, deterministic for a given `seed`)
    drives one `stateless_shuffle` of all indices: no buffer to fill first.
    With `positions`, each element comes as `(epoch_seed, position, element)`,
    where `_permutation(len(table), epoch_seed)[position]` is its index in `table`.
    """
    table = tf.convert_to_tensor(table)
    size = tf.shape(table, out_type=tf.int64)[0]

    @_plain
    def one_epoch(epoch_seed):
        order = _permutation(size, epoch_seed) if shuffle else tf.range(size)
        elements = tf.gather(table, order)
        if positions:
            elements = (tf.fill([size], epoch_seed), tf.range(size), elements)
        return tf.data.Dataset.from_tensor_slices(elements)

    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).take(1).flat_map(one_epoch)


def _mixed(images: tf.data.Dataset, first: int, buffer: int, seed: int | None) -> tf.data.Dataset:
    """`images` through a shuffle buffer of `first` images in the first epoch, `buffer` after.

    Each epoch's shuffle takes a seed of its own (`Dataset.random`), so the order
    changes every epoch and repeats with `seed`. The epoch is counted in Python,
    once per iteration (each new iterator; a partial one counts too).
    """
    if first == buffer:
        return images.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    epochs = itertools.count()

    @_plain
    def one_epoch(epoch_seed):
        epoch = tf.py_function(lambda: next(epochs), [], tf.int64)
        size = tf.where(tf.equal(epoch, 0), tf.constant(first, tf.int64), tf.constant(buffer, tf.int64))
        # The op seed is a tensor, already derived from `seed` (or the global seed):
        # this function's graph must not combine it with the global seed again
        # (TensorFlow compares the pair with (0, 0) in Python, which a tensor cannot do).
        tf.compat.v1.get_default_graph().seed = None
        return images.shuffle(size, seed=epoch_seed)

    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(one_epoch)


def input_shard(strategy=None) -> tuple[int, int] | None:
    """`(num_workers, worker_index)` of this process under a multi-worker strategy.

    Args:
        strategy: a `tf.distribute.Strategy`; `None` uses the one whose scope
            is active.

    Returns:
        `(num_workers, worker_index)` for `make_dataset(shard=...)` when the
        strategy spans several workers (`TF_CONFIG`); `None` otherwise.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return None
    cluster = resolver.cluster_spec().as_dict()
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if chiefs + workers <= 1 or resolver.task_type not in ("chief", "worker"):
        return None
    index = resolver.task_id if resolver.task_type == "chief" else chiefs + resolver.task_id
    return chiefs + workers, index


def infer_channels(source) -> int:
    """The number of channels `make_dataset(source)` yields by default."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return 3  # folders are read as RGB unless channels=1 is asked for
    return _open_source(source, None, None).channels


def _check_cache_argument(cache) -> None:
    if isinstance(cache, bool) or cache in CACHE_MODES:
        return
    if isinstance(cache, (str, os.PathLike)):
        path = os.fspath(cache)
        folder = os.path.dirname(path)
        if path and (os.sep in path or "/" in path) and (not folder or os.path.isdir(folder)):
            return
    raise ValueError(
        "cache must be 'auto' (in memory when it fits cache_budget), 'memory', 'off', or the path "
        "of a cache file in an existing folder (e.g. './cache/celeb_a'). "
        f"Received: cache={cache!r}"
    )


def _cache_mode(cache, size_bytes: int, budget: int) -> str:
    """'memory', 'off' or a file path, for images that take `size_bytes`."""
    if cache is True:
        return "memory"
    if cache is False:
        return "off"
    if cache == "auto":
        return "memory" if size_bytes <= budget else "off"
    return cache if cache in CACHE_MODES else os.fspath(cache)


def _check_shard(shard) -> tuple[int, int]:
    if shard is None:
        return 1, 0
    try:
        num_shards, index = (int(x) for x in shard)
    except (TypeError, ValueError):
        num_shards, index = 0, -1
    if num_shards < 1 or not 0 <= index < num_shards:
        raise ValueError(
            "shard must be (num_workers, worker_index) with 0 <= worker_index < num_workers, "
            f"e.g. from input_shard(strategy). Received: shard={shard!r}"
        )
    return num_shards, index


def _crop_resize(images: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """Centre crop, resize and channel conversion; float32 in [0, 1]."""
    if images.shape[-1] == 4:  # RGBA: drop alpha
        images = images[..., :3]
    height, width = tf.shape(images)[-3], tf.shape(images)[-2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    images = images[..., top : top + side, left : left + side, :]  # cropped before the float copy
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    images = tf.image.resize(images, (image_size, image_size), method="area", antialias=True)
    if images.shape[-1] == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    elif images.shape[-1] == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    return images


def _fit(image: tf.Tensor, image_size: int, channels: int, dtype: tf.DType) -> tf.Tensor:
    """One image, cropped and resized, as stored: uint8 in [0, 255] or float32 in [0, 1]."""
    image = tf.clip_by_value(_crop_resize(image, image_size, channels), 0.0, 1.0)
    if dtype == tf.uint8:
        return tf.cast(tf.round(image * 255.0), tf.uint8)
    return image


def _to_minus_one_one(images: tf.Tensor) -> tf.Tensor:
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    return tf.clip_by_value(images * 2.0 - 1.0, -1.0, 1.0)


@dataclasses.dataclass
class _Source:
    """Where `make_dataset` reads images from.

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
    failures: "UnreadableFiles | None" = None
    table: np.ndarray | None = None
    fingerprint: Callable | None = None  # () -> a digest of the contents, for a cache file's manifest


def _open_source(source, data_dir, image_size) -> _Source:
    if isinstance(source, np.ndarray):
        return _array_source(source, "The array")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be 'digits', 'twemoji', 'tfds:NAME[:SPLIT]', a folder path or a NumPy "
            f"array. Received: source of type {type(source).__name__}"
        )
    source = os.fspath(source)
    if source == DIGITS:
        return _array_source(load_digits()[0], "The bundled digits")
    if source == TWEMOJI:
        return _array_source(load_twemoji()["images"], "The bundled Twemoji")
    if source.startswith("tfds:"):
        return _tfds_source(source[len("tfds:"):], data_dir)
    if os.path.isdir(source):
        return _folder_source(source, image_size)
    if os.path.exists(source):
        raise ValueError(
            f"Cannot read images from {source!r}: it is a file, not a folder. Point --dataset at the "
            f"folder that holds the images (e.g. {os.path.dirname(source) or '.'!r}). Received: source={source!r}"
        )
    hint = (
        "a folder of images that does not exist" if os.sep in source or "/" in source
        else "an unknown dataset name"
    )
    raise ValueError(
        f"Cannot read images from {source!r}: it looks like {hint}. Use 'digits' "
        "(the bundled MNIST digits), 'twemoji' (the bundled colour emoji), 'tfds:NAME[:SPLIT]' for a TensorFlow Datasets "
        "dataset (e.g. 'tfds:celeb_a'), or the path of an existing folder of "
        f"images. Received: source={source!r}"
    )


def _digest(value) -> str:
    return hashlib.sha1(json.dumps(value, default=str).encode()).hexdigest()


def _array_source(array: np.ndarray, description: str) -> _Source:
    array = _validated_array(array)
    images = tf.convert_to_tensor(array)
    return _Source(
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


def list_image_files(folder) -> list[str]:
    """Image files under `folder` (recursively, by extension), sorted."""
    skipped = {}
    files, others = _list_folder(folder, skipped=skipped)
    _raise_if_no_images(folder, files, others, skipped)
    return files


def printable(path) -> str:
    """`path` as it can be printed: bytes of a name that is not UTF-8 as `\\xe9` escapes."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _list_folder(folder, relative: bool = False, skipped: dict | None = None) -> tuple[list[str], list[str]]:
    """(image files, other files) under `folder`, recursively, each sorted. Reads no file.

    With `relative`, the paths are relative to `folder` (shorter strings: less
    memory for millions of files). Only regular files are listed: a FIFO, socket
    or device (whose read may block forever), a broken link, a symlink loop or
    a sub-folder that cannot be listed goes to `skipped` (`{path: reason}`),
    as does a symlinked folder (not entered).
    """
    folder = os.fspath(folder)
    skipped = {} if skipped is None else skipped
    files, others, pending = [], [], [""]
    while pending:  # as os.walk (symlinked folders are not entered), 2x faster on 200k files
        below = pending.pop()
        prefix = below + os.sep if below else ""
        try:
            entries = os.scandir(os.path.join(folder, below))
        except OSError as error:
            if not below:
                raise
            skipped[below if relative else os.path.join(folder, below)] = f"folder not listed ({error.strerror})"
            continue
        with entries:
            for entry in entries:
                path = prefix + entry.name if relative else entry.path
                try:
                    if entry.is_dir():
                        if entry.is_symlink():
                            skipped[path] = "symlinked folder (not followed)"
                        else:
                            pending.append(prefix + entry.name)
                        continue
                    regular = entry.is_file()
                except OSError as error:  # e.g. a symlink loop: ELOOP
                    skipped[path] = f"{type(error).__name__}: {error.strerror}"
                    continue
                if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    others.append(path)
                elif not regular:
                    skipped[path] = (
                        "a broken symbolic link" if entry.is_symlink()
                        else "not a regular file (a FIFO, socket or device, whose read can block forever)"
                    )
                else:
                    files.append(path)
    return sorted(files), sorted(others)


def _warn_skipped(folder: str, skipped: dict) -> None:
    if skipped:
        examples = "; ".join(f"{printable(p)} ({r})" for p, r in sorted(skipped.items())[:5])
        warnings.warn(
            f"Skipped {len(skipped)} {'entry' if len(skipped) == 1 else 'entries'} in {printable(folder)!r} "
            "that are not regular files or "
            f"folders that can be read: {examples}. Replace them with regular image files to use them.",
            stacklevel=4,
        )


def _raise_if_no_images(folder, files: list[str], others: list[str], skipped: dict | None = None) -> None:
    if files:
        return
    found = (
        f"it holds {len(others)} other file(s), e.g. {', '.join(printable(os.path.basename(p)) for p in others[:3])}"
        if others else "it is empty"
    )
    if skipped:
        found += (
            f", and {len(skipped)} skipped entr{'y' if len(skipped) == 1 else 'ies'}, e.g. "
            + ", ".join(f"{printable(p)} ({r})" for p, r in sorted(skipped.items())[:3])
        )
    raise ValueError(
        f"No images found in folder {os.fspath(folder)!r} (searched recursively "
        f"for {', '.join(IMAGE_EXTENSIONS)}; {found}). Point --dataset at a folder "
        "that holds image files (convert other formats to PNG or JPEG first)."
    )


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


def _decoded_pixels(width: int, height: int, image_format: str, image_size: int | None) -> int:
    """Pixels of an image as training decodes it (`_header_pixels`; a JPEG at reduced scale when it may be)."""
    if image_format != "JPEG" or not image_size:
        return width * height
    ratio = max([1, *(r for r in JPEG_RATIOS if min(width, height) // r >= image_size)])
    return -(-width // ratio) * -(-height // ratio)


def _check_image(path: str, image_size: int | None) -> tuple[str | None, int, str | None]:
    """(error or None, shorter side, mode) for one file, decoding it completely with PIL and TensorFlow.

    PIL opens formats that training's decoder (`tf.io.decode_image`) cannot (TIFF, AVIF,
    ...), often under a .jpg or .png name; the file is decoded by both, as training will.
    """
    try:
        with Image.open(path) as image:
            mode, (width, height), image_format = image.mode, image.size, image.format
            if image_format not in DECODER_FORMATS:
                return f"a {image_format} image, which TensorFlow cannot decode; convert it to PNG or JPEG", 0, None
            pixels = _decoded_pixels(width, height, image_format, image_size)
            if pixels > MAX_IMAGE_PIXELS:
                return (
                    f"{width}x{height} pixels, {pixels / 1e6:.0f} Mpx as decoded, above the limit of "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx that bounds memory (dcgan_keras.data.MAX_IMAGE_PIXELS); "
                    "downscale it"
                ), 0, None
            if image_format == "JPEG" and image_size:
                image.draft(image.mode, (image_size, image_size))  # decode at reduced scale: fast
            image.load()  # reads every byte: truncated files fail here
        _read_rgb(tf.constant(os.fsencode(path)), image_size).numpy()  # as training decodes it
    except Exception as error:  # PIL and TF raise many types; all mean "cannot be used"
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"{type(error).__name__}: {message}", 0, None
    exif = _exif_orientation(path) if image_format == "JPEG" else 1
    return None, min(width, height), mode if exif == 1 else f"{mode} EXIF-orientation {exif}"


def _exif_orientation(path: str) -> int:
    """The EXIF orientation tag of an image (1, upright, when it has none)."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _map_in_threads(function: Callable, items: list, workers: int) -> list:
    """`[function(x) for x in items]` on daemon threads, so that Ctrl-C is never held up by a read that blocks."""
    results, queue, lock = [None] * len(items), iter(range(len(items))), threading.Lock()

    def work():
        while True:
            with lock:
                i = next(queue, None)
            if i is None:
                return
            results[i] = function(items[i])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(workers, len(items))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short waits: a signal reaches the main thread between them
    return results


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
    skipped = {}
    files, other = _list_folder(folder, skipped=skipped)
    _raise_if_no_images(folder, files, other, skipped)
    # PIL decodes without the GIL
    results = _map_in_threads(lambda f: _check_image(f, image_size), files, min(8, os.cpu_count() or 1))
    scan = FolderScan([], dict(skipped), other, [], {})
    for path, (error, side, mode) in zip(files, results):
        if error:
            scan.unreadable[path] = error
            continue
        scan.readable.append(path)
        mode = mode.split()[0]  # without an EXIF-orientation note
        scan.modes[mode] = scan.modes.get(mode, 0) + 1
        if image_size and side < image_size:
            scan.small.append(path)
    if not scan.readable:
        examples = "; ".join(f"{os.path.basename(p)} ({r})" for p, r in list(scan.unreadable.items())[:3])
        raise ValueError(
            f"None of the {len(files)} image files in folder {folder!r} can be read: {examples}. "
            "They are empty, truncated, not images or in a format TensorFlow cannot decode; replace them "
            "with valid PNG or JPEG files."
        )
    return scan


def _raise_if_mostly_unreadable(folder: str, checked: str, count: int, unreadable: dict, name) -> None:
    """Refuses a folder when more than `MAX_UNREADABLE_FRACTION` of the `count` files checked cannot be read.

    A few bad files among good ones are skipped with a warning; when most fail, the folder
    is not what was meant (or is damaged), and training on the few that remain is refused.
    """
    if len(unreadable) <= MAX_UNREADABLE_FRACTION * count:
        return
    examples = "; ".join(f"{name(p)} ({r})" for p, r in list(unreadable.items())[:5])
    raise ValueError(
        f"{len(unreadable)} of the {checked} in folder {folder!r} cannot be read, more than "
        f"{MAX_UNREADABLE_FRACTION:.0%} (dcgan_keras.data.MAX_UNREADABLE_FRACTION): {examples}"
        f"{f'; and {len(unreadable) - 5} more' if len(unreadable) > 5 else ''}. Training on the {count - len(unreadable)} readable one(s) would "
        "not be training on this folder. Fix or remove the unreadable files (dcgan_keras.data.scan_image_folder "
        f"lists them all), then run again. Received: unreadable={len(unreadable)} of {count}"
    )


def _warn_about(scan: FolderScan, folder: str, image_size: int | None) -> None:
    total = len(scan.readable) + len(scan.unreadable)
    _raise_if_mostly_unreadable(
        folder, f"{total} image files", total, scan.unreadable, lambda p: printable(os.path.relpath(p, folder))
    )
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

    ds = tf.data.Dataset.from_tensor_slices([os.fsencode(p) for p in scan.readable]).map(
        _read_rgb, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return (ds.ignore_errors(log_warning=True) if skip_errors else ds), scan.readable


def _tfds_images(spec: str, data_dir: str | None) -> tuple[tf.data.Dataset, int | None, str, str]:
    """The images of a TFDS split, its size when TFDS records it, the name and the split."""
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
    return ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE), size, name, split


class UnreadableFiles:
    """Image files that failed to decode while a dataset was read, each logged once.

    A folder's files are checked up front only in a sample (`SAMPLE_FILES`);
    the others are met while training. Each new one is logged to the
    `dcgan_keras` logger with its name (the first 5, then at 10, 100, 1000,
    ... files), and training goes on with another image in its place.

    Attributes:
        folder: the folder read.
        paths: the files that failed so far, in the order they were met.
    """

    def __init__(self, folder: str, names: tf.Tensor):
        self.folder = folder
        self.names = names  # every file's path relative to `folder`, as the dataset reads them
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def record_all(self, indices) -> None:
        """Records the files at `indices` of `names`, which failed."""
        for name in tf.gather(self.names, indices).numpy():
            self.record(os.path.join(self.folder, os.fsdecode(name)))

    def record(self, path: str) -> None:
        """Records one file that failed, logging it if it is new."""
        with self._lock:
            if path in self.paths:
                return
            self.paths.append(path)
            count = len(self.paths)
        if count <= 5 or math.log10(count).is_integer():
            _LOG.warning(
                "Skipped an image file that cannot be decoded while reading %r: %s (empty, truncated, "
                "corrupt, not an image, in a format TensorFlow cannot decode or above MAX_IMAGE_PIXELS); "
                "another image takes its place while any can be read (an epoch that runs out of images "
                "stops training with an error). %d such file(s) so far; fix or remove them "
                "(dcgan_keras.data.scan_image_folder lists them all).",
                printable(self.folder), printable(os.path.relpath(path, self.folder)), count,
            )


# JPEGs may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), much faster.
JPEG_RATIOS = (2, 4, 8)


def _read_rgb(path: tf.Tensor, image_size: int | None = None) -> tf.Tensor:
    """One image file as uint8 RGB; a JPEG at the smallest scale whose short side is >= `image_size`.

    A file whose header promises more than `MAX_IMAGE_PIXELS` pixels as decoded fails
    (InvalidArgumentError) before it is decoded, like a corrupt one.
    """
    data = tf.io.read_file(path)
    pixels = _header_pixels(data, image_size)
    within = tf.debugging.assert_less_equal(
        pixels, tf.constant(MAX_IMAGE_PIXELS, tf.int64),
        message=f"image larger than MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS} pixels as decoded)",
    )
    with tf.control_dependencies([within]):
        data = tf.identity(data)

    def whole():
        # Always decoded as RGB (converted to gray later): libjpeg cannot turn CMYK
        # JPEGs into one channel directly.
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    if image_size:
        image = tf.cond(tf.io.is_jpeg(data), lambda: _decode_jpeg_at_least(data, image_size), whole)
    else:
        image = whole()
    image.set_shape([None, None, 3])
    return image


def _jpeg_ratio_index(height_width: tf.Tensor, image_size: int) -> tf.Tensor:
    """How many of `JPEG_RATIOS` keep the short side >= image_size: the largest that does."""
    short_side = tf.reduce_min(height_width)
    return tf.reduce_sum(tf.cast(short_side // tf.constant(JPEG_RATIOS, short_side.dtype) >= image_size, tf.int32))


def _header_pixels(data: tf.Tensor, image_size: int | None) -> tf.Tensor:
    """Pixels of the image in `data` as it will be decoded, read from its header (0 when unknown).

    PNG, GIF and BMP give their size in fixed bytes of the header; a JPEG's comes from
    `extract_jpeg_shape`, divided by the scale it is decoded at.
    """
    def number(offset, size, big_endian):
        raw = tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8)
        raw = tf.cast(tf.pad(raw, [[0, size - tf.shape(raw)[0]]]), tf.int64)
        weights = tf.constant([256 ** i for i in (range(size - 1, -1, -1) if big_endian else range(size))], tf.int64)
        return tf.reduce_sum(raw * weights)

    def png():
        return number(16, 4, True) * number(20, 4, True)

    def gif():
        return number(6, 2, False) * number(8, 2, False)

    def bmp():
        height = number(22, 4, False)
        height = tf.where(height >= 2**31, 2**32 - height, height)  # negative: rows top-down
        return number(18, 4, False) * height

    def jpeg():
        height_width = tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)
        if not image_size:
            return tf.reduce_prod(height_width)
        ratio = tf.gather(tf.constant((1, *JPEG_RATIOS), tf.int64), _jpeg_ratio_index(height_width, image_size))
        return tf.reduce_prod((height_width + ratio - 1) // ratio)

    head = tf.strings.substr(data, 0, 4)
    return tf.case(
        [
            (tf.equal(head, b"\x89PNG"), png),
            (tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), gif),
            (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), bmp),
            (tf.io.is_jpeg(data), jpeg),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def _decode_jpeg_at_least(data: tf.Tensor, image_size: int) -> tf.Tensor:
    height_width = tf.image.extract_jpeg_shape(data)[:2]
    index = _jpeg_ratio_index(height_width, image_size)
    ratios = (1, *JPEG_RATIOS)
    return tf.switch_case(index, [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r) for r in ratios])


def _decode_files(
    table: np.ndarray, seed: int | None, shuffle: bool, reshuffle: bool, fit: Callable, failures: UnreadableFiles
) -> tf.data.Dataset:
    """The images of the files whose indices are in `table`, one epoch, decoded in parallel; a file that fails is dropped.

    `ignore_errors` drops a failed decode. Every image carries its file's
    position in the epoch's order, and the images are checked in groups of
    `CHECK_GROUP`: a gap in a group's positions names the files that failed
    (recomputed from the epoch's seed), which are recorded in `failures`; an
    end marker closes a gap at the end. One check per group, not per image,
    keeps the decode rate near that of a pipeline that checks nothing.
    """
    size = len(table)

    def record(epoch_seed, expected, positions):
        order = _permutation(size, epoch_seed).numpy() if shuffle else np.arange(size)
        positions = positions.numpy()
        missing = np.setdiff1d(np.arange(int(expected), positions[-1]), positions)
        failures.record_all(table[order[missing]])  # the files' indices
        return True

    decoded = _epoch_orders(table, seed, shuffle, reshuffle, positions=True).map(
        _plain(lambda epoch_seed, k, path: (epoch_seed, k, fit(path))),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).ignore_errors().batch(CHECK_GROUP)
    spec = decoded.element_spec[2]
    end_marker = (tf.zeros([1], tf.int64), tf.constant([size], tf.int64), tf.zeros([1, *spec.shape[1:]], spec.dtype))

    @_plain
    def check(state, group):
        expected, epoch_seed = state
        seeds, k, images = group
        epoch_seed = tf.where(k[0] < size, seeds[0], epoch_seed)  # the end marker has no seed of its own
        # Positions expected..k[-1] should all be here; fewer means files failed in between.
        gap = k[-1] - expected + 1 > tf.size(k, out_type=tf.int64)
        recorded = tf.cond(
            gap,
            lambda: tf.py_function(record, [epoch_seed, expected, k], tf.bool),
            lambda: tf.constant(True),
        )
        with tf.control_dependencies([recorded]):
            return (k[-1] + 1, epoch_seed), tf.boolean_mask(images, k < size)

    checked = decoded.concatenate(tf.data.Dataset.from_tensors(end_marker))
    return checked.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), check).unbatch()


def _folder_source(folder: str, image_size: int | None) -> _Source:
    """A folder's image files, after a check of a sample of them (warnings for what it finds)."""
    skipped = {}
    paths, others = _list_folder(folder, relative=True, skipped=skipped)  # relative: shorter strings
    _raise_if_no_images(folder, paths, others, skipped)
    _warn_skipped(folder, skipped)
    sample = paths if len(paths) <= SAMPLE_FILES else sorted(random.Random(0).sample(paths, SAMPLE_FILES))
    # PIL and TensorFlow decode without the GIL
    checks = _map_in_threads(lambda f: _check_image(os.path.join(folder, f), image_size), sample, min(8, os.cpu_count() or 1))
    results = dict(zip(sample, checks))
    unreadable = {path: error for path, (error, _, _) in results.items() if error}
    sides = {path: side for path, (error, side, _) in results.items() if not error}
    small = [path for path, side in sides.items() if image_size and side < image_size]
    checked = (
        f"{len(sample)} image files" if len(sample) == len(paths)
        else f"{len(sample)} image files checked of the {len(paths)}"
    )
    if len(unreadable) == len(sample):
        examples = "; ".join(f"{printable(os.path.basename(p))} ({r})" for p, r in list(unreadable.items())[:3])
        raise ValueError(
            f"None of the {checked} in folder {folder!r} can be read: {examples}. They are empty, "
            "truncated, not images or in a format TensorFlow cannot decode; replace them with valid PNG "
            "or JPEG files."
        )
    _raise_if_mostly_unreadable(folder, checked, len(sample), unreadable, printable)
    paths = [path for path in paths if path not in unreadable]
    if unreadable:
        examples = "; ".join(f"{printable(p)} ({r})" for p, r in list(unreadable.items())[:5])
        rest = (
            f"Training uses the other {len(paths)}" if len(sample) == len(paths) + len(unreadable)
            else "The other files are checked as they are read (failures are skipped and logged)"
        )
        warnings.warn(
            f"Skipped {len(unreadable)} of {checked} in {folder!r} that cannot be read (empty, "
            f"truncated, corrupt or not images): {examples}. {rest}; fix or remove those files to "
            "silence this warning (dcgan_keras.data.scan_image_folder lists them all).",
            stacklevel=4,
        )
    rotated = sorted(path for path, (error, _, mode) in results.items() if not error and "EXIF" in mode)
    if rotated:
        warnings.warn(
            f"{len(rotated)} of the {checked} in {folder!r} carry an EXIF orientation (e.g. "
            f"{printable(rotated[0])}: {results[rotated[0]][2].split()[-1]}); training reads pixels as stored, so "
            "they are trained rotated or mirrored from how viewers show them. Apply the rotation first "
            "(PIL.ImageOps.exif_transpose, then save) to train them upright.",
            stacklevel=4,
        )
    if others:
        examples = ", ".join(printable(p) for p in others[:5])
        warnings.warn(
            f"Ignored {len(others)} file(s) in {folder!r} without an image extension "
            f"({', '.join(IMAGE_EXTENSIONS)}): {examples}.",
            stacklevel=4,
        )
    if small:
        of = f"{len(sample) - len(unreadable)} images"
        if len(sample) < len(paths) + len(unreadable):
            of += " checked"
        warnings.warn(
            f"{len(small)} of {of} in {folder!r} are smaller than {image_size}x{image_size} "
            f"(e.g. {small[0]}); they are upscaled and will look blurry. "
            "Use a smaller image_size (--image-size) or remove them.",
            stacklevel=4,
        )
    # The paths live in one tensor; epochs shuffle their indices (8 bytes each, not
    # a copy of every path per epoch) and each read looks its path up.
    # As bytes: a name that is not UTF-8 is read as it is on disk.
    names = tf.convert_to_tensor(np.array([os.fsencode(p) for p in paths], dtype=object))  # 10x faster than from a list
    root = os.fsencode(os.path.join(folder, ""))
    # JPEGs are decoded at reduced scale where they are at least twice image_size. When
    # no image of the sample is, the per-file choice (a header read, a cond and a switch)
    # is left out: a larger file outside the sample is then decoded whole (slower, the
    # same image).
    reduce = image_size if image_size and max(sides.values()) >= 2 * image_size else None
    def fingerprint():
        stats = []
        for path in paths:
            try:
                info = os.stat(os.path.join(folder, path))
                stats.append((os.fsencode(path).hex(), info.st_size, info.st_mtime_ns))
            except OSError:
                stats.append((os.fsencode(path).hex(), -1, -1))
        return _digest([os.path.abspath(folder), stats])

    return _Source(
        fingerprint=fingerprint,
        elements=None,
        table=np.arange(len(paths), dtype=np.int64),
        count=len(paths),
        load=lambda i: _read_rgb(tf.strings.join([root, tf.gather(names, i)]), reduce),
        dtype=tf.uint8,
        channels=3,
        description=f"The folder {folder!r}",
        in_memory=False,
        may_fail=True,
        failures=UnreadableFiles(folder, names),
    )


def _tfds_source(spec: str, data_dir: str | None) -> _Source:
    ds, size, name, split = _tfds_images(spec, data_dir)
    if size is None:
        size = int(ds.cardinality())
    if size < 0:
        raise ValueError(
            f"The number of images in TFDS dataset {name!r} (split {split!r}) is unknown, so an epoch "
            "would have no known length. Use a split whose size TFDS records (e.g. 'train'). "
            f"Received: source='tfds:{spec}'"
        )
    return _Source(
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
