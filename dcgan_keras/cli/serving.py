"""Sub-commands `export` and `sample`: SavedModels for TF Serving (or ONNX, LiteRT), and sampling from them.

    python -m dcgan_keras export --checkpoint runs/digits/ckpt.keras --name digits
    python -m dcgan_keras export --checkpoint runs/digits/ckpt.keras --name digits --version 7
    python -m dcgan_keras export --checkpoint runs/faces/ckpt.keras --name faces --keep-precision   # 16-bit, for GPUs
    python -m dcgan_keras export --checkpoint runs/digits/ckpt.keras --name digits --format onnx    # saved_models/digits/onnx/1/
    python -m dcgan_keras export --checkpoint runs/digits/ckpt.keras --name digits --format litert  # saved_models/digits/litert/1/
    python -m dcgan_keras sample --model saved_models/digits/1 --num 64 --seed 0 --out grid.png

`sample` needs only TensorFlow and the SavedModel (its `sample` signature),
not the checkpoint or the Keras model code.
"""

from __future__ import annotations

import json
import os

from dcgan_keras.cli._common import add_out


def register(subparsers):
    p = subparsers.add_parser("export", help="export a checkpoint's generator as a SavedModel for TF Serving")
    p.add_argument("--checkpoint", required=True, help="a .keras file, e.g. runs/digits/ckpt.keras")
    p.add_argument("--name", required=True, help="model name: the export goes to EXPORT_ROOT/NAME/VERSION")
    p.add_argument("--export-root", default="saved_models", help="folder of all exported models")
    p.add_argument("--version", type=int, default=None, help="version number (default: the next free one)")
    p.add_argument(
        "--format", default="saved_model", choices=("saved_model", "onnx", "litert"),
        help="saved_model (EXPORT_ROOT/NAME/VERSION, for TF Serving; the default), onnx "
        "(EXPORT_ROOT/NAME/onnx/VERSION/generator.onnx) or litert (EXPORT_ROOT/NAME/litert/VERSION/generator.tflite)",
    )
    p.add_argument(
        "--keep-precision", action="store_true",
        help="keep a mixed-precision generator's 16-bit graph (for GPU serving); by default the export is float32",
    )
    p.set_defaults(func=_run_export)

    p = subparsers.add_parser("sample", help="sample an image grid (PNG, JPEG, ...) from an exported SavedModel")
    p.add_argument("--model", required=True, help="a SavedModel version folder, e.g. saved_models/digits/1")
    p.add_argument("--num", type=int, default=64, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same images")
    p.add_argument("--rows", type=int, default=None, help="rows of the grid (default: about square)")
    add_out(p, help="output image file; its extension names the format (.png, .jpg, .webp, ...)")
    p.set_defaults(func=_run_sample)


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(
            f"--name must be a plain folder name such as 'digits' (no path separators). Received: {name!r}"
        )
    return name


def _run_export(args) -> int:
    name = _check_name(args.name)
    checkpoint = os.fspath(args.checkpoint)
    if not checkpoint.endswith(".keras"):
        raise ValueError(f"--checkpoint must be a .keras file (e.g. runs/NAME/ckpt.keras). Received: {checkpoint!r}")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"No checkpoint file at {checkpoint!r}.")
    if args.version is not None and args.version < 1:
        raise ValueError(f"--version must be a positive integer. Received: {args.version}")
    if args.format != "saved_model" and args.keep_precision:
        raise ValueError(
            "--keep-precision applies to --format saved_model only: ONNX and LiteRT exports are float32. "
            f"Received: --format {args.format} --keep-precision"
        )

    from dcgan_keras.checkpoints import load_generator
    from dcgan_keras.export import computes_in_16_bits, export_generator

    generator = load_generator(checkpoint)  # a DCGAN gives its sampler (the EMA generator if kept)
    if args.format != "saved_model":
        from dcgan_keras.portable import FILE_NAMES, INPUT_MEANING, export_portable

        path = export_portable(generator, os.path.join(args.export_root, name), args.format, version=args.version)
        print(json.dumps({
            "export": path, "format": args.format, "file": os.path.join(path, FILE_NAMES[args.format]),
            "input": INPUT_MEANING, "output": "images", "compute_dtype": "float32",
        }, indent=2))
        return 0
    trained_in = computes_in_16_bits(generator)
    kept = bool(trained_in) and args.keep_precision
    from dcgan_keras.files import locked_folder

    with locked_folder(os.path.join(args.export_root, name), "an export", wait=True):  # one export picks a version at a time
        path = export_generator(
            generator, os.path.join(args.export_root, name), version=args.version, keep_precision=args.keep_precision
        )
    summary = {
        "export": path,
        "signatures": ["serving_default", "sample", "latent", "png"],
        "compute_dtype": "/".join(trained_in) if kept else "float32",
    }
    if kept:
        summary["note"] = (
            "16-bit graph kept (--keep-precision): serve it on GPUs; on CPUs export again without "
            "--keep-precision for a float32 graph."
        )
    elif trained_in:
        summary["note"] = f"trained in {'/'.join(trained_in)}; exported as float32 (same weights) for CPU serving."
    print(json.dumps(summary, indent=2))
    return 0


def _run_sample(args) -> int:
    if args.num < 1:
        raise ValueError(f"--num must be a positive integer. Received: {args.num}")
    if args.rows is not None and not 1 <= args.rows <= args.num:
        raise ValueError(
            f"--rows must be in 1..{args.num} (--num): a grid of {args.num} image(s) has at most {args.num} "
            f"row(s). Received: --rows {args.rows}"
        )
    if not -(2**63) <= args.seed < 2**63:
        raise ValueError(
            "--seed must fit in 64 bits (the SavedModel's seed is an int64): a number in "
            f"-9223372036854775808..9223372036854775807. Received: --seed {args.seed}"
        )
    import numpy as np
    import tensorflow as tf

    from dcgan_keras.checkpoints import load_sampler
    from dcgan_keras.images import from_uint8, image_format, image_grid, save_image

    image_format(args.out, "--out")  # a name without a format is refused before the model is loaded

    sample = load_sampler(args.model)
    pixels = sample(seed=tf.constant(args.seed, tf.int64), num_images=tf.constant(args.num, tf.int32))["images"]
    images = from_uint8(pixels.numpy())
    path = save_image(image_grid(images, rows=args.rows), args.out)
    print(json.dumps({"out": path, "images": list(np.shape(images))}))
    return 0
