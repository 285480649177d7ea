"""Serving throughput of a generator's float32 export beside its 16-bit (`keep_precision`) export.

Usage: python benchmarks/serving_throughput.py [--image-size 64] [--channels 3] [--base-width 64]
           [--batch 64] [--repeats 5] [--precisions mixed_bfloat16,mixed_float16]

For each mixed precision, builds the paper's generator in it (untrained: the
speed does not depend on the weights' values), exports it twice with
`export_generator` (the default float32 copy, and `keep_precision=True`),
reloads each with `tf.saved_model.load` and prints the images/s of its
`serving_default` signature on this machine's CPU (median of `--repeats`
rounds of at least one second each, after a warm-up), the dtypes its
transposed convolutions run in (read from `saved_model.pb`), and the largest
pixel difference between the two exports on one batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

import dcgan_keras as dk  # noqa: E402
import tensorflow as tf  # noqa: E402
from dcgan_keras.export import saved_model_op_dtypes  # noqa: E402


def serving_rate(path: str, z: np.ndarray, repeats: int) -> float:
    """Images/s of the `serving_default` signature of the SavedModel at `path` on batches `z`."""
    serve = tf.saved_model.load(path).signatures["serving_default"]
    z = tf.constant(z)
    serve(z=z)["images"].numpy()  # warm-up: traces and allocates
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < 1.0:
            serve(z=z)["images"].numpy()
            calls += 1
        rates.append(calls * len(z) / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--base-width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="mixed_bfloat16,mixed_float16")
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, "
          f"{args.image_size}x{args.image_size}x{args.channels}, base_width {args.base_width}, batch {args.batch}")
    print("| trained in | export | transposed convolutions in | serving img/s | vs float32 export | max pixel diff |")
    print("| --- | --- | --- | --- | --- | --- |")
    for precision in args.precisions.split(","):
        config = dk.Config(image_size=args.image_size, channels=args.channels, base_width=args.base_width,
                           precision=precision, seed=0)
        generator = dk.build_generator(config)
        z = dk.latent_vectors(args.batch, config.latent_dim, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            paths = {
                "float32 (default)": dk.export_generator(generator, tmp),
                "keep_precision": dk.export_generator(generator, tmp, keep_precision=True),
            }
            pixels = {k: tf.saved_model.load(p).signatures["serving_default"](z=tf.constant(z))["images"].numpy()
                      for k, p in paths.items()}
            diff = int(np.abs(pixels["float32 (default)"].astype(int) - pixels["keep_precision"].astype(int)).max())
            rates = {k: serving_rate(p, z, args.repeats) for k, p in paths.items()}
            for kind, path in paths.items():
                dtypes = ", ".join(saved_model_op_dtypes(path)["Conv2DBackpropInput"])
                print(f"| {precision} | {kind} | {dtypes} | {rates[kind]:.0f} | "
                      f"{rates[kind] / rates['float32 (default)']:.2f}x | {diff} |", flush=True)


if __name__ == "__main__":
    main()
