"""LightningModules: the training loops that connect networks and losses."""

from lightning_gan.models.ema import EMA
from lightning_gan.models.semi_supervised import SemiSupervisedGAN, paper_adam

__all__ = ["EMA", "SemiSupervisedGAN", "paper_adam"]
