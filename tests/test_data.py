import json
import logging
import os
import re
import random
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
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
    with pytest.warns(UserWarning, match="Ignored 1 file.*without an image extension.*notes.txt"):
        ds = dk.make_dataset(tmp_path, image_size=32, batch_size=3)
    batch = _first(ds)
    assert batch.shape == (3, 32, 32, 3)
    assert -1.0 <= batch.min() and batch.max() <= 1.0
    with pytest.warns(UserWarning, match="notes.txt"):
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


# -- folders: known epoch length, bad files, cache, shards ------------------------------


def _gray_folder(folder, count, size=40, ext="png"):
    """`count` images of one gray level each (image i has level 5 * i + 2), named by i."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((size, size), 5 * i + 2, np.uint8)).convert("RGB").save(folder / f"{i:03d}.{ext}")
    return folder


def _ids(batch):
    """The image ids of a batch of `_gray_folder` images (pixel values in [-1, 1])."""
    levels = (np.asarray(batch)[:, 0, 0, 0] + 1.0) * 127.5
    return np.rint((levels - 2) / 5).astype(int).tolist()


def test_a_folder_trains_at_64x64_for_two_epochs_with_a_known_epoch_length(tmp_path):
    # Read with an unknown length, such a folder ended epoch 1 inside a training
    # step and epoch 2 died with AlreadyExistsError (a grappler temporary of the
    # aborted step left behind): docs/data.md.
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(42):
        Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.jpg")
    config = dk.Config(image_size=64, channels=3, latent_dim=16, base_width=8, batch_size=8, ema_decay=None, seed=0)
    ds = dk.make_dataset(tmp_path / "images", image_size=64, batch_size=8)
    assert int(ds.cardinality()) == 42 // 8 == 5
    untrained = dk.DCGAN.from_settings(config).generator.get_weights()
    summary = dk.train(config, tmp_path / "run", dataset=str(tmp_path / "images"), epochs=2, export_dir=None,
                       verbose=0, sample_every=10)
    gan = summary["model"]
    assert int(gan.g_optimizer.iterations.numpy()) == int(gan.d_optimizer.iterations.numpy()) == 2 * 5
    assert len(summary["history"]["d_loss"]) == 2 and np.isfinite(summary["history"]["d_loss"]).all()
    assert summary["history"]["d_loss"][0] != summary["history"]["d_loss"][1]
    assert max(np.abs(a - b).max() for a, b in zip(gan.generator.get_weights(), untrained)) > 1e-3


def test_fewer_images_than_one_batch_stop_before_anything_is_written(tmp_path, tiny_config, capsys):
    folder = _gray_folder(tmp_path / "ten", 10)
    message = r"has 10 image\(s\), fewer than one batch of 64.*--batch-size 10 or less.*add images. Received: batch_size=64, images=10$"
    with pytest.raises(ValueError, match=message):
        dk.make_dataset(folder, batch_size=64)
    with pytest.raises(ValueError, match=r"The array has 10 image\(s\), fewer than one batch of 32"):
        dk.train(tiny_config, tmp_path / "run", dataset=np.zeros((10, 32, 32, 1), np.uint8), export_dir=tmp_path / "m")
    from dcgan_keras.cli import main

    code = main(["train", "--dataset", str(folder), "--batch-size", "64", "--run-dir", str(tmp_path / "run"),
                 "--export-dir", str(tmp_path / "m")])
    assert code == 2 and "fewer than one batch of 64" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "m").exists()
    # Without drop_remainder the one smaller batch is an epoch.
    assert [b.shape[0] for b in dk.make_dataset(folder, batch_size=64, drop_remainder=False)] == [10]


def test_every_epoch_is_a_fresh_shuffle_of_every_file_when_streaming(tmp_path):
    folder = _gray_folder(tmp_path / "f", 24)
    ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=6, seed=0, cache="off")
    epochs = [[i for batch in ds for i in _ids(batch)] for _ in range(2)]
    assert [sorted(e) for e in epochs] == [list(range(24))] * 2  # each image once per epoch
    assert epochs[0] != epochs[1] and epochs[0] != list(range(24))


def test_mirror_flips_about_half_the_images_anew_each_epoch_and_the_same_for_the_same_seed():
    # Image i is (i + 1) / 64 on its left half and 0 (-1 once scaled) on its right: whether it
    # was flipped is read off its top-left pixel, and i off whichever side is not -1.
    images = np.zeros((64, 8, 8, 1), np.float32)
    images[:, :, :4] = ((np.arange(64) + 1) / 64.0)[:, None, None, None]

    def epochs(seed, mirror=True, count=2):
        ds = dk.make_dataset(images, image_size=8, batch_size=16, seed=seed, mirror=mirror)
        return [np.concatenate([b.numpy() for b in ds]) for _ in range(count)]

    flips, indices = [], []
    for epoch in epochs(seed=0):
        flipped = epoch[:, 0, 0, 0] == -1.0
        flips.append(flipped)
        indices.append(np.round((np.maximum(epoch[:, 0, 0, 0], epoch[:, 0, 7, 0]) + 1) / 2 * 64 - 1))
    assert [sorted(i) for i in indices] == [list(range(64))] * 2  # each image once, whole, per epoch
    assert all(16 <= f.sum() <= 48 for f in flips)  # about half
    assert (flips[0] != flips[1]).any()  # drawn anew each epoch, not a pattern repeated over a new order
    np.testing.assert_array_equal(epochs(seed=0, count=1)[0], epochs(seed=0, count=1)[0])  # the same for a seed
    assert not (epochs(seed=0, mirror=False, count=1)[0][:, 0, 0, 0] == -1.0).any()  # off: none flipped


def test_auto_cache_keeps_images_in_memory_only_within_the_budget(tmp_path):
    folder = _gray_folder(tmp_path / "f", 8)
    kept = dk.make_dataset(folder, image_size=8, channels=1, batch_size=8, cache="auto", cache_budget=8 * 64)
    streamed = dk.make_dataset(folder, image_size=8, channels=1, batch_size=8, cache="auto", cache_budget=8 * 64 - 1)
    assert sorted(_ids(next(iter(kept)))) == sorted(_ids(next(iter(streamed)))) == list(range(8))
    for path in folder.iterdir():  # the files change on disk after epoch 1
        Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(path)
    assert sorted(_ids(next(iter(kept)))) == list(range(8))  # 8 x 8 x 8 x 1 bytes fit: from memory
    assert np.asarray(next(iter(streamed))).min() == 1.0  # one byte over: read again
    # The default budget keeps a process near 2 GB of RSS (docs/data.md): 10k images at
    # 64x64x3 are cached, 100k (1.2 GB of uint8) are streamed.
    assert dk.data.pipeline._cache_mode("auto", 10_000 * 64 * 64 * 3, dk.data.CACHE_BUDGET_BYTES) == "memory"
    assert dk.data.pipeline._cache_mode("auto", 100_000 * 64 * 64 * 3, dk.data.CACHE_BUDGET_BYTES) == "off"


def test_the_cache_is_complete_after_epoch_1_when_an_epoch_leaves_images_out(tmp_path):
    # 15 images in batches of 8: an epoch takes 8 and leaves 7 of the cache's first pass unread
    # unless the pipeline reads ahead past the pass's end.
    folder = _gray_folder(tmp_path / "f", 15)
    ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=8, seed=0, cache="memory")
    first = [i for batch in ds for i in _ids(batch)]
    for path in folder.iterdir():
        path.unlink()  # anything not cached is gone
    later = [[i for batch in ds for i in _ids(batch)] for _ in range(6)]
    assert len(first) == 8 and all(len(epoch) == 8 for epoch in later)
    assert set().union(*later) == set(range(15))  # all 15 come back from memory


def test_cache_takes_a_mode_or_a_file_path_and_refuses_anything_else(tmp_path):
    folder = _gray_folder(tmp_path / "f", 8)
    for cache in ("memory", "off", True, False, str(tmp_path / "cache" / "x")):
        if isinstance(cache, str) and "cache" in cache:
            (tmp_path / "cache").mkdir()
        ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=4, cache=cache)
        assert sorted(i for b in ds for i in _ids(b)) == list(range(8))
    assert any(name.startswith("x") for name in os.listdir(tmp_path / "cache"))  # the cache file was written
    for bad in ("memroy", "no/such/folder/x", 3):
        with pytest.raises(ValueError, match=rf"cache must be 'auto'.*Received: cache={bad!r}"):
            dk.make_dataset(folder, cache=bad)


def test_a_file_that_fails_while_reading_is_replaced_and_logged_once(tmp_path, caplog):
    folder = _gray_folder(tmp_path / "f", 12)
    ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=4, seed=0, cache="off")
    (folder / "003.png").write_bytes(b"")  # broken after the up-front check
    (folder / "007.png").write_bytes((folder / "008.png").read_bytes()[:60])
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        epochs = [[i for batch in ds for i in _ids(batch)] for _ in range(2)]
    assert [len(e) for e in epochs] == [12, 12]  # the epoch keeps its length...
    assert all(3 not in e and 7 not in e and set(e) == set(range(12)) - {3, 7} for e in epochs)  # ...with others
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert len(logged) == 2  # each file once, not once per epoch
    assert {re.search(r"\d{3}\.png", m).group() for m in logged} == {"003.png", "007.png"}
    assert "2 such file(s) so far" in logged[-1]


@pytest.mark.parametrize("check_group", [64, 3, 2])  # one group; gaps between groups; a gap inside one
def test_files_that_fail_at_the_start_middle_and_end_of_an_epoch_are_each_named(
    tmp_path, caplog, monkeypatch, check_group
):
    monkeypatch.setattr(dk.data, "CHECK_GROUP", check_group)
    folder = _gray_folder(tmp_path / "f", 10)
    ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=2, shuffle=False, cache="off")
    for i in (0, 4, 5, 9):  # first, two in a row, last: every kind of gap in the positions
        (folder / f"{i:03d}.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        ids = [i for batch in ds for i in _ids(batch)]
    assert len(ids) == 10 and set(ids) == {1, 2, 3, 6, 7, 8}  # 10 images from the 6 good files
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert sorted(re.search(r"\d{3}\.png", m).group() for m in logged) == ["000.png", "004.png", "005.png", "009.png"]


def test_a_folder_given_by_a_relative_path_reads_every_sub_folder_and_names_failures_inside_it(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    for sub, ids in (("a", range(0, 4)), (os.path.join("b", "c"), range(4, 8))):
        _gray_folder(tmp_path / "photos" / sub, 8)
        for i in set(range(8)) - set(ids):
            (tmp_path / "photos" / sub / f"{i:03d}.png").unlink()  # ids 0-3 in a/, 4-7 in b/c/
    ds = dk.make_dataset("photos", image_size=8, channels=1, batch_size=2, shuffle=False, cache="off")
    (tmp_path / "photos" / "b" / "c" / "006.png").write_bytes(b"")  # fails while reading
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        ids = [i for batch in ds for i in _ids(batch)]
    assert len(ids) == 8 and set(ids) == set(range(8)) - {6}
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert len(logged) == 1 and f"'photos': {os.path.join('b', 'c', '006.png')} " in logged[0]


def test_files_that_fail_in_a_shuffled_cached_first_pass_are_named_from_that_epochs_order(tmp_path, caplog):
    folder = _gray_folder(tmp_path / "f", 20)
    ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=4, seed=3, cache="memory")
    broken = {2, 11, 19}
    for i in broken:
        (folder / f"{i:03d}.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        first = [i for batch in ds for i in _ids(batch)]
        for path in folder.iterdir():
            path.unlink()  # the later epochs come from the cache
        later = [[i for batch in ds for i in _ids(batch)] for _ in range(2)]
    assert all(len(epoch) == 20 and not broken & set(epoch) for epoch in [first, *later])
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert sorted(re.search(r"\d{3}\.png", m).group() for m in logged) == ["002.png", "011.png", "019.png"]


def test_a_large_folder_is_checked_on_a_sample_before_the_first_batch(tmp_path, monkeypatch):
    folder = _gray_folder(tmp_path / "f", 40)
    for i in range(0, 40, 2):
        (folder / f"{i:03d}.png").write_text("not an image")
    monkeypatch.setattr(dk.data, "SAMPLE_FILES", 10)
    decoded = []
    check = dk.data.folders._check_image
    monkeypatch.setattr(dk.data.folders, "_check_image", lambda path, size: decoded.append(path) or check(path, size))
    with pytest.warns(UserWarning, match=r"Skipped \d+ of 10 image files checked of the 40 .*not images.*checked as they are read"):
        ds = dk.make_dataset(folder, image_size=8, channels=1, batch_size=4, seed=0)
    assert len(decoded) == 10  # only the sample was decoded up front
    bad_in_sample = sum(int(os.path.basename(p)[:3]) % 2 == 0 for p in decoded)
    assert int(ds.cardinality()) == (40 - bad_in_sample) // 4  # the sample's bad files are left out
    ids = [i for batch in ds for i in _ids(batch)]
    assert len(ids) == (40 - bad_in_sample) // 4 * 4 and all(i % 2 == 1 for i in ids)


def test_input_shard_and_bad_shards():
    assert dk.distribute.input_shard(tf.distribute.get_strategy()) is None
    with pytest.raises(ValueError, match=r"Received: shard=\(2, 2\)"):
        dk.make_dataset("digits", shard=(2, 2))


_SHARD_WORKER = """
import json, sys
import tensorflow as tf
import dcgan_keras as dk

strategy = tf.distribute.MultiWorkerMirroredStrategy()
shard = dk.distribute.input_shard(strategy)
ds = dk.make_dataset(sys.argv[1], image_size=8, channels=1, batch_size=8, seed=0, shard=shard)
levels = [int(round((float(v) + 1) * 127.5)) for batch in ds for v in batch[:, 0, 0, 0]]
print(json.dumps({"shard": shard, "batches": int(ds.cardinality()), "ids": [(v - 2) // 5 for v in levels]}))
"""


def test_two_workers_read_disjoint_shares_of_a_folder(tmp_path):
    folder = _gray_folder(tmp_path / "f", 36)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")
        workers.append(subprocess.Popen([sys.executable, "-c", _SHARD_WORKER, str(folder)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    reports = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=180)
            assert worker.returncode == 0, err[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [r["shard"] for r in reports] == [[2, 0], [2, 1]]
    # Both workers run 36 // 8 = 4 global steps; each step takes 4 images from each.
    assert [r["batches"] for r in reports] == [4, 4]
    seen = [set(r["ids"]) for r in reports]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(36))
    assert all(len(s) == 18 for s in seen)


def test_large_jpegs_are_decoded_at_reduced_scale_to_nearly_the_same_images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "f"
    folder.mkdir()
    sides = (40, 90, 200, 700)  # short sides: at image size 32, whole, then 1/2, 1/4 and 1/8
    for side in sides:
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)  # smooth, as photos are at this scale
        Image.fromarray(small).resize((side, side * 4 // 3), Image.BILINEAR).save(folder / f"{side:04d}.jpg", quality=92)
    for side, expected in zip(sides, (40, 45, 50, 88)):  # libjpeg rounds up: 700 / 8 -> 88
        path = tf.constant(str(folder / f"{side:04d}.jpg"))
        assert dk.data.folders._read_rgb(path, image_size=32).shape[1] == expected  # the largest ratio keeping >= 32
        assert dk.data.folders._read_rgb(path).shape[1] == side  # no size given: decoded whole
    ds = dk.make_dataset(str(folder), image_size=32, channels=3, batch_size=4, shuffle=False, cache="off")
    reduced = next(iter(ds)).numpy()
    whole = np.stack([
        dk.data.preprocess(dk.data.folders._read_rgb(tf.constant(str(folder / f"{side:04d}.jpg")))[None], 32, 3)[0].numpy()
        for side in sides
    ])
    assert reduced.shape == whole.shape == (4, 32, 32, 3)
    difference = np.abs(reduced - whole) * 127.5  # in 0-255 levels
    assert difference[0].max() <= 0.5  # too small to reduce: the same decode, rounded to uint8 levels
    assert difference.mean() < 2.0 and difference.max() < 16.0


def test_jpegs_are_decoded_whole_when_no_sampled_image_is_twice_the_image_size(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "f"
    folder.mkdir()
    sampled = random.Random(0).sample(range(2), 1)[0]  # which of the 2 sorted files a 1-file sample takes
    names = {"small": f"{sampled}.jpg", "large": f"{1 - sampled}.jpg"}
    for name, side in (("small", 40), ("large", 700)):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, side), Image.BILINEAR).save(folder / names[name], quality=92)
    whole = dk.data.preprocess(dk.data.folders._read_rgb(tf.constant(str(folder / names["large"])))[None], 32, 3)[0].numpy()

    def large_image(sample_files):
        monkeypatch.setattr(dk.data, "SAMPLE_FILES", sample_files)
        ds = dk.make_dataset(str(folder), image_size=32, channels=3, batch_size=2, shuffle=False, cache="off")
        return next(iter(ds)).numpy()[1 - sampled]

    # The sample holds only the small file: no file is decoded at reduced scale.
    assert np.abs(large_image(1) - whole).max() * 127.5 <= 0.5
    # The sample holds the large file: it is decoded at 1/8 scale, a little different.
    assert np.abs(large_image(2) - whole).max() * 127.5 > 0.5


def test_labelled_loading_and_dedup_refuse_sources_they_cannot_read_and_name_those_they_can(tmp_path):
    from dcgan_keras.experiments import dedup

    with pytest.raises(ValueError, match=r"it is a folder, and this reads 'digits'.*'twemoji'.*'tfds:NAME\[:SPLIT\]'"):
        dk.data.load_labelled(str(tmp_path))
    with pytest.raises(ValueError, match=r"it is a TFDS dataset, and this reads .*existing folder.*\.npy or \.npz"):
        dedup.load_images("tfds:mnist")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"it is a file, and this reads .*existing folder.*\.npy or \.npz"):
        dedup.load_images(tmp_path / "a.png")
    with pytest.raises(TypeError, match=r"'digits', 'twemoji' or 'tfds:NAME\[:SPLIT\]'. Received: source of type int"):
        dk.data.load_labelled(3)
