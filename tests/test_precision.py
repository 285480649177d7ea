"""Mixed precision: 16-bit computations on float32 variables, float32 outputs and losses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk

COMPUTE = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class RecordingLossDtypes(dk.DCGAN):
    """Records the dtype of every loss the train step computes (at tracing)."""

    loss_dtypes = []

    def _bce(self, logits, target):
        loss = super()._bce(logits, target)
        self.loss_dtypes.append(loss.dtype)
        return loss


def _images(n=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 32, 32, 1)).astype("float32")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_outputs_losses_and_variables(tiny_config, precision):
    config = tiny_config.replace(precision=precision, ema_decay=0.9)
    nets = dk.DCGAN.from_settings(config)
    gan = RecordingLossDtypes(nets.generator, nets.discriminator, config)
    gan.compile()

    # Hidden layers compute in 16 bits; G's tanh and D's logit in float32.
    assert gan.generator.get_layer("up1").compute_dtype == COMPUTE[precision]
    assert gan.generator.get_layer("project_bn").compute_dtype == COMPUTE[precision]
    assert gan.discriminator.get_layer("down1").compute_dtype == COMPUTE[precision]
    assert gan.generator.get_layer("tanh").compute_dtype == "float32"
    assert gan.discriminator.get_layer("logit").compute_dtype == "float32"
    # Dynamic loss scaling where float16 needs it, not for bfloat16 (float32's range).
    scaled = precision == "mixed_float16"
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == scaled

    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    history = gan.fit(tf.data.Dataset.from_tensor_slices(_images()).batch(32), epochs=2, verbose=0, shuffle=False).history
    steps = int(gan.g_optimizer.iterations.numpy())
    if scaled:  # dynamic loss scaling skips the steps whose gradients overflow (scale 2**15 at first)
        assert 2 <= steps <= 4 and float(gan.g_optimizer.dynamic_scale.numpy()) <= 2.0**15
    else:
        assert steps == 4
    for values in history.values():
        assert np.all(np.isfinite(values))
    assert gan.loss_dtypes and all(dtype == tf.float32 for dtype in gan.loss_dtypes)
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(before, gan.generator.trainable_weights))

    z = tf.random.normal((4, config.latent_dim))
    images = gan.generator(z, training=False)
    assert images.dtype == tf.float32
    assert gan.discriminator(images, training=False).dtype == tf.float32
    assert gan.generate(4).dtype == np.float32
    variables = gan.generator.weights + gan.discriminator.weights + gan.ema_generator.weights
    assert {v.dtype for v in variables} == {"float32"}


def test_loss_scaling_unscales_the_gradients_before_the_update(tiny_config):
    # With plain SGD the step is proportional to the gradient: a missing
    # unscaling would make the float16 step 256 times the float32 one. (A
    # scale of 256 keeps the first step from overflowing, which at the default
    # 2**15 skips D's first update and so changes G's.)
    initial = dk.DCGAN.from_settings(tiny_config).get_weights()

    def one_step(precision):
        gan = dk.DCGAN.from_settings(tiny_config.replace(precision=precision))
        gan.set_weights(initial)
        start = [w.numpy().copy() for w in gan.trainable_weights]
        optimizers = [keras.optimizers.SGD(0.1) for _ in range(2)]
        if precision == "mixed_float16":
            optimizers = [keras.optimizers.LossScaleOptimizer(o, initial_scale=256) for o in optimizers]
        gan.compile(*optimizers)
        assert gan.d_optimizer is optimizers[0] and gan.g_optimizer is optimizers[1]  # not wrapped twice
        gan.fit(_images(32), batch_size=32, epochs=1, verbose=0)
        assert int(gan.d_optimizer.iterations.numpy()) == int(gan.g_optimizer.iterations.numpy()) == 1
        delta = np.concatenate([(w.numpy() - b).ravel() for w, b in zip(gan.trainable_weights, start)])
        return delta

    full, half = one_step("float32"), one_step("mixed_float16")
    assert np.linalg.norm(full) > 0
    assert np.linalg.norm(half) / np.linalg.norm(full) == pytest.approx(1.0, abs=0.05)
    assert np.dot(half, full) / (np.linalg.norm(half) * np.linalg.norm(full)) > 0.98


def test_precision_survives_a_keras_file_round_trip(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config.replace(precision="mixed_float16"))
    gan.compile()
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert loaded.generator.get_layer("up1").dtype_policy.name == "mixed_float16"
    assert loaded.generator.get_layer("tanh").dtype_policy.name == "float32"
    assert isinstance(loaded.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(loaded.g_optimizer.inner_optimizer, keras.optimizers.LossScaleOptimizer)
    # The default stays float32 throughout, with the paper's plain Adam.
    plain = dk.DCGAN.from_settings(tiny_config)
    plain.compile()
    assert plain.generator.get_layer("up1").compute_dtype == "float32"
    assert isinstance(plain.g_optimizer, keras.optimizers.Adam)


def test_auto_precision_is_bfloat16_on_a_cpu_with_bfloat16_instructions_and_no_gpu(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    real_open = open

    def fake_open(path, *args, **kwargs):
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    for flags, expected in (("fpu avx512f avx512_bf16 sse", "mixed_bfloat16"), ("fpu amx_bf16", "mixed_bfloat16"),
                            ("fpu avx512f avx2", "float32")):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert dk.Config(precision="auto").precision == expected
        assert dk.Config.from_recipe("default").precision == expected  # the default recipe's choice
    cpuinfo.write_text("processor\t: 0\nflags\t\t: avx512_bf16\n")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["a GPU"] if kind == "GPU" else [])
    assert dk.Config(precision="auto").precision == "float32"  # a GPU: not measured, so float32
    assert dk.Config.from_recipe("paper").precision == "float32"
    with pytest.raises(ValueError, match=r"one of float32, mixed_float16, mixed_bfloat16, auto .*Received: precision='bf16'"):
        dk.Config(precision="bf16")
