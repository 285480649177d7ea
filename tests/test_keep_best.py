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
    gan = dk.DCGAN.from_paper_config(tiny_config)
    gan.compile()
    data = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    scripted = _Scripted([5.0, 3.0, math.nan, 4.0])
    history = gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(32), epochs=4, verbose=0,
                      callbacks=[scripted, KeepBest(tmp_path / "best.keras", monitor="score")])
    assert history.history["best_epoch"] == [1, 2, 2, 2]  # NaN is skipped; 4.0 does not beat 3.0
    best = keras.models.load_model(tmp_path / "best.keras")
    for saved, at_epoch_2, at_epoch_4 in zip(best.generator.weights, scripted.weights[2], scripted.weights[4]):
        np.testing.assert_array_equal(saved.numpy(), at_epoch_2)
    assert not all(np.array_equal(a, b) for a, b in zip(scripted.weights[2], scripted.weights[4]))


def test_keep_best_in_max_mode_keeps_the_highest_score(tiny_config, tmp_path):
    callback = KeepBest(tmp_path / "best.keras", monitor="score", mode="max")
    callback.set_model(dk.DCGAN.from_paper_config(tiny_config))
    for epoch, score in enumerate([1.0, 3.0, 2.0]):
        logs = {"score": score}
        callback.on_epoch_end(epoch, logs)
    assert (callback.best, callback.best_epoch, logs["best_epoch"]) == (3.0, 2, 2)


def test_keep_best_says_which_callback_is_missing_and_refuses_an_unknown_mode(tmp_path):
    callback = KeepBest(tmp_path / "best.keras", monitor="digit_fd")
    with pytest.raises(KeyError, match="EvaluationCallback.*Received: monitor='digit_fd'"):
        callback.on_epoch_end(0, {"d_loss": 1.0})
    with pytest.raises(ValueError, match="Received: mode='lowest'"):
        KeepBest(tmp_path / "b.keras", monitor="x", mode="lowest")
