"""Cost of one ImageQualityMetrics evaluation: seconds and peak memory for N generated MNIST-like images.

    python benchmarks/metrics_cost.py                      # 10,000 samples, the shipped domain classifier, CPU
    python benchmarks/metrics_cost.py --num-samples 2000 --kid --threads 2

The generator is the brief's vanilla MLP (100 -> 500 -> 500 -> 784, sigmoid), untrained: its cost is what a trained
one costs. Real images are MNIST training images when MNIST is found ($LIGHTNING_GAN_DATA, ./data, ../shared/data),
else random ones. The first evaluation also computes the real statistics (num_real images); the second reuses them,
which is the per-epoch cost during training. Peak RSS is the process's maximum resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_gan.callbacks import ImageQualityMetrics  # noqa: E402
from lightning_gan.metrics import DigitClassifier, DomainExtractor  # noqa: E402
from lightning_gan.models import GAN  # noqa: E402
from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator  # noqa: E402


class RealImages:
    """The attributes ImageQualityMetrics reads from a data module."""

    def __init__(self, images: torch.Tensor, name: str) -> None:
        self.images, self.dataset_name = images, name
        self.image_shape, self.value_range = tuple(images.shape[1:]), (0.0, 1.0)

    def real_images(self, n: int | None = None, split: str = "train") -> torch.Tensor:
        return self.images[:n]


def real_data(n: int) -> RealImages:
    try:
        from lightning_gan.datamodules import load_vision_dataset
        from tests.conftest import mnist_dir

        folder = mnist_dir()
        if folder is not None:
            return RealImages(load_vision_dataset("mnist", folder, train=True)[0][:n], "mnist")
    except (ImportError, RuntimeError):
        pass
    return RealImages(torch.rand(n, 1, 28, 28), "random")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--num-real", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--extractor", default="auto", help="auto | domain | inception")
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--kid", action="store_true")
    parser.add_argument(
        "--untrained", action="store_true", help="an untrained DigitClassifier (same cost) instead of the shipped one"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = real_data(args.num_real)
    model = GAN(VanillaGenerator(output="sigmoid"), VanillaDiscriminator()).to(args.device)
    metrics = ImageQualityMetrics(
        num_samples=args.num_samples,
        num_real=args.num_real,
        batch_size=args.batch_size,
        extractor=DomainExtractor(DigitClassifier(), name="untrained") if args.untrained else args.extractor,
        inception_weights=args.inception_weights,
        kid=args.kid,
        kid_subset_size=min(1000, args.num_samples, args.num_real),
        cache_dir=None,
        progress=False,
    )
    print(f"real data: {data.dataset_name}, device {args.device}, {torch.get_num_threads()} threads")
    print(f"baseline peak RSS {peak_rss_mib():.0f} MiB")
    for run in ("first (real statistics + samples)", "second (samples only)"):
        started = time.perf_counter()
        scores = metrics.evaluate(model, data)
        seconds = time.perf_counter() - started
        print(f"{run}: {seconds:.1f} s for {args.num_samples} samples, peak RSS {peak_rss_mib():.0f} MiB")
    print(f"extractor {metrics.quality.extractor.name}; scores { ({k: round(v, 3) for k, v in scores.items()}) }")


if __name__ == "__main__":
    main()
