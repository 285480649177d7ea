"""One check of dcgan_keras on a GPU: training, input and serving images/s beside the device's peak.

Usage: python benchmarks/gpu_check.py [--quick] [--steps 50] [--repeats 3] [--budget-s 390]
           [--precisions mixed_bfloat16,float32,mixed_float16] [--peak-tflops 16BIT,FP32] [--no-torch]

Prints three tables, in this order:

1. Input: `make_dataset` on a folder of 64x64 JPEGs that the script writes from
   the bundled digits (coloured: a random ink and paper colour per image), decoding
   every epoch (`cache="off"`) and from the memory cache (`train_throughput.pipeline_rate`).
2. Serving: `export_generator` of the 64x64x3 generator, then the SavedModel's
   `serving_default` at batch 256 (`serving_throughput.serving_rate`).
3. Training: images/s of `DCGAN.fit` at 64x64x3 with the paper's networks
   (`train_throughput.keras_round`: data in memory, each round one epoch of
   `--steps` steps, timed by a callback), for each precision (float32,
   mixed_float16, mixed_bfloat16), XLA off and on (`compile(jit_compile=...)`),
   batch 128 and 512, with `Config.fast_layers` on, and off at batch 128; then in
   mixed_bfloat16 at batch 128 under a `tf.distribute.MirroredStrategy` of one
   device (what `train --strategy mirrored` builds on a one-GPU machine) with
   `jit_compile` "auto" and True. "XLA in step" reads the traced step
   (`distribute.step_uses_xla`): whether Keras kept XLA. Where torch is installed
   (with CUDA when TensorFlow trains on a GPU), the pytorch/examples DCGAN step
   (`train_throughput.torch_rounds`, default and channels_last memory formats)
   runs on the same device. The rows of one precision and batch are timed in
   alternating rounds (median of `--repeats`). TFLOP/s is images/s times the
   analytic FLOPs of a step per image (`train_throughput.train_flops_per_image`:
   2.28 GFLOP at 64x64 for `DCGAN.train_step`, 2.48 for the reference step), set
   against the device's dense 16-bit tensor-core peak and its float32 peak without
   tensor cores (`PEAKS`, or `--peak-tflops`; TensorFlow runs float32 convolutions
   as TF32 on Ampere and later, so float32 rows can pass the float32 peak).

A row that would start after `--budget-s` seconds is printed as skipped, so that
the whole check ends in time (under 8 minutes on one GPU), and a row that fails
prints its error. `--quick` runs every row at toy size (32x32x3, base width 8,
latent 16, batches 8 and 16, 2 steps, one round, no time budget; on a CPU, XLA
compiles at optimisation level 0): a smoke test of the script on any machine; its
numbers are not speeds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

# Before the imports below: they build nothing on a device, but serving_throughput
# hides GPUs for its own CPU-only run unless CUDA_VISIBLE_DEVICES is already set.
GPUS = tf.config.list_physical_devices("GPU")
for _gpu in GPUS:
    tf.config.experimental.set_memory_growth(_gpu, True)  # leave memory for PyTorch's rows
_VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES")

import dcgan_keras as dk  # noqa: E402  (first: it selects Keras' TensorFlow backend)
import keras  # noqa: E402
from dcgan_keras.distribute import step_uses_xla  # noqa: E402
from serving_throughput import serving_rate  # noqa: E402
from train_throughput import keras_round, pipeline_rate, torch_rounds, train_flops_per_image  # noqa: E402

if _VISIBLE is None:
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)

# In this order, so that a run cut short by --budget-s loses the rows of least interest on a GPU.
PRECISIONS = ("mixed_bfloat16", "float32", "mixed_float16")
MIRRORED_PRECISION = "mixed_bfloat16"
TORCH_VARIANTS = ("default", "channels_last")
# Dense peaks in TFLOP/s from NVIDIA's data sheets: (16-bit tensor cores, float32 without
# tensor cores). The first pattern found in the device's name wins.
PEAKS = (
    (r"H200 NVL", 835.0, 60.0),
    (r"H200", 989.0, 66.9),
    (r"H100.*PCIe", 756.0, 51.2),
    (r"H100", 989.0, 66.9),
    (r"A100", 312.0, 19.5),
    (r"\bL4\b", 121.0, 30.3),
    (r"\bT4\b", 65.0, 8.1),  # float16 only: Turing has no bfloat16 tensor cores
    (r"V100", 125.0, 15.7),
)
FULL = {"image_size": 64, "base_width": 64, "latent_dim": 100, "batches": (128, 512), "files": 5000, "serve_batch": 256}
QUICK = {"image_size": 32, "base_width": 8, "latent_dim": 16, "batches": (8, 16), "files": 256, "serve_batch": 16}


def device_name() -> str:
    """The GPU TensorFlow trains on, by its driver's name, else the CPU."""
    if GPUS:
        return tf.config.experimental.get_device_details(GPUS[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores visible)"


def device_peaks(name: str, given: str | None) -> tuple[float | None, float | None]:
    """(16-bit, float32) peak TFLOP/s: `given` as "16BIT,FP32", else `PEAKS` by name; None where unknown."""
    if given:
        half, single = map(float, given.split(","))
        return half, single
    if not GPUS:
        return None, None
    return next(((half, single) for pattern, half, single in PEAKS if re.search(pattern, name)), (None, None))


def write_digit_jpegs(folder: str, count: int, size: int = 64) -> str:
    """Writes `count` of the bundled digits to `folder` as coloured `size`x`size` JPEGs."""
    images, _ = dk.load_digits()
    images = images[np.arange(count) % len(images)]
    rng = np.random.default_rng(0)
    ink, paper = rng.uniform(0, 255, (2, count, 1, 1, 3))
    alpha = images[..., None] / 255.0
    coloured = tf.image.resize(alpha * ink + (1 - alpha) * paper, (size, size))
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(tf.cast(tf.round(coloured), tf.uint8)):
        tf.io.write_file(os.path.join(folder, f"{i:05d}.jpg"), tf.io.encode_jpeg(image, quality=90))
    return folder


class Budget:
    """Seconds since the check started, against `--budget-s`."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> bool:
        return self.elapsed() < self.seconds


def attempt(budget: Budget, build):
    """`build()`, or the reason it was not run or failed, as a string."""
    if not budget.left():
        return f"skipped: past --budget-s {budget.seconds:.0f} s"
    try:
        return build()
    except Exception as error:  # a GPU-only failure must not hide the other rows
        return f"failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:160] if str(error).strip() else ''}"


def keras_row(config, steps, jit, strategy=None):
    """A warmed-up DCGAN (built and compiled in `strategy`'s scope): (one_round, whether its step is XLA)."""
    with strategy.scope() if strategy else contextlib.nullcontext():
        gan, one_round = keras_round(config, steps, jit=jit)
    if strategy:
        one_round()  # fit outside the scope traces the step once more (as `train` does, once per run)
    return one_round, "on" if step_uses_xla(gan) else "off"


def torch_device() -> tuple[str | None, str]:
    """Where the PyTorch rows run, the device TensorFlow trains on: ("cpu" or "cuda", ""), or (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "n/a: torch is not installed"
    if not GPUS:
        return "cpu", ""
    return ("cuda", "") if torch.cuda.is_available() else (None, "n/a: this torch has no CUDA")


def group_rows(base: dk.Config, precision: str, batch: int, small_batch: bool, steps: int, torch_on: tuple,
               flops: dict, budget: Budget) -> list[dict]:
    """The training rows of one precision and batch, each built and warmed up (or with the reason it is not)."""
    config = base.replace(precision=precision, batch_size=batch)
    specs = [("keras", True, jit, None) for jit in (False, True)]
    if small_batch:
        specs += [("keras", False, jit, None) for jit in (False, True)]
    if small_batch and precision == MIRRORED_PRECISION:
        device = "/gpu:0" if GPUS else "/cpu:0"
        specs += [("keras, mirrored (1 device)", True, jit, device) for jit in ("auto", True)]
    rows = []
    for trainer, fast, jit, device in specs:
        strategy = tf.distribute.MirroredStrategy([device]) if device else None
        built = attempt(budget, lambda: keras_row(config.replace(fast_layers=fast), steps, jit, strategy))
        rows.append({"trainer": trainer, "precision": precision, "batch": batch, "fast": "on" if fast else "off",
                     "asked": {False: "off", True: "on"}.get(jit, jit), "flops": flops["keras"],
                     "round": built[0] if isinstance(built, tuple) else None,
                     "xla": built[1] if isinstance(built, tuple) else "-",
                     "why": built if isinstance(built, str) else None})
    device, why = torch_on
    torch_fns = attempt(budget, lambda: torch_rounds(config, steps, device, TORCH_VARIANTS)) if device else why
    for variant in TORCH_VARIANTS:
        why = torch_fns if isinstance(torch_fns, str) else None
        rows.append({"trainer": f"pytorch/examples {variant}", "precision": precision, "batch": batch, "fast": "-",
                     "asked": "-", "xla": "-", "flops": flops["reference"],
                     "round": torch_fns[variant][0] if isinstance(torch_fns, dict) else None, "why": why})
    return rows


def time_rounds(rows: list[dict], repeats: int, budget: Budget) -> None:
    """Times the built rows in alternating rounds; sets each row's "rates"."""
    live = [row for row in rows if row["round"]]
    for row in live:
        row["rates"] = []
    for repeat in range(repeats):
        if repeat and not budget.left():
            break
        for row in live:
            row["rates"].append(row["round"]())
    for row in live:
        row["round"] = None  # frees the group's models before the next group's are built


def percent(value: float, peak: float | None) -> str:
    return f"{100 * value / peak:.1f}%" if peak else "n/a"


def print_train_table(rows: list[dict], peaks) -> None:
    print("| trainer | precision | batch | fast layers | XLA asked | XLA in step | img/s | TFLOP/s "
          "| % of 16-bit peak | % of float32 peak |")
    print("|" + " --- |" * 10)
    for row in rows:
        cells = [row["trainer"], row["precision"], row["batch"], row["fast"], row["asked"], row["xla"]]
        if row.get("rates"):
            rate = statistics.median(row["rates"])
            tflops = rate * row["flops"] / 1e12
            cells += [f"{rate:.0f}", f"{tflops:.3g}", percent(tflops, peaks[0]), percent(tflops, peaks[1])]
        else:
            cells += [row["why"] or "skipped: past --budget-s", "-", "-", "-"]
        print("| " + " | ".join(map(str, cells)) + " |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every row at toy size, a few steps: a smoke test")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed round (50; quick: 2)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating rounds per row (3; quick: 1)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no row after this many seconds (390; quick: no limit)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="the training rows' precisions, in order")
    parser.add_argument("--peak-tflops", default=None, metavar="16BIT,FP32",
                        help="the device's dense peaks, if its name is not in PEAKS")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows")
    args = parser.parse_args(argv)
    budget = Budget(args.budget_s or (float("inf") if args.quick else 390.0))
    precisions = args.precisions.split(",")
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        parser.error(f"--precisions takes {', '.join(PRECISIONS)}. Received: --precisions={args.precisions}")
    if args.quick and not GPUS:  # halves XLA's compile time on a CPU (a smoke run's numbers are not speeds)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    size = QUICK if args.quick else FULL
    steps = args.steps or (2 if args.quick else 50)
    repeats = args.repeats or (1 if args.quick else 3)
    base = dk.Config(image_size=size["image_size"], channels=3, base_width=size["base_width"],
                     latent_dim=size["latent_dim"], seed=0)
    name = device_name()
    peaks = device_peaks(name, args.peak_tflops)
    torch_on = (None, "n/a: --no-torch") if args.no_torch else torch_device()
    shown = "n/a (no GPU)" if not GPUS and not args.peak_tflops else (
        f"{peaks[0]:g} 16-bit / {peaks[1]:g} float32" if peaks[0] else "unknown: pass --peak-tflops")
    print(f"{'QUICK SMOKE RUN (toy size, not a speed figure); ' if args.quick else ''}device {name}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
          f"peak TFLOP/s {shown}; {base.image_size}x{base.image_size}x3, base width {base.base_width}, "
          f"{steps} steps x {repeats} rounds; PyTorch rows on {torch_on[0] or 'none'}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_digit_jpegs(os.path.join(tmp, "jpegs"), size["files"], base.image_size)
        input_config = base.replace(batch_size=size["batches"][0])
        print(f"\n| input ({size['files']} JPEGs, batch {input_config.batch_size}) | img/s |\n| --- | --- |")
        input_rates = {}
        for label, cache in (("folder, decoded every epoch (cache off)", "off"), ("folder, from the memory cache", "memory")):
            rate = input_rates[cache] = attempt(budget, lambda cache=cache: pipeline_rate(input_config, folder, cache))
            print(f"| {label} | {rate if isinstance(rate, str) else f'{rate:.0f}'} |", flush=True)

        z = dk.latent_vectors(size["serve_batch"], base.latent_dim, seed=0)
        serve = attempt(budget, lambda: serving_rate(dk.export_generator(dk.build_generator(base), tmp), z, repeats))
        print(f"\n| serving (export_generator, serving_default) | img/s |\n| --- | --- |\n"
              f"| batch {size['serve_batch']} | {serve if isinstance(serve, str) else f'{serve:.0f}'} |\n", flush=True)

    rows = []
    flops = {"keras": train_flops_per_image(base), "reference": train_flops_per_image(base, reference=True)}
    for precision in precisions:
        for batch in size["batches"]:
            group = group_rows(base, precision, batch, batch == size["batches"][0], steps, torch_on, flops, budget)
            time_rounds(group, repeats, budget)
            rows += group
    print_train_table(rows, peaks)
    keras_rates = [statistics.median(r["rates"]) for r in rows if r.get("rates") and r["trainer"] == "keras"]
    if keras_rates and not isinstance(input_rates["off"], str):
        print(f"\nFastest keras row {max(keras_rates):.0f} img/s; decoding JPEGs feeds "
              f"{input_rates['off'] / max(keras_rates):.2f}x that on this machine's cores.")
    print(f"Finished in {budget.elapsed():.0f} s.")


if __name__ == "__main__":
    main()
