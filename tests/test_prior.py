"""The prior of z: the paper's uniform noise, and exports that take z ~ N(0, I) whatever the prior."""

import numpy as np
import pytest
from scipy import stats

import dcgan_keras as dk
from dcgan_keras.sampling import from_standard_normal, latent_vectors


def test_the_paper_recipe_trains_and_samples_on_uniform_z_in_minus_one_one(tiny_config):
    gan = dk.DCGAN.from_paper_config(dk.Config.from_recipe("paper", **{**tiny_config.to_dict(), "latent_distribution": "uniform"}))
    for z in (np.asarray(gan.latent_noise(4000)), gan.noise(4000, seed=1)):  # training's draws, sampling's draws
        assert z.min() >= -1.0 and z.max() <= 1.0
        assert stats.kstest(z[:, 0], stats.uniform(-1, 2).cdf).pvalue > 0.01
        assert z.var() == pytest.approx(1 / 3, abs=0.02)  # uniform on [-1, 1]; N(0, 1) would give 1
    np.testing.assert_array_equal(gan.noise(5, seed=2), latent_vectors(5, 16, seed=2, distribution="uniform"))


def test_modes_with_uniform_z_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="Received: latent_modes=4, latent_distribution='uniform'"):
        dk.Config(latent_modes=4)
    with pytest.raises(ValueError, match="Received: latent_distribution='gaussian'"):
        dk.Config(latent_distribution="gaussian")


def test_standard_normal_z_maps_exactly_to_the_mixture_of_modes():
    z = latent_vectors(200_000, 12, seed=0)
    mapped = np.asarray(from_standard_normal(z, modes=10, offset=5.0))
    mode = mapped[:, :10].argmax(axis=1)
    np.testing.assert_allclose(np.bincount(mode, minlength=10) / len(z), 0.1, atol=0.004)  # equal modes
    noise = mapped - 5.0 * np.eye(12)[mode]  # what is left is N(0, I), independent of the mode
    for column in range(12):
        assert stats.kstest(noise[:, column], "norm").pvalue > 0.001, column
    for m in (0, 9):
        np.testing.assert_allclose(noise[mode == m].mean(axis=0), 0.0, atol=0.03)
        np.testing.assert_allclose(noise[mode == m].std(axis=0), 1.0, atol=0.03)
    # The same distribution as the prior's own draws (`latent_vectors`): the same moments.
    own = latent_vectors(200_000, 12, seed=1, modes=10, offset=5.0)
    np.testing.assert_allclose(mapped.mean(axis=0), own.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(mapped.std(axis=0), own.std(axis=0), atol=0.03)


def test_standard_normal_z_maps_to_uniform_and_plain_normal_is_kept():
    z = latent_vectors(50_000, 4, seed=0)
    uniform = np.asarray(from_standard_normal(z, distribution="uniform"))
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert stats.kstest(uniform[:, 2], stats.uniform(-1, 2).cdf).pvalue > 0.01
    np.testing.assert_array_equal(np.asarray(from_standard_normal(z)), z)
