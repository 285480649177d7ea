"""ONNX and LiteRT exports: the SavedModel's images for the same z ~ N(0, I), each weight stored once."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import dcgan_keras as dk
from dcgan_keras import portable
from dcgan_keras.cli import main
from dcgan_keras.export import next_version, serving_generator
from dcgan_keras.sampling import erf, latent_vectors, record_prior

# Generators of both sizes, on priors that put every op of the map from N(0, I) in the graph
# (atan2, floor, one_hot for the mixture; erf for the uniform), with weights wide enough that
# the untrained images have contrast.
SHAPES = {"32x32x1": (32, 1, (10, 5.0, "normal")), "64x64x3": (64, 3, (0, 5.0, "uniform"))}
FLOAT_ATOL = 1e-4  # ONNX and LiteRT floats against the Keras serving generator's, same z (measured: up to 2e-5)
MAX_LEVEL_DIFF = 1  # ONNX and LiteRT pixels against the SavedModel's uint8 pixels, of 255


@pytest.fixture(scope="module", params=list(SHAPES))
def exported(request, tmp_path_factory):
    size, channels, prior = SHAPES[request.param]
    config = dk.Config(image_size=size, channels=channels, latent_dim=16, base_width=16, seed=2, init_stddev=0.2)
    generator = record_prior(dk.build_generator(config), *prior)
    base = tmp_path_factory.mktemp(request.param)
    return {
        "generator": generator,
        "saved_model": dk.export_generator(generator, base),
        "onnx": portable.export_portable(generator, base, "onnx"),
        "litert": portable.export_portable(generator, base, "litert"),
        "shape": (size, size, channels),
        "prior": dict(zip(("modes", "offset", "distribution"), prior)),
    }


def _pixels(images):
    return np.clip(np.round((np.asarray(images, "float64") + 1.0) * 127.5), 0, 255).astype(np.int16)


@pytest.mark.parametrize("batch", [1, 16])
def test_onnx_and_litert_give_the_saved_models_images_for_the_same_z(exported, batch):
    z = latent_vectors(batch, 16, seed=batch)  # N(0, I), what every client sends
    saved_model = tf.saved_model.load(exported["saved_model"]).signatures["serving_default"]
    pixels = saved_model(z=tf.constant(z))["images"].numpy().astype(np.int16)
    keras_images = np.asarray(serving_generator(exported["generator"])(z, training=False))
    runs = {
        "onnx": portable.OnnxGenerator(exported["onnx"]),
        "litert": portable.LiteRTGenerator(exported["litert"]),
    }
    for name, run in runs.items():
        images = run(z)
        assert images.shape == (batch, *exported["shape"]) and images.dtype == np.float32, name
        assert images.min() >= -1.0 and images.max() <= 1.0, name
        np.testing.assert_allclose(images, keras_images, atol=FLOAT_ATOL, err_msg=name)
        difference = np.abs(_pixels(images) - pixels)
        assert difference.max() <= MAX_LEVEL_DIFF, (name, difference.max())
        assert (difference > 0).mean() < 0.001, (name, (difference > 0).mean())
    assert pixels.std() > 10  # images with contrast, so that equal pixels say something


def test_each_export_stores_every_weight_once_within_10_percent_of_4_bytes_a_parameter(exported):
    expected = exported["generator"].count_params() * 4
    sizes = {
        "saved_model": portable.weight_bytes(exported["saved_model"]),
        "onnx": portable.weight_bytes(os.path.join(exported["onnx"], "generator.onnx")),
        "litert": portable.weight_bytes(os.path.join(exported["litert"], "generator.tflite")),
    }
    for name, size in sizes.items():
        assert 0.9 * expected <= size <= 1.1 * expected, (name, size, expected)


def test_the_exports_take_z_and_give_images_with_any_batch_and_say_z_is_standard_normal(exported):
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    onnx_file = os.path.join(exported["onnx"], "generator.onnx")
    session = portable.OnnxGenerator(onnx_file).session
    (z_input,), (images_output,) = session.get_inputs(), session.get_outputs()
    assert (z_input.name, z_input.type, z_input.shape) == ("z", "tensor(float)", ["batch", 16])
    assert (images_output.name, images_output.shape) == ("images", ["batch", *exported["shape"]])
    metadata = {p.key: p.value for p in onnx.load(onnx_file).metadata_props}
    assert "N(0, I)" in metadata["input"] and metadata["latent_dim"] == "16"
    assert json.loads(metadata["trained_prior"]) == exported["prior"]

    interpreter = Interpreter(model_path=os.path.join(exported["litert"], "generator.tflite"))
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["z"], "outputs": ["images"]}}
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, 16]
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") for op in ops), ops  # built-in ops only: the plain runtime runs it

    for folder, file in ((exported["onnx"], "generator.onnx"), (exported["litert"], "generator.tflite")):
        described = json.loads(open(os.path.join(folder, "generator.json")).read())
        assert described["file"] == file and described["input"]["shape"] == [None, 16]
        assert "N(0, I)" in described["input"]["meaning"] and described["output"]["range"] == [-1.0, 1.0]
        assert described["output"]["shape"] == [None, *exported["shape"]]
        assert described["parameters"] == exported["generator"].count_params()


def test_erf_from_polynomials_is_within_5e7_of_erf_and_stays_in_minus_one_one():
    x = np.linspace(-8, 8, 400_001, dtype=np.float32)
    y = np.asarray(erf(x))
    assert np.abs(y.astype("float64") - special.erf(x.astype("float64"))).max() < 5e-7
    assert y.min() == -1.0 and y.max() == 1.0 and y[len(x) // 2] == 0.0


def test_export_command_writes_onnx_and_litert_versions_beside_the_saved_models(make_tiny_gan, tmp_path, capsys,
                                                                                monkeypatch):
    checkpoint = str(tmp_path / "ckpt.keras")
    make_tiny_gan(0).save(checkpoint)
    root = tmp_path / "saved_models"
    common = ["export", "--checkpoint", checkpoint, "--name", "digits", "--export-root", str(root)]
    assert main([*common, "--format", "onnx"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"] == str(root / "digits" / "onnx" / "1" / "generator.onnx") and "N(0, I)" in summary["input"]
    assert main([*common, "--format", "onnx"]) == 0 and (root / "digits" / "onnx" / "2" / "generator.json").is_file()
    assert main([*common, "--format", "litert"]) == 0
    assert (root / "digits" / "litert" / "1" / "generator.tflite").is_file()
    capsys.readouterr()
    assert main(common) == 0  # the default: a SavedModel, version 1, its numbering untouched by onnx/ and litert/
    assert json.loads(capsys.readouterr().out)["export"] == str(root / "digits" / "1")
    assert sorted(os.listdir(root / "digits")) == ["1", "litert", "onnx"] and next_version(root / "digits") == 2
    assert main([*common, "--format", "litert", "--keep-precision"]) == 2
    assert "applies to --format saved_model only" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed: an error line, not a traceback
    assert main([*common, "--format", "onnx"]) == 2
    assert 'pip install "dcgan_keras[onnx]"' in capsys.readouterr().err


def test_importing_the_package_needs_no_optional_runtime_and_a_missing_one_names_its_extra(monkeypatch):
    script = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert", "selenium"):
            raise ImportError("not installed: " + name)
sys.meta_path.insert(0, Refuse())
import dcgan_keras, dcgan_keras.portable, dcgan_keras.page
from dcgan_keras.cli import build_parser
build_parser()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r'pip install "dcgan_keras\[onnx\]".*Received: module=\'onnxruntime\''):
        portable.OnnxGenerator("generator.onnx")
    with pytest.raises(portable.MissingExtra, match=r"dcgan_keras\[onnx\]"):
        portable.export_onnx(dk.build_generator(dk.Config(latent_dim=8, base_width=8, image_size=32, channels=1)), "x.onnx")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ImportError, match=r'pip install "dcgan_keras\[litert\]"'):
        portable.LiteRTGenerator("generator.tflite")
