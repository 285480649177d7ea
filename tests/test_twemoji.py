"""The bundled Twemoji (64x64 colour, with labels) and its judge (dcgan_keras.twemoji_judge)."""

import json

import numpy as np
import pytest

import dcgan_keras as dk
from dcgan_keras import twemoji_judge
from dcgan_keras.cli import main
from dcgan_keras.data import load_labelled, twemoji_categories
from dcgan_keras.distances import frechet_distance
from dcgan_keras.metrics import feature_model, sample_images


def test_make_dataset_twemoji_gives_64x64_colour_batches_in_minus_one_one():
    batch = next(iter(dk.make_dataset("twemoji", image_size=64, batch_size=16)))
    assert batch.shape == (16, 64, 64, 3) and batch.dtype == "float32"
    assert -1.0 <= float(np.min(batch)) < -0.5 and 0.99 <= float(np.max(batch)) <= 1.0  # white background is 1
    assert float(np.std(np.asarray(batch)[..., 0] - np.asarray(batch)[..., 2])) > 0.05  # colour, not grey
    assert next(iter(dk.make_dataset("twemoji", image_size=32, batch_size=4))).shape == (4, 32, 32, 3)


def test_twemoji_labels_are_the_ten_categories_with_their_counts():
    emoji = dk.load_twemoji()
    assert emoji["images"].shape == (3491, 64, 64, 3) and emoji["images"].dtype == np.uint8
    images, labels = load_labelled("twemoji")
    categories = twemoji_categories()
    counts = dict(zip(categories, np.bincount(labels, minlength=len(categories))))
    assert len(categories) == 10 and counts["People & Body"] == 1966 and counts["Component"] == 5
    assert sorted(np.unique(emoji["gender"]).tolist()) == ["", "female", "male", "neutral"]
    assert (np.bincount(emoji["skin_tone"])[1:] == 316).all()  # 316 groups of 5 tones


def test_the_held_out_emoji_are_a_fifth_and_never_share_a_skin_tone_group_with_training():
    train, held = twemoji_judge.held_out_split()
    bases = dk.load_twemoji()["base"]
    assert len(train) + len(held) == 3491 and 0.15 < len(held) / 3491 < 0.25
    assert not set(bases[train]) & set(bases[held])


@pytest.fixture(scope="module")
def quick_judge():
    """The Twemoji judge after 3 epochs (the real one trains 30 and is cached)."""
    model, accuracy = twemoji_judge.train_twemoji_classifier(epochs=3)
    return model, accuracy, feature_model(model, "features")


def test_the_judge_scores_real_emoji_far_better_than_noise(quick_judge):
    real = twemoji_judge.real_twemoji()[0][twemoji_judge.held_out_split()[1]]
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype("float32")
    blank = np.ones_like(real)  # an all-white image, the emoji's background
    scores = {name: twemoji_judge.evaluate_twemoji(images, context=quick_judge)["samples"]
              for name, images in (("real", real), ("noise", noise), ("blank", blank[:100]))}
    assert quick_judge[1] > 0.6  # held-out accuracy above the largest category's share (0.56)
    for bad in ("noise", "blank"):
        assert scores["real"]["twemoji_fd"] < scores[bad]["twemoji_fd"] / 5
        assert scores["real"]["recall"] > scores[bad]["recall"] + 0.5
        assert scores["real"]["category_share_gap"] < scores[bad]["category_share_gap"]
    assert scores["real"]["precision"] > 0.5 > scores["noise"]["precision"]


def test_the_judge_refuses_images_of_another_shape(quick_judge):
    with pytest.raises(ValueError, match=r"64x64 colour.*Received: images of shape \(32, 32, 3\)"):
        twemoji_judge.evaluate_twemoji(np.zeros((4, 32, 32, 3), "float32"), context=quick_judge)


def test_a_generator_is_scored_as_the_mean_over_draws_of_noise_and_images_as_one_draw(quick_judge, tiny_config):
    gan = dk.DCGAN.from_settings(tiny_config.replace(image_size=64, channels=3))
    score = lambda **kw: twemoji_judge.evaluate_twemoji(gan, num=40, context=quick_judge, **kw)["samples"]
    mean, single = score(draws=3), [score(seed=seed, draws=1)["twemoji_fd"] for seed in range(3)]
    assert mean["draws"] == 3 and mean["num_images"] == 40
    assert mean["twemoji_fd"] == pytest.approx(np.mean(single))
    assert mean["twemoji_fd_sd"] == pytest.approx(np.std(single, ddof=1)) and mean["twemoji_fd_sd"] > 0
    _, _, features = quick_judge
    pooled = features(np.concatenate([sample_images(gan, 40, seed) for seed in range(3)]))
    real = features(twemoji_judge.real_twemoji()[0][twemoji_judge.held_out_split()[0]])
    assert mean["twemoji_fd_pooled"] == pytest.approx(frechet_distance(
        real.mean(axis=0), np.cov(real, rowvar=False), pooled.mean(axis=0), np.cov(pooled, rowvar=False)), rel=1e-4)
    assert "twemoji_fd_pooled" not in score(draws=1)
    assert score()["draws"] == twemoji_judge.DEFAULT_DRAWS
    images = np.zeros((8, 64, 64, 3), "float32")
    assert twemoji_judge.evaluate_twemoji(images, context=quick_judge)["samples"]["draws"] == 1
    with pytest.raises(ValueError, match=r"1 for images.*Received: draws=2 for images"):
        twemoji_judge.evaluate_twemoji(images, context=quick_judge, draws=2)


def test_evaluate_twemoji_prints_the_mean_of_the_draws_beside_the_held_out_emoji(
        quick_judge, tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(twemoji_judge, "judge_context", lambda: quick_judge)
    path = str(tmp_path / "g.keras")
    dk.DCGAN.from_settings(tiny_config.replace(image_size=64, channels=3)).generator.save(path)
    assert main(["evaluate", "--model", path, "--dataset", "twemoji", "--num", "20", "--draws", "2"]) == 0
    table = capsys.readouterr().out
    assert "20 x 2 draws" in table and "672" in table
    fd, sd = (next(line for line in table.splitlines() if line.startswith(key + " ")).split()[1:]
              for key in ("twemoji_fd", "twemoji_fd_sd"))
    assert float(fd[0]) > 10 * float(fd[1]) and len(sd) == 1  # far from real; the real emoji have no spread
    assert len(next(line for line in table.splitlines() if line.startswith("twemoji_fd_pooled ")).split()) == 2
    assert main(["evaluate", "--model", path, "--dataset", "twemoji", "--num", "20", "--draws", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["draws"] == 3
    assert main(["evaluate", "--model", path, "--draws", "2"]) == 2  # the digits' judge takes one draw
    assert "only --dataset twemoji averages draws. Received: --draws 2 --dataset digits" in capsys.readouterr().err
