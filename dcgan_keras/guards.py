"""Training that fails safely: atomic checkpoints and backups, NaN and collapse checks, Ctrl-C.

`train()` uses all of these; they are plain Keras callbacks, so a hand-written
`model.fit` can use them too:

```python
callbacks = [DivergenceGuard(), AtomicCheckpoint("run/ckpt.keras"), RunBackup("run/backup")]
with GracefulInterrupt() as interrupt:
    gan.fit(ds, epochs=20, callbacks=[interrupt, *callbacks])
```

Every file is written under a temporary name in the same folder and renamed
into place (`os.replace`), so a job killed while writing leaves the previous
file whole. The backup's `state.json` is written last and names the weights
file it belongs to: it is the commit record of an epoch.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import signal
import sys
import threading

import numpy as np

import keras

from dcgan_keras.files import atomic_path, atomic_write_json
from dcgan_keras.sampling import batched_forward, latent_vectors_for

logger = logging.getLogger("dcgan_keras")

COLLAPSE_REMEDIES = (
    "What to try: augment what D sees (--augment translation,cutout, or adaptively with "
    "--augment-target 0.6), which stops D from memorising a small data set; give D less power "
    "(one-sided --label-smoothing 0.1, a smaller --base-width); keep the best epoch rather than the "
    "last (--keep-best digit_fd for digits, d_fd otherwise); check that real images are in [-1, 1] "
    "like G's tanh output; or resume from an earlier epoch with another --seed."
)


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or Inf; nothing of that step was saved."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C (SIGINT) or SIGTERM between two steps."""


def _all_finite(variables) -> bool:
    return all(np.isfinite(np.asarray(v)).all() for v in variables)


def save_model_atomic(model: keras.Model, path) -> str:
    """`model.save(path)` through a temporary file, refusing non-finite weights.

    Args:
        model: the model to save.
        path: a `.keras` file; an existing one is replaced only once the new
            file is complete.

    Returns:
        `path`.

    Raises:
        TrainingDiverged: when a weight is NaN or Inf (the old file is kept).
    """
    path = os.fspath(path)
    if not _all_finite(model.weights):
        raise TrainingDiverged(
            f"Refusing to save {path}: the model has NaN or Inf weights. The file there, if any, is kept."
        )
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model to one `.keras` file at every epoch end, atomically.

    Args:
        path: the checkpoint file, e.g. `runs/digits/ckpt.keras`.
    """

    def __init__(self, path):
        super().__init__()
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.model, self.path)


class RunBackup(keras.callbacks.Callback):
    """Backs up the training state at every epoch end, for `train(..., resume=True)`.

    The state is everything an uninterrupted run would carry on with: the
    weights of all networks and both optimizers (`save_weights`), the
    training noise generator's state (`model.seed_generator`, which
    `save_weights` does not cover) and the number of finished epochs.

    Layout of `backup_dir`: `epoch_NNNN.weights.h5` (the newest two are
    kept) and `state.json`, written last, which names its weights file.

    Args:
        backup_dir: the folder of the backup (created).
        keep: how many epochs' weights files to keep.
    """

    STATE = "state.json"

    def __init__(self, backup_dir, keep: int = 2):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch_{epoch + 1:04d}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, name)) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        seed = getattr(self.model, "seed_generator", None)
        state = {
            "epoch": epoch + 1,
            "weights": name,
            "seed_state": None if seed is None else np.asarray(seed.state.numpy()).tolist(),
        }
        atomic_write_json(os.path.join(self.backup_dir, self.STATE), state)
        for old in sorted(glob.glob(os.path.join(self.backup_dir, "epoch_*.weights.h5")))[: -self.keep]:
            os.remove(old)


def read_backup(backup_dir) -> dict | None:
    """The state of the newest complete backup in `backup_dir`, or `None` when there is none."""
    path = os.path.join(os.fspath(backup_dir), RunBackup.STATE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        state = json.load(f)
    if not os.path.exists(os.path.join(os.fspath(backup_dir), state["weights"])):
        raise FileNotFoundError(
            f"The backup in {os.fspath(backup_dir)!r} names {state['weights']}, which is missing. "
            "The backup folder was changed by hand; train without resume (with overwrite) instead."
        )
    return state


def restore_backup(model: keras.Model, backup_dir) -> int:
    """Loads the newest backup of `backup_dir` into `model` (built and compiled).

    Returns:
        The number of finished epochs it holds (pass it to `fit` as
        `initial_epoch`); 0 when there is no backup.
    """
    state = read_backup(backup_dir)
    if state is None:
        return 0
    model.load_weights(os.path.join(os.fspath(backup_dir), state["weights"]))
    seed = getattr(model, "seed_generator", None)
    if seed is not None and state.get("seed_state") is not None:
        seed.state.assign(np.asarray(state["seed_state"], dtype=seed.state.dtype))
    return int(state["epoch"])


class DivergenceGuard(keras.callbacks.Callback):
    """Stops at the first NaN/Inf loss or weight, naming the step; warns when D collapses.

    Checked after every step: the losses (`d_loss`, `g_loss`). Checked at
    every epoch end, before any checkpoint is written: all weights. Place it
    first among the callbacks so nothing later sees a broken model; it
    raises `TrainingDiverged`, which skips the epoch's saves, so the last
    good checkpoint and backup stay as they were.

    D collapse: D's loss of each step (recovered from the epoch's running
    mean) below `collapse_threshold` for `collapse_patience` steps in a row
    means D tells every fake apart and G's gradients vanish; a warning with
    the usual remedies goes to the `dcgan_keras` logger, once per run.

    Args:
        collapse_threshold: D loss (sum of the real and fake cross-entropies)
            counted as collapsed; 0.01 is D giving ~0.995 to reals and ~0.005
            to fakes. (Healthy digits runs dip to an epoch mean of ~0.06 early
            on and recover.)
        collapse_patience: consecutive collapsed steps before warning.
    """

    def __init__(self, collapse_threshold: float = 0.01, collapse_patience: int = 200):
        super().__init__()
        self.collapse_threshold = collapse_threshold
        self.collapse_patience = collapse_patience
        self.collapse_step: int | None = None

    def on_train_begin(self, logs=None):
        self._step = _iterations(self.model)
        self._low_steps = 0
        self.collapse_step = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._previous_mean = epoch, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        logs = logs or {}
        values = {k: float(logs[k]) for k in ("d_loss", "g_loss") if k in logs}
        broken = {k: v for k, v in values.items() if not math.isfinite(v)}
        if broken:
            raise TrainingDiverged(
                f"Training diverged at step {self._step} (epoch {self._epoch + 1}, batch {batch + 1}): "
                f"{', '.join(f'{k}={v}' for k, v in broken.items())}. Training stopped; the checkpoint "
                "and backup of the last finished epoch are kept and no generator was exported. "
                "Try a lower learning rate, check the data for NaN, or resume from the backup "
                "with another seed."
            )
        if "d_loss" in values:
            mean = values["d_loss"]
            step_loss = mean * (batch + 1) - self._previous_mean * batch  # this step's own loss
            self._previous_mean = mean
            self._low_steps = self._low_steps + 1 if step_loss < self.collapse_threshold else 0
            if self._low_steps == self.collapse_patience and self.collapse_step is None:
                self.collapse_step = self._step
                logger.warning(
                    "The discriminator is winning (step %d): its loss has stayed below %.3g for %d steps, "
                    "so it tells every fake from the real images and the generator gets almost no "
                    "gradient to learn from. %s",
                    self._step, self.collapse_threshold, self.collapse_patience, COLLAPSE_REMEDIES,
                )

    def on_epoch_end(self, epoch, logs=None):
        if not _all_finite(self.model.weights):
            raise TrainingDiverged(
                f"Training diverged in epoch {epoch + 1} (by step {self._step}): a weight became NaN "
                "or Inf while the losses were still finite. Training stopped; the checkpoint and backup "
                "of the last finished epoch are kept and no generator was exported. Try a lower "
                "learning rate."
            )


def _iterations(model) -> int:
    """Steps taken so far (a DCGAN counts them in its generator's optimizer)."""
    optimizer = getattr(model, "g_optimizer", None) or getattr(model, "optimizer", None)
    return int(optimizer.iterations.numpy()) if optimizer is not None else 0


class GracefulInterrupt(keras.callbacks.Callback):
    """Turns Ctrl-C (SIGINT) and SIGTERM into a clean stop between two steps.

    While installed (use it as a context manager around `fit`), the first
    signal only sets a flag; the step running and any file being written
    finish, then `TrainingInterrupted` is raised from the next batch end, so
    the epoch's saves are skipped and the last finished epoch's checkpoint
    and backup stay complete. A second Ctrl-C stops at once. Outside the
    main thread (where Python cannot handle signals) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.requested: str | None = None
        self._previous: dict = {}
        self._epoch, self._step = 0, 0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: stop now
            self.__exit__()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(
            f"\n{self.requested} received: stopping after this step (again to stop at once).",
            file=sys.stderr, flush=True,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            raise TrainingInterrupted(
                f"Training stopped by {self.requested} in epoch {self._epoch + 1} after batch {batch + 1}; "
                f"the last finished epoch ({self._epoch}) is saved."
            )


class ModeCollapseGuard(keras.callbacks.Callback):
    """Warns, in plain words, when the generator's samples stop differing from each other.

    Mode collapse: G finds a few images that fool D and maps every z to them.
    At every epoch end the guard draws `num_images` samples from fixed noise
    and measures their diversity, the mean distance between two samples
    (pixels in [-1, 1]). It warns once (the `dcgan_keras` logger) when the
    diversity falls below `threshold` times the highest diversity this run
    has shown, e.g. from 0.8 to under 0.2.

    Args:
        num_images: samples per check.
        threshold: share of the run's best diversity below which it warns.
        seed: seed of the fixed noise.
    """

    def __init__(self, num_images: int = 64, threshold: float = 0.25, seed: int = 0):
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1). Received: threshold={threshold}")
        self.num_images, self.threshold, self.seed = num_images, threshold, seed
        self.best = 0.0
        self.collapse_epoch: int | None = None

    def diversity(self) -> float:
        """Mean pairwise distance of the sampler's images from the fixed noise."""
        sampler = getattr(self.model, "sampler", self.model)
        z = latent_vectors_for(sampler, self.num_images, seed=self.seed)
        images = batched_forward(sampler, z).reshape(self.num_images, -1).astype("float64")
        squared = (images**2).sum(axis=1)
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * images @ images.T, 0.0))
        return float(distances.sum() / (self.num_images * (self.num_images - 1)))

    def on_epoch_end(self, epoch, logs=None):
        value = self.diversity()
        if self.collapse_epoch is None and value < self.threshold * self.best:
            self.collapse_epoch = epoch + 1
            logger.warning(
                "The samples are collapsing (epoch %d): images drawn from different noise have become "
                "nearly alike (their mean distance is %.0f%% of what it was at its highest in this run), "
                "so the generator covers only a few kinds of images. %s",
                epoch + 1, 100.0 * value / self.best, COLLAPSE_REMEDIES,
            )
        self.best = max(self.best, value)
