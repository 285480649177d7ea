"""The fast layers compute exactly what the Keras layers they replace compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras import fast_layers


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
    fused = fast_layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype)
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
    fused = fast_layers.BatchNormalization()
    fused.build(x.shape)
    ops = [t for t, _ in _op_types(lambda v: fused(v, training=True), x)]
    assert "FusedBatchNormV3" in ops and "Mean" not in ops

    unfused = fast_layers.BatchNormalization(fused=False)
    unfused.build(x.shape)
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: unfused(v, training=True), x)]
    synced = fast_layers.BatchNormalization(synchronized=True)
    synced.build(x.shape)
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: synced(v, training=True), x)]
    # Inference is Keras' own code in every case.
    assert "FusedBatchNormV3" not in [t for t, _ in _op_types(lambda v: fused(v, training=False), x)]
    # A 2-D input (after a Dense layer) is normalised by Keras' path.
    flat = fast_layers.BatchNormalization()
    assert flat(tf.ones((4, 3)), training=True).shape == (4, 3)


def test_layers_round_trip_through_their_configs():
    norm = fast_layers.BatchNormalization(fused=False, momentum=0.9)
    assert fast_layers.BatchNormalization.from_config(norm.get_config()).fused is False
    down = fast_layers.Conv2D(7, 4, strides=2, padding="same", use_bias=False, weight_gradients="matmul")
    copy = fast_layers.Conv2D.from_config(down.get_config())
    assert (copy.filters, copy.kernel_size, copy.strides, copy.padding, copy.use_bias) == (7, (4, 4), (2, 2), "same", False)
    assert copy.weight_gradients == "matmul"
    up = fast_layers.Conv2DTranspose.from_config(fast_layers.Conv2DTranspose(5, 4, strides=2, padding="same").get_config())
    assert (up.filters, up.kernel_size, up.strides, up.weight_gradients) == (5, (4, 4), (2, 2), "auto")


def test_version_0_1_layer_names_load_with_their_fixed_geometry():
    # Version 0.1 saved UpConv2D / DownConv2D without kernel size, strides and
    # padding, and UpConv2D with an `implementation` since removed.
    up = keras.saving.deserialize_keras_object(
        {"module": None, "class_name": "UpConv2D", "registered_name": "dcgan_keras>UpConv2D",
         "config": {"filters": 3, "implementation": "transpose", "use_bias": False}}
    )
    down = keras.saving.deserialize_keras_object(
        {"module": None, "class_name": "DownConv2D", "registered_name": "dcgan_keras>DownConv2D",
         "config": {"filters": 6}}
    )
    assert isinstance(up, fast_layers.Conv2DTranspose) and isinstance(down, fast_layers.Conv2D)
    assert (up.kernel_size, up.strides, up.padding) == ((4, 4), (2, 2), "same")
    assert (down.kernel_size, down.strides, down.padding) == ((4, 4), (2, 2), "same")


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("method", ["native", "float32", "matmul"])
@pytest.mark.parametrize("transpose", [False, True])
def test_strided_convolutions_match_keras_with_every_weight_gradient(dtype, method, transpose):
    if transpose:
        reference = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same", dtype=dtype)
        ours = fast_layers.Conv2DTranspose(6, 4, strides=2, padding="same", dtype=dtype, weight_gradients=method)
        shape = (4, 4, 4, 5)
    else:
        reference = keras.layers.Conv2D(6, 4, strides=2, padding="same", dtype=dtype)
        ours = fast_layers.Conv2D(6, 4, strides=2, padding="same", dtype=dtype, weight_gradients=method)
        shape = (4, 8, 8, 5)
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
    def auto(dtype, input_side, layer=fast_layers.Conv2D):
        return fast_layers.weight_gradient_method(layer(4, 4, strides=2, padding="same", dtype=dtype), input_side)

    assert auto("mixed_bfloat16", 8) == "matmul"  # D's last layer: 8x8 -> 4x4
    assert auto("mixed_bfloat16", 4, fast_layers.Conv2DTranspose) == "matmul"  # G's first: 4x4 -> 8x8
    assert auto("mixed_bfloat16", 16) == "float32"  # 16x16 -> 8x8
    assert auto("mixed_bfloat16", 8, fast_layers.Conv2DTranspose) == "native"  # 8x8 -> 16x16
    assert auto("mixed_bfloat16", 32) == "native"  # there oneDNN's bfloat16 kernel is the faster one
    assert auto("float32", 8) == "native"
    with pytest.raises(ValueError, match=r"weight_gradients must be one of .* Received: weight_gradients='fast'"):
        fast_layers.Conv2D(4, 4, weight_gradients="fast")


def test_other_geometries_take_keras_own_path():
    layer = fast_layers.Conv2D(4, 3, strides=1, padding="same", dtype="mixed_bfloat16", weight_gradients="matmul")
    x = tf.random.stateless_normal((2, 8, 8, 3), seed=[1, 1])
    layer.build(x.shape)

    def gradient(v):
        with tf.GradientTape() as tape:
            y = layer(v)
        return tape.gradient(y, layer.kernel)

    assert "ExtractImagePatches" not in [op for op, _ in _op_types(gradient, x)]


def test_fast_layers_switch_picks_the_fast_or_the_keras_layers():
    def layer_types(config):
        generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
        return {type(l) for l in generator.layers + discriminator.layers}

    config = dk.Config(image_size=32, channels=1, base_width=8)
    assert {fast_layers.BatchNormalization, fast_layers.Conv2D, fast_layers.Conv2DTranspose} <= layer_types(config)
    plain = layer_types(config.replace(fast_layers=False))
    assert {keras.layers.BatchNormalization, keras.layers.Conv2D, keras.layers.Conv2DTranspose} <= plain
    assert not any(t.__module__ == fast_layers.__name__ for t in plain)


def test_fast_and_keras_networks_compute_the_same_images_and_logits():
    config = dk.Config(image_size=32, channels=1, latent_dim=16, base_width=8)
    fast = dk.build_generator(config), dk.build_discriminator(config)
    plain = dk.build_generator(config.replace(fast_layers=False)), dk.build_discriminator(config.replace(fast_layers=False))
    z = tf.random.stateless_normal((4, 16), seed=[2, 3])
    for ours, theirs in zip(fast, plain):
        theirs.set_weights(ours.get_weights())
    images = fast[0](z, training=True)
    _close(plain[0](z, training=True), images, 1e-4)
    _close(plain[1](images, training=True), fast[1](images, training=True), 1e-4)
