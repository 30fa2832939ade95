from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from lightning_gan.callbacks import AtomicModelCheckpoint, GlobalRNGState, ImageQualityMetrics
from lightning_gan.cli import build_cli
from lightning_gan.models import GAN, SemiSupervisedGAN
from tests.conftest import mnist_dir, requires_mnist

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("**/*.yaml"))
FULL = ROOT / "configs" / "mnist_ssl_100.yaml"


def is_full(path: Path) -> bool:
    """A full config names the networks; an override sets a few options on top of one."""
    model = yaml.safe_load(path.read_text()).get("model") or {}
    return "generator" in (model.get("init_args") or {})


def config_args(path: Path) -> list[str]:
    """A full config parses alone; an override goes on top of its full setup (``x_ddp.yaml`` on ``x.yaml``)."""
    if is_full(path):
        return ["--config", str(path)]
    base = path.with_name(path.stem.removesuffix("_ddp") + ".yaml") if path.stem.endswith("_ddp") else FULL
    return ["--config", str(base), "--config", str(path)]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_parses_and_builds(path, tmp_path):
    cli = build_cli([*config_args(path), "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.model, SemiSupervisedGAN if "_ssl_" in path.stem else GAN)
    if "_labels" in path.stem:
        assert cli.datamodule.num_labelled == int(path.stem.split("_")[2])
    if path.stem.endswith("_augment"):  # the few-label override keeps the full setup and adds the augmentation
        assert cli.model.augment_labelled.policy == "translation" and not cli.model.augment.enabled
        assert type(cli.model.optimizer_d(cli.model.discriminator.parameters())).__name__ == "ReferenceAdam"


def test_defaults_log_to_csv_with_a_rich_console(tmp_path):
    cli = build_cli(
        [
            "--model", "lightning_gan.models.SemiSupervisedGAN",
            "--model.generator", "lightning_gan.networks.MNISTGenerator",
            "--model.discriminator", "lightning_gan.networks.MNISTDiscriminator",
            "--data", "lightning_gan.datamodules.SemiSupervisedMNIST",
            "--trainer.default_root_dir", str(tmp_path),
        ],
        run=False,
    )  # fmt: skip
    assert isinstance(cli.trainer.logger, CSVLogger) and cli.trainer.logger.save_dir == "runs"
    assert any(isinstance(c, RichProgressBar) for c in cli.trainer.callbacks)
    assert isinstance(cli.trainer.checkpoint_callback, AtomicModelCheckpoint)
    assert any(isinstance(c, GlobalRNGState) for c in cli.trainer.callbacks)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_checkpoints_atomically_with_the_rng_state(path):
    """Resuming restores everything only with both callbacks; a config's callback list replaces the CLI defaults."""
    callbacks = yaml.safe_load(path.read_text()).get("trainer", {}).get("callbacks")
    if callbacks is None:  # a label-count override: the full config's callbacks apply
        return
    classes = [c["class_path"] for c in callbacks]
    assert "lightning_gan.callbacks.AtomicModelCheckpoint" in classes
    assert "lightning_gan.callbacks.GlobalRNGState" in classes
    assert "lightning.pytorch.callbacks.ModelCheckpoint" not in classes


def test_console_script_and_module_entry_points_exit_cleanly():
    script = Path(sys.executable).with_name("lightning-gan")
    for command in ([str(script)], [sys.executable, "-m", "lightning_gan"]):
        proc = subprocess.run([*command, "fit", "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "--data.help" in proc.stdout or "--data CONFIG" in proc.stdout


def test_unknown_config_key_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(FULL.read_text().replace("    ema_decay: 0.9999", "    ema_decay: 0.9999\n    ema_decya: 0.5"))
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_gan", "fit", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "ema_decya" in proc.stderr


@requires_mnist
def test_fit_writes_config_and_split_and_the_checkpoint_rebuilds_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(mnist_dir()))
    cli = build_cli(
        [
            "fit",
            "--config", str(ROOT / "configs" / "mnist_ssl_quick.yaml"),
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "2",
            "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks", "lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.monitor", "val/error_ema",
            "--test_after_fit", "false",
        ]
    )  # fmt: skip
    run_dir = Path(cli.trainer.log_dir)
    assert (run_dir / "config.yaml").is_file() and (run_dir / "label_split.json").is_file()
    assert cli.trainer.global_step == 6  # 3 iterations, each a D and a G optimizer step
    (ckpt,) = run_dir.glob("checkpoints/*.ckpt")
    loaded = SemiSupervisedGAN.load_from_checkpoint(ckpt)  # networks rebuilt from the saved class_path config
    assert bool(loaded.initialized)
    for (name, a), b in zip(cli.model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert (a == b).all(), name

    common = ["--config", str(ROOT / "configs" / "mnist_ssl_quick.yaml")]
    tested = build_cli(["test", *common, "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "2"])
    assert {"test/error", "test/error_ema"} <= set(tested.trainer.callback_metrics)
    predicted = build_cli(["predict", *common, "--ckpt_path", str(ckpt), "--trainer.limit_predict_batches", "2"])
    assert predicted.trainer.state.finished


ABLATIONS = ROOT / "configs" / "ablations"


def test_ablation_configs_switch_exactly_their_technique(tmp_path):
    from lightning_gan.callbacks import HistoricalAveraging
    from lightning_gan.layers import MinibatchDiscrimination, VirtualBatchNorm1d

    def techniques(stem: str) -> dict[str, bool]:
        cli = build_cli(
            ["--config", str(ABLATIONS / f"{stem}.yaml"), "--trainer.default_root_dir", str(tmp_path)], run=False
        )
        model = cli.model
        return {
            "vbn": any(isinstance(m, VirtualBatchNorm1d) for m in model.generator.modules()),
            "ls": model.real_target < 1.0,
            "ha": any(isinstance(c, HistoricalAveraging) for c in cli.trainer.callbacks),
            "mbf": any(isinstance(m, MinibatchDiscrimination) for m in model.discriminator.modules()),
        }

    full = techniques("mnist_ssl_100_full")
    assert all(full.values())
    for removed in ("vbn", "ls", "ha", "mbf"):
        stem = "mnist_ssl_100_minus_vbn_plus_bn" if removed == "vbn" else f"mnist_ssl_100_minus_{removed}"
        assert techniques(stem) == {**full, removed: False}, stem


def test_help_documents_every_technique_option():
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_gan", "fit", "--model.help", "lightning_gan.models.SemiSupervisedGAN"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("feature_layer", "generator_loss", "feature_matching_weight", "generator_steps", "real_target"):
        assert f"--model.init_args.{option}" in proc.stdout or f"--model.{option}" in proc.stdout, option
    assert "one-sided label smoothing" in proc.stdout


GAN_CONFIGS = [p for p in CONFIGS if "_ssl_" not in p.stem and is_full(p)]


def small_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configs' ImageQualityMetrics with 100 samples and no disk cache: the same code, a test-sized cost."""
    init = ImageQualityMetrics.__init__

    @functools.wraps(init)
    def small(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.num_samples, self.num_real, self.cache_dir = 100, 100, None

    monkeypatch.setattr(ImageQualityMetrics, "__init__", small)


@pytest.mark.parametrize("path", GAN_CONFIGS, ids=[p.stem for p in GAN_CONFIGS])
def test_every_gan_config_trains_a_few_steps_on_its_dataset_files(path, tmp_path, monkeypatch):
    """Each GAN config runs as is on files in its dataset's exact on-disk format (generated, small)."""
    from tests.fake_datasets import patch_cifar10_md5, write_cifar10, write_mnist_like

    dataset = yaml.safe_load(path.read_text())["data"]["init_args"]["dataset"]
    if dataset == "cifar10":
        write_cifar10(tmp_path, n_per_batch=40, n_test=20)
        patch_cifar10_md5(monkeypatch, tmp_path)
    else:
        write_mnist_like(tmp_path, folder={"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[dataset], n_train=200)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))
    small_metrics(monkeypatch)
    cli = build_cli(
        [
            "fit",
            "--config", str(path),
            "--trainer.max_steps", "12",
            "--trainer.limit_val_batches", "1",
            "--data.init_args.val_size", "20",
            "--data.init_args.fraction", "1.0",
        ]
    )  # fmt: skip
    model = cli.model
    assert cli.trainer.global_step == 12
    assert model.d_steps + model.g_steps == 12 and model.g_steps == model.d_steps // model.n_critic
    assert (Path(cli.trainer.log_dir) / "config.yaml").is_file()
    assert (Path(cli.trainer.log_dir) / "data_subset.json").is_file()
    assert {"train/d_loss", "train/g_loss", "val/d_real_acc"} <= set(cli.trainer.callback_metrics)
    metrics = [c for c in cli.trainer.callbacks if isinstance(c, ImageQualityMetrics)]
    if dataset == "mnist":  # the shipped domain classifier scores MNIST samples (none ships for the others)
        assert metrics and {"metrics/fid", "metrics/is_mean"} <= set(metrics[0].last_metrics)


SSL_COLOUR_CONFIGS = [ROOT / "configs" / "cifar10_ssl_4000.yaml", ROOT / "configs" / "svhn_ssl_1000.yaml"]


@pytest.mark.parametrize("path", SSL_COLOUR_CONFIGS, ids=[p.stem for p in SSL_COLOUR_CONFIGS])
def test_colour_ssl_configs_train_the_paper_networks_on_their_dataset_files(path, tmp_path, monkeypatch):
    """The CIFAR-10 / SVHN recipes as shipped (paper-size networks, schedule, G init), on generated files."""
    from lightning_gan.networks import CIFARDiscriminator, CIFARGenerator
    from lightning_gan.optim import LinearDecayLR, ReferenceAdam
    from tests.fake_datasets import patch_cifar10_md5, patch_svhn_md5, write_cifar10, write_svhn

    if path.stem.startswith("cifar10"):
        write_cifar10(tmp_path, n_per_batch=20, n_test=20)
        patch_cifar10_md5(monkeypatch, tmp_path)
    else:
        write_svhn(tmp_path, n_train=100, n_test=20)
        patch_svhn_md5(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIGHTNING_GAN_DATA", str(tmp_path))
    cli = build_cli(
        [
            "fit",
            "--config", str(path),
            "--trainer.max_steps", "4",
            "--trainer.limit_val_batches", "1",
            "--trainer.limit_test_batches", "1",
            "--data.init_args.num_labelled", "20",
            "--data.init_args.val_size", "20",
            "--data.init_args.batch_size", "10",
            "--data.init_args.init_size", "50",
        ]
    )  # fmt: skip
    model = cli.model
    assert isinstance(model.generator, CIFARGenerator) and isinstance(model.discriminator, CIFARDiscriminator)
    assert cli.trainer.global_step == 4 and bool(model.initialized) and model.feature_matching_p == 1
    assert all(isinstance(opt.optimizer, ReferenceAdam) for opt in model.optimizers())
    schedulers = model.lr_schedulers()
    assert len(schedulers) == 2 and all(isinstance(s, LinearDecayLR) for s in schedulers)
    assert torch.isfinite(torch.tensor(float(cli.trainer.callback_metrics["test/error_ema"])))  # test_after_fit
    logged = (Path(cli.trainer.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/d_loss_epoch", "train/g_loss_fm_epoch", "lr-ReferenceAdam", "lr-ReferenceAdam-1"} <= set(logged)
    assert (Path(cli.trainer.log_dir) / "label_split.json").is_file()
