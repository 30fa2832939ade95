"""The K+1-class semi-supervised GAN of Salimans et al. 2016 (section 5) as a LightningModule.

Each training iteration is one discriminator step on ``L_label + w/2 (L_unlabelled + L_fake)``
(:func:`~lightning_gan.losses.ssl_discriminator_loss`) followed by ``generator_steps`` generator steps on feature
matching (:func:`~lightning_gan.losses.feature_matching_loss`, the paper's semi-supervised setup) or on the
non-saturating loss (:func:`~lightning_gan.losses.ssl_generator_loss`, which the paper pairs with minibatch
discrimination), with manual optimization. Classification is evaluated with an exponential moving average of
the discriminator, noise off, as in openai/improved-gan.

Step accounting: Lightning's ``trainer.global_step`` counts every ``optimizer.step()``, so it grows by
1 + ``generator_steps`` per iteration (2 by default: one D step, one G step). ``max_steps: 2000`` therefore
means 1000 iterations by default; ``max_epochs`` (one pass over the unlabelled pool) is unaffected.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torchmetrics import MeanMetric

from lightning_gan.augment import TRANSLATION_RATIO, DiffAugment
from lightning_gan.layers import data_dependent_init
from lightning_gan.losses import (
    feature_matching_loss,
    feature_std_matching_loss,
    ssl_discriminator_loss,
    ssl_generator_loss,
    ssl_real_probability,
)
from lightning_gan.models.base import AdversarialModule, save_hyperparameters
from lightning_gan.models.ema import EMA
from lightning_gan.optim import ReferenceAdam

__all__ = ["SemiSupervisedGAN", "paper_adam"]

TRAIN_STATS = (
    "train/d_loss",
    "train/d_loss_sup",
    "train/d_loss_unl",
    "train/d_loss_fake",
    "train/g_loss_fm",
    "train/acc_labelled",
    "train/d_real_acc",
    "train/d_fake_acc",
    "train/g_loss_ns",
    "train/g_loss",
    "train/g_loss_fm_std",
)
GENERATOR_LOSSES = ("feature_matching", "non_saturating")
STEP_IMPLS = ("fast", "straightforward")


def _freeze_nothing(optimizer: Any) -> contextlib.AbstractContextManager:
    """``toggled_optimizer``'s stand-in in the straightforward step: every parameter stays trainable."""
    return contextlib.nullcontext()


def paper_adam(params: Any, fused: bool = False) -> torch.optim.Optimizer:
    """The reference's Adam: lr 0.003, betas (0.5, 0.999), ``eps`` 1e-8 under the square root (``ReferenceAdam``).

    openai/improved-gan ``train_mnist_feature_matching.py`` divides by ``sqrt(v_hat + 1e-8)``; torch's Adam divides by
    ``sqrt(v_hat) + eps``. No torch ``eps`` is equivalent: 1e-8 steps far harder on parameters whose gradients vanish
    (the discriminator runs away, ``docs/reproduction.md``), and 1e-4 damps the generator's hidden layers, whose
    gradients sit at ``sqrt(v_hat)`` ~ 1e-4, up to 1.4 times more than the reference; with 50 labels that made
    three of six seeds collapse in the first epochs where the reference's Adam did not.

    ``fused=True`` compiles the update into one pass per parameter (``ReferenceAdam(fused=True)``): the same numbers
    to float rounding, about six times faster on the CPU.
    """
    return ReferenceAdam(params, lr=0.003, betas=(0.5, 0.999), eps=1e-8, fused=fused)


class SemiSupervisedGAN(AdversarialModule):
    """K+1-class semi-supervised GAN with a feature-matching generator.

    Args:
        generator: maps noise to images; must offer ``sample_noise(batch_size, device)``.
        discriminator: maps images to K class logits; must offer ``features(x)`` (the feature-matching
            layer) and contain weight-normalised layers for the data-dependent initialisation. If it has
            ``batch_dependent = True`` (e.g. minibatch discrimination), the labelled, unlabelled and fake batches
            go through it in separate forwards; otherwise in one forward over their concatenation.
        optimizer_d: optimizer factory for the discriminator (default :func:`paper_adam`).
        optimizer_g: optimizer factory for the generator (default :func:`paper_adam`).
        unsupervised_weight: w in ``L_label + w/2 (L_unlabelled + L_fake)`` (paper: 1).
        feature_matching_p: 2 for squared error of feature means (paper's MNIST), 1 for absolute error.
        ema_decay: decay of the moving average of D used for evaluation (reference: 0.9999).
        feature_layer: the discriminator layer whose output is matched: ``None`` for ``discriminator.features``
            (the last hidden layer, as in the paper), or the name of a submodule of the discriminator
            (e.g. ``"hidden.2"``, see ``named_modules()``), whose output is captured with a forward hook.
        generator_loss: ``"feature_matching"`` (the paper's semi-supervised generator) or ``"non_saturating"``
            (``-mean log D(G(z))`` on the K+1 real/fake decision, which the paper pairs with minibatch
            discrimination).
        feature_matching_weight: with ``generator_loss="non_saturating"``, the weight of feature matching added
            as a regulariser (0: none). Must be 0 with ``"feature_matching"``, whose weight is 1 by definition.
        feature_std_weight: weight of second-moment feature matching
            (:func:`~lightning_gan.losses.feature_std_matching_loss`: the batch standard deviations of the same
            features, same ``feature_matching_p``) added to the generator loss; 0: none (the paper). Not in the paper:
            an explicit option against the generator's collapse to one image, which makes some few-label runs fail;
            in the runs measured it delayed that collapse, not always prevented it (``docs/reproduction.md``).
        generator_steps: generator steps per discriminator step, each on fresh noise (and the same second
            unlabelled batch); ``trainer.global_step`` grows by ``1 + generator_steps`` per iteration.
        real_target: alpha of one-sided label smoothing (section 3.4) on the unlabelled real term of the
            discriminator loss; 1 means no smoothing, the paper suggests 0.9. Fake targets stay 0.
        augment: DiffAugment policy (e.g. ``"translation,cutout"``) applied to every discriminator input of a
            training step: labelled, unlabelled and generated images alike, in the D and the G step (also to the
            real images whose features are matched). Evaluation sees clean images. ``""``: none (the paper).
        augment_labelled: DiffAugment policy (e.g. ``"translation"``) applied to the labelled images only, in the D
            step, before ``augment``; the GAN game (unlabelled and generated images) is untouched. ``""``: none (the
            paper). Not in the paper: with 20 labels the discriminator fits each labelled image away from its class
            (``docs/reproduction.md``, section 3), and this makes a labelled image stand for its neighbourhood.
        lr_scheduler: per-epoch learning-rate scheduler factory for both players, e.g.
            :class:`~lightning_gan.optim.LinearDecayLR` (the CIFAR-10/SVHN reference decays linearly to 0 over the
            last third); ``None`` for a constant rate (the MNIST reference).
        lr_warmup: iterations over which both learning rates ramp up linearly from ``1/lr_warmup`` of their value
            (0: none, the paper); see :class:`~lightning_gan.models.base.AdversarialModule`.
        init_generator: also run the data-dependent initialisation on the generator's weight-normalised layers, on
            one batch of ``init_noise_size`` noise vectors (the CIFAR-10/SVHN reference does; its MNIST code does not).
        init_noise_size: noise vectors for the generator's initialisation (reference: the batch size, 100).
        step_impl: how a training iteration is executed; the maths is the same either way.
            ``"fast"`` (default): one D forward over the concatenated labelled, unlabelled and fake batch (for a
            batch-independent D), logits and features of one input from one forward, the weight-normalised
            weights of D computed once for both D forwards of a G step (``torch.nn.utils.parametrize.cached``),
            statistics summed on the device and logged once per logging window, and an EMA update without
            host-device synchronisation, and the other player frozen during each step (``toggled_optimizer``), so the
            G step's backward computes no gradient of D. ``"straightforward"``: the plain transcription, kept as the
            baseline of ``benchmarks/ssl_throughput.py``: labelled, unlabelled and fake images in three D forwards,
            logits and features in two, every statistic passed to ``self.log`` as a Python number every step, the
            EMA as a loop over parameters, and nothing frozen: as in Lightning's manual-optimization GAN example and
            the usual PyTorch port of the reference, the G step back-propagates into D's weights (through the fake
            and the real features) and those gradients are dropped. Without noise in D the two give the same losses
            up to float rounding; with noise they draw it in a different order (the same distribution, other
            numbers).
        augment_translation_ratio: the largest shift of ``augment``'s translation, as a share of the image size
            (DiffAugment's 1/8); ``augment_labelled`` keeps 1/8.

    Example:
        >>> from lightning_gan.networks import MNISTDiscriminator, MNISTGenerator
        >>> model = SemiSupervisedGAN(MNISTGenerator(), MNISTDiscriminator())
        >>> model.initialize(torch.rand(50, 1, 28, 28))   # data-dependent init on real images
        >>> model(torch.rand(3, 1, 28, 28)).shape         # class logits of the averaged discriminator
        torch.Size([3, 10])
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_d: OptimizerCallable | None = None,
        optimizer_g: OptimizerCallable | None = None,
        unsupervised_weight: float = 1.0,  # paper eq. (5) with w = 1
        feature_matching_p: int = 2,  # reference MNIST: squared error of batch means
        ema_decay: float = 0.9999,  # reference: a <- a + 1e-4 (p - a)
        feature_layer: str | None = None,  # reference MNIST: the last 250-unit hidden layer
        generator_loss: str = "feature_matching",  # paper section 5: feature matching for semi-supervised learning
        feature_matching_weight: float = 0.0,
        feature_std_weight: float = 0.0,
        generator_steps: int = 1,
        real_target: float = 1.0,  # paper section 3.4 suggests 0.9; the reference MNIST code does not smooth
        augment: str = "",
        augment_labelled: str = "",
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_warmup: int = 0,
        init_generator: bool = False,
        init_noise_size: int = 100,
        step_impl: str = "fast",
        augment_translation_ratio: float = TRANSLATION_RATIO,
    ) -> None:
        super().__init__(
            optimizer_d or paper_adam,
            optimizer_g or paper_adam,
            augment=augment,
            lr_scheduler=lr_scheduler,
            lr_warmup=lr_warmup,
            augment_translation_ratio=augment_translation_ratio,
        )
        save_hyperparameters(self, ("generator", "discriminator"))
        for name, net, method in (
            ("generator", generator, "sample_noise"),
            ("discriminator", discriminator, "features"),
        ):
            if not callable(getattr(net, method, None)):
                raise TypeError(f"{name} {type(net).__name__} has no {method}() method, which SemiSupervisedGAN needs")
        if feature_matching_p not in (1, 2):
            raise ValueError(f"feature_matching_p must be 1 or 2, got {feature_matching_p}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if feature_std_weight < 0:
            raise ValueError(f"feature_std_weight must be >= 0, got {feature_std_weight}")
        if feature_matching_weight < 0:
            raise ValueError(f"feature_matching_weight must be >= 0, got {feature_matching_weight}")
        if generator_loss == "feature_matching" and feature_matching_weight != 0:
            raise ValueError(
                "feature_matching_weight adds feature matching to the non-saturating loss: set "
                "generator_loss='non_saturating', or leave feature_matching_weight at 0 for pure feature matching"
            )
        if step_impl not in STEP_IMPLS:
            raise ValueError(f"step_impl must be one of {STEP_IMPLS}, got {step_impl!r}")
        if generator_steps < 1:
            raise ValueError(f"generator_steps must be >= 1, got {generator_steps}")
        if not 0.0 < real_target <= 1.0:
            raise ValueError(f"real_target (one-sided label smoothing alpha) must be in (0, 1], got {real_target}")
        if feature_layer is not None:
            names = dict(discriminator.named_modules())
            if feature_layer not in names or feature_layer == "":
                listed = ", ".join(repr(n) for n in names if n)
                raise ValueError(
                    f"feature_layer {feature_layer!r} is not a submodule of {type(discriminator).__name__}; "
                    f"choose one of: {listed}"
                )
        self.generator = generator
        self.discriminator = discriminator
        self.ema_discriminator = EMA(discriminator, decay=ema_decay)
        self.augment_labelled = DiffAugment(augment_labelled)
        self.unsupervised_weight = unsupervised_weight
        self.feature_matching_p = feature_matching_p
        self.feature_layer = feature_layer
        self.generator_loss = generator_loss
        self.feature_matching_weight = feature_matching_weight
        self.feature_std_weight = feature_std_weight
        self.generator_steps = generator_steps
        self.real_target = real_target
        self.init_generator = init_generator
        self.init_noise_size = init_noise_size
        self.step_impl = step_impl
        self.register_buffer("initialized", torch.tensor(False))  # checkpointed: never re-initialise on resume
        self.errors = nn.ModuleDict({f"{s}_{k}": MeanMetric() for s in ("val", "test") for k in ("raw", "ema")})

    # ----- initialisation -------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, images: Tensor) -> None:
        """Data-dependent initialisation of D on real ``images``; restarts the EMA from the result.

        Runs D in training mode (noise on), as openai/improved-gan does. Called once by :meth:`on_fit_start`
        with the data module's ``init_batch()`` (500 images) unless the model is already initialised.
        """
        was_training = self.discriminator.training
        self.discriminator.train()
        data_dependent_init(self.discriminator, images.to(self.device))
        self.discriminator.train(was_training)
        if self.init_generator:
            was_training = self.generator.training
            self.generator.train()
            noise = self.generator.sample_noise(self.init_noise_size, device=self.device)
            data_dependent_init(self.generator, noise)
            self.generator.train(was_training)
        self.ema_discriminator.restart(self.discriminator)
        self.initialized.fill_(True)

    def on_fit_start(self) -> None:
        """Data-dependent init, once: a resumed run has ``initialized`` (and the weights) from its checkpoint."""
        super().on_fit_start()
        if bool(self.initialized):
            return
        datamodule = self.trainer.datamodule
        if not callable(getattr(datamodule, "init_batch", None)):
            raise RuntimeError(
                "SemiSupervisedGAN needs real images for the data-dependent initialisation of the discriminator: "
                "fit with a datamodule that has init_batch() (e.g. SemiSupervisedMNIST), or call "
                "model.initialize(images) before trainer.fit"
            )
        self.initialize(datamodule.init_batch())
        if self.trainer.world_size > 1:  # every rank must start from rank 0's initialisation
            for net in (self.discriminator, self.generator):
                state = self.trainer.strategy.broadcast({k: v.cpu() for k, v in net.state_dict().items()})
                net.load_state_dict(state)
            self.ema_discriminator.restart(self.discriminator)

    # ----- training -------------------------------------------------------------------------------
    def _d_logits(self, *batches: Tensor) -> tuple[Tensor, ...]:
        """D's logits for each batch: one forward over their concatenation unless D is batch-dependent.

        A batch-independent D (every layer row-wise, as the paper's MNIST D) gives the same logits either way,
        and one forward is faster. Minibatch discrimination makes each output depend on the whole batch, so
        then each batch goes through D alone, as openai/improved-gan does; so does ``step_impl="straightforward"``.
        """
        if self.step_impl == "straightforward" or getattr(self.discriminator, "batch_dependent", False):
            return tuple(self.discriminator(self.augment_d_input(x)) for x in batches)
        logits = self.discriminator(self.augment_d_input(torch.cat(batches)))  # [sum B_i, K]
        return logits.split([len(x) for x in batches])

    def _d_features(self, x: Tensor, with_logits: bool = False) -> tuple[Tensor | None, Tensor]:
        """Feature-matching features of ``x`` (flattened to [B, F]), and D's logits when ``with_logits``."""
        x = self.augment_d_input(x)
        if self.feature_layer is None:
            if not with_logits:
                return None, self.discriminator.features(x)  # [B, F]
            forward_with_features = getattr(self.discriminator, "forward_with_features", None)
            if callable(forward_with_features) and self.step_impl == "fast":
                return forward_with_features(x)
            return self.discriminator(x), self.discriminator.features(x)
        captured: list[Tensor] = []
        layer = self.discriminator.get_submodule(self.feature_layer)
        handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            logits = self.discriminator(x)  # [B, K]
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"feature_layer {self.feature_layer!r} ran {len(captured)} times in one forward")
        return (logits if with_logits else None), captured[0].flatten(1)  # [B, F]

    def _shared_d_weights(self) -> contextlib.AbstractContextManager:
        """Context in which D's weight-normalised weights are computed once and reused by every forward.

        Exact (the same tensors either way) while no D parameter requires a gradient, as in the G step, where
        ``toggled_optimizer`` freezes D: no gradient has to reach D through the cached weights. A no-op for
        ``step_impl="straightforward"`` or when a D parameter requires a gradient.
        """
        if self.step_impl == "straightforward" or any(p.requires_grad for p in self.discriminator.parameters()):
            return contextlib.nullcontext()
        return parametrize.cached()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x_lab, y_lab = batch["labelled"]  # [B_l, C, H, W], [B_l]
        x_unl = batch["unlabelled"]  # [B, C, H, W]
        x_unl_g = batch.get("unlabelled_g")  # second unlabelled batch for the G step, as in the reference
        if x_unl_g is None:
            rank_zero_warn("the batch has no 'unlabelled_g': the G step reuses the D step's unlabelled batch")
            x_unl_g = x_unl
        opt_d, opt_g = self.optimizers()
        n_unl = len(x_unl)
        fast = self.step_impl == "fast"
        # The fast step freezes the other player while one steps, so no backward computes gradients it drops; the
        # straightforward one, as Lightning's manual-optimization GAN example and the usual PyTorch port of the
        # reference do, freezes nothing and drops D's gradients of the G step afterwards.
        freeze = self.toggled_optimizer if fast else _freeze_nothing

        # --- D step: L_label + w/2 (L_unlabelled + L_fake) ---
        with freeze(opt_d):
            with torch.no_grad():
                x_fake = self.generator(self.generator.sample_noise(n_unl, device=self.device))  # [B, C, H, W]
            if self.augment_labelled.enabled:
                x_lab = self.augment_labelled(x_lab)
            logits_lab, logits_unl, logits_fake = self._d_logits(x_lab, x_unl, x_fake)  # [B_l, K], [B, K], [B, K]
            d_loss = ssl_discriminator_loss(
                logits_lab, y_lab, logits_unl, logits_fake, self.unsupervised_weight, real_target=self.real_target
            )
            self.optimizer_step_on(opt_d, d_loss.total)
        self.ema_discriminator.update(self.discriminator, foreach=fast)
        self.d_steps += 1

        # --- G steps: feature matching against a second unlabelled batch, or the non-saturating loss ---
        non_saturating = self.generator_loss == "non_saturating"
        for _ in range(self.generator_steps):
            with freeze(opt_g):
                x_fake = self.generator(self.generator.sample_noise(n_unl, device=self.device))
                with self._shared_d_weights():  # D is frozen here: one weight normalisation for both forwards
                    with torch.no_grad() if fast else contextlib.nullcontext():
                        _, real_features = self._d_features(x_unl_g)  # [B, F]
                    logits_g, fake_features = self._d_features(x_fake, with_logits=non_saturating)  # [B, K], [B, F]
                g_loss_fm = feature_matching_loss(real_features, fake_features, p=self.feature_matching_p)
                if non_saturating:
                    g_loss_ns = ssl_generator_loss(logits_g)
                    g_loss = g_loss_ns + self.feature_matching_weight * g_loss_fm
                else:
                    g_loss_ns = g_loss = g_loss_fm
                if self.feature_std_weight:
                    g_loss_std = feature_std_matching_loss(real_features, fake_features, p=self.feature_matching_p)
                    g_loss = g_loss + self.feature_std_weight * g_loss_std
                self.optimizer_step_on(opt_g, g_loss)
                if not fast:
                    opt_d.zero_grad(set_to_none=True)  # D's gradients from the G step, never used

        with torch.no_grad():
            if not non_saturating:
                g_loss_ns = ssl_generator_loss(logits_fake)  # logged for comparison: D-step fakes, same generator
            stats = [
                d_loss.total,
                d_loss.label,
                d_loss.unlabelled,
                d_loss.fake,
                g_loss_fm,
                (logits_lab.argmax(1) == y_lab).float().mean(),
                (ssl_real_probability(logits_unl) > 0.5).float().mean(),  # D calls the reals real
                (ssl_real_probability(logits_fake) < 0.5).float().mean(),  # D calls the fakes fake
                g_loss_ns,
                g_loss,
                g_loss_std
                if self.feature_std_weight
                else feature_std_matching_loss(real_features, fake_features, p=self.feature_matching_p),
            ]
            stacked = torch.stack(stats) if fast else None  # [len(TRAIN_STATS)]
        sync = self.trainer.world_size > 1
        if not fast:  # every statistic, every step, as a Python number (one host-device copy each)
            for name, value in zip(TRAIN_STATS, stats, strict=True):
                self.log(name, value.item(), on_step=True, on_epoch=True, batch_size=n_unl, sync_dist=sync)
            self.log("g_fm", g_loss_fm.item(), prog_bar=True, logger=False, batch_size=n_unl, sync_dist=sync)
            return
        self.accumulate_stats(TRAIN_STATS, stacked)
        logged = self.flush_stats(batch_idx)
        if logged:
            self.log("g_fm", logged["train/g_loss_fm"], prog_bar=True, logger=False, sync_dist=sync)

    # ----- evaluation -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Class logits of the averaged discriminator."""
        return self.ema_discriminator(x)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        for kind, net in (("raw", self.discriminator), ("ema", self.ema_discriminator)):
            metric = self.errors[f"{stage}_{kind}"]
            metric.update((net(x).argmax(1) != y).float())
            name = f"{stage}/error" if kind == "raw" else f"{stage}/error_ema"
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=kind == "ema", batch_size=len(x))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Predicted classes (averaged discriminator) of the images in ``batch`` (or ``batch[0]``)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(1)
