import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras.keep_best import KeepBest


class _Scripted(keras.callbacks.Callback):
    """Logs a given score per epoch (NaN = not evaluated) and snapshots the generator."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, {}

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights[epoch + 1] = [w.numpy().copy() for w in self.model.generator.weights]


def test_keep_best_saves_the_best_scoring_epoch_and_logs_which_it_was(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    data = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    scripted = _Scripted([5.0, 3.0, math.nan, 4.0])
    history = gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(32), epochs=4, verbose=0, shuffle=False,
                      callbacks=[scripted, KeepBest(tmp_path / "best.keras", monitor="score")])
    assert history.history["best_epoch"] == [1, 2, 2, 2]  # NaN is skipped; 4.0 does not beat 3.0
    best = keras.models.load_model(tmp_path / "best.keras")
    for saved, at_epoch_2, at_epoch_4 in zip(best.generator.weights, scripted.weights[2], scripted.weights[4]):
        np.testing.assert_array_equal(saved.numpy(), at_epoch_2)
    assert not all(np.array_equal(a, b) for a, b in zip(scripted.weights[2], scripted.weights[4]))


def test_keep_best_in_max_mode_keeps_the_highest_score(tiny_config, tmp_path):
    callback = KeepBest(tmp_path / "best.keras", monitor="score", mode="max")
    callback.set_model(dk.DCGAN.from_settings(tiny_config))
    for epoch, score in enumerate([1.0, 3.0, 2.0]):
        logs = {"score": score}
        callback.on_epoch_end(epoch, logs)
    assert (callback.best, callback.best_epoch, logs["best_epoch"]) == (3.0, 2, 2)


def test_keep_best_resumes_from_the_best_epoch_of_the_history_and_keeps_it_against_a_worse_one(tmp_path):
    callback = KeepBest(tmp_path / "best.keras", monitor="score")
    callback.restore({"score": [5.0, math.nan, 3.0, 4.0], "d_loss": [1.0, 1.0, 1.0, 1.0]})
    assert (callback.best, callback.best_epoch) == (3.0, 3)
    logs = {"score": 3.5}
    callback.on_epoch_end(4, logs)  # epoch 5 scores worse: nothing saved, epoch 3 stays the best
    assert logs["best_epoch"] == 3 and not (tmp_path / "best.keras").exists()


def test_keep_best_says_which_callback_is_missing_and_refuses_an_unknown_mode(tmp_path):
    callback = KeepBest(tmp_path / "best.keras", monitor="digit_fd")
    with pytest.raises(KeyError, match="EvaluationCallback.*Received: monitor='digit_fd'"):
        callback.on_epoch_end(0, {"d_loss": 1.0})
    with pytest.raises(ValueError, match="Received: mode='lowest'"):
        KeepBest(tmp_path / "b.keras", monitor="x", mode="lowest")


def test_train_with_keep_best_exports_the_best_epoch_by_the_metric_not_the_last(tiny_config, tmp_path, monkeypatch):
    from dcgan_keras import keep_best

    scores = iter([3.0, 1.0, 2.0])  # epoch 2 is the best; epoch 3 the last
    monkeypatch.setattr(keep_best, "fid", lambda real, images, feature_fn: next(scores))
    digits, _ = dk.load_digits()
    config = tiny_config.replace(learning_rate=0.01)  # big steps: epochs 2 and 3 draw visibly different images
    summary = dk.train(config, tmp_path / "run", dataset=digits[:128], epochs=3, verbose=0,
                       export_dir=tmp_path / "export", keep_best="d_fd", evaluate_every=1)
    assert summary["best_epoch"] == 2
    assert summary["history"]["d_fd"] == [3.0, 1.0, 2.0] and summary["history"]["best_epoch"] == [1, 2, 2]
    z = dk.latent_vectors(8, tiny_config.latent_dim, seed=0)
    exported = dk.load_generator(summary["export"])
    best = dk.load_generator(tmp_path / "run" / "best.keras")
    last = dk.load_generator(tmp_path / "run" / "ckpt.keras")
    as_pixels = lambda g: np.round((np.asarray(g(z)) + 1) * 127.5)  # noqa: E731  (the export serves uint8)
    np.testing.assert_allclose(as_pixels(exported), as_pixels(best), atol=1)
    assert np.abs(as_pixels(exported) - as_pixels(last)).mean() > 2


def test_train_refuses_an_unknown_keep_best_metric_before_writing(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="digit_fd, fid, d_fd.*Received: keep_best='accuracy'"):
        dk.train(tiny_config, tmp_path / "run", keep_best="accuracy")
    assert not (tmp_path / "run").exists()
