"""What every benchmark result records next to its numbers: the machine, the software, and the command that ran.

Imported by ``memory.py``, ``ablations.py``, ``diffaugment.py`` and ``report.py``; ``report.py`` prints these fields
above each table, so a number in ``BENCHMARKS.md`` always comes with where and how it was measured.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """Total RAM in GiB (``/proc/meminfo``), ``None`` where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB
    except OSError:
        pass
    return None


def machine_spec() -> dict[str, Any]:
    """CPU, cores (all, and those this process may run on), RAM, load, Python, torch and lightning versions."""
    import lightning
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "ram_gib": ram_gib(),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.cuda.is_available(),
    }


def command_line(argv: list[str] | None, script: str) -> str:
    """The command that produced a result, as one would type it: ``python benchmarks/<script> <args>``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", f"benchmarks/{script}", *args])


def merge_runs(
    previous: dict[str, Any] | None, runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """``--update``: ``runs`` after the runs of ``previous`` (an earlier result) that they do not re-measure.

    Runs are matched by ``key``; each kept run keeps the command that measured it (``previous["command"]`` for runs
    written before runs carried their own).
    """
    if previous is None:
        return runs
    redone = {key(run) for run in runs}
    kept = [run for run in previous["runs"] if key(run) not in redone]
    for run in kept:
        run.setdefault("command", previous["command"])
    return kept + runs


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``ru_maxrss`` is in kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def use_data_dir(data_dir: str | None) -> None:
    """Point the library (and child processes) at ``data_dir`` through ``$LIGHTNING_GAN_DATA``, when given."""
    if data_dir:
        os.environ["LIGHTNING_GAN_DATA"] = str(Path(data_dir).resolve())


def write_synthetic_mnist(folder: str | Path, n_train: int = 1200, n_test: int = 200) -> Path:
    """MNIST-format files of banded random digits (``tests/fake_datasets.py``) for smoke runs; returns the folder."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.fake_datasets import write_mnist_like

    write_mnist_like(folder, n_train=n_train, n_test=n_test)
    return Path(folder)
