"""The walkthrough notebook runs top to bottom, and its committed copy is a real run."""

import copy
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def _execute(nb, workdir):
    from nbclient import NotebookClient

    os.environ["DCGAN_WALKTHROUGH_QUICK"] = "1"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        os.environ.pop("DCGAN_WALKTHROUGH_QUICK", None)
    return nb


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "notebooks").mkdir()
    return tmp_path / "notebooks"  # the notebook writes to ../runs and ../saved_models


def test_walkthrough_runs_top_to_bottom_in_quick_mode(workdir):
    nb = _execute(nbformat.read(NOTEBOOK, as_version=4), workdir)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # data grid, samples, losses, served samples
    assert (workdir.parent / "runs" / "walkthrough" / "ckpt.keras").exists()


def test_a_failing_cell_fails_the_run(workdir):
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    broken = copy.deepcopy(nb)
    broken.cells.insert(2, nbformat.v4.new_code_cell("raise RuntimeError('broken cell')"))
    broken.cells = broken.cells[:3]  # fail fast: imports, then the broken cell
    with pytest.raises(CellExecutionError, match="broken cell"):
        _execute(broken, workdir)


def test_committed_notebook_carries_outputs_of_one_full_in_order_run():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    # The committed run is the full setting, not the quick one.
    assert "base_width=64" in "".join(str(o.get("data", {}).get("text/plain", "")) for o in code[0].outputs)
