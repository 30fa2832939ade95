"""LightningModules: the training loops that connect networks and losses."""

from lightning_gan.models.base import AdversarialModule
from lightning_gan.models.ema import EMA
from lightning_gan.models.gan import GAN, dcgan_adam
from lightning_gan.models.semi_supervised import SemiSupervisedGAN, paper_adam

__all__ = ["GAN", "EMA", "AdversarialModule", "SemiSupervisedGAN", "dcgan_adam", "paper_adam"]
