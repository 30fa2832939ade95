"""The notebooks in notebooks/ run top to bottom with the "smoke" budget and draw their plots.

Each notebook is executed by nbclient in a fresh kernel of this interpreter (``sys.executable``, through a kernel
spec written for the test, so neither an installed ``python3`` kernel spec nor another Python on the machine is
used), with ``LIGHTNING_GAN_NOTEBOOK_BUDGET=smoke``, MNIST from ``tests.conftest.mnist_dir()`` and a temporary
working and run directory. Cells tagged ``plot`` must show an image.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import mnist_dir, requires_mnist

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_NAME = "lightning-gan-test"
CELL_TIMEOUT_S = 300  # one cell; the whole smoke run of a notebook takes well under a minute


def kernel_spec_manager(directory: Path):
    """A kernel spec manager that knows one kernel only: ipykernel on this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = directory / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lightning_gan tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(directory)])


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from jupyter_client.manager import KernelManager

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("LIGHTNING_GAN_NOTEBOOK_BUDGET", "smoke")
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(mnist_dir()))
    monkeypatch.setenv("LIGHTNING_GAN_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny networks, a busy machine: one thread is fastest
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager(tmp_path / "kernels"))
    client = nbclient.NotebookClient(
        nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(work)}}, allow_errors=False
    )
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    assert not list(work.iterdir()), "the notebook wrote into its working directory instead of its run directory"
    return nb


def check_executed(nb, min_plots: int) -> None:
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count is not None for cell in code_cells)
    for cell in code_cells:
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, f"cell failed:\n{cell.source}\n{errors}"
    plots = [cell for cell in code_cells if "plot" in cell.metadata.get("tags", [])]
    assert len(plots) >= min_plots
    for cell in plots:
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert images, f"a plot cell shows no image:\n{cell.source}"


def all_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", ["quickstart.ipynb", "gan_zoo.ipynb"])
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)
    assert "LIGHTNING_GAN_NOTEBOOK_BUDGET" in code_cells[0].source  # the budget is read first


@requires_mnist
def test_quickstart_runs_and_plots(tmp_path, monkeypatch):
    nb = run_notebook("quickstart.ipynb", tmp_path, monkeypatch)
    check_executed(nb, min_plots=3)  # error curve, samples, labelled images
    text = all_text(nb)
    assert "test/error_ema" in text and "per_class_counts" in text
    (split,) = (tmp_path / "runs").rglob("label_split.json")
    assert json.loads(split.read_text())["num_labelled"] == 100


@requires_mnist
def test_gan_zoo_runs_and_plots(tmp_path, monkeypatch):
    nb = run_notebook("gan_zoo.ipynb", tmp_path, monkeypatch)
    check_executed(nb, min_plots=1)  # samples side by side
    text = all_text(nb)
    for recipe in ("vanilla", "DCGAN", "WGAN-GP", "SN-GAN"):
        assert recipe in text
    assert "FID" in text
