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


def test_a_judge_trained_one_epoch_scores_held_out_real_digits_far_above_noise():
    # The judge's own training and scoring code, on a judge small enough for every run:
    # 16x16 digits, one epoch (seconds). Measured: accuracy 0.91; held-out digits: digit_fd
    # 0.78, classifier score 7.7, all 10 digits covered; uniform noise: 153, 1.3, 4.
    from dcgan_keras.data import load_digits, preprocess
    from dcgan_keras.judge import digit_judge_report, train_digit_classifier
    from dcgan_keras.metrics import feature_model

    model, accuracy = train_digit_classifier(image_size=16, epochs=1, held_out=500, seed=0)
    assert accuracy > 0.8
    images, _ = load_digits()
    order = np.random.default_rng(0).permutation(len(images))  # train_digit_classifier's split
    held_out = preprocess(images[order][-500:][..., None], 16, 1).numpy()
    noise = np.random.default_rng(1).uniform(-1, 1, held_out.shape).astype("float32")
    context = (model, accuracy, feature_model(model, "features"))
    real, fake = (digit_judge_report(x, context=context) for x in (held_out, noise))
    assert real["digit_fd"] < 5 < 50 < fake["digit_fd"]
    assert real["classifier_score"] > 5 > 2 > fake["classifier_score"]
    assert real["coverage"] == 10 and fake["coverage"] < 10
    assert real["mean_confidence"] > fake["mean_confidence"] + 0.2


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
