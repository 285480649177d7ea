"""`train(config, run_dir)`: the whole training job the CLI and notebook run."""

from __future__ import annotations

import json
import os
import time

from dcgan_keras import _backend  # noqa: F401
import keras

from dcgan_keras.callbacks import LossPlot, SampleGrid
from dcgan_keras.config import Config
from dcgan_keras.data import make_dataset
from dcgan_keras.export import export_generator
from dcgan_keras.gan import DCGAN


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

    log_dir = os.path.join(run_dir, "logs") if tensorboard else None
    callbacks = [
        SampleGrid(os.path.join(run_dir, "samples"), every=sample_every, seed=config.seed, log_dir=log_dir),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv")),
        LossPlot(os.path.join(run_dir, "losses.png")),
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "ckpt.keras")),
        keras.callbacks.TerminateOnNaN(),
    ]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir))

    start = time.perf_counter()
    history = gan.fit(ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    steps = int(gan.g_optimizer.iterations.numpy())
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
