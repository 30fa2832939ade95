"""Seconds per training epoch, logged as ``time/epoch_s``.

Lightning's ``Timer`` keeps the total time of a stage and ``ThroughputMonitor`` needs a batch-size function
per dataloader; for GAN runs the number people compare is simply the wall-clock time of one epoch.
"""

from __future__ import annotations

import time

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

__all__ = ["EpochTime"]


class EpochTime(Callback):
    """Log the wall-clock seconds of every training epoch (validation excluded) as ``time/epoch_s``.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(callbacks=[EpochTime()], logger=False, enable_progress_bar=False)
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._val_start = 0.0
        self._val_s = 0.0
        self.last_epoch_s: float | None = None

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start, self._val_s = time.perf_counter(), 0.0

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.perf_counter()

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_s += time.perf_counter() - self._val_start  # validation runs inside the training epoch

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._start is None:
            return
        self.last_epoch_s = time.perf_counter() - self._start - self._val_s
        pl_module.log("time/epoch_s", self.last_epoch_s, on_step=False, on_epoch=True)
