"""Two-process CPU DDP run for ``tests/test_ddp.py``: ``python tests/ddp_check.py {ssl,gan} DATA_DIR OUT_DIR``.

Lightning's subprocess launcher starts rank 1 by running this script again (as ``torchrun`` or SLURM would start
it), so it is a plain script, not a test module. Every rank writes ``OUT_DIR/rank<r>.json`` (what it saw and
logged) and ``OUT_DIR/rank<r>.pt`` (its whole state dict); the test compares the ranks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for lightning_gan

from lightning_gan.callbacks import GlobalRNGState, HistoricalAveraging, ImageQualityMetrics  # noqa: E402
from lightning_gan.datamodules import ImageDataModule, SemiSupervisedMNIST  # noqa: E402
from lightning_gan.models import GAN, SemiSupervisedGAN  # noqa: E402
from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator, VanillaDiscriminator, VanillaGenerator  # noqa: E402


def image_key(image: torch.Tensor) -> str:
    """An image's identity: its first pixels (random bytes in the generated files)."""
    return ",".join(f"{v:.4f}" for v in image.flatten()[300:306].tolist())


def flatten(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors and numbers of a nested state dict, by path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}{key}/").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in flatten(sub, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): torch.as_tensor(tree)} if isinstance(tree, (torch.Tensor, int, float)) else {}


class Record(Callback):
    """Per rank: the images of every training batch, a noise draw, the logged metrics, the split; then the state."""

    def __init__(self, out: Path) -> None:
        self.out, self.seen, self.noise = out, {}, None

    def on_train_start(self, trainer, pl_module) -> None:
        with torch.random.fork_rng():  # a draw that leaves training's random stream alone
            self.noise = pl_module.generator.sample_noise(3).tolist()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        parts = batch if isinstance(batch, dict) else {"images": batch}
        for name, value in parts.items():
            images = value[0] if isinstance(value, (tuple, list)) else value
            key = f"{name}/epoch{trainer.current_epoch}"
            self.seen.setdefault(key, []).extend(image_key(x) for x in images)

    def on_fit_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        self.out.mkdir(parents=True, exist_ok=True)
        dm = trainer.datamodule
        record = {
            "world_size": trainer.world_size,
            "seen": self.seen,
            "noise": self.noise,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "labelled_indices": dm.labelled_indices.tolist() if hasattr(dm, "labelled_indices") else None,
            "find_unused_parameters": trainer.strategy._ddp_kwargs.get("find_unused_parameters"),
        }
        (self.out / f"rank{rank}.json").write_text(json.dumps(record))
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        for callback in trainer.callbacks:
            if isinstance(callback, HistoricalAveraging):  # its running sums, flattened to name -> tensor
                for name, value in flatten(callback.state_dict()).items():
                    state[f"historical_averaging/{name}"] = value
        torch.save(state, self.out / f"rank{rank}.pt")


def build(kind: str, data_dir: str, out: Path) -> tuple[Any, Any, list[Callback]]:
    """Data module, model and callbacks of a run (built alike for the uninterrupted and the resumed run)."""
    callbacks: list[Callback] = [Record(out), GlobalRNGState()]
    if kind == "ssl":
        dm = SemiSupervisedMNIST(data_dir=data_dir, num_labelled=20, val_size=40, batch_size=20)
        model = SemiSupervisedGAN(
            MNISTGenerator(noise_dim=8, hidden_dim=32), MNISTDiscriminator(hidden_dims=(32, 16)), ema_decay=0.9
        )
        callbacks.append(HistoricalAveraging(weight=0.01, modules="both"))
    else:
        dm = ImageDataModule("mnist", data_dir=data_dir, batch_size=20, val_size=40)
        model = GAN(VanillaGenerator(noise_dim=8, hidden_dims=(32,)), VanillaDiscriminator(hidden_dims=(32,)))
        metrics = ImageQualityMetrics(num_samples=60, num_real=100, batch_size=30, cache_dir=None, progress=False)
        callbacks.append(metrics)
    return dm, model, callbacks


def trainer(max_epochs: int, callbacks: list[Callback], checkpoint_dir: Path | None = None) -> Trainer:
    if checkpoint_dir is not None:
        callbacks = [*callbacks, ModelCheckpoint(dirpath=checkpoint_dir, save_last=True)]
    return Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",  # plain ddp: the models switch find_unused_parameters on themselves
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=checkpoint_dir is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        log_every_n_steps=1,
    )


def main() -> None:
    """``ssl`` / ``gan``: 2 epochs. ``ssl_resume``: 1 epoch with a checkpoint, then a new run resumed to 2 epochs."""
    kind, data_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    torch.set_num_threads(1)
    seed_everything(3, verbose=False)
    if kind == "ssl_resume":
        dm, model, callbacks = build("ssl", data_dir, out / "interrupted")
        trainer(1, callbacks, checkpoint_dir=out / "ckpt").fit(model, datamodule=dm)
        seed_everything(3, verbose=False)  # a new process would start from here
        dm, model, callbacks = build("ssl", data_dir, out)
        trainer(2, callbacks).fit(model, datamodule=dm, ckpt_path=out / "ckpt" / "last.ckpt")
        return
    dm, model, callbacks = build(kind, data_dir, out)
    trainer(2, callbacks).fit(model, datamodule=dm)


if __name__ == "__main__":
    main()
