"""Peak memory (RSS) of K+1 MNIST training and of one ImageQualityMetrics evaluation, and how it scales.

    python benchmarks/memory.py --threads 1 --json benchmarks/results/memory.json     # the full budget (~3 min)
    python benchmarks/memory.py --quick --json /tmp/memory.json [--data-dir DIR]       # smoke run (seconds)

Every measurement runs in a fresh Python process, so each peak is that configuration's alone (``ru_maxrss`` of the
child; a process's peak never goes down, hence one process per point):

- training: :class:`~lightning_gan.models.SemiSupervisedGAN` with the paper's ``MNISTGenerator`` /
  ``MNISTDiscriminator``, :class:`~lightning_gan.datamodules.SemiSupervisedMNIST` (100 labels, 5,000 validation
  images), ``Trainer.fit`` for ``--iterations`` iterations of one epoch and the validation pass after it, for each
  ``--batch-sizes``. The child also reports its RSS after the imports and after the data are loaded, so the table
  separates what the interpreter, torch and MNIST take from what training adds.
- metrics: ``benchmarks/metrics_cost.py`` (one evaluation of :class:`~lightning_gan.callbacks.ImageQualityMetrics`
  with the shipped MNIST domain classifier: real statistics of ``--num-real`` images, then ``num_samples`` generated
  images) for each ``--num-samples``, parsed from its output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import RESULTS, ROOT, command_line, machine_spec, peak_rss_mib, use_data_dir, write_json  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
METRICS_LINE = re.compile(r"^(first|second) .*: (?P<s>[\d.]+) s for (?P<n>\d+) samples, peak RSS (?P<rss>[\d.]+) MiB")


def train_child(batch_size: int, iterations: int, val_size: int, threads: int) -> dict[str, Any]:
    """In this (fresh) process: fit the K+1 GAN for ``iterations`` batches; RSS at each stage and seconds."""
    import torch

    torch.set_num_threads(threads)
    from lightning.pytorch import Trainer, seed_everything

    from lightning_gan.datamodules import SemiSupervisedMNIST
    from lightning_gan.models import SemiSupervisedGAN
    from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator

    after_imports = peak_rss_mib()
    seed_everything(1, verbose=False)
    data = SemiSupervisedMNIST(num_labelled=100, label_seed=1, batch_size=batch_size, val_size=val_size)
    data.setup("fit")
    after_data = peak_rss_mib()
    model = SemiSupervisedGAN(MNISTGenerator(), MNISTDiscriminator())
    with tempfile.TemporaryDirectory() as root:
        trainer = Trainer(
            max_epochs=1,
            limit_train_batches=iterations,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        started = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - started
    return {
        "batch_size": batch_size,
        "iterations": iterations,
        "rss_after_imports_mib": round(after_imports, 1),
        "rss_after_data_mib": round(after_data, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "fit_seconds": round(seconds, 2),
        "ms_per_iteration": round(1000 * seconds / iterations, 1),  # includes init and the validation pass
        "train_images": len(data.unlabelled_indices),
    }


def run_child(args: list[str]) -> dict[str, Any]:
    """Run this script as a child with ``args``; its last output line is the JSON record."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def metrics_child(num_samples: int, num_real: int, threads: int) -> dict[str, Any]:
    """One ``metrics_cost.py`` process: seconds and peak RSS of the first and the second evaluation."""
    argv = ["--num-samples", str(num_samples), "--num-real", str(num_real), "--threads", str(threads)]
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "metrics_cost.py"), *argv], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"metrics_cost.py {argv} failed:\n{proc.stderr[-4000:]}")
    record: dict[str, Any] = {"num_samples": num_samples, "num_real": num_real}
    for line in proc.stdout.splitlines():
        if line.startswith("baseline peak RSS"):
            record["rss_before_mib"] = float(line.split()[3])
        elif line.startswith("real data:"):
            record["real_data"] = line.split(",")[0].split(":")[1].strip()
        elif match := METRICS_LINE.match(line):
            record[f"{match[1]}_seconds"] = float(match["s"])
            record[f"{match[1]}_peak_rss_mib"] = float(match["rss"])
    record["peak_rss_mib"] = max(record["first_peak_rss_mib"], record["second_peak_rss_mib"])
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per batch size")
    parser.add_argument("--num-samples", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--num-real", type=int, default=10_000, help="real images of the metrics' statistics")
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: one small point of each kind")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    parser.add_argument("--json", default=str(RESULTS / "memory.json"))
    parser.add_argument("--child-train", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_data_dir(args.data_dir)
    if args.child_train is not None:
        print(json.dumps(train_child(args.child_train, args.iterations, args.val_size, args.threads)), flush=True)
        return {}
    if args.quick:
        args.batch_sizes, args.iterations, args.num_samples, args.num_real = [50], 2, [200], 200
        args.val_size = min(args.val_size, 100)
    env_threads = {"OMP_NUM_THREADS": str(args.threads)}
    os.environ.update(env_threads)
    training = []
    for batch_size in args.batch_sizes:
        child = ["--child-train", str(batch_size), "--iterations", str(args.iterations)]
        child += ["--val-size", str(args.val_size), "--threads", str(args.threads)]
        training.append(run_child(child))
        print(json.dumps(training[-1]), flush=True)
    metrics = []
    for n in args.num_samples:
        metrics.append(metrics_child(n, args.num_real, args.threads))
        print(json.dumps(metrics[-1]), flush=True)
    result = {
        "benchmark": "memory",
        "command": command_line(argv, "memory.py"),
        "quick": args.quick,
        "settings": {
            "iterations": args.iterations,
            "num_real": args.num_real,
            "val_size": args.val_size,
            "threads": args.threads,
            "data_dir": os.environ.get("LIGHTNING_GAN_DATA"),
        },
        "machine": machine_spec(),
        "training": training,
        "metrics": metrics,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
