"""Every loader in one home: checkpoints (`.keras`) and exported SavedModels, read back.

- `load_checkpoint`: a `.keras` file (a `DCGAN`, or any model), with Keras' `safe_mode` on.
- `load_generator`: a generator (z -> images in [-1, 1]) from a checkpoint or an export
  (`SavedModelGenerator`, which runs the export's signature).
- `load_keras_generator` / `generator_from_saved_model`: a Keras generator whose layers
  can be changed (ablation), rebuilt from an export's variables if need be.
- `load_discriminator`: a checkpoint's discriminator.
- `load_sampler`: an export's `sample` signature, as a TF Serving client calls it.

Writing them is elsewhere: `export.export_generator` (SavedModels), `guards` (checkpoints).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras.sampling import (
    DISTRIBUTIONS, MODE_OFFSET, from_standard_normal, latent_prior, latent_vectors_for, record_prior,
)


def _as_generator(model) -> keras.Model:
    # A DCGAN exports its sampler (the EMA generator when it keeps one).
    return getattr(model, "sampler", model)



class SavedModelGenerator:
    """A generator loaded from an exported SavedModel, callable like a Keras generator.

    Calling it with z of shape `(batch, latent_dim)` returns float32 images in
    [-1, 1] (decoded from the export's uint8 pixels), so experiments accept it
    wherever they accept a `keras.Model` generator. It takes z ~ N(0, I)
    (`latent_prior` says so); `trained_prior` is the prior its generator was
    trained on. (Exports written before the map from N(0, I) take that prior.)

    Args:
        path: a version folder written by `export_generator`, e.g. `saved_models/digits/1`.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(os.path.join(self.path, "saved_model.pb")):
            raise FileNotFoundError(
                f"No SavedModel at {self.path!r} (no saved_model.pb). Pass a version "
                "folder such as saved_models/NAME/1, written by `train` or `export`."
            )
        self._loaded = _load_saved_model(self.path)
        signatures = self._loaded.signatures
        serve = signatures["serving_default"] if "serving_default" in signatures else None
        if (
            serve is None or "z" not in serve.structured_input_signature[1]
            or "images" not in serve.structured_outputs
        ):
            raise ValueError(_foreign(self.path, signatures))
        self._serve = serve
        spec = self._serve.structured_input_signature[1]["z"]
        self.latent_dim = int(spec.shape[-1])
        self.input_shape = (None, self.latent_dim)
        out = self._serve.structured_outputs["images"]
        self.output_shape = (None, *[int(d) for d in out.shape[1:]])
        values = [v.numpy() for v in getattr(self._loaded, "latent_prior", [])]  # exports before priors: N(0, I)
        self.trained_prior = (
            (int(values[0]), float(values[1]), DISTRIBUTIONS[int(values[2])] if len(values) > 2 else "normal")
            if values else (0, MODE_OFFSET, "normal")
        )
        takes_standard_normal = bool(getattr(self._loaded, "standard_normal_input", []))
        record_prior(self, *((0, MODE_OFFSET, "normal") if takes_standard_normal else self.trained_prior))

    def __call__(self, z, training=False):
        z = tf.convert_to_tensor(z, tf.float32)
        check_latent(z.shape, self.latent_dim, self.path)
        pixels = self._serve(z=z)["images"]
        return tf.cast(pixels, tf.float32) / 127.5 - 1.0

    def predict(self, z, batch_size=256, verbose=0):
        z = np.asarray(z, dtype="float32")
        return np.concatenate([self(z[i : i + batch_size]).numpy() for i in range(0, len(z), batch_size)])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def _load_saved_model(path: str):
    """`tf.saved_model.load(path)`, with one clear error for a damaged or incomplete SavedModel."""
    try:
        return tf.saved_model.load(path)
    except Exception as error:  # TF raises OSError, IndexError, ValueError, OpError, ... for damage
        missing = "" if os.path.isdir(os.path.join(path, "variables")) else " Its variables/ folder is missing."
        raise ValueError(
            f"The SavedModel at {path!r} cannot be loaded ({_first_line(error)}); it is damaged or incomplete "
            f"(e.g. a truncated saved_model.pb or variables file, or a partial copy).{missing} Export it again "
            "from its checkpoint: python -m dcgan_keras export --checkpoint RUN/ckpt.keras --name NAME."
        ) from None


def _foreign(path: str, signatures) -> str:
    return (
        f"The SavedModel at {path!r} is not a generator exported by dcgan_keras: it has no 'serving_default' "
        f"signature taking 'z' and giving 'images' (its signatures: {sorted(signatures) or 'none'}). Pass a "
        "version folder written by `train` or `export`, e.g. saved_models/NAME/1."
    )


def check_latent(shape, latent_dim: int, where: str) -> None:
    """Raises a clear error when z of `shape` does not fit a generator of `latent_dim`."""
    if len(shape) != 2 or (shape[-1] is not None and shape[-1] != latent_dim):
        raise ValueError(
            f"The generator of {where} takes z of shape (batch, {latent_dim}). "
            f"Received: z of shape {tuple(shape)}"
        )


def load_checkpoint(path, compile: bool = True) -> keras.Model:
    """Loads a `.keras` file with Keras' `safe_mode` on (no arbitrary code), with clear errors."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No checkpoint file at {path!r}. Pass a .keras file written by training, e.g. runs/NAME/ckpt.keras."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a readable .keras file (a .keras file is a zip archive); it may be "
            "truncated or not a checkpoint. Use another checkpoint, or `train --resume` from the run's backup."
        )
    import dcgan_keras.gan  # noqa: F401  (registers the classes)

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign archive
        if "safe_mode" in str(error):
            raise
        raise ValueError(
            f"{path!r} cannot be loaded as a checkpoint ({_first_line(error)}). It is damaged, or was "
            "written by other code (another Keras version or a model of classes this package does not "
            "define). Use a checkpoint written by training (runs/NAME/ckpt.keras), or `train --resume` from "
            "the run's backup."
        ) from None


def load_sampler(path):
    """The `sample` signature of an exported SavedModel: `(seed, num_images) -> {"images": uint8}`.

    Unlike `load_generator` (z in, images in [-1, 1] out), the noise is drawn
    inside the SavedModel from `seed`, as a TF Serving client gets it.
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(
            f"No SavedModel at {path!r} (no saved_model.pb). Pass a version folder such as "
            "saved_models/NAME/1, written by `train` or `export`."
        )
    loaded = _load_saved_model(path)
    serve = loaded.signatures["serving_default"] if "serving_default" in loaded.signatures else None
    if serve is None or "z" not in serve.structured_input_signature[1]:
        raise ValueError(_foreign(path, loaded.signatures))
    if "sample" not in loaded.signatures:
        raise ValueError(
            f"The SavedModel at {path!r} has no 'sample' signature (it has {sorted(loaded.signatures)}); "
            "it was exported by an older version. Export it again with `python -m dcgan_keras export`."
        )
    signature = loaded.signatures["sample"]

    def sample(seed, num_images):
        _ = loaded  # keeps the SavedModel's variables alive as long as this function
        return signature(seed=seed, num_images=num_images)

    return sample


def load_generator(path, latent_dim: int | None = None, image_shape=None):
    """Loads a generator from a `.keras` checkpoint (a `DCGAN` or a generator) or a SavedModel folder.

    Args:
        path: a `.keras` file or an exported version folder.
        latent_dim: if given, the size of z the caller will feed; a generator
            of another size is refused with a clear error.
        image_shape: if given, `(height, width, channels)` the caller expects.

    Returns:
        A `keras.Model` (from `.keras`; a DCGAN gives its `sampler`) or a
        `SavedModelGenerator`; both map z to images in [-1, 1].
    """
    path = os.fspath(path)
    generator = _as_generator(load_checkpoint(path)) if path.endswith(".keras") else SavedModelGenerator(path)
    shapes = (tuple(generator.input_shape), tuple(generator.output_shape))
    if len(shapes[0]) != 2 or len(shapes[1]) != 4 or shapes[1][-1] not in (1, 3):
        raise ValueError(
            f"The model in {path!r} is not an image generator: it takes inputs of shape {shapes[0]} and gives "
            f"{shapes[1]}, where a generator takes z (batch, latent_dim) and gives images (batch, height, "
            "width, 1 or 3). Pass a checkpoint written by training or an exported version folder."
        )
    have_latent, have_shape = int(generator.input_shape[-1]), tuple(generator.output_shape[1:])
    if latent_dim is not None and have_latent != latent_dim:
        raise ValueError(
            f"The generator in {path!r} takes z of size {have_latent}, not {latent_dim}. Use a model "
            f"trained with latent_dim={latent_dim}, or ask for {have_latent}. Received: latent_dim={latent_dim}"
        )
    if image_shape is not None and have_shape != tuple(image_shape):
        raise ValueError(
            f"The generator in {path!r} makes images of shape {have_shape}, not {tuple(image_shape)}. "
            f"Use a model trained at that size. Received: image_shape={tuple(image_shape)}"
        )
    return generator


def load_discriminator(path) -> keras.Model:
    """The discriminator of a `.keras` DCGAN checkpoint (or a bare model saved as `.keras`).

    Args:
        path: a `.keras` file, e.g. `runs/NAME/ckpt.keras`.

    Returns:
        The discriminator, a `keras.Model`.

    Raises:
        ValueError: for a SavedModel export, which holds only the generator,
            or for a path that is no `.keras` file.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            "This needs the discriminator, but a SavedModel export holds only the generator. "
            f"Pass the training checkpoint instead, e.g. runs/NAME/ckpt.keras. Received: path={path!r}"
        )
    if not path.endswith(".keras"):
        raise ValueError(f"Pass a .keras checkpoint of a DCGAN, e.g. runs/NAME/ckpt.keras. Received: path={path!r}")
    model = load_checkpoint(path, compile=False)
    return getattr(model, "discriminator", model)


def generator_from_saved_model(path) -> keras.Model:
    """Rebuilds a Keras generator from a SavedModel written by `export_generator`.

    The export keeps the generator's variables; this builds the same
    architecture with `build_generator` (sizes read from the variables) and
    loads them, then checks that it draws what the SavedModel draws.

    Args:
        path: a version folder, e.g. `saved_models/digits/1`.

    Returns:
        A functional `keras.Model` generator (z -> images in [-1, 1]).
    """
    return _rebuilt_generator(SavedModelGenerator(path))


def _rebuilt_generator(served: SavedModelGenerator) -> keras.Model:
    # `generator_from_saved_model` of an export already loaded: its variables are read from it.
    from dcgan_keras.config import Config
    from dcgan_keras.networks import build_generator

    path = served.path
    variables = {v.name.split(":")[0]: v.numpy() for v in getattr(served._loaded, "generator_variables", [])}
    kernels = [value for name, value in variables.items() if name.endswith("/kernel")]
    convs = [k for k in kernels if k.ndim == 4]
    if not kernels or kernels[0].ndim != 2 or not convs:
        raise ValueError(
            f"The SavedModel at {path!r} does not hold a generator built by build_generator "
            "(a projection followed by transposed convolutions), so its layers cannot be "
            f"rebuilt. Pass the .keras checkpoint instead. Received: path={path!r}"
        )
    config = Config(
        image_size=int(served.output_shape[1]), channels=int(served.output_shape[-1]),
        latent_dim=int(kernels[0].shape[0]), base_width=int(convs[-1].shape[-1]),
    )
    generator = build_generator(config)
    for lay in generator.layers:
        for weight in lay.weights:
            value = variables.get(weight.path)
            if value is None or tuple(value.shape) != tuple(weight.shape):
                raise ValueError(
                    f"The SavedModel at {path!r} does not match a generator of {config} at layer "
                    f"{lay.name!r} ({weight.name}); pass the .keras checkpoint instead. "
                    f"Received: path={path!r}"
                )
            weight.assign(value)
    record_prior(generator, *served.trained_prior)
    z = latent_vectors_for(served, 4, seed=0)  # what the export takes: N(0, I), or its prior in older exports
    mapped = from_standard_normal(z, *served.trained_prior) if latent_prior(served) != served.trained_prior else z
    diff = np.abs(np.asarray(generator(mapped, training=False)) - np.asarray(served(z))).max()
    if diff > 3.0 / 127.5:  # the export rounds to uint8
        raise ValueError(
            f"The generator rebuilt from {path!r} draws differently from the SavedModel "
            f"(largest pixel difference {diff:.3f}); pass the .keras checkpoint instead. "
            f"Received: path={path!r}"
        )
    return generator


def load_keras_generator(source) -> keras.Model:
    """A Keras generator from a `.keras` checkpoint, a SavedModel folder, or a loaded generator.

    Args:
        source: a path (`runs/NAME/ckpt.keras`, `saved_models/NAME/1`), a
            `keras.Model` generator (returned as is), or a `SavedModelGenerator`.

    Returns:
        A functional `keras.Model` whose layers can be ablated.
    """
    if isinstance(source, keras.Model):
        return getattr(source, "sampler", source)
    if isinstance(source, SavedModelGenerator):
        return _rebuilt_generator(source)  # loaded already: not loaded again
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be a path, a keras.Model or a SavedModelGenerator. "
            f"Received: source of type {type(source).__name__}"
        )
    path = os.fspath(source)
    if path.endswith(".keras"):
        return load_generator(path)
    return generator_from_saved_model(path)
