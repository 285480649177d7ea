"""Bad inputs, interruptions and numerical failure: a clear sentence, and nothing saved is lost.

Each case of docs/reliability.md has a test here (or names the test elsewhere that covers it).
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
from dcgan_keras.cli import main as cli_main
from dcgan_keras.guards import DivergenceGuard, ModeCollapseGuard, TrainingDiverged, read_backup

PACKAGE = Path(dk.__file__).parent


def _images_in(ds) -> int:
    return sum(int(batch.shape[0]) for batch in ds)


def _folder(tmp_path, count=4, size=(40, 40)):
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / f"ok{i}.png")
    return tmp_path


def _tiny_data(n=64):
    return np.random.default_rng(0).uniform(0, 1, (n, 32, 32, 1)).astype("float32")


# -- bad inputs ------------------------------------------------------------------


def test_corrupt_and_truncated_images_are_skipped_with_a_warning_that_counts_them(tmp_path):
    folder = _folder(tmp_path)
    good = (folder / "ok0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "whole.jpg")
    jpeg = (folder / "whole.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "whole.jpg").unlink()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not a png")
    with pytest.warns(UserWarning, match=r"Skipped 4 of 8 image files .*empty\.jpg.*text\.png.*truncated\.jpg.*truncated\.png"):
        ds = dk.make_dataset(folder, image_size=32, batch_size=1, drop_remainder=False)
    assert _images_in(ds) == 4  # the readable ones, every epoch
    scan = dk.data.scan_image_folder(folder)
    assert sorted(Path(p).name for p in scan.unreadable) == ["empty.jpg", "text.png", "truncated.jpg", "truncated.png"]


def test_files_without_an_image_extension_are_ignored_and_counted(tmp_path):
    folder = _folder(tmp_path)
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    with pytest.warns(UserWarning, match=r"Ignored 2 file\(s\).*without an image extension"):
        ds = dk.make_dataset(folder, image_size=32, batch_size=1, drop_remainder=False)
    assert _images_in(ds) == 4


def test_images_smaller_than_image_size_are_kept_with_a_warning(tmp_path):
    folder = _folder(tmp_path, count=2, size=(20, 30))
    _folder(tmp_path / "big" if (tmp_path / "big").mkdir() is None else None, count=1, size=(80, 80))
    with pytest.warns(UserWarning, match=r"2 of 3 images .* smaller than 64x64 .*--image-size"):
        ds = dk.make_dataset(folder, image_size=64, batch_size=3)
    assert next(iter(ds)).shape == (3, 64, 64, 3)


def test_grayscale_rgb_rgba_palette_and_16_bit_images_mix_in_one_folder(tmp_path, recwarn):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    for mode in ("L", "LA", "RGB", "RGBA", "P", "CMYK"):
        image.convert(mode).save(tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    image.save(tmp_path / "anim.gif")
    for channels in (3, 1):
        batch = next(iter(dk.make_dataset(tmp_path, image_size=32, channels=channels, batch_size=8))).numpy()
        assert batch.shape == (8, 32, 32, channels) and -1 <= batch.min() and batch.max() <= 1
    assert not [w for w in recwarn if "Skipped" in str(w.message)]
    assert dk.data.scan_image_folder(tmp_path).modes == {"L": 1, "LA": 1, "RGB": 1, "RGBA": 1, "P": 2, "CMYK": 1, "I;16": 1}


def test_empty_folders_and_folders_of_only_broken_images_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"No images found in folder .*empty.*it is empty"):
        dk.make_dataset(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_text("no")
    with pytest.raises(ValueError, match=r"None of the 1 image files .* can be read: a\.png"):
        dk.make_dataset(tmp_path / "broken")


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((4, 8), np.uint8), r"shape \(N, H, W\) or \(N, H, W, C\).*\(4, 8\)"),
        (np.zeros((4, 8, 8, 2), np.uint8), r"C in \(1, 3, 4\).*\(4, 8, 8, 2\)"),
        (np.zeros((4, 8, 8), np.int64), r"astype\('uint8'\).*dtype=int64"),
        (np.full((4, 8, 8), 2.0, np.float32), r"in \[0, 1\].*\[2, 2\]"),
    ],
)
def test_numpy_arrays_of_wrong_rank_dtype_or_range_are_refused(array, match):
    with pytest.raises(ValueError, match=match):
        dk.make_dataset(array)


def test_numpy_arrays_with_nan_name_the_images():
    array = np.zeros((10, 8, 8), np.float32)
    array[3, 1, 1] = np.nan
    array[7, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or Inf values in 2 of 10 images \(indices \[3, 7\]\)"):
        dk.make_dataset(array)


# A TFDS dataset without an `image` feature: tests/test_data.py::test_tfds_dataset_without_an_image_feature_is_refused
# An unsupported image size or bad config values: tests/test_networks.py::test_unsupported_image_size_names_the_supported_ones,
# ::test_config_rejects_invalid_values_naming_the_field.


def test_a_non_positive_batch_size_is_refused_by_config_data_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="batch_size"):
        dk.Config(batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer. Received: batch_size=-1"):
        dk.make_dataset("digits", batch_size=-1)
    assert cli_main(["train", "--batch-size", "0", "--run-dir", str(tmp_path / "r")]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.fixture
def digits_like_export(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.save(tmp_path / "gan.keras")
    return gan, tmp_path / "gan.keras", dk.export_generator(gan, tmp_path / "exports")


def test_checkpoints_and_saved_models_of_another_latent_size_or_shape_are_refused(digits_like_export, tmp_path):
    gan, ckpt, export = digits_like_export
    for path in (ckpt, export):
        assert dk.load_generator(path, latent_dim=16, image_shape=(32, 32, 1)).input_shape[-1] == 16
        with pytest.raises(ValueError, match=r"takes z of size 16, not 100.*latent_dim=100"):
            dk.load_generator(path, latent_dim=100)
        with pytest.raises(ValueError, match=r"images of shape \(32, 32, 1\), not \(64, 64, 3\)"):
            dk.load_generator(path, image_shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"takes z of shape \(batch, 16\). Received: z of shape \(2, 100\)"):
        dk.load_generator(export)(np.zeros((2, 100), np.float32))


def test_a_new_export_version_must_keep_the_served_shapes(digits_like_export, tmp_path):
    _, _, export = digits_like_export
    other = dk.DCGAN.from_settings(dk.Config(image_size=32, channels=1, latent_dim=8, base_width=8))
    with pytest.raises(ValueError, match=r"serves z of size 16 .* takes z of size 8 .*another name"):
        dk.export_generator(other, tmp_path / "exports")
    assert sorted(os.listdir(tmp_path / "exports")) == ["1"]  # nothing written


def test_truncated_or_foreign_checkpoint_files_get_a_clear_error(digits_like_export, tmp_path):
    _, ckpt, _ = digits_like_export
    (tmp_path / "cut.keras").write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cut\.keras' is not a readable \.keras file .*truncated"):
        dk.load_generator(tmp_path / "cut.keras")
    with pytest.raises(FileNotFoundError, match="No checkpoint file"):
        dk.load_generator(tmp_path / "missing.keras")


def test_a_run_dir_holding_another_run_is_refused_and_left_untouched(tiny_config, tmp_path):
    kwargs = dict(dataset=_tiny_data(), export_dir=None, verbose=0, sample_every=10)
    dk.train(tiny_config, tmp_path / "run", epochs=1, **kwargs)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match=r"already holds a run \(1 finished epoch\(s\).*--resume.*--overwrite.*--run-dir"):
        dk.train(tiny_config, tmp_path / "run", epochs=2, **kwargs)
    other = dk.Config(**{**tiny_config.to_dict(), "latent_dim": 8})
    with pytest.raises(ValueError, match=r"Cannot resume .* different settings \(latent_dim: 16 in the run, 8 asked\)"):
        dk.train(other, tmp_path / "run", epochs=2, resume=True, **kwargs)
    with pytest.raises(ValueError, match=r"already finished 1 epochs; ask for more"):
        dk.train(tiny_config, tmp_path / "run", epochs=1, resume=True, **kwargs)
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before


# -- atomic writes ---------------------------------------------------------------------


def test_a_checkpoint_write_that_dies_midway_leaves_the_previous_checkpoint_whole(tiny_config, tmp_path, monkeypatch):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    path = tmp_path / "ckpt.keras"
    dk.guards.save_model_atomic(gan, path)
    old = path.read_bytes()

    def dies_midway(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        dk.guards.save_model_atomic(gan, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert dk.load_generator(path).input_shape[-1] == 16


def test_a_backup_write_that_dies_midway_leaves_the_previous_epoch_restorable(tiny_config, tmp_path, monkeypatch):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    backup = dk.guards.RunBackup(tmp_path / "backup")
    backup.set_model(gan)
    backup.on_epoch_end(0)
    monkeypatch.setattr(keras.Model, "save_weights", lambda self, path, **kw: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        backup.on_epoch_end(1)
    monkeypatch.undo()
    state = read_backup(tmp_path / "backup")
    assert state["epoch"] == 1 and state["weights"] == "epoch_0001.weights.h5"
    fresh = dk.DCGAN.from_settings(tiny_config)
    fresh.compile()
    assert dk.guards.restore_backup(fresh, tmp_path / "backup") == 1


# -- numerical failure -----------------------------------------------------------------


class _PoisonAt(keras.callbacks.Callback):
    """Sets one discriminator weight to NaN before the given step (1-based, counted over the run)."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            kernel = self.model.discriminator.trainable_weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_a_nan_loss_stops_training_naming_the_step_keeps_the_last_good_epoch_and_exports_nothing(tiny_config, tmp_path):
    kwargs = dict(dataset=_tiny_data(), verbose=0, sample_every=10, export_dir=tmp_path / "exports")
    # 64 images / batch 32 = 2 steps per epoch: step 4 is epoch 2's second step.
    with pytest.raises(TrainingDiverged, match=r"diverged at step 4 \(epoch 2, batch 2\): d_loss=nan.*no generator was exported"):
        dk.train(tiny_config, tmp_path / "run", epochs=3, callbacks=[_PoisonAt(4)], **kwargs)
    assert not (tmp_path / "exports").exists()
    assert read_backup(tmp_path / "run" / "backup")["epoch"] == 1
    gan = keras.models.load_model(tmp_path / "run" / "ckpt.keras")
    assert int(gan.g_optimizer.iterations.numpy()) == 2  # epoch 1's checkpoint
    assert all(np.isfinite(w).all() for w in gan.get_weights())
    assert len(dk.callbacks.read_history_csv(tmp_path / "run" / "history.csv")["d_loss"]) == 1


def test_a_generator_with_nan_weights_is_never_exported(tiny_config, tmp_path):
    gan = dk.DCGAN.from_settings(dk.Config(**{**tiny_config.to_dict(), "ema_decay": None}))
    kernel = gan.generator.trainable_weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN or Inf weights .* not exported"):
        dk.export_generator(gan, tmp_path / "exports")
    assert not (tmp_path / "exports" / "1").exists()


def test_discriminator_collapse_is_warned_about_with_remedies(tiny_config, caplog):
    gan = dk.DCGAN.from_settings(tiny_config)
    # G frozen (learning rate 0) and a fast D: D soon rejects every fake.
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-3), g_optimizer=keras.optimizers.Adam(0.0))
    guard = DivergenceGuard(collapse_patience=10)
    ds = dk.make_dataset("digits", image_size=32, batch_size=32, seed=0).take(40)
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        gan.fit(ds, epochs=1, callbacks=[guard], verbose=0, shuffle=False)
    assert guard.collapse_step is not None
    assert re.search(r"The discriminator is winning \(step \d+\): .* below 0.01 for 10 steps.*--augment "
                     r"translation,cutout.*--keep-best", caplog.text)
    # A healthy start (both networks learning) raises no such warning in as many steps.
    healthy = dk.DCGAN.from_settings(tiny_config)
    healthy.compile()
    quiet = DivergenceGuard(collapse_patience=10)
    healthy.fit(ds, epochs=1, callbacks=[quiet], verbose=0, shuffle=False)
    assert quiet.collapse_step is None


def test_collapsing_samples_are_warned_about_in_plain_words_and_a_healthy_run_stays_quiet(tiny_config, caplog):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    ds = dk.make_dataset("digits", image_size=32, batch_size=32, seed=0).take(10)

    class Collapse(keras.callbacks.Callback):
        # From epoch 3 on, G ignores z: every noise vector draws the same image.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                kernel = self.model.generator.get_layer("project").kernel
                kernel.assign(kernel * 0.0)

    quiet = ModeCollapseGuard()
    gan.fit(ds, epochs=2, callbacks=[quiet], verbose=0, shuffle=False)
    assert quiet.collapse_epoch is None and quiet.best > 0.05  # samples differ, more as G learns
    guard = ModeCollapseGuard()
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        gan.fit(ds, epochs=4, callbacks=[Collapse(), guard], verbose=0, shuffle=False)
    assert guard.collapse_epoch == 3
    assert caplog.text.count("The samples are collapsing") == 1  # once per run
    assert re.search(r"The samples are collapsing \(epoch 3\): .*nearly alike.*--augment translation,cutout", caplog.text)


# -- safe loading ----------------------------------------------------------------------


def test_checkpoints_with_arbitrary_code_are_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        dk.load_generator(tmp_path / "lambda.keras")


def test_the_package_never_unpickles_disables_safe_mode_or_uses_a_shell():
    forbidden = re.compile(r"\bimport pickle\b|allow_pickle\s*=\s*True|safe_mode\s*=\s*False|shell\s*=\s*True|os\.system\(|os\.popen\(")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1) if forbidden.search(line)
    ]
    assert offenders == []


# -- interruptions: real processes -----------------------------------------------------

TRAIN = [
    sys.executable, "-m", "dcgan_keras", "train", "--dataset", "digits", "--latent-dim", "16",
    "--base-width", "8", "--batch-size", "250", "--ema", "0", "--sample-every", "1000",
]
STEPS_PER_EPOCH = 5000 // 250


def _start(run_dir, epochs, *extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [*TRAIN, "--epochs", str(epochs), "--run-dir", str(run_dir), "--export-dir", str(run_dir.parent / "exports"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_epoch(run_dir, epoch, process, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run_dir / "backup" / "state.json"
        if state.exists() and json.loads(state.read_text())["epoch"] >= epoch:
            return
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no backup of epoch {epoch} within {timeout} s")


def _check_consistent(run_dir, epochs):
    """The checkpoint, backup and history agree on `epochs` finished epochs."""
    assert read_backup(run_dir / "backup")["epoch"] == epochs
    gan = keras.models.load_model(run_dir / "ckpt.keras")
    assert int(gan.g_optimizer.iterations.numpy()) == epochs * STEPS_PER_EPOCH
    assert int(gan.d_optimizer.iterations.numpy()) == epochs * STEPS_PER_EPOCH
    history = dk.callbacks.read_history_csv(run_dir / "history.csv")
    assert len(history["d_loss"]) == epochs


def test_sigkill_mid_epoch_then_resume_continues_from_the_last_finished_epoch(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(run_dir, 50)
    _wait_for_epoch(run_dir, 2, process)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    done = read_backup(run_dir / "backup")["epoch"]
    assert done >= 2
    seed_before = read_backup(run_dir / "backup")["seed_state"]
    _check_consistent(run_dir, done)  # nothing half-written is visible

    resumed = _start(run_dir, done + 1, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    _check_consistent(run_dir, done + 1)
    history = dk.callbacks.read_history_csv(run_dir / "history.csv")
    assert np.isfinite(history["d_loss"]).all()
    # The noise generator went on from its backed-up state (one draw per step).
    assert read_backup(run_dir / "backup")["seed_state"] != seed_before
    assert json.loads(out[out.index('{\n  "run_dir"'):])["export"].endswith("1")


def test_ctrl_c_stops_cleanly_after_the_step_keeps_every_finished_epoch_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    process = _start(run_dir, 50)
    _wait_for_epoch(run_dir, 1, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert re.search(r"stopped: Training stopped by SIGINT in epoch \d+ after batch \d+.*--resume", err)
    assert not (tmp_path / "exports").exists()  # a stopped run exports nothing
    done = read_backup(run_dir / "backup")["epoch"]
    _check_consistent(run_dir, done)
    resumed = _start(run_dir, done + 1, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    _check_consistent(run_dir, done + 1)
