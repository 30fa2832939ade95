import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

from lightning_gan.callbacks import CollapseMonitor

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def epochs(name: str) -> list[dict]:
    return [json.loads(line) for line in (RESULTS / name).read_text().splitlines()]


def declared_at(rows: list[dict]) -> list[int]:
    monitor = CollapseMonitor()
    return [row["epoch"] for row in rows if monitor.update(row)]


def test_the_measured_collapse_is_caught_two_epochs_in_and_healthy_runs_never_trip_it():
    collapsed = epochs("eps1e-8_n100_seed1.jsonl")  # torch Adam eps=1e-8: L_unl -> 5e-4 from epoch 16
    assert declared_at(collapsed) == [14]  # D at 0.993 / 0.995 in epoch 13, 0.997 / 0.998 in 14
    for seed in (1, 2, 3):  # eps=1e-4, 148-149 epochs each
        assert declared_at(epochs(f"mnist_ssl_100_n100_seed{seed}.jsonl")) == []


class Scripted(LightningModule):
    """Logs the given (real, fake) accuracies as its epoch means."""

    def __init__(self, accuracies: list[tuple[float, float]]) -> None:
        super().__init__()
        self.accuracies, self.weight = accuracies, torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        real, fake = self.accuracies[self.current_epoch]
        self.log("train/d_real_acc", real, on_step=True, on_epoch=True)
        self.log("train/d_fake_acc", fake, on_step=True, on_epoch=True)
        return (self.weight * batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(torch.ones(4, 1), batch_size=2)


@pytest.mark.filterwarnings("ignore:.*(num_workers|log_every_n_steps).*")
@pytest.mark.parametrize("stop, epochs_run", [(True, 3), (False, 5)])
def test_in_a_fit_it_warns_logs_and_stops_when_asked(tmp_path, stop, epochs_run):
    monitor = CollapseMonitor(patience=2, stop=stop)
    model = Scripted([(0.9, 0.8), (1.0, 0.995), (1.0, 1.0), (1.0, 1.0), (0.9, 0.9)])
    trainer = Trainer(
        max_epochs=5, logger=False, enable_progress_bar=False, enable_checkpointing=False, default_root_dir=tmp_path,
        callbacks=[monitor], enable_model_summary=False,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="won outright for 2 epochs.*epoch 2"):
        trainer.fit(model)
    assert trainer.current_epoch == epochs_run and monitor.collapsed_at == 2
    assert trainer.callback_metrics["train/d_wins"].item() == (1.0 if stop else 0.0)


def test_streak_survives_a_checkpoint_and_bad_arguments_are_refused():
    monitor = CollapseMonitor(patience=3)
    monitor.update({"train/d_real_acc_epoch": 1.0, "train/d_fake_acc_epoch": 1.0})
    resumed = CollapseMonitor(patience=3)
    resumed.load_state_dict(monitor.state_dict())
    assert resumed.streak == 1 and resumed.collapsed_at is None
    assert not resumed.update({"train/d_real_acc_epoch": 1.0, "train/d_fake_acc_epoch": 1.0})
    assert resumed.update({"train/d_real_acc_epoch": 1.0, "train/d_fake_acc_epoch": 1.0})
    assert CollapseMonitor().d_wins({"train/d_loss_epoch": 0.3}) is None  # a model without the accuracies
    with pytest.raises(ValueError, match="CollapseMonitor"):
        CollapseMonitor(accuracy=0.4)
