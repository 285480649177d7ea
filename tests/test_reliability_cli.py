"""Bad inputs and faults, round 2, the rest: sampling and latent flags, TF_CONFIG, empty
arrays, mostly unreadable folders, networks too big for memory, negative numbers in flags.

One test per class of fault in docs/reliability.md ("Faults found by a hostile user").
"""

import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
from dcgan_keras import data
from dcgan_keras.cli import main as cli_main
from dcgan_keras.experiments import latent


@pytest.fixture
def fake_sampler(monkeypatch):
    """`load_sampler` replaced by one that draws grey 8x8 images, and the paths it was asked for."""
    import tensorflow as tf

    loaded = []

    def load_sampler(path):
        loaded.append(path)
        return lambda seed, num_images: {"images": tf.fill([num_images, 8, 8, 1], tf.constant(128, tf.uint8))}

    monkeypatch.setattr(dk.checkpoints, "load_sampler", load_sampler)
    return loaded


def test_sample_writes_the_format_its_extension_names_and_refuses_a_name_without_one(tmp_path, fake_sampler, capsys):
    for name, magic in (("grid.jpg", b"\xff\xd8\xff"), ("grid.png", b"\x89PNG"), ("grid.webp", b"RIFF")):
        assert cli_main(["sample", "--model", "m", "--num", "4", "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes()[:len(magic)] == magic
    assert Image.open(tmp_path / "grid.jpg").format == "JPEG"
    fake_sampler.clear()
    assert cli_main(["sample", "--model", "m", "--out", str(tmp_path / "grid.xyz")]) == 2
    assert "end it with one of .png, .jpg" in capsys.readouterr().err
    assert fake_sampler == [] and not (tmp_path / "grid.xyz").exists()  # refused before the model is loaded


@pytest.mark.parametrize("argv, message", [
    (["--rows", "1000", "--num", "4"], r"--rows must be in 1..4 \(--num\).*Received: --rows 1000"),
    (["--seed", str(2**63)], r"--seed must fit in 64 bits.*Received: --seed 9223372036854775808"),
    (["--seed", str(-(2**63) - 1)], r"--seed must fit in 64 bits"),
])
def test_sample_refuses_more_rows_than_images_and_seeds_beyond_int64(tmp_path, fake_sampler, capsys, argv, message):
    import re

    assert cli_main(["sample", "--model", "m", "--out", str(tmp_path / "g.png"), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert fake_sampler == [] and not (tmp_path / "g.png").exists()
    with pytest.raises(ValueError, match=r"rows must be in 1..4.*Received: rows=5"):
        dk.images.image_grid(np.zeros((4, 8, 8, 1)), rows=5)


@pytest.mark.parametrize("argv, message", [
    (["arithmetic", "--grid-size", "0"], r"--grid-size must be in 1..1024.*Received: --grid-size 0"),
    (["arithmetic", "--grid-size", "-5"], r"Received: --grid-size -5"),
    (["walk", "--duration-ms", "-5"], r"--duration-ms must be at least 10.*Received: --duration-ms -5"),
    (["walk", "--steps", "100000"], r"make 1600000 images, more than the 2048 .*Received: --walks=4, --points=4, --steps=100000"),
    (["walk", "--points", "1"], r"--points >= 2"),
])
def test_walk_and_arithmetic_refuse_sizes_and_durations_that_cannot_be_right(tmp_path, monkeypatch, capsys, argv, message):
    import re

    loaded = []
    monkeypatch.setattr(dk.cli.latent, "_load", loaded.append)
    assert cli_main([*argv, "--model", "m", "--out", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert loaded == [] and not (tmp_path / "out").exists()  # checked before the model is loaded


def test_walks_too_long_and_gif_durations_below_a_hundredth_are_refused_by_the_library(tmp_path):
    def never(z, training=False):
        raise AssertionError("nothing is rendered")

    with pytest.raises(ValueError, match=r"4 points x 100000 steps make 400000 images.*MAX_WALK_IMAGES"):
        latent.walk_loop(never, num_points=4, steps=100_000, latent_dim=8)
    with pytest.raises(ValueError, match=r"duration_ms must be an integer of at least 10.*Received: duration_ms=-5"):
        latent.save_gif(np.zeros((2, 8, 8, 1)), tmp_path / "w.gif", duration_ms=-5)
    assert not (tmp_path / "w.gif").exists()


@pytest.mark.parametrize("text, what", [
    ("{bad", r"it is not valid JSON \(JSONDecodeError: Expecting property name"),
    ("[1, 2]", r"it is a JSON list, not an object"),
    ('{"cluster": {"worker": "a:1"}}', r'"cluster" must map each task type to a non-empty list of "host:port"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', r"type 'chief', which is not one of the cluster's \(worker\)"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', r"index 2, but the cluster's 'worker' list has 2"),
])
def test_a_malformed_tf_config_is_named_with_what_is_wrong(monkeypatch, text, what):
    with pytest.raises(ValueError, match=rf"TF_CONFIG environment variable is malformed: (\"task\" has )?{what}.*Received: TF_CONFIG="):
        dk.distribute.check_tf_config(text)
    good = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    assert dk.distribute.check_tf_config(good)["task"]["index"] == 1
    monkeypatch.setenv("TF_CONFIG", "{bad")
    with pytest.raises(ValueError, match="TF_CONFIG environment variable is malformed"):
        dk.distribute.make_strategy("multi-worker")  # before the strategy is made


@pytest.mark.parametrize("shape, message", [
    ((0, 32, 32), r"non-empty array .*Received: array of shape \(0, 32, 32\)$"),
    ((4, 0, 32), r"at least 1x1 pixels.*Received: array of shape \(4, 0, 32\)"),
    ((4, 32, 0, 3), r"at least 1x1 pixels.*Received: array of shape \(4, 32, 0, 3\)"),
])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_numpy_arrays_without_pixels_are_refused_naming_their_shape(shape, message, dtype):
    with pytest.raises(ValueError, match=message):
        dk.make_dataset(np.zeros(shape, dtype), image_size=32, batch_size=2)


def _folder(tmp_path, good, bad):
    folder = tmp_path / f"photos_{good}_{bad}"
    folder.mkdir()
    for i in range(good):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / f"good{i}.png")
    for i in range(bad):
        (folder / f"bad{i}.png").write_bytes(b"not an image")
    return folder


def test_a_folder_where_most_checked_files_fail_is_refused_and_a_few_bad_files_only_warn(tmp_path):
    folder = _folder(tmp_path, good=1, bad=7)
    with pytest.raises(ValueError, match=r"7 of the 8 image files in folder .* cannot be read, more than 75% .*"
                                         r"bad0\.png \(.*; and 2 more\. .*Fix or remove .*Received: unreadable=7 of 8"):
        dk.make_dataset(folder, image_size=32, batch_size=1)
    with pytest.raises(ValueError, match=r"7 of the 8 image files .* cannot be read, more than 75%"):
        data.folder_images(folder)
    assert len(data.scan_image_folder(folder).unreadable) == 7  # the tool that lists them still does
    with pytest.warns(UserWarning, match=r"Skipped 6 of 8 image files"):  # three quarters: still only a warning
        assert sum(1 for _ in dk.make_dataset(_folder(tmp_path, good=2, bad=6), image_size=32, batch_size=2)) == 1


def test_a_network_too_big_for_memory_is_refused_with_an_estimate_before_anything_is_built(tmp_path, monkeypatch):
    from dcgan_keras import networks

    for config in (dk.Config(latent_dim=8, base_width=8), dk.Config(image_size=64, channels=3, base_width=16)):
        built = networks.build_generator(config).count_params() + networks.build_discriminator(config).count_params()
        assert networks.training_memory(config)["parameters"] == built  # the count is exact
    big = dk.Config(base_width=4096)
    assert networks.training_memory(big)["parameter_bytes"] == 16 * 5_395_533_826
    monkeypatch.setattr(networks, "machine_memory", lambda: 8 * 2**30)
    with pytest.raises(ValueError, match=r"needs about 94\.2 GiB of memory, more than the 8\.0 GiB .*Lower --base-width"
                                         r".*Received: base_width=4096, image_size=32, batch_size=128"):
        networks.build_generator(big)
    with pytest.raises(ValueError, match="needs about"):
        dk.train(big, tmp_path / "run", dataset=np.zeros((128, 32, 32, 1), np.uint8), epochs=1, verbose=0,
                 export_dir=None)
    assert not (tmp_path / "run").exists()
    networks.check_memory(dk.Config())  # the paper's networks, about 0.24 GiB, fit in 8 GiB


def test_a_negative_learning_rate_in_e_notation_is_taken_for_an_option_unless_written_with_equals(capsys):
    with pytest.raises(SystemExit):  # argparse's rule: "-1e-3" looks like an option, not a number
        cli_main(["train", "--learning-rate", "-1e-3"])
    assert "argument --learning-rate: expected one argument" in capsys.readouterr().err
    assert cli_main(["train", "--learning-rate=-1e-3"]) == 2  # the documented form reaches the check
    assert "learning_rate must be positive and finite. Received: learning_rate=-0.001" in capsys.readouterr().err
