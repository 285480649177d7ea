import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
import tensorflow as tf


def test_image_grid_tiles_images_with_padding_and_validates_input():
    images = np.stack([np.full((4, 5, 1), v, np.float32) for v in (-1.0, 0.0, 0.5, 1.0)])
    grid = dk.image_grid(images, padding=1, pad_value=1.0)
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1, 1)
    assert grid[1, 1, 0] == -1.0 and grid[1, 7, 0] == 0.0 and grid[6, 1, 0] == 0.5
    with pytest.raises(ValueError, match="shape"):
        dk.image_grid(np.zeros((4, 4)))
    assert dk.to_uint8(np.array([-1.0, 0.0, 1.0, 3.0])).tolist() == [0, 128, 255, 255]
    np.testing.assert_allclose(dk.from_uint8(np.array([0, 255], np.uint8)), [-1.0, 1.0])


def test_sample_grid_writes_pngs_of_the_expected_size_from_fixed_noise(tiny_config, tmp_path):
    # A fast rate, so that two steps move the grid by more than a PNG's 8-bit steps whatever the seed.
    gan = dk.DCGAN.from_settings(tiny_config.replace(learning_rate=1e-2))
    gan.compile()
    data = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    callback = dk.SampleGrid(tmp_path / "samples", num_images=16, every=2, log_dir=tmp_path / "logs")
    gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(32), epochs=3, callbacks=[callback], verbose=0, shuffle=False)
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["epoch_0002.png", "epoch_0003.png"]  # every 2 epochs, and the last one
    first = np.asarray(Image.open(tmp_path / "samples" / "epoch_0002.png"))
    last = np.asarray(Image.open(tmp_path / "samples" / "epoch_0003.png"))
    assert first.shape == (4 * 34 + 2, 4 * 34 + 2) and first.dtype == np.uint8
    assert not np.array_equal(first, last)  # the generator moved between epochs
    assert list((tmp_path / "logs").iterdir())  # a TensorBoard event file
    with pytest.raises(ValueError, match="every"):
        dk.SampleGrid(tmp_path, every=0)


def test_loss_plot_writes_a_png(tmp_path):
    path = dk.callbacks.plot_history({"d_loss": [1.0, 0.5], "g_loss": [2.0, 3.0], "d_real": [0.6, 0.7]}, tmp_path / "l.png")
    assert Image.open(path).size[0] > 100


def test_exported_generator_reloads_with_plain_tensorflow_and_gives_the_same_pixels(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config.replace(ema_decay=0.9))
    path = dk.export_generator(gan, tmp_path / "digits")
    assert path.endswith("digits/1")
    served = tf.saved_model.load(path).signatures["serving_default"]
    for batch in (1, 64):
        z = gan.noise(batch, seed=batch)
        images = served(z=tf.constant(z))["images"].numpy()
        expected = dk.to_uint8(gan.ema_generator(z, training=False))
        assert images.dtype == np.uint8 and images.shape == (batch, 32, 32, 1)
        assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1


def test_export_versions_count_up_and_never_overwrite(tiny_config, tmp_path):
    generator = dk.build_generator(tiny_config)
    assert dk.export_generator(generator, tmp_path).endswith("1")
    assert dk.export_generator(generator, tmp_path).endswith("2")
    with pytest.raises(FileExistsError, match="never overwritten"):
        dk.export_generator(generator, tmp_path, version=1)


def test_load_generator_reads_checkpoints_and_saved_models_alike(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    gan.save(tmp_path / "gan.keras")
    path = dk.export_generator(gan, tmp_path / "export")
    z = gan.noise(3, seed=5)
    expected = np.asarray(gan.generator(z, training=False))
    from_ckpt = dk.export.load_generator(tmp_path / "gan.keras")
    from_export = dk.export.load_generator(path)
    np.testing.assert_allclose(from_ckpt(z, training=False), expected, atol=1e-6)
    np.testing.assert_allclose(from_export(z), expected, atol=1.0 / 127.5 + 1e-6)  # uint8 rounding
    assert from_export.latent_dim == 16 and from_export.output_shape == (None, 32, 32, 1)
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        dk.export.load_generator(tmp_path)
