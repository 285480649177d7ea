"""The shared sampling helpers (dcgan_keras.sampling)."""

import numpy as np
import pytest

import dcgan_keras as dk


def test_latent_vectors_are_seeded_standard_normal_and_shared_by_the_model(tiny_config):
    z = dk.latent_vectors(2000, 16, seed=3)
    assert z.shape == (2000, 16) and z.dtype == np.float32
    assert abs(z.mean()) < 0.03 and z.std() == pytest.approx(1.0, abs=0.03)
    np.testing.assert_array_equal(z, dk.latent_vectors(2000, 16, seed=3))
    assert not np.array_equal(z, dk.latent_vectors(2000, 16, seed=4))
    gan = dk.DCGAN.from_settings(tiny_config.replace(latent_distribution="normal"))
    np.testing.assert_array_equal(gan.noise(5, seed=3), z[:5])


def test_batched_forward_equals_one_call_whatever_the_batch_size(tiny_config):
    generator = dk.build_generator(tiny_config)
    z = dk.latent_vectors(10, tiny_config.latent_dim)
    whole = np.asarray(generator(z, training=False))
    np.testing.assert_allclose(dk.batched_forward(generator, z, batch_size=3), whole, atol=1e-6)
