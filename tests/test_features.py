"""The discriminator as a feature extractor (dcgan_keras.experiments.features, the `features` CLI)."""

import numpy as np
import pytest

import dcgan_keras as dk
from dcgan_keras.cli import build_parser
from dcgan_keras.data import load_labelled, twemoji_categories
from dcgan_keras.experiments import features

import keras

# The same networks as the `tiny_config` fixture (module-scoped fixtures cannot use it).
TINY = dict(image_size=32, channels=1, latent_dim=16, base_width=8, batch_size=32, seed=1)


@pytest.fixture(scope="module")
def tiny_d():
    keras.utils.set_random_seed(0)
    return dk.build_discriminator(dk.Config(**TINY))


@pytest.fixture(scope="module")
def digits_subset():
    images, labels = dk.load_digits()
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), 30, replace=False) for c in range(10)])
    return images[idx], labels[idx]


def test_conv_activations_are_the_lrelu_layers(tiny_d):
    names = [layer.name for layer in features.conv_activations(tiny_d)]
    assert names == ["down1_lrelu", "down2_lrelu", "down3_lrelu"]


def test_feature_length_matches_layer_widths(tiny_d):
    # 32px, base width 8: 16x16x8, 8x8x16, 4x4x32, each pooled to 4x4.
    assert features.feature_length(tiny_d) == 16 * (8 + 16 + 32)
    extractor = features.feature_extractor(tiny_d)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 1)).astype("float32")
    out = features.extract(extractor, x, batch_size=2)
    assert out.shape == (3, 16 * (8 + 16 + 32))
    assert out.dtype == np.float32
    # A 64px D with base width 4 has four conv layers: 16 * (4 + 8 + 16 + 32).
    d64 = dk.build_discriminator(dk.Config(image_size=64, channels=3, base_width=4))
    assert features.feature_length(d64) == 16 * (4 + 8 + 16 + 32)
    assert features.feature_extractor(d64).output_shape == (None, 16 * (4 + 8 + 16 + 32))


def _numpy_max_pool(maps, grid=4):
    n, h, w, c = maps.shape
    s = h // grid
    return maps.reshape(n, grid, s, grid, s, c).max(axis=(2, 4))


def test_pooling_is_max_over_4x4_grid_cells(tiny_d):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 1)).astype("float32")
    out = features.extract(features.feature_extractor(tiny_d), x)
    offset = 0
    for name in ("down1_lrelu", "down2_lrelu", "down3_lrelu"):
        sub = keras.Model(tiny_d.input, tiny_d.get_layer(name).output)
        maps = np.asarray(sub(x, training=False))
        expected = _numpy_max_pool(maps).reshape(len(x), -1)
        np.testing.assert_allclose(out[:, offset : offset + expected.shape[1]], expected, rtol=1e-5, atol=1e-6)
        offset += expected.shape[1]
    assert offset == out.shape[1]
    # One cell of down1 (16x16 -> 4x4 cells of 4x4): its feature is the max of those 16 values.
    maps = np.asarray(keras.Model(tiny_d.input, tiny_d.get_layer("down1_lrelu").output)(x, training=False))
    cell = maps[0, 4:8, 8:12, 3]  # grid row 1, grid column 2, channel 3
    assert out[0, (1 * 4 + 2) * 8 + 3] == pytest.approx(cell.max(), rel=1e-5)


def test_random_discriminator_has_fresh_weights(tiny_d):
    clone = features.random_discriminator(tiny_d, seed=3)
    assert [l.name for l in clone.layers] == [l.name for l in tiny_d.layers]
    a, b = tiny_d.get_layer("down2").get_weights()[0], clone.get_layer("down2").get_weights()[0]
    assert a.shape == b.shape and not np.allclose(a, b)


def test_linear_svm_separates_separable_data():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (3, 20))
    y = np.repeat(np.arange(3), 60)
    x = centres[y] + rng.normal(0, 0.5, (len(y), 20))
    model, c = features.train_linear_svm(x[::2], y[::2])
    assert c in (0.01, 0.1, 1.0, 10.0)
    assert model.score(x[1::2], y[1::2]) > 0.95
    model, c = features.train_linear_svm(x[::2], y[::2], x[1::2], y[1::2], cs=(1.0,))
    assert c == 1.0 and model.score(x[1::2], y[1::2]) > 0.95


def test_label_draws_pick_n_per_class_and_hold_out_the_rest():
    labels = np.repeat(np.arange(4), 10)
    draws = features.label_draws(labels, labels_per_class=3, draws=2, seed=0)
    assert len(draws) == 2
    for train, test in draws:
        assert np.bincount(labels[train]).tolist() == [3, 3, 3, 3]
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 40
    assert not np.array_equal(draws[0][0], draws[1][0])
    again = features.label_draws(labels, labels_per_class=3, draws=2, seed=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(draws, again))
    with pytest.raises(ValueError):
        features.label_draws(labels, labels_per_class=10)


def test_evaluate_features_on_pixels(digits_subset):
    images, labels = digits_subset
    result = features.evaluate_features(lambda im: im.reshape(len(im), -1) / 255.0, images, labels,
                                        labels_per_class=10, draws=2)
    assert len(result["accuracies"]) == 2 and result["feature_length"] == 28 * 28
    assert 0.5 < result["mean"] <= 1.0  # digits from pixels with 100 labels: well above chance
    assert len(result["balanced_accuracies"]) == 2 and 0.5 < result["balanced_mean"] <= 1.0


def test_protocol_returns_all_rows(tiny_d, digits_subset):
    images, labels = digits_subset
    table = features.features_protocol(tiny_d, images, labels, labels_per_class=20, draws=2,
                                       supervised_epochs=2)
    assert set(table["rows"]) == {"pixels", "random_d", "trained_d", "supervised"}
    assert table["num_train"] == 200 and table["num_test"] == 100
    for row in table["rows"].values():
        accuracies = np.asarray(row["accuracies"])
        assert len(accuracies) == 2
        # Each is a share of the 100 test digits, summarised by its mean and std over the draws.
        np.testing.assert_allclose(accuracies * 100, np.round(accuracies * 100), atol=1e-3)
        assert row["mean"] == pytest.approx(accuracies.mean()) and row["std"] == pytest.approx(accuracies.std())
    # 20 labels per class are enough for the L2-SVM on pixels and on D's features to beat
    # chance (0.1) by far (measured: pixels 0.71, random D 0.87, this untrained D 0.85);
    # the supervised network, 2 epochs on 200 digits, is not trained enough to (0.13).
    for name in ("pixels", "random_d", "trained_d"):
        assert table["rows"][name]["mean"] > 0.5, name
    assert table["rows"]["trained_d"]["feature_length"] == 16 * (8 + 16 + 32)
    assert table["rows"]["pixels"]["feature_length"] == 32 * 32
    text = features.markdown_table(table)
    assert "| raw pixels + L2-SVM |" in text and "supervised" in text


def test_cli_registers_features():
    args = build_parser().parse_args(["features", "--checkpoint", "runs/NAME/ckpt.keras", "--draws", "2"])
    assert args.labels_per_class == 100 and args.draws == 2 and args.dataset == "digits"
    assert callable(args.func)


def test_cli_runs_on_a_saved_tiny_gan(tmp_path, capsys):
    from dcgan_keras.cli import main

    keras.utils.set_random_seed(0)
    gan = dk.DCGAN.from_settings(dk.Config(**TINY))
    gan.compile()
    path = str(tmp_path / "ckpt.keras")
    gan.save(path)
    code = main(["features", "--checkpoint", path, "--labels-per-class", "5", "--draws", "1",
                 "--max-examples", "300", "--no-supervised", "--json", str(tmp_path / "t.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "trained D features" in out and "same D architecture" not in out
    assert (tmp_path / "t.json").exists()
    assert main(["features", "--checkpoint", str(tmp_path / "missing.keras")]) == 2


def test_label_draws_with_groups_take_one_image_per_group_and_keep_its_group_out_of_the_test_set():
    labels = np.repeat([0, 1], 12)
    groups = np.repeat(np.arange(8), 3)  # three variants of each of 8 emoji, 4 emoji per class
    for train, test in features.label_draws(labels, labels_per_class=2, draws=3, seed=0, groups=groups):
        assert np.bincount(labels[train]).tolist() == [2, 2]
        assert len(np.unique(groups[train])) == 4  # distinct groups
        assert not np.isin(groups[test], groups[train]).any()
        assert len(test) == 24 - 4 * 3  # every image of a chosen group is off the test side
    with pytest.raises(ValueError, match=r"classes \[0, 1\] have \[4, 4\].*drop_small_classes"):
        features.label_draws(labels, labels_per_class=4, groups=groups)


def test_drop_small_classes_names_the_classes_left_out():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 6)
    keep, dropped = features.drop_small_classes(labels, labels_per_class=3)
    assert dropped == {1: 2} and keep.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]
    groups = np.array([0, 0, 0, 0, 0, 0, 2, 3, 4, 5, 6, 7, 8, 9])  # class 0: one emoji in 6 variants
    assert features.drop_small_classes(labels, 1, groups)[1] == {0: 1}
    with pytest.raises(ValueError, match="Fewer than 2 classes"):
        features.drop_small_classes(labels, 6)


def test_protocol_on_colour_twemoji_drops_the_small_class_and_beats_chance():
    emoji = dk.load_twemoji()
    images, labels = load_labelled("twemoji")
    rng = np.random.default_rng(0)
    names = twemoji_categories()
    picked = [rng.choice(np.flatnonzero(labels == names.index(c)), 24, replace=False)
              for c in ("Flags", "Smileys & Emotion", "Food & Drink")]
    idx = np.concatenate(picked + [np.flatnonzero(labels == names.index("Component"))])
    keras.utils.set_random_seed(0)
    d = dk.build_discriminator(dk.Config(image_size=64, channels=3, base_width=4))
    table = features.features_protocol(d, images[idx], labels[idx], labels_per_class=8, draws=2,
                                       include_supervised=False, groups=emoji["base"][idx], drop_small=True)
    assert table["dropped_classes"] == {str(names.index("Component")): 5} and table["grouped"]
    assert table["num_train"] == 24 and table["num_test"] == 48
    assert table["rows"]["pixels"]["feature_length"] == 64 * 64 * 3
    for name in ("pixels", "random_d", "trained_d"):
        assert table["rows"][name]["mean"] > 0.6, name  # chance: 1/3
    assert "classes left out" in features.markdown_table(table)
    # 16 test images per class: the balanced accuracy equals the plain one here.
    assert table["rows"]["pixels"]["balanced_mean"] == pytest.approx(table["rows"]["pixels"]["mean"])


def test_balanced_accuracy_weighs_each_class_alike():
    truth = np.array([0] * 8 + [1] * 2)
    predicted = np.zeros(10, int)  # always the majority class: 80% right, half the classes
    assert features._balanced_accuracy(truth, predicted) == 0.5


def test_random_like_of_a_generator_has_fresh_weights_and_the_same_prior(make_tiny_gan):
    from dcgan_keras.experiments._shared import random_like
    from dcgan_keras.sampling import latent_prior

    generator = make_tiny_gan(0).sampler
    fresh = random_like(generator, seed=3)
    assert latent_prior(fresh) == latent_prior(generator)
    assert not np.allclose(fresh.get_weights()[0], generator.get_weights()[0])
    assert [w.shape for w in fresh.get_weights()] == [w.shape for w in generator.get_weights()]
