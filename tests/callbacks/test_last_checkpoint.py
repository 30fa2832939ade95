"""``AtomicModelCheckpoint(save_last=True)``: ``last.ckpt`` is the latest epoch even when the metric got worse."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightning_gan.callbacks import AtomicModelCheckpoint


class WorseEveryEpoch(LightningModule):
    """A linear model whose logged ``val/score`` grows every epoch (mode min: only epoch 0 is the best)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run(tmp_path, checkpoint: ModelCheckpoint) -> int:
    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = Trainer(
        max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[checkpoint]
    )
    trainer.fit(WorseEveryEpoch(), train_dataloaders=data, val_dataloaders=data)
    last = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    assert best["epoch"] == 0  # the top-1 checkpoint stays the best epoch
    return last["epoch"]


def test_last_checkpoint_is_written_every_epoch_even_without_improvement(tmp_path):
    checkpoint = AtomicModelCheckpoint(dirpath=tmp_path, monitor="val/score", mode="min", save_top_k=1, save_last=True)
    assert run(tmp_path, checkpoint) == 2  # the latest epoch: resuming from it loses nothing


def test_last_checkpoint_on_train_epoch_end_too(tmp_path):
    checkpoint = AtomicModelCheckpoint(
        dirpath=tmp_path, monitor="val/score", mode="min", save_top_k=1, save_last=True, save_on_train_epoch_end=True
    )
    assert run(tmp_path, checkpoint) == 2
