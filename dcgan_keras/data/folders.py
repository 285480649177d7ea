"""Folders of image files: the listing, the one scan that checks them, its messages, and decoding.

A folder is searched recursively for `IMAGE_EXTENSIONS`. Training checks a random
sample of its files up front (`check_folder_sample`) and the others as they are
read (`UnreadableFiles`); `scan_image_folder` checks every file. Both are the same
scan (`_scan`) and say what they find with the same errors and warnings
(`_raise_if_none_readable`, `_warn_about`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import threading
import warnings
from collections.abc import Callable

from PIL import Image

import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Files of a folder decoded up front (a random sample; all of a smaller folder).
SAMPLE_FILES = 256
# A folder where more than this fraction of the checked image files cannot be read is
# refused: it is not what was meant, or it is damaged. Fewer are skipped with a warning
# (a crawl whose other half are error pages still trains on the good half).
MAX_UNREADABLE_FRACTION = 0.75
# The formats TensorFlow's `tf.io.decode_image` reads, by the names PIL gives them. PIL opens
# more (TIFF, AVIF, HEIC, ...), often under a .jpg or .png name; training cannot read those.
DECODER_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# The most pixels one image may have as decoded (a JPEG is decoded at reduced scale when it
# is at least twice image_size). Decoding and resizing take ~15 bytes a pixel while the
# image is in flight (uint8 frame, float32 crop), so 40 Mpx (e.g. 7300 x 5500) is ~0.6 GB
# per image; larger images are skipped and named. Raise it for a machine with the memory.
MAX_IMAGE_PIXELS = 40_000_000
# JPEGs may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), much faster.
JPEG_RATIOS = (2, 4, 8)

_LOG = logging.getLogger("dcgan_keras")


# -- listing ----------------------------------------------------------------------------


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


# -- the scan ---------------------------------------------------------------------------


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
        rotated: `{path: EXIF orientation}` for readable JPEGs that viewers
            show turned or mirrored (training reads pixels as stored).
        largest_side: the longest shorter side among the readable images.
    """

    readable: list[str]
    unreadable: dict[str, str]
    other_files: list[str]
    small: list[str]
    modes: dict[str, int]
    rotated: dict[str, int] = dataclasses.field(default_factory=dict)
    largest_side: int = 0


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


def _scan(folder: str, image_size: int | None, sample: int | None = None, relative: bool = False):
    """Lists `folder` and decodes its image files, all of them or a random `sample`: the one scan of a folder.

    Returns:
        `(scan, files, skipped)`: the `FolderScan` of the files decoded, every
        image file listed, and the entries the listing skipped (`_list_folder`).
    """
    skipped = {}
    files, others = _list_folder(folder, relative=relative, skipped=skipped)
    _raise_if_no_images(folder, files, others, skipped)
    checked = files if sample is None or len(files) <= sample else sorted(random.Random(0).sample(files, sample))
    path_of = (lambda f: os.path.join(folder, f)) if relative else (lambda f: f)
    # PIL and TensorFlow decode without the GIL
    results = _map_in_threads(lambda f: _check_image(path_of(f), image_size), checked, min(8, os.cpu_count() or 1))
    scan = FolderScan([], {}, others, [], {})
    for path, (error, side, mode) in zip(checked, results):
        if error:
            scan.unreadable[path] = error
            continue
        scan.readable.append(path)
        mode, *exif = mode.split()  # a note "EXIF-orientation N" after the mode
        scan.modes[mode] = scan.modes.get(mode, 0) + 1
        if exif:
            scan.rotated[path] = int(exif[-1])
        if image_size and side < image_size:
            scan.small.append(path)
        scan.largest_side = max(scan.largest_side, side)
    return scan, files, skipped


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
    scan, files, skipped = _scan(folder, image_size)
    scan.unreadable = {**skipped, **scan.unreadable}
    _raise_if_none_readable(folder, _checked(len(files), len(files)), scan, os.path.basename)
    return scan


def check_folder_sample(folder: str, image_size: int | None, stacklevel: int) -> tuple[list[str], FolderScan]:
    """Training's check of a folder: a random sample of `SAMPLE_FILES` files decoded, and warnings for what it finds.

    Args:
        stacklevel: `warnings.warn`'s, counted from this function.

    Returns:
        `(paths, scan)`: the image files to read, relative to `folder` (all but
        the sample's unreadable ones), and the `FolderScan` of the sample.
    """
    scan, files, skipped = _scan(folder, image_size, sample=SAMPLE_FILES, relative=True)  # relative: shorter strings
    _warn_skipped(folder, skipped, stacklevel + 1)
    count = len(scan.readable) + len(scan.unreadable)
    _raise_if_none_readable(folder, _checked(count, len(files)), scan, os.path.basename)
    _warn_about(scan, folder, count, len(files), image_size, printable, stacklevel + 1)
    if scan.rotated:
        first, orientation = next(iter(scan.rotated.items()))
        warnings.warn(
            f"{len(scan.rotated)} of the {_checked(count, len(files))} in {folder!r} carry an EXIF orientation (e.g. "
            f"{printable(first)}: {orientation}); training reads pixels as stored, so they are trained rotated or "
            "mirrored from how viewers show them. Apply the rotation first (PIL.ImageOps.exif_transpose, then "
            "save) to train them upright.",
            stacklevel=stacklevel,
        )
    return [path for path in files if path not in scan.unreadable], scan


# -- what a scan found, said once -------------------------------------------------------------


def _checked(count: int, files: int) -> str:
    """How messages name `count` files checked of a folder's `files` image files."""
    return f"{count} image files" if count == files else f"{count} image files checked of the {files}"


def _warn_skipped(folder: str, skipped: dict, stacklevel: int) -> None:
    if skipped:
        examples = "; ".join(f"{printable(p)} ({r})" for p, r in sorted(skipped.items())[:5])
        warnings.warn(
            f"Skipped {len(skipped)} {'entry' if len(skipped) == 1 else 'entries'} in {printable(folder)!r} "
            "that are not regular files or "
            f"folders that can be read: {examples}. Replace them with regular image files to use them.",
            stacklevel=stacklevel,
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


def _raise_if_none_readable(folder: str, checked: str, scan: FolderScan, name: Callable) -> None:
    if scan.readable:
        return
    examples = "; ".join(f"{printable(name(p))} ({r})" for p, r in list(scan.unreadable.items())[:3])
    raise ValueError(
        f"None of the {checked} in folder {folder!r} can be read: {examples}. They are empty, "
        "truncated, not images or in a format TensorFlow cannot decode; replace them with valid PNG "
        "or JPEG files."
    )


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


def _warn_about(
    scan: FolderScan, folder: str, count: int, files: int, image_size: int | None, name: Callable, stacklevel: int
) -> None:
    """Refuses a mostly unreadable folder; warns of unreadable, other and small files.

    Args:
        scan: the scan of `count` of the folder's `files` image files.
        name: path in `scan` -> how a message names it.
        stacklevel: `warnings.warn`'s, counted from this function.
    """
    checked = _checked(count, files)
    _raise_if_mostly_unreadable(folder, checked, count, scan.unreadable, name)
    if scan.unreadable:
        examples = "; ".join(f"{name(p)} ({r})" for p, r in list(scan.unreadable.items())[:5])
        rest = (
            f"Training uses the other {files - len(scan.unreadable)}" if count == files
            else "The other files are checked as they are read (failures are skipped and logged)"
        )
        warnings.warn(
            f"Skipped {len(scan.unreadable)} of {checked} in {folder!r} that cannot be read (empty, "
            f"truncated, corrupt or not images): {examples}. {rest}; fix or remove those files to "
            "silence this warning (dcgan_keras.data.scan_image_folder lists them all).",
            stacklevel=stacklevel,
        )
    if scan.other_files:
        examples = ", ".join(name(p) for p in scan.other_files[:5])
        warnings.warn(
            f"Ignored {len(scan.other_files)} file(s) in {folder!r} without an image extension "
            f"({', '.join(IMAGE_EXTENSIONS)}): {examples}.",
            stacklevel=stacklevel,
        )
    if scan.small:
        of = f"{len(scan.readable)} images" + (" checked" if count < files else "")
        warnings.warn(
            f"{len(scan.small)} of {of} in {folder!r} are smaller than {image_size}x{image_size} "
            f"(e.g. {name(scan.small[0])}); they are upscaled and will look blurry. "
            "Use a smaller image_size (--image-size) or remove them.",
            stacklevel=stacklevel,
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
    total = len(scan.readable) + len(scan.unreadable)
    _warn_about(scan, folder, total, total, image_size, lambda p: printable(os.path.relpath(p, folder)), 5)

    ds = tf.data.Dataset.from_tensor_slices([os.fsencode(p) for p in scan.readable]).map(
        _read_rgb, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return (ds.ignore_errors(log_warning=True) if skip_errors else ds), scan.readable


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


# -- decoding ---------------------------------------------------------------------------------


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
