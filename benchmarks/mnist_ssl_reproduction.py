"""Reproduction run of the paper's MNIST semi-supervised result: test error of every epoch, per label seed.

    python benchmarks/mnist_ssl_reproduction.py --seed 1 --max-epochs 300 [--max-time 00:02:00:00] [--resume] \
        [--name NAME -- --model.init_args.optimizer_d.init_args.eps 1e-8 ...]

Trains ``configs/mnist_ssl_100.yaml`` (or ``--config``) through the LightningCLI and, after every epoch, measures
the error of the raw and of the averaged (EMA) discriminator on the 10,000 MNIST test images, as the paper
reports it (every epoch, no model selection on the test set). One JSON line per epoch is appended to
``benchmarks/results/<name>_seed<seed>.jsonl``; ``benchmarks/plot_reproduction.py`` draws the curves.
``--resume`` continues the run from its newest ``last.ckpt`` (all state restored, including the Trainer's
``max_time`` clock) and appends to the same file, with wall-clock time counted on from its last line.
Arguments after ``--`` go to the LightningCLI unchanged (controlled variations of the recipe, ``docs/reproduction.md``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_gan.cli import build_cli

RESULTS = Path(__file__).resolve().parent / "results"


@torch.no_grad()
def count_test_errors(trainer: Trainer, pl_module: LightningModule) -> tuple[dict[str, int], int]:
    """Test errors of the raw and the averaged (EMA) discriminator, noise off, and the number of test images.

    1,000 images per forward; the training batch size where each logit depends on its batch (minibatch
    discrimination), as the model's own ``test_step`` sees them.
    """
    dm = trainer.datamodule
    if dm._test is None:
        dm.setup("test")
    images, targets = dm._test
    was_training = pl_module.training
    pl_module.eval()
    wrong = {"raw": 0, "ema": 0}
    step = dm.batch_size if getattr(pl_module.discriminator, "batch_dependent", False) else 1000
    for start in range(0, len(images), step):
        x, y = images[start : start + step].to(pl_module.device), targets[start : start + step].to(pl_module.device)
        wrong["raw"] += int((pl_module.discriminator(x).argmax(1) != y).sum())
        wrong["ema"] += int((pl_module.ema_discriminator(x).argmax(1) != y).sum())
    pl_module.train(was_training)
    return wrong, len(images)


class TestErrorPerEpoch(Callback):
    """After each training epoch, count test errors of the raw and averaged discriminator; append a JSON line."""

    def __init__(self, out: Path, seed: int, wall_offset: float = 0.0) -> None:
        self.out, self.seed, self.start = out, seed, time.perf_counter() - wall_offset

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        wrong, total = count_test_errors(trainer, pl_module)
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_epoch") or k.startswith("val/")
        }
        row = {
            "seed": self.seed,
            "epoch": trainer.current_epoch,
            "wall_s": round(time.perf_counter() - self.start, 1),
            "test_errors_raw": wrong["raw"],
            "test_errors_ema": wrong["ema"],
            "test_total": total,
            **metrics,
        }
        with self.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist_ssl_100.yaml")
    parser.add_argument("--seed", type=int, default=1, help="label seed (the global seed is the same)")
    parser.add_argument("--num-labelled", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--max-time", default=None, help="Trainer max_time, DD:HH:MM:SS")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--name", default=None, help="results file prefix (default: the config name); _n<labels> is appended"
    )
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON lines")
    parser.add_argument("--runs", default="runs", help="the CSVLogger save_dir of the config (for --resume)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest last.ckpt")
    parser.add_argument("cli_overrides", nargs="*", help="after --: LightningCLI arguments, e.g. --model.init_args.x 1")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name = f"{args.name or Path(args.config).stem}_n{args.num_labelled}"
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{name}_seed{args.seed}.jsonl"
    ckpt_path, wall_offset = None, 0.0
    if args.resume:
        ckpts = sorted(Path(args.runs).glob(f"{name}_seed{args.seed}/version_*/checkpoints/last.ckpt"))
        if not ckpts or not out.exists():
            raise SystemExit(f"--resume: no last.ckpt under {args.runs}/{name}_seed{args.seed} or no {out}")
        ckpt_path = str(max(ckpts, key=lambda p: p.stat().st_mtime))
        wall_offset = json.loads(out.read_text().splitlines()[-1])["wall_s"]
    else:
        out.unlink(missing_ok=True)
    cli_args = [
        "--config", args.config,
        "--seed_everything", str(args.seed),
        "--data.init_args.label_seed", str(args.seed),
        "--data.init_args.num_labelled", str(args.num_labelled),
        "--trainer.max_epochs", str(args.max_epochs),
        "--trainer.logger.init_args.name", f"{name}_seed{args.seed}",
    ]  # fmt: skip
    if args.max_time:
        cli_args += ["--trainer.max_time", args.max_time]
    cli_args += args.cli_overrides
    cli = build_cli(cli_args, run=False)
    cli.trainer.callbacks.append(TestErrorPerEpoch(out, args.seed, wall_offset))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)


if __name__ == "__main__":
    main()
