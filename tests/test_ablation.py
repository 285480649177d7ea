"""Filter ablation, "forgetting to draw" (dcgan_keras.experiments.ablation, the `ablate` CLI)."""

import json
import os

import numpy as np
import pytest

import dcgan_keras as dk
from dcgan_keras.cli import main
from dcgan_keras.experiments import ablation

import keras



@pytest.fixture(scope="module")
def gan(make_tiny_gan):
    gan = make_tiny_gan(0)
    # Untrained, the generator draws images within 1e-4 of grey; a larger output kernel makes
    # them visible (and the SavedModel's uint8 pixels tell them apart).
    for g in (gan.generator, gan.sampler):
        g.get_layer("up3").kernel.assign(g.get_layer("up3").kernel * 3000.0)
    return gan


@pytest.fixture(scope="module")
def z():
    return dk.latent_vectors(6, 16, seed=0)


def _draw(model, z):
    return np.asarray(model(z, training=False))


def test_feature_layers_and_default(gan):
    g = gan.generator
    assert ablation.feature_layers(g) == ["project_relu", "up1_relu", "up2_relu"]
    assert ablation.num_filters(g) == 8 and ablation.num_filters(g, "up1_relu") == 16
    assert ablation.num_filters(g, "up1") == 16 and ablation.num_filters(g, 0) == 32
    with pytest.raises(ValueError, match="Cannot ablate"):
        ablation.ablate_filters(g, "tanh", [0])
    with pytest.raises(ValueError, match="must be in 0..7"):
        ablation.ablate_filters(g, None, [8])


def test_ablating_no_filters_changes_nothing_and_all_filters_changes_the_output(gan, z):
    g = gan.generator
    weights = [w.copy() for w in g.get_weights()]
    reference = _draw(g, z)
    same = ablation.ablate_filters(g, "up2_relu", [])
    assert same is not g and same.get_layer("up3").kernel is not g.get_layer("up3").kernel
    np.testing.assert_array_equal(_draw(same, z), reference)
    blank = ablation.ablate_filters(g, "up2_relu", range(8))
    out = _draw(blank, z)
    assert reference.std() > 0.05 and np.abs(out - reference).mean() > 0.05
    # With every map of the last hidden layer gone, only the output bias is left: one flat image.
    np.testing.assert_allclose(out, np.tanh(g.get_layer("up3").bias.numpy()[0]) * np.ones_like(out), atol=1e-6)
    assert blank.ablated == {"layer": "up2_relu", "filters": list(range(8))}
    # The generator passed in is untouched.
    for w0, w1 in zip(weights, g.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(_draw(g, z), reference)


def test_ablation_equals_zeroing_the_feature_maps(gan, z):
    g = gan.generator
    filters = [1, 4, 6]
    maps = ablation.feature_maps(g, z, "up2_relu")
    maps[..., filters] = 0.0
    expected = np.asarray(g.get_layer("tanh")(g.get_layer("up3")(maps)))
    np.testing.assert_allclose(_draw(ablation.ablate_filters(g, "up2_relu", filters), z), expected, atol=1e-5)
    # Also in the middle of the network (project_relu feeds a transposed convolution too).
    partial = _draw(ablation.ablate_filters(g, "project_relu", [0, 3]), z)
    assert 0 < np.abs(partial - _draw(g, z)).mean()


def test_fit_box_filters_returns_positive_weight_maps(gan):
    fit = ablation.fit_box_filters(gan.generator, "up2_relu", box=(0, 0, 16, 32), num_samples=20)
    w = fit["weights"]
    assert w.shape == (8,) and fit["layer"] == "up2_relu" and fit["z"].shape == (20, 16)
    assert sorted(fit["filters"]) == sorted(np.flatnonzero(w > 0).tolist())
    assert list(w[fit["filters"]]) == sorted(w[fit["filters"]], reverse=True)
    assert fit["positives"] == pytest.approx(0.5)
    assert 0.5 <= fit["accuracy"] <= 1.0
    limited = ablation.fit_box_filters(gan.generator, "up2_relu", box=(0, 0, 16, 32), num_samples=20,
                                       max_filters=1)
    assert limited["filters"] == fit["filters"][:1]
    with pytest.raises(ValueError, match="covers every"):
        ablation.fit_box_filters(gan.generator, box=(0, 0, 32, 32), num_samples=4)
    with pytest.raises(ValueError, match="box must"):
        ablation.fit_box_filters(gan.generator, box=(10, 0, 5, 32), num_samples=4)


def test_ablation_change_measures_inside_and_outside():
    before = -np.ones((2, 8, 8, 1), "float32")
    after = before.copy()
    after[:, 2:4, 2:6] = 1.0  # changes only inside the box
    change = ablation.ablation_change(before, after, box=(2, 2, 4, 6))
    assert change["change_inside"] == pytest.approx(2.0) and change["change_outside"] == 0.0
    assert change["ratio"] == float("inf")
    assert change["brightness_inside_after"] == pytest.approx(1.0)
    assert change["brightness_outside_before"] == change["brightness_outside_after"] == 0.0
    fig = ablation.ablation_figure(before, after, box=(2, 2, 4, 6))
    assert len(fig.axes) == 4 and len(fig.axes[0].patches) == 1


def test_saved_model_generator_can_be_ablated_and_the_cli_runs(gan, z, tmp_path, capsys):
    export = dk.export_generator(gan, tmp_path / "export")
    rebuilt = ablation.load_keras_generator(export)
    np.testing.assert_allclose(_draw(rebuilt, z), _draw(gan.sampler, z), atol=1e-4)
    ckpt = str(tmp_path / "ckpt.keras")
    gan.save(ckpt)
    out = tmp_path / "abl"
    saved = str(tmp_path / "ablated.keras")
    assert main(["ablate", "--model", export, "--filters", "0,2", "--box", "8,8,24,24",
                 "--num-images", "4", "--out", str(out), "--save", saved]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["filters"] == [0, 2] and summary["layer"] == "up2_relu" and summary["num_filters"] == 8
    assert summary["change"]["change_inside"] > 0 and os.path.getsize(summary["figure"]) > 1000
    reloaded = keras.models.load_model(saved)
    np.testing.assert_allclose(_draw(reloaded, z), _draw(ablation.ablate_filters(rebuilt, None, [0, 2]), z),
                               atol=1e-5)
    assert main(["ablate", "--model", ckpt, "--box", "0,0,16,32", "--num-samples", "10",
                 "--num-images", "4", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "regression_balanced_accuracy" in summary and "ratio" in summary["change"]
    assert main(["ablate", "--model", ckpt, "--out", str(out)]) == 2
    assert "--filters" in capsys.readouterr().err


# -- forgetting to draw a concept that a classifier labels (Twemoji) ------------------------------


def _two_map_generator():
    """z (2) -> two 4x4 feature maps, relu(z0) and relu(z1) everywhere -> a 1x1 convolution to 4x4x3.

    Map 0 darkens the image (draws the "object"), map 1 changes nothing.
    """
    import keras
    from keras import layers

    inputs = keras.Input((2,), name="z")
    kernel = np.zeros((2, 32), "float32")
    kernel[0, 0::2] = 1.0  # map 0 = z0 at every position
    kernel[1, 1::2] = 1.0  # map 1 = z1
    x = layers.Dense(32, use_bias=False, kernel_initializer=keras.initializers.Constant(kernel), name="project")(inputs)
    x = layers.Reshape((4, 4, 2))(x)
    x = layers.ReLU(name="maps_relu")(x)
    conv = np.zeros((1, 1, 2, 3), "float32")
    conv[0, 0, 0, :] = -2.0
    x = layers.Conv2D(3, 1, kernel_initializer=keras.initializers.Constant(conv),
                      bias_initializer=keras.initializers.Constant(1.0), name="to_rgb")(x)
    return keras.Model(inputs, x, name="generator")


def _dark_is_concept(images):
    dark = (images.reshape(len(images), -1).mean(axis=1) < 0.5).astype("float64")
    return np.stack([1 - dark, dark], axis=1)


def test_fit_concept_filters_finds_the_map_that_draws_the_labelled_object_and_dropping_it_removes_it():
    generator = _two_map_generator()
    fit = ablation.fit_concept_filters(generator, _dark_is_concept, concept=1, num_samples=60, seed=0,
                                       max_filters=1)
    assert fit["layer"] == "maps_relu" and fit["filters"] == [0]
    assert fit["weights"][0] > abs(fit["weights"][1]) and fit["accuracy"] > 0.95
    z = dk.latent_vectors(200, 2, seed=5)
    before = _dark_is_concept(np.asarray(generator(z))).argmax(axis=1)
    after = _dark_is_concept(np.asarray(ablation.ablate_filters(generator, "maps_relu", [0])(z))).argmax(axis=1)
    control = _dark_is_concept(np.asarray(ablation.ablate_filters(generator, "maps_relu", [1])(z))).argmax(axis=1)
    assert fit["concept_samples"] > 0 and before.sum() > 0
    assert ablation.concept_removal(before, after, 1)["removed"] == 1.0
    assert ablation.concept_removal(before, control, 1)["removed"] == 0.0
    with pytest.raises(ValueError, match="None of the 60 samples is classified 1"):
        ablation.fit_concept_filters(generator, lambda x: np.tile([1.0, 0.0], (len(x), 1)), 1, num_samples=60)


def test_concept_removal_counts_what_disappeared_appeared_and_stayed():
    before = np.array([2, 2, 2, 2, 0, 1, 1, 0])
    after = np.array([2, 0, 1, 1, 0, 1, 2, 3])
    scores = ablation.concept_removal(before, after, 2)
    assert scores["share_before"] == 0.5 and scores["share_after"] == 0.25
    assert scores["removed"] == 0.75 and scores["count_before"] == 4
    assert scores["appeared"] == 0.25 and scores["others_kept"] == 0.5  # of 0, 1, 1, 0: 1 -> 2 and 0 -> 3 changed
    with pytest.raises(ValueError, match="one length"):
        ablation.concept_removal(before, after[:3], 2)


def test_foreground_mask_marks_what_is_drawn_on_white():
    images = np.ones((1, 2, 2, 3), "float32")
    images[0, 0, 0] = [1.0, -1.0, 1.0]  # magenta: mean 1/3
    images[0, 1, 1] = [0.95, 0.95, 0.95]  # near white
    np.testing.assert_array_equal(ablation.foreground_mask(images)[0], [[True, False], [False, False]])
