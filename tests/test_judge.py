import numpy as np
import pytest

from dcgan_keras.judge import digit_scores, load_digit_classifier


class _FixedLogits:
    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype="float32")

    def __call__(self, images, training=False):  # one batch: fewer than 256 images
        return self.logits[: len(images)]


def test_confident_predictions_spread_over_all_digits_score_ten():
    logits = np.full((100, 10), -20.0)
    logits[np.arange(100), np.arange(100) % 10] = 20.0
    scores = digit_scores(_FixedLogits(logits), np.zeros((100, 32, 32, 1)))
    assert scores["classifier_score"] == pytest.approx(10.0, rel=1e-3)
    assert scores["coverage"] == 10 and scores["confident_fraction"] == 1.0
    assert scores["class_shares"] == [0.1] * 10


def test_collapse_to_one_digit_scores_one_and_covers_one_class():
    logits = np.zeros((50, 10))
    logits[:, 3] = 20.0
    scores = digit_scores(_FixedLogits(logits), np.zeros((50, 32, 32, 1)))
    assert scores["classifier_score"] == pytest.approx(1.0, abs=1e-3)
    assert scores["coverage"] == 1 and scores["class_shares"][3] == 1.0


@pytest.mark.slow
def test_the_judge_recognises_held_out_real_digits(tmp_path):
    model, accuracy = load_digit_classifier(32, cache_dir=str(tmp_path))
    assert accuracy > 0.95
    again, cached = load_digit_classifier(32, cache_dir=str(tmp_path))
    assert cached == accuracy


def test_the_judge_cache_follows_the_environment_variable(monkeypatch, tmp_path):
    from dcgan_keras import judge

    monkeypatch.setenv(judge.CACHE_ENV, str(tmp_path / "cache"))
    assert judge.default_cache_dir() == str(tmp_path / "cache")
    monkeypatch.delenv(judge.CACHE_ENV)
    assert judge.default_cache_dir().endswith(".cache/dcgan_keras")
