"""Fixtures of the Turing-test tests: MNIST-format files and tiny checkpoints written the way the CLI writes them."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from lightning_gan.cli import build_cli
from tests.fake_datasets import write_mnist_like

QUIET = [
    "--trainer.max_steps", "2",
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.enable_checkpointing", "false",
    "--trainer.callbacks", "[]",
]  # fmt: skip


def fit_checkpoint(model_args: list[str], data_args: list[str], path: Path) -> Path:
    """Train a model two optimizer steps through the CLI's own parser, so the checkpoint rebuilds alone."""
    args = [*model_args, *data_args, *QUIET, "--trainer.default_root_dir", str(path.parent)]
    with mock.patch.object(sys, "argv", ["lightning-gan"]):  # pytest's own arguments are not the CLI's
        cli = build_cli(args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """``MNIST/raw`` in the real idx format: 200 training and 60 test images, 6 per class."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root, n_train=200, n_test=60)
    return root


@pytest.fixture(scope="session")
def gan_ckpt(data_dir, tmp_path_factory) -> Path:
    return fit_checkpoint(
        [
            "--model", "lightning_gan.models.GAN",
            "--model.generator", "lightning_gan.networks.VanillaGenerator",
            "--model.generator.noise_dim", "8", "--model.generator.hidden_dims", "[16]",
            "--model.discriminator", "lightning_gan.networks.VanillaDiscriminator",
            "--model.discriminator.hidden_dims", "[16]",
        ],
        [
            "--data", "lightning_gan.datamodules.ImageDataModule", "--data.data_dir", str(data_dir),
            "--data.val_size", "0", "--data.batch_size", "8",
        ],
        tmp_path_factory.mktemp("gan") / "gan.ckpt",
    )  # fmt: skip


@pytest.fixture(scope="session")
def ssl_ckpt(data_dir, tmp_path_factory) -> Path:
    return fit_checkpoint(
        [
            "--model", "lightning_gan.models.SemiSupervisedGAN",
            "--model.generator", "lightning_gan.networks.MNISTGenerator",
            "--model.generator.noise_dim", "8", "--model.generator.hidden_dim", "16",
            "--model.discriminator", "lightning_gan.networks.MNISTDiscriminator",
            "--model.discriminator.hidden_dims", "[16, 8]",
        ],
        [
            "--data", "lightning_gan.datamodules.SemiSupervisedMNIST", "--data.data_dir", str(data_dir),
            "--data.val_size", "0", "--data.batch_size", "10", "--data.num_labelled", "20", "--data.init_size", "20",
        ],
        tmp_path_factory.mktemp("ssl") / "ssl.ckpt",
    )  # fmt: skip
