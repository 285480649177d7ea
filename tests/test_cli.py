import json

import numpy as np
import pytest
from PIL import Image

from dcgan_keras.cli import main
import dcgan_keras as dk


def test_train_command_leaves_samples_history_plot_checkpoint_and_export(tmp_path, capsys):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "digits"
    code = main([
        "train", "--epochs", "2", "--base-width", "8", "--latent-dim", "16", "--batch-size", "250",
        "--run-dir", str(run_dir), "--export-dir", str(export_dir),
    ])
    assert code == 0
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
