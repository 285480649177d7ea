import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk


def _first(ds):
    return next(iter(ds)).numpy()


def test_bundled_digits_are_5000_real_mnist_images_with_500_per_class():
    images, labels = dk.load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and (images == 0).mean() > 0.7  # mostly background


@pytest.mark.parametrize("image_size,channels", [(32, 1), (64, 3)])
def test_digits_yield_full_batches_scaled_to_minus_one_one(image_size, channels):
    ds = dk.make_dataset("digits", image_size=image_size, channels=channels, batch_size=100, seed=0)
    batches = [b.numpy() for b in ds]
    assert len(batches) == 50
    batch = batches[0]
    assert batch.shape == (100, image_size, image_size, channels) and batch.dtype == np.float32
    assert batch.min() == pytest.approx(-1.0) and batch.max() > 0.9 and batch.max() <= 1.0


def test_drop_remainder_keeps_batches_equal():
    ds = dk.make_dataset("digits", batch_size=128)
    sizes = {b.shape[0] for b in ds}
    assert sizes == {128}  # 5000 // 128 = 39 full batches, the rest dropped


def test_numpy_uint8_and_float_arrays_are_scaled_alike():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 40, 32, 3), dtype=np.uint8)
    a = _first(dk.make_dataset(pixels, image_size=32, batch_size=8, shuffle=False))
    b = _first(dk.make_dataset(pixels / 255.0, image_size=32, batch_size=8, shuffle=False))
    assert a.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert -1.0 <= a.min() and a.max() <= 1.0


def test_centre_crop_keeps_the_middle_of_wide_images():
    image = np.zeros((1, 32, 96, 1), np.uint8)
    image[:, :, 32:64] = 255  # a white centre square between black sides
    batch = _first(dk.make_dataset(image, image_size=32, batch_size=1, shuffle=False))
    assert batch.min() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((4, 8), np.uint8), "shape"),
        (np.zeros((4, 8, 8, 2), np.uint8), "shape"),
        (np.full((4, 8, 8), 2.0), r"\[0, 1\]"),
        (np.full((4, 8, 8), np.nan), "NaN"),
        (np.zeros((4, 8, 8), np.int64), "dtype"),
    ],
)
def test_bad_numpy_arrays_get_a_clear_error(array, match):
    with pytest.raises(ValueError, match=match):
        dk.make_dataset(array)


def test_a_folder_of_mixed_images_is_read_recursively(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (80, 60), dtype=np.uint8)).save(tmp_path / "sub" / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(tmp_path / "c.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(dk.data.list_image_files(tmp_path)) == 3
    ds = dk.make_dataset(tmp_path, image_size=32, batch_size=3)
    batch = _first(ds)
    assert batch.shape == (3, 32, 32, 3)
    assert -1.0 <= batch.min() and batch.max() <= 1.0
    gray = _first(dk.make_dataset(tmp_path, image_size=32, channels=1, batch_size=3))
    assert gray.shape == (3, 32, 32, 1)


def test_an_empty_folder_says_no_images_were_found(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="No images found"):
        dk.make_dataset(tmp_path)


def test_unknown_names_and_missing_folders_are_explained():
    with pytest.raises(ValueError, match="unknown dataset name.*digits.*tfds:"):
        dk.make_dataset("mnistt")
    with pytest.raises(ValueError, match="folder of images that does not exist"):
        dk.make_dataset("no/such/folder")


def test_tfds_datasets_yield_image_batches_offline_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        ds = dk.make_dataset("tfds:mnist", image_size=32, batch_size=8)
        batch = _first(ds)
        assert dk.data.infer_channels("tfds:mnist") == 1
        rgb = _first(dk.make_dataset("tfds:cifar10:test", image_size=32, batch_size=4))
    assert batch.shape == (8, 32, 32, 1) and -1.0 <= batch.min() and batch.max() <= 1.0
    assert rgb.shape == (4, 32, 32, 3)


def test_tfds_dataset_without_an_image_feature_is_refused():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match="no 'image' feature"):
            dk.make_dataset("tfds:imdb_reviews")


def test_tfds_download_failure_says_what_failed_and_how_to_fix_it(monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):  # what tfds.load raises after its retries when offline
        raise ConnectionError("Failed to resolve 'storage.googleapis.com'")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(RuntimeError, match=r"(?s)celeb_a.*ConnectionError.*network access.*data_dir"):
        dk.make_dataset("tfds:celeb_a")
