"""The `tf.data` pipeline: an image source -> shuffled batches in [-1, 1], a known number per epoch.

Every image is centre-cropped to a square, resized to `image_size`, converted
to the requested number of channels and scaled to [-1, 1]. No augmentation,
as in the paper. Every epoch has a known number of batches; images are kept in
memory as uint8 only when they fit a budget, and read again otherwise
(docs/data.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import warnings
from collections.abc import Callable

import numpy as np

import tensorflow as tf

from dcgan_keras.config import SUPPORTED_CHANNELS
from dcgan_keras.data.folders import UnreadableFiles
from dcgan_keras.data.sources import Source, open_source

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
# Decoded files are checked for failures in groups of this many (one check a group).
CHECK_GROUP = 64

_LOG = logging.getLogger("dcgan_keras")
_plain = tf.autograph.experimental.do_not_convert


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
    mirror: bool = False,
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
        source: `"digits"`, `"twemoji"`, `"tfds:NAME[:SPLIT]"`, a folder path,
            a NumPy array (see `dcgan_keras.data.sources`), or a `Source`
            already opened by `open_source` (e.g. to read its channels first).
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
            (see `distribute.input_shard`): this worker reads only its share of the
            files (or images), and the dataset keeps `N // batch_size`
            global batches per epoch.
        mirror: flip half of the images left-right, drawn anew for each
            batch (after the cache, which keeps the images as they are).

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
    src = source if isinstance(source, Source) else open_source(source, data_dir, image_size)
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
    if mirror:  # a seed per batch, new each epoch (each pass of Keras' fit iterates ds anew)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, seeds).map(_plain(_flip_half), num_parallel_calls=tf.data.AUTOTUNE)
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


def _flip_half(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A batch with each image flipped left-right with probability 1/2, drawn from `seed`."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=tf.stack([seed, 0])) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


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

