"""Lightning callbacks of lightning_gan."""

from lightning_gan.callbacks.epoch_time import EpochTime
from lightning_gan.callbacks.historical_averaging import HistoricalAveraging

__all__ = ["EpochTime", "HistoricalAveraging"]
