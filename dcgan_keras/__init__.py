"""dcgan_keras: the DCGAN of Radford, Metz & Chintala (ICLR 2016) in Keras 3.

`import dcgan_keras` imports no TensorFlow: each public name below is loaded
on first use (PEP 562), so `python -m dcgan_keras --help` and the TF Serving
client (`dcgan_keras.serving_client`, NumPy and Pillow only) start at once.
The Keras classes (`DCGAN`, the layers of `fast_layers`) are registered as
soon as Keras is imported, so `keras.models.load_model` reads a `.keras`
checkpoint after `import dcgan_keras` without `custom_objects`.
"""

import importlib
import os

# Before anything imports Keras (setting them imports nothing). The command line quietens
# TensorFlow further unless its log level was given (dcgan_keras.cli._quiet).
_tf_log_level_given = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan_keras import _registration  # noqa: E402

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "EvaluationCallback": "callbacks", "LossPlot": "callbacks", "SampleGrid": "callbacks",
    "Config": "config",
    "load_digits": "data", "load_twemoji": "data", "make_dataset": "data",
    "make_strategy": "distribute",
    "load_generator": "checkpoints", "export_generator": "export",
    "DCGAN": "gan", "make_adam": "gan", "paper_adam": "gan",  # paper_adam: make_adam's old name
    "from_uint8": "images", "image_grid": "images", "save_png": "images", "to_uint8": "images",
    "DownConv2D": "fast_layers", "UpConv2D": "fast_layers",  # version 0.1's layer names
    "build_discriminator": "networks", "build_generator": "networks",
    "batched_forward": "sampling", "latent_vectors": "sampling", "latent_vectors_for": "sampling",
    "train": "train_lib",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """Loads a public name, or a submodule (`dcgan_keras.data`), on first use."""
    if name in _PUBLIC:
        importlib.import_module("dcgan_keras._backend")  # checks that Keras runs on TensorFlow
        value = getattr(importlib.import_module(f"dcgan_keras.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"dcgan_keras.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"dcgan_keras.{name}":
                raise
    raise AttributeError(f"module 'dcgan_keras' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_PUBLIC})


_registration.register_when_keras_loads()
