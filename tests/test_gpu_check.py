"""benchmarks/gpu_check.py: its --quick smoke run, and the PyTorch reference step it times beside ours."""

import os
import re
import subprocess
import sys

import pytest

import dcgan_keras as dk

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header starts with `header`, as lists of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _quick_run(*flags) -> str:
    result = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "gpu_check.py"), "--quick", *flags],
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def quick_run():
    # One precision, the one with the mirrored rows: a third of the grid, every kind of row.
    # The PyTorch step is checked below on its own, faster.
    return _quick_run("--precisions", "mixed_bfloat16", "--no-torch")


def _check_training_rows(text: str, precisions, torch_reason: str | None) -> None:
    """Every row of the training table is there, and has a positive rate (PyTorch's: or `torch_reason`)."""
    assert text.startswith("QUICK SMOKE RUN (toy size, not a speed figure)")
    rows = _table_rows(text, "trainer")
    keys = [tuple(row[:5]) for row in rows]
    expected = []
    for precision in precisions:
        for batch, fast_layers in (("8", ("on", "off")), ("16", ("on",))):
            expected += [("keras", precision, batch, fast, xla) for fast in fast_layers for xla in ("off", "on")]
            expected += [(f"pytorch/examples {variant}", precision, batch, "-", "-")
                         for variant in ("default", "channels_last")]
    expected += [("keras, mirrored (1 device)", "mixed_bfloat16", "8", "on", xla) for xla in ("auto", "on")]
    assert sorted(keys) == sorted(expected)
    for row in rows:
        trainer, xla_asked, xla_in_step, rate, tflops, half_peak, single_peak = (row[0], *row[4:])
        if trainer.startswith("pytorch") and torch_reason:
            assert rate == torch_reason
            continue
        assert float(rate) > 0 and float(tflops) >= 0, row
        assert half_peak == single_peak == "n/a", row  # no GPU, no --peak-tflops
        if trainer.startswith("keras"):
            # What the traced step does: XLA exactly where asked, except Keras' "auto" under a
            # strategy, which turns it off (on a CPU it would be off anyway).
            assert xla_in_step == {"on": "on", "off": "off", "auto": "off"}[xla_asked], row


def test_quick_run_times_every_training_row_of_a_precision_and_reads_xla_from_the_step(quick_run):
    _check_training_rows(quick_run, ["mixed_bfloat16"], torch_reason="n/a: --no-torch")


@pytest.mark.slow
def test_quick_run_of_the_whole_grid_times_every_row():
    # Every precision, and PyTorch's rows where torch is installed: 20 Keras models
    # (10 compiled by XLA) and 12 PyTorch ones, ~2 minutes on 2 idle cores.
    try:
        import torch  # noqa: F401
        reason = None
    except ImportError:
        reason = "n/a: torch is not installed"
    _check_training_rows(_quick_run(), ["mixed_bfloat16", "float32", "mixed_float16"], torch_reason=reason)


def test_quick_run_measures_the_input_pipeline_on_jpegs_and_the_exported_generator(quick_run):
    inputs = dict(_table_rows(quick_run, "input (256 JPEGs, batch 8)"))
    assert set(inputs) == {"folder, decoded every epoch (cache off)", "folder, from the memory cache"}
    assert all(float(rate) > 0 for rate in inputs.values())
    serving = dict(_table_rows(quick_run, "serving (export_generator, serving_default)"))
    assert float(serving["batch 16"]) > 0
    assert re.search(r"^Finished in \d+ s\.$", quick_run, re.MULTILINE)


def test_pytorch_reference_step_trains_in_each_precision_and_memory_format():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, BENCHMARKS)
    try:
        from train_throughput import torch_rounds
    finally:
        sys.path.remove(BENCHMARKS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy sizes: one thread is fastest, and spares the other tests' cores
    try:
        for precision in PRECISIONS:  # float16 with a GradScaler, as Keras' loss scaling
            config = dk.Config(image_size=32, channels=3, latent_dim=16, base_width=8, batch_size=8,
                               precision=precision)
            rounds = torch_rounds(config, steps=1, device="cpu", variants=("default", "channels_last"))
            assert set(rounds) == {"default", "channels_last"}
            for one_round, inference in rounds.values():
                assert one_round() > 0 and inference > 0
    finally:
        torch.set_num_threads(threads)
