"""Sub-command `train`: train a DCGAN from a recipe and export its generator.

    python -m dcgan_keras train --epochs 20
    python -m dcgan_keras train --recipe paper --dataset tfds:celeb_a --image-size 64
    python -m dcgan_keras train --augment translation,cutout --augment-target 0.6 --keep-best digit_fd

The hyper-parameters start from a recipe of `config.RECIPES` (`Config.from_recipe`);
each flag given replaces the recipe's value.
"""

from __future__ import annotations

import argparse
import json
import os

from dcgan_keras.config import (
    AUGMENTATIONS, DEFAULT_EPOCHS, DEFAULT_MIN_STEPS, KEEP_BEST_METRICS, PRECISION_CHOICES, RECIPES, STRATEGIES, Config, parse_policy,
)


def _policy(text: str) -> str | None:
    """An `--augment` value, checked while parsing (argparse reports the error, exit 2)."""
    try:
        return ",".join(parse_policy(text)) or None
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# The flags that set a Config field: flag, field, type, help. Each defaults to
# None in argparse, which keeps the recipe's value.
_CONFIG_FLAGS = (
    ("--image-size", "image_size", int, "side of the square images: 32, 64 or 128"),
    ("--batch-size", "batch_size", int, "images per step; the global batch under --strategy"),
    ("--latent-dim", "latent_dim", int, "size of the noise vector z"),
    ("--latent-distribution", "latent_distribution", str,
     "the distribution of z: 'uniform' on [-1, 1] (the paper) or 'normal'"),
    ("--latent-modes", "latent_modes", int,
     "with normal z, draw it from a mixture of K unit Gaussians, one per axis of the first K (0: N(0, I))"),
    ("--mode-offset", "mode_offset", float, "distance of each mode's centre from the origin"),
    ("--base-width", "base_width", int, "width of the networks' widest-resolution layer"),
    ("--learning-rate", "learning_rate", float, "Adam's learning rate for the discriminator, and for the generator too unless --g-learning-rate is given"),
    ("--g-learning-rate", "g_learning_rate", float,
     "the generator's own learning rate, if other than --learning-rate (two time scales)"),
    ("--beta1", "beta_1", float, "Adam's first-moment decay"),
    ("--beta2", "beta_2", float, "Adam's second-moment decay"),
    ("--label-smoothing", "label_smoothing", float, "one-sided smoothing of real targets"),
    ("--ema", "ema_decay", float, "moving average of the generator's weights for sampling; 0 turns it off"),
    ("--augment", "augment", _policy,
     f"DiffAugment policy, a comma-separated list of {', '.join(AUGMENTATIONS)} (docs/quality.md)"),
    ("--augment-target", "augment_target", float,
     "adapt the share of augmented images so that this fraction of real logits is positive (ADA: 0.6)"),
    ("--r1", "r1_gamma", float, "weight of the R1 penalty on D's slope at the real images; 0 turns it off"),
    ("--r1-every", "r1_every", int, "compute the R1 penalty on one step in N, weighted N times (lazy R1, as StyleGAN2)"),
    ("--seed", "seed", int, "seed of the model's one random source"),
)

_METAVARS = {"--latent-modes": "K", "--ema": "DECAY", "--augment": "POLICY", "--augment-target": "R", "--r1": "GAMMA", "--r1-every": "N"}


# `--jit-compile` values -> `Config.jit_compile`.
_JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")  # argparse's name: --beta1 -> args.beta1


# How help shows a field whose None means something other than "off".
_NONE_SHOWN = {"g_learning_rate": "as --learning-rate"}


def _shown(value, none: str = "off") -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _recipe_default(field: str) -> str:
    """`"default: 64 (paper: 128)"`: the value of each recipe, the default recipe first."""
    field_default = Config.__dataclass_fields__[field].default
    values = {name: RECIPES[name].get(field, field_default) for name in RECIPES}  # "auto" as it is
    default = values.pop("default")
    none = _NONE_SHOWN.get(field, "off")
    others = [f"{name}: {_shown(value, none)}" for name, value in values.items() if value != default]
    return f"default: {_shown(default, none)}" + (f" ({', '.join(others)})" if others else "")


def register(subparsers):
    p = subparsers.add_parser("train", help="train a DCGAN and export its generator")
    p.add_argument("--recipe", default="default", choices=tuple(RECIPES),
                   help="hyper-parameters to start from: 'paper' is Radford et al.'s, 'default' changes what "
                        "measured better on the digits (networks half as wide, batch 64, EMA, faster learning rates, "
                        "Adam's betas 0 and 0.99, the R1 penalty, z from 10 modes); the flags below override it")
    p.add_argument("--dataset", default="digits",
                   help="'digits' (bundled MNIST), 'twemoji' (bundled colour emoji, use --image-size 64), "
                        "'tfds:NAME[:SPLIT]', or a folder of images")
    p.add_argument("--channels", type=int, default=None,
                   help="1 or 3 (default: the dataset's own; digits 1, folders 3)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the data (default: {DEFAULT_EPOCHS}, or as many as make "
                        f"{DEFAULT_MIN_STEPS.at(32):,} steps at 32x32 and {DEFAULT_MIN_STEPS.at(64):,} at 64x64 "
                        "and up on a smaller data set)")
    for flag, field, kind, text in _CONFIG_FLAGS:
        p.add_argument(flag, type=kind, default=None, metavar=_METAVARS.get(flag),
                       help=f"{text} ({_recipe_default(field)})")
    p.add_argument("--fast-layers", action=argparse.BooleanOptionalAction, default=None,
                   help=f"build the networks from dcgan_keras.fast_layers (same weights, faster) "
                        f"({_recipe_default('fast_layers')})")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="flip half of the real images left-right, anew each epoch: twice the images, for data "
                        f"whose mirror images are real too (faces, emoji; not text) ({_recipe_default('mirror')})")
    p.add_argument("--jit-compile", default=None, choices=tuple(_JIT_COMPILE),
                   help="compile the training step with XLA; 'auto' is Keras' choice: on with a GPU, but off on a "
                        "CPU and under any --strategy other than default; 'on' keeps it under a one-replica "
                        f"strategy ({_recipe_default('jit_compile')})")
    p.add_argument("--keep-best", default=None, choices=KEEP_BEST_METRICS,
                   help="export the epoch with the best (lowest) score instead of the last; "
                        "digit_fd for digits, fid needs Inception weights, d_fd works on any data")
    p.add_argument("--evaluate-every", type=int, default=2, metavar="N", help="epochs between scores of --keep-best")
    p.add_argument("--name", default=None, help="run and export name (default: from the dataset)")
    p.add_argument("--run-dir", default=None, help="default: runs/NAME")
    p.add_argument("--export-dir", default=None, help="default: saved_models/NAME")
    p.add_argument("--data-dir", default=None, help="TFDS data folder")
    p.add_argument("--cache", default="auto", metavar="auto|memory|off|PATH",
                   help="keep the resized images in memory: 'auto' when they fit 512 MiB, else read "
                        "them again every epoch; or a cache file path (docs/data.md)")
    p.add_argument("--sample-every", type=int, default=None, metavar="N",
                   help="epochs between two sample grids in RUN_DIR/samples (default: 1, or as many "
                        "as keep about 60 grids in a longer run)")
    p.add_argument("--tensorboard", action="store_true", help="also log to RUN_DIR/logs")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/backup (killed or finished run)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in RUN_DIR (without it, such a RUN_DIR is refused)")
    p.add_argument("--strategy", default="default", choices=STRATEGIES,
                   help="tf.distribute strategy: one device, all local GPUs, several machines "
                        "(TF_CONFIG), a Cloud TPU; --batch-size is the global batch (docs/scaling.md)")
    p.add_argument("--precision", default=None, choices=PRECISION_CHOICES,
                   help="mixed precision computes in 16 bits on float32 weights (float16 with loss scaling); "
                        "'auto' is mixed_bfloat16 on a CPU with bfloat16 instructions (AVX-512 BF16, AMX) "
                        f"and no GPU, else float32 ({_recipe_default('precision')})")
    p.add_argument("--sync-batch-norm", action="store_true",
                   help="batch-norm statistics over the global batch, across replicas")
    p.set_defaults(func=_run_train)


def config_from_args(args) -> Config:
    """The `Config` of parsed `train` arguments: the recipe, with every flag given on top."""
    overrides = {field: getattr(args, _dest(flag)) for flag, field, _, _ in _CONFIG_FLAGS}
    overrides["fast_layers"] = args.fast_layers
    overrides["mirror"] = args.mirror
    overrides["precision"] = args.precision
    overrides["jit_compile"] = _JIT_COMPILE.get(args.jit_compile)
    overrides = {field: value for field, value in overrides.items() if value is not None}
    if overrides.get("ema_decay") == 0:
        overrides["ema_decay"] = None  # --ema 0: no moving average
    if args.channels is not None:  # else train takes the dataset's own (channels_from_dataset)
        overrides["channels"] = args.channels
    return Config.from_recipe(args.recipe, sync_batch_norm=args.sync_batch_norm, **overrides)


def _default_name(dataset: str) -> str:
    if dataset.startswith("tfds:"):
        dataset = dataset[5:].split(":")[0]
    name = os.path.basename(os.path.normpath(dataset)) or "run"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _run_train(args) -> int:
    from dcgan_keras.distribute import make_strategy
    from dcgan_keras.train_lib import train

    # First: a multi-worker strategy must exist before TensorFlow runs anything.
    strategy = make_strategy(args.strategy)
    config = config_from_args(args)
    name = args.name or _default_name(args.dataset)
    run_dir = args.run_dir or os.path.join("runs", name)
    export_dir = args.export_dir or os.path.join("saved_models", name)
    summary = train(
        config, run_dir, dataset=args.dataset, epochs=args.epochs, export_dir=export_dir,
        sample_every=args.sample_every, tensorboard=args.tensorboard, data_dir=args.data_dir,
        resume=args.resume, overwrite=args.overwrite, strategy=strategy, cache=args.cache,
        keep_best=args.keep_best, evaluate_every=args.evaluate_every, channels_from_dataset=args.channels is None,
    )
    report = {
        "run_dir": summary["run_dir"],
        "checkpoint": summary["checkpoint"],
        "export": summary["export"],
        "seconds": round(summary["seconds"], 1),
        "images_per_second": round(summary["images_per_second"], 1),
        "final": {k: round(v[-1], 4) for k, v in summary["history"].items()},
    }
    if args.keep_best:
        report["best_epoch"] = summary["best_epoch"]
    print(json.dumps(report, indent=2))
    return 0
