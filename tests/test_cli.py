import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dcgan_keras.cli import build_parser, main
from dcgan_keras.cli.train import config_from_args
from dcgan_keras.config import AUGMENTATIONS, DEFAULT_EPOCHS, Config
import dcgan_keras as dk

COMMANDS = ("train", "walk", "arithmetic", "export", "sample", "features", "evaluate", "guided", "ablate", "dedup", "page")


def test_train_command_leaves_samples_history_plot_checkpoint_and_export(tmp_path, capsys):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "digits"
    code = main([
        "train", "--epochs", "2", "--base-width", "8", "--latent-dim", "16", "--batch-size", "250",
        "--run-dir", str(run_dir), "--export-dir", str(export_dir), "--keep-best", "d_fd", "--evaluate-every", "1",
    ])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index('{\n  "run_dir"'):])  # after Keras' progress bars
    assert summary["best_epoch"] in (1, 2) and (run_dir / "best.keras").exists()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert Image.open(run_dir / "samples" / "epoch_0002.png").size == (8 * 34 + 2, 8 * 34 + 2)
    history = dk.callbacks.read_history_csv(run_dir / "history.csv")
    assert len(history["d_loss"]) == 2 and set(history) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    assert (run_dir / "losses.png").stat().st_size > 1000
    loaded = __import__("keras").models.load_model(run_dir / "ckpt.keras")
    assert int(loaded.g_optimizer.iterations) == 2 * (5000 // 250)
    assert (export_dir / "1" / "saved_model.pb").exists()
    assert json.loads((run_dir / "config.json").read_text())["config"]["base_width"] == 8


def test_train_command_reports_bad_input_as_one_line_and_exit_code_2(tmp_path, capsys):
    assert main(["train", "--image-size", "48", "--run-dir", str(tmp_path)]) == 2
    assert "Unsupported image size 48" in capsys.readouterr().err
    assert main(["train", "--dataset", str(tmp_path), "--run-dir", str(tmp_path / "r")]) == 2
    assert "No images found" in capsys.readouterr().err


def test_every_commands_help_exits_zero_in_a_fresh_interpreter():
    # In a fresh interpreter, as a user's shell runs it (the tests' own process has imported everything).
    script = f"""
import contextlib, io, sys
from dcgan_keras.cli import build_parser
build_parser().parse_args(["train", "--recipe", "paper", "--augment", "translation", "--keep-best", "d_fd"])
for command in {COMMANDS!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            build_parser().parse_args([command, "--help"])
        except SystemExit as stop:
            assert stop.code == 0, (command, stop.code)
    assert out.getvalue().startswith("usage:"), command
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _config(*flags):
    return config_from_args(build_parser().parse_args(["train", "--channels", "1", *flags]))


def test_train_recipe_paper_gives_the_papers_config_and_default_the_cli_recipe():
    paper = _config("--recipe", "paper")
    # Radford et al. 2016, section 4: "mini-batch SGD with a mini-batch size of 128", "weights were
    # initialized from a zero-centered Normal distribution with standard deviation 0.02", "the slope
    # of the leak was set to 0.2", "learning rate of 0.0002", "reducing [beta_1] to 0.5"; Figure 1:
    # "A 100 dimensional uniform distribution Z".
    assert (paper.batch_size, paper.init_stddev, paper.leaky_slope) == (128, 0.02, 0.2)
    assert (paper.learning_rate, paper.g_learning_rate, paper.beta_1) == (0.0002, None, 0.5)
    assert (paper.latent_dim, paper.latent_distribution, paper.latent_modes) == (100, "uniform", 0)
    assert (paper.ema_decay, paper.r1_gamma, paper.augment, paper.label_smoothing) == (None, 0.0, None, 0.0)
    default = _config()
    assert default == Config.from_recipe("default", channels=1)
    assert (default.base_width, default.batch_size, default.ema_decay) == (32, 64, 0.999)
    assert (default.learning_rate, default.g_learning_rate, default.r1_gamma) == (8e-4, 1.6e-3, 1.0)
    assert (default.beta_1, default.beta_2) == (0.0, 0.99)
    assert Config().r1_gamma == 0.0


def test_the_default_r1_weight_and_width_follow_the_image_size_unless_a_flag_sets_them():
    assert [_config("--image-size", str(side)).r1_gamma for side in (32, 64, 128)] == [1.0, 10.0, 40.0]
    assert _config("--image-size", "64", "--r1", "2").r1_gamma == 2.0
    assert _config("--image-size", "64", "--recipe", "paper").r1_gamma == 0.0
    assert [_config("--image-size", str(side)).base_width for side in (32, 64, 128)] == [32, 64, 64]
    assert _config("--image-size", "64", "--base-width", "32").base_width == 32


def test_train_flags_override_the_recipe():
    config = _config(
        "--recipe", "paper", "--batch-size", "32", "--learning-rate", "1e-3", "--g-learning-rate", "2e-3",
        "--beta1", "0.9", "--beta2", "0.9",
        "--ema", "0.99", "--label-smoothing", "0.1", "--latent-dim", "16", "--base-width", "8",
        "--augment", "translation,cutout", "--augment-target", "0.6", "--r1", "2", "--no-fast-layers", "--seed", "3",
        "--image-size", "64", "--precision", "mixed_bfloat16", "--sync-batch-norm", "--mirror",
    )
    assert config == Config(
        image_size=64, channels=1, latent_dim=16, base_width=8, batch_size=32, learning_rate=1e-3, g_learning_rate=2e-3,
        beta_1=0.9, beta_2=0.9, label_smoothing=0.1, ema_decay=0.99, seed=3, precision="mixed_bfloat16",
        sync_batch_norm=True,
        augment="translation,cutout", augment_target=0.6, r1_gamma=2.0, fast_layers=False, mirror=True,
    )
    assert _config("--ema", "0").ema_decay is None  # --ema 0 turns the moving average off
    assert _config("--recipe", "paper", "--batch-size", "128").batch_size == 128
    assert _config().fast_layers is True
    assert _config("--recipe", "paper").mirror is False


def test_train_help_shows_each_recipes_value():
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "(default: 64 (paper: 128))" in help_text
    assert "(default: 0.999 (paper: off))" in help_text
    assert "(default: 0.0016 (paper: as --learning-rate))" in help_text  # --g-learning-rate
    assert "(default: 0.99 (paper: 0.999))" in help_text  # --beta2
    assert "passes over the data (default: 60, or as many as make 4,680 steps at 32x32 and 7,020 at 64x64 and up" in " ".join(help_text.split()) and DEFAULT_EPOCHS == 60  # --epochs
    assert all(name in help_text for name in AUGMENTATIONS)


def test_train_keep_best_and_evaluate_every_are_parsed():
    args = build_parser().parse_args(["train", "--keep-best", "digit_fd", "--evaluate-every", "3"])
    assert (args.keep_best, args.evaluate_every) == ("digit_fd", 3)
    defaults = build_parser().parse_args(["train"])
    assert (defaults.keep_best, defaults.evaluate_every, defaults.recipe) == (None, 2, "default")


def test_an_unknown_augmentation_exits_2_with_an_error_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--augment", "translation,flip"])
    assert stop.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert error and "'flip'" in error[0] and all(name in error[0] for name in AUGMENTATIONS)


def test_augment_target_without_a_policy_is_one_error_line_and_exit_code_2(tmp_path, capsys):
    assert main(["train", "--augment-target", "0.6", "--run-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: augment_target must be in (0, 1)")


def test_train_opens_a_tfds_dataset_once_from_data_dir_and_trains_on_its_channels(tmp_path, monkeypatch, capsys):
    import tensorflow_datasets as tfds

    load, data_dirs = tfds.load, []

    def recording_load(*args, **kwargs):
        data_dirs.append(kwargs.get("data_dir"))
        return load(*args, **kwargs)

    monkeypatch.setattr(tfds, "load", recording_load)
    run_dir, data_dir = tmp_path / "run", tmp_path / "tfds"
    with tfds.testing.mock_data(num_examples=16):
        code = main([
            "train", "--dataset", "tfds:cifar10", "--data-dir", str(data_dir), "--epochs", "1", "--base-width", "8",
            "--latent-dim", "16", "--batch-size", "8", "--run-dir", str(run_dir), "--export-dir", str(tmp_path / "m"),
        ])
    assert code == 0, capsys.readouterr().err
    assert data_dirs == [str(data_dir)]  # once, from --data-dir (not TFDS' default folder)
    assert json.loads((run_dir / "config.json").read_text())["config"]["channels"] == 3  # cifar10's, not Config's 1
