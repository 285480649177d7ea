"""Evaluation metrics: Fréchet distance, KID, precision/recall, memorisation, the callback and the CLI."""

import math
import os

import numpy as np
import pytest

import dcgan_keras as dk
import keras
from dcgan_keras import judge, metrics
from dcgan_keras.callbacks import EvaluationCallback
from dcgan_keras.distances import (
    FeatureStats,
    frechet_distance,
    kernel_inception_distance,
    memorisation_ratio,
    nearest_neighbours,
    neighbours_figure,
    precision_recall,
)
from dcgan_keras.metrics import frechet_metric


@pytest.fixture(scope="module")
def digits():
    return judge.real_digits(32)


def _projection(dim=32, seed=0):
    """A cheap fixed feature function: a random projection of the pixels."""
    rng = np.random.default_rng(seed)
    matrix = None

    def features(images):
        nonlocal matrix
        x = np.asarray(images, "float64").reshape(len(images), -1)
        if matrix is None:
            matrix = rng.standard_normal((x.shape[1], dim)) / np.sqrt(x.shape[1])
        return x @ matrix

    return features


# -- Fréchet distance and streaming statistics ------------------------------------------


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)
    # Commuting, non-diagonal covariances: the same in a rotated basis.
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    cov1, cov2 = q @ np.diag(var1) @ q.T, q @ np.diag(var2) @ q.T
    assert frechet_distance(q @ mu1, cov1, q @ mu2, cov2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_handles_singular_covariances():
    cov = np.diag([1.0, 0.0])  # rank deficient: sqrtm of the product is singular
    assert frechet_distance([0, 0], cov, [0, 0], cov) == pytest.approx(0.0, abs=1e-3)


def test_streaming_stats_equal_numpy_in_one_go():
    x = np.random.default_rng(1).standard_normal((257, 6)) * [1, 2, 3, 4, 5, 6] + 100.0
    stats = FeatureStats()
    for start in range(0, len(x), 50):
        stats.update(x[start : start + 50])
    assert stats.count == 257
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_fd_is_near_zero_between_halves_and_grows_with_noise(digits):
    features = _projection()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits))
    a, b = digits[order[:2000]], digits[order[2000:4000]]
    distances = [metrics.fid(a, np.clip(b + rng.normal(0, s, b.shape), -1, 1), features) for s in (0.0, 0.2, 0.5, 1.0)]
    assert distances[0] < 0.1 * distances[2]  # ~0 relative to the distance under noise of std 0.5
    assert all(x < y for x, y in zip(distances, distances[1:])), distances
    # A streaming source gives the same statistics as the array.
    ds = dk.make_dataset(a.astype("float32") * 0.5 + 0.5, image_size=32, batch_size=300, shuffle=False, cache=False,
                         drop_remainder=False)
    assert metrics.fid(ds, a, features) == pytest.approx(0.0, abs=1e-6)


# -- KID and precision/recall --------------------------------------------------------------


def test_kid_near_zero_for_the_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    same, same_std = kernel_inception_distance(x, y, num_subsets=5, subset_size=300)
    shifted, _ = kernel_inception_distance(x, y + 1.0, num_subsets=5, subset_size=300)
    assert abs(same) < 3 * same_std + 0.02
    assert shifted > 0.5 and shifted > 20 * abs(same)


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((500, 8))
    same = precision_recall(real, rng.standard_normal((500, 8)))
    assert same["precision"] > 0.85 and same["recall"] > 0.85
    assert precision_recall(real, real) == {"precision": 1.0, "recall": 1.0}
    far = precision_recall(real, rng.standard_normal((500, 8)) + 20.0)
    assert far["precision"] < 0.05 and far["recall"] < 0.05
    # Mode collapse, fakes all near one real point: high precision, low recall.
    collapsed = precision_recall(real, real[:1] + 0.01 * rng.standard_normal((50, 8)))
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.05


# -- nearest neighbours and memorisation -----------------------------------------------


def test_memorisation_ratio_copies_versus_independent_draws(digits):
    train, held_out = digits[:2000], digits[2000:2300]
    copies = train[np.random.default_rng(0).choice(len(train), 300, replace=False)]
    assert memorisation_ratio(copies, train) == pytest.approx(0.0, abs=1e-6)
    assert memorisation_ratio(held_out, train) > 0.85
    assert memorisation_ratio(np.clip(copies + 0.02 * np.random.default_rng(1).standard_normal(copies.shape), -1, 1),
                              train) < 0.3
    assert memorisation_ratio(held_out, train, feature_fn=_projection()) > 0.85


def test_nearest_neighbours_finds_the_copied_images_and_draws_them(digits, tmp_path):
    train = digits[:500]
    picked = np.array([3, 141, 59])
    result = nearest_neighbours(train[picked], train, k=3)
    assert result.indices.shape == result.distances.shape == (3, 3)
    np.testing.assert_array_equal(result.indices[:, 0], picked)
    np.testing.assert_allclose(result.distances[:, 0], 0.0, atol=1e-3)
    assert np.all(np.diff(result.distances, axis=1) >= 0)
    in_features = nearest_neighbours(train[picked], train, k=2, feature_fn=_projection())
    np.testing.assert_array_equal(in_features.indices[:, 0], picked)

    path = neighbours_figure(train[picked], train, result.indices, tmp_path / "nn.png")
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (4 * 34 + 2, 3 * 34 + 2)


# -- feature functions ---------------------------------------------------------------------


def _tiny_judge(image_size=32):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((image_size, image_size, 1)),
        keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu", name="features"),
        keras.layers.Dense(10),
    ], name="tiny_judge")


def test_feature_model_takes_a_named_layer_and_resizes(digits):
    features = metrics.feature_model(_tiny_judge(32), "features", batch_size=7)
    out = features(digits[:10])
    assert out.shape == (10, 8)
    small = features(metrics._adapt_images(digits[:10], (16, 16, 1)).numpy())  # resized back to 32
    assert small.shape == (10, 8)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        metrics.feature_model(_tiny_judge(32), "nope")


def test_inception_features_offline_says_how_to_supply_weights(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(RuntimeError, match="weights=PATH") as info:
        metrics.inception_features()
    assert "feature_model" in str(info.value) and "network" in str(info.value)


# -- callback and CLI ----------------------------------------------------------------------


def test_callback_adds_its_key_to_history(tiny_config, digits, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    metric = frechet_metric(digits[:200], _projection(8))
    callback = EvaluationCallback(metric, name="pixel_fd", every=1, num_images=64, log_dir=tmp_path / "logs")
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = gan.fit(digits[:64], batch_size=32, epochs=2, verbose=0, callbacks=[callback, csv])
    values = history.history["pixel_fd"]
    assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)
    assert "pixel_fd" in open(tmp_path / "log.csv").readline()
    assert os.listdir(tmp_path / "logs")

    # every=2 of 3 epochs: NaN in between, a value at epoch 2 and after the last one.
    skipping = EvaluationCallback(lambda images: float(np.mean(images)), name="mean", every=2, num_images=8)
    history = gan.fit(digits[:32], batch_size=32, epochs=3, verbose=0, callbacks=[skipping])
    values = history.history["mean"]
    assert math.isnan(values[0]) and math.isfinite(values[1]) and math.isfinite(values[2])


def test_evaluate_cli_on_an_exported_model(tiny_config, monkeypatch, tmp_path, capsys):
    from dcgan_keras.cli import main

    model = _tiny_judge(32)
    monkeypatch.setattr(judge, "load_digit_classifier", lambda image_size=32, cache_dir=None: (model, 0.5))
    gan = dk.DCGAN.from_settings(tiny_config)
    path = dk.export_generator(gan, tmp_path / "digits")

    assert main(["evaluate", "--model", path, "--num", "40", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for key in ("classifier_score", "coverage", "class_shares", "digit_fd", "precision", "recall", "memorisation_ratio"):
        assert key in out

    gan.compile()  # an uncompiled DCGAN cannot be saved (get_compile_config needs the optimizers)
    gan.save(tmp_path / "ckpt.keras")
    assert main(["evaluate", "--model", str(tmp_path / "ckpt.keras"), "--num", "40", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["num_images"] == 40 and report["judge_accuracy"] == 0.5
    assert report["digit_fd"] > 0
    # An untrained generator draws near-identical grey images (measured: recall 0.0, memorisation
    # ratio 2.7): they cover none of the real digits and copy none of them.
    assert report["recall"] < 0.05 and report["memorisation_ratio"] > 1.5
    with pytest.raises(SystemExit) as stop:  # argparse's exit: only the bundled sets have judges
        main(["evaluate", "--model", path, "--dataset", "tfds:cifar10"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'tfds:cifar10'" in error and "twemoji" in error
