"""Ablations of the improved GAN techniques on semi-supervised MNIST (100 labels): test error, IS and FID per variant.

    python benchmarks/ablations.py --epochs 5 --threads 1 --json benchmarks/results/ablations.json   # ~70 min
    python benchmarks/ablations.py --quick --json /tmp/ablations.json [--data-dir DIR]                # smoke run

Every variant trains the same budget (``--epochs`` epochs of ``--limit-train-batches`` iterations, label seed 1,
global seed 1) from a config of ``configs/``, built by the LightningCLI (:func:`config_run.lean_cli`):

- ``full``: ``configs/ablations/mnist_ssl_100_full.yaml``: minibatch discrimination with the non-saturating
  generator loss, virtual batch norm in G, one-sided label smoothing (0.9), historical averaging of both players;
- ``minus_mbf``, ``minus_ha``, ``minus_ls``, ``minus_vbn_plus_bn``: its four ablation configs, each removing one
  technique (``-VBN+BN``: batch norm instead of virtual batch norm, as the paper's Table 3);
- ``fm`` and ``fm_minus_fm``: feature matching. The ``full`` combination has no feature matching (the paper pairs
  minibatch discrimination with the non-saturating loss and uses feature matching for semi-supervised learning,
  section 5), so "-feature matching" is measured on the recipe that has it: ``configs/mnist_ssl_100.yaml`` as is,
  and the same with ``--model.init_args.generator_loss non_saturating``.

After each epoch the raw and the averaged (EMA) discriminator classify the 10,000 MNIST test images (the paper's
protocol; ``mnist_ssl_reproduction.count_test_errors``): with minibatch discrimination each logit depends on the rest
of its batch, so those discriminators see batches of the training batch size (100) as the model's own ``test_step``
does, the others 1,000 images at a time (the same predictions, faster). After training,
:class:`~lightning_gan.callbacks.ImageQualityMetrics` scores ``--num-samples`` generated images with the shipped
MNIST domain classifier against as many real images of the unlabelled pool (the configs' ``real_split``):
``metrics/fid``, ``metrics/is_mean``, ``metrics/is_std``, ``metrics/mode_score``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config_run import lean_cli  # noqa: E402
from machine import RESULTS, ROOT, command_line, machine_spec, merge_runs, use_data_dir, write_json  # noqa: E402
from mnist_ssl_reproduction import count_test_errors  # noqa: E402

from lightning_gan.callbacks import ImageQualityMetrics  # noqa: E402

ABLATIONS = ROOT / "configs" / "ablations"
D_ACCURACIES = ("train/d_real_acc_epoch", "train/d_fake_acc_epoch")  # 1.0 and 1.0: D wins outright (collapse)
VARIANTS: dict[str, tuple[Path, list[str], str]] = {
    "full": (ABLATIONS / "mnist_ssl_100_full.yaml", [], "MBF + non-saturating G loss, VBN, LS 0.9, HA"),
    "minus_mbf": (ABLATIONS / "mnist_ssl_100_minus_mbf.yaml", [], "full - minibatch features"),
    "minus_ha": (ABLATIONS / "mnist_ssl_100_minus_ha.yaml", [], "full - historical averaging"),
    "minus_ls": (ABLATIONS / "mnist_ssl_100_minus_ls.yaml", [], "full - one-sided label smoothing"),
    "minus_vbn_plus_bn": (ABLATIONS / "mnist_ssl_100_minus_vbn_plus_bn.yaml", [], "full - VBN + batch norm"),
    "fm": (ROOT / "configs" / "mnist_ssl_100.yaml", [], "paper's semi-supervised recipe: feature matching"),
    "fm_minus_fm": (
        ROOT / "configs" / "mnist_ssl_100.yaml",
        ["--model.init_args.generator_loss", "non_saturating"],
        "fm - feature matching (non-saturating G loss instead)",
    ),
}


class TestErrors(Callback):
    """After each training epoch, count the test errors of the raw and the EMA discriminator, batch by batch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        wrong, total = count_test_errors(trainer, pl_module)
        metrics = trainer.callback_metrics
        logged = {k: round(float(metrics[k]), 4) for k in D_ACCURACIES if k in metrics}
        self.rows.append(
            {"epoch": trainer.current_epoch, "wall_s": round(time.perf_counter() - self.start, 1),
             "test_errors_raw": wrong["raw"], "test_errors_ema": wrong["ema"], "test_total": total, **logged}
        )  # fmt: skip
        print(json.dumps(self.rows[-1]), flush=True)


def run_variant(
    name: str, budget: list[str], metrics: ImageQualityMetrics, work: Path, seed: int = 1
) -> dict[str, Any]:
    """Train one variant for ``budget`` (LightningCLI arguments); its per-epoch test errors and final scores."""
    config, overrides, description = VARIANTS[name]
    seeds = ["--seed_everything", str(seed), "--data.init_args.label_seed", str(seed)]
    cli = lean_cli(config, [*seeds, *budget, *overrides], work / name)
    errors = TestErrors()
    cli.trainer.callbacks.append(errors)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = metrics.evaluate(cli.model, cli.datamodule)
    epochs = errors.rows
    steps_per_iteration = 1 + cli.model.generator_steps
    return {
        "variant": name,
        "description": description,
        "config": str(Path(config).relative_to(ROOT)),
        "overrides": overrides,
        "epochs": len(epochs),
        "iterations": cli.trainer.global_step // steps_per_iteration,
        "fit_seconds": round(fit_seconds, 1),
        "test_errors_ema": epochs[-1]["test_errors_ema"],
        "test_errors_raw": epochs[-1]["test_errors_raw"],
        "test_total": epochs[-1]["test_total"],
        "per_epoch": epochs,
        **{key: round(value, 4) for key, value in scores.items()},
        "metrics_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit-train-batches", type=float, default=1.0, help="iterations per epoch (int) or share")
    parser.add_argument("--num-samples", type=int, default=10_000, help="generated (and real) images for IS/FID")
    parser.add_argument("--seed", type=int, default=1, help="global and label seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 iterations of one epoch, 100 samples")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    parser.add_argument("--json", default=str(RESULTS / "ablations.json"))
    parser.add_argument(
        "--update", action="store_true", help="replace only these variants' runs in an existing --json, keep the rest"
    )
    args = parser.parse_args(argv)
    use_data_dir(args.data_dir)
    torch.set_num_threads(args.threads)
    limit = int(args.limit_train_batches) if args.limit_train_batches > 1 else args.limit_train_batches
    budget = ["--trainer.max_epochs", str(args.epochs), "--trainer.limit_train_batches", str(limit)]
    if args.quick:
        args.epochs, args.num_samples, limit = 1, 100, 2
        budget = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches",
                  "1", "--data.init_args.val_size", "100", "--trainer.num_sanity_val_steps", "0"]  # fmt: skip
    metrics = ImageQualityMetrics(
        every_n_epochs=0, num_samples=args.num_samples, num_real=args.num_samples, cache_dir=None, progress=False
    )
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.variants:
            runs.append(run_variant(name, budget, metrics, Path(work), args.seed))
            runs[-1]["command"] = command_line(argv, "ablations.py")  # each run says which command made it
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "per_epoch"}), flush=True)
    if args.update and Path(args.json).is_file():  # the other variants' runs stay as they were measured
        previous = json.loads(Path(args.json).read_text())
        runs = sorted(
            merge_runs(previous, runs, key=lambda run: run["variant"]),
            key=lambda run: list(VARIANTS).index(run["variant"]),
        )
    result = {
        "benchmark": "ablations",
        "command": command_line(argv, "ablations.py"),
        "quick": args.quick,
        "settings": {
            "epochs": args.epochs,
            "limit_train_batches": limit,
            "num_samples": args.num_samples,
            "seed": args.seed,
            "threads": args.threads,
            "extractor": metrics.quality.extractor.name,
            "budget_args": budget,
        },
        "machine": machine_spec(),
        "runs": runs,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
