"""Atomic writes."""

import json
import os

import pytest

from dcgan_keras.files import atomic_path, atomic_write_json


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"a": 1}  # the old file is kept
    assert os.listdir(path.parent) == ["report.json"]  # and no temporary is left


def test_the_temporary_keeps_the_extension_keras_needs(tmp_path):
    with atomic_path(tmp_path / "backup" / "epoch_0001.weights.h5") as tmp:
        assert tmp.endswith(".weights.h5") and os.path.dirname(tmp) == str(tmp_path / "backup")
        open(tmp, "w").close()
    assert os.listdir(tmp_path / "backup") == ["epoch_0001.weights.h5"]
