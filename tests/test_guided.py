"""Guided backpropagation (dcgan_keras.experiments.guided, the `guided` CLI)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras.cli import main
from dcgan_keras.experiments import features, guided

import keras
from keras import layers



@pytest.fixture(scope="module")
def tiny_gan(make_tiny_gan):
    return make_tiny_gan(0)


@pytest.fixture(scope="module")
def digits32():
    images, _ = dk.load_digits()
    idx = np.random.default_rng(0).choice(len(images), 60, replace=False)
    return np.asarray(dk.data.preprocess(tf.constant(images[idx, :, :, None]), 32, 1))


def _chain(first_kernel, second_kernel, last=None):
    inputs = keras.Input((1, 1, 2), name="images")
    x = layers.Conv2D(2, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(first_kernel),
                      name="conv1")(inputs)
    x = layers.ReLU(name="relu1")(x)
    x = layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(second_kernel),
                      name="conv2")(x)
    if last is not None:
        x = last(x)
    return keras.Model(inputs, x)


def test_guided_rectifier_passes_only_positive_inputs_with_positive_gradients():
    x = tf.constant([-1.0, 2.0, 3.0, -0.5, 0.5])
    upstream = tf.constant([1.0, 1.0, -1.0, -1.0, 2.0])
    leaky = layers.LeakyReLU(0.2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = guided.guided_rectifier(leaky)(x)
        plain = leaky(x)
        loss, plain_loss = tf.reduce_sum(upstream * y), tf.reduce_sum(upstream * plain)
    np.testing.assert_allclose(y.numpy(), plain.numpy())  # the forward pass is unchanged
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [0.0, 1.0, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(tape.gradient(plain_loss, x).numpy(), [0.2, 1.0, -1.0, -0.2, 2.0], rtol=1e-6)


def test_guided_equals_plain_gradient_when_every_rectifier_sees_positive_inputs_and_gradients():
    rng = np.random.default_rng(0)
    model = _chain(rng.uniform(0.1, 1.0, (1, 1, 2, 2)), rng.uniform(0.1, 1.0, (1, 1, 2, 1)),
                   last=layers.LeakyReLU(0.2, name="out"))
    x = rng.uniform(0.1, 1.0, (5, 1, 1, 2)).astype("float32")
    g = guided.guided_backprop(model, x, "out", 0)
    p = guided.guided_backprop(model, x, "out", 0, guided=False)
    assert np.abs(p).min() > 0
    np.testing.assert_allclose(g, p, rtol=1e-6)


def test_guided_zeroes_paths_with_negative_gradient_or_negative_input():
    # conv1 = identity, conv2 reads unit 0 with +1 and unit 1 with -1.
    model = _chain(np.eye(2).reshape(1, 1, 2, 2), np.array([1.0, -1.0]).reshape(1, 1, 2, 1))
    x = np.array([[[[0.5, 0.7]]], [[[-0.5, 0.7]]]], dtype="float32")
    plain = guided.guided_backprop(model, x, "conv2", 0, guided=False).reshape(2, 2)
    guided_grad = guided.guided_backprop(model, x, "conv2", 0).reshape(2, 2)
    np.testing.assert_allclose(plain, [[1.0, -1.0], [0.0, -1.0]])
    np.testing.assert_allclose(guided_grad, [[1.0, 0.0], [0.0, 0.0]])


def test_guided_backprop_on_a_discriminator_leaves_it_unchanged(tiny_gan, digits32):
    d = tiny_gan.discriminator
    before = [w.copy() for w in d.get_weights()]
    x = digits32[:8]
    act = guided.guided_forward(d, tf.constant(x), "down3_lrelu")
    np.testing.assert_allclose(act.numpy(), guided.layer_activations(d, x, "down3_lrelu"), atol=1e-6)
    g = guided.guided_backprop(d, x, None, channel=3)
    p = guided.guided_backprop(d, x, None, channel=3, guided=False)
    assert g.shape == x.shape and np.abs(g).max() > 0
    assert not np.allclose(g, p)
    # The guided rule only removes paths: it is never non-zero where no gradient flows at all.
    assert (np.abs(g) > 0).mean() <= (np.abs(p) > 0).mean()
    for w0, w1 in zip(before, d.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert guided.resolve_layer(d, None).name == "down3_lrelu"
    assert guided.resolve_layer(d, 0).name == "down1_lrelu"
    with pytest.raises(ValueError, match="no layer named"):
        guided.guided_backprop(d, x, "nope", 0)
    with pytest.raises(ValueError, match="channel"):
        guided.guided_backprop(d, x, None, channel=999)
    with pytest.raises(ValueError, match="shape"):
        guided.guided_backprop(d, x[:, :16], None, 0)


def test_top_activating_returns_the_largest_peaks(tiny_gan, digits32):
    d = tiny_gan.discriminator
    top = guided.top_activating(d, digits32, "down2_lrelu", k=4, channels=[0, 5])
    act = guided.layer_activations(d, digits32, "down2_lrelu")
    peaks = act.reshape(len(act), -1, act.shape[-1]).max(axis=1)
    for row, channel in enumerate([0, 5]):
        expected = np.sort(peaks[:, channel])[::-1][:4]
        np.testing.assert_allclose(top["values"][row], expected)
        np.testing.assert_allclose(peaks[top["indices"][row], channel], expected)
    assert top["indices"].shape == (2, 4) and top["layer"] == "down2_lrelu"
    with pytest.raises(ValueError, match="k must be"):
        guided.top_activating(d, digits32, None, k=0)


def test_guided_figure_compares_trained_and_random(tiny_gan, digits32):
    from matplotlib.figure import Figure

    fig = guided.guided_figure(tiny_gan.discriminator, None, digits32, channels=[0, 1], k=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "trained" in fig.axes[0].get_title() and "random" in fig.axes[1].get_title()
    random_d = features.random_discriminator(tiny_gan.discriminator, seed=0)
    assert not np.allclose(random_d.get_weights()[0], tiny_gan.discriminator.get_weights()[0])
    shown = guided.to_display(np.array([[[[2.0]], [[-4.0]]]]))
    np.testing.assert_allclose(shown.ravel(), [0.5, -1.0])


def test_guided_cli_needs_a_checkpoint_not_a_saved_model(tiny_gan, tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt.keras")
    tiny_gan.save(ckpt)
    export = dk.export_generator(tiny_gan, tmp_path / "export")
    assert main(["guided", "--checkpoint", export, "--out", str(tmp_path / "g")]) == 2
    assert "holds only the generator" in capsys.readouterr().err
    out = tmp_path / "guided"
    assert main(["guided", "--checkpoint", ckpt, "--max-images", "50", "--channels", "0,1",
                 "--k", "3", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert os.path.getsize(summary["figure"]) > 1000 and summary["layer"] == "down3_lrelu"
    assert sorted(summary["top_images"]) == ["0", "1"] and len(summary["top_images"]["0"]) == 3


def test_label_purity_is_the_share_of_a_maps_top_images_with_its_commonest_label():
    labels = np.array(["a", "a", "b", "c", "a", "b"])
    top = np.array([[0, 1, 4], [2, 5, 0], [1, 2, 3]])
    np.testing.assert_allclose(guided.label_purity(top, labels), [1.0, 2 / 3, 1 / 3])


def test_guided_backprop_of_a_colour_discriminator_keeps_the_channels():
    import keras

    keras.utils.set_random_seed(0)
    d = dk.build_discriminator(dk.Config(image_size=64, channels=3, base_width=4))
    images = np.random.default_rng(0).uniform(-1, 1, (3, 64, 64, 3)).astype("float32")
    maps = guided.guided_backprop(d, images, None, channel=0)
    assert maps.shape == (3, 64, 64, 3) and np.abs(maps).sum() > 0
    panel = guided.guided_panel(d, images, None, channels=[0, 1], k=2, with_inputs=True)
    assert panel["grid"].shape[-1] == 3


def test_experiments_take_shared_helpers_from_shared_not_from_each_other():
    import ast
    from pathlib import Path

    import dcgan_keras.experiments as experiments
    from dcgan_keras.experiments import _shared, ablation

    folder = Path(experiments.__file__).parent
    experiment_modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "_shared"}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("dcgan_keras.experiments"):
                continue
            parts = node.module.split(".")
            imported = parts[2:3] if len(parts) > 2 else [a.name for a in node.names]
            assert not set(imported) & experiment_modules, f"{path.name} imports {imported} from {node.module}"
    # The documented names still work, and are the shared ones.
    assert features.conv_activations is _shared.conv_activations
    assert guided.resolve_layer is _shared.resolve_layer is ablation.resolve_layer
    assert features.random_discriminator is _shared.random_like
