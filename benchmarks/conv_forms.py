"""Other ways to compute D's 4x4, stride-2 convolution, timed against TensorFlow's own kernels.

Usage: python benchmarks/conv_forms.py [--precision float32|bfloat16] [--calls 10]

For each of D's layer shapes at batch 128 (64x64x3 model), prints milliseconds per
call (median) of the forward pass, the input gradient and the kernel gradient as
TensorFlow computes them (`Conv2D`, `Conv2DBackpropInput`, `Conv2DBackpropFilter`,
oneDNN kernels on CPU) beside three rewrites that compute the same products:

- s2d: a 2x2, stride-1 convolution of the padded input after `space_to_depth`
  (4x the channels);
- b256: D's real and fake batches as one batch of 256 (two calls of 128 as the baseline);
- patches: the kernel gradient as `tf.image.extract_patches` and one matmul;
- in bfloat16, also the kernel gradient computed in float32 (what
  `fast_layers.Conv2D` does for outputs of 8x8 on CPU).

The rewrites' largest difference from the direct result is printed too. None of
them is faster across the board (docs/benchmarks.md, "Tried, and not kept").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

STRIDES = [1, 2, 2, 1]
SHAPES = ((64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512))  # input side, in, out channels


def millis(fn, *args, calls=10):
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def space_to_depth(x):
    return tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)


def s2d_kernel(kernel):
    # (4, 4, I, O) -> (2, 2, 4I, O): tap 2q + p of each axis goes to offset q, phase p.
    cin, cout = kernel.shape[2:]
    kernel = tf.reshape(kernel, (2, 2, 2, 2, cin, cout))  # [q_row, p_row, q_col, p_col, i, o]
    return tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]), (2, 2, 4 * cin, cout))


def compare(side, cin, cout, dtype, calls, batch=128):
    out = side // 2
    rng = tf.random.Generator.from_seed(0)
    x = tf.cast(rng.normal((batch, side, side, cin)), dtype)
    x2 = tf.cast(rng.normal((batch, side, side, cin)), dtype)
    dy = tf.cast(rng.normal((batch, out, out, cout)), dtype)
    dy2 = tf.cast(rng.normal((batch, out, out, cout)), dtype)
    kernel = tf.cast(rng.normal((4, 4, cin, cout)) * 0.05, dtype)
    s, k2 = space_to_depth(x), s2d_kernel(kernel)

    def conv(x, k):
        return tf.nn.conv2d(x, k, STRIDES, "SAME")

    def dinput(dy, k):
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=[batch, side, side, cin], filter=k, out_backprop=dy, strides=STRIDES, padding="SAME")

    def dkernel(x, dy):
        return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[4, 4, cin, cout], out_backprop=dy, strides=STRIDES, padding="SAME")

    ones = [1, 1, 1, 1]
    s2d_conv = tf.function(lambda s, k: tf.nn.conv2d(s, k, 1, "VALID"))
    s2d_dinput = tf.function(lambda dy, k: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=[batch, out + 1, out + 1, 4 * cin], filter=k, out_backprop=dy, strides=ones, padding="VALID"))
    s2d_dkernel = tf.function(lambda s, dy: tf.raw_ops.Conv2DBackpropFilter(
        input=s, filter_sizes=[2, 2, 4 * cin, cout], out_backprop=dy, strides=ones, padding="VALID"))

    def float32_dkernel(x, dy):  # what fast_layers.Conv2D does in bfloat16 for 8x8 outputs on CPU
        return tf.cast(dkernel(tf.cast(x, tf.float32), tf.cast(dy, tf.float32)), x.dtype)

    def patches_dkernel(x, dy):
        p = tf.image.extract_patches(x, [1, 4, 4, 1], STRIDES, [1, 1, 1, 1], "SAME")
        grad = tf.matmul(tf.reshape(p, (-1, 16 * cin)), tf.reshape(dy, (-1, cout)), transpose_a=True)
        return tf.reshape(grad, (4, 4, cin, cout))

    conv_f, dinput_f, dkernel_f = tf.function(conv), tf.function(dinput), tf.function(dkernel)
    patches_f = tf.function(patches_dkernel)
    two = tf.function(lambda: (conv(x, kernel), conv(x2, kernel), dkernel(x, dy) + dkernel(x2, dy2)))
    xx, dydy = tf.concat([x, x2], 0), tf.concat([dy, dy2], 0)
    one = tf.function(lambda: (conv(xx, kernel), dkernel(xx, dydy)))

    def error(a, b):
        a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
        return float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))

    errors = {
        "s2d": max(error(conv_f(x, kernel), s2d_conv(s, k2)),
                   error(s2d_kernel(dkernel_f(x, dy)), s2d_dkernel(s, dy))),
        "patches": error(dkernel_f(x, dy), patches_f(x, dy)),
    }
    row = {
        "forward": millis(conv_f, x, kernel, calls=calls),
        "s2d forward": millis(s2d_conv, s, k2, calls=calls),
        "input grad": millis(dinput_f, dy, kernel, calls=calls),
        "s2d input grad": millis(s2d_dinput, dy, k2, calls=calls),
        "kernel grad": millis(dkernel_f, x, dy, calls=calls),
        "s2d kernel grad": millis(s2d_dkernel, s, dy, calls=calls),
        "patches kernel grad": millis(patches_f, x, dy, calls=calls),
        **({"float32 kernel grad": millis(tf.function(float32_dkernel), x, dy, calls=calls)} if dtype != tf.float32 else {}),
        "space_to_depth": millis(tf.function(space_to_depth), x, calls=calls),
        "2x128 fwd+kgrad": millis(two, calls=calls),
        "b256 fwd+kgrad": millis(one, calls=calls),
    }
    return row, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    dtype = tf.as_dtype(args.precision)
    for side, cin, cout in SHAPES:
        row, errors = compare(side, cin, cout, dtype, args.calls)
        print(f"{side}x{side}x{cin} -> {side // 2}x{side // 2}x{cout} {args.precision}, batch 128 (ms per call):", flush=True)
        print("  " + ", ".join(f"{name} {ms:.1f}" for name, ms in row.items()))
        print("  largest relative difference: " + ", ".join(f"{name} {e:.1e}" for name, e in errors.items()), flush=True)


if __name__ == "__main__":
    main()
