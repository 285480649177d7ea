"""`KeepBest`: keeps the checkpoint of the best-scoring epoch, not only the last;
`keep_best_callbacks`: it and the callback that scores each epoch, for `train --keep-best`."""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from dcgan_keras.callbacks import EvaluationCallback
from dcgan_keras.guards import save_model_atomic
from dcgan_keras.judge import judge_context, real_digits
from dcgan_keras.metrics import discriminator_features, fid, frechet_metric, inception_features


class KeepBest(keras.callbacks.Callback):
    """Saves the whole model to `path` whenever the monitored score improves.

    GAN samples do not improve monotonically: StudioGAN's DCGAN on CIFAR-10
    reached FID 49.0 at its best step and 137 at its last. This callback
    reads a score that an earlier callback put into the epoch's logs (an
    `EvaluationCallback`, every N epochs; NaN on the other epochs is
    skipped), saves the model atomically when it beats the best so far, and
    adds `best_epoch` (counted from 1) to the logs, so `History` and
    `history.csv` show which epoch holds the kept checkpoint.

    Args:
        path: the `.keras` file of the best epoch, e.g. `runs/digits/best.keras`.
        monitor: the log key of the score, e.g. `"digit_fd"`.
        mode: `"min"` (distances) or `"max"` (scores).

    Example:

    ```python
    callbacks = [EvaluationCallback(frechet_metric(real, features), "digit_fd", every=2),
                 KeepBest("runs/digits/best.keras", monitor="digit_fd")]
    gan.fit(ds, epochs=20, callbacks=callbacks)
    ```
    """

    def __init__(self, path, monitor: str, mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'. Received: mode={mode!r}")
        self.path = os.fspath(path)
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0  # none yet

    def restore(self, history: dict) -> None:
        """Takes up the best score and epoch from a resumed run's history (`{key: [values per epoch]}`)."""
        for epoch, value in enumerate(history.get(self.monitor, []), start=1):
            if math.isfinite(value) and self._better(value):
                self.best, self.best_epoch = value, epoch

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise KeyError(
                f"KeepBest monitors {self.monitor!r}, which no earlier callback logged (logs have "
                f"{sorted(logs)}). List the EvaluationCallback that computes it before KeepBest. "
                f"Received: monitor={self.monitor!r}"
            )
        value = float(logs[self.monitor])
        if math.isfinite(value) and self._better(value):
            save_model_atomic(self.model, self.path)
            self.best, self.best_epoch = value, epoch + 1
        logs["best_epoch"] = self.best_epoch


def keep_best_callbacks(metric: str, every: int, gan, reference, config, run_dir: str) -> list:
    """An `EvaluationCallback` that logs `metric` and the `KeepBest` that keeps its best epoch in `run_dir/best.keras`.

    Args:
        metric: "digit_fd" (Fréchet distance on the digit judge's features, against the
            bundled digits), "fid" (on Inception V3's) or "d_fd" (on `gan`'s own
            discriminator's pooled last-layer features).
        every: epochs between two scores (and after the last).
        gan: the `DCGAN` being trained.
        reference: a dataset of real images (for "fid" and "d_fd").
        config: the run's `Config` (image size, batch size, seed).
        run_dir: the run's folder.

    Returns:
        `[evaluation, keep_best]`, in the order `fit` must run them.
    """
    if metric == "digit_fd":
        _, _, feature_fn = judge_context(config.image_size)
        real = real_digits(config.image_size)
    else:
        real = np.concatenate([batch.numpy() for batch in reference.take(max(1, 2048 // config.batch_size))])
        feature_fn = inception_features() if metric == "fid" else discriminator_features(gan.discriminator)
    score = frechet_metric(real, feature_fn) if metric != "d_fd" else (lambda images: fid(real, images, feature_fn))
    return [
        EvaluationCallback(score, name=metric, every=every, seed=config.seed),
        KeepBest(os.path.join(run_dir, "best.keras"), monitor=metric, mode="min"),
    ]
