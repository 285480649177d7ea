"""Serving throughput of a generator's exports: float32 beside 16-bit (`keep_precision`), and by format.

Usage: python benchmarks/serving_throughput.py [--image-size 64] [--channels 3] [--base-width 64]
           [--batch 64] [--repeats 5] [--precisions mixed_bfloat16,mixed_float16]
           [--formats saved_model,onnx,litert] [--threads N]

For each mixed precision, builds the paper's generator in it (untrained: the
speed does not depend on the weights' values), exports it twice with
`export_generator` (the default float32 copy, and `keep_precision=True`),
reloads each with `tf.saved_model.load` and prints the images/s of its
`serving_default` signature on this machine's CPU (median of `--repeats`
rounds of at least one second each, after a warm-up), the dtypes its
transposed convolutions run in (read from `saved_model.pb`), and the largest
pixel difference between the two exports on one batch.

Then, for a float32 generator, the images/s of each export format run by its
own runtime on the same batches (`--formats`, "" to skip): the SavedModel's
`serving_default` (uint8 pixels) through TensorFlow, the ONNX file through
onnxruntime (`portable.OnnxGenerator`) and the `.tflite` through the LiteRT
interpreter (`portable.LiteRTGenerator`, XNNPACK), with the largest pixel
difference from the SavedModel. Every runtime gets `--threads` threads (one per
core by default; TensorFlow's intra-op threads).
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


def rate(run, batch: int, repeats: int) -> float:
    """Images/s of `run()`, which makes `batch` images: the median of `repeats` rounds of >= 1 s."""
    run()  # warm-up: traces and allocates
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < 1.0:
            run()
            calls += 1
        rates.append(calls * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def serving_rate(path: str, z: np.ndarray, repeats: int) -> float:
    """Images/s of the `serving_default` signature of the SavedModel at `path` on batches `z`."""
    serve = tf.saved_model.load(path).signatures["serving_default"]
    z = tf.constant(z)
    return rate(lambda: serve(z=z)["images"].numpy(), len(z), repeats)


def format_rates(config, z: np.ndarray, formats: list[str], repeats: int, threads: int) -> None:
    """Prints the img/s of each export format of a float32 generator, run by its own runtime."""
    from dcgan_keras import portable

    generator = dk.build_generator(config)
    print("\n| format | runtime | img/s | vs SavedModel | max pixel diff |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = dk.export_generator(generator, tmp)
        reference = tf.saved_model.load(saved_model).signatures["serving_default"](z=tf.constant(z))["images"].numpy()
        runs = {"saved_model": ("TensorFlow (serving_default)", None)}
        if "onnx" in formats:
            runs["onnx"] = ("onnxruntime", portable.OnnxGenerator(portable.export_portable(generator, tmp, "onnx"), threads))
        if "litert" in formats:
            runs["litert"] = ("LiteRT (XNNPACK)", portable.LiteRTGenerator(portable.export_portable(generator, tmp, "litert"), threads))
        rates = {"saved_model": serving_rate(saved_model, z, repeats)}
        for name, (runtime, run) in runs.items():
            if run is not None:
                rates[name] = rate(lambda: run(z), len(z), repeats)
                pixels = np.clip(np.round((run(z) + 1.0) * 127.5), 0, 255)
                diff = int(np.abs(pixels - reference.astype(int)).max())
            else:
                diff = 0
            print(f"| {name} | {runtime} | {rates[name]:.0f} | {rates[name] / rates['saved_model']:.2f}x | {diff} |",
                  flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--base-width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="mixed_bfloat16,mixed_float16", help='"" to skip')
    parser.add_argument("--formats", default="saved_model,onnx,litert", help='"" to skip')
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every runtime")
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, "
          f"{args.image_size}x{args.image_size}x{args.channels}, base_width {args.base_width}, batch {args.batch}, "
          f"{args.threads} threads")
    if args.precisions:
        print("| trained in | export | transposed convolutions in | serving img/s | vs float32 export | max pixel diff |")
        print("| --- | --- | --- | --- | --- | --- |")
    for precision in filter(None, args.precisions.split(",")):
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
    if args.formats:
        config = dk.Config(image_size=args.image_size, channels=args.channels, base_width=args.base_width, seed=0)
        z = dk.latent_vectors(args.batch, config.latent_dim, seed=0)
        format_rates(config, z, args.formats.split(","), args.repeats, args.threads)


if __name__ == "__main__":
    main()
