"""A newcomer's first commands: quiet stderr, a fast --help, one line per epoch in a log, help for every option."""

import argparse
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import keras

import dcgan_keras as dk
from dcgan_keras import judge
from dcgan_keras.cli import _quiet, build_parser
from dcgan_keras.epoch_log import EpochLog, progress_for

# Lines TensorFlow wrote to stderr on a fresh machine before this change (the report and ours).
START_UP_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796417993.721649    4241 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796417993.721956    4241 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
    "E0000 00:00:1796418006.211147    4282 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1796418009.319240    4282 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
    "Mutation::Apply error: fanout 'StatefulPartitionedCall/gradient_tape/discriminator_1/down1_lrelu_1/"
    "LeakyRelu/LeakyReluGrad' exist for missing node 'StatefulPartitionedCall/discriminator_1/down1_1/BiasAdd'.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
)
NOISE = ("absl::InitializeLog", "oneDNN", "cuInit", "cudart_stub", "remapper", "cpu_feature_guard", "E0000", "I0000")


def _cli(*args, tmp_path, **env_changes):
    """Runs `python -m dcgan_keras ARGS` as a newcomer's shell would (no TF_CPP_MIN_LOG_LEVEL set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", _quiet.VERBOSE_ENV)}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "dcgan_keras", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def _noise_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(word in line for word in NOISE)]


def test_tensorflow_start_up_lines_are_recognised_and_python_output_is_not():
    assert all(_quiet.is_start_up_line(line) for line in START_UP_LINES)
    kept = ("/x/data.py:12: UserWarning: 3 files could not be decoded", "Traceback (most recent call last):",
            "error: --num must be a positive integer. Received: 0", "ValueError: I0000 is not a log line here")
    assert not any(_quiet.is_start_up_line(line) for line in kept)


def test_quiet_import_drops_tensorflow_log_lines_and_passes_python_output_on(tmp_path):
    # A stand-in for TensorFlow that writes what the real one does to file descriptor 2, and a warning.
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os, types, warnings\n"
        f"os.write(2, {(chr(10).join(START_UP_LINES[:3]) + chr(10)).encode()!r})\n"
        "warnings.warn('a warning the user should see')\n"
        "config = types.SimpleNamespace(list_physical_devices=lambda: os.write(2, "
        f"{(START_UP_LINES[3] + chr(10)).encode()!r}))\n"
    )
    code = ("import sys; from dcgan_keras import _registration as r; from dcgan_keras.cli import _quiet\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, r._AfterImport)]  # no real Keras\n"
            "_quiet.import_tensorflow_quietly(); print('imported')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "imported\n", result.stderr
    assert "UserWarning: a warning the user should see" in result.stderr
    assert _noise_in(result.stderr) == []


def test_help_and_the_rest_client_import_no_tensorflow(tmp_path):
    code = ("import sys, dcgan_keras.serving_client; from dcgan_keras.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
    result = _cli("train", "--help", tmp_path=tmp_path)
    assert result.returncode == 0 and "--sample-every N" in result.stdout
    assert result.stderr == ""


def test_sample_writes_no_tensorflow_start_up_lines_and_verbose_brings_them_back(tmp_path, make_tiny_gan):
    export = dk.export_generator(make_tiny_gan(0), tmp_path / "saved_models" / "tiny")
    result = _cli("sample", "--model", export, "--num", "4", "--out", "grid.png", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"images": [4, 32, 32, 1]' in result.stdout
    assert _noise_in(result.stderr) == []
    assert result.stderr == ""
    verbose = _cli("--verbose", "sample", "--model", export, "--num", "4", "--out", "grid.png", tmp_path=tmp_path)
    assert any(_quiet.is_start_up_line(line) for line in verbose.stderr.splitlines())


def test_train_into_a_pipe_prints_one_line_per_epoch_and_no_tensorflow_log(tmp_path):
    result = _cli("train", "--epochs", "2", "--base-width", "8", "--latent-dim", "16", "--batch-size", "250",
                  "--run-dir", "run", "--export-dir", "saved_models/tiny", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout  # no bar redraws, no colour codes
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all(" d_loss " in line and " g_loss " in line and line.endswith(" s)") for line in epochs)
    assert _noise_in(result.stderr) == []


def test_epoch_log_prints_losses_first_then_the_rest_and_the_seconds():
    stream = io.StringIO()
    log = EpochLog(stream=stream, prefix="judge: ")
    log.set_params({"epochs": 3})
    log.on_epoch_begin(0)
    log.on_epoch_end(0, {"d_real": 0.5, "g_loss": 0.80091, "d_loss": np.float32(1.28634)})
    line = stream.getvalue()
    assert line.startswith("judge: epoch 1/3: d_loss 1.286, g_loss 0.8009, d_real 0.5 (") and line.endswith(" s)\n")


def test_progress_is_keras_bar_on_a_terminal_and_an_epoch_log_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    callbacks = [keras.callbacks.History()]
    assert progress_for("auto", callbacks, stream=Terminal()) == ("auto", callbacks)
    verbose, piped = progress_for("auto", callbacks, stream=io.StringIO())
    assert verbose == 0 and piped[:-1] == callbacks and isinstance(piped[-1], EpochLog)
    assert progress_for(1, callbacks, stream=io.StringIO()) == (1, callbacks)  # asked for the bar: kept


def test_every_option_of_every_sub_command_has_help_that_shows_its_default():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing_help, missing_default = [], []
    for command, sub in subparsers.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = f"{command} {action.option_strings[0] if action.option_strings else action.dest}"
            if not action.help:
                missing_help.append(name)
                continue
            flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
            if action.default not in (None, argparse.SUPPRESS) and not flag:
                if "default" not in formatter._expand_help(action):
                    missing_default.append(name)
    assert missing_help == [] and missing_default == []
    train = subparsers.choices["train"].format_help()
    assert "(default: 1, or as many as keep about 60" in " ".join(train.split("\n  --sample-every N")[1][:200].split())
    assert "both networks" not in train


def test_the_judge_says_it_is_training_on_first_use_with_a_line_per_epoch(tmp_path, capsys):
    def tiny_judge():
        return judge.train_digit_classifier(epochs=2, held_out=4500)  # trains on 500 digits

    model, _ = judge.cached_classifier("tiny_judge.keras", tiny_judge, cache_dir=str(tmp_path))
    out, err = capsys.readouterr()
    assert out == ""
    assert f"Training the judge tiny_judge.keras on first use; it is kept in {tmp_path}" in err
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("digit judge:")] == [
        "epoch 1/2", "epoch 2/2"]
    judge.cached_classifier("tiny_judge.keras", tiny_judge, cache_dir=str(tmp_path))
    assert capsys.readouterr().err == ""  # from the cache: nothing to say


def test_import_dcgan_keras_is_lazy_and_keras_loads_its_checkpoints_after_tensorflow_is_imported(tmp_path, make_tiny_gan):
    gan = make_tiny_gan(0)
    gan.save(tmp_path / "gan.keras")
    code = (
        "import sys; import dcgan_keras as dk\n"
        "assert 'tensorflow' not in sys.modules and 'dcgan_keras.gan' not in sys.modules\n"
        "import tensorflow, keras\n"
        "assert 'dcgan_keras.gan' in sys.modules  # registered when TensorFlow and Keras were imported\n"
        f"model = keras.models.load_model({str(tmp_path / 'gan.keras')!r})\n"
        "print(type(model).__name__, model is not None and isinstance(model, dk.DCGAN))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DCGAN", "True"]


def test_public_names_and_submodules_load_on_first_use():
    assert dk.DCGAN is dk.gan.DCGAN and dk.load_digits is dk.data.load_digits
    assert {"DCGAN", "train", "make_dataset", "export_generator"} <= set(dk.__all__) <= set(dir(dk))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        dk.no_such_name
