"""A/B of the layer-level speed levers: two or three DCGANs in one process, timed alternately.

Usage: python benchmarks/layer_levers.py SIZE CHANNELS PRECISION [--rounds 4] [--lever bn|wgrad]

--lever bn:    fused batch norm (dcgan_keras.fast_layers.BatchNormalization) on vs off.
--lever wgrad: kernel gradients of bfloat16 layers (`weight_gradients`): "auto" (matmul
               for 4x4 maps, float32 for 8x8 outputs), "no-matmul" (auto with float32
               where it picks matmul: the rule before the matmul method), "native".

Each round times one epoch of `fit` per variant (batch 128, data in memory, after
warm-up); prints the median images/s per variant and every round.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import dcgan_keras as dk
import tensorflow as tf
from dcgan_keras import fast_layers

from train_throughput import EpochClock

VARIANTS = {"bn": ("fused", "unfused"), "wgrad": ("auto", "no-matmul", "native")}


def weight_gradients(layer, variant):
    if variant in ("native", "auto"):
        return variant
    method = fast_layers.weight_gradient_method(layer, layer.input.shape[1])  # the layer is still on "auto"
    return "float32" if method == "matmul" else method


def build(config, variant, ds):
    gan = dk.DCGAN.from_settings(config)
    # Set before the first call traces the layers.
    for layer in gan.generator.layers + gan.discriminator.layers:
        if isinstance(layer, fast_layers.BatchNormalization) and variant == "unfused":
            layer.fused = False
        if isinstance(layer, (fast_layers.Conv2D, fast_layers.Conv2DTranspose)) and variant in VARIANTS["wgrad"]:
            layer.weight_gradients = weight_gradients(layer, variant)
    gan.compile()
    gan.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    return gan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int)
    parser.add_argument("channels", type=int)
    parser.add_argument("precision", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 8 at 64 px, else 20)")
    parser.add_argument("--lever", choices=tuple(VARIANTS), default="bn")
    args = parser.parse_args()
    steps = args.steps or (8 if args.size >= 64 else 20)
    config = dk.Config(image_size=args.size, channels=args.channels, batch_size=128, precision=args.precision)
    data = np.random.default_rng(0).uniform(-1, 1, (512, args.size, args.size, args.channels)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).batch(128, drop_remainder=True).cache().repeat()
    gans = {variant: build(config, variant, ds) for variant in VARIANTS[args.lever]}
    rates = {variant: [] for variant in gans}
    for _ in range(args.rounds):
        for variant, gan in gans.items():
            clock = EpochClock()
            gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
            rates[variant].append(steps * 128 / clock.seconds)
    for variant, values in rates.items():
        print(f"{args.size}x{args.size}x{args.channels} {args.precision} {variant}: median "
              f"{statistics.median(values):.0f} img/s, rounds {' '.join(f'{v:.0f}' for v in values)}", flush=True)


if __name__ == "__main__":
    main()
