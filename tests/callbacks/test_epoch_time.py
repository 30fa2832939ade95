from __future__ import annotations

import time

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from lightning_gan.callbacks import EpochTime


class SlowModel(BoringModel):
    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        time.sleep(0.2)
        return super().validation_step(batch, batch_idx)


def test_epoch_time_measures_and_logs_the_training_epoch(tmp_path):
    timer = EpochTime()
    trainer = Trainer(
        max_epochs=1, limit_train_batches=4, limit_val_batches=3, num_sanity_val_steps=0, callbacks=[timer],
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(SlowModel())
    assert 0.2 <= timer.last_epoch_s < 0.6  # 4 x 0.05 s of training; the 3 x 0.2 s of validation excluded
    assert trainer.callback_metrics["time/epoch_s"].item() == pytest.approx(timer.last_epoch_s, rel=1e-6)
