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

    Its `serving_default` signature maps `z` (float32 `[batch, latent_dim]`)
    to `images` (uint8 `[batch, H, W, C]`, 0..255), with batch norm in
    inference mode. An existing version is never overwritten; the folder is
    written under a temporary name and renamed when complete.

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

    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="z")])
    def serving_default(z):
        images = tf.cast(generator(z, training=False), tf.float32)
        pixels = tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        return {"images": pixels}

    module.serving_default = serving_default
    os.makedirs(base_dir, exist_ok=True)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures={"serving_default": serving_default})
    os.replace(tmp, target)
    return target
