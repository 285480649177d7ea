"""Export of the generator as a versioned SavedModel that TF Serving serves.

Reading exports and checkpoints back is `dcgan_keras.checkpoints`' (its loaders are
importable from here too, where they lived before).
"""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras.checkpoints import (  # noqa: F401  (the loaders' old home: importable from here too)
    SavedModelGenerator, _as_generator, check_latent, load_checkpoint, load_generator, load_sampler,
)
from dcgan_keras.sampling import DISTRIBUTIONS, MODE_OFFSET, from_standard_normal, latent_prior

# The most images one call of an export's `sample` or `latent` signature makes: a bound on
# what one request can cost a server (1,024 64x64x3 images take ~0.6 s on 2 CPU cores).
MAX_NUM_IMAGES = 1024


def next_version(base_dir) -> int:
    """The next free integer version under `base_dir` (1 when there is none)."""
    base_dir = os.fspath(base_dir)
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    return max(versions, default=0) + 1


def new_version_folder(base_dir, version: int | None = None) -> str:
    """The path of a new version folder `base_dir/<version>` (the next free one when `version` is `None`).

    Raises:
        ValueError: for a version below 1.
        FileExistsError: when that version exists: exported versions are never overwritten.
    """
    base_dir = os.fspath(base_dir)
    version = next_version(base_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version}")
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(
            f"{target} already exists; exported versions are never overwritten. "
            f"Pass another version (next free: {next_version(base_dir)}) or omit it. Received: version={version}"
        )
    return target


def _check_same_interface(base_dir: str, latent_dim: int, image_shape: tuple) -> None:
    """TF Serving serves the newest version: a new one must take and give the same shapes."""
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    if not versions:
        return
    latest = os.path.join(base_dir, str(max(versions)))
    try:
        old = SavedModelGenerator(latest)
    except Exception:  # not one of ours, or unreadable: nothing to compare with
        return
    if old.latent_dim != latent_dim or tuple(old.output_shape[1:]) != image_shape:
        raise ValueError(
            f"{latest} serves z of size {old.latent_dim} -> images {tuple(old.output_shape[1:])}, but this "
            f"generator takes z of size {latent_dim} -> images {image_shape}. Clients of a model would "
            "break when its next version changes shapes: export it under another name instead "
            "(another export_dir, --name or --export-dir)."
        )


def computes_in_16_bits(model) -> list[str]:
    """The 16-bit compute dtypes of a model's layers, nested models included.

    Args:
        model: a `keras.Model`.

    Returns:
        The sorted list of the 16-bit compute dtypes found (`"bfloat16"`,
        `"float16"`), empty for a float32 model.
    """
    found = set()
    for layer in getattr(model, "layers", []):
        dtype = getattr(layer.dtype_policy, "compute_dtype", None)
        if dtype in ("float16", "bfloat16"):
            found.add(dtype)
        if isinstance(layer, keras.Model):
            found.update(computes_in_16_bits(layer))
    return sorted(found)


def float32_copy(generator: keras.Model) -> keras.Model:
    """A copy of a functional generator that computes in float32, with the same weights.

    A mixed-precision layer keeps float32 variables and casts them to 16 bits
    when it runs, so the copy holds exactly the same weights; only the
    computation changes (its outputs match within 16-bit rounding).

    Args:
        generator: a functional or `Sequential` `keras.Model` (as built by
            `build_generator`), in any precision.

    Returns:
        A new `keras.Model` whose layers all use the "float32" dtype policy.
    """

    def as_float32(layer):
        config = layer.get_config()
        if getattr(layer.dtype_policy, "compute_dtype", None) in ("float16", "bfloat16"):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(generator, clone_function=as_float32, recursive=True)
    except Exception as error:  # a subclassed model: Keras cannot rebuild it from layers
        raise ValueError(
            "Could not rebuild the generator in float32 to export it (only functional and Sequential "
            "models can be rebuilt layer by layer). Export it with keep_precision=True to keep its 16-bit "
            f"graph, or build it in float32. Received: generator={generator.name!r} ({error})"
        ) from error
    copy.set_weights(generator.get_weights())
    return copy


@keras.saving.register_keras_serializable(package="dcgan_keras")
class StandardNormalInput(keras.layers.Layer):
    """Maps z ~ N(0, I) to a draw of a generator's prior (`sampling.from_standard_normal`).

    The first layer of `serving_generator`: it lets every export take what
    standard DCGAN clients send, z ~ N(0, I), whatever prior the generator
    was trained on (uniform, N(0, I) or a mixture of modes).
    """

    def __init__(self, modes: int = 0, offset: float = MODE_OFFSET, distribution: str = "normal", **kwargs):
        super().__init__(**kwargs)
        self.modes, self.offset, self.distribution = int(modes), float(offset), str(distribution)

    def call(self, z):
        return from_standard_normal(z, self.modes, self.offset, self.distribution)

    def get_config(self):
        return {**super().get_config(), "modes": self.modes, "offset": self.offset, "distribution": self.distribution}


def serving_generator(model, keep_precision: bool = False) -> keras.Model:
    """The generator as every export serves it: z ~ N(0, I) in, images in [-1, 1] out, in float32.

    Its first layer (`StandardNormalInput`) maps N(0, I) to the prior the
    generator was trained on, so that a client drawing z ~ N(0, I), as every
    DCGAN client does, gets the generator's own samples; then comes the
    generator (the EMA copy where there is one), as a float32 copy when it
    computes in 16 bits (`float32_copy`) unless `keep_precision`.

    Args:
        model: a `DCGAN` (its `sampler`) or a generator model.
        keep_precision: keep a mixed-precision generator's 16-bit graph.

    Returns:
        A functional `keras.Model` `z -> images`, with the generator's weights (not a copy of
        them, unless it was rebuilt in float32).
    """
    generator = _as_generator(model)
    prior = latent_prior(generator)  # before a float32 copy, which does not carry it
    if computes_in_16_bits(generator) and not keep_precision:
        generator = float32_copy(generator)
    z = keras.Input((int(generator.input_shape[-1]),), name="z")
    images = generator(StandardNormalInput(*prior, name="standard_normal_input")(z))
    return keras.Model(z, images, name="serving_generator")


def export_generator(model, base_dir, version: int | None = None, keep_precision: bool = False) -> str:
    """Writes the generator to `base_dir/<version>/` as a SavedModel.

    The SavedModel has four signatures, all with batch norm in inference mode,
    and all taking z ~ N(0, I) whatever prior the generator was trained on
    (`serving_generator` maps it to that prior inside the graph):

    - `serving_default`: `z` (float32 `[batch, latent_dim]`, a draw of
      N(0, I)) -> `images` (uint8 `[batch, H, W, C]`, 0..255). NaN or Inf in
      z is an InvalidArgument error.
    - `sample`: `seed` (int64 scalar) and `num_images` (int32 scalar, 0 to
      `MAX_NUM_IMAGES`) -> `images` (uint8 `[num_images, H, W, C]`). z is
      drawn inside the graph, statelessly, so the same seed always gives the
      same images, wherever the model is loaded.
    - `latent`: the same inputs -> `z` (float32 `[num_images, latent_dim]`),
      the N(0, I) draw `sample` makes: clients that walk or edit z start from
      it and send it to `serving_default`.
    - `png`: `z` -> `png_bytes` (string `[batch]`, one PNG file per image).
      The output name ends in `_bytes` because TF Serving's REST API
      base64-encodes only string outputs so named (`{"b64": "..."}`).

    The signatures are named explicitly, with named inputs and outputs:
    `model.export` names them after positions (`inputs`, `output_0`;
    keras-team/keras#19458), which clients would then have to use.

    It is written by `keras.export.ExportArchive`, which saves the
    `tf.Variable` behind each Keras variable: TensorFlow's TF1-style loaders
    (TF Serving, `saved_model_cli run`) restore those and run the signatures.
    (A Keras 3 model attached to a `tf.Module` and saved with
    `tf.saved_model.save` saves instead a second, wrapping variable per
    weight, which the signatures never read; TF1-style loaders then fail
    with "Could not find variable ..."; see `docs/serving.md`.)

    A generator trained in mixed precision is exported as a float32 copy
    with the same weights (`float32_copy`): TF Serving mostly runs on CPUs,
    where float16 convolutions are slow and bfloat16 ones fast only on CPUs
    with bfloat16 instructions.

    An existing version is never overwritten; the folder is written under a
    temporary name and renamed when complete.

    Args:
        model: a `DCGAN` (its `sampler` is exported) or a generator model.
        base_dir: the model's folder, e.g. `saved_models/digits`.
        version: the version number; the next free one when `None`.
        keep_precision: export a mixed-precision generator's 16-bit graph as
            it is (for serving on GPUs) instead of a float32 copy. No effect
            on a float32 generator.

    Returns:
        The path of the written version folder.
    """
    generator = _as_generator(model)
    modes, offset, distribution = latent_prior(generator)  # before a float32 copy, which does not carry them
    base_dir = os.fspath(base_dir)
    target = new_version_folder(base_dir, version)
    latent_dim = generator.input_shape[-1]
    if not all(np.isfinite(np.asarray(w)).all() for w in generator.weights):
        raise ValueError(
            "The generator has NaN or Inf weights (training diverged); it was not exported. "
            "Export the checkpoint of an earlier, healthy epoch instead."
        )
    _check_same_interface(base_dir, latent_dim, tuple(generator.output_shape[1:]))

    sixteen_bit = computes_in_16_bits(generator)
    if sixteen_bit and keep_precision:
        warnings.warn(
            f"Exporting the generator's {'/'.join(sixteen_bit)} graph as it is (keep_precision=True): "
            "serve it on GPUs. On CPUs float16 convolutions are slow (5x slower than float32 in "
            "docs/serving.md) and bfloat16 ones fast only with bfloat16 instructions; export without "
            "keep_precision for a float32 graph with the same weights.",
            stacklevel=2,
        )
    served = serving_generator(generator, keep_precision)

    def to_pixels(z):
        images = tf.cast(served(z, training=False), tf.float32)
        return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)

    def checked(z):
        return tf.debugging.assert_all_finite(z, "z holds NaN or Inf values; send finite numbers, drawn from N(0, I)")

    def serving_default(z):
        return {"images": to_pixels(checked(z))}

    def latent(seed, num_images):
        tf.debugging.assert_non_negative(num_images, message="num_images must be >= 0")
        tf.debugging.assert_less_equal(
            num_images, MAX_NUM_IMAGES,
            message=f"num_images must be at most {MAX_NUM_IMAGES} per request; ask for more in several requests",
        )
        shape = tf.stack([num_images, tf.constant(latent_dim, tf.int32)])
        return {"z": tf.random.stateless_normal(shape, seed=tf.stack([seed, tf.constant(0, tf.int64)]))}

    def sample(seed, num_images):
        return {"images": to_pixels(latent(seed, num_images)["z"])}

    def png(z):
        encoded = tf.map_fn(tf.io.encode_png, to_pixels(checked(z)), fn_output_signature=tf.TensorSpec([], tf.string))
        return {"png_bytes": encoded}

    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    archive = keras.export.ExportArchive()
    # The generator is deliberately not `archive.track()`ed: the archive already
    # saves the tf.Variables the endpoints read, and tracking the Keras model
    # would add a second copy of every weight (its Keras variables), unread.
    archive.add_endpoint("serving_default", serving_default, input_signature=[z_spec])
    sample_spec = [tf.TensorSpec([], tf.int64, name="seed"), tf.TensorSpec([], tf.int32, name="num_images")]
    archive.add_endpoint("sample", sample, input_signature=sample_spec)
    archive.add_endpoint("png", png, input_signature=[z_spec])
    archive.add_endpoint("latent", latent, input_signature=sample_spec)
    # The same tf.Variables, in the generator's layer order and with its weight
    # names, for programs that rebuild the Keras generator from an export
    # (`checkpoints.generator_from_saved_model`).
    archive.add_variable_collection("generator_variables", [weight.value for weight in served.weights])
    # The prior the generator was trained on (`generator_variables` rebuild the generator
    # without the map from N(0, I)), and a mark that the signatures take z ~ N(0, I).
    archive.add_variable_collection("latent_prior", [
        tf.Variable(modes, name="latent_modes"), tf.Variable(offset, dtype=tf.float32, name="mode_offset"),
        tf.Variable(DISTRIBUTIONS.index(distribution), name="latent_distribution"),
    ])
    archive.add_variable_collection("standard_normal_input", [tf.Variable(True, name="standard_normal_input")])
    os.makedirs(base_dir, exist_ok=True)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    logger = tf.get_logger()  # tf.saved_model logs "INFO: Assets written to ..." for every export
    level = logger.level
    logger.setLevel("WARNING")
    try:
        archive.write_out(tmp, verbose=False)
    finally:
        logger.setLevel(level)
    os.replace(tmp, target)
    return target


def saved_model_op_dtypes(path) -> dict[str, list[str]]:
    """The dtypes each op type computes in, read from a SavedModel's `saved_model.pb`.

    Reads the `T` attribute of every node of the graph and of its functions
    (where the signatures' ops live), e.g. `{"Conv2DBackpropInput": ["float32"], ...}`.

    Args:
        path: a SavedModel folder.

    Returns:
        A dict from op type to the sorted names of the dtypes it runs in.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(os.fspath(path), "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    found = {}
    for meta_graph in saved_model.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            if "T" in node.attr and node.attr["T"].type:
                found.setdefault(node.op, set()).add(tf.dtypes.as_dtype(node.attr["T"].type).name)
    return {op: sorted(dtypes) for op, dtypes in sorted(found.items())}
