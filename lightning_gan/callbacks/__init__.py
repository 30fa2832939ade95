"""Lightning callbacks of lightning_gan."""

from lightning_gan.callbacks.checkpoint import AtomicModelCheckpoint, GlobalRNGState
from lightning_gan.callbacks.collapse import CollapseMonitor
from lightning_gan.callbacks.epoch_time import EpochTime
from lightning_gan.callbacks.historical_averaging import HistoricalAveraging
from lightning_gan.callbacks.image_quality import ImageQualityMetrics
from lightning_gan.callbacks.samples import ClassificationGrids, SampleGrid
from lightning_gan.callbacks.wandb_artifacts import LogLabelSplitArtifact

__all__ = [
    "AtomicModelCheckpoint",
    "ClassificationGrids",
    "CollapseMonitor",
    "EpochTime",
    "GlobalRNGState",
    "HistoricalAveraging",
    "ImageQualityMetrics",
    "LogLabelSplitArtifact",
    "SampleGrid",
]
