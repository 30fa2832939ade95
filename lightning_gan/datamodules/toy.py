"""A ring of 2-D Gaussians: the mode-collapse benchmark of Metz et al. 2017 (unrolled GANs), in seconds on a CPU.

A GAN that collapses puts its samples on one or a few of the modes; a good one covers all of them with most
samples close to a mode. :func:`mode_coverage` measures both.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

__all__ = ["GaussianMixtureDataModule", "mode_coverage", "ring_centers"]


def ring_centers(num_modes: int = 8, radius: float = 2.0) -> Tensor:
    """``num_modes`` points evenly spaced on a circle of ``radius``: [num_modes, 2].

    Example:
        >>> ring_centers(4, 1.0).round(decimals=3).abs()
        tensor([[1., 0.],
                [0., 1.],
                [1., 0.],
                [0., 1.]])
    """
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def mode_coverage(samples: Tensor, centers: Tensor, std: float, within: float = 3.0, min_share: float = 0.01):
    """``(modes covered, share of high-quality samples)`` of 2-D ``samples`` [N, 2] for a mixture at ``centers``.

    A sample is high quality when it lies within ``within`` standard deviations of its nearest centre; a mode is
    covered when at least ``min_share`` of all samples are high-quality samples of it (the usual protocol of the
    unrolled-GAN and VEEGAN papers, with 3 std).

    Example:
        >>> centers = ring_centers(8)
        >>> mode_coverage(centers.repeat(10, 1), centers, std=0.02)   # 10 samples on every mode
        (8, 1.0)
        >>> mode_coverage(centers[:1].repeat(80, 1), centers, std=0.02)  # collapsed onto one mode
        (1, 1.0)
    """
    distances = torch.cdist(samples.float(), centers.float())  # [N, M]
    nearest, mode = distances.min(dim=1)
    good = nearest <= within * std
    counts = torch.bincount(mode[good], minlength=len(centers))
    covered = int((counts >= min_share * len(samples)).sum())
    return covered, float(good.float().mean())


class GaussianMixtureDataModule(LightningDataModule):
    """Samples of an equal-weight mixture of isotropic 2-D Gaussians on a ring; batches are bare [B, 2] tensors.

    Args:
        num_modes: number of Gaussians.
        radius: radius of the ring of centres.
        std: standard deviation of each Gaussian.
        num_samples: training points drawn once at setup (an epoch is one pass over them).
        batch_size: points per batch.
        seed: the only seed the points depend on.

    Example:
        >>> dm = GaussianMixtureDataModule(num_samples=512, batch_size=128)
        >>> dm.setup("fit")
        >>> next(iter(dm.train_dataloader())).shape, dm.image_shape
        (torch.Size([128, 2]), (2,))
    """

    def __init__(
        self,
        num_modes: int = 8,  # Metz et al. 2017: 8 modes on a ring
        radius: float = 2.0,  # Metz et al. 2017: radius 2
        std: float = 0.02,  # Metz et al. 2017: std 0.02
        num_samples: int = 100_000,
        batch_size: int = 512,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_modes < 1 or std <= 0 or num_samples < batch_size or batch_size < 1:
            raise ValueError(
                "GaussianMixtureDataModule needs num_modes >= 1, std > 0 and num_samples >= batch_size >= 1; got "
                f"num_modes={num_modes}, std={std}, num_samples={num_samples}, batch_size={batch_size}"
            )
        self.num_modes, self.radius, self.std = num_modes, radius, std
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.image_shape = (2,)
        self.centers = ring_centers(num_modes, radius)  # [M, 2]
        self.points: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.points is None:
            g = torch.Generator().manual_seed(self.seed)
            mode = torch.randint(self.num_modes, (self.num_samples,), generator=g)
            self.points = self.centers[mode] + self.std * torch.randn(self.num_samples, 2, generator=g)  # [N, 2]

    def train_dataloader(self) -> DataLoader:
        if self.points is None:
            raise RuntimeError("GaussianMixtureDataModule: call setup('fit') before train_dataloader()")
        return DataLoader(self.points, batch_size=self.batch_size, shuffle=True, drop_last=True)
