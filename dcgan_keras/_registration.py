"""Registers dcgan_keras' Keras classes with Keras, without importing Keras early.

`import dcgan_keras` imports no TensorFlow, yet `keras.models.load_model`
must find `DCGAN` and the `fast_layers` layers once it has been run. So the
classes are registered (their modules imported) as soon as Keras and
TensorFlow are both loaded: at once if they are, else right after the first
of `import keras` / `import tensorflow` finishes (each imports the other, so
both are complete then).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_WATCHED = ("keras", "tensorflow")
_REGISTERING = ("dcgan_keras.fast_layers", "dcgan_keras.gan")  # the modules with register_keras_serializable


def register_now() -> None:
    """Imports the modules whose classes are registered, if Keras runs on TensorFlow."""
    keras = sys.modules.get("keras") or importlib.import_module("keras")
    if keras.backend.backend() != "tensorflow":
        return  # dcgan_keras refuses other backends when it is used (dcgan_keras._backend)
    for name in _REGISTERING:
        importlib.import_module(name)


def register_when_keras_loads() -> None:
    """Registers now if Keras or TensorFlow is loaded, else after the first of them is imported."""
    if any(name in sys.modules for name in _WATCHED):
        register_now()
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds `keras` or `tensorflow` as usual, and registers once that import has finished."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED:
            return None
        sys.meta_path.remove(self)  # once: the first of the two imports the other
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    """A loader that runs another, puts it back in place, then registers the classes."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader
        self._loader.exec_module(module)
        register_now()
