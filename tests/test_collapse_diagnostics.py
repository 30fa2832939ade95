from __future__ import annotations

import json

from lightning.pytorch import Callback, Trainer, seed_everything

from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
from tests.test_benchmarks import load


class Losses(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(pl_module.discriminator.head[-1].bias.detach().sum()))  # moves every D step


def train(tmp_path, datamodule, probe=None) -> list[float]:
    seed_everything(0)
    model = SemiSupervisedGAN(MNISTGenerator(noise_dim=20), MNISTDiscriminator(num_classes=3))
    losses = Losses()
    trainer = Trainer(
        max_steps=2 * 6, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[losses, *([probe] if probe else [])],
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    return losses.values


def test_probe_rows_and_the_run_is_the_same_with_and_without_it(tmp_path, tiny_datamodule, one_thread):
    out = tmp_path / "diag.jsonl"
    probe = load("collapse_diagnostics").CollapseProbe(out, every=2, num_samples=50)
    with_probe = train(tmp_path, tiny_datamodule, probe)
    without = train(tmp_path, tiny_datamodule)
    assert with_probe == without  # the probes draw their noise in a forked RNG: the run is untouched
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 3, 5]  # batches 0, 2, 4, after their D and G steps
    assert all(0 < r["spread"] < 0.5 and r["fm"] >= 0 for r in rows)
    assert set(rows[0]) == {"iteration", "epoch", "spread", "fm", "lse_real", "lse_fake", "feat_real", "feat_fake"}
    assert rows[0]["spread"] != rows[-1]["spread"]  # measured afresh each time


def test_controls_table_lists_each_run_with_its_collapse_epoch(tmp_path):
    def row(seed, epoch, acc, fm, errors):
        return {"seed": seed, "epoch": epoch, "test_errors_ema": errors, "train/d_real_acc_epoch": acc,
                "train/d_fake_acc_epoch": acc, "train/g_loss_fm_epoch": fm, "train/d_loss_unl_epoch": 0.1}  # fmt: skip

    runs = {"won_seed1": [row(1, 0, 0.97, 7.0, 3300), row(1, 1, 0.997, 16.0, 3700), row(1, 2, 0.999, 27.0, 3600)],
            "fine_seed2": [row(2, 0, 0.96, 4.9, 3100), row(2, 1, 0.93, 3.3, 2600)]}  # fmt: skip
    for name, rows in runs.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load("plot_reproduction").main(["--results", str(tmp_path), "--controls", "ctl", "won", "fine"])
    assert table == {
        "won_seed1": {"collapse_epoch": 2, "final": 3600},
        "fine_seed2": {"collapse_epoch": None, "final": 2600},
    }
    text = (tmp_path / "ctl_summary.md").read_text()
    assert "| won | 1 | 3 | 0.970 / 7.0, 0.997 / 16.0, 0.999 / 27.0 | epoch 2 | 3600 |" in text
    assert "| fine | 2 | 2 | 0.960 / 4.9, 0.930 / 3.3 | none | 2600 |" in text
