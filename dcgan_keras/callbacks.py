"""Callbacks for GAN training: the EMA generator's batch norm, sample grids, a loss plot and sample-quality evaluation."""

from __future__ import annotations

import csv
import math
import os

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras.files import atomic_path
from dcgan_keras.images import image_grid, save_png
from dcgan_keras.sampling import batched_forward, latent_vectors_for


class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of samples from fixed noise every `every` epochs.

    The noise is drawn once, from `seed`, so grids of different epochs show
    the same latent vectors and progress is visible at a glance. Files are
    named `epoch_0001.png`, ... Batch norm runs in inference mode, and the
    EMA generator is used when the model keeps one.

    Args:
        directory: folder for the PNG files (created if needed).
        num_images: images per grid.
        every: write a grid every this many epochs (and after the last one).
        seed: seed of the fixed noise.
        log_dir: if given, the grid is also written as a TensorBoard image
            summary under this folder.

    Example:

    ```python
    gan.fit(dataset, epochs=5, callbacks=[SampleGrid("runs/demo/samples")])
    ```
    """

    def __init__(self, directory, num_images: int = 64, every: int = 1, seed: int = 0, log_dir=None):
        super().__init__()
        if num_images < 1:
            raise ValueError(f"num_images must be positive. Received: num_images={num_images}")
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs. Received: every={every}")
        self.directory = os.fspath(directory)
        self.num_images = num_images
        self.every = every
        self.seed = seed
        self.log_dir = log_dir
        self.noise = None
        self._writer = None
        self.written = []

    def on_train_begin(self, logs=None):
        if self.noise is None:
            self.noise = self.model.noise(self.num_images, self.seed)

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and (last is None or epoch + 1 != last):
            return
        samples = self.model.sampler(self.noise, training=False)
        grid = image_grid(np.asarray(samples))
        path = save_png(grid, os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png"))
        self.written.append(path)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.fspath(self.log_dir))
            with self._writer.as_default():
                tf.summary.image("samples", (grid[None] + 1.0) / 2.0, step=epoch + 1)
            self._writer.flush()


class EMABatchNorm(keras.callbacks.Callback):
    """After every epoch, sets the EMA generator's batch-norm statistics to its own.

    `DCGAN.recalibrate_batch_norm`: 1,024 samples through the generator, a few
    percent of an epoch's time. Put it before the callbacks that sample or save
    the model.
    """

    def on_epoch_end(self, epoch, logs=None):
        self.model.recalibrate_batch_norm()


class LossPlot(keras.callbacks.Callback):
    """Plots the training curves (losses and D's outputs) to a PNG after every epoch.

    Args:
        path: the PNG file to write.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        plot_history(self.history, self.path)


def read_history_csv(path) -> dict[str, list[float]]:
    """Reads a `keras.callbacks.CSVLogger` file into `{metric: [values per epoch]}`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    value = lambda text: float("nan") if text in ("", "NA") else float(text)  # noqa: E731
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch" and any(r[k] not in ("", "NA") for r in rows)]
    return {key: [value(row[key]) for row in rows] for key in keys}


def plot_history(history: dict[str, list[float]], path) -> str:
    """Draws losses (left) and D's mean outputs on real and fake (right) to a PNG."""
    # A bare Figure draws without pyplot, so it never changes the caller's backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.5))
    left, right = fig.subplots(1, 2)
    for key in ("d_loss", "g_loss"):
        if key in history:
            left.plot(range(1, len(history[key]) + 1), history[key], label=key)
    left.set(xlabel="epoch", ylabel="loss", title="Losses")
    left.legend()
    for key in ("d_real", "d_fake"):
        if key in history:
            right.plot(range(1, len(history[key]) + 1), history[key], label=key)
    right.set(xlabel="epoch", ylabel="mean D(x)", title="Discriminator outputs", ylim=(0, 1))
    right.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return os.fspath(path)


class EvaluationCallback(keras.callbacks.Callback):
    """Scores the model's samples from fixed noise every `every` epochs and logs the score.

    The score goes into the epoch's `logs` under `name` (so it appears in
    `History` and in a `CSVLogger` listed after this callback); on epochs
    without evaluation it is NaN, so the columns stay the same. A metric
    returning a dict logs `name_KEY` for each numeric entry.

    Args:
        metric_fn: images in [-1, 1] -> float (or dict of floats), e.g.
            `metrics.frechet_metric(real_images, feature_fn)`.
        name: the log key.
        every: evaluate every this many epochs (and after the last one).
        num_images: samples per evaluation.
        seed: seed of the fixed noise.
        log_dir: if given, also writes TensorBoard scalars there.

    Example:

    ```python
    fd = frechet_metric(real, feature_model(classifier, "features"))
    gan.fit(ds, epochs=25, callbacks=[EvaluationCallback(fd, "digit_fd", every=5), CSVLogger("log.csv")])
    ```
    """

    def __init__(self, metric_fn, name: str = "eval", every: int = 1, num_images: int = 1000,
                 seed: int = 0, log_dir=None, batch_size: int = 256):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs. Received: every={every}")
        if num_images < 2:
            raise ValueError(f"num_images must be at least 2. Received: num_images={num_images}")
        self.metric_fn = metric_fn
        self.name = name
        self.every = every
        self.num_images = num_images
        self.seed = seed
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.batch_size = batch_size
        self.noise = None
        self.history: list[tuple[int, dict]] = []  # (epoch, counted from 1; the values)
        self._keys: list[str] = [name]
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.noise is None:
            self.noise = latent_vectors_for(self.model, self.num_images, self.seed)

    def _samples(self) -> np.ndarray:
        return batched_forward(getattr(self.model, "sampler", self.model), self.noise, self.batch_size)

    def evaluate(self) -> dict:
        """Scores the current samples now; returns `{log key: value}`."""
        value = self.metric_fn(self._samples())
        if isinstance(value, dict):
            return {f"{self.name}_{k}": float(v) for k, v in value.items() if isinstance(v, (int, float, np.number))}
        return {self.name: float(value)}

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if logs is None:
            logs = {}
        if (epoch + 1) % self.every and (last is None or epoch + 1 != last):
            for key in self._keys:
                logs[key] = math.nan
            return
        values = self.evaluate()
        self._keys = list(values)
        logs.update(values)
        self.history.append((epoch + 1, values))
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for key, value in values.items():
                    tf.summary.scalar(key, value, step=epoch + 1)
            self._writer.flush()
