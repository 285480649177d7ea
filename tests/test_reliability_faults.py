"""Bad inputs and faults, round 2: no silent success, no stuck run, nothing saved lost.

One test per class of fault in docs/reliability.md ("Faults found by a hostile user").
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
from dcgan_keras import data
from dcgan_keras.cli import main as cli_main

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _pngs(folder, count, size=(40, 40), prefix="ok"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")
    return folder


def _tiny(**changes):
    return dk.Config(**{**dict(image_size=32, channels=1, latent_dim=8, base_width=8, batch_size=32, seed=1), **changes})


def _data(n=64):
    return np.random.default_rng(0).uniform(0, 1, (n, 32, 32, 1)).astype("float32")


def _train(run_dir, epochs=1, config=None, **kwargs):
    kwargs.setdefault("export_dir", None)
    return dk.train(config or _tiny(), run_dir, dataset=_data(), epochs=epochs, verbose=0, **kwargs)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# 1 -------------------------------------------------------------------------------------


def test_files_tensorflow_cannot_decode_are_named_and_a_run_without_a_step_fails(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(16):  # TIFFs under a .jpg name: PIL reads them, TensorFlow's decoder does not
        Image.fromarray(np.full((40, 40, 3), i, np.uint8)).save(folder / f"{i}.jpg", format="TIFF")
    with pytest.raises(ValueError, match=r"None of the 16 image files .*0\.jpg \(a TIFF image, which TensorFlow cannot decode"):
        dk.make_dataset(folder, image_size=32, batch_size=8)
    # Files outside the checked sample are met only while training: with the check passed
    # (as for a file outside the sample), the epoch runs out of data and the run fails.
    monkeypatch.setattr(data.folders, "_check_image", lambda path, size: (None, 40, "RGB"))
    with pytest.raises(RuntimeError, match=r"data ran out in epoch 1 after 0 of 2 batches.*no generator was exported"):
        dk.train(_tiny(channels=3, batch_size=8), tmp_path / "run", dataset=folder, epochs=1,
                 export_dir=tmp_path / "exports", verbose=0)
    assert not (tmp_path / "exports").exists()
    assert not (tmp_path / "run" / "ckpt.keras").exists()


# 3 -------------------------------------------------------------------------------------


def test_fifos_and_other_special_files_are_skipped_and_named_instead_of_blocking(tmp_path):
    folder = _pngs(tmp_path / "photos", 8)
    os.mkfifo(folder / "x.png")  # reading it would block forever
    code = textwrap.dedent(f"""
        import warnings, dcgan_keras as dk
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = dk.make_dataset({str(folder)!r}, image_size=32, batch_size=4)
        print(sum(1 for _ in ds), [str(w.message) for w in caught])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("2 ")  # 8 images, 2 batches: every epoch whole
    assert "x.png (not a regular file (a FIFO" in done.stdout


BLOCKED_FIT = """
import sys, tensorflow as tf, dcgan_keras as dk
from dcgan_keras.guards import GracefulInterrupt
gan = dk.DCGAN.from_settings(dk.Config(latent_dim=8, base_width=8, batch_size=2)); gan.compile()
read = lambda p: tf.zeros([32, 32, 1]) + tf.cast(tf.strings.length(tf.io.read_file(p)), tf.float32) * 0.0
ds = tf.data.Dataset.from_tensors(sys.argv[1]).map(read).repeat().batch(2)
print("ready", flush=True)
with GracefulInterrupt() as interrupt:
    gan.fit(ds, epochs=1, steps_per_epoch=5, callbacks=[interrupt], verbose=0)
"""


@pytest.mark.parametrize("signals, code", [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)])
def test_sigterm_or_a_second_ctrl_c_ends_a_run_blocked_in_a_read_within_seconds(tmp_path, signals, code):
    os.mkfifo(tmp_path / "blocks.png")
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_FIT, str(tmp_path / "blocks.png")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert process.stdout.readline() == "ready\n"
        time.sleep(3)  # inside fit, the step waiting for the read
        start = time.monotonic()
        for sig in signals:
            process.send_signal(sig)
            time.sleep(0.3)
        _, err = process.communicate(timeout=30)
        seconds = time.monotonic() - start
    finally:
        process.kill()
    assert process.returncode == code, err[-2000:]
    assert seconds < 10
    assert "ending the process. The last finished epoch is saved" in err


# 4 -------------------------------------------------------------------------------------


def test_a_failed_resume_leaves_the_run_record_unchanged_and_the_right_settings_still_resume(tmp_path):
    run = tmp_path / "run"
    _train(run, epochs=1)
    (run / "config.json").unlink()  # a copied or older run
    before = _snapshot(run)
    with pytest.raises(ValueError, match=r"backup in .* does not fit this model.*other settings"):
        _train(run, epochs=2, config=_tiny(base_width=16), resume=True)
    assert _snapshot(run) == before  # config.json not written with the wrong settings
    assert _train(run, epochs=2, resume=True)["steps"] == 2


def test_damaged_run_records_name_the_file_and_overwrite_replaces_them(tmp_path):
    run = tmp_path / "run"
    _train(run, epochs=1)
    config = run / "config.json"
    config.write_text(config.read_text()[:100])
    with pytest.raises(ValueError, match=r"run record .*config\.json' cannot be read \(JSONDecodeError.*--overwrite"):
        _train(run, epochs=2, resume=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        _train(run, epochs=1)
    assert _train(run, epochs=1, overwrite=True)["steps"] == 2  # the documented way out works
    assert json.loads(config.read_text())["epochs"] == 1
    state = run / "backup" / "state.json"
    state.write_text(state.read_text()[:20])
    with pytest.raises(ValueError, match=r"backup record .*state\.json' cannot be read .*--overwrite"):
        _train(run, epochs=2, resume=True)


def test_a_truncated_newest_backup_resumes_from_the_epoch_before(tmp_path, caplog):
    run = tmp_path / "run"
    _train(run, epochs=2)
    newest = run / "backup" / "epoch_0002.weights.h5"
    newest.write_bytes(newest.read_bytes()[:3000])
    summary = _train(run, epochs=3, resume=True)
    assert "resuming from the epoch before, 1" in caplog.text
    assert summary["steps"] == 2 * 2  # epochs 2 and 3 trained again
    assert len(summary["history"]["d_loss"]) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_every=0), "sample_every must be a positive"),
    (dict(evaluate_every=0, keep_best="d_fd"), "evaluate_every must be a positive"),
    (dict(resume=True, overwrite=True), "resume and overwrite exclude each other"),
])
def test_settings_that_cannot_be_right_are_refused_before_the_run_dir_is_created(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _train(tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


# 5 -------------------------------------------------------------------------------------


def test_a_cache_file_of_other_images_is_rebuilt_and_a_killed_fills_leftovers_are_cleared(tmp_path):
    folder, cache = tmp_path / "photos", tmp_path / "cache" / "x"
    folder.mkdir()
    cache.parent.mkdir()
    for i in range(16):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / f"{i}.png")
    for batch in dk.make_dataset(folder, image_size=32, batch_size=8, cache=str(cache)):
        pass
    assert (tmp_path / "cache" / "x.index").exists()
    for i in range(32):
        Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(folder / f"{i}.png")
    with pytest.warns(UserWarning, match=r"cache file .* held other images than asked for .*filled again"):
        ds = dk.make_dataset(folder, image_size=32, batch_size=8, cache=str(cache))
    assert [float(b.numpy().mean()) for b in ds] == [1.0] * 4  # the new white images, not the old black ones
    data.pipeline._CACHE_LOCKS.pop(str(cache)).close()  # as a new process finds the cache after a fill that was killed:
    (tmp_path / "cache" / "x.index").unlink()
    (tmp_path / "cache" / "x_0.lockfile").write_text("")
    (tmp_path / "cache" / "x_0.data-00000-of-00001.tempstate1").write_text("")
    assert sum(1 for _ in dk.make_dataset(folder, image_size=32, batch_size=8, cache=str(cache))) == 4
    assert not (tmp_path / "cache" / "x_0.lockfile").exists()


# 6 -------------------------------------------------------------------------------------


def test_images_above_the_pixel_limit_are_skipped_and_named_before_they_are_decoded(tmp_path, monkeypatch):
    folder = _pngs(tmp_path / "photos", 4)
    Image.fromarray(np.zeros((60, 100, 3), np.uint8)).save(folder / "huge.png")
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 40 * 40)
    with pytest.warns(UserWarning, match=r"huge\.png \(100x60 pixels, 0 Mpx as decoded, above the limit"):
        ds = dk.make_dataset(folder, image_size=32, batch_size=4, shuffle=False)
    assert sum(1 for _ in ds) == 1
    # A file outside the sample fails in the pipeline from its header, before its decode.
    with pytest.raises(Exception, match="MAX_IMAGE_PIXELS"):
        data.folders._read_rgb(str(folder / "huge.png")).numpy()
    assert data.folders._read_rgb(str(folder / "ok0.png")).shape == (40, 40, 3)


# 7 -------------------------------------------------------------------------------------


def test_non_utf8_names_are_read_and_symlink_loops_are_skipped_and_named(tmp_path):
    folder = _pngs(tmp_path / "photos", 7)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png"))
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")
    with pytest.warns(UserWarning, match=r"Skipped 2 entries .*a\.png \(OSError: Too many levels of symbolic links\)"):
        ds = dk.make_dataset(folder, image_size=32, batch_size=8, shuffle=False)
    assert sum(1 for _ in ds) == 1  # 7 + the non-UTF-8 name: one whole batch of 8


# 8 -------------------------------------------------------------------------------------


def test_a_run_dir_in_use_by_another_process_is_refused_and_temporary_names_never_collide(tmp_path):
    run = tmp_path / "run"
    locked, release = threading.Event(), threading.Event()

    def other_process():  # flock locks belong to an open file: another holder, as another process would be
        with dk.files.locked_folder(run, "a training run"):
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=other_process)
    holder.start()
    try:
        locked.wait(10)
        with pytest.raises(FileExistsError, match=r"'.*run' is in use by another process \(a training run\)"):
            _train(run, epochs=1)
        assert os.listdir(run) == []  # nothing written
    finally:
        release.set()
        holder.join()
    tmp_path = tmp_path / "files"
    with dk.files.atomic_path(tmp_path / "a.png") as first, dk.files.atomic_path(tmp_path / "a.png") as second:
        assert first != second
        Path(first).write_text("1")
        Path(second).write_text("2")
    assert os.listdir(tmp_path) == ["a.png"]  # whichever rename came last, and no temporary file


# 9 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("beta_1", 1.5), ("beta_1", float("nan")), ("beta_2", 1.0), ("learning_rate", float("inf")),
    ("g_learning_rate", float("inf")), ("mode_offset", float("inf")),
])
def test_invalid_optimiser_and_prior_settings_are_refused_by_config(field, value):
    with pytest.raises(ValueError, match=rf"{field} must .*Received: {field}={value}"):
        dk.Config(**{field: value})


# 10 ------------------------------------------------------------------------------------


def test_foreign_and_damaged_models_get_one_clear_error(tmp_path):
    import keras
    import tensorflow as tf

    class Foreign(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def double(self, x):
            return {"y": x * 2}

    module = Foreign()
    tf.saved_model.save(module, str(tmp_path / "foreign"), signatures={"serving_default": module.double})
    for load in (dk.load_generator, dk.export.load_sampler):
        with pytest.raises(ValueError, match=r"'.*foreign' is not a generator exported by dcgan_keras"):
            load(tmp_path / "foreign")
    (tmp_path / "foreign" / "saved_model.pb").write_bytes((tmp_path / "foreign" / "saved_model.pb").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cannot be loaded \(.*\); it is damaged or incomplete"):
        dk.load_generator(tmp_path / "foreign")
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(tmp_path / "classifier.keras")
    with pytest.raises(ValueError, match=r"is not an image generator: it takes inputs of shape \(None, 28, 28, 1\)"):
        dk.load_generator(tmp_path / "classifier.keras")


# 11 ------------------------------------------------------------------------------------


def test_an_unwritable_export_dir_or_a_full_disk_is_refused_before_training(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"Cannot create the folder .*is a file.*--export-dir"):
        _train(tmp_path / "run", export_dir=tmp_path / "file" / "exports")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(dk.files, "MIN_FREE_BYTES", 2**62)
    with pytest.raises(ValueError, match=r"MiB free, less than .*--run-dir"):
        _train(tmp_path / "run")
    assert not (tmp_path / "run").exists()

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/ckpt.keras")

    monkeypatch.setattr(dk.cli.train, "_run_train", full)
    assert cli_main(["train"]) == 1
    assert "The disk is full: free some space" in capsys.readouterr().err


# 13 ------------------------------------------------------------------------------------


def test_photos_with_an_exif_rotation_are_warned_about(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        image = Image.fromarray(np.zeros((40, 60, 3), np.uint8))
        exif = image.getexif()
        exif[0x0112] = 6  # rotate 90 degrees to show
        image.save(folder / f"{i}.jpg", exif=exif)
    with pytest.warns(UserWarning, match=r"4 of the 4 image files .* carry an EXIF orientation .*exif_transpose"):
        dk.make_dataset(folder, image_size=32, batch_size=4)


# 14 ------------------------------------------------------------------------------------


def test_a_rename_that_fails_leaves_no_temporary_file_and_a_file_dataset_is_called_a_file(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        with dk.files.atomic_path(tmp_path / "folder") as tmp:
            Path(tmp).write_text("x")
    assert os.listdir(tmp_path) == ["folder"]
    _pngs(tmp_path / "photos", 1)
    with pytest.raises(ValueError, match=r"it is a file, not a folder"):
        dk.make_dataset(tmp_path / "photos" / "ok0.png")
