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
import time

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


class DataRanOut(RuntimeError):
    """An epoch yielded fewer batches than announced: the images could not be read."""


class EpochLengthGuard(keras.callbacks.Callback):
    """Stops training when an epoch ends with fewer batches than `fit` announced.

    A dataset of a known length (`make_dataset`) runs short only when its files
    stop decoding (e.g. every image is in a format TensorFlow cannot read); Keras
    itself only warns "Your input ran out of data" and goes on, so a run would
    "finish" without training. Place it first: it raises `DataRanOut` from the
    epoch's end, before any checkpoint or backup of that epoch is written.

    Args:
        dataset: the training dataset, to name the files that failed
            (`make_dataset` records them); optional.
    """

    def __init__(self, dataset=None):
        super().__init__()
        self.failures = getattr(dataset, "unreadable_files", None)

    def on_epoch_begin(self, epoch, logs=None):
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        expected = (self.params or {}).get("steps")
        if expected and self._batches < expected:
            failed = list(getattr(self.failures, "paths", []) or [])
            named = (
                f" {len(failed)} file(s) failed to decode while reading, e.g. "
                + ", ".join(os.path.basename(p) for p in failed[:5]) + "." if failed else ""
            )
            raise DataRanOut(
                f"The data ran out in epoch {epoch + 1} after {self._batches} of {expected} batches, so "
                f"this epoch was not trained on.{named} The images cannot be read (corrupt, or in a format "
                "TensorFlow cannot decode, such as TIFF or AVIF under a .jpg or .png name): convert them "
                "to PNG or JPEG (dcgan_keras.data.scan_image_folder lists them). Nothing of this epoch "
                "was saved and no generator was exported."
            )


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
        try:
            previous = _read_state(self.backup_dir)
        except ValueError:
            previous = None
        if previous:
            previous.pop("previous", None)
        state = {
            "epoch": epoch + 1,
            "weights": name,
            "seed_state": None if seed is None else np.asarray(seed.state.numpy()).tolist(),
            "previous": previous,  # restored when this epoch's weights file cannot be read
        }
        atomic_write_json(os.path.join(self.backup_dir, self.STATE), state)
        for old in sorted(glob.glob(os.path.join(self.backup_dir, "epoch_*.weights.h5")))[: -self.keep]:
            os.remove(old)


def _read_state(backup_dir) -> dict | None:
    """`backup_dir/state.json`, or `None` when there is none; a ValueError naming it when it is damaged."""
    path = os.path.join(os.fspath(backup_dir), RunBackup.STATE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            state = json.load(f)
        int(state["epoch"]), str(state["weights"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The backup record {path!r} cannot be read ({type(error).__name__}: {error}); it was damaged "
            "(e.g. truncated). The finished epochs' weights are beside it, but not which one to continue "
            "from: restore the file from a copy, or start the run again with --overwrite (overwrite=True), "
            "or in another run_dir."
        ) from None
    return state


def read_backup(backup_dir) -> dict | None:
    """The state of the newest complete backup in `backup_dir`, or `None` when there is none.

    Raises:
        ValueError: when `state.json` is damaged (names the file and what to do).
    """
    state = _read_state(backup_dir)
    if state is None:
        return None
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
    backup_dir = os.fspath(backup_dir)
    try:
        model.load_weights(os.path.join(backup_dir, state["weights"]))
    except (ValueError, KeyError) as error:  # other shapes: the model was built with other settings
        raise ValueError(
            f"The backup in {backup_dir!r} does not fit this model ({_first_line(error)}): the run was "
            "made with other settings. Resume with the run's own settings (its config.json), or start a "
            "new run in another run_dir."
        ) from None
    except OSError as error:  # truncated or damaged HDF5: fall back to the epoch before
        previous = state.get("previous")
        if not previous:  # a backup from before state.json kept its previous epoch: the older weights file
            older = sorted(glob.glob(os.path.join(glob.escape(backup_dir), "epoch_*.weights.h5")))
            older = [os.path.basename(f) for f in older if os.path.basename(f) < state["weights"]]
            if older:
                previous = {"epoch": int(older[-1][len("epoch_"):-len(".weights.h5")]), "weights": older[-1]}
        if not previous or not os.path.exists(os.path.join(backup_dir, previous["weights"])):
            raise ValueError(
                f"The backup weights {os.path.join(backup_dir, state['weights'])!r} cannot be read "
                f"({_first_line(error)}) and no earlier epoch's backup is kept. Start the run again with "
                "--overwrite (overwrite=True), or in another run_dir."
            ) from None
        logger.warning(
            "The newest backup weights %s cannot be read (%s); resuming from the epoch before, %d, "
            "whose backup is kept for this.", state["weights"], _first_line(error), previous["epoch"],
        )
        model.load_weights(os.path.join(backup_dir, previous["weights"]))
        state = previous
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


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

    The main thread may be stuck where Python cannot run a handler (a step
    waiting for a file read that blocks, e.g. on a hung network mount). A
    watchdog thread sees every signal too (`signal.set_wakeup_fd`): after a
    second signal, or `hard_stop_seconds` after a SIGTERM, if the process is
    still running it ends it (`os._exit`, exit code 128 + the signal). Every
    file is written atomically, so the last finished epoch is kept.

    Args:
        hard_stop_seconds: how long a stop may take before the process is ended.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, hard_stop_seconds: float = 5.0):
        super().__init__()
        self.requested: str | None = None
        self.hard_stop_seconds = hard_stop_seconds
        self._previous: dict = {}
        self._epoch, self._step = 0, 0
        self._wakeup = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            self._start_watchdog()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        self._stop_watchdog()
        return False

    def _start_watchdog(self):
        import socket

        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            reader.close(), writer.close()
            return
        self._wakeup = (reader, writer, old_fd, threading.Event())
        threading.Thread(target=self._watch, args=self._wakeup, daemon=True, name="GracefulInterrupt").start()

    def _stop_watchdog(self):
        if self._wakeup is None:
            return
        reader, writer, old_fd, stopped = self._wakeup
        self._wakeup = None
        stopped.set()
        signal.set_wakeup_fd(old_fd)
        writer.close()  # wakes the watchdog up: it closes `reader`

    def _watch(self, reader, writer, old_fd, stopped):
        signals, deadline = [], None
        while not stopped.is_set():
            reader.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
            try:
                data = reader.recv(64)
            except TimeoutError:
                data = None
            except OSError:
                break
            if data == b"":  # closed: the `with` block ended
                break
            signals.extend(number for number in data or b"" if number in self.SIGNALS)
            if deadline is None and (len(signals) >= 2 or signal.SIGTERM in signals):
                deadline = time.monotonic() + self.hard_stop_seconds
            if deadline is not None and time.monotonic() >= deadline and not stopped.is_set():
                print(
                    f"\n{signal.Signals(signals[-1]).name}: the running step did not stop in time (a read or "
                    "write may be blocked); ending the process. The last finished epoch is saved; continue "
                    "with --resume.", file=sys.stderr, flush=True,
                )
                os._exit(128 + signals[-1])
        reader.close()

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
