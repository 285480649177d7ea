"""The generator in portable formats: ONNX (onnxruntime, onnxruntime-web) and LiteRT (`.tflite`).

Every format takes what the SavedModel's `serving_default` takes and gives the
same images: it is written from `export.serving_generator`, so that

- the input `z` is float32 `[batch, latent_dim]` (batch of any size), a draw
  of N(0, I), whatever prior the generator was trained on (the map to that
  prior is inside the file);
- the output `images` is float32 `[batch, height, width, channels]` (NHWC),
  in [-1, 1]; pixels are `round((images + 1) * 127.5)`.

A JSON file beside each export (`generator.json`, `interface`) says so; an
ONNX file says so in its `metadata_props` too.

The converters and runtimes are optional extras, imported only when used:
`pip install "dcgan_keras[onnx]"` (tf2onnx to write `.onnx`, onnxruntime to
run it) and `pip install "dcgan_keras[litert]"` (ai-edge-litert to run a
`.tflite`; TensorFlow itself writes it).

Layout of `export_portable` beside the SavedModel versions:

    saved_models/NAME/1/                      SavedModel (TF Serving; `export.export_generator`)
    saved_models/NAME/onnx/1/generator.onnx   ONNX, and generator.json
    saved_models/NAME/litert/1/generator.tflite  LiteRT, and generator.json

TF Serving serves only the numbered folders of `saved_models/NAME/` and passes
over `onnx/` and `litert/`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings

import numpy as np

# What each format writes, by `format` name.
FILE_NAMES = {"onnx": "generator.onnx", "litert": "generator.tflite"}
FORMATS = ("saved_model", *FILE_NAMES)
INTERFACE_FILE = "generator.json"
# The extra that brings each optional module, for the error when it is missing.
_EXTRAS = {"tf2onnx": "onnx", "onnx": "onnx", "onnxruntime": "onnx", "ai_edge_litert": "litert"}

INPUT_MEANING = (
    "z: float32 [batch, latent_dim], a draw of N(0, I) (standard normal, independent coordinates), "
    "whatever prior the generator was trained on; the map to that prior is part of the model"
)
OUTPUT_MEANING = "images: float32 [batch, height, width, channels] (NHWC) in [-1, 1]; pixels = round((images + 1) * 127.5)"


class MissingExtra(ImportError, RuntimeError):
    """An optional package is missing; the message names the extra that installs it.

    An `ImportError`, and a `RuntimeError` so that the command line prints it as an error line.
    """


def require(module: str):
    """Imports an optional module, or raises `MissingExtra` (an ImportError) naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = _EXTRAS.get(module.split(".")[0], "onnx")
        raise MissingExtra(
            f"This needs the optional package {module.split('.')[0]!r}, which is not installed. "
            f'Install the extra: pip install "dcgan_keras[{extra}]" (or pip install -r requirements.txt). '
            f"Received: module={module!r}"
        ) from error


def interface(model, format: str) -> dict:
    """The description of an export written beside it (`generator.json`).

    Args:
        model: a `DCGAN` or a generator (what `export_onnx` and `export_litert` take).
        format: "onnx" or "litert".

    Returns:
        A JSON-serialisable dict: the file, its input `z` (shape, dtype and meaning),
        its output `images`, the prior the generator was trained on, and its parameter count.
    """
    from dcgan_keras.export import _as_generator
    from dcgan_keras.sampling import latent_prior

    generator = _as_generator(model)
    modes, offset, distribution = latent_prior(generator)
    latent_dim = int(generator.input_shape[-1])
    return {
        "format": format,
        "file": FILE_NAMES[format],
        "input": {"name": "z", "dtype": "float32", "shape": [None, latent_dim], "meaning": INPUT_MEANING},
        "output": {
            "name": "images", "dtype": "float32", "shape": [None, *[int(d) for d in generator.output_shape[1:]]],
            "layout": "NHWC", "range": [-1.0, 1.0], "meaning": OUTPUT_MEANING,
        },
        "trained_prior": {"modes": modes, "offset": offset, "distribution": distribution},
        "parameters": int(generator.count_params()),
    }


def _served(model) -> "keras.Model":  # noqa: F821
    """`serving_generator` clipped to [-1, 1], in float32, called once (Keras' ONNX export needs a called model)."""
    import keras

    from dcgan_keras.export import _as_generator, serving_generator

    generator = _as_generator(model)
    if not all(np.isfinite(np.asarray(w)).all() for w in generator.weights):
        raise ValueError(
            "The generator has NaN or Inf weights (training diverged); it was not exported. "
            "Export the checkpoint of an earlier, healthy epoch instead."
        )
    served = serving_generator(generator)  # float32 always: the portable runtimes run float32 graphs
    # onnxruntime's tanh gives 1.0000001 for some inputs: the clip keeps the promise of [-1, 1].
    z = keras.Input((int(served.input_shape[-1]),), name="z")
    clipped = keras.Model(z, keras.ops.clip(served(z), -1.0, 1.0), name="portable_generator")
    clipped(np.zeros((1, int(served.input_shape[-1])), "float32"), training=False)
    return clipped


def _z_spec(served):
    import tensorflow as tf

    return tf.TensorSpec([None, int(served.input_shape[-1])], tf.float32, name="z")


def _write_atomically(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as f:
        f.write(data)
    os.replace(f.name, path)


def export_onnx(model, path, opset: int | None = None) -> str:
    """Writes the generator as an ONNX file: `z` ~ N(0, I) in, float32 `images` in [-1, 1] out.

    Converted by tf2onnx through `keras.Model.export(format="onnx")` from
    `serving_generator` (float32, batch norm in inference mode), then the
    output is renamed `images`, the batch axis named `batch`, and the
    interface (`interface`) stored in the file's `metadata_props`.

    Args:
        model: a `DCGAN` (its `sampler`) or a generator model.
        path: the `.onnx` file to write (replaced if it exists).
        opset: the ONNX opset; tf2onnx's default (15) when `None`.

    Returns:
        `path`.

    Example:

    ```python
    export_onnx(generator, "generator.onnx")
    import onnxruntime
    session = onnxruntime.InferenceSession("generator.onnx")
    images = session.run(["images"], {"z": np.random.standard_normal((16, 100)).astype("float32")})[0]
    ```
    """
    require("tf2onnx")
    onnx = require("onnx")
    path = os.fspath(path)
    served = _served(model)
    described = interface(model, "onnx")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        level = logging.getLogger("tf2onnx").level
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # tf2onnx logs every step of the conversion
        try:
            with warnings.catch_warnings():  # Keras' tf2onnx patch asks NumPy 2 for np.object
                warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
                served.export(raw, format="onnx", verbose=False, input_signature=[_z_spec(served)], opset_version=opset)
        finally:
            logging.getLogger("tf2onnx").setLevel(level)
        proto = onnx.load(raw)
    graph = proto.graph
    old = graph.output[0].name
    for node in graph.node:  # the node that makes the output, and any that read it
        node.output[:] = ["images" if name == old else name for name in node.output]
        node.input[:] = ["images" if name == old else name for name in node.input]
    graph.output[0].name = "images"
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    proto.doc_string = f"DCGAN generator. Input {INPUT_MEANING}. Output {OUTPUT_MEANING}."
    del proto.metadata_props[:]
    for key, value in {
        "input": INPUT_MEANING,
        "output": OUTPUT_MEANING,
        "latent_dim": str(described["input"]["shape"][1]),
        "image_shape": json.dumps(described["output"]["shape"][1:]),
        "trained_prior": json.dumps(described["trained_prior"]),
        "interface": json.dumps(described),
    }.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    _write_atomically(path, proto.SerializeToString())
    return path


def export_litert(model, path) -> str:
    """Writes the generator as a LiteRT (TensorFlow Lite) flatbuffer with one signature.

    The signature `serving_default` takes `z` (float32 `[batch, latent_dim]`, a
    draw of N(0, I); the batch is resized at run time) and returns `images`
    (float32 NHWC in [-1, 1]). Only LiteRT's built-in ops are used (no TF
    Select ops), so the plain LiteRT runtime (`ai-edge-litert`) runs it.
    Written by TensorFlow's converter from an `ExportArchive` of
    `serving_generator`; the weights are stored once, in float32.

    Args:
        model: a `DCGAN` (its `sampler`) or a generator model.
        path: the `.tflite` file to write (replaced if it exists).

    Returns:
        `path`.

    Example:

    ```python
    export_litert(generator, "generator.tflite")
    from ai_edge_litert.interpreter import Interpreter
    run = Interpreter("generator.tflite").get_signature_runner("serving_default")
    images = run(z=np.random.standard_normal((16, 100)).astype("float32"))["images"]
    ```
    """
    import keras
    import tensorflow as tf

    path = os.fspath(path)
    served = _served(model)
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        "serving_default", lambda z: {"images": served(z, training=False)}, input_signature=[_z_spec(served)]
    )
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive.write_out(tmp, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            data = converter.convert()
    finally:
        logger.setLevel(level)
    _write_atomically(path, data)
    return path


def export_portable(model, base_dir, format: str, version: int | None = None) -> str:
    """Writes `base_dir/<format>/<version>/` with the generator file and `generator.json`.

    Versions are kept like the SavedModel's (`export.export_generator`): the
    next free number by default, never overwritten, written under a
    temporary name and renamed when complete.

    Args:
        model: a `DCGAN` (its `sampler`) or a generator model.
        base_dir: the model's folder, e.g. `saved_models/digits`.
        format: "onnx" or "litert".
        version: the version number; the next free one when `None`.

    Returns:
        The path of the written version folder, e.g. `saved_models/digits/onnx/1`.
    """
    from dcgan_keras.export import new_version_folder

    if format not in FILE_NAMES:
        raise ValueError(f"format must be one of {sorted(FILE_NAMES)}. Received: format={format!r}")
    target = new_version_folder(os.path.join(os.fspath(base_dir), format), version)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        write = export_onnx if format == "onnx" else export_litert
        write(model, os.path.join(tmp, FILE_NAMES[format]))
        write_interface(model, format, tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_interface(model, format: str, folder) -> str:
    """Writes `interface(model, format)` as `folder/generator.json`; returns its path."""
    path = os.path.join(os.fspath(folder), INTERFACE_FILE)
    with open(path, "w") as f:
        json.dump(interface(model, format), f, indent=2)
        f.write("\n")
    return path


class OnnxGenerator:
    """An exported `.onnx` generator run by onnxruntime: `z` (N(0, I)) -> float32 images in [-1, 1].

    Args:
        path: the `.onnx` file (or a folder holding `generator.onnx`).
        threads: onnxruntime's intra-op threads; its default (one per core) when `None`.
    """

    def __init__(self, path, threads: int | None = None):
        ort = require("onnxruntime")
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, FILE_NAMES["onnx"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.path = path
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.latent_dim = int(self.session.get_inputs()[0].shape[-1])

    def __call__(self, z) -> np.ndarray:
        return self.session.run(["images"], {"z": np.asarray(z, dtype="float32")})[0]


class LiteRTGenerator:
    """An exported `.tflite` generator run by the LiteRT interpreter: `z` (N(0, I)) -> images in [-1, 1].

    Args:
        path: the `.tflite` file (or a folder holding `generator.tflite`).
        threads: the interpreter's threads; one per core when `None`.
    """

    def __init__(self, path, threads: int | None = None):
        interpreter = require("ai_edge_litert.interpreter")
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, FILE_NAMES["litert"])
        self.path = path
        self.interpreter = interpreter.Interpreter(model_path=path, num_threads=int(threads or os.cpu_count() or 1))
        self._run = self.interpreter.get_signature_runner("serving_default")
        self.latent_dim = int(self.interpreter.get_input_details()[0]["shape_signature"][-1])

    def __call__(self, z) -> np.ndarray:
        return self._run(z=np.asarray(z, dtype="float32"))["images"]


def weight_bytes(path) -> int:
    """The bytes an export spends on weights (and, for LiteRT, everything else).

    - a SavedModel folder: the files of its `variables/` folder;
    - an `.onnx` file: its initializers (the raw tensors);
    - a `.tflite` file: the whole file.

    A float32 generator stores about 4 bytes per parameter; twice that means
    every weight was stored twice (keras-team/keras#23553).
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        folder = os.path.join(path, "variables")
        return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    if path.endswith(".onnx"):
        onnx = require("onnx")
        from onnx import numpy_helper

        return int(sum(numpy_helper.to_array(t).nbytes for t in onnx.load(path).graph.initializer))
    if path.endswith(".tflite"):
        return os.path.getsize(path)
    raise ValueError(f"Not a SavedModel folder, .onnx or .tflite file. Received: path={path!r}")
