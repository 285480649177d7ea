"""Latent vectors and batched forward passes, shared by the model, callbacks and experiments."""

from __future__ import annotations

import numpy as np


def latent_vectors(num: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """`num` latent vectors z ~ N(0, I), the same for the same seed.

    Every sample grid, evaluation and experiment draws its z here, so the same
    seed gives the same z (and, from the same generator, the same images)
    wherever it is used. Training draws its own z inside the graph
    (`DCGAN.latent_noise`).

    Args:
        num: number of vectors.
        latent_dim: size of each vector.
        seed: seed of NumPy's generator.

    Returns:
        A float32 array of shape `(num, latent_dim)`.
    """
    return np.random.default_rng(seed).standard_normal((int(num), int(latent_dim))).astype("float32")


def latent_size(generator) -> int:
    """The size of z a generator takes (`latent_dim`, or its input shape's last axis)."""
    if getattr(generator, "latent_dim", None):
        return int(generator.latent_dim)
    return int(generator.input_shape[-1])


def batched_forward(model, inputs, batch_size: int = 256) -> np.ndarray:
    """`model(inputs, training=False)` a batch at a time, as one float32 array.

    Args:
        model: a `keras.Model` or anything called as `model(x, training=False)`
            (an exported `SavedModelGenerator`, a sub-model of a network).
        inputs: an array whose first axis is the batch.
        batch_size: inputs per call.

    Returns:
        The outputs, concatenated along the first axis, as float32.
    """
    inputs = np.asarray(inputs, dtype="float32")
    outputs = [
        np.asarray(model(inputs[start : start + batch_size], training=False), dtype="float32")
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs)
