import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras.augment import color, cutout, diff_augment, translation

SEED = tf.constant([3, 4], tf.int64)


def _images(n=8, size=16, channels=3, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32"))


def test_translation_shifts_whole_images_and_fills_the_border_with_zeros():
    # A shifted image is the original moved by (dy, dx) with zeros coming in at the edge.
    x = _images(n=16)
    y = translation(x, SEED).numpy()
    x = x.numpy()
    found = 0
    for a, b in zip(x, y):
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                moved = np.zeros_like(a)
                src = a[max(dy, 0): 16 + min(dy, 0), max(dx, 0): 16 + min(dx, 0)]
                moved[max(-dy, 0): 16 + min(-dy, 0), max(-dx, 0): 16 + min(-dx, 0)] = src
                if np.array_equal(moved, b):
                    found += 1
    assert found >= 16  # each image matches one shift of at most 2 pixels (0.125 x 16)
    assert not np.array_equal(x, y)


def test_cutout_zeroes_one_square_of_half_the_side_and_keeps_the_rest():
    x = _images(n=32)
    y = cutout(x, SEED).numpy()
    x = x.numpy()
    zeroed = (y == 0).all(axis=-1)
    assert np.array_equal(y[~zeroed], x[~zeroed])
    counts = zeroed.sum(axis=(1, 2))
    assert counts.max() == 64 and counts.min() > 0  # an 8x8 square, partly outside at the edges


def test_color_shifts_brightness_per_image_not_per_pixel():
    x = _images(n=8, channels=1)
    y = color(x, SEED).numpy()
    # With one channel saturation does nothing and contrast scales around the mean:
    # every output image is an affine function of its input image.
    for a, b in zip(x.numpy().ravel().reshape(8, -1), y.reshape(8, -1)):
        slope, intercept = np.polyfit(a, b, 1)
        assert np.allclose(a * slope + intercept, b, atol=1e-4)
        assert not np.isclose(slope, 1.0) or not np.isclose(intercept, 0.0)


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another():
    x = _images()
    a = diff_augment(x, "color,translation,cutout", SEED)
    b = diff_augment(x, "color,translation,cutout", SEED)
    c = diff_augment(x, "color,translation,cutout", SEED + 1)
    assert np.array_equal(a.numpy(), b.numpy()) and not np.array_equal(a.numpy(), c.numpy())


def test_augmentation_is_differentiable_with_respect_to_the_images():
    # With its random draws fixed, the policy is an affine map of the images, so the
    # gradient of a linear loss predicts the loss's change along any direction exactly.
    weights = tf.constant(np.random.default_rng(1).normal(size=(8, 16, 16, 3)).astype("float32"))
    loss = lambda images: tf.reduce_sum(diff_augment(images, "color,translation,cutout", SEED) * weights)  # noqa: E731
    x = tf.Variable(_images())
    with tf.GradientTape() as tape:
        value = loss(x)
    grad = tape.gradient(value, x)
    direction = _images(seed=2)
    change = float(loss(x + direction) - value)
    assert change == pytest.approx(float(tf.reduce_sum(grad * direction)), rel=1e-3)
    # Pixels cut out or shifted out of the frame get no gradient.
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(diff_augment(x, "translation,cutout", SEED) * weights)
    assert 0.3 < np.mean(tape.gradient(value, x).numpy() != 0) < 0.95


def test_probability_zero_leaves_images_unchanged_and_half_changes_about_half():
    x = _images(n=200, size=8)
    assert np.array_equal(diff_augment(x, "translation", SEED, tf.constant(0.0)).numpy(), x.numpy())
    changed = np.any(diff_augment(x, "cutout", SEED, 0.5).numpy() != x.numpy(), axis=(1, 2, 3))
    assert 0.35 < changed.mean() < 0.65


def test_an_unknown_policy_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"'rotate'.*color, translation, cutout.*Received: augment='rotate'"):
        dk.Config(augment="rotate")
    with pytest.raises(ValueError, match="augment_target"):
        dk.Config(augment_target=0.6)  # nothing to adapt


def test_train_step_augments_real_and_fake_images_in_all_three_discriminator_passes(tiny_config):
    seen = []

    class Spy(dk.DCGAN):
        def augmented(self, images):
            out = super().augmented(images)
            seen.append((images, out))
            return out

    gan = Spy.from_settings(tiny_config.replace(augment="translation,cutout"))
    gan.compile()
    real = _images(n=tiny_config.batch_size, size=32, channels=1)
    gan.train_step(real)
    assert len(seen) == 3  # D on real, D on fake (its update), D on fake (G's update)
    assert seen[0][0] is real
    for before, after in seen:
        assert before.shape == after.shape
        assert not np.array_equal(before.numpy(), after.numpy())  # each batch D sees is transformed
    # The policy is saved with the model.
    gan2 = dk.DCGAN.from_settings(tiny_config.replace(augment="cutout"))
    assert gan2.get_config()["settings"]["augment"] == "cutout"


def test_adaptive_augmentation_rises_while_the_discriminator_is_sure_of_the_reals(tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config.replace(augment="translation", augment_target=0.6))
    gan.compile()
    assert float(gan.augment_probability) == 0.0
    # Real images D can tell apart at once (constant), so r = E[sign(D(real))] climbs above 0.6.
    real = tf.ones((tiny_config.batch_size, 32, 32, 1))
    for _ in range(30):
        gan.train_step(real)
    assert float(gan.augment_probability) > 0.0
    assert float(gan.augment_probability) == pytest.approx(
        min(1.0, 30 * tiny_config.batch_size / gan.ADAPT_IMAGES), abs=4 * tiny_config.batch_size / gan.ADAPT_IMAGES
    )
