"""Watch the first iterations of a semi-supervised MNIST run for the generator's mode collapse.

    python benchmarks/collapse_diagnostics.py --out benchmarks/results/collapse_diag_n50_seed1.jsonl \
        -- --config configs/mnist_ssl_100.yaml --data.init_args.num_labelled 50 --trainer.max_epochs 2

Trains through the LightningCLI (arguments after ``--``) and every ``--every`` iterations writes one JSON line:

- ``spread``: the per-pixel standard deviation over 200 generated images, averaged over pixels (train-mode G; a
  generator that draws one image for every z has ~0; 10,000 MNIST training images have 0.19),
- ``fm``: the feature-matching loss between the current unlabelled batch and those 200 samples (D in training mode),
- ``lse_real`` / ``lse_fake``: mean logsumexp of D's logits on them (D(x) = sigmoid(lse): D's real/fake margin),
- ``feat_real`` / ``feat_fake``: the mean activation of the feature-matching layer on each.

The probes draw random numbers inside a saved-and-restored RNG state, so the run itself is the one the same command
runs without this script (``docs/reproduction.md`` uses this to show where failing few-label runs go wrong).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_gan.cli import build_cli


class CollapseProbe(Callback):
    """Every ``every`` training batches, one JSON line of generator spread and D margins (see module docstring)."""

    def __init__(self, out: Path, every: int = 25, num_samples: int = 200) -> None:
        self.out, self.every, self.num_samples = out, every, num_samples
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        if batch_idx % self.every:
            return
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the run's own random stream is untouched
            row = {
                "iteration": trainer.global_step // 2,
                "epoch": trainer.current_epoch,
                **self.probe(pl_module, batch),
            }
        with self.out.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def probe(self, model: LightningModule, batch: dict) -> dict[str, float]:
        g, d = model.generator, model.discriminator
        fake = g(g.sample_noise(self.num_samples, device=model.device)).flatten(1)  # [N, 784]
        real = batch["unlabelled"].flatten(1)  # [B, 784]
        feat_real, feat_fake = d.features(real).mean(0), d.features(fake).mean(0)  # [F]
        return {
            "spread": round(fake.std(0).mean().item(), 4),
            "fm": round((feat_real - feat_fake).square().mean().item(), 3),
            "lse_real": round(torch.logsumexp(d(real), 1).mean().item(), 2),
            "lse_fake": round(torch.logsumexp(d(fake), 1).mean().item(), 2),
            "feat_real": round(feat_real.mean().item(), 3),
            "feat_fake": round(feat_fake.mean().item(), 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON-lines file to write")
    parser.add_argument("--every", type=int, default=25, help="iterations between probes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("cli_args", nargs="*", help="after --: LightningCLI arguments")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cli = build_cli(args.cli_args, run=False)
    cli.trainer.callbacks.append(CollapseProbe(Path(args.out), every=args.every))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


if __name__ == "__main__":
    main()
