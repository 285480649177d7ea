"""Atomic writes and the shared sampling helpers."""

import json
import os

import numpy as np
import pytest

import dcgan_keras as dk
from dcgan_keras.files import atomic_path, atomic_write_json


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"a": 1}  # the old file is kept
    assert os.listdir(path.parent) == ["report.json"]  # and no temporary is left


def test_the_temporary_keeps_the_extension_keras_needs(tmp_path):
    with atomic_path(tmp_path / "backup" / "epoch_0001.weights.h5") as tmp:
        assert tmp.endswith(".weights.h5") and os.path.dirname(tmp) == str(tmp_path / "backup")
        open(tmp, "w").close()
    assert os.listdir(tmp_path / "backup") == ["epoch_0001.weights.h5"]


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
