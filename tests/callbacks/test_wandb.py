"""An offline Weights & Biases run inside ``Trainer.fit``: no account, no network; ``wandb sync`` uploads it later."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import numpy as np
import pytest
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from lightning_gan.callbacks import ClassificationGrids, LogLabelSplitArtifact, SampleGrid
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """Every W&B file under tmp_path (run, cache, settings, artifact staging); offline, quiet; finished afterwards."""
    wandb = pytest.importorskip("wandb")
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": tmp_path,
        "WANDB_CACHE_DIR": tmp_path / "cache",
        "WANDB_CONFIG_DIR": tmp_path / "config",
        "WANDB_DATA_DIR": tmp_path / "data",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield wandb
    if wandb.run is not None:
        wandb.finish()


def wait_for_record(path, keys, timeout: float = 60.0) -> bytes:
    """The offline record once it holds every key, or as it is after ``timeout`` seconds.

    Seen under CPU load (tests beside a training run): right after ``finish()`` the file held only its 7-byte header.
    """
    deadline = time.monotonic() + timeout
    while True:
        record = path.read_bytes()
        if all(key.encode() in record for key in keys) or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def test_offline_run_holds_hyperparameters_metrics_grids_and_the_label_split(tmp_path, tiny_datamodule, offline_wandb):
    seed_everything(0)
    model = SemiSupervisedGAN(
        MNISTGenerator(noise_dim=16, hidden_dim=32), MNISTDiscriminator(num_classes=3, hidden_dims=(64, 32))
    )
    logger = WandbLogger(offline=True, save_dir=tmp_path, project="lightning_gan_test")
    artifact = LogLabelSplitArtifact()
    trainer = Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[SampleGrid(num_samples=16, nrow=4), ClassificationGrids(), artifact],
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=tiny_datamodule)
    run_id = logger.experiment.id
    logger.experiment.finish()
    # stop wandb's service process, which writes the offline record (under load it lags finish())
    offline_wandb.teardown()

    (offline,) = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}")
    keys = ("unsupervised_weight", "train/d_loss_step", "train/g_loss_fm_epoch", "val/error_ema", "samples")
    record = wait_for_record(offline / f"run-{run_id}.wandb", keys)  # the protobuf records `wandb sync` uploads
    for key in keys:
        assert key.encode() in record, key

    images = {p.relative_to(offline / "files" / "media" / "images").as_posix() for p in offline.rglob("*.png")}
    assert any(name.startswith("samples_") for name in images)
    assert any(name.startswith("classification/labelled_") for name in images)
    (sample_png,) = (offline / "files" / "media" / "images").glob("samples_*.png")
    assert np.array(Image.open(sample_png)).shape == (4 * 30 + 2, 4 * 30 + 2, 3)  # 16 images of 28 px, rows of 4

    run_dir = tmp_path / "lightning_gan_test" / run_id  # per run, next to where checkpoints would go
    assert (run_dir / "samples" / "epoch000.png").is_file()
    split = run_dir / "label_split.json"
    assert artifact.logged == [split]
    assert json.loads(split.read_text())["labelled_indices"] == tiny_datamodule.labelled_indices.tolist()
    assert b"label_split-in_memory" in record and b"label_split.json" in record
    digest = base64.b64encode(hashlib.md5(split.read_bytes()).digest())  # W&B's manifest digest of the file
    assert digest in record


def test_without_a_wandb_logger_nothing_is_logged(tmp_path, tiny_datamodule):
    artifact = LogLabelSplitArtifact()
    model = SemiSupervisedGAN(
        MNISTGenerator(noise_dim=16, hidden_dim=32), MNISTDiscriminator(num_classes=3, hidden_dims=(64, 32))
    )
    trainer = Trainer(
        max_steps=2,
        logger=False,
        callbacks=[artifact],
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=tiny_datamodule)
    assert artifact.logged == [] and not (tmp_path / "wandb").exists()
