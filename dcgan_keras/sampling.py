"""Latent vectors and batched forward passes, shared by the model, callbacks and experiments."""

from __future__ import annotations

import numpy as np


# How far from the origin each mode of a mixture prior sits (`Config.mode_offset`'s default;
# 5 measured best on the digits, docs/quality.md).
MODE_OFFSET = 5.0


def latent_vectors(num: int, latent_dim: int, seed: int = 0, modes: int = 0, offset: float = MODE_OFFSET) -> np.ndarray:
    """`num` latent vectors z drawn from the prior, the same for the same seed.

    With `modes=0` (`--recipe paper`) z ~ N(0, I). With `modes=K` the prior is a
    mixture of K equally likely unit Gaussians, centred `offset` along each
    of the first K axes: z = n + offset * e_c, with n ~ N(0, I) and the mode
    c uniform in 0..K-1 (`Config.latent_modes`).

    Every sample grid, evaluation and experiment draws its z here (through
    `latent_vectors_for` when it has the generator), so the same seed gives
    the same z (and, from the same generator, the same images) wherever it
    is used. Training draws its own z inside the graph (`DCGAN.latent_noise`).

    Args:
        num: number of vectors.
        latent_dim: size of each vector.
        seed: seed of NumPy's generator.
        modes: number of modes of the prior; 0 = one standard normal.
        offset: distance of each mode's centre from the origin.

    Returns:
        A float32 array of shape `(num, latent_dim)`.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((int(num), int(latent_dim))).astype("float32")
    if modes:
        z[np.arange(int(num)), rng.integers(int(modes), size=int(num))] += np.float32(offset)
    return z


def mixture_noise(shape, modes: int, offset: float, seed):
    """`latent_vectors`' prior as a graph op, stateless: the same `seed` (a shape-(2,) int tensor)
    gives the same z. Used where z is drawn inside a graph (replicas in `DCGAN.latent_noise`,
    the export's `sample` signature)."""
    import tensorflow as tf

    z = tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)
    if modes:
        mode = tf.random.stateless_uniform(shape[:1], seed=tf.random.fold_in(seed, 1), maxval=modes, dtype=tf.int32)
        z = z + offset * tf.one_hot(mode, shape[-1])
    return z


def latent_prior(generator) -> tuple[int, float]:
    """`(modes, offset)` of the prior `generator` was trained with; `(0, ...)`: N(0, I).

    A `DCGAN` records them (`Config.latent_modes`, `Config.mode_offset`) on
    itself and on its networks, and an export in its SavedModel
    (`SavedModelGenerator`); any other model is taken to expect N(0, I).
    """
    return int(getattr(generator, "latent_modes", 0) or 0), float(getattr(generator, "mode_offset", MODE_OFFSET))


def record_prior(model, modes: int, offset: float):
    """Marks `model` as trained on this prior (what `latent_prior` reads) and returns it."""
    model.latent_modes, model.mode_offset = int(modes), float(offset)
    return model


def latent_vectors_for(generator, num: int, seed: int = 0) -> np.ndarray:
    """`num` latent vectors of the size and prior `generator` takes (`latent_vectors`)."""
    return latent_vectors(num, latent_size(generator), seed, *latent_prior(generator))


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
