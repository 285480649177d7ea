"""`train(config, run_dir)`: the whole training job the CLI and notebook run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import warnings

import numpy as np

from dcgan_keras import _backend  # noqa: F401
import keras

from dcgan_keras.callbacks import LossPlot, SampleGrid, read_history_csv
from dcgan_keras.config import Config
from dcgan_keras.data import make_dataset
from dcgan_keras.export import export_generator
from dcgan_keras.gan import DCGAN


class SeedStateBackup(keras.callbacks.Callback):
    """Backs up and restores the state of `model.seed_generator` (the noise of `train_step`).

    `keras.callbacks.BackupAndRestore` saves the model with `save_weights`,
    which covers the networks and both optimizers but not the state of a
    `keras.random.SeedGenerator`; without it, a resumed run would draw the
    same z sequence again from its start.

    Args:
        backup_dir: the folder of the `BackupAndRestore` callback.
    """

    FILENAME = "seed_generator_state.json"

    def __init__(self, backup_dir):
        super().__init__()
        self.path = os.path.join(os.fspath(backup_dir), self.FILENAME)

    def on_train_begin(self, logs=None):
        state = getattr(self.model, "seed_generator", None)
        if state is None or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            saved = json.load(f)
        metadata = os.path.join(os.path.dirname(self.path), "training_metadata.json")
        if os.path.exists(metadata):
            with open(metadata) as f:
                epoch = json.load(f).get("epoch")
            if epoch != saved.get("epoch"):
                # The job was killed between the two backups of one epoch.
                warnings.warn(
                    f"The noise generator's backup (epoch {saved.get('epoch')}) does not match "
                    f"the model's (epoch {epoch}); the noise sequence starts afresh.",
                    stacklevel=2,
                )
                return
        state.state.assign(np.asarray(saved["state"], dtype=state.state.dtype))

    def on_epoch_end(self, epoch, logs=None):
        state = getattr(self.model, "seed_generator", None)
        if state is None:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"state": np.asarray(state.state.numpy()).tolist(), "epoch": epoch + 1}, f)
        os.replace(tmp, self.path)


def _backed_up_epochs(backup_dir) -> int:
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f).get("epoch", 0))


def _trim_history(path, epochs: int) -> dict[str, list[float]]:
    """Drops the rows of `history.csv` past the first `epochs` (written after the last backup)."""
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if int(float(r["epoch"])) < epochs]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return read_history_csv(path) if rows else {}


def train(
    config: Config,
    run_dir,
    dataset="digits",
    epochs: int = 20,
    export_dir: str | None = "saved_models/digits",
    sample_every: int = 1,
    tensorboard: bool = False,
    data_dir: str | None = None,
    verbose: int | str = "auto",
    resume: bool = False,
) -> dict:
    """Trains a DCGAN and leaves its results in `run_dir`.

    Writes `run_dir/samples/epoch_XXXX.png` (grids from fixed noise),
    `history.csv`, `losses.png`, `ckpt.keras` (the whole model, every epoch),
    `config.json`, and exports the generator to `export_dir/<version>/`.

    Args:
        config: hyper-parameters; `image_size` and `channels` set the data.
        run_dir: folder of this run (created).
        dataset: a source for `make_dataset` ("digits", "tfds:NAME", a folder, an array).
        epochs: passes over the dataset.
        export_dir: where the generator's SavedModel versions go (`None`: no export).
        sample_every: epochs between sample grids.
        tensorboard: also log to `run_dir/logs` for TensorBoard.
        data_dir: TFDS data folder.
        verbose: Keras' progress-bar setting.
        resume: continue from `run_dir/backup` (weights of both networks and
            of the EMA generator, both optimizers' states, the noise
            generator's state and the epoch counter), e.g. after the job was
            killed, or to extend a finished run to more `epochs` in total.
            When `False`, an old backup is deleted and training starts afresh.
            The backup is written at the end of every epoch either way.
            Note: the data order after a resume is a fresh shuffle, not the one
            the uninterrupted run would have seen (tf.data's shuffle state is
            not backed up).

    Returns:
        A summary dict: history, wall time, images per second, paths.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be a positive integer. Received: epochs={epochs}")
    keras.utils.set_random_seed(config.seed)
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "dataset": str(dataset) if not hasattr(dataset, "shape") else "array", "epochs": epochs}, f, indent=2)

    ds = make_dataset(
        dataset, image_size=config.image_size, channels=config.channels,
        batch_size=config.batch_size, seed=config.seed, data_dir=data_dir,
    )
    gan = DCGAN.from_config(config)
    gan.compile()
    if gan.optimizer is not None and not gan.optimizer.built:
        # keras.Model.compile's default optimizer, which DCGAN never uses: built
        # empty so that BackupAndRestore does not build it with every weight on
        # resume and then warn that the backup's (empty) state does not fit.
        gan.optimizer.build([])

    backup_dir = os.path.join(run_dir, "backup")
    history_csv = os.path.join(run_dir, "history.csv")
    loss_plot = LossPlot(os.path.join(run_dir, "losses.png"))
    if not resume:
        shutil.rmtree(backup_dir, ignore_errors=True)
    elif not os.path.exists(os.path.join(backup_dir, "latest.weights.h5")):
        warnings.warn(f"resume=True but there is no backup in {backup_dir}; training starts afresh.", stacklevel=2)
        resume = False
    else:
        # Keep the history of the backed-up epochs only, and go on appending to it.
        loss_plot.history = _trim_history(history_csv, _backed_up_epochs(backup_dir))

    log_dir = os.path.join(run_dir, "logs") if tensorboard else None
    callbacks = [
        SampleGrid(os.path.join(run_dir, "samples"), every=sample_every, seed=config.seed, log_dir=log_dir),
        keras.callbacks.CSVLogger(history_csv, append=resume),
        loss_plot,
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "ckpt.keras")),
        keras.callbacks.TerminateOnNaN(),
    ]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir))
    # Kept after the run (delete_checkpoint=False) so that a finished run can
    # also be continued to more epochs with `resume=True`.
    callbacks += [
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
        SeedStateBackup(backup_dir),
    ]
    # The step counter once a backup is restored, so that speed counts this call's steps only.
    first_step = []
    callbacks.append(keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: first_step.append(int(gan.g_optimizer.iterations.numpy()))
    ))

    start = time.perf_counter()
    history = gan.fit(ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    steps = int(gan.g_optimizer.iterations.numpy()) - (first_step[0] if first_step else 0)
    summary = {
        "history": history.history,
        "seconds": seconds,
        "steps": steps,
        "images_per_second": steps * config.batch_size / seconds,
        "run_dir": run_dir,
        "checkpoint": os.path.join(run_dir, "ckpt.keras"),
        "export": export_generator(gan, export_dir) if export_dir else None,
        "model": gan,
    }
    return summary
