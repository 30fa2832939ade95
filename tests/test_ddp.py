"""Both models under ``strategy="ddp"`` with 2 CPU processes (gloo): what DDP must get right for them.

``tests/ddp_check.py`` trains each model for 2 epochs on generated MNIST files, every rank recording what it saw and
logged; these tests compare the ranks. The launch is Lightning's own (the script starts rank 1 by running itself
again), as from a terminal, ``torchrun`` or SLURM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_gan.callbacks import ImageQualityMetrics
from lightning_gan.callbacks.image_quality import seeded
from lightning_gan.datamodules import ImageDataModule, SemiSupervisedMNIST
from lightning_gan.models import GAN
from lightning_gan.networks import MNISTDiscriminator, VanillaDiscriminator, VanillaGenerator
from tests.fake_datasets import write_mnist_like

SCRIPT = Path(__file__).with_name("ddp_check.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    write_mnist_like(root, n_train=240, n_test=40)
    return root


def _run(kind: str, data_dir: Path, out: Path) -> tuple[list[dict], list[dict]]:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for var in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), kind, str(data_dir), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    return records, states


@pytest.fixture(scope="module")
def ssl_run(data_dir, tmp_path_factory):
    return _run("ssl", data_dir, tmp_path_factory.mktemp("ssl") / "out")


@pytest.fixture(scope="module")
def gan_run(data_dir, tmp_path_factory):
    return _run("gan", data_dir, tmp_path_factory.mktemp("gan") / "out")


@pytest.fixture(scope="module")
def resumed_run(data_dir, tmp_path_factory):
    return _run("ssl_resume", data_dir, tmp_path_factory.mktemp("ssl_resume") / "out")


def _assert_identical_states(states: list[dict]) -> None:
    assert states[0].keys() == states[1].keys()
    differ = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert not differ, f"differ across ranks: {differ}"


def _assert_sharded(records: list[dict], key: str, total: int) -> None:
    a, b = records[0]["seen"][key], records[1]["seen"][key]
    assert len(a) == len(b) == total // 2 and not set(a) & set(b) and len(set(a) | set(b)) == total


@pytest.mark.parametrize("run", ["ssl_run", "gan_run"])
def test_parameters_buffers_and_averages_are_identical_across_ranks(run, request):
    records, states = request.getfixturevalue(run)
    assert all(r["world_size"] == 2 and r["find_unused_parameters"] for r in records)  # plain "ddp" was asked for
    _assert_identical_states(states)  # weights, EMA copies, batch-norm statistics, the init flag
    if run == "ssl_run":
        assert any(k.startswith("ema_discriminator.") for k in states[0])
        assert sum(k.startswith("historical_averaging/") for k in states[0]) > 10  # sums and counts, both players


@pytest.mark.parametrize("run", ["ssl_run", "gan_run"])
def test_ranks_draw_different_noise(run, request):
    records, _ = request.getfixturevalue(run)
    assert records[0]["noise"] != records[1]["noise"]  # seed_everything seeded them alike; the model reseeds rank 1


def test_ssl_loaders_are_sharded_and_the_split_is_the_same_on_every_rank(ssl_run):
    records, _ = ssl_run
    split = records[0]["labelled_indices"]
    assert split == records[1]["labelled_indices"] and len(split) == 20
    for epoch in (0, 1):  # 200 unlabelled images: 100 per rank, each exactly once, in both unlabelled loaders
        _assert_sharded(records, f"unlabelled/epoch{epoch}", 200)
        _assert_sharded(records, f"unlabelled_g/epoch{epoch}", 200)
        assert records[0]["seen"][f"unlabelled/epoch{epoch}"] != records[0]["seen"][f"unlabelled_g/epoch{epoch}"]
    # the 20 labelled images, 10 per rank and batch: every batch the two ranks hold disjoint halves of the set
    lab = [records[r]["seen"]["labelled/epoch0"] for r in (0, 1)]
    batches = [(set(lab[0][i : i + 10]), set(lab[1][i : i + 10])) for i in range(0, len(lab[0]), 10)]
    assert len(batches) == 5 and all(not a & b and len(a | b) == 20 for a, b in batches)
    assert len({frozenset(a) for a, _ in batches}) > 1  # and the halves are reshuffled between passes


def test_ssl_logged_metrics_are_reduced_over_ranks(ssl_run, data_dir):
    records, states = ssl_run
    m0, m1 = records[0]["metrics"], records[1]["metrics"]
    assert m0.keys() == m1.keys() and {"train/d_loss_epoch", "val/error", "val/error_ema"} <= m0.keys()
    assert m0 == m1  # each rank trained on its own data: equal values mean they were averaged
    # val/error is the error on the whole validation set (20 images per rank), as one process computes it
    dm = SemiSupervisedMNIST(data_dir=str(data_dir), num_labelled=20, val_size=40, batch_size=20)
    dm.setup("fit")
    d = MNISTDiscriminator(hidden_dims=(32, 16))
    d.load_state_dict({k[len("discriminator.") :]: v for k, v in states[0].items() if k.startswith("discriminator.")})
    images, targets = dm._train
    idx = dm.validation_indices
    with torch.no_grad():
        error = (d.eval()(images[idx]).argmax(1) != targets[idx]).float().mean()
    assert m0["val/error"] == pytest.approx(float(error), abs=1e-6)


def test_gan_loader_is_sharded_and_metrics_are_reduced(gan_run):
    records, _ = gan_run
    for epoch in (0, 1):
        _assert_sharded(records, f"images/epoch{epoch}", 200)
    m0, m1 = records[0]["metrics"], records[1]["metrics"]
    assert {"train/d_loss_epoch", "val/d_real_out", "metrics/fid", "metrics/is_mean"} <= m0.keys() and m0 == m1


def test_image_quality_scores_all_ranks_samples_once(gan_run, data_dir):
    """FID of the 60 samples the two ranks drew (30 each), computed in one process, is what DDP logged."""
    records, states = gan_run
    model = GAN(VanillaGenerator(noise_dim=8, hidden_dims=(32,)), VanillaDiscriminator(hidden_dims=(32,)))
    model.load_state_dict(states[0])
    dm = ImageDataModule("mnist", data_dir=str(data_dir), batch_size=20, val_size=40)
    metrics = ImageQualityMetrics(num_samples=60, num_real=100, batch_size=30, cache_dir=None, progress=False)
    quality = metrics.build(dm, model)
    metrics.prepare_real(dm)
    for rank in (0, 1):  # what each rank drew: its share of the samples, from its own seed
        with seeded(metrics.seed + 7919 * rank):
            quality.update_fake(model.sample(30))
    scores = quality.compute()
    assert records[0]["metrics"]["metrics/fid"] == pytest.approx(float(scores["fid"]), rel=1e-4)
    assert records[0]["metrics"]["metrics/is_mean"] == pytest.approx(float(scores["is_mean"]), rel=1e-4)


def test_the_shipped_ddp_config_runs_from_the_command_line(data_dir, tmp_path):
    """configs/mnist_ssl_100_ddp.yaml on top of the quick setup: 2 CPU processes, through LightningCLI."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "LIGHTNING_GAN_DATA": str(data_dir)}
    for var in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    command = [
        sys.executable, "-m", "lightning_gan", "fit",
        "--config", str(root / "configs" / "mnist_ssl_quick.yaml"),
        "--config", str(root / "configs" / "mnist_ssl_100_ddp.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.max_steps", "6", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
        "--data.init_args.num_labelled", "20", "--data.init_args.val_size", "40", "--data.init_args.batch_size", "20",
        "--data.init_args.init_size", "100",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "mnist_ssl_quick").glob("version_*")
    assert (run_dir / "label_split.json").is_file() and (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6
    (rng_state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("GlobalRNGState")]
    assert len(rng_state["per_rank"]) == 2  # each rank's RNG state, for an exact resume under DDP
    assert not torch.equal(rng_state["per_rank"][0]["torch"], rng_state["per_rank"][1]["torch"])
    assert "test/error_ema" in (run_dir / "metrics.csv").read_text()


def test_a_resumed_ddp_run_continues_exactly_as_the_uninterrupted_one(ssl_run, resumed_run):
    """Stopped after epoch 1 and resumed from last.ckpt: every rank gets its own RNG state and data order back."""
    (straight, straight_states), (resumed, resumed_states) = ssl_run, resumed_run
    for rank in (0, 1):
        assert resumed[rank]["seen"]["unlabelled/epoch1"] == straight[rank]["seen"]["unlabelled/epoch1"]
        assert resumed[rank]["seen"]["labelled/epoch1"] == straight[rank]["seen"]["labelled/epoch1"]
        _assert_identical_states([straight_states[rank], resumed_states[rank]])  # weights, EMA, HA sums
    assert resumed[0]["metrics"]["train/d_loss_epoch"] == straight[0]["metrics"]["train/d_loss_epoch"]
