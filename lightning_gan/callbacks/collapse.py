"""Detect the discriminator winning outright, the collapse that ends a failed semi-supervised GAN run.

When D tells real from generated images perfectly, its loss on them goes to zero, the generator's gradients vanish,
and the feature-matching loss explodes (~200 on MNIST instead of ~1-5): G stops learning, and the classifier's
error drifts back up (``docs/reproduction.md``). The first sign is D's accuracy on the real/fake decision, which
both models log (``train/d_real_acc``: share of real images called real; ``train/d_fake_acc``: share of generated
images called fake). A healthy MNIST-100 run keeps both at ~0.8-0.9 after the first epochs; a collapsed one at 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

__all__ = ["CollapseMonitor"]

REPORTED = ("train/d_real_acc_epoch", "train/d_fake_acc_epoch", "train/d_loss_unl_epoch", "train/g_loss_fm_epoch")


class CollapseMonitor(Callback):
    """Warn (and optionally stop) when D's real and fake accuracies both stay >= ``accuracy`` for ``patience`` epochs.

    Reads the epoch means ``train/d_real_acc_epoch`` and ``train/d_fake_acc_epoch`` (and, for the message,
    ``train/d_loss_unl_epoch`` and ``train/g_loss_fm_epoch`` when present) at the end of each training epoch, and
    logs ``train/d_wins`` (1.0 in an epoch where D won outright, else 0.0). The count of consecutive such epochs
    is kept in the checkpoint, so a resumed run goes on counting.

    Args:
        accuracy: both accuracies at or above this mean D wins outright in that epoch.
        patience: consecutive such epochs before the warning (and the stop).
        stop: also stop training (``trainer.should_stop``): a collapsed run rarely recovers.

    Example:
        >>> monitor = CollapseMonitor(accuracy=0.99, patience=2)
        >>> [monitor.update({"train/d_real_acc_epoch": r, "train/d_fake_acc_epoch": f})
        ...  for r, f in [(0.88, 0.83), (0.995, 0.998), (1.0, 1.0)]]
        [False, False, True]
    """

    def __init__(self, accuracy: float = 0.99, patience: int = 2, stop: bool = False) -> None:
        if not 0.5 < accuracy <= 1.0 or patience < 1:
            raise ValueError(
                f"CollapseMonitor: 0.5 < accuracy <= 1 and patience >= 1 required, got {accuracy}, {patience}"
            )
        self.accuracy = accuracy
        self.patience = patience
        self.stop = stop
        self.streak = 0  # consecutive epochs in which D won outright
        self.collapsed_at: int | None = None  # the epoch count at which the collapse was declared

    def d_wins(self, metrics: Mapping[str, Any]) -> bool | None:
        """Whether D won outright in an epoch with these metrics; ``None`` when the accuracies were not logged."""
        real, fake = metrics.get("train/d_real_acc_epoch"), metrics.get("train/d_fake_acc_epoch")
        if real is None or fake is None:
            return None
        return float(real) >= self.accuracy and float(fake) >= self.accuracy

    def update(self, metrics: Mapping[str, Any]) -> bool:
        """Count one epoch's metrics; ``True`` exactly once, at the epoch where the streak reaches ``patience``."""
        wins = self.d_wins(metrics)
        self.streak = self.streak + 1 if wins else 0
        return self.streak == self.patience

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = trainer.callback_metrics
        wins = self.d_wins(metrics)
        if wins is None:
            return
        pl_module.log("train/d_wins", float(wins), on_step=False, on_epoch=True)
        if not self.update(metrics):
            return
        self.collapsed_at = trainer.current_epoch
        details = ", ".join(
            f"{key.removesuffix('_epoch')} {float(metrics[key]):.4g}" for key in REPORTED if key in metrics
        )
        rank_zero_warn(
            f"CollapseMonitor: the discriminator has won outright for {self.patience} epochs (epoch "
            f"{trainer.current_epoch}: {details}); the generator gets no useful gradient and the classifier usually "
            "degrades from here. Common causes: torch's Adam eps=1e-8 instead of the reference's (use eps=1e-4 or "
            "lightning_gan.optim.ReferenceAdam), a learning rate too high for D; see docs/reproduction.md"
            + ("; stopping" if self.stop else "")
        )
        if self.stop:
            trainer.should_stop = True

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "collapsed_at": -1 if self.collapsed_at is None else self.collapsed_at}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.streak = int(state_dict["streak"])
        self.collapsed_at = None if int(state_dict["collapsed_at"]) < 0 else int(state_dict["collapsed_at"])
