"""Lightning callbacks of lightning_gan."""

from lightning_gan.callbacks.epoch_time import EpochTime

__all__ = ["EpochTime"]
