"""Image sources -> `tf.data` batches of images with pixel values in [-1, 1].

One module per job:
- `sources`: what a source names (`resolve_source`, the one dispatcher), the
  bundled digits and Twemoji, TFDS (`load_tfds`), NumPy arrays, labelled
  images (`load_labelled`), and `open_source` for training.
- `folders`: folders of image files: listing, the scan that checks them and
  its messages, decoding.
- `pipeline`: `make_dataset`, the `tf.data` pipeline: crop, resize, cache,
  shuffle, epochs of a known length, scaling to [-1, 1] (`preprocess`).

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

import sys
import types

from dcgan_keras.data import folders, pipeline, sources
from dcgan_keras.data.folders import (
    DECODER_FORMATS, IMAGE_EXTENSIONS, JPEG_RATIOS, MAX_IMAGE_PIXELS, MAX_UNREADABLE_FRACTION, SAMPLE_FILES,
    FolderScan, UnreadableFiles, folder_images, list_image_files, printable, scan_image_folder,
)
from dcgan_keras.data.pipeline import (
    CACHE_BUDGET_BYTES, CACHE_MODES, CHECK_GROUP, DECODED_SHUFFLE_BUFFER, SHUFFLE_BUFFER, make_dataset, preprocess,
)
from dcgan_keras.data.sources import (
    DIGITS, TWEMOJI, Source, array_images, infer_channels, load_digits, load_labelled, load_tfds, load_twemoji,
    open_source, resolve_source, twemoji_categories,
)

__all__ = [
    "CACHE_BUDGET_BYTES", "CACHE_MODES", "CHECK_GROUP", "DECODED_SHUFFLE_BUFFER", "DECODER_FORMATS", "DIGITS",
    "IMAGE_EXTENSIONS", "JPEG_RATIOS", "MAX_IMAGE_PIXELS", "MAX_UNREADABLE_FRACTION", "SAMPLE_FILES", "SHUFFLE_BUFFER",
    "TWEMOJI", "FolderScan", "Source", "UnreadableFiles", "array_images", "folder_images", "infer_channels",
    "list_image_files", "load_digits", "load_labelled", "load_tfds", "load_twemoji", "make_dataset", "open_source",
    "preprocess", "printable", "resolve_source", "scan_image_folder", "twemoji_categories",
]


class _Package(types.ModuleType):
    """Setting a constant here (`dcgan_keras.data.MAX_IMAGE_PIXELS = ...`) sets it in the module that reads it."""

    def __setattr__(self, name, value):
        for module in (folders, pipeline, sources):
            if name in vars(module):
                setattr(module, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
