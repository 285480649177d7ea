"""`train(config, run_dir)`: the whole training job the CLI and notebook run."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
import warnings

import keras

from dcgan_keras.callbacks import EMABatchNorm, LossPlot, SampleGrid, read_history_csv
from dcgan_keras.checkpoints import load_checkpoint
from dcgan_keras.config import KEEP_BEST_METRICS, Config, default_epochs, default_sample_every
from dcgan_keras.data import make_dataset, open_source
from dcgan_keras.discriminator_wins import DiscriminatorWinsWarning
from dcgan_keras.export import export_generator
from dcgan_keras.files import atomic_write_json, check_writable, locked_folder
from dcgan_keras.distribute import get_strategy, input_shard, is_chief, worker_task
from dcgan_keras.epoch_log import progress_for
from dcgan_keras.gan import DCGAN
from dcgan_keras.keep_best import keep_best_callbacks
from dcgan_keras.guards import (
    AtomicCheckpoint, DivergenceGuard, EpochLengthGuard, GracefulInterrupt, ModeCollapseGuard, RunBackup,
    TrainingInterrupted, read_backup, restore_backup,
)


RUN_FILES = ("ckpt.keras", "backup", "history.csv", "losses.png", "samples", "logs", "config.json")


def _run_record(config: Config, dataset) -> dict:
    return {"config": config.to_dict(), "dataset": "array" if hasattr(dataset, "shape") else str(dataset)}


def _check_run_dir(run_dir: str, record: dict, resume: bool, overwrite: bool) -> list[str]:
    """Refuses to mix two runs in one folder; returns what `overwrite` will replace."""
    config_path = os.path.join(run_dir, "config.json")
    present = [name for name in RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
    if not present:
        return []
    old = None
    if os.path.exists(config_path):
        try:
            with open(config_path) as f:
                old = json.load(f)
            if not isinstance(old, dict):
                raise ValueError(f"a JSON {type(old).__name__}, not an object")
        except (OSError, ValueError) as error:
            if not resume:  # overwrite replaces it unread; without overwrite the run is refused below
                old = None
            else:
                raise ValueError(
                    f"The run record {config_path!r} cannot be read ({type(error).__name__}: {error}); it was "
                    "damaged (e.g. truncated). To continue the run, restore the file, or delete it to resume "
                    "without the check of settings; to start again, pass overwrite=True (--overwrite)."
                ) from None
    if resume:
        if old is None:
            return []  # nothing to compare with; the backup check follows
        try:  # through Config, so that fields added since the run was made take their defaults
            before = Config.from_dict(old.get("config", {})).to_dict()
        except (TypeError, ValueError):
            before = old.get("config", {})
        changed = {
            key: (before.get(key), value) for key, value in record["config"].items() if before.get(key) != value
        }
        if old.get("dataset") != record["dataset"]:
            changed["dataset"] = (old.get("dataset"), record["dataset"])
        if changed:
            diff = ", ".join(f"{k}: {a!r} in the run, {b!r} asked" for k, (a, b) in changed.items())
            raise ValueError(
                f"Cannot resume the run in {run_dir!r} with different settings ({diff}). Resume with "
                "the run's own settings (see its config.json), or start a new run in another run_dir."
            )
        return []
    if not overwrite:
        state = read_backup(os.path.join(run_dir, "backup"))
        done = f"{state['epoch']} finished epoch(s)" if state else "files"
        raise FileExistsError(
            f"{run_dir!r} already holds a run ({done}: {', '.join(present)}). Nothing was changed. "
            "Pass resume=True (--resume) to continue it, overwrite=True (--overwrite) to replace it, "
            "or another run_dir (--run-dir)."
        )
    return [os.path.join(run_dir, name) for name in present]


def _epoch_of(row: dict) -> float:
    try:  # a row cut short by a kill has an empty or partial last field
        return int(row["epoch"]) if all(v not in (None, "") for v in row.values()) else math.inf
    except (TypeError, ValueError):
        return math.inf


def _trim_history(path, epochs: int) -> dict[str, list[float]]:
    """Drops the rows of `history.csv` past the first `epochs` (written after the last backup)."""
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if _epoch_of(r) < epochs]
    if not fields:
        return {}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return read_history_csv(path) if rows else {}


def train(
    config: Config,
    run_dir,
    dataset="digits",
    epochs: int | None = None,
    export_dir: str | None = "saved_models/digits",
    sample_every: int | None = None,
    tensorboard: bool = False,
    data_dir: str | None = None,
    verbose: int | str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list | None = None,
    strategy=None,
    cache="auto",
    keep_best: str | None = None,
    evaluate_every: int = 2,
    channels_from_dataset: bool = False,
) -> dict:
    """Trains a DCGAN and leaves its results in `run_dir`.

    Writes `run_dir/samples/epoch_XXXX.png` (grids from fixed noise),
    `history.csv`, `losses.png`, `ckpt.keras` (the whole model, every epoch),
    `config.json`, and exports the generator to `export_dir/<version>/`.

    Args:
        config: hyper-parameters; `image_size` and `channels` set the data.
        run_dir: folder of this run (created).
        dataset: a source for `make_dataset` ("digits", "tfds:NAME", a folder, an array).
        epochs: passes over the dataset; `None`: `config.default_epochs` (60, or at least
            4,680 steps at 32x32 and 7,020 at 64x64 and up on a smaller data set).
        export_dir: where the generator's SavedModel versions go (`None`: no export).
        sample_every: epochs between sample grids; `None`: 1, or as many as keep about 60
            grids when a small data set trains for more epochs (`default_epochs`).
        tensorboard: also log to `run_dir/logs` for TensorBoard.
        data_dir: TFDS data folder.
        verbose: Keras' progress-bar setting; "auto" prints one line per epoch instead when
            stdout is not a terminal (`epoch_log.progress_for`).
        resume: continue from `run_dir/backup` (weights of both networks and
            of the EMA generator, both optimizers' states, the noise
            generator's state and the epoch counter), e.g. after the job was
            killed, or to extend a finished run to more `epochs` in total.
            Refused when the run's config.json differs from `config` or
            `dataset`. The backup is written at the end of every epoch.
            Note: the data order after a resume is a fresh shuffle, not the one
            the uninterrupted run would have seen (tf.data's shuffle state is
            not backed up).
        overwrite: when `run_dir` already holds a run and `resume` is off,
            replace it (its checkpoint, backup, history and samples are
            deleted). Without it such a `run_dir` is refused and left as it is.
        callbacks: more Keras callbacks for `fit` (e.g. an `EvaluationCallback`).
        strategy: a `tf.distribute.Strategy`, or its name for
            `distribute.make_strategy` ("default", "mirrored", "multi-worker",
            "tpu"); `None` uses the strategy whose scope is active, if any.
            The model is built and compiled in its scope, and
            `config.batch_size` is the global batch, split between replicas.
            In a multi-worker cluster every worker runs this function; only
            the chief writes to `run_dir` and `export_dir`, the others write
            their (identical) results to `run_dir/workers/TYPE_ID`, which
            also keeps each worker's backup for `resume`. Each worker reads
            its own share of the data (`distribute.input_shard`).
        cache: `make_dataset`'s cache: "auto" (in memory when it fits 512 MiB),
            "memory", "off" or a cache file path.
        keep_best: export the generator of the best epoch by this score
            instead of the last: "digit_fd" (Fréchet distance on the digit
            judge's features; for digits), "fid" (on Inception V3's features;
            needs its weights), or "d_fd" (on the trained discriminator's
            pooled last-layer features, for any data when nothing else is
            available; D changes as it trains, so compare its values within
            a run only). Scored every `evaluate_every` epochs and after the
            last; the best epoch is kept in `run_dir/best.keras` and
            `history.csv` gets the score and a `best_epoch` column.
        evaluate_every: epochs between two scores of `keep_best`.
        channels_from_dataset: train on the dataset's own channels (1 for the
            digits and grayscale TFDS datasets, 3 for Twemoji, folders and
            colour ones), read from it where it is opened, instead of
            `config.channels`; the run's config.json records them.

    Returns:
        A summary dict: history, wall time, images per second, paths.

    Raises:
        TrainingDiverged: a loss or weight became NaN/Inf; the last finished
            epoch's checkpoint and backup are kept and nothing is exported.
        TrainingInterrupted: Ctrl-C or SIGTERM; the last finished epoch is
            saved, and `resume=True` continues from it.
    """
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be a positive integer. Received: epochs={epochs}")
    for name, value in (("sample_every", sample_every), ("evaluate_every", evaluate_every)):
        if value is None and name == "sample_every":
            continue
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive number of epochs. Received: {name}={value!r}")
    if resume and overwrite:
        raise ValueError(
            "resume and overwrite exclude each other: resume continues the run in run_dir, overwrite "
            "replaces it. Pass one of them. Received: resume=True, overwrite=True"
        )
    if keep_best is not None and keep_best not in KEEP_BEST_METRICS:
        raise ValueError(
            f"keep_best must be one of {', '.join(KEEP_BEST_METRICS)} (or None to export the last "
            f"epoch). Received: keep_best={keep_best!r}"
        )
    strategy = get_strategy(strategy)  # first: multi-worker must start before other TF work
    run_dir, export_dir = _worker_dirs(os.fspath(run_dir), export_dir, strategy)
    # The places written to are checked before the long work, not after it.
    check_writable(run_dir, "--run-dir")
    if export_dir:
        check_writable(export_dir, "--export-dir")
    if isinstance(cache, (str, os.PathLike)) and os.fspath(cache) not in ("auto", "memory", "off"):
        check_writable(os.path.dirname(os.path.abspath(os.fspath(cache))), "--cache")
    keras.utils.set_random_seed(config.seed)
    source = open_source(dataset, data_dir, config.image_size)  # once: its channels, then its images
    if channels_from_dataset:
        config = config.replace(channels=source.channels)
    if epochs is None:
        epochs = default_epochs(source.count // config.batch_size, config.image_size)
    if sample_every is None:
        sample_every = default_sample_every(epochs)
    record = _run_record(config, dataset)
    replaced = _check_run_dir(run_dir, record, resume, overwrite)
    backup = _backup_to_resume(run_dir, epochs) if resume else None
    resume = backup is not None

    ds = make_dataset(
        source, image_size=config.image_size, channels=config.channels,
        batch_size=config.batch_size, seed=config.seed, data_dir=data_dir,
        cache=cache, shard=input_shard(strategy), mirror=config.mirror,
    )
    gan = _build_model(config, strategy)
    initial_epoch = restore_backup(gan, os.path.join(run_dir, "backup")) if resume else 0
    interrupt = GracefulInterrupt()
    best = []
    if keep_best:
        # Reference images from a pipeline of their own: reading the training one
        # before fit would leave its cache half written.
        reference = make_dataset(
            dataset, image_size=config.image_size, channels=config.channels, batch_size=config.batch_size,
            seed=config.seed, data_dir=data_dir, cache="off",
        )
        best = keep_best_callbacks(keep_best, evaluate_every, gan, reference, config, run_dir)
    all_callbacks = [EpochLengthGuard(ds), *_run_callbacks(
        config, run_dir, interrupt, [*(callbacks or []), *best], initial_epoch if resume else None,
        sample_every, tensorboard,
    )]
    history_csv = os.path.join(run_dir, "history.csv")
    if best and resume and os.path.exists(history_csv):  # the best epoch so far, of the backed-up epochs
        best[-1].restore(read_history_csv(history_csv))

    # Data, model, backup and callbacks are ready: only now is anything in run_dir replaced
    # or written, by one process at a time.
    with locked_folder(run_dir, "a training run"):
        if _check_run_dir(run_dir, record, resume, overwrite) != replaced:  # changed while we got ready
            raise FileExistsError(f"{run_dir!r} was changed by another process while this run got ready; nothing was changed.")
        _prepare_run_dir(run_dir, replaced, {**record, "epochs": epochs})
        history, seconds, steps = _fit(gan, ds, epochs, initial_epoch, all_callbacks, verbose, interrupt, run_dir)
        if steps < 1:  # never export a generator that did not train
            raise RuntimeError(
                f"No training step ran (epochs {initial_epoch + 1} to {epochs}), so no generator was exported. "
                f"Check the data source. Received: dataset={record['dataset']!r}"
            )
        exported = gan
        if best and best[-1].best_epoch:
            exported = load_checkpoint(best[-1].path)
        export = None
        if export_dir:
            with locked_folder(export_dir, "an export", wait=True):  # one export at a time picks a version
                export = export_generator(exported, export_dir)
    return {
        "history": history.history,
        "seconds": seconds,
        "steps": steps,
        "images_per_second": steps * config.batch_size / seconds,
        "run_dir": run_dir,
        "checkpoint": os.path.join(run_dir, "ckpt.keras"),
        "export": export,
        "best_epoch": best[-1].best_epoch if best else None,
        "model": gan,
    }


def _worker_dirs(run_dir: str, export_dir: str | None, strategy) -> tuple[str, str | None]:
    """The run and export folders of this process: the ones asked for on the chief."""
    if is_chief(strategy):
        return run_dir, export_dir
    # Every worker saves too (reading replicated variables may take collective
    # ops all workers join), but into a folder of its own.
    run_dir = os.path.join(run_dir, "workers", "%s_%s" % worker_task(strategy))
    return run_dir, (os.path.join(run_dir, "export") if export_dir else None)


def _backup_to_resume(run_dir: str, epochs: int) -> dict | None:
    """The run's backup record, or `None` (with a warning) when there is none."""
    backup_dir = os.path.join(run_dir, "backup")
    backup = read_backup(backup_dir)
    if backup is None:
        warnings.warn(f"resume=True but there is no backup in {backup_dir}; training starts afresh.", stacklevel=3)
    elif backup["epoch"] >= epochs:
        raise ValueError(
            f"The run in {run_dir!r} has already finished {backup['epoch']} epochs; ask for more "
            f"epochs to extend it. (To export its generator as it is: python -m dcgan_keras export "
            f"--checkpoint {os.path.join(run_dir, 'ckpt.keras')} --name NAME.) Received: epochs={epochs}"
        )
    return backup


def _build_model(config: Config, strategy) -> DCGAN:
    """A compiled DCGAN whose variables are replicated as `strategy` says."""
    with strategy.scope():
        gan = DCGAN.from_settings(config)
        gan.compile(jit_compile=config.jit_compile)  # the paper's Adam with config's learning rate and betas
    return gan


def _prepare_run_dir(run_dir: str, replaced: list[str], record: dict) -> None:
    """Deletes what `overwrite` replaces and writes the run's config.json."""
    for path in replaced:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_json(os.path.join(run_dir, "config.json"), record)


def _run_callbacks(config, run_dir, interrupt, extra, resumed_epoch, sample_every, tensorboard) -> list:
    """The callbacks of a run, in order; `resumed_epoch` is `None` for a new run."""
    history_csv = os.path.join(run_dir, "history.csv")
    loss_plot = LossPlot(os.path.join(run_dir, "losses.png"))
    if resumed_epoch is not None:
        # Keep the history of the backed-up epochs only, and go on appending to it.
        loss_plot.history = _trim_history(history_csv, resumed_epoch)
    log_dir = os.path.join(run_dir, "logs") if tensorboard else None
    return [
        DivergenceGuard(),  # first: nothing below sees a broken model
        interrupt,
        EMABatchNorm(),  # before anything that samples or saves the generator
        ModeCollapseGuard(seed=config.seed),
        DiscriminatorWinsWarning(),
        *(extra or []),  # before the logger, so their logs (e.g. a metric) reach history.csv
        SampleGrid(os.path.join(run_dir, "samples"), every=sample_every, seed=config.seed, log_dir=log_dir),
        keras.callbacks.CSVLogger(history_csv, append=resumed_epoch is not None),
        loss_plot,
        AtomicCheckpoint(os.path.join(run_dir, "ckpt.keras")),
        RunBackup(os.path.join(run_dir, "backup")),  # kept after the run, so a finished run can be extended too
        *([keras.callbacks.TensorBoard(log_dir)] if log_dir else []),
    ]


def _fit(gan, ds, epochs, initial_epoch, callbacks, verbose, interrupt, run_dir):
    """Runs `gan.fit`; returns its history, the seconds it took and the steps it made."""
    first_step = int(gan.g_optimizer.iterations.numpy())
    start = time.perf_counter()
    try:
        with interrupt:
            verbose, callbacks = progress_for(verbose, callbacks)  # one line per epoch unless on a terminal
            # shuffle=False: make_dataset shuffles already (Keras warns that fit's own
            # shuffle does nothing for a tf.data.Dataset).
            history = gan.fit(ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                              verbose=verbose, shuffle=False)
    except TrainingInterrupted as stop:
        raise TrainingInterrupted(
            f"{stop} It is in {run_dir!r} (ckpt.keras, backup/); continue with resume=True (--resume)."
        ) from None
    return history, time.perf_counter() - start, int(gan.g_optimizer.iterations.numpy()) - first_step
