"""Layers of the DCGAN networks: the 4x4, stride-2 convolutions that double
(generator) and halve (discriminator) the side, and batch normalisation that
trains with one fused kernel."""

from __future__ import annotations

from dcgan_keras import _backend  # noqa: F401
import keras
import tensorflow as tf

IMPLEMENTATIONS = ("subpixel", "transpose")
_GEOMETRY = ("kernel_size", "strides", "padding")  # fixed by the strided layers below


def _without_geometry(mapping):
    # The strided layers fix these; they are neither taken nor saved.
    return {key: value for key, value in mapping.items() if key not in _GEOMETRY}

# For output phase a (row parity of the output pixel) and input offset
# d in (-1, 0, +1), the kernel tap of a 'same'-padded, stride-2, 4-tap transposed
# convolution that connects them; 4 stands for "no tap" (a zero row).
_TAPS = ((3, 1, 4), (4, 2, 0))


# How the strided layers compute their kernel's gradient (`weight_gradients`):
# "native": TensorFlow's Conv2DBackpropFilter in the layer's compute dtype;
# "float32": the same from float32 copies of the activations, cast back;
# "matmul": the 4x4 patches of the image times the output's gradient, one GEMM;
# "auto": see `_weight_gradient_method`.
WEIGHT_GRADIENTS = ("auto", "native", "float32", "matmul")
# On CPU in bfloat16, "auto" takes "matmul" while the layer's smaller map (D's
# output, G's input) is at most this side, else "float32" while the layer's
# output is at most FLOAT32_WGRAD_MAX_SIDE, else "native".
MATMUL_WGRAD_MAX_SIDE = 4
FLOAT32_WGRAD_MAX_SIDE = 8


def _weight_gradient_method(layer, input_side) -> str:
    """The kernel-gradient method a strided layer uses on inputs of this side.

    oneDNN's bfloat16 kernel for it (`backward_weights`) is 2-3x slower than
    its float32 one when the maps are small (measured on AVX-512-BF16 CPUs:
    89 ms vs 54 ms for 8x8x256 -> 4x4x512 at batch 128), and for 4x4 maps a
    bfloat16 matmul over the patches beats both (30 ms). GPUs and TPUs keep
    their own kernels.
    """
    choice = layer.weight_gradients
    if choice not in WEIGHT_GRADIENTS:
        raise ValueError(f"weight_gradients must be one of {WEIGHT_GRADIENTS}. Received: {choice!r}")
    if choice != "auto":
        return choice
    if keras.backend.standardize_dtype(layer.compute_dtype) != "bfloat16" or input_side is None:
        return "native"
    if isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy) or tf.config.list_physical_devices("GPU"):
        return "native"
    # G's layer doubles the side, D's halves it.
    small_side, out_side = (input_side, 2 * input_side) if isinstance(layer, UpConv2D) else (input_side // 2,) * 2
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


def _strided_conv(x, kernel, transpose, weight_gradient="native"):
    """A 4x4, stride-2, 'same' convolution (or its transpose) of x with kernel.

    `weight_gradient` ("native", "float32" or "matmul", see WEIGHT_GRADIENTS)
    picks how the kernel's gradient is computed; the forward pass and the
    input gradient are TensorFlow's own kernels in the compute dtype.
    """
    strides, padding = [1, 2, 2, 1], "SAME"
    x_shape = tf.shape(x)
    if transpose:
        out_shape = tf.stack([x_shape[0], x_shape[1] * 2, x_shape[2] * 2, tf.shape(kernel)[2]])

    def forward(x, kernel):
        if transpose:
            return tf.nn.conv2d_transpose(x, kernel, out_shape, strides, padding)
        return tf.nn.conv2d(x, kernel, strides, padding)

    if weight_gradient == "native":
        return forward(x, kernel)

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

        return forward(x, kernel), grad

    # Read the kernel outside the custom gradient, which must see tensors only.
    return conv(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="dcgan_keras")
class UpConv2D(keras.layers.Conv2DTranspose):
    """A fractionally-strided convolution that doubles height and width.

    Exactly `keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same")`,
    with the same kernel variable (shape `(4, 4, filters, in_channels)`), so
    weights and checkpoints are interchangeable between implementations.

    `implementation="transpose"` (the default) uses `tf.nn.conv2d_transpose`.
    With `implementation="subpixel"` the same function is computed as an
    ordinary 3x3 convolution to `4 * filters` channels followed by
    `tf.nn.depth_to_space` (Shi et al. 2016): each of the four output phases
    is a 3x3 kernel assembled from the 4x4 transposed-convolution kernel.
    Measured on 2 CPU cores, training with "transpose" is faster (the
    sub-pixel form spends 9 taps where 4 are needed); the option is kept for
    devices where ordinary convolutions are much faster than transposed ones.
    In bfloat16 on CPU, the "transpose" form computes the kernel's gradient
    by the faster route for small maps (`weight_gradients`, as `DownConv2D`).

    Args:
        filters: number of output channels.
        implementation: "transpose" or "subpixel"; the results are equal up to
            float rounding.
        **kwargs: passed to `keras.layers.Conv2DTranspose` (for instance
            `kernel_initializer`, `use_bias`, `name`).

    Example:

    ```python
    up = UpConv2D(64)
    up(keras.ops.zeros((2, 8, 8, 128))).shape  # (2, 16, 16, 64)
    ```
    """

    def __init__(self, filters, implementation="transpose", **kwargs):
        super().__init__(filters, kernel_size=4, strides=2, padding="same", **_without_geometry(kwargs))
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        self.implementation = implementation

    def _subpixel_kernel(self):
        # (4, 4, out, in) -> (5, 5, in, out) with a zero tap at index 4.
        kernel = tf.transpose(self.kernel, [0, 1, 3, 2])
        kernel = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
        phases = []
        for rows in _TAPS:
            for cols in _TAPS:
                phase = tf.gather(tf.gather(kernel, rows, axis=0), cols, axis=1)
                phases.append(phase)  # (3, 3, in, out)
        # depth_to_space reads channel (2 * a + b) * out + c for phase (a, b).
        return tf.concat(phases, axis=-1)

    weight_gradients = "auto"  # see WEIGHT_GRADIENTS; not saved

    def call(self, inputs):
        if self.data_format != "channels_last":
            return super().call(inputs)
        if self.implementation == "transpose":
            method = _weight_gradient_method(self, inputs.shape[1])
            x = _strided_conv(inputs, self.kernel, transpose=True, weight_gradient=method)
            if self.use_bias:
                x = tf.nn.bias_add(x, tf.cast(self.bias, x.dtype))
            if self.activation is not None:
                x = self.activation(x)
            return x
        kernel = tf.cast(self._subpixel_kernel(), inputs.dtype)
        x = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
        x = tf.nn.depth_to_space(x, 2)
        if self.use_bias:
            x = tf.nn.bias_add(x, tf.cast(self.bias, x.dtype))
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        return {**_without_geometry(super().get_config()), "implementation": self.implementation}


@keras.saving.register_keras_serializable(package="dcgan_keras")
class DownConv2D(keras.layers.Conv2D):
    """The discriminator's 4x4, stride-2 convolution that halves height and width.

    Exactly `keras.layers.Conv2D(filters, 4, strides=2, padding="same")`, with
    the same variables. In bfloat16 on CPU, the weight gradient of layers with
    a small output map is computed as a matmul over the input's patches (4x4
    outputs) or in float32 (8x8), which oneDNN does 2-3x faster than its
    bfloat16 kernel (see `weight_gradients`); the result is the same up to
    rounding.

    Args:
        filters: number of output channels.
        **kwargs: passed to `keras.layers.Conv2D`.
    """

    weight_gradients = "auto"  # see WEIGHT_GRADIENTS; not saved

    def __init__(self, filters, **kwargs):
        super().__init__(filters, kernel_size=4, strides=2, padding="same", **_without_geometry(kwargs))

    def convolution_op(self, inputs, kernel):
        if self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        method = _weight_gradient_method(self, inputs.shape[1])
        return _strided_conv(inputs, kernel, transpose=False, weight_gradient=method)

    def get_config(self):
        return _without_geometry(super().get_config())


_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="dcgan_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Keras 3 computes batch norm in training from separate ops (mean, squared
    difference, mean, then the affine transform) and differentiates each of
    them; TensorFlow's `FusedBatchNormV3` does the forward pass in one kernel
    and the backward pass in one more (oneDNN's on x86 CPUs, cuDNN's on
    NVIDIA GPUs). Measured on 2 CPU cores, forward plus backward of a
    (128, 32, 32, 64) batch: 28 ms fused vs 68 ms (float32), 21 vs 72 ms
    (bfloat16).

    The result is that of the Keras layer it extends, up to float rounding
    (and an epsilon of at least 1.001e-5 in the fused kernel, 1e-5 being
    the networks' value): the same variables, the same moving-average update from the biased batch
    variance, and the same inference path (`training=False` runs Keras' own
    code, so exported models do not depend on this class). The fused kernel
    is used in training for 4-D channels-last inputs without a mask; anything
    else (`synchronized=True`, `renorm=True`, other ranks or axes, a tensor
    `training` flag, `fused=False`, or another backend) falls back to Keras.

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
