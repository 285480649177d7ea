"""The speed-minded layers compute exactly what the Keras layers they replace compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras import layers as dk_layers


def _op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph
    return [(op.type, op.get_attr("T") if "T" in op.node_def.attr else None) for op in graph.get_operations()]


def _forward_backward(layer, x, training=True):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        # Random weights per output: batch norm's input gradient is not ~0 as
        # it is for a loss invariant to the normalisation (a plain sum of squares).
        weights = tf.random.stateless_normal(y.shape, seed=[9, 9])
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]


def _close(a, b, rtol):
    a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras_in_training_and_inference(dtype):
    x = tf.random.stateless_normal((8, 6, 6, 5), seed=[1, 2]) * 3.0 + 1.0
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype)
    fused = dk_layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype)
    for layer in (reference, fused):
        layer.build(x.shape)
    reference.gamma.assign(tf.random.stateless_normal([5], seed=[3, 4]))
    reference.beta.assign(tf.random.stateless_normal([5], seed=[5, 6]))
    fused.set_weights(reference.get_weights())

    rtol = 1e-4 if dtype == "float32" else 2e-2
    for expected, got in zip(_forward_backward(reference, x), _forward_backward(fused, x)):
        _close(got, expected, rtol)
    # The moving averages moved, and alike: Keras averages the biased batch variance.
    assert not np.allclose(reference.moving_variance.numpy(), 1.0)
    _close(fused.moving_mean, reference.moving_mean, 1e-5)
    _close(fused.moving_variance, reference.moving_variance, 1e-5)
    _close(fused(x, training=False), reference(x, training=False), 1e-6 if dtype == "float32" else 1e-2)


def test_fused_batch_norm_runs_one_fused_kernel_and_falls_back_where_it_cannot():
    x = tf.random.stateless_normal((4, 4, 4, 3), seed=[0, 1])
    fused = dk_layers.BatchNormalization()
    fused.build(x.shape)
    ops = [t for t, _ in _op_types(lambda v: fused(v, training=True), x)]
    assert "FusedBatchNormV3" in ops and "Mean" not in ops

    unfused = dk_layers.BatchNormalization(fused=False)
    unfused.build(x.shape)
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: unfused(v, training=True), x)]
    synced = dk_layers.BatchNormalization(synchronized=True)
    synced.build(x.shape)
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: synced(v, training=True), x)]
    # Inference is Keras' own code in every case.
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: fused(v, training=False), x)]
    # A 2-D input (after a Dense layer) is normalised by Keras' path.
    flat = dk_layers.BatchNormalization()
    assert flat(tf.ones((4, 3)), training=True).shape == (4, 3)


def test_layers_round_trip_through_their_configs():
    norm = dk_layers.BatchNormalization(fused=False, momentum=0.9)
    assert dk_layers.BatchNormalization.from_config(norm.get_config()).fused is False
    down = dk_layers.DownConv2D(7, use_bias=False)
    copy = dk_layers.DownConv2D.from_config(down.get_config())
    assert (copy.filters, copy.kernel_size, copy.strides, copy.padding, copy.use_bias) == (7, (4, 4), (2, 2), "same", False)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("method", ["native", "float32", "matmul"])
@pytest.mark.parametrize("transpose", [False, True])
def test_strided_convolutions_match_keras_with_every_weight_gradient(dtype, method, transpose):
    if transpose:
        reference = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same", dtype=dtype)
        ours = dk_layers.UpConv2D(6, dtype=dtype)
        shape = (4, 4, 4, 5)
    else:
        reference = keras.layers.Conv2D(6, 4, strides=2, padding="same", dtype=dtype)
        ours = dk_layers.DownConv2D(6, dtype=dtype)
        shape = (4, 8, 8, 5)
    ours.weight_gradients = method
    x = tf.random.stateless_normal(shape, seed=[7, 8])
    reference.build(shape)
    ours.build(shape)
    ours.set_weights(reference.get_weights())
    rtol = 1e-5 if dtype == "float32" else 2e-2
    for expected, got in zip(_forward_backward(reference, x), _forward_backward(ours, x)):
        _close(got, expected, rtol)

    # The kernel's gradient is computed by the method asked for, in the dtype it implies.
    def gradient(v):
        with tf.GradientTape() as tape:
            y = ours(v)
        return tape.gradient(y, ours.kernel)

    ops = _op_types(gradient, x)
    compute = tf.float32 if dtype == "float32" else tf.bfloat16
    filter_grads = [t for op, t in ops if op == "Conv2DBackpropFilter"]
    matmuls = [t for op, t in ops if op == "MatMul"]
    if method == "matmul":
        assert filter_grads == [] and matmuls == [compute]
        assert "ExtractImagePatches" in [op for op, _ in ops]
    else:
        assert filter_grads == [tf.float32 if method == "float32" else compute] and matmuls == []


def test_weight_gradient_method_is_automatic_for_small_bfloat16_layers_on_cpu():
    def auto(dtype, input_side, layer=dk_layers.DownConv2D):
        return dk_layers._weight_gradient_method(layer(4, dtype=dtype), input_side)

    assert auto("mixed_bfloat16", 8) == "matmul"  # D's last layer: 8x8 -> 4x4
    assert auto("mixed_bfloat16", 4, dk_layers.UpConv2D) == "matmul"  # G's first: 4x4 -> 8x8
    assert auto("mixed_bfloat16", 16) == "float32"  # 16x16 -> 8x8
    assert auto("mixed_bfloat16", 8, dk_layers.UpConv2D) == "native"  # 8x8 -> 16x16
    assert auto("mixed_bfloat16", 32) == "native"  # there oneDNN's bfloat16 kernel is the faster one
    assert auto("float32", 8) == "native"
    layer = dk_layers.DownConv2D(4)
    layer.weight_gradients = "fast"
    with pytest.raises(ValueError, match="weight_gradients must be one of"):
        dk_layers._weight_gradient_method(layer, 8)


def test_networks_use_the_fused_batch_norm_and_strided_convolution_layers():
    config = dk.Config(image_size=32, channels=1, base_width=8)
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
    norms = [l for l in generator.layers + discriminator.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(l, dk_layers.BatchNormalization) and l.fused for l in norms)
    convs = [l for l in discriminator.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(isinstance(l, dk_layers.DownConv2D) for l in convs)
