"""Resuming from a checkpoint: every state comes back, and a crashed-and-resumed run equals an uninterrupted one.

Also: the checkpoints load with ``torch.load(weights_only=True)``, and what a checkpoint write that fails half-way
leaves behind.
"""

from __future__ import annotations

import copy
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_gan.callbacks import (
    AtomicModelCheckpoint,
    GlobalRNGState,
    HistoricalAveraging,
    ImageQualityMetrics,
    SampleGrid,
)
from lightning_gan.layers import VirtualBatchNorm1d
from lightning_gan.metrics import DigitClassifier, DomainExtractor
from lightning_gan.models import SemiSupervisedGAN
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator

pytestmark = [
    pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty"),  # resuming into it
    pytest.mark.usefixtures("one_thread"),
]

EPOCHS = 3
ITERATIONS = 9  # tiny_datamodule: 270 unlabelled images in batches of 30; 2 global steps (D and G) each


class Crashed(Exception):
    """The simulated crash."""


def small_ssl_gan(norm: str = "batch") -> SemiSupervisedGAN:
    return SemiSupervisedGAN(
        MNISTGenerator(noise_dim=16, hidden_dim=32, norm=norm, ref_batch_size=30),
        MNISTDiscriminator(num_classes=3, hidden_dims=(64, 32)),
    )


def auxiliary_callbacks() -> list[Callback]:
    """Callbacks with state of their own: historical averages and the cached real statistics of the metrics."""
    torch.manual_seed(123)  # the untrained extractor's weights: the same in every run (they are not checkpointed)
    extractor = DomainExtractor(DigitClassifier(num_classes=3, num_features=16), name="untrained-3")
    return [
        HistoricalAveraging(weight=0.01, modules="both"),
        ImageQualityMetrics(
            num_samples=60, num_real=60, batch_size=30, is_splits=2, extractor=extractor, cache_dir=None, progress=False
        ),
    ]


def callback(trainer: Trainer, cls: type) -> Callback:
    (found,) = [c for c in trainer.callbacks if isinstance(c, cls)]
    return found


@pytest.fixture
def deterministic():
    enabled = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(enabled)


def sample_grid(trainer: Trainer) -> SampleGrid:
    return callback(trainer, SampleGrid)


def snapshot(trainer: Trainer, model: SemiSupervisedGAN) -> dict[str, Any]:
    """A copy of everything a resumed run must get back."""
    state = {
        # G, D, the averaged D and its sample count, BN statistics or VBN reference batch, "initialized"
        "model": model.state_dict(),
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],  # D's Adam, G's Adam
        "d_steps": model.d_steps,
        "global_step": trainer.global_step,
        "sample_noise": sample_grid(trainer).noise,
        "label_split": trainer.datamodule.split.to_json(),
    }
    for cls in (HistoricalAveraging, ImageQualityMetrics):  # running means; cached real statistics
        found = [c for c in trainer.callbacks if isinstance(c, cls)]
        if found:
            state[cls.__name__] = found[0].state_dict()
    return copy.deepcopy(state)


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Exact equality of nested dicts / lists of tensors and plain values, naming the first difference."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    else:
        assert a == b, where


class CrashAt(Callback):
    """Raises at the start of epoch ``epoch``, after the checkpoint of the epoch before; keeps the state then."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.state = epoch, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            self.state = snapshot(trainer, pl_module)
            raise Crashed


class StateAtTrainStart(Callback):
    """The state of a resumed run once Lightning has restored everything, before its first step."""

    def __init__(self) -> None:
        self.state = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = snapshot(trainer, pl_module)


class Losses(Callback):
    """Every iteration's D and G losses (``log_every_n_steps=1``: each step is logged)."""

    def __init__(self) -> None:
        self.values: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = trainer.callback_metrics
        self.values.append((metrics["train/d_loss_step"].item(), metrics["train/g_loss_fm_step"].item()))


def fit(
    tmp_path: Path,
    datamodule,
    extra: list[Callback],
    rng_state: bool,
    ckpt_path: Path | None = None,
    everything: bool = False,
):
    """``EPOCHS`` epochs, seeded as a fresh process running the same command would be; a crash ends it early.

    ``everything``: also a VBN generator, historical averaging of both players and the image-quality metrics.
    """
    seed_everything(0)
    model, losses = small_ssl_gan(norm="virtual_batch" if everything else "batch"), Losses()
    callbacks = [
        SampleGrid(num_samples=8, nrow=4),
        losses,
        AtomicModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True),
        *([GlobalRNGState()] if rng_state else []),
        *(auxiliary_callbacks() if everything else []),
        *extra,
    ]
    trainer = Trainer(
        max_epochs=EPOCHS,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        callbacks=callbacks,
    )
    try:
        trainer.fit(model, datamodule=copy.deepcopy(datamodule), ckpt_path=ckpt_path)
    except Crashed:
        pass
    return trainer, model, losses


def test_resume_restores_weights_ema_optimizers_counters_sample_noise_and_split(
    tmp_path, tiny_datamodule, deterministic
):
    crash = CrashAt(epoch=1)
    fit(tmp_path, tiny_datamodule, [crash], rng_state=True)
    assert crash.state["global_step"] == 2 * ITERATIONS and crash.state["sample_noise"] is not None

    restored = StateAtTrainStart()
    _, model, _ = fit(tmp_path, tiny_datamodule, [restored], rng_state=True, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert_same(restored.state, crash.state)  # the noise was loaded, not drawn: it is there before the first epoch end
    assert int(model.ema_discriminator.n_averaged) == 1 + EPOCHS * ITERATIONS  # init + one per D step, no reset


def test_checkpoints_load_with_weights_only(tmp_path, tiny_datamodule):
    """torch >= 2.6 loads with weights_only=True by default, and so does fit(ckpt_path=...) in Lightning 2.6."""
    fit(tmp_path, tiny_datamodule, [CrashAt(epoch=1)], rng_state=True)
    path = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert {"SampleGrid{'key': 'samples'}", "GlobalRNGState"} <= set(checkpoint["callbacks"])
    assert "InMemorySemiSupervised" in checkpoint and len(checkpoint["optimizer_states"]) == 2
    loaded = SemiSupervisedGAN.load_from_checkpoint(
        path,
        weights_only=True,
        generator=MNISTGenerator(noise_dim=16, hidden_dim=32),
        discriminator=MNISTDiscriminator(num_classes=3, hidden_dims=(64, 32)),
    )
    assert bool(loaded.initialized)


@pytest.mark.parametrize("crash_on_epoch, everything", [(1, False), (2, False), (1, True)])
def test_crashed_and_resumed_run_equals_the_uninterrupted_run(
    tmp_path, tiny_datamodule, deterministic, crash_on_epoch, everything
):
    trainer, model, losses = fit(tmp_path / "whole", tiny_datamodule, [], True, everything=everything)
    whole, whole_grid = snapshot(trainer, model), sample_grid(trainer).last_grid
    if everything:
        whole_scores = callback(trainer, ImageQualityMetrics).last_metrics
        assert any(isinstance(m, VirtualBatchNorm1d) for m in model.generator.modules())
        assert whole["HistoricalAveraging"]["counts"] and whole["ImageQualityMetrics"]["real_stats"]

    crash = CrashAt(crash_on_epoch)
    _, _, before_crash = fit(tmp_path / "crashed", tiny_datamodule, [crash], True, everything=everything)
    last = tmp_path / "crashed" / "ckpt" / "last.ckpt"
    restored = StateAtTrainStart()
    trainer, model, after_resume = fit(
        tmp_path / "crashed", tiny_datamodule, [restored], True, ckpt_path=last, everything=everything
    )

    assert_same(restored.state, crash.state)  # everything is back before the first resumed step
    assert len(losses.values) == EPOCHS * ITERATIONS
    assert before_crash.values + after_resume.values == losses.values  # every iteration's losses, exactly
    assert_same(snapshot(trainer, model), whole)  # weights, EMA, Adams, counters, noise, split, HA, real statistics
    assert torch.equal(sample_grid(trainer).last_grid, whole_grid)  # and the last sample grid
    if everything:
        assert callback(trainer, ImageQualityMetrics).last_metrics == whole_scores


def test_without_the_rng_state_a_resumed_run_draws_other_numbers(tmp_path, tiny_datamodule, deterministic):
    """Why GlobalRNGState is in every config: Lightning's checkpoint holds no RNG state, so a resumed run draws z,
    D's Gaussian noise and the DataLoader shuffles from the seed_everything state, not from where the run was."""
    _, _, losses = fit(tmp_path / "whole", tiny_datamodule, [], rng_state=False)
    _, _, before_crash = fit(tmp_path / "crashed", tiny_datamodule, [CrashAt(1)], rng_state=False)
    last = tmp_path / "crashed" / "ckpt" / "last.ckpt"
    _, _, after_resume = fit(tmp_path / "crashed", tiny_datamodule, [], rng_state=False, ckpt_path=last)
    assert before_crash.values == losses.values[:ITERATIONS]  # identical up to the crash ...
    assert after_resume.values != losses.values[ITERATIONS:]  # ... then another random stream


# ----- a checkpoint write that fails half-way ---------------------------------------------------------------------
class FailWritesFrom(Callback):
    """From epoch ``epoch`` on, checkpoints cannot be renamed into place, and copying ``last.ckpt`` fails half-way.

    What Lightning's save meets when the system temporary folder is on another filesystem than the checkpoints
    (``os.rename`` fails with EXDEV, so ``shutil.move`` copies into the target) and the copy is cut short (a full
    disk here; a killed job or a node failure alike).
    """

    def __init__(self, epoch: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.epoch, self.monkeypatch = epoch, monkeypatch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.epoch:
            return

        def rename_across_filesystems(src, dst, *args, **kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link", src)

        copyfile = shutil.copyfile

        def copy_half_then_fail(src, dst, *args, **kwargs):
            if not Path(dst).name.startswith("last"):
                return copyfile(src, dst, *args, **kwargs)
            data = Path(src).read_bytes()
            Path(dst).write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", dst)

        self.monkeypatch.setattr(os, "rename", rename_across_filesystems)
        self.monkeypatch.setattr(shutil, "copyfile", copy_half_then_fail)


@pytest.mark.parametrize("checkpoint_cls, survives", [(ModelCheckpoint, False), (AtomicModelCheckpoint, True)])
def test_a_checkpoint_write_failing_half_way(tmp_path, tiny_datamodule, monkeypatch, checkpoint_cls, survives):
    """Lightning's own ModelCheckpoint loses last.ckpt; AtomicModelCheckpoint keeps the previous one.

    If the first case ever starts to pass, Lightning / fsspec write next to the target and the subclass can go.
    """
    seed_everything(0)
    checkpoint = checkpoint_cls(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[checkpoint, FailWritesFrom(1, monkeypatch)],
    )
    with pytest.raises(OSError, match="No space left on device"):
        trainer.fit(small_ssl_gan(), datamodule=tiny_datamodule)
    monkeypatch.undo()

    last = tmp_path / "ckpt" / "last.ckpt"
    if survives:
        assert torch.load(last, weights_only=True)["global_step"] == 2 * 2  # the end of epoch 0: 2 iterations
        assert {"last.ckpt", "last.ckpt.partial"} <= {p.name for p in last.parent.iterdir()}
    else:
        with pytest.raises(RuntimeError):
            torch.load(last, weights_only=True)  # truncated: nothing to resume from
