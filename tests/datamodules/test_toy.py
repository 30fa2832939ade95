from __future__ import annotations

import math

import pytest
import torch

from lightning_gan.datamodules.toy import GaussianMixtureDataModule, mode_coverage, ring_centers


def test_ring_centres_are_evenly_spaced_on_the_circle():
    c = ring_centers(8, 2.0)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    # neighbouring centres are 2 r sin(pi / 8) apart
    gaps = (c - c.roll(1, dims=0)).norm(dim=1)
    assert torch.allclose(gaps, torch.full((8,), 2 * 2.0 * math.sin(math.pi / 8)), atol=1e-6)


def test_points_follow_the_mixture_and_depend_only_on_the_seed():
    dm = GaussianMixtureDataModule(num_samples=8000, batch_size=100, std=0.1, seed=3)
    dm.setup()
    nearest, mode = torch.cdist(dm.points, dm.centers).min(dim=1)
    assert torch.bincount(mode, minlength=8).min() > 800  # about 1000 per mode
    assert nearest.pow(2).mean().sqrt() == pytest.approx(0.1 * math.sqrt(2), rel=0.05)  # 2-D radial rms
    again = GaussianMixtureDataModule(num_samples=8000, batch_size=100, std=0.1, seed=3)
    again.setup()
    other = GaussianMixtureDataModule(num_samples=8000, batch_size=100, std=0.1, seed=4)
    other.setup()
    assert torch.equal(dm.points, again.points) and not torch.equal(dm.points, other.points)
    batches = list(dm.train_dataloader())
    assert len(batches) == 80 and batches[0].shape == (100, 2)


def test_mode_coverage_counts_modes_and_quality_by_hand():
    centers = ring_centers(8)
    samples = torch.cat([centers[:3].repeat(30, 1), torch.zeros(10, 2)])  # 90 on 3 modes, 10 at the origin
    assert mode_coverage(samples, centers, std=0.02) == (3, pytest.approx(0.9))
    # a mode with fewer than min_share of the samples does not count
    assert mode_coverage(samples, centers, std=0.02, min_share=0.35) == (0, pytest.approx(0.9))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_samples >= batch_size"):
        GaussianMixtureDataModule(num_samples=10, batch_size=100)
