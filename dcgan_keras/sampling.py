"""Latent vectors and batched forward passes, shared by the model, callbacks and experiments."""

from __future__ import annotations

import numpy as np


# How far from the origin each mode of a mixture prior sits (`Config.mode_offset`'s default;
# 5 measured best on the digits, docs/quality.md).
MODE_OFFSET = 5.0
# The distributions z can be drawn from (`Config.latent_distribution`): the paper's uniform
# noise on [-1, 1]^latent_dim (its Figure 1), or the normal noise of the PyTorch example.
DISTRIBUTIONS = ("normal", "uniform")


def latent_vectors(
    num: int, latent_dim: int, seed: int = 0, modes: int = 0, offset: float = MODE_OFFSET, distribution: str = "normal"
) -> np.ndarray:
    """`num` latent vectors z drawn from the prior, the same for the same seed.

    With `distribution="uniform"` (`--recipe paper`, the paper's Figure 1) z is
    uniform on [-1, 1]^latent_dim. With `"normal"` and `modes=0` z ~ N(0, I)
    (the PyTorch example). With `modes=K` the prior is a mixture of K equally
    likely unit Gaussians, centred `offset` along each of the first K axes:
    z = n + offset * e_c, with n ~ N(0, I) and the mode c uniform in 0..K-1
    (`Config.latent_modes`, the default recipe).

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
        distribution: "normal" or "uniform" (`DISTRIBUTIONS`).

    Returns:
        A float32 array of shape `(num, latent_dim)`.
    """
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, (int(num), int(latent_dim))).astype("float32")
    z = rng.standard_normal((int(num), int(latent_dim))).astype("float32")
    if modes:
        z[np.arange(int(num)), rng.integers(int(modes), size=int(num))] += np.float32(offset)
    return z


def mixture_noise(shape, modes: int, offset: float, seed, distribution: str = "normal"):
    """`latent_vectors`' prior as a graph op, stateless: the same `seed` (a shape-(2,) int tensor)
    gives the same z. Used where z is drawn inside a graph (replicas in `DCGAN.latent_noise`)."""
    import tensorflow as tf

    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, maxval=1.0, dtype=tf.float32)
    z = tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)
    if modes:
        mode = tf.random.stateless_uniform(shape[:1], seed=tf.random.fold_in(seed, 1), maxval=modes, dtype=tf.int32)
        z = z + offset * tf.one_hot(mode, shape[-1])
    return z


def latent_prior(generator) -> tuple[int, float, str]:
    """`(modes, offset, distribution)` of the prior `generator` takes; `(0, ..., "normal")`: N(0, I).

    A `DCGAN` records them (`Config.latent_modes`, `Config.mode_offset`,
    `Config.latent_distribution`) on itself and on its networks; an exported
    generator (`SavedModelGenerator`) takes N(0, I) whatever it was trained on
    (`from_standard_normal`); any other model is taken to expect N(0, I).
    """
    return (
        int(getattr(generator, "latent_modes", 0) or 0),
        float(getattr(generator, "mode_offset", MODE_OFFSET)),
        str(getattr(generator, "latent_distribution", "normal")),
    )


def record_prior(model, modes: int, offset: float, distribution: str = "normal"):
    """Marks `model` as trained on this prior (what `latent_prior` reads) and returns it."""
    model.latent_modes, model.mode_offset, model.latent_distribution = int(modes), float(offset), str(distribution)
    return model


def from_standard_normal(z, modes: int = 0, offset: float = MODE_OFFSET, distribution: str = "normal"):
    """Maps z ~ N(0, I) to a draw of the prior `(modes, offset, distribution)`, exactly, as a graph of `keras.ops`.

    This is how an export takes what every DCGAN client sends, z ~ N(0, I),
    whatever prior its generator was trained on (`export_generator`):

    - N(0, I): z itself.
    - uniform on [-1, 1]: `erf(z / sqrt(2))` (2 Phi(z) - 1, uniform when z is normal), with
      `erf` built from +, *, / (LiteRT has no erf op).
    - a mixture of K unit Gaussians: the last two coordinates, as a point of the
      plane, have an angle uniform in [0, 2 pi) and independent of their radius.
      The angle's K-th of the circle picks the mode c; the angle within that
      K-th, stretched K times, is again uniform and independent of c, so that
      point, put back, is again N(0, I_2). Then z + offset * e_c is an exact
      draw of the mixture. Nearby z give nearby images except where the angle
      crosses from one mode's sector into the next.

    Args:
        z: float32 tensor of shape `(batch, latent_dim)`, a draw of N(0, I).
        modes, offset, distribution: the prior (`latent_prior`).

    Returns:
        A float32 tensor of the same shape, distributed as the prior.
    """
    from keras import ops

    if distribution == "uniform":
        return erf(z / np.float32(np.sqrt(2.0)))
    if not modes:
        return z
    x, y = z[:, -2], z[:, -1]
    radius = ops.sqrt(x * x + y * y)
    turns = (ops.arctan2(y, x) / np.float32(2 * np.pi)) % 1.0  # the angle, in [0, 1)
    sector = ops.minimum(ops.floor(turns * modes), modes - 1)  # the mode
    angle = (turns * modes - sector) * np.float32(2 * np.pi)  # uniform in [0, 2 pi), independent of the mode
    plane = ops.stack([radius * ops.cos(angle), radius * ops.sin(angle)], axis=1)
    noise = ops.concatenate([z[:, :-2], plane], axis=1)
    return noise + offset * ops.one_hot(ops.cast(sector, "int32"), z.shape[-1])


# The rational approximation of float32 erf from Eigen, which XLA uses too: an odd numerator
# over an even denominator, in powers of x^2, highest first.
_ERF_NUMERATOR = (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
)
_ERF_DENOMINATOR = (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def erf(x):
    """The error function in float32 from +, *, / and a clip, as `keras.ops`: within 5e-7 of erf.

    Every export format runs it (LiteRT has no erf op; ONNX and TensorFlow do). Measured
    on 2,000,001 points of [-8, 8]: at most 4.5e-7 from float64 `scipy.special.erf`
    (`ops.erf` on TensorFlow's CPU: 3.4e-7); always in [-1, 1]; exactly +-1 beyond +-4.
    """
    from keras import ops

    x = ops.clip(x, -4.0, 4.0)  # float32 erf is +-1 beyond
    x2 = x * x
    numerator = np.float32(_ERF_NUMERATOR[0])
    for c in _ERF_NUMERATOR[1:]:
        numerator = numerator * x2 + np.float32(c)
    denominator = np.float32(_ERF_DENOMINATOR[0])
    for c in _ERF_DENOMINATOR[1:]:
        denominator = denominator * x2 + np.float32(c)
    return ops.clip(x * numerator / denominator, -1.0, 1.0)  # the quotient overshoots 1 by 2e-7 near +-3.9


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
