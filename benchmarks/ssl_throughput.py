"""Throughput of the semi-supervised MNIST training iteration (D step + G step), through the real Trainer.

    python benchmarks/ssl_throughput.py --iters 200            # real MNIST from $LIGHTNING_GAN_DATA
    python benchmarks/ssl_throughput.py --iters 50 --synthetic # random tensors, no data needed

One iteration = one D step on 100 labelled + 100 unlabelled + 100 generated images and one G step
(feature matching on 100 generated + 100 unlabelled). The first ``--warmup`` iterations are not timed.
The last two lines printed are ``peak_rss_mb=<float>`` and ``images_per_s=<float>`` (unlabelled images/s).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from lightning_gan.datamodules import InMemorySemiSupervised, SemiSupervisedMNIST
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator


class IterationTimer(Callback):
    """Wall-clock time of the training iterations after the warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.timed = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.end, self.timed = time.perf_counter(), batch_idx - self.warmup + 1


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=100, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations before timing")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--synthetic", action="store_true", help="random tensors instead of MNIST")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default $LIGHTNING_GAN_DATA)")
    args = parser.parse_args(argv)

    seed_everything(0, verbose=False)
    total = args.warmup + args.iters
    if args.synthetic:
        n = args.batch_size * (total + 1)
        dm = InMemorySemiSupervised(
            torch.rand(n, 1, 28, 28), torch.arange(n) % 10, num_labelled=100, val_size=0, batch_size=args.batch_size
        )
    else:
        dm = SemiSupervisedMNIST(data_dir=args.data_dir, num_labelled=100, val_size=0, batch_size=args.batch_size)
    model = SemiSupervisedGAN(MNISTGenerator(), MNISTDiscriminator())
    timer = IterationTimer(args.warmup)
    trainer = Trainer(
        max_steps=2 * total,  # global_step counts the D and the G optimizer step
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=dm)
    seconds = timer.end - timer.start
    per_iter = seconds / timer.timed
    images_per_s = timer.timed * args.batch_size / seconds
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    iters_per_epoch = 55000 // args.batch_size  # the default 5,000-image validation hold-out
    data = "synthetic" if args.synthetic else "MNIST"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data: {data}")
    print(f"timed_iterations={timer.timed} seconds={seconds:.2f} ms_per_iteration={1000 * per_iter:.1f}")
    print(f"seconds_per_epoch={per_iter * iters_per_epoch:.1f} ({iters_per_epoch} iterations)")
    print(f"peak_rss_mb={peak_rss_mb:.1f}")
    print(f"images_per_s={images_per_s:.1f}")
    sys.stdout.flush()
    return {"peak_rss_mb": peak_rss_mb, "images_per_s": images_per_s, "ms_per_iteration": 1000 * per_iter}


if __name__ == "__main__":
    main()
