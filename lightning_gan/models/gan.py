"""The unsupervised GAN family as one LightningModule: minimax, non-saturating, WGAN, WGAN-GP, hinge.

Each training batch of real images is one discriminator (critic) step; every ``n_critic``-th discriminator
step is followed by one generator step on fresh noise. Options cover the classic recipes
(``../configs/mnist_*.yaml``):

==================  =====================  ========================================================
recipe              loss                   options
==================  =====================  ========================================================
vanilla / DCGAN     ``non_saturating``     Adam 2e-4, betas (0.5, 0.999) (Radford et al. 2016)
WGAN                ``wasserstein``        ``clip_value=0.01``, ``n_critic=5``, RMSprop 5e-5
WGAN-GP             ``wasserstein``        ``gradient_penalty=10``, ``n_critic=5``, Adam 1e-4, betas (0, 0.9)
SN-GAN              ``hinge``              discriminator with ``spectral_norm=True``
==================  =====================  ========================================================

Step accounting: ``trainer.global_step`` counts the optimizer steps of both players, so one epoch of N batches
adds N + floor(N / n_critic) (for an epoch that starts at a multiple of ``n_critic`` D steps). ``max_steps: 1200``
is 600 batches with ``n_critic=1`` and 1000 batches with ``n_critic=5``. The D-step counter is checkpointed, so a
resumed run keeps its place in the ``n_critic`` cycle.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from lightning_gan.augment import TRANSLATION_RATIO
from lightning_gan.losses import GAN_DISCRIMINATOR_LOSSES, GAN_GENERATOR_LOSSES, gradient_penalty
from lightning_gan.models.base import AdversarialModule, save_hyperparameters
from lightning_gan.models.ema import EMA

__all__ = ["GAN", "dcgan_adam"]

D_STATS = ("train/d_loss", "train/d_real_out", "train/d_fake_out", "train/d_real_acc", "train/d_fake_acc", "train/gp")
G_STATS = ("train/g_loss",)


def dcgan_adam(params: Any) -> torch.optim.Optimizer:
    """Adam(lr=2e-4, betas=(0.5, 0.999)): Radford et al. 2016, section 4; the default for both players."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class GAN(AdversarialModule):
    """An unsupervised GAN: generator and discriminator (critic), a loss from the family, manual optimization.

    Args:
        generator: maps noise to samples; must offer ``sample_noise(batch_size, device)``.
        discriminator: maps samples to one raw output each ([B] or [B, 1]): a logit, or a critic score.
        loss: ``"minimax"``, ``"non_saturating"``, ``"wasserstein"`` or ``"hinge"`` (see
            :mod:`lightning_gan.losses`); the D loss of minimax and non-saturating is the same cross-entropy.
        optimizer_d: optimizer factory for the discriminator (default :func:`dcgan_adam`).
        optimizer_g: optimizer factory for the generator (default :func:`dcgan_adam`).
        n_critic: discriminator steps per generator step (WGAN: 5); each D step uses a new batch of real images.
        clip_value: WGAN weight clipping: after each D step every discriminator parameter is clamped to
            [-clip_value, clip_value] (Arjovsky et al. 2017: 0.01); ``None`` for no clipping.
        gradient_penalty: lambda of the WGAN-GP penalty (Gulrajani et al. 2017: 10); 0 for none. The penalty is
            taken on the discriminator as trained, i.e. after DiffAugment when a policy is set.
        real_target: one-sided label smoothing alpha for the ``minimax`` / ``non_saturating`` D loss (Salimans et
            al. 2016, section 3.4; 0.9 is usual); 1 for none. Fake targets stay 0.
        ema_decay: keep an exponential moving average of the generator with this decay (e.g. 0.999), used by
            :meth:`forward` and :meth:`sample`; ``None`` for none.
        augment: DiffAugment policy for every discriminator input in training, e.g. ``"color,translation,cutout"``.
        lr_scheduler: per-epoch learning-rate scheduler factory for both players (e.g.
            :class:`~lightning_gan.optim.LinearDecayLR`); ``None`` for a constant rate.
        lr_warmup: discriminator steps over which both learning rates ramp up linearly (0: none); see
            :class:`~lightning_gan.models.base.AdversarialModule`.
        augment_translation_ratio: the largest shift of ``augment``'s translation, as a share of the image size
            (DiffAugment's 1/8; on MNIST 1/28, one pixel, kept the generator drawing strokes where 1/8 did not).

    Example:
        >>> from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator
        >>> gan = GAN(VanillaGenerator(), VanillaDiscriminator(), loss="hinge", ema_decay=0.999)
        >>> gan.sample(4).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: str = "non_saturating",  # Goodfellow et al. 2014: the G loss used in practice
        optimizer_d: OptimizerCallable | None = None,
        optimizer_g: OptimizerCallable | None = None,
        n_critic: int = 1,
        clip_value: float | None = None,
        gradient_penalty: float = 0.0,
        real_target: float = 1.0,
        ema_decay: float | None = None,
        augment: str = "",
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_warmup: int = 0,
        augment_translation_ratio: float = TRANSLATION_RATIO,
    ) -> None:
        super().__init__(
            optimizer_d or dcgan_adam,
            optimizer_g or dcgan_adam,
            augment=augment,
            lr_scheduler=lr_scheduler,
            lr_warmup=lr_warmup,
            augment_translation_ratio=augment_translation_ratio,
        )
        save_hyperparameters(self, ("generator", "discriminator"))
        if not callable(getattr(generator, "sample_noise", None)):
            raise TypeError(f"generator {type(generator).__name__} has no sample_noise() method, which GAN needs")
        if loss not in GAN_DISCRIMINATOR_LOSSES:
            raise ValueError(f"loss must be one of {sorted(GAN_DISCRIMINATOR_LOSSES)}, got {loss!r}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if clip_value is not None and clip_value <= 0:
            raise ValueError(f"clip_value must be positive (or None for no clipping), got {clip_value}")
        if gradient_penalty < 0:
            raise ValueError(f"gradient_penalty must be >= 0, got {gradient_penalty}")
        if not 0.0 < real_target <= 1.0:
            raise ValueError(f"real_target (one-sided label smoothing alpha) must be in (0, 1], got {real_target}")
        if real_target != 1.0 and loss not in ("minimax", "non_saturating"):
            raise ValueError(f"real_target (label smoothing) applies to the cross-entropy losses only, not {loss!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) (or None for no average), got {ema_decay}")
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.n_critic = n_critic
        self.clip_value = clip_value
        self.gradient_penalty = gradient_penalty
        self.real_target = real_target
        self.ema_generator = EMA(generator, decay=ema_decay) if ema_decay is not None else None
        self.g_steps = 0  # generator steps taken (checkpointed)

    # ----- training -------------------------------------------------------------------------------
    def _d(self, x: Tensor) -> Tensor:
        """Every D call of a training step: DiffAugment, then D, flattened to one output per sample ([B])."""
        return self.discriminator(self.augment_d_input(x)).view(len(x))

    def _real_images(self, batch: Any) -> Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch  # bare images, or (images, labels)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x_real = self._real_images(batch)  # [B, C, H, W]
        opt_d, opt_g = self.optimizers()
        n = len(x_real)

        # --- D step ---
        with self.toggled_optimizer(opt_d):
            with torch.no_grad():
                x_fake = self.generator(self.generator.sample_noise(n, device=self.device))  # [B, C, H, W]
            real_out, fake_out = self._d(x_real), self._d(x_fake)  # [B], [B]
            d_loss = GAN_DISCRIMINATOR_LOSSES[self.loss](real_out, fake_out, real_target=self.real_target)
            gp = gradient_penalty(self._d, x_real, x_fake) if self.gradient_penalty else d_loss.new_zeros(())
            self.optimizer_step_on(opt_d, d_loss + self.gradient_penalty * gp)
        if self.clip_value is not None:
            with torch.no_grad():
                torch._foreach_clamp_min_(ps := list(self.discriminator.parameters()), -self.clip_value)
                torch._foreach_clamp_max_(ps, self.clip_value)
        self.d_steps += 1
        with torch.no_grad():
            real_acc, fake_acc = (real_out > 0).float().mean(), (fake_out < 0).float().mean()  # D calls them right
            d_stats = torch.stack([d_loss, real_out.mean(), fake_out.mean(), real_acc, fake_acc, gp])
        self.accumulate_stats(D_STATS, d_stats)

        # --- G step: once every n_critic D steps ---
        if self.d_steps % self.n_critic == 0:
            with self.toggled_optimizer(opt_g):
                x_fake = self.generator(self.generator.sample_noise(n, device=self.device))
                g_loss = GAN_GENERATOR_LOSSES[self.loss](self._d(x_fake))
                self.optimizer_step_on(opt_g, g_loss)
            self.g_steps += 1
            if self.ema_generator is not None:
                self.ema_generator.update(self.generator)
            self.accumulate_stats(G_STATS, g_loss.detach()[None])
        self.flush_stats(batch_idx)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["g_steps"] = self.g_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.g_steps = int(checkpoint.get("g_steps", 0))

    # ----- sampling and evaluation ----------------------------------------------------------------
    def forward(self, z: Tensor) -> Tensor:
        """Samples for noise ``z`` from the averaged generator when there is one, else from the generator."""
        return (self.ema_generator or self.generator)(z)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """How D judges held-out real images: a D that fits its training set calls them fake (Zhao et al. 2020).

        Logs ``val/d_real_out`` (mean raw output) and ``val/d_real_acc`` (share with output > 0, "real"), to
        compare with ``train/d_real_out`` / ``train/d_real_acc`` on the training images.
        """
        out = self.discriminator(self._real_images(batch)).flatten()
        self.log_dict(
            {"val/d_real_out": out.mean(), "val/d_real_acc": (out > 0).float().mean()},
            on_step=False,
            on_epoch=True,
            batch_size=len(out),
            sync_dist=self.trainer.world_size > 1,  # the mean over every rank's share of the validation set
        )

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """As many samples (:meth:`sample`) as the batch has images: ``trainer.predict`` then yields a sample set."""
        return self.sample(len(self._real_images(batch)))
