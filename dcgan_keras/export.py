"""Export of the generator as a versioned SavedModel that TF Serving serves."""

from __future__ import annotations

import os
import shutil

from dcgan_keras import _backend  # noqa: F401
import keras
import tensorflow as tf


def _as_generator(model) -> keras.Model:
    # A DCGAN exports its sampler (the EMA generator when it keeps one).
    return getattr(model, "sampler", model)


def next_version(base_dir) -> int:
    """The next free integer version under `base_dir` (1 when there is none)."""
    base_dir = os.fspath(base_dir)
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    return max(versions, default=0) + 1


def export_generator(model, base_dir, version: int | None = None) -> str:
    """Writes the generator to `base_dir/<version>/` as a SavedModel.

    The SavedModel has three signatures, all with batch norm in inference mode:

    - `serving_default`: `z` (float32 `[batch, latent_dim]`) -> `images`
      (uint8 `[batch, H, W, C]`, 0..255).
    - `sample`: `seed` (int64 scalar) and `num_images` (int32 scalar) ->
      `images` (uint8 `[num_images, H, W, C]`). z is drawn inside the graph
      with `tf.random.stateless_normal`, so the same seed always gives the
      same images, wherever the model is loaded.
    - `png`: `z` -> `png_bytes` (string `[batch]`, one PNG file per image).
      The output name ends in `_bytes` because TF Serving's REST API
      base64-encodes only string outputs so named (`{"b64": "..."}`).

    An existing version is never overwritten; the folder is written under a
    temporary name and renamed when complete.

    Args:
        model: a `DCGAN` (its `sampler` is exported) or a generator model.
        base_dir: the model's folder, e.g. `saved_models/digits`.
        version: the version number; the next free one when `None`.

    Returns:
        The path of the written version folder.
    """
    generator = _as_generator(model)
    base_dir = os.fspath(base_dir)
    version = next_version(base_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version}")
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} already exists; exported versions are never overwritten. "
            f"Pass another version (next free: {next_version(base_dir)}) or omit it."
        )
    latent_dim = generator.input_shape[-1]

    module = tf.Module()
    module.generator = generator

    def to_pixels(z):
        images = tf.cast(generator(z, training=False), tf.float32)
        return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)

    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
    def serving_default(z):
        return {"images": to_pixels(z)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.int64, name="seed"),
            tf.TensorSpec([], tf.int32, name="num_images"),
        ]
    )
    def sample(seed, num_images):
        tf.debugging.assert_non_negative(num_images, message="num_images must be >= 0")
        z = tf.random.stateless_normal(
            tf.stack([num_images, tf.constant(latent_dim, tf.int32)]),
            seed=tf.stack([seed, tf.constant(0, tf.int64)]),
            dtype=tf.float32,
        )
        return {"images": to_pixels(z)}

    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
    def png(z):
        encoded = tf.map_fn(tf.io.encode_png, to_pixels(z), fn_output_signature=tf.TensorSpec([], tf.string))
        return {"png_bytes": encoded}

    module.serving_default = serving_default
    module.sample = sample
    module.png = png
    os.makedirs(base_dir, exist_ok=True)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(
        module, tmp, signatures={"serving_default": serving_default, "sample": sample, "png": png}
    )
    os.replace(tmp, target)
    return target


class SavedModelGenerator:
    """A generator loaded from an exported SavedModel, callable like a Keras generator.

    Calling it with z of shape `(batch, latent_dim)` returns float32 images in
    [-1, 1] (decoded from the export's uint8 pixels), so experiments accept it
    wherever they accept a `keras.Model` generator.

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
        self._loaded = tf.saved_model.load(self.path)
        self._serve = self._loaded.signatures["serving_default"]
        spec = self._serve.structured_input_signature[1]["z"]
        self.latent_dim = int(spec.shape[-1])
        out = self._serve.structured_outputs["images"]
        self.output_shape = (None, *[int(d) for d in out.shape[1:]])

    def __call__(self, z, training=False):
        pixels = self._serve(z=tf.convert_to_tensor(z, tf.float32))["images"]
        return tf.cast(pixels, tf.float32) / 127.5 - 1.0

    def predict(self, z, batch_size=256, verbose=0):
        import numpy as np

        z = np.asarray(z, dtype="float32")
        return np.concatenate([self(z[i : i + batch_size]).numpy() for i in range(0, len(z), batch_size)])


def load_generator(path):
    """Loads a generator from a `.keras` checkpoint (a `DCGAN` or a generator) or a SavedModel folder.

    Returns:
        A `keras.Model` (from `.keras`; a DCGAN gives its `sampler`) or a
        `SavedModelGenerator`; both map z to images in [-1, 1].
    """
    path = os.fspath(path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No checkpoint file at {path!r}.")
        import dcgan_keras.gan  # noqa: F401  (registers the classes)

        return _as_generator(keras.models.load_model(path))
    return SavedModelGenerator(path)
