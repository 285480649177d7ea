"""The exported SavedModel's signatures, reloading without Keras, TF Serving, the CLI, and resuming training."""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

import dcgan_keras as dk
import tensorflow as tf
from dcgan_keras import serving_client
from dcgan_keras.cli import main
from dcgan_keras.export import saved_model_op_dtypes
from dcgan_keras.sampling import from_standard_normal, latent_prior

SIGNATURES = ("serving_default", "sample", "png", "latent")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DCGAN (the `tiny_config` model, with EMA and a prior of 4 modes) and its export, shared by the module."""
    config = dk.Config(image_size=32, channels=1, latent_dim=16, base_width=8, batch_size=32, seed=1, ema_decay=0.9,
                       latent_distribution="normal", latent_modes=4)
    gan = dk.DCGAN.from_settings(config)
    path = dk.export_generator(gan, tmp_path_factory.mktemp("export") / "digits")
    return gan, path, tf.saved_model.load(path)


def _served_z(num, seed):
    """What a client sends: z ~ N(0, I)."""
    return dk.latent_vectors(num, 16, seed=seed)


def _expected_pixels(gan, z):
    """The sampler's pixels for the prior's draw that an export maps z ~ N(0, I) to."""
    return dk.to_uint8(gan.sampler(from_standard_normal(z, *latent_prior(gan)), training=False))


def test_the_four_signatures_have_named_fully_typed_inputs_and_outputs(exported):
    _, _, loaded = exported
    assert sorted(loaded.signatures) == sorted(SIGNATURES)
    specs = {name: loaded.signatures[name].structured_input_signature[1] for name in SIGNATURES}
    outputs = {name: loaded.signatures[name].structured_outputs for name in SIGNATURES}

    assert specs["serving_default"]["z"].dtype == tf.float32
    assert specs["serving_default"]["z"].shape.as_list() == [None, 16]
    assert outputs["serving_default"]["images"].dtype == tf.uint8
    assert outputs["serving_default"]["images"].shape.as_list() == [None, 32, 32, 1]

    assert set(specs["sample"]) == {"seed", "num_images"}
    assert specs["sample"]["seed"].dtype == tf.int64 and specs["sample"]["seed"].shape.rank == 0
    assert specs["sample"]["num_images"].dtype == tf.int32 and specs["sample"]["num_images"].shape.rank == 0
    assert outputs["sample"]["images"].dtype == tf.uint8
    assert outputs["sample"]["images"].shape.as_list() == [None, 32, 32, 1]

    assert specs["png"]["z"].dtype == tf.float32 and specs["png"]["z"].shape.as_list() == [None, 16]
    assert list(outputs["png"]) == ["png_bytes"]  # "_bytes": TF Serving's REST API returns it as {"b64": ...}
    assert outputs["png"]["png_bytes"].dtype == tf.string
    assert outputs["png"]["png_bytes"].shape.as_list() == [None]

    assert set(specs["latent"]) == {"seed", "num_images"} and list(outputs["latent"]) == ["z"]
    assert outputs["latent"]["z"].dtype == tf.float32 and outputs["latent"]["z"].shape.as_list() == [None, 16]


def test_serving_default_matches_the_generator_in_inference_mode(exported):
    gan, _, loaded = exported
    served = loaded.signatures["serving_default"]
    for batch in (1, 64):
        z = _served_z(batch, seed=batch)
        images = served(z=tf.constant(z))["images"].numpy()
        assert images.dtype == np.uint8 and images.shape == (batch, 32, 32, 1)
        assert np.abs(images.astype(int) - _expected_pixels(gan, z).astype(int)).max() <= 1


def test_sample_gives_the_same_images_for_the_same_seed_and_others_for_another(exported):
    gan, _, loaded = exported
    sample = loaded.signatures["sample"]

    def draw(seed, num):
        return sample(seed=tf.constant(seed, tf.int64), num_images=tf.constant(num, tf.int32))["images"].numpy()

    first, again, other = draw(0, 5), draw(0, 5), draw(1, 5)
    assert first.dtype == np.uint8 and first.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # z is N(0, I) drawn with the stateless seed (seed, 0), as `latent` gives it; the graph maps it to the prior.
    z = loaded.signatures["latent"](seed=tf.constant(0, tf.int64), num_images=tf.constant(5, tf.int32))["z"].numpy()
    np.testing.assert_array_equal(z, tf.random.stateless_normal([5, 16], seed=tf.constant([0, 0], tf.int64)).numpy())
    assert np.abs(first.astype(int) - _expected_pixels(gan, z).astype(int)).max() <= 1
    assert draw(2**40, 1).shape == (1, 32, 32, 1)  # the whole int64 range is a valid seed


def test_png_decodes_to_the_pixels_of_serving_default(exported):
    gan, _, loaded = exported
    z = tf.constant(_served_z(3, seed=7))
    encoded = loaded.signatures["png"](z=z)["png_bytes"].numpy()
    images = loaded.signatures["serving_default"](z=z)["images"].numpy()
    assert encoded.shape == (3,) and all(png.startswith(b"\x89PNG") for png in encoded)
    decoded = np.stack([tf.io.decode_png(png, channels=1).numpy() for png in encoded])
    np.testing.assert_array_equal(decoded, images)


def test_the_export_reloads_in_a_process_that_imports_only_tensorflow(exported):
    gan, path, loaded = exported
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "import tensorflow as tf\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "z = tf.constant(np.asarray(json.loads(sys.argv[2]), np.float32))\n"
        "pixels = loaded.signatures['serving_default'](z=z)['images'].numpy()\n"
        "sampled = loaded.signatures['sample'](seed=tf.constant(3, tf.int64), num_images=tf.constant(2))['images']\n"
        "assert 'dcgan_keras' not in sys.modules\n"
        "print(json.dumps({'pixels': pixels.tolist(), 'sampled': sampled.numpy().tolist()}))\n"
    )
    z = _served_z(2, seed=11)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code, path, json.dumps(z.tolist())],
        capture_output=True, text=True, timeout=120, env=env, cwd=os.path.dirname(path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.array(out["pixels"], np.uint8), loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy())
    assert np.abs(np.array(out["pixels"]) - _expected_pixels(gan, z).astype(int)).max() <= 1
    sampled = loaded.signatures["sample"](seed=tf.constant(3, tf.int64), num_images=tf.constant(2))["images"].numpy()
    np.testing.assert_array_equal(np.array(out["sampled"], np.uint8), sampled)


# Inputs of each signature, for the TF1-style loaders and the documented requests.
def _inputs(gan):
    z = _served_z(3, seed=2)
    return {
        "serving_default": {"z": z},
        "sample": {"seed": np.int64(4), "num_images": np.int32(3)},
        "png": {"z": z},
        "latent": {"seed": np.int64(4), "num_images": np.int32(3)},
    }


def _tf2_outputs(loaded, name, inputs):
    return {k: v.numpy() for k, v in loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_every_signature_runs_in_a_tf1_session_as_tf_serving_loads_it(exported):
    # TF Serving's C++ loader and saved_model_cli restore the variables with the
    # MetaGraph's saver and feed the signature's tensors by name, in a session.
    gan, path, loaded = exported
    feeds, results = _inputs(gan), {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for name, inputs in feeds.items():
            signature = meta_graph.signature_def[name]
            fetches = {key: info.name for key, info in signature.outputs.items()}
            results[name] = session.run(fetches, {signature.inputs[k].name: v for k, v in inputs.items()})
    for name, inputs in feeds.items():
        expected = _tf2_outputs(loaded, name, inputs)
        assert sorted(results[name]) == sorted(expected)
        for key in expected:
            np.testing.assert_array_equal(results[name][key], expected[key])
    assert results["serving_default"]["images"].shape == (3, 32, 32, 1)
    z = feeds["serving_default"]["z"]
    assert np.abs(results["serving_default"]["images"].astype(int) - _expected_pixels(gan, z).astype(int)).max() <= 1


def _saved_model_cli():
    return shutil.which("saved_model_cli") or next(
        (p for p in [os.path.join(os.path.dirname(sys.executable), "saved_model_cli")] if os.path.exists(p)), None
    )


def test_saved_model_cli_runs_every_signature_with_the_outputs_of_tf_saved_model_load(exported, tmp_path):
    cli = _saved_model_cli()
    if cli is None:
        pytest.skip("saved_model_cli not found on PATH nor next to the Python interpreter")
    gan, path, loaded = exported
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    for name, inputs in _inputs(gan).items():
        files = []
        for key, value in inputs.items():
            np.save(tmp_path / f"{key}.npy", value)
            files.append(f"{key}={tmp_path / f'{key}.npy'}")
        outdir = tmp_path / name
        command = [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", name,
                   "--inputs", ";".join(files), "--outdir", str(outdir)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        for key, value in _tf2_outputs(loaded, name, inputs).items():
            np.testing.assert_array_equal(np.load(outdir / f"{key}.npy", allow_pickle=True), value)


def test_saved_model_cli_lists_the_signatures_and_their_inputs(exported):
    _, path, _ = exported
    cli = _saved_model_cli()
    if cli is None:
        pytest.skip("saved_model_cli not found on PATH nor next to the Python interpreter")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([cli, "show", "--all", "--dir", path], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    for name in ("inputs['z']", "inputs['seed']", "inputs['num_images']", "outputs['images']", "outputs['png_bytes']"):
        assert name in result.stdout
    assert "DT_INT64" in result.stdout and "DT_UINT8" in result.stdout and "DT_STRING" in result.stdout


def _signature_defs(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model.meta_graphs[0].signature_def


def _requests(gan, loaded):
    """(signature, inputs, the images its reply must decode to) for each signature."""
    z = _served_z(2, seed=5)
    sampled = loaded.signatures["sample"](seed=tf.constant(0, tf.int64), num_images=tf.constant(4))["images"].numpy()
    return [
        ("serving_default", {"z": z}, _expected_pixels(gan, z)),
        ("png", {"z": z}, _expected_pixels(gan, z)),
        ("sample", {"seed": 0, "num_images": 4}, sampled),
        ("latent", {"seed": 0, "num_images": 4}, loaded.signatures["latent"](
            seed=tf.constant(0, tf.int64), num_images=tf.constant(4))["z"].numpy()),
    ]


def _check_images(images, expected):
    assert images.dtype == expected.dtype and images.shape == expected.shape
    if expected.dtype == np.float32:  # the z of `latent`
        np.testing.assert_allclose(images, expected, rtol=1e-6)
    else:
        assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1


def test_the_client_signature_table_matches_the_exported_signature_defs(exported):
    _, path, _ = exported
    defs = _signature_defs(path)
    assert set(serving_client.SIGNATURES) == set(SIGNATURES)
    for name, documented in serving_client.SIGNATURES.items():
        signature = defs[name]
        assert signature.method_name == "tensorflow/serving/predict"
        assert set(signature.inputs) == set(documented["inputs"])
        for key, (dtype, rank) in documented["inputs"].items():
            assert tf.dtypes.as_dtype(signature.inputs[key].dtype).name == dtype
            assert tf.TensorShape(signature.inputs[key].tensor_shape).rank == rank
        assert list(signature.outputs) == [documented["output"]]


def test_rest_bodies_in_row_and_columnar_form_run_through_the_signatures_to_the_expected_images(exported):
    gan, path, loaded = exported
    defs = _signature_defs(path)
    for name, inputs, expected in _requests(gan, loaded):
        for columnar in ([None] if name in serving_client.SCALAR_INPUTS else [False, True]):
            body = json.loads(json.dumps(serving_client.rest_body(name, columnar=columnar, **inputs)))
            signature = defs[body.get("signature_name", "serving_default")]
            assert signature is defs[name]
            # As TF Serving reads a body: rows are the batch of the one input; columns are named inputs.
            if "instances" in body:
                assert len(signature.inputs) == 1 and "inputs" not in body
                columns = {next(iter(signature.inputs)): body["instances"]}
            else:
                columns = body["inputs"]
            assert set(columns) == set(signature.inputs)
            feed = {}
            for key, value in columns.items():
                dtype = tf.dtypes.as_dtype(signature.inputs[key].dtype)
                array = np.asarray(value, dtype.as_numpy_dtype)
                np.testing.assert_array_equal(array, inputs[key])  # JSON keeps the values exactly
                assert tf.TensorShape(signature.inputs[key].tensor_shape).is_compatible_with(array.shape)
                feed[key] = tf.constant(array, dtype)
            ((key, value),) = loaded.signatures[name](**feed).items()
            assert key in signature.outputs
            # As TF Serving writes a reply: JSON lists; string outputs named *_bytes as {"b64": ...}.
            values = value.numpy()
            listed = [{"b64": base64.b64encode(v).decode()} for v in values] if key.endswith("_bytes") else values.tolist()
            reply = json.loads(json.dumps({"predictions" if "instances" in body else "outputs": listed}))
            _check_images(serving_client.decode_rest_reply(reply, name), expected)


def test_grpc_predict_requests_run_through_the_signatures_to_the_expected_images(exported):
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    gan, path, loaded = exported
    defs = _signature_defs(path)
    for name, inputs, expected in _requests(gan, loaded):
        request = serving_client.grpc_request("digits", name, **inputs)
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
        assert request.model_spec.name == "digits" and request.model_spec.signature_name == name
        signature = defs[name]
        assert set(request.inputs) == set(signature.inputs)
        for key, proto in request.inputs.items():
            assert proto.dtype == signature.inputs[key].dtype
            assert tf.TensorShape(signature.inputs[key].tensor_shape).is_compatible_with(tf.TensorShape(proto.tensor_shape))
        outputs = loaded.signatures[name](**{k: tf.constant(tf.make_ndarray(p)) for k, p in request.inputs.items()})
        response = predict_pb2.PredictResponse()
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
        _check_images(serving_client.decode_grpc_response(response, name), expected)


def _skeleton(value):
    # The form of a JSON value: dict keys kept, list entries and numbers abstracted.
    if isinstance(value, dict):
        return {k: (v if k == "signature_name" else _skeleton(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(value[0])] if value else []
    return type(value).__name__.replace("int", "number").replace("float", "number")


def test_the_request_bodies_in_docs_serving_md_have_the_form_rest_body_builds():
    import re

    docs = open(os.path.join(os.path.dirname(__file__), "..", "docs", "serving.md")).read()
    blocks = re.findall(r"```jsonc\n(.*?)```", docs, flags=re.S)
    bodies = [json.loads(line.replace(", ...]", "]")) for block in blocks for line in block.splitlines()
              if line.startswith("{")]
    forms = set()
    for body in bodies:
        name = body.get("signature_name", "serving_default")
        inputs = {"seed": 0, "num_images": 4} if name in serving_client.SCALAR_INPUTS else {"z": np.zeros((2, 100), np.float32)}
        built = serving_client.rest_body(name, columnar="inputs" in body, **inputs)
        assert _skeleton(body) == _skeleton(built), body
        forms.add((name, "inputs" in body))
    assert forms == {("serving_default", False), ("serving_default", True), ("png", False), ("png", True), ("sample", True),
                     ("latent", True)}


def test_the_client_refuses_unknown_signatures_inputs_and_forms_with_clear_errors():
    with pytest.raises(ValueError, match="Received: signature_name='predict'"):
        serving_client.rest_body("predict", z=[[0.0]])
    with pytest.raises(ValueError, match=r"Received: inputs=\['x'\]"):
        serving_client.rest_body("serving_default", x=[[0.0]])
    with pytest.raises(ValueError, match="Received: z of shape \\(3,\\)"):
        serving_client.rest_body("png", z=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="Received: columnar=False"):
        serving_client.rest_body("sample", columnar=False, seed=0, num_images=1)
    with pytest.raises(ValueError, match="Received: reply with keys \\['error'\\]"):
        serving_client.decode_rest_reply({"error": "Op type not registered"})


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_tf_serving_answers_the_documented_rest_and_grpc_requests(exported, tmp_path):
    server = shutil.which("tensorflow_model_server")
    if server is None:
        pytest.skip("tensorflow_model_server not on PATH (install TF Serving, or use its docker image; see README)")
    gan, path, loaded = exported
    base = tmp_path / "models" / "digits"
    shutil.copytree(path, base / "1")
    port, grpc_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [server, f"--rest_api_port={port}", f"--port={grpc_port}", "--model_name=digits", f"--model_base_path={base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/digits"
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE":
                        break
            except OSError:
                pass
            assert process.poll() is None, "tensorflow_model_server exited"
            time.sleep(0.5)
        else:
            pytest.fail("tensorflow_model_server did not make the model available in 60 s")
        for name, inputs, expected in _requests(gan, loaded):
            for columnar in ([None] if name in serving_client.SCALAR_INPUTS else [False, True]):
                reply = _post(url + ":predict", serving_client.rest_body(name, columnar=columnar, **inputs))
                _check_images(serving_client.decode_rest_reply(reply, name), expected)
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError:
            return  # REST checked; gRPC needs tensorflow-serving-api
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for name, inputs, expected in _requests(gan, loaded):
                response = stub.Predict(serving_client.grpc_request("digits", name, **inputs), 30.0)
                _check_images(serving_client.decode_grpc_response(response, name), expected)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_exports_a_checkpoint_and_samples_a_grid_from_the_saved_model(tiny_config, tmp_path, capsys):
    gan = dk.DCGAN.from_settings(tiny_config)
    gan.compile()
    gan.save(tmp_path / "ckpt.keras")
    root = tmp_path / "saved_models"
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt.keras"), "--name", "digits", "--export-root", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["export"] == str(root / "digits" / "1")
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt.keras"), "--name", "digits",
                 "--export-root", str(root), "--version", "1"]) == 2
    assert "never overwritten" in capsys.readouterr().err

    out = tmp_path / "grid.png"
    args = ["sample", "--model", str(root / "digits" / "1"), "--num", "6", "--seed", "0"]
    assert main(args + ["--out", str(out)]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.dtype == np.uint8 and grid.shape == (2 * 34 + 2, 3 * 34 + 2)  # 2 rows x 3 columns, padding 2
    assert main(args + ["--out", str(tmp_path / "again.png")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again.png")), grid)  # same seed, same grid
    # The grid holds the sample signature's pixels: first image at (2, 2).
    loaded = tf.saved_model.load(str(root / "digits" / "1"))
    first = loaded.signatures["sample"](seed=tf.constant(0, tf.int64), num_images=tf.constant(6))["images"].numpy()[0]
    np.testing.assert_array_equal(grid[2:34, 2:34], first[..., 0])

    capsys.readouterr()
    assert main(["sample", "--model", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "saved_model.pb" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.keras"), "--name", "x"]) == 2
    assert "No checkpoint" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt.keras"), "--name", "a/b"]) == 2
    assert main(args[:-2] + ["--num", "0", "--out", str(out)]) == 2


SIXTEEN_BITS = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.mark.parametrize("precision", sorted(SIXTEEN_BITS))
def test_a_mixed_precision_generator_exports_float32_ops_unless_keep_precision(tiny_config, tmp_path, precision):
    gan = dk.DCGAN.from_settings(tiny_config.replace(precision=precision, latent_distribution="normal"))
    gan.compile()
    gan.fit(np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32"), batch_size=32, epochs=1, verbose=0)
    assert int(gan.g_optimizer.iterations.numpy()) >= 1
    # After 2 steps from N(0, 0.02) weights the images are all near 0 (pixel 127-128);
    # a larger output kernel spreads them over the pixel range, so that roundings show.
    kernel = gan.generator.get_layer("up3").kernel
    kernel.assign(kernel * 1000.0)

    plain = dk.export_generator(gan, tmp_path / "m")
    with pytest.warns(UserWarning, match="keep_precision=True"):
        kept = dk.export_generator(gan, tmp_path / "m", keep_precision=True)

    sixteen = SIXTEEN_BITS[precision]
    plain_ops, kept_ops = saved_model_op_dtypes(plain), saved_model_op_dtypes(kept)
    assert not {op for op, dtypes in plain_ops.items() if {"float16", "bfloat16"} & set(dtypes)}
    for op in ("MatMul", "Conv2DBackpropInput", "Relu", "Tanh"):
        assert plain_ops[op] == ["float32"]
    for op in ("MatMul", "Conv2DBackpropInput", "Relu"):
        assert kept_ops[op] == [sixteen]
    assert kept_ops["Tanh"] == ["float32"]  # the output layer is float32 in any precision

    z = gan.noise(16, seed=3)
    sixteen_bit_images = np.asarray(gan.generator(z, training=False))
    float32_images = np.asarray(dk.export.float32_copy(gan.generator)(z, training=False))
    assert sixteen_bit_images.std() > 0.1  # spread over the range
    assert np.abs(float32_images - sixteen_bit_images).max() < 0.02
    served = {path: tf.saved_model.load(path).signatures["serving_default"](z=tf.constant(z))["images"].numpy().astype(int)
              for path in (plain, kept)}
    np.testing.assert_array_equal(served[kept], dk.to_uint8(sixteen_bit_images))
    assert np.abs(served[plain] - dk.to_uint8(float32_images).astype(int)).max() <= 1
    assert np.abs(served[plain] - dk.to_uint8(sixteen_bit_images).astype(int)).max() <= 2


def test_float32_copy_holds_the_same_weights_and_a_float32_policy_in_every_layer(tiny_config):
    generator = dk.build_generator(tiny_config.replace(precision="mixed_bfloat16"))
    copy = dk.export.float32_copy(generator)
    assert dk.export.computes_in_16_bits(generator) == ["bfloat16"]
    assert dk.export.computes_in_16_bits(copy) == []
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    assert [layer.name for layer in copy.layers] == [layer.name for layer in generator.layers]
    for a, b in zip(generator.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cli_export_keeps_the_16_bit_graph_only_with_keep_precision(tiny_config, tmp_path, capsys):
    gan = dk.DCGAN.from_settings(tiny_config.replace(precision="mixed_bfloat16"))
    gan.compile()
    gan.save(tmp_path / "ckpt.keras")
    args = ["export", "--checkpoint", str(tmp_path / "ckpt.keras"), "--name", "m", "--export-root", str(tmp_path)]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["compute_dtype"] == "float32" and "bfloat16" in plain["note"]
    with pytest.warns(UserWarning, match="serve it on GPUs"):
        assert main(args + ["--keep-precision"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert kept["compute_dtype"] == "bfloat16" and "--keep-precision" in kept["note"]
    assert saved_model_op_dtypes(plain["export"])["Conv2DBackpropInput"] == ["float32"]
    assert saved_model_op_dtypes(kept["export"])["Conv2DBackpropInput"] == ["bfloat16"]
