"""What every adversarial LightningModule here shares: the manual-optimization loop's plumbing.

One place for

- the two optimizers (D first, G second) built from ``optimizer_d`` / ``optimizer_g`` factories, and an optional
  per-epoch learning-rate schedule (``lr_scheduler``, one instance per optimizer, stepped after every epoch: with
  manual optimization Lightning checkpoints schedulers but does not step them),
- one optimizer step (``manual_backward``, ``step``, ``zero_grad(set_to_none=True)``, so the next player's step
  finds no stale gradients), with an optional linear learning-rate warm-up over the first iterations
  (``lr_warmup``),
- DiffAugment (:mod:`lightning_gan.augment`): every discriminator call of a training step goes through
  :meth:`AdversarialModule.augment_d_input`, for real and generated images, in the D and the G step alike, so the
  gradient of the G step flows through the augmentation into the generator (Zhao et al. 2020),
- step accounting: a discriminator-step counter kept in the checkpoint, for ``n_critic`` schedules,
- cheap logging of per-step statistics (summed on the device, handed to ``self.log`` once per logging window),
- checks that the data module and the networks agree on image shape and value range,
- DDP: each optimizer step touches one network, so DDP's ``find_unused_parameters`` is switched on; ranks get their
  own random streams (``seed_everything`` seeds them alike, which would give every rank the same z and noise);
  logged statistics are averaged over ranks; buffers (batch-norm statistics) are made rank 0's after each epoch.

Step accounting: with manual optimization Lightning's ``trainer.global_step`` counts every ``optimizer.step()``
of either player (``loops/training_epoch_loop.py``), so it grows by the number of D steps plus the number of G
steps. Each subclass states what that means for ``max_steps``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from lightning_gan.augment import TRANSLATION_RATIO, DiffAugment

__all__ = ["AdversarialModule", "save_hyperparameters", "trainable"]


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that require gradients."""
    return [p for p in module.parameters() if p.requires_grad]


def save_hyperparameters(module: LightningModule, network_args: tuple[str, ...]) -> None:
    """``save_hyperparameters()`` of the caller's ``__init__`` arguments, without pickling networks.

    Under LightningCLI the networks arrive as ``class_path`` configs, which are saved so that
    ``load_from_checkpoint`` rebuilds them. Built in Python they are module instances, which cannot always be
    pickled (weight-norm parametrizations forbid it) and are in the checkpoint's state_dict anyway:
    they are left out, and ``load_from_checkpoint`` then needs them passed again. So are factories passed from
    Python (optimizers, schedulers: functions, ``functools.partial``): code, not data, which a checkpoint read with
    ``torch.load(weights_only=True)`` (Lightning's default when resuming) could not hold.
    """
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    frame = inspect.currentframe().f_back  # the caller's __init__, whose arguments are the hyperparameters
    from_cli = _given_hyperparameters.get() is not None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        ignore = None if from_cli else [*network_args, *(k for k, v in frame.f_locals.items() if callable(v))]
        module.save_hyperparameters(ignore=ignore, frame=frame)


class AdversarialModule(LightningModule):
    """Base class of :class:`~lightning_gan.models.GAN` and :class:`~lightning_gan.models.SemiSupervisedGAN`.

    Subclasses set ``self.generator`` and ``self.discriminator`` and write ``training_step`` as a ``# --- D step
    ---`` block and a ``# --- G step ---`` block, each inside ``with self.toggled_optimizer(opt):``.

    Args:
        optimizer_d: optimizer factory for the discriminator's trainable parameters.
        optimizer_g: optimizer factory for the generator's trainable parameters.
        augment: DiffAugment policy applied to every discriminator input during training, e.g.
            ``"color,translation,cutout"``; ``""`` for none.
        augment_translation_ratio: the largest shift of ``augment``'s ``"translation"``, as a share of the image
            size (DiffAugment's 1/8 by default; 1/28, one pixel, on MNIST: ``README``, DiffAugment).
        lr_scheduler: learning-rate scheduler factory (e.g. :class:`~lightning_gan.optim.LinearDecayLR`), built once
            for each optimizer and stepped after every training epoch; ``None`` for a constant rate.
        lr_warmup: number of discriminator steps (iterations) over which both players' learning rates ramp up
            linearly, from ``1/lr_warmup`` of their (scheduled) value to all of it; 0 for none (the papers).
            Adam's second-moment estimate rests on a few gradients in the first steps, so its first updates are
            sign-like steps of the full rate on every weight; a warm-up is the usual remedy (it did not prevent the
            generator's early collapse on few-label MNIST, ``docs/reproduction.md``). The factor is a function of
            the checkpointed step count: resuming continues the ramp.
    """

    generator: nn.Module
    discriminator: nn.Module

    def __init__(
        self,
        optimizer_d: OptimizerCallable,
        optimizer_g: OptimizerCallable,
        augment: str = "",
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_warmup: int = 0,
        augment_translation_ratio: float = TRANSLATION_RATIO,
    ) -> None:
        super().__init__()
        if isinstance(lr_warmup, bool) or not isinstance(lr_warmup, int) or lr_warmup < 0:
            raise ValueError(f"lr_warmup must be a number of iterations >= 0, got {lr_warmup!r}")
        self.lr_warmup = lr_warmup
        self.automatic_optimization = False
        self.optimizer_d = optimizer_d
        self.optimizer_g = optimizer_g
        self.lr_scheduler = lr_scheduler
        self.augment = DiffAugment(augment, translation_ratio=augment_translation_ratio)
        self.d_steps = 0  # discriminator steps taken, checkpointed (on_save_checkpoint)
        self._window: dict[tuple[str, ...], tuple[Tensor, int]] = {}

    # ----- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """``[D optimizer, G optimizer]`` (``self.optimizers()`` returns them in this order), and their schedulers."""
        optimizers = [self.optimizer_d(trainable(self.discriminator)), self.optimizer_g(trainable(self.generator))]
        if self.lr_scheduler is None:
            return optimizers
        return optimizers, [{"scheduler": self.lr_scheduler(opt), "interval": "epoch"} for opt in optimizers]

    def on_train_epoch_end(self) -> None:
        """Step the learning-rate schedulers once per epoch (manual optimization: Lightning does not)."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    def warmup_factor(self) -> float:
        """The learning-rate multiplier of the current step: ``min(1, max(d_steps, 1) / lr_warmup)``, 1 without warm-up.

        Example:
            >>> from lightning_gan.models import SemiSupervisedGAN
            >>> from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
            >>> model = SemiSupervisedGAN(MNISTGenerator(), MNISTDiscriminator(), lr_warmup=100)
            >>> model.warmup_factor(), [model.warmup_factor() for model.d_steps in (50, 100, 500)]
            (0.01, [0.5, 1.0, 1.0])
        """
        if self.lr_warmup == 0:
            return 1.0
        return min(1.0, max(self.d_steps, 1) / self.lr_warmup)

    def optimizer_step_on(self, optimizer: Any, loss: Tensor) -> None:
        """Back-propagate ``loss`` and step ``optimizer``; gradients are then dropped (``set_to_none``).

        During the warm-up (``lr_warmup``) every group's rate is scaled for this step only and then restored, so a
        per-epoch scheduler keeps owning the rate and the scaled value never reaches a checkpoint.
        """
        self.manual_backward(loss)
        factor = self.warmup_factor()
        if factor == 1.0:
            optimizer.step()
        else:
            groups = optimizer.param_groups
            rates = [group["lr"] for group in groups]
            for group, lr in zip(groups, rates, strict=True):
                group["lr"] = lr * factor
            try:
                optimizer.step()
            finally:
                for group, lr in zip(groups, rates, strict=True):
                    group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)

    def augment_d_input(self, x: Tensor) -> Tensor:
        """DiffAugment of a discriminator input during training (identity without a policy)."""
        return self.augment(x) if self.augment.enabled else x

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["d_steps"] = self.d_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.d_steps = int(checkpoint.get("d_steps", 0))
        world_size = self.trainer.world_size if self._trainer is not None else 1
        self._rank_rngs_restored = any(  # GlobalRNGState saved one RNG state per rank of this world size
            isinstance(state, dict) and len(state.get("per_rank", ())) == world_size
            for state in checkpoint.get("callbacks", {}).values()
        )

    # ----- DDP --------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.decorrelate_ranks()

    def decorrelate_ranks(self) -> None:
        """Under DDP, reseed torch's RNG of every rank but 0 so that ranks draw different z, noise and dropout.

        ``seed_everything`` gives every rank the same seed: without this each rank would generate the same fake
        batch. Skipped when the ranks' own RNG states came back from a checkpoint (``GlobalRNGState``).
        """
        trainer = self.trainer
        if trainer.world_size == 1 or trainer.global_rank == 0 or getattr(self, "_rank_rngs_restored", False):
            return
        torch.manual_seed(torch.initial_seed() + 1_000_003 * trainer.global_rank)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Under DDP, after an epoch's last batch give every rank rank 0's buffers (batch-norm statistics).

        DDP broadcasts buffers before each step, not after the last one; epoch-end callbacks (sample grids, FID)
        and the checkpoint then see the same generator on every rank.
        """
        if self.trainer.world_size > 1 and torch.distributed.is_initialized() and self._is_last_batch(batch_idx):
            for buffer in self.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def _is_last_batch(self, batch_idx: int) -> bool:
        trainer = self.trainer
        return (
            batch_idx + 1 == trainer.num_training_batches
            or 0 <= trainer.max_steps <= trainer.global_step  # max_steps ends the epoch after this batch
            or trainer.should_stop
        )

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` generator samples in eval mode (batch-norm running statistics), from its EMA copy if there is one."""
        net = getattr(self, "ema_generator", None) or self.generator
        was_training = net.training
        net.eval()
        try:
            return net(self.generator.sample_noise(n, device=self.device))
        finally:
            net.train(was_training)

    # ----- logging --------------------------------------------------------------------------------
    def accumulate_stats(self, names: tuple[str, ...], values: Tensor) -> None:
        """Add one step's statistics ``values`` ([len(names)], on the device) to the current logging window."""
        total, count = self._window.get(names, (None, 0))
        self._window[names] = (values if total is None else total + values, count + 1)

    def flush_stats(self, batch_idx: int) -> dict[str, Tensor]:
        """At the end of a logging window, log the windows' means and return them (else return ``{}``).

        ``self.log`` costs about 3 ms per key per call on CPU (a quarter of an MNIST iteration with eight keys),
        so statistics are summed as one tensor every step and handed to Lightning once per window of
        ``log_every_n_steps`` iterations, weighted by the window length, which keeps the epoch means exact.
        """
        trainer = self.trainer
        # Lightning's own flush condition, or the last batch of the epoch
        if not (trainer._logger_connector.should_update_logs or self._is_last_batch(batch_idx)):
            return {}
        logged: dict[str, Tensor] = {}
        for names, (total, count) in self._window.items():
            means = dict(zip(names, total / count, strict=True))
            self.log_dict(means, on_step=True, on_epoch=True, batch_size=count, sync_dist=trainer.world_size > 1)
            logged.update(means)
        self._window = {}
        return logged

    def on_train_epoch_start(self) -> None:
        self._window = {}  # no partial window from an interrupted epoch

    # ----- checks ---------------------------------------------------------------------------------
    def check_compatible(self, datamodule: Any) -> None:
        """Clear errors when the data module's image shape, class count or value range do not fit the networks."""
        if datamodule is None:
            return
        for attr in ("num_classes", "image_shape", "value_range"):
            want = getattr(datamodule, attr, None)
            for role in ("generator", "discriminator"):
                net = getattr(self, role)
                have = getattr(net, attr, None)
                if want is None or have is None:
                    continue
                if isinstance(want, (tuple, list)):
                    want, have = tuple(float(v) if attr == "value_range" else v for v in want), tuple(have)
                if want != have:
                    raise ValueError(
                        f"the data module has {attr}={want} but the {role} {type(net).__name__} was built for "
                        f"{attr}={have}; set the {role}'s {attr if attr != 'value_range' else 'output'} to match "
                        f"(or the data module's)"
                    )

    def setup(self, stage: str) -> None:
        self.check_compatible(getattr(self.trainer, "datamodule", None))
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
            # the D step leaves G without gradients and the G step leaves D without: DDP must not wait for them
            strategy._ddp_kwargs["find_unused_parameters"] = True
            rank_zero_info(f"{type(self).__name__}: DDP with find_unused_parameters=True (one network per step)")
