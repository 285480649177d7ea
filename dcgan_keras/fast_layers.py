"""Faster-training versions of the three Keras layers the DCGAN networks use.

`Config(fast_layers=True)` (the default) builds the networks from these; with
`fast_layers=False` they are Keras' own `Conv2D`, `Conv2DTranspose` and
`BatchNormalization`. Either way the networks compute the same function, up to
float rounding, with the same variables, so weights and checkpoints are
interchangeable. Nothing here is needed to understand DCGAN: `networks.py` reads
the same with either set of layers. docs/benchmarks.md has the measurements.

- `BatchNormalization` trains with TensorFlow's fused kernel (`FusedBatchNormV3`,
  one op forward and one backward) instead of Keras' separate ops.
- `Conv2D` and `Conv2DTranspose` with the networks' geometry (4x4, stride 2,
  "same") compute their kernel's gradient by a faster route when they run in
  bfloat16 on a CPU, where oneDNN's bfloat16 kernel for it is slow on small maps
  (`weight_gradients`). The forward pass and the input gradient are TensorFlow's
  own kernels.

The fused kernel's second derivative is inexact (about 2% off for the layers
below it), so a pass that is differentiated twice, as the R1 penalty's is, runs
inside `exact_second_derivatives(model)`, which turns it off for that pass.

Example:

```python
from dcgan_keras import fast_layers

up = fast_layers.Conv2DTranspose(64, 4, strides=2, padding="same")
up(keras.ops.zeros((2, 8, 8, 128))).shape  # (2, 16, 16, 64), as keras.layers.Conv2DTranspose
```
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

# How a strided layer computes its kernel's gradient (`weight_gradients`):
# "native": TensorFlow's Conv2DBackpropFilter in the layer's compute dtype;
# "float32": the same from float32 copies of the activations, cast back;
# "matmul": the 4x4 patches of the image times the output's gradient, one GEMM;
# "auto": `weight_gradient_method`'s rule.
WEIGHT_GRADIENTS = ("auto", "native", "float32", "matmul")
# "auto" in bfloat16 on CPU: "matmul" while the layer's smaller map (D's output,
# G's input) is at most this side, else "float32" while the layer's output is at
# most FLOAT32_WGRAD_MAX_SIDE, else "native".
MATMUL_WGRAD_MAX_SIDE = 4
FLOAT32_WGRAD_MAX_SIDE = 8
_GEOMETRY = ("kernel_size", "strides", "padding")


def weight_gradient_method(layer, input_side) -> str:
    """The kernel-gradient method a strided layer uses on inputs of this side.

    Args:
        layer: a `Conv2D` or `Conv2DTranspose` of this module.
        input_side: height of the layer's input (`None` if unknown).

    Returns:
        "native", "float32" or "matmul": the layer's `weight_gradients`, or for
        "auto", "native" except in bfloat16 on a CPU, where the smallest maps
        take "matmul" and the next ones "float32" (the two thresholds above).
    """
    choice = layer.weight_gradients
    if choice != "auto":
        return choice
    if keras.backend.standardize_dtype(layer.compute_dtype) != "bfloat16" or input_side is None:
        return "native"
    if isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy) or tf.config.list_physical_devices("GPU"):
        return "native"
    # The transposed layer doubles the side, the strided one halves it.
    if isinstance(layer, keras.layers.Conv2DTranspose):
        small_side, out_side = input_side, 2 * input_side
    else:
        small_side = out_side = input_side // 2
    if small_side <= MATMUL_WGRAD_MAX_SIDE:
        return "matmul"
    return "float32" if out_side <= FLOAT32_WGRAD_MAX_SIDE else "native"


def _patches_kernel_gradient(image, gradient, kernel_shape):
    # d kernel[r, c, i, o] = sum over n, y, x of image_padded[n, 2y + r, 2x + c, i] * gradient[n, y, x, o]:
    # extract_patches lays each 4x4 window out as (r, c, i), the kernel's own order.
    patches = tf.image.extract_patches(image, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
    rows = tf.reshape(patches, [-1, kernel_shape[0] * kernel_shape[1] * kernel_shape[2]])
    grad = tf.matmul(rows, tf.reshape(gradient, [-1, kernel_shape[3]]), transpose_a=True)
    return tf.reshape(grad, kernel_shape)


def _strided_conv(x, kernel, transpose, weight_gradient):
    """A 4x4, stride-2, "same" convolution (or its transpose) of x with kernel,
    whose kernel gradient is computed by `weight_gradient` ("float32" or "matmul")."""
    strides, padding = [1, 2, 2, 1], "SAME"
    x_shape = tf.shape(x)
    if transpose:
        out_shape = tf.stack([x_shape[0], x_shape[1] * 2, x_shape[2] * 2, tf.shape(kernel)[2]])

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            # For the transposed convolution the roles of x and dy swap.
            image, gradient = (dy, x) if transpose else (x, dy)
            if transpose:
                dx = tf.nn.conv2d(dy, kernel, strides, padding)
            else:
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=x_shape, filter=kernel, out_backprop=dy, strides=strides, padding=padding
                )
            if weight_gradient == "matmul":
                return dx, _patches_kernel_gradient(image, gradient, kernel.shape)
            dkernel = tf.raw_ops.Conv2DBackpropFilter(
                input=tf.cast(image, tf.float32),
                filter_sizes=tf.shape(kernel),
                out_backprop=tf.cast(gradient, tf.float32),
                strides=strides,
                padding=padding,
            )
            return dx, tf.cast(dkernel, kernel.dtype)

        if transpose:
            return tf.nn.conv2d_transpose(x, kernel, out_shape, strides, padding), grad
        return tf.nn.conv2d(x, kernel, strides, padding), grad

    # Read the kernel outside the custom gradient, which must see tensors only.
    return conv(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


class _WeightGradients:
    """The `weight_gradients` argument shared by the two convolutions below."""

    def _init_weight_gradients(self, weight_gradients):
        if weight_gradients not in WEIGHT_GRADIENTS:
            raise ValueError(
                f"weight_gradients must be one of {WEIGHT_GRADIENTS}. "
                f"Received: weight_gradients={weight_gradients!r}"
            )
        self.weight_gradients = weight_gradients

    def _method(self, inputs):
        # The faster routes exist for the networks' geometry, channels last.
        geometry = (tuple(self.kernel_size), tuple(self.strides), self.padding, tuple(self.dilation_rate))
        if geometry != ((4, 4), (2, 2), "same", (1, 1)) or self.data_format != "channels_last":
            return "native"
        return weight_gradient_method(self, inputs.shape[1])


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Conv2D(_WeightGradients, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel gradient may take a faster route.

    Args:
        *args: as `keras.layers.Conv2D`.
        weight_gradients: "auto" (default), "native", "float32" or "matmul"
            (see `WEIGHT_GRADIENTS`); applies to 4x4, stride-2, "same" layers.
        **kwargs: as `keras.layers.Conv2D`.
    """

    def __init__(self, *args, weight_gradients="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_gradients(weight_gradients)

    def convolution_op(self, inputs, kernel):
        method = self._method(inputs)
        if method == "native":
            return super().convolution_op(inputs, kernel)
        return _strided_conv(inputs, kernel, transpose=False, weight_gradient=method)

    def get_config(self):
        return {**super().get_config(), "weight_gradients": self.weight_gradients}


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Conv2DTranspose(_WeightGradients, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` whose kernel gradient may take a faster route.

    Args:
        *args: as `keras.layers.Conv2DTranspose`.
        weight_gradients: as `Conv2D`'s.
        **kwargs: as `keras.layers.Conv2DTranspose`.
    """

    def __init__(self, *args, weight_gradients="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_gradients(weight_gradients)

    def call(self, inputs):
        method = self._method(inputs)
        if method == "native" or self.output_padding is not None:
            return super().call(inputs)
        x = _strided_conv(inputs, self.kernel, transpose=True, weight_gradient=method)
        if self.use_bias:
            x = tf.nn.bias_add(x, tf.cast(self.bias, x.dtype))
        return x if self.activation is None else self.activation(x)

    def get_config(self):
        return {**super().get_config(), "weight_gradients": self.weight_gradients}


_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="dcgan_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Keras 3 computes batch norm in training from separate ops (mean, squared
    difference, mean, then the affine transform) and differentiates each of
    them; TensorFlow's `FusedBatchNormV3` does the forward pass in one kernel
    and the backward pass in one more (oneDNN's on x86 CPUs, cuDNN's on
    NVIDIA GPUs).

    The result is that of the Keras layer it extends, up to float rounding
    (and an epsilon of at least 1.001e-5 in the fused kernel, 1e-5 being the
    networks' value): the same variables, the same moving-average update from
    the biased batch variance, and the same inference path (`training=False`
    runs Keras' own code, so exported models do not depend on this class). The
    fused kernel is used in training for 4-D channels-last inputs without a
    mask; anything else (`synchronized=True`, `renorm=True`, other ranks or
    axes, a tensor `training` flag, `fused=False`, or another backend) falls
    back to Keras.

    Args:
        fused: use the fused kernel where it applies (default True).
        **kwargs: passed to `keras.layers.BatchNormalization`.
    """

    # FusedBatchNormV3's smallest epsilon (cuDNN's limit, which
    # tf.compat.v1.nn.fused_batch_norm applies on every device).
    MIN_FUSED_EPSILON = 1.001e-5

    def __init__(self, fused=True, **kwargs):
        super().__init__(**kwargs)
        self.fused = bool(fused)

    def _can_fuse(self, inputs, training, mask):
        return (
            self.fused
            and keras.backend.backend() == "tensorflow"
            and training is True
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (3, -1)
            and inputs.shape[-1] is not None
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale,
            offset,
            epsilon=max(self.epsilon, self.MIN_FUSED_EPSILON),
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased batch variance (n / (n - 1) times the
        # one it normalised with); Keras' moving variance averages the biased one.
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


# The layer names of version 0.1, kept so that its checkpoints load: the
# strided layers with their geometry fixed (and not saved), and the sub-pixel
# option of the transposed one, since removed, ignored (it computed the same).


def _without_geometry(mapping):
    return {key: value for key, value in mapping.items() if key not in _GEOMETRY}


@keras.saving.register_keras_serializable(package="dcgan_keras")
class UpConv2D(Conv2DTranspose):
    """`Conv2DTranspose(filters, 4, strides=2, padding="same")` (version 0.1's name)."""

    def __init__(self, filters, implementation="transpose", **kwargs):
        super().__init__(filters, 4, strides=2, padding="same", **_without_geometry(kwargs))

    def get_config(self):
        return _without_geometry(super().get_config())


@keras.saving.register_keras_serializable(package="dcgan_keras")
class DownConv2D(Conv2D):
    """`Conv2D(filters, 4, strides=2, padding="same")` (version 0.1's name)."""

    def __init__(self, filters, **kwargs):
        super().__init__(filters, 4, strides=2, padding="same", **_without_geometry(kwargs))

    def get_config(self):
        return _without_geometry(super().get_config())


@contextlib.contextmanager
def exact_second_derivatives(model: keras.Model):
    """Calls of `model` made (or traced) inside this block use Keras' batch-norm ops.

    TensorFlow's fused batch norm differentiates exactly once: differentiated
    a second time, the gradients of the layers below it are about 2% off
    (tests/test_gan.py). Inside the block, this module's `BatchNormalization`
    layers of `model` fall back to Keras' ops, whose second derivatives are
    exact; outside it they are fused again. Other layers are unchanged.

    Example (what `DCGAN.r1_penalty` does):

    ```python
    with exact_second_derivatives(discriminator), tf.GradientTape() as tape:
        tape.watch(images)
        logits = discriminator(images, training=True)
    ```
    """
    fused = [
        layer for layer in model._flatten_layers()
        if isinstance(layer, BatchNormalization) and layer.fused
    ]
    for layer in fused:
        layer.fused = False
    try:
        yield model
    finally:
        for layer in fused:
            layer.fused = True
