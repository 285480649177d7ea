"""The paper's generator and discriminator for 32, 64 and 128 pixel images.

Both follow the DCGAN guidelines (Radford et al. 2016, section 3):

1. no pooling: fractionally-strided (transposed) convolutions up in the
   generator, strided convolutions down in the discriminator;
2. batch normalisation in both networks, except the generator's output layer
   and the discriminator's input layer;
3. no fully connected hidden layers: z is projected to a 4x4 map by one matrix
   multiply, and the discriminator's last 4x4 map is flattened into one logit;
4. ReLU in the generator with a Tanh output, LeakyReLU(0.2) in the discriminator.

Weights are drawn from N(0, 0.02); batch-norm scales from N(1, 0.02).

Every layer takes its dtype policy from `Config.precision`, except the
generator's tanh output and the discriminator's logit, which are float32 in any
precision (mixed-precision outputs that feed a loss or leave the model should be
float32). `Config.sync_batch_norm` makes batch norm use the statistics of the
global batch under a `tf.distribute` strategy.

The layers are Keras' `Conv2DTranspose`, `Conv2D` and `BatchNormalization`, or
with `Config.fast_layers` (the default) their faster-training twins from
`fast_layers`, which compute the same function with the same weights.
"""

from __future__ import annotations

import math
import os

import keras
from keras import layers

from dcgan_keras import fast_layers
from dcgan_keras.config import Config


def _num_stages(image_size: int) -> int:
    # Every stage doubles (generator) or halves (discriminator) the side,
    # starting from / ending at 4x4.
    Config(image_size=image_size)  # validates with a clear error
    return int(math.log2(image_size // 4))


def _conv_layers(config: Config):
    # Where Conv2D, Conv2DTranspose and BatchNormalization come from.
    return fast_layers if config.fast_layers else layers


def _batch_norm(config: Config, name: str) -> layers.BatchNormalization:
    # momentum 0.9 and epsilon 1e-5 match the reference implementations
    # (Theano / Torch / PyTorch), whose running averages move 10x faster than
    # Keras' default momentum of 0.99. synchronized=True all-reduces the
    # batch statistics across the replicas of a tf.distribute strategy.
    return _conv_layers(config).BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, config.init_stddev),
        synchronized=config.sync_batch_norm,
        dtype=config.precision,
        name=name,
    )


# Bytes each parameter takes in training: the float32 weight, its gradient and Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 16


def training_memory(config: Config) -> dict:
    """An estimate of the memory training a DCGAN of `config` takes, from its shapes alone (nothing is built).

    Returns:
        A dict: "parameters" (of both networks, batch-norm statistics included, exact),
        "parameter_bytes" (16 bytes each, 4 more per generator parameter with
        `ema_decay`), "activation_bytes" (float32 layer outputs of one batch through G
        and twice through D, kept for the backward pass, and their gradients: an
        estimate) and "bytes", their sum.
    """
    stages = _num_stages(config.image_size)
    bw, c, top = config.base_width, config.channels, config.base_width * 2 ** (stages - 1)
    # Generator: project (and its batch norm), stages up, the output layer.
    g_params, g_act = config.latent_dim * 16 * top + 4 * top, 16 * top * 3
    width, side = top, 4
    for _ in range(1, stages):
        width, side = width // 2, side * 2
        g_params += 16 * 2 * width * width + 4 * width
        g_act += side * side * width * 3  # convolution, batch norm, ReLU
    g_params += 16 * width * c + c
    g_act += config.image_size**2 * c * 2
    # Discriminator: stages down (the first without batch norm), the logit.
    d_params, d_act, width, side, previous = 0, 0, bw, config.image_size, c
    for stage in range(1, stages + 1):
        side //= 2
        d_params += 16 * previous * width + (width if stage == 1 else 4 * width)
        d_act += side * side * width * (2 if stage == 1 else 3)
        previous, width = width, width * 2
    d_params += 16 * previous + 1
    parameters = g_params + d_params
    parameter_bytes = TRAINING_BYTES_PER_PARAMETER * parameters + (4 * g_params if config.ema_decay else 0)
    activation_bytes = 2 * 4 * config.batch_size * (g_act + 2 * d_act)
    return {"parameters": parameters, "parameter_bytes": parameter_bytes,
            "activation_bytes": activation_bytes, "bytes": parameter_bytes + activation_bytes}


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or its cgroup's limit where lower (`None`: unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = int(f.read().strip())
        except (OSError, ValueError):  # no such file, or "max" (no limit)
            continue
        total = min(total, limit) if total else limit
    return total


def check_memory(config: Config) -> None:
    """Raises a ValueError, before anything is built, when training `config` would not fit in memory.

    The estimate (`training_memory`) is compared with `machine_memory()`; an
    accelerator with less memory than the machine can still run out.
    """
    need, have = training_memory(config), machine_memory()
    if not have or need["bytes"] <= have:
        return
    gib = 2**30
    raise ValueError(
        f"Training this DCGAN needs about {need['bytes'] / gib:.1f} GiB of memory, more than the "
        f"{have / gib:.1f} GiB this machine has (its RAM, or its cgroup's limit): {need['parameters']:.3g} "
        f"parameters take {need['parameter_bytes'] / gib:.1f} GiB (each weight, its gradient and Adam's two "
        f"moments{', and the moving average of the generator' if config.ema_decay else ''}) and the activations of a batch of {config.batch_size} about "
        f"{need['activation_bytes'] / gib:.1f} GiB. Lower --base-width (the paper's is 64; the parameters grow "
        "with its square), --batch-size or --image-size. "
        f"Received: base_width={config.base_width}, image_size={config.image_size}, batch_size={config.batch_size}"
    )


def build_generator(config: Config) -> keras.Model:
    """The DCGAN generator: z of shape (latent_dim,) to an image in [-1, 1].

    For 64x64 (base_width 64): z -> 4x4x512 -> 8x8x256 -> 16x16x128 ->
    32x32x64 -> 64x64xC. Each smaller or larger size drops or adds a stage.

    Args:
        config: a `Config`; uses `image_size`, `channels`, `latent_dim`,
            `base_width`, `init_stddev`, `precision`, `sync_batch_norm` and
            `fast_layers`.

    Returns:
        A functional `keras.Model` named "generator" whose output has shape
        `(batch, image_size, image_size, channels)` and values in [-1, 1].
    """
    check_memory(config)
    stages = _num_stages(config.image_size)
    init = keras.initializers.RandomNormal(0.0, config.init_stddev)
    width = config.base_width * 2 ** (stages - 1)
    dtype = config.precision
    Conv2DTranspose = _conv_layers(config).Conv2DTranspose

    z = keras.Input(shape=(config.latent_dim,), name="z")
    # "Project and reshape": a single matrix multiply, not a hidden FC layer.
    x = layers.Dense(4 * 4 * width, use_bias=False, kernel_initializer=init, dtype=dtype, name="project")(z)
    x = layers.Reshape((4, 4, width), dtype=dtype, name="reshape")(x)  # 4x4xW
    x = _batch_norm(config, "project_bn")(x)
    x = layers.ReLU(dtype=dtype, name="project_relu")(x)
    for stage in range(1, stages):
        width //= 2
        x = Conv2DTranspose(
            width, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init, dtype=dtype, name=f"up{stage}"
        )(x)
        x = _batch_norm(config, f"up{stage}_bn")(x)
        x = layers.ReLU(dtype=dtype, name=f"up{stage}_relu")(x)  # side doubles each stage
    # Output layer: no batch norm, Tanh to [-1, 1], in float32 in any precision.
    x = Conv2DTranspose(
        config.channels, 4, strides=2, padding="same", kernel_initializer=init, dtype=dtype, name=f"up{stages}"
    )(x)
    images = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(config: Config) -> keras.Model:
    """The DCGAN discriminator: an image in [-1, 1] to one real/fake logit.

    For 64x64 (base_width 64): 64x64xC -> 32x32x64 -> 16x16x128 -> 8x8x256 ->
    4x4x512 -> logit. It mirrors the generator.

    Args:
        config: a `Config`; uses `image_size`, `channels`, `base_width`,
            `leaky_slope`, `init_stddev`, `precision`, `sync_batch_norm` and
            `fast_layers`.

    Returns:
        A functional `keras.Model` named "discriminator" mapping
        `(batch, image_size, image_size, channels)` to logits of shape `(batch, 1)`.
    """
    check_memory(config)
    stages = _num_stages(config.image_size)
    init = keras.initializers.RandomNormal(0.0, config.init_stddev)
    dtype = config.precision
    Conv2D = _conv_layers(config).Conv2D

    images = keras.Input(shape=(config.image_size, config.image_size, config.channels), name="images")
    x = images
    width = config.base_width
    for stage in range(1, stages + 1):
        x = Conv2D(
            width, 4, strides=2, padding="same", use_bias=stage == 1, kernel_initializer=init, dtype=dtype, name=f"down{stage}"
        )(x)
        if stage > 1:  # no batch norm on the input layer
            x = _batch_norm(config, f"down{stage}_bn")(x)
        x = layers.LeakyReLU(config.leaky_slope, dtype=dtype, name=f"down{stage}_lrelu")(x)
        width *= 2
    x = layers.Flatten(dtype=dtype, name="flatten")(x)  # 4x4xW
    # The logit in float32 in any precision: the loss is computed from it.
    logits = layers.Dense(1, kernel_initializer=init, dtype="float32", name="logit")(x)
    return keras.Model(images, logits, name="discriminator")
