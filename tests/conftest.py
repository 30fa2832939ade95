from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lightning_gan.datamodules import InMemorySemiSupervised, default_data_dir

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def mnist_dir() -> Path | None:
    """Folder holding MNIST/raw: $LIGHTNING_GAN_DATA, ./data (where download=True puts it), ../shared/data."""
    for candidate in (os.environ.get("LIGHTNING_GAN_DATA"), default_data_dir(), SHARED_DATA):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return Path(candidate)
    if os.environ.get("LIGHTNING_GAN_REQUIRE_MNIST"):  # CI sets it: the MNIST tests must run, not skip
        raise RuntimeError("LIGHTNING_GAN_REQUIRE_MNIST is set but no MNIST/raw was found; set LIGHTNING_GAN_DATA")
    return None


requires_mnist = pytest.mark.skipif(
    mnist_dir() is None, reason="MNIST not found: set LIGHTNING_GAN_DATA to a folder holding MNIST/raw"
)


def synthetic_digits(n: int, num_classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 28x28 images whose class is a bright horizontal band at a class-specific height."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    band = 28 // num_classes
    for c in range(num_classes):
        x[y == c, :, c * band : (c + 1) * band, :] += 0.6
    return x.clamp(0, 1), y


@pytest.fixture
def one_thread():
    """Tiny networks: one intra-op thread is fastest, and spinning threads stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_datamodule() -> InMemorySemiSupervised:
    x, y = synthetic_digits(300)
    xt, yt = synthetic_digits(90, seed=1)
    return InMemorySemiSupervised(x, y, xt, yt, num_labelled=9, val_size=30, batch_size=30, init_size=60)
