"""dcgan_keras: the DCGAN of Radford, Metz & Chintala (ICLR 2016) in Keras 3.

`import dcgan_keras as dk` is cheap: the first `dk.NAME` loads the library
(Keras, TensorFlow) and registers its Keras classes, so that the command line
(`dcgan_keras.cli`) parses arguments and prints `--help` without TensorFlow.
"""

import importlib
import sys

from dcgan_keras import _backend  # noqa: F401  (selects the TensorFlow backend)

# Public names and the module each one lives in.
_EXPORTS = {
    "EvaluationCallback": "callbacks", "LossPlot": "callbacks", "SampleGrid": "callbacks",
    "Config": "config",
    "load_digits": "data", "make_dataset": "data",
    "make_strategy": "distribute",
    "export_generator": "export", "load_generator": "export",
    "DCGAN": "gan", "paper_adam": "gan",
    "from_uint8": "images", "image_grid": "images", "save_png": "images", "to_uint8": "images",
    "DownConv2D": "fast_layers", "UpConv2D": "fast_layers",  # version 0.1's layer names
    "build_discriminator": "networks", "build_generator": "networks",
    "batched_forward": "sampling", "latent_vectors": "sampling",
    "train": "train_lib",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def _load_library() -> None:
    """Imports every module of `_EXPORTS` (the Keras classes register themselves) and binds the names."""
    for name, module in _EXPORTS.items():
        globals()[name] = getattr(importlib.import_module(f"dcgan_keras.{module}"), name)


def __getattr__(name):
    if name in _EXPORTS:
        _load_library()
        return globals()[name]
    try:  # a submodule, e.g. dk.callbacks
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})


if "keras" in sys.modules:  # Keras is loaded already: nothing to save by waiting
    _load_library()
