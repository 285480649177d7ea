"""Latent space walks and vector arithmetic (dcgan_keras.experiments.latent, the walk/arithmetic CLI)."""

import json

import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
from dcgan_keras.cli import main
from dcgan_keras.experiments import latent




@pytest.fixture(scope="module")
def untrained(make_tiny_gan):
    return make_tiny_gan(0)


@pytest.fixture(scope="module")
def trained(make_tiny_gan):
    gan = make_tiny_gan(1)
    gan.fit(dk.make_dataset("digits", image_size=32, batch_size=64, seed=0), epochs=2, verbose=0, shuffle=False)
    return gan


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    path = dk.export_generator(trained, tmp_path_factory.mktemp("export"))
    return dk.load_generator(path)


def test_slerp_stays_on_the_gaussian_shell_while_lerp_cuts_through_it():
    z0, z1 = dk.latent_vectors(2, 100, seed=0)
    for f in (latent.slerp, latent.lerp):
        assert np.array_equal(f(z0, z1, 0.0), z0) and np.array_equal(f(z0, z1, 1.0), z1)
        path = f(z0, z1, np.linspace(0, 1, 5))
        assert path.shape == (5, 100) and path.dtype == np.float32
        assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    ends = (np.linalg.norm(z0) + np.linalg.norm(z1)) / 2
    assert abs(np.linalg.norm(latent.slerp(z0, z1, 0.5)) / ends - 1) < 0.1
    # Two random 100-d Gaussians are nearly orthogonal: the straight midpoint has norm ~ 1/sqrt(2).
    assert abs(np.linalg.norm(latent.lerp(z0, z1, 0.5)) / ends - 1 / np.sqrt(2)) < 0.1
    norms = np.linalg.norm(latent.slerp(z0, z1, np.linspace(0, 1, 9)), axis=1)
    assert norms.min() > 0.9 * ends
    assert np.allclose(latent.slerp(z0, 2 * z0, 0.5), 1.5 * z0)  # parallel: falls back to lerp
    with pytest.raises(ValueError, match="method"):
        latent.interpolate(None, z0, z1, method="cubic")


def test_smoothness_is_one_for_even_steps_and_large_for_a_jump():
    ramp = np.linspace(-1, 1, 10, dtype="float32")[:, None, None, None] * np.ones((10, 4, 4, 1), "float32")
    assert latent.smoothness(ramp)["smoothness"] == pytest.approx(1.0, abs=1e-5)
    jump = ramp.copy()
    jump[5:] += 3.0
    scores = latent.smoothness(jump, features=lambda x: x.reshape(len(x), -1)[:, :2])
    assert scores["smoothness"] > 5 and scores["feature_smoothness"] > 5
    assert scores["steps"] == 9 and scores["max_step"] > scores["mean_step"]
    assert latent.smoothness(np.zeros((3, 4, 4, 1)))["smoothness"] == 1.0
    assert latent.smoothness(ramp, closed=True)["steps"] == 10


def test_walks_change_less_evenly_after_training(untrained, trained):
    images, path = latent.walk_loop(trained.sampler, num_points=4, steps=8, seed=3)
    assert images.shape == (32, 32, 32, 1) and path.shape == (32, 16)
    assert images.min() >= -1 and images.max() <= 1
    points = trained.noise(4, seed=3)
    assert np.allclose(path[::8], points)  # the loop visits each point at its segment's start
    np.testing.assert_allclose(images[8], trained.generate(z=points[1:2])[0], atol=1e-5)
    before = [latent.smoothness(latent.walk_loop(untrained.sampler, seed=s)[0], closed=True)["smoothness"]
              for s in range(4)]
    after = [latent.smoothness(latent.walk_loop(trained.sampler, seed=s)[0], closed=True)["smoothness"]
             for s in range(4)]
    # An untrained generator's images barely change along the walk, and evenly; after two
    # epochs they change more where a digit turns into another (measured, mean of the largest
    # step over the mean step: untrained 1.49; trained 1.67, and 1.94 and 1.57 from other seeds).
    assert np.mean(after) > np.mean(before) + 0.05
    strip = latent.interpolate(trained.sampler, points[0], points[1], steps=6)
    assert strip.shape == (6, 32, 32, 1)
    np.testing.assert_allclose(strip[-1], images[8], atol=1e-5)


def test_arithmetic_concept_vectors_and_noise_fan(trained):
    gen = trained.sampler
    z = trained.noise(12, seed=5)
    assert np.allclose(latent.concept_vector(z[:3]), z[:3].mean(axis=0))
    same = latent.arithmetic(gen, plus=z[:3], minus=z[:3], base=z[3:6])
    assert np.array_equal(same["z"], latent.concept_vector(z[3:6]))
    np.testing.assert_allclose(same["image"], trained.generate(z=z[3:6].mean(0, keepdims=True))[0], atol=1e-5)
    result = latent.arithmetic(gen, plus=[z[:3], z[9:12]], minus=z[6:9], base=z[3:6], seed=1)
    expected = z[3:6].mean(0) + z[:3].mean(0) + z[9:12].mean(0) - z[6:9].mean(0)
    np.testing.assert_allclose(result["z"], expected, atol=1e-5)
    assert result["images"].shape == (9, 32, 32, 1) and result["zs"].shape == (9, 16)
    noise = result["zs"][1:] - result["z"]
    assert np.abs(noise).max() <= 0.25 and np.abs(noise).max() > 0.1
    flat = result["images"].reshape(9, -1)
    assert len({row.tobytes() for row in flat}) == 9  # nine distinct images
    np.testing.assert_allclose(result["images"][0], trained.generate(z=expected[None])[0], atol=1e-4)


def test_along_direction_scale_zero_is_the_image_of_z(trained):
    gen = trained.sampler
    z = trained.noise(7, seed=2)
    turn = latent.direction(z[:3], z[3:6])
    assert np.allclose(turn, z[3:6].mean(0) - z[:3].mean(0))
    strip = latent.along_direction(gen, z[6], turn)
    assert strip.shape == (9, 32, 32, 1)
    np.testing.assert_allclose(strip[4], trained.generate(z=z[6:7])[0], atol=1e-5)
    assert not np.allclose(strip[0], strip[8])
    ink = latent.ink_mass(np.stack([-np.ones((4, 4, 1)), np.ones((4, 4, 1)), np.zeros((4, 4, 1))]))
    assert np.allclose(ink, [0.0, 1.0, 0.5])


def test_everything_works_with_a_savedmodel_export(trained, exported):
    keras_gen, saved = trained.sampler, exported
    assert latent.latent_size(saved) == 16
    tol = 1 / 127.5 + 1e-5  # the export rounds pixels to uint8
    z = trained.noise(9, seed=4)
    np.testing.assert_allclose(latent.interpolate(saved, z[0], z[1], steps=5),
                               latent.interpolate(keras_gen, z[0], z[1], steps=5), atol=tol)
    images, path = latent.walk_loop(saved, num_points=3, steps=4, seed=1)
    ref, ref_path = latent.walk_loop(keras_gen, num_points=3, steps=4, seed=1)
    assert images.shape == (12, 32, 32, 1) and np.array_equal(path, ref_path)
    np.testing.assert_allclose(images, ref, atol=tol)
    assert latent.smoothness(images, closed=True)["smoothness"] == pytest.approx(
        latent.smoothness(ref, closed=True)["smoothness"], rel=0.05)
    result = latent.arithmetic(saved, plus=z[:3], minus=z[3:6], base=z[6:9])
    np.testing.assert_allclose(result["images"],
                               latent.arithmetic(keras_gen, plus=z[:3], minus=z[3:6], base=z[6:9])["images"],
                               atol=tol)
    strip = latent.along_direction(saved, z[0], latent.direction(z[:3], z[3:6]))
    np.testing.assert_allclose(strip[4], keras_gen(z[:1], training=False).numpy()[0], atol=tol)


def test_walk_and_arithmetic_commands_write_their_files(untrained, exported, tmp_path, capsys):
    ckpt = tmp_path / "ckpt.keras"
    untrained.save(ckpt)
    out = tmp_path / "walks"
    assert main(["walk", "--model", str(ckpt), "--walks", "2", "--points", "2", "--steps", "4",
                 "--seed", "0", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["smoothness"]) == 2 and report["frames"] == 8
    assert Image.open(out / "walks_slerp.png").size == (8 * 34 + 2, 2 * 34 + 2)
    gif = Image.open(out / "walks_slerp.gif")
    assert gif.n_frames == 8 and gif.size == (34 + 2, 2 * 34 + 2)

    model = exported.path
    out = tmp_path / "arith"
    assert main(["arithmetic", "--model", model, "--grid-size", "16", "--out", str(out)]) == 0
    capsys.readouterr()
    assert (out / "pick_seed0.png").exists()
    assert main(["arithmetic", "--model", model, "--grid-size", "16", "--out", str(out),
                 "--plus", "1,2,3", "--minus", "4,5,6", "--base", "7,8,9"]) == 0
    capsys.readouterr()
    assert Image.open(out / "arithmetic_fan.png").size == (3 * 34 + 2, 3 * 34 + 2)
    assert np.load(out / "arithmetic_z.npy").shape == (9, 16)
    assert main(["arithmetic", "--model", model, "--grid-size", "16", "--out", str(out), "--plus", "1,99"]) == 2
    assert main(["walk", "--model", str(tmp_path / "missing.keras"), "--out", str(out)]) == 2
    capsys.readouterr()
    assert main(["arithmetic", "--model", model, "--grid-size", "16", "--out", str(out), "--by-gender"]) == 2
    assert "64x64 colour" in capsys.readouterr().err  # refused before training the classifier


def test_label_arithmetic_picks_exemplars_by_label_and_moves_the_bases_to_the_target():
    # A "generator" whose image is z itself (4x4x1) and a classifier that says class 1 when
    # the mean pixel is positive: the vector from class 0's exemplars to class 1's is positive
    # in the mean, so it moves class-0 samples towards class 1; a random direction mostly does not.
    import keras

    inputs = keras.Input((16,))
    generator = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(inputs))

    def classify(images):
        m = images.reshape(len(images), -1).mean(axis=1)
        p1 = 1 / (1 + np.exp(-8 * m))
        return np.stack([1 - p1, p1], axis=1)

    z = np.random.default_rng(0).standard_normal((200, 16)).astype("float32")
    out = latent.label_arithmetic(generator, z, classify, source=0, target=1, k=3, num_bases=20, seed=0)
    means = z.mean(axis=1)
    assert out["target_exemplars"].shape == (3,) and out["source_exemplars"].shape == (3,)
    assert np.all(means[out["target_exemplars"]] > 0) and np.all(means[out["source_exemplars"]] < 0)
    # The exemplars are the 3 most confident of each class.
    np.testing.assert_array_equal(np.sort(out["target_exemplars"]), np.sort(np.argsort(-means)[:3]))
    assert out["bases"].shape == (20,) and np.all(means[out["bases"]] < 0)
    assert not np.isin(out["bases"], out["source_exemplars"]).any()
    assert out["images"].shape == out["random_images"].shape == (20, 4, 4, 1)
    assert out["vector"].shape == (16,) and out["labels"].shape == (20,)
    assert sum(out["pool_counts"]) == 200
    assert out["share_target"] == 1.0 and out["share_target_random"] < 0.5
    with pytest.raises(ValueError, match="classified 1"):
        latent.label_arithmetic(generator, -np.abs(z), classify, source=0, target=1)


def test_twemoji_gender_classifier_gives_three_class_probabilities():
    classify, accuracy = latent.train_twemoji_gender_classifier(epochs=1, seed=0)
    from dcgan_keras.twemoji_judge import real_twemoji

    images, _ = real_twemoji()
    probs = classify(images[:5])
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert 0.0 <= accuracy <= 1.0 and latent.GENDER_CLASSES == ("male", "female", "other")


# -- colour: walks, exemplars picked by label, the paper's figure 7, skin tones -----------------


@pytest.fixture(scope="module")
def colour_gan():
    """An untrained 64x64 colour DCGAN, as small as the digits' tiny one."""
    import keras

    keras.utils.set_random_seed(0)
    gan = dk.DCGAN.from_settings(dk.Config(image_size=64, channels=3, latent_dim=16, base_width=4,
                                           batch_size=8, latent_distribution="normal"))
    gan.compile()
    return gan


def _identity_generator(shape=(4, 4, 3)):
    """A "generator" whose image is z itself, reshaped."""
    import keras

    inputs = keras.Input((int(np.prod(shape)),))
    return keras.Model(inputs, keras.layers.Reshape(shape)(inputs))


def test_walk_smoothness_gives_one_score_per_walk_of_colour_frames(colour_gan):
    out = latent.walk_smoothness(colour_gan.sampler, walks=2, num_points=2, steps=3, seed=0,
                                 features=lambda x: x.reshape(len(x), -1)[:, :5])
    assert out["images"].shape == (2, 6, 64, 64, 3)
    assert len(out["pixel"]) == len(out["feature"]) == 2 and out["mean_pixel"] == pytest.approx(np.mean(out["pixel"]))
    # Each walk is walk_loop with seed + i.
    np.testing.assert_allclose(out["images"][1], latent.walk_loop(colour_gan.sampler, 2, 3, seed=1)[0], atol=1e-6)
    with pytest.raises(ValueError, match="walks >= 1"):
        latent.walk_smoothness(colour_gan.sampler, walks=0)


def test_walk_command_on_a_colour_checkpoint_writes_a_colour_gif_and_the_untrained_baseline(colour_gan, tmp_path,
                                                                                            capsys):
    ckpt = tmp_path / "colour.keras"
    colour_gan.save(ckpt)
    out = tmp_path / "walks"
    assert main(["walk", "--model", str(ckpt), "--walks", "2", "--points", "2", "--steps", "2", "--untrained",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["untrained_smoothness"]) == 2 and report["untrained_mean_smoothness"] >= 1.0
    gif = Image.open(out / "walks_slerp.gif")
    assert gif.n_frames == 4 and gif.size == (64 + 4, 2 * 66 + 2)
    frame = np.asarray(gif.convert("RGB")).astype(int)
    # The frames keep their colours: the untrained generator's tints differ between channels.
    assert np.abs(frame[..., 0] - frame[..., 2]).max() > 0
    assert np.asarray(Image.open(out / "walks_slerp.png")).shape[-1] == 3
    assert main(["walk", "--model", str(tmp_path / "export_folder"), "--untrained", "--out", str(out)]) == 2
    assert "needs a .keras checkpoint" in capsys.readouterr().err


def test_exemplars_by_label_are_the_most_likely_samples_and_skip_excluded_ones():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    np.testing.assert_array_equal(latent.exemplars_by_label(probs, 1, k=2), [3, 1])
    np.testing.assert_array_equal(latent.exemplars_by_label(probs, 1, k=2, exclude=[3]), [1, 2])
    np.testing.assert_array_equal(latent.exemplars_by_label(probs, 0, k=3), [0, 4, 2])
    with pytest.raises(ValueError, match="at least k samples"):
        latent.exemplars_by_label(probs, 0, k=3, exclude=[0, 1, 2])


def test_figure7_adds_the_plus_minus_difference_to_the_base_exemplars_and_draws_the_papers_layout():
    # Identity generator on 4x4x3; class 1 when the mean pixel is positive. The 3 most
    # positive z are "plus", the 3 most negative "minus", the next 3 most negative "base".
    generator = _identity_generator()

    def classify(images):
        m = images.reshape(len(images), -1).mean(axis=1)
        p1 = 1 / (1 + np.exp(-8 * m))
        return np.stack([1 - p1, p1], axis=1)

    z = np.random.default_rng(0).standard_normal((100, 48)).astype("float32")
    means = z.mean(axis=1)
    out = latent.figure7(generator, z, classify, plus=1, minus=0, base=0, k=3, seed=0)
    order = np.argsort(means)
    np.testing.assert_array_equal(np.sort(out["exemplars"]["plus"]), np.sort(order[-3:]))
    np.testing.assert_array_equal(np.sort(out["exemplars"]["minus"]), np.sort(order[:3]))
    np.testing.assert_array_equal(np.sort(out["exemplars"]["base"]), np.sort(order[3:6]))
    expected = z[order[-3:]].mean(0) - z[order[:3]].mean(0) + z[order[3:6]].mean(0)
    np.testing.assert_allclose(out["z"], expected, atol=1e-5)
    assert out["exemplar_images"].shape == (3, 3, 4, 4, 3) and out["mean_images"].shape == (3, 4, 4, 3)
    assert out["images"].shape == (9, 4, 4, 3) and out["labels"].shape == (9,)
    assert out["share_plus"] == 1.0  # the plus - minus difference carries every result to class 1
    fig = latent.figure7_plot(out, names=("tone5", "tone1", "tone1"))
    assert [ax.get_title() for ax in fig.axes[:3]] == ["tone5", "- tone1", "+ tone1"]


def test_tone_arithmetic_picks_tone_1_and_tone_5_exemplars_and_moves_tone_1_samples_darker():
    # A tone classifier on the identity generator: the mean pixel, cut into "none" and tones 1..5.
    generator = _identity_generator()
    edges = np.array([-0.6, -0.2, 0.2, 0.6])

    def classify(images):
        m = images.reshape(len(images), -1).mean(axis=1)
        tone = 1 + np.searchsorted(edges, m)
        probs = np.full((len(m), len(latent.TONE_CLASSES)), 0.01)
        probs[np.arange(len(m)), tone] = 1.0 + np.abs(m)  # farther out = more confident
        return probs / probs.sum(axis=1, keepdims=True)

    z = (np.random.default_rng(0).standard_normal((400, 48)) * 4).astype("float32")
    tone1, tone5 = latent.TONE_CLASSES.index("tone1"), latent.TONE_CLASSES.index("tone5")
    out = latent.label_arithmetic(generator, z, classify, source=tone1, target=tone5, k=3, num_bases=16, seed=0)
    means = z.mean(axis=1)
    np.testing.assert_array_equal(np.sort(out["target_exemplars"]), np.sort(np.argsort(-means)[:3]))
    np.testing.assert_array_equal(np.sort(out["source_exemplars"]), np.sort(np.argsort(means)[:3]))
    assert np.all(means[out["bases"]] < -0.6)  # every base is classified tone 1
    assert out["share_target"] > out["share_target_random"]
    assert latent.mean_tone(classify(out["images"])).mean() > latent.mean_tone(classify(generator(z[out["bases"]]).numpy())).mean() + 2


def test_mean_tone_ignores_none_and_weights_tones_by_probability():
    probs = np.array([[0.9, 0, 0, 0.1, 0, 0], [0, 0.5, 0, 0, 0, 0.5], [0.2, 0, 0, 0, 0.8, 0]])
    np.testing.assert_allclose(latent.mean_tone(probs), [3.0, 3.0, 4.0])


def test_twemoji_tone_classifier_gives_six_class_probabilities():
    classify, accuracy = latent.train_twemoji_tone_classifier(epochs=1, seed=0)
    from dcgan_keras.twemoji_judge import real_twemoji

    probs = classify(real_twemoji()[0][:4])
    assert probs.shape == (4, 6) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert 0.0 <= accuracy <= 1.0 and latent.TONE_CLASSES[0] == "none" and latent.TONE_CLASSES[5] == "tone5"


def test_arithmetic_by_tone_writes_both_figures_and_the_mean_tone(colour_gan, tmp_path, capsys, monkeypatch):
    # A stand-in for the trained tone classifier (training it is measured in docs/inside.md):
    # the mean red minus blue of the image, cut into tones.
    def classify(images):
        m = (images[..., 0] - images[..., 2]).reshape(len(images), -1).mean(axis=1)
        tone = 1 + np.searchsorted(np.quantile(m, [0.2, 0.4, 0.6, 0.8]), m)
        probs = np.full((len(m), 6), 0.01)
        probs[np.arange(len(m)), tone] = 1.0
        return probs / probs.sum(axis=1, keepdims=True)

    monkeypatch.setattr(latent, "train_twemoji_tone_classifier", lambda seed=0: (classify, 0.5))
    ckpt = tmp_path / "colour.keras"
    colour_gan.save(ckpt)
    out = tmp_path / "tone"
    assert main(["arithmetic", "--model", str(ckpt), "--grid-size", "64", "--by-tone", "--num-bases", "8",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == list(latent.TONE_CLASSES) and report["num_bases"] == 8
    assert set(report["mean_tone"]) == {"bases", "vector", "random"} and 0 <= report["share_tone5"] <= 1
    assert (out / "arithmetic_by_tone.png").exists() and (out / "arithmetic_by_tone_figure7.png").exists()
    assert main(["arithmetic", "--model", str(ckpt), "--by-tone", "--by-gender", "--out", str(out)]) == 2
