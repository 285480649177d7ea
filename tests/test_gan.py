import dataclasses
import os

import numpy as np
import pytest

import dcgan_keras as dk
from dcgan_keras import fast_layers
import keras
import tensorflow as tf


def _batch(config, n=None, seed=0):
    n = n or config.batch_size
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, config.image_size, config.image_size, config.channels)).astype("float32")


def _snapshot(model):
    return [w.numpy().copy() for w in model.trainable_weights]


def _changed(before, model):
    return [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]


def test_one_train_step_updates_every_weight_of_both_networks(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    logs = gan.train_step(tf.constant(_batch(tiny_config)))
    assert all(_changed(g0, gan.generator)) and all(_changed(d0, gan.discriminator))
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert 0.0 < float(logs["d_real"]) < 1.0 and 0.0 < float(logs["d_fake"]) < 1.0


def test_each_half_of_the_step_updates_only_its_own_network(tiny_config):
    # With one network's learning rate at zero, a step changes only the other one.
    frozen = lambda: keras.optimizers.Adam(learning_rate=0.0)  # noqa: E731
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile(g_optimizer=frozen())
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    gan.train_step(tf.constant(_batch(tiny_config)))
    assert not any(_changed(g0, gan.generator)) and all(_changed(d0, gan.discriminator))

    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile(d_optimizer=frozen())
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    gan.train_step(tf.constant(_batch(tiny_config)))
    assert all(_changed(g0, gan.generator)) and not any(_changed(d0, gan.discriminator))


def test_compile_defaults_to_the_configs_adam_and_builds_optimizer_state(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        assert optimizer.beta_1 == pytest.approx(0.5)
        assert optimizer.built  # variables exist before fit (tf.distribute needs it)
    # The defaults follow the Config the model was built from (as `train --learning-rate` does).
    tuned = dk.DCGAN.from_settings(tiny_config.replace(learning_rate=1e-3, beta_1=0.7))
    tuned.compile()
    for optimizer in (tuned.d_optimizer, tuned.g_optimizer):
        assert float(optimizer.learning_rate) == pytest.approx(1e-3)
        assert optimizer.beta_1 == pytest.approx(0.7)
    # Two time scales: the generator's own learning rate, the discriminator's unchanged.
    two = dk.DCGAN.from_settings(tiny_config.replace(g_learning_rate=4e-4))
    two.compile()
    assert float(two.d_optimizer.learning_rate) == pytest.approx(2e-4)
    assert float(two.g_optimizer.learning_rate) == pytest.approx(4e-4)
    with pytest.raises(ValueError, match=r"Received: g_learning_rate=0"):
        tiny_config.replace(g_learning_rate=0)


def test_ema_generator_starts_equal_and_follows_the_generator(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config.replace(ema_decay=0.9))
    gan.compile()
    z = gan.noise(4)
    np.testing.assert_array_equal(gan.ema_generator(z), gan.generator(z))
    g0 = _snapshot(gan.generator)
    for seed in range(3):
        gan.train_step(tf.constant(_batch(tiny_config, seed=seed)))
    kernel = lambda m: m.get_layer("up1").kernel.numpy()  # noqa: E731
    before = g0[[w.path for w in gan.generator.trainable_weights].index(gan.generator.get_layer("up1").kernel.path)]
    ema, live = kernel(gan.ema_generator), kernel(gan.generator)
    assert not np.array_equal(ema, before) and not np.array_equal(ema, live)
    # The average lies between where the weights started and where they are now.
    assert np.abs(ema - live).mean() < np.abs(before - live).mean()
    assert gan.sampler is gan.ema_generator


def test_recalibrating_gives_the_ema_generator_the_batch_statistics_of_its_own_weights(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config.replace(ema_decay=0.9))
    gan.compile()
    for seed in range(4):
        gan.train_step(tf.constant(_batch(tiny_config, seed=seed)))
    norm = next(layer for layer in gan.ema_generator.layers if isinstance(layer, keras.layers.BatchNormalization))
    into_norm = keras.Model(gan.ema_generator.inputs, norm.input)  # what the first batch norm normalises
    batches = [into_norm(gan.noise(256, seed=i)).numpy() for i in range(4)]
    own_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    own_variance = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    # Step 4 copied the generator's statistics, which do not fit the averaged weights ...
    assert np.abs(norm.moving_mean.numpy() - own_mean).max() > 1e-3
    momentum = norm.momentum
    gan.recalibrate_batch_norm()
    # ... and now they are the EMA generator's own: the mean over 4 batches of 256 from the prior.
    np.testing.assert_allclose(norm.moving_mean.numpy(), own_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), own_variance, rtol=1e-3, atol=1e-5)
    assert norm.momentum == momentum  # the layer is left as it was for training


def test_generate_is_seeded_and_in_tanh_range(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config)
    a, b, c = gan.generate(5, seed=3), gan.generate(5, seed=3), gan.generate(5, seed=4)
    assert a.shape == (5, 32, 32, 1) and a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(gan(gan.noise(5, 3)), a, atol=1e-6)


def test_a_mixture_prior_moves_each_z_along_one_of_its_first_k_axes_with_every_mode_equally_likely():
    plain = dk.latent_vectors(4000, 16, seed=3)
    mixed = dk.latent_vectors(4000, 16, seed=3, modes=4, offset=5.0)
    shift = mixed - plain  # the same normal draws, each moved to its mode
    assert np.count_nonzero(shift, axis=1).tolist() == [1] * 4000
    mode = np.argmax(shift, axis=1)
    assert mode.max() == 3 and np.allclose(shift[np.arange(4000), mode], 5.0)
    np.testing.assert_allclose(np.bincount(mode) / 4000, 0.25, atol=0.03)
    np.testing.assert_array_equal(dk.latent_vectors(4000, 16, seed=3, modes=0), plain)  # N(0, I) as before


def test_training_sampling_checkpoints_and_exports_all_draw_the_models_prior(tiny_config, tmp_path):
    from dcgan_keras.export import SavedModelGenerator
    from dcgan_keras.metrics import sample_images
    from dcgan_keras.sampling import latent_prior, latent_vectors_for

    gan = dk.DCGAN.from_settings(tiny_config.replace(latent_distribution="normal", latent_modes=4, mode_offset=3.0, ema_decay=0.9))
    z = np.asarray(gan.latent_noise(8000))  # what train_step draws
    np.testing.assert_allclose(z[:, :4].mean(axis=0), 0.75, atol=0.08)  # 3.0 on a quarter of the draws
    np.testing.assert_allclose(z[:, 4:].mean(axis=0), 0.0, atol=0.08)
    np.testing.assert_allclose(np.bincount(np.argmax(z[:, :4], axis=1)) / 8000, 0.25, atol=0.03)  # equal modes
    np.testing.assert_array_equal(gan.noise(6, seed=1), dk.latent_vectors(6, 16, seed=1, modes=4, offset=3.0))
    for network in (gan, gan.generator, gan.sampler):
        assert latent_prior(network) == (4, 3.0, "normal")
        np.testing.assert_array_equal(latent_vectors_for(network, 6, seed=1), gan.noise(6, seed=1))

    gan.compile()
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert latent_prior(loaded) == latent_prior(loaded.sampler) == (4, 3.0, "normal")
    path = dk.export_generator(gan, tmp_path / "export")
    served = SavedModelGenerator(path)  # takes N(0, I), and maps it to the prior it was trained on
    assert latent_prior(served) == (0, 5.0, "normal") and served.trained_prior == (4, 3.0, "normal")
    # Images sampled by seed are the same from the model and from either copy.
    np.testing.assert_allclose(sample_images(loaded, 4, seed=2), sample_images(gan, 4, seed=2), atol=1e-6)
    assert np.abs(sample_images(SavedModelGenerator(path), 4, seed=2) - sample_images(gan, 4, seed=2)).max() <= 1.01 / 127.5


def test_a_prior_with_fewer_than_two_or_more_modes_than_axes_is_refused():
    with pytest.raises(ValueError, match="Received: latent_modes=1"):
        dk.Config(latent_modes=1)
    with pytest.raises(ValueError, match=r"latent_dim \(16\)\. Received: latent_modes=17"):
        dk.Config(latent_dim=16, latent_modes=17)
    with pytest.raises(ValueError, match="Received: mode_offset=0"):
        dk.Config(latent_modes=10, mode_offset=0)


def test_whole_model_round_trips_through_a_keras_file(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config.replace(ema_decay=0.99, label_smoothing=0.1))
    gan.compile()
    gan.fit(tf.data.Dataset.from_tensor_slices(_batch(tiny_config, 64)).batch(32), epochs=1, verbose=0, shuffle=False)
    path = tmp_path / "gan.keras"
    gan.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects needed
    assert isinstance(loaded, dk.DCGAN)
    assert loaded.config == gan.config and loaded.latent_dim == 16
    z = gan.noise(6, seed=7)
    np.testing.assert_array_equal(loaded.generator(z, training=False), gan.generator(z, training=False))
    np.testing.assert_array_equal(loaded.ema_generator(z, training=False), gan.ema_generator(z, training=False))
    images = _batch(tiny_config, 6)
    np.testing.assert_array_equal(loaded.discriminator(images), gan.discriminator(images))
    assert int(loaded.g_optimizer.iterations) == int(gan.g_optimizer.iterations) == 2
    for a, b in zip(loaded.d_optimizer.variables, gan.d_optimizer.variables):
        np.testing.assert_array_equal(a, b)


def test_mismatched_networks_are_rejected_with_both_shapes(tiny_config):
    generator = dk.build_generator(tiny_config)
    discriminator = dk.build_discriminator(tiny_config.replace(channels=3))
    with pytest.raises(ValueError, match="output shape"):
        dk.DCGAN(generator, discriminator)
    with pytest.raises(ValueError, match="Received: latent_dim=99"):
        dk.DCGAN(generator, dk.build_discriminator(tiny_config), tiny_config.replace(latent_dim=99))
    with pytest.raises(ValueError, match="Received: image_size=64, channels=1"):
        dk.DCGAN(generator, dk.build_discriminator(tiny_config), tiny_config.replace(image_size=64))


def _nearest_real_distance(samples, real):
    s = samples.reshape(len(samples), -1)
    r = real.reshape(len(real), -1)
    d = (s**2).sum(1)[:, None] - 2 * s @ r.T + (r**2).sum(1)[None]
    return float(np.sqrt(np.maximum(d.min(axis=1), 0)).mean())


def test_a_short_run_on_the_real_digits_moves_samples_towards_real_digits(tiny_config):
    config = tiny_config.replace(base_width=16, batch_size=64, latent_dim=32)
    keras.utils.set_random_seed(0)
    dataset = dk.make_dataset("digits", image_size=32, channels=1, batch_size=64, seed=0)
    real = np.concatenate([b.numpy() for b in dataset.take(16)])
    gan = dk.DCGAN.from_settings(config)
    gan.compile()
    untrained = gan.generate(200, seed=0)
    history = gan.fit(dataset, epochs=3, verbose=0, shuffle=False).history
    trained = gan.generate(200, seed=0)
    before, after = _nearest_real_distance(untrained, real), _nearest_real_distance(trained, real)
    # Untrained samples are grey noise; trained ones have dark backgrounds and strokes.
    assert after < 0.75 * before, (before, after)
    assert trained.mean() < untrained.mean() - 0.3  # digits are mostly background (-1)
    assert history["g_loss"][0] != history["g_loss"][-1]


def test_an_uncompiled_model_saves_and_loads_without_optimizers(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.save(tmp_path / "raw.keras")
    loaded = keras.models.load_model(tmp_path / "raw.keras")
    z = gan.noise(2)
    np.testing.assert_array_equal(loaded.generator(z), gan.generator(z))


def test_a_checkpoint_saved_by_version_0_1_loads_and_generates_the_same_images():
    # tests/fixtures/dcgan_tiny_v1.keras: a tiny DCGAN (32x32x1, latent_dim 16,
    # base_width 8) trained one step and saved by the first release, with the
    # images and logits it gave for fixed z. Renamed or moved layers must keep it loading.
    fixtures = os.path.join(os.path.dirname(__file__), "fixtures")
    gan = keras.models.load_model(os.path.join(fixtures, "dcgan_tiny_v1.keras"))
    expected = np.load(os.path.join(fixtures, "dcgan_tiny_v1_expected.npz"))
    images = gan.generator.predict(expected["z"], verbose=0)
    np.testing.assert_allclose(images, expected["images"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gan.discriminator.predict(images, verbose=0), expected["logits"], rtol=1e-4, atol=1e-7)
    assert int(gan.g_optimizer.iterations.numpy()) == 1 and int(gan.d_optimizer.iterations.numpy()) == 1


def test_get_config_saves_the_config_and_from_config_rebuilds_it_and_old_names_still_work_with_a_warning(tiny_config):
    config = tiny_config.replace(learning_rate=1e-3, g_learning_rate=2e-3, beta_2=0.99, r1_gamma=2.0, r1_every=3)
    gan = dk.DCGAN.from_settings(config)
    assert gan.get_config()["settings"] == config.to_dict()
    rebuilt = dk.DCGAN.from_config(gan.get_config())
    assert rebuilt.config == config
    rebuilt.compile()
    assert (float(rebuilt.d_optimizer.learning_rate), float(rebuilt.g_optimizer.learning_rate)) == pytest.approx((1e-3, 2e-3))
    assert rebuilt.g_optimizer.beta_2 == pytest.approx(0.99)
    with pytest.warns(DeprecationWarning, match="use DCGAN.from_settings"):
        old_style = dk.DCGAN.from_config(tiny_config)  # version 0.1 built new models here
    with pytest.warns(DeprecationWarning, match="use DCGAN.from_settings"):
        assert dk.DCGAN.from_paper_config(tiny_config).config == tiny_config
    with pytest.warns(DeprecationWarning, match="use make_adam"):
        assert dk.paper_adam(tiny_config, generator=True).beta_2 == pytest.approx(tiny_config.beta_2)
    assert old_style.generator.output_shape == gan.generator.output_shape
    with pytest.raises(TypeError, match="Received: config="):
        dk.DCGAN.from_settings(gan.get_config())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 2  # one home, changed only by replace()


def test_old_keyword_settings_map_onto_a_config_from_a_saved_dict_and_from_a_call(tiny_config):
    # Checkpoints written before Config was the settings' home saved them as loose keywords,
    # and DCGAN took them as keywords; unsaved ones take the old defaults (normal z, no seed).
    gan = dk.DCGAN.from_settings(tiny_config)
    saved = {key: value for key, value in gan.get_config().items() if key != "settings"}
    saved.update(latent_dim=16, label_smoothing=0.1, ema_decay=0.9, seed=4)  # what version 0.1 saved
    loaded = dk.DCGAN.from_config(saved)
    assert loaded.config == dk.Config(
        image_size=32, channels=1, latent_dim=16, label_smoothing=0.1, ema_decay=0.9, seed=4, latent_distribution="normal"
    )
    assert loaded.ema_generator is not None and loaded.name == gan.name
    with pytest.warns(DeprecationWarning, match=r"DCGAN\(generator, discriminator, Config"):
        called = dk.DCGAN(gan.generator, gan.discriminator, latent_modes=4, mode_offset=3.0)
    assert (called.config.latent_modes, called.config.mode_offset, called.config.latent_distribution) == (4, 3.0, "normal")
    assert dk.DCGAN(gan.generator, gan.discriminator).config.seed is None  # as it always was
    with pytest.raises(TypeError, match="Received: seed"):
        dk.DCGAN(gan.generator, gan.discriminator, tiny_config, seed=3)


def _r1_weight_gradients(config, weights, images):
    # The gradient of the R1 penalty with respect to the discriminator's weights.
    gan = dk.DCGAN.from_settings(config)
    gan.discriminator.set_weights(weights)
    with tf.GradientTape() as tape:
        _, penalty = gan.r1_penalty(tf.constant(images))
    return gan, tape.gradient(penalty, gan.discriminator.trainable_variables)


def test_the_r1_penalty_reaches_every_discriminator_kernel_with_exact_second_derivatives(tiny_config):
    # R1 differentiates D's input gradient a second time. With fast_layers the
    # discriminator must give the same weight gradients as Keras' own layers:
    # TensorFlow's fused batch norm (which fast_layers trains with) is 2% off
    # here, so r1_penalty's pass is made with Keras' ops, and only that pass.
    config = tiny_config.replace(r1_gamma=1.0)
    images = _batch(config, 16)
    weights = dk.DCGAN.from_settings(config).discriminator.get_weights()
    gan, fast = _r1_weight_gradients(config, weights, images)
    _, plain = _r1_weight_gradients(config.replace(fast_layers=False), weights, images)
    norms = [layer for layer in gan.discriminator.layers if isinstance(layer, fast_layers.BatchNormalization)]
    assert norms and all(layer.fused for layer in norms)  # fused again for the step's other passes
    for variable, a, b in zip(gan.discriminator.trainable_variables, fast, plain):
        if variable.path.endswith("logit/bias"):  # a constant shift has no slope
            assert a is None and b is None
            continue
        if variable.path.endswith("kernel"):
            assert float(tf.reduce_max(tf.abs(a))) > 0, variable.path
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * float(tf.reduce_max(tf.abs(b))), err_msg=variable.path)


def test_training_with_r1_flattens_the_discriminator_around_the_real_images(tiny_config):
    real = tf.constant(_batch(tiny_config, seed=1))
    slopes = {}
    for gamma in (0.0, 10.0):
        keras.utils.set_random_seed(0)
        gan = dk.DCGAN.from_settings(tiny_config.replace(r1_gamma=gamma))
        gan.compile()
        step = tf.function(gan.train_step)
        for _ in range(20):
            logs = step(real)
        slopes[gamma] = float(gan.r1_penalty(real)[1])
        assert np.isfinite(float(logs["d_loss"]))
    # Without R1, D grows steep at the images it is shown; with it, far less so.
    assert slopes[10.0] < 0.5 * slopes[0.0], slopes
    rebuilt = dk.DCGAN.from_config(gan.get_config())
    assert rebuilt.config.r1_gamma == 10.0
    with pytest.raises(ValueError, match=r"Received: r1_gamma=-1"):
        tiny_config.replace(r1_gamma=-1)


def _d_update(config, weights, images, iteration):
    # D's weights after one train_step with plain SGD (the update is -gradient), its
    # optimizer at `iteration`, from the same start weights (G's, D's) and the same z.
    gan = dk.DCGAN.from_settings(config)
    gan.compile(d_optimizer=keras.optimizers.SGD(1.0), g_optimizer=keras.optimizers.SGD(0.0))
    gan.generator.set_weights(weights[0])
    gan.discriminator.set_weights(weights[1])
    gan.d_optimizer.iterations.assign(iteration)
    gan.train_step(tf.constant(images))
    return [w.numpy() for w in gan.discriminator.trainable_weights]


@pytest.mark.parametrize("sync_batch_norm", [False, True])
def test_lazy_r1_penalises_one_step_in_r1_every_with_that_many_times_the_weight(tiny_config, sync_batch_norm):
    # StyleGAN2's lazy regularisation: with r1_every=4 and gamma 1, the step that
    # has the penalty is the step of gamma 4 every step; the other three are gamma 0's.
    # With synchronised batch norm (no tf.cond around its cross-replica sum) as well.
    config = tiny_config.replace(r1_gamma=1.0, r1_every=4, sync_batch_norm=sync_batch_norm)
    images = _batch(config, seed=2)
    first = dk.DCGAN.from_settings(config)
    start = first.generator.get_weights(), first.discriminator.get_weights()
    for iteration, same_as in ((0, config.replace(r1_gamma=4.0, r1_every=1)), (5, config.replace(r1_gamma=0.0))):
        lazy = _d_update(config, start, images, iteration)
        expected = _d_update(same_as, start, images, iteration)
        other = _d_update(config.replace(r1_gamma=0.0 if iteration == 0 else 4.0, r1_every=1), start, images, iteration)
        for a, b in zip(lazy, expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert max(float(np.max(np.abs(a - c))) for a, c in zip(lazy, other)) > 1e-4  # the penalty matters here
    assert dk.DCGAN.from_config(first.get_config()).config.r1_every == 4
    with pytest.raises(ValueError, match=r"Received: r1_every=0"):
        tiny_config.replace(r1_every=0)
