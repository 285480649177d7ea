"""Requests to a TF Serving server that serves an exported generator, and their replies.

The exports of `export_generator` have four signatures; this module builds
the bodies of REST requests (plain dicts, to send as JSON) and gRPC
`PredictRequest`s for them, and decodes the replies: uint8 images, or the
float32 z of `latent`. It is
what `docs/serving.md` shows, and what the tests run through the SavedModel.

REST needs only NumPy and Pillow. gRPC needs the optional package
`tensorflow-serving-api` (`pip install "dcgan_keras[serving]"`), imported
only when a gRPC function is called.

Example:

```python
import json, urllib.request
body = rest_body("sample", seed=0, num_images=4)
request = urllib.request.Request("http://localhost:8501/v1/models/digits:predict", json.dumps(body).encode())
images = decode_rest_reply(json.load(urllib.request.urlopen(request)), "sample")  # uint8 (4, H, W, C)
```
"""

from __future__ import annotations

import base64
import io

import numpy as np

# The exported signatures: their inputs (name -> dtype, rank) and their one output.
SIGNATURES = {
    "serving_default": {"inputs": {"z": ("float32", 2)}, "output": "images"},
    "sample": {"inputs": {"seed": ("int64", 0), "num_images": ("int32", 0)}, "output": "images"},
    "png": {"inputs": {"z": ("float32", 2)}, "output": "png_bytes"},
    "latent": {"inputs": {"seed": ("int64", 0), "num_images": ("int32", 0)}, "output": "z"},
}
# The signatures whose inputs are scalars: only the columnar form ("inputs") can hold them.
SCALAR_INPUTS = tuple(
    name for name, spec in SIGNATURES.items() if all(ndim == 0 for _, ndim in spec["inputs"].values())
)


def _check_signature(signature_name: str) -> None:
    if signature_name not in SIGNATURES:
        raise ValueError(
            f"Unknown signature {signature_name!r}; the export has {sorted(SIGNATURES)}. "
            f"Received: signature_name={signature_name!r}"
        )


def _checked_inputs(signature_name: str, inputs: dict) -> dict:
    # The inputs as NumPy arrays of the signature's dtypes and ranks, with clear errors.
    _check_signature(signature_name)
    expected = SIGNATURES[signature_name]["inputs"]
    if set(inputs) != set(expected):
        raise ValueError(
            f"The {signature_name!r} signature takes the inputs {sorted(expected)}. "
            f"Received: inputs={sorted(inputs)}"
        )
    arrays = {}
    for name, (dtype, rank) in expected.items():
        value = np.asarray(inputs[name], dtype=dtype)
        if value.ndim != rank:
            raise ValueError(
                f"Input {name!r} of the {signature_name!r} signature must have rank {rank} "
                f"({'a scalar' if rank == 0 else '(batch, latent_dim)'}). Received: {name} of shape {value.shape}"
            )
        arrays[name] = value
    return arrays


def rest_body(signature_name: str = "serving_default", columnar: bool | None = None, **inputs) -> dict:
    """The JSON body of a REST `:predict` request to one of the export's signatures.

    Args:
        signature_name: `"serving_default"`, `"sample"`, `"png"` or `"latent"`.
        columnar: `False` for the row form (`"instances"`, one entry per z),
            `True` for the columnar form (`"inputs"`, one entry per named
            input). `None` picks rows for `z` and columns for `sample` and
            `latent`, whose scalar inputs have no batch dimension to split
            into rows.
        **inputs: the signature's inputs: `z` (float32, shape
            `(batch, latent_dim)`), or `seed` and `num_images` (integers).

    Returns:
        A dict to send as JSON, e.g. `{"instances": [[0.1, ...], ...]}`;
        `"signature_name"` is set unless it is `"serving_default"`.
    """
    arrays = _checked_inputs(signature_name, inputs)
    if columnar is None:
        columnar = signature_name in SCALAR_INPUTS
    if not columnar and signature_name in SCALAR_INPUTS:
        raise ValueError(
            f"The {signature_name!r} signature's inputs are scalars, which the row form (\"instances\") "
            "cannot hold: use columnar=True or None. Received: columnar=False"
        )
    body = {} if signature_name == "serving_default" else {"signature_name": signature_name}
    if columnar:
        body["inputs"] = {name: value.tolist() for name, value in arrays.items()}
    else:
        body["instances"] = arrays["z"].tolist()
    return body


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(data)))
    return image[..., None] if image.ndim == 2 else image


def _as_images(values, signature_name: str) -> np.ndarray:
    output = SIGNATURES[signature_name]["output"]
    if output == "png_bytes":
        return np.stack([_decode_png(v) for v in values])
    return np.asarray(values, dtype=np.float32 if output == "z" else np.uint8)


def decode_rest_reply(reply: dict, signature_name: str = "serving_default") -> np.ndarray:
    """The images of a REST `:predict` reply, as a uint8 array (`latent`: z, float32).

    Args:
        reply: the parsed JSON reply: `{"predictions": ...}` to a row-form
            request, `{"outputs": ...}` to a columnar one.
        signature_name: the signature that was asked for.

    Returns:
        A uint8 array of shape `(batch, H, W, C)` (PNGs of the `png`
        signature, which TF Serving sends as `{"b64": ...}`, decoded).
    """
    _check_signature(signature_name)
    if "predictions" in reply:
        values = reply["predictions"]
    elif "outputs" in reply:
        values = reply["outputs"]
    else:
        raise ValueError(
            "A :predict reply holds \"predictions\" (row form) or \"outputs\" (columnar form); an error "
            f"reply holds \"error\". Received: reply with keys {sorted(reply)}: {str(reply)[:200]}"
        )
    if isinstance(values, dict):  # columnar, named by output
        values = values[SIGNATURES[signature_name]["output"]]
    if SIGNATURES[signature_name]["output"] == "png_bytes":
        values = [base64.b64decode(v["b64"]) for v in values]
    return _as_images(values, signature_name)


def grpc_request(model_name: str, signature_name: str = "serving_default", **inputs):
    """A gRPC `PredictRequest` for one of the export's signatures.

    Needs `tensorflow-serving-api` (an optional dependency).

    Args:
        model_name: the name the server serves the model under (`--model_name`).
        signature_name: `"serving_default"`, `"sample"`, `"png"` or `"latent"`.
        **inputs: the signature's inputs: `z` (float32, shape
            `(batch, latent_dim)`), or `seed` and `num_images` (integers).

    Returns:
        A `tensorflow_serving.apis.predict_pb2.PredictRequest`, to send with
        `PredictionServiceStub(channel).Predict(request, timeout)`.
    """
    arrays = _checked_inputs(signature_name, inputs)
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in arrays.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def decode_grpc_response(response, signature_name: str = "serving_default") -> np.ndarray:
    """The images of a gRPC `PredictResponse` (or of its `outputs` map), as a uint8 array (`latent`: z, float32).

    Args:
        response: a `PredictResponse`, or a mapping from output name to `TensorProto`.
        signature_name: the signature that was asked for.

    Returns:
        A uint8 array of shape `(batch, H, W, C)` (PNGs decoded).
    """
    _check_signature(signature_name)
    import tensorflow as tf

    outputs = getattr(response, "outputs", response)
    return _as_images(tf.make_ndarray(outputs[SIGNATURES[signature_name]["output"]]), signature_name)
