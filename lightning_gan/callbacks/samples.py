"""Image grids of a run: fixed-noise samples of the generator, and what the K+1 classifier sees and gets wrong.

:class:`SampleGrid` draws one noise batch once and feeds it to the generator every few epochs, so successive grids
show how the generator's mapping changes rather than which samples happened to be drawn (the DCGAN paper's fixed-z
figures, Radford et al. 2016). :class:`ClassificationGrids` shows the labelled examples of the semi-supervised GAN
(Salimans et al. 2016, section 5) and the validation / test images its averaged discriminator misclassifies.

Every grid is written as a PNG into ``<run directory>/<key>/`` (:func:`run_directory`) and sent to each logger that
takes images (:func:`log_grid`: W&B, TensorBoard); other loggers are skipped. Only rank 0 draws and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image
from typing_extensions import override

from lightning_gan.datamodules.semi_supervised import SemiSupervisedDataModule

__all__ = ["ClassificationGrids", "SampleGrid", "log_grid", "run_directory", "to_unit_range", "value_range_of"]


def to_unit_range(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map ``images`` from ``value_range`` ``(lo, hi)`` to [0, 1], clamped: what PNG files and loggers expect.

    Example:
        >>> to_unit_range(torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]), (-1.0, 1.0))
        tensor([0.0000, 0.2500, 0.5000, 1.0000, 1.0000])
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {tuple(value_range)}")
    return ((images - lo) / (hi - lo)).clamp_(0.0, 1.0)


def value_range_of(trainer: Trainer | None, pl_module: LightningModule) -> tuple[float, float]:
    """The pixel range of the run's images: the data module's ``value_range``, else the generator's, else (0, 1)."""
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    for owner in (datamodule, getattr(pl_module, "generator", None)):
        found = getattr(owner, "value_range", None)
        if found is not None:
            return float(found[0]), float(found[1])
    rank_zero_warn("no value_range on the data module or the generator: image grids assume pixels in [0, 1]")
    return 0.0, 1.0


def run_directory(trainer: Trainer) -> Path:
    """The folder of this run, for files next to the logs: ``trainer.log_dir``, except under W&B.

    ``trainer.log_dir`` is the logger's ``save_dir`` for a ``WandbLogger``, which every run shares, so W&B runs get
    ``<save_dir>/<project>/<run id>/``, the folder of ModelCheckpoint's ``checkpoints/``. Call it on every rank:
    ``trainer.log_dir`` broadcasts.
    """
    log_dir = trainer.log_dir
    logger = trainer.loggers[0] if trainer.loggers else None
    if isinstance(logger, WandbLogger) and trainer.is_global_zero:
        return Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / str(logger.version)
    return Path(log_dir or trainer.default_root_dir)


def _as_uint8_hwc(grid: Tensor) -> Any:
    """[C, H, W] in [0, 1] -> [H, W, C] uint8 numpy, rounded as ``save_image`` rounds (W&B then rescales nothing)."""
    return grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def log_grid(trainer: Any, key: str, grid: Tensor, caption: str | None = None) -> None:
    """Send ``grid`` ([3, H, W] in [0, 1]) to every logger of ``trainer`` that takes images; skip the others.

    ``WandbLogger.log_image`` (with ``caption``) and TensorBoard's ``add_image``, both at ``trainer.global_step``.
    """
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            extra = {"caption": [caption]} if caption else {}
            logger.log_image(key=key, images=[_as_uint8_hwc(grid)], step=trainer.global_step, **extra)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=trainer.global_step)


def _write(trainer: Trainer, path: Path, key: str, grid: Tensor, caption: str | None) -> None:
    """Write ``grid`` to ``path`` as a PNG and log it under ``key``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    log_grid(trainer, key, grid, caption)


class SampleGrid(Callback):
    """Every ``every_n_epochs`` training epochs, a grid of generator samples from one fixed noise batch.

    The noise is drawn once, with the generator's own ``sample_noise`` (its distribution), from an RNG seeded by
    ``seed`` alone: the global RNG is neither read nor advanced, so adding the callback does not change training.
    It is saved in the callback's ``state_dict``, so a resumed run keeps drawing the same grid.

    The images come from the EMA generator (``pl_module.ema_generator``) when there is one and ``use_ema``, else
    from ``pl_module.generator``, in eval mode (batch-norm running statistics; every module gets its own mode
    back afterwards). They are mapped from the data module's ``value_range`` to [0, 1], arranged by
    ``torchvision.utils.make_grid`` (padding 2), written to ``<run dir>/<key>/epoch{E:03d}.png`` (E counts from 0;
    ``samples/epoch000.png`` by default) and logged under ``key`` to W&B / TensorBoard. Rank 0 only.

    Args:
        every_n_epochs: draw a grid after every this many training epochs.
        num_samples: images in the grid.
        nrow: images per row.
        use_ema: use the EMA generator when the model has one.
        key: logger key and PNG folder, also part of ``state_key`` (several instances need different keys).
        seed: seed of the fixed noise.

    Example:
        >>> from lightning_gan.models import GAN
        >>> from lightning_gan.networks import VanillaDiscriminator, VanillaGenerator
        >>> samples = SampleGrid(num_samples=16, nrow=4)
        >>> gan = GAN(VanillaGenerator(), VanillaDiscriminator())
        >>> images = samples.generate(gan, value_range=(-1.0, 1.0))  # tanh output -> [0, 1]
        >>> images.shape, bool(images.min() >= 0 and images.max() <= 1)
        (torch.Size([16, 1, 28, 28]), True)
        >>> make_grid(images, nrow=4).shape  # 4 * (28 + 2) + 2 pixels square, 3 channels
        torch.Size([3, 122, 122])
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 64,
        nrow: int = 8,
        use_ema: bool = True,
        key: str = "samples",
        seed: int = 0,
    ) -> None:
        if every_n_epochs < 1 or num_samples < 1 or nrow < 1:
            raise ValueError(
                f"SampleGrid: every_n_epochs, num_samples and nrow must be >= 1, got {every_n_epochs}, "
                f"{num_samples}, {nrow}"
            )
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.nrow = nrow
        self.use_ema = use_ema
        self.key = key
        self.seed = seed
        self.noise: Tensor | None = None  # [num_samples, noise_dim] on the CPU, drawn on first use
        self.last_grid: Tensor | None = None  # [3, H, W] in [0, 1]: the latest grid, for notebooks and tests

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(key=self.key)

    def fixed_noise(self, pl_module: LightningModule) -> Tensor:
        """The fixed noise batch, drawn on first use from ``seed`` alone."""
        if self.noise is None:
            # sample_noise draws from the global RNG: run it on a copy seeded from our own CPU generator
            # (torch.manual_seed would also reseed CUDA, which fork_rng(devices=[]) does not give back)
            state = torch.Generator().manual_seed(self.seed).get_state()
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(state)
                self.noise = pl_module.generator.sample_noise(self.num_samples, device="cpu")
        return self.noise

    def network(self, pl_module: LightningModule) -> nn.Module:
        """The network that draws the grid: the EMA generator if there is one and ``use_ema``, else the generator."""
        ema = getattr(pl_module, "ema_generator", None) if self.use_ema else None
        return ema if ema is not None else pl_module.generator

    @torch.no_grad()
    def generate(self, pl_module: LightningModule, value_range: tuple[float, float]) -> Tensor:
        """The images of the fixed noise in eval mode, in [0, 1], on the CPU: [num_samples, C, H, W]."""
        net = self.network(pl_module)
        modes = {module: module.training for module in net.modules()}
        net.eval()
        try:
            images = net(self.fixed_noise(pl_module).to(pl_module.device))  # [N, C, H, W]
        finally:
            for module, training in modes.items():  # each its own mode: a BN frozen in eval stays in eval
                module.training = training
        return to_unit_range(images.detach().float().cpu(), value_range)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        directory = run_directory(trainer)  # on every rank: trainer.log_dir broadcasts
        if not trainer.is_global_zero:
            return
        images = self.generate(pl_module, value_range_of(trainer, pl_module))
        self.last_grid = make_grid(images, nrow=self.nrow)  # [3, H, W], padding 2
        caption = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        _write(
            trainer, directory / self.key / f"epoch{trainer.current_epoch:03d}.png", self.key, self.last_grid, caption
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "noise": None if self.noise is None else self.noise.clone()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        noise = state_dict.get("noise")
        if noise is not None and len(noise) != self.num_samples:
            rank_zero_warn(
                f"SampleGrid: the checkpoint's noise has {len(noise)} samples, num_samples is {self.num_samples}: "
                "drawing a new fixed noise batch"
            )
            noise = None
        self.noise = None if noise is None else noise.clone()


class ClassificationGrids(Callback):
    """For the K+1 semi-supervised GAN: grids of the labelled examples and of misclassified images.

    Active when the model has an ``ema_discriminator`` (:class:`~lightning_gan.models.SemiSupervisedGAN`) and the
    data module a labelled subset (:class:`~lightning_gan.datamodules.SemiSupervisedDataModule`); otherwise it warns
    once and does nothing.

    - ``<key>/labelled``: the labelled training images, one row per class (up to ``num_images`` in all), once at
      fit start (``<run dir>/<key>/labelled.png``): what the classifier learns the classes from.
    - ``<key>/misclassified_val``: up to ``num_images`` validation images that the averaged discriminator
      (the paper's evaluation network, noise off) gets wrong, every ``every_n_epochs`` epochs
      (``<key>/misclassified_val_epoch{E:03d}.png``).
    - ``<key>/misclassified_test``: the same for the test set, when ``trainer.test`` runs
      (``<key>/misclassified_test.png``). Test images are never looked at during ``fit``.

    Predictions come from an extra forward of each evaluation batch through ``pl_module.ema_discriminator``,
    stopping once ``num_images`` are collected. The W&B caption lists ``predicted/true`` per image, row by row.

    Args:
        num_images: at most this many images per grid.
        nrow: images per row of the misclassified grids.
        every_n_epochs: misclassified validation grid after every this many epochs.
        key: logger key prefix and PNG folder, also part of ``state_key``.

    Example:
        >>> grids = ClassificationGrids(num_images=32, nrow=8)
        >>> grids.state_key
        "ClassificationGrids{'key': 'classification'}"
    """

    def __init__(
        self, num_images: int = 64, nrow: int = 8, every_n_epochs: int = 1, key: str = "classification"
    ) -> None:
        if num_images < 1 or nrow < 1 or every_n_epochs < 1:
            raise ValueError(
                f"ClassificationGrids: num_images, nrow and every_n_epochs must be >= 1, got {num_images}, {nrow}, "
                f"{every_n_epochs}"
            )
        self.num_images = num_images
        self.nrow = nrow
        self.every_n_epochs = every_n_epochs
        self.key = key
        self._collecting = False
        self._warned = False
        self._images: list[Tensor] = []
        self._predicted: list[Tensor] = []
        self._true: list[Tensor] = []
        self.last_grids: dict[str, Tensor] = {}  # name -> [3, H, W]: the latest grids, for notebooks and tests
        self.last_misclassified: dict[str, tuple[Tensor, Tensor, Tensor]] = {}  # name -> images, predicted, true

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(key=self.key)

    def applies(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        """Whether this is a K+1 model trained on a labelled subset; warns once when it is not."""
        ok = hasattr(pl_module, "ema_discriminator") and isinstance(trainer.datamodule, SemiSupervisedDataModule)
        if not ok and not self._warned:
            self._warned = True
            rank_zero_warn(
                "ClassificationGrids needs a model with an ema_discriminator (SemiSupervisedGAN) and a "
                "SemiSupervisedDataModule; it draws nothing for this run"
            )
        return ok

    # ----- the labelled examples ----------------------------------------------------------------------------
    def labelled_grid(self, datamodule: SemiSupervisedDataModule) -> tuple[Tensor, str]:
        """A grid of the labelled images, one row per class, in [0, 1]; and its caption."""
        images, targets = datamodule._require_train()
        indices = datamodule.labelled_indices
        labels = targets[indices]
        num_classes = int(datamodule.num_classes)
        per_class = max(1, self.num_images // num_classes)
        rows = [indices[labels == c][:per_class] for c in range(num_classes)]
        shown = torch.cat(rows)
        nrow = max(1, max(len(r) for r in rows))
        grid = make_grid(to_unit_range(images[shown].float(), datamodule.value_range), nrow=nrow)
        caption = f"{len(indices)} labelled images, one row per class (0 to {num_classes - 1}); {len(shown)} shown"
        return grid, caption

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.applies(trainer, pl_module):
            return
        directory = run_directory(trainer)  # on every rank: trainer.log_dir broadcasts
        if trainer.is_global_zero:
            grid, caption = self.labelled_grid(trainer.datamodule)
            self.last_grids["labelled"] = grid
            _write(trainer, directory / self.key / "labelled.png", f"{self.key}/labelled", grid, caption)

    # ----- misclassified images ---------------------------------------------------------------------------------
    def _start(self, active: bool) -> None:
        self._collecting = active
        self._images, self._predicted, self._true = [], [], []

    @torch.no_grad()
    def _collect(self, pl_module: LightningModule, batch: Any) -> None:
        have = sum(len(x) for x in self._images)
        if not self._collecting or have >= self.num_images:
            return
        x, y = batch  # [B, C, H, W], [B]
        predicted = pl_module.ema_discriminator(x).argmax(1)  # [B]
        wrong = (predicted != y).nonzero().squeeze(1)[: self.num_images - have]
        self._images.append(x[wrong].detach().float().cpu())
        self._predicted.append(predicted[wrong].cpu())
        self._true.append(y[wrong].cpu())

    def _finish(self, trainer: Trainer, pl_module: LightningModule, name: str, filename: str) -> None:
        collecting, self._collecting = self._collecting, False
        if not collecting:
            return
        directory = run_directory(trainer)  # on every rank: trainer.log_dir broadcasts
        if not trainer.is_global_zero or not self._images:
            return
        images, predicted, true = torch.cat(self._images), torch.cat(self._predicted), torch.cat(self._true)
        self.last_misclassified[name] = (images, predicted, true)
        if len(images) == 0:
            return
        grid = make_grid(to_unit_range(images, value_range_of(trainer, pl_module)), nrow=self.nrow)
        self.last_grids[name] = grid
        pairs = " ".join(f"{p}/{t}" for p, t in zip(predicted.tolist(), true.tolist(), strict=True))
        caption = f"{len(images)} misclassified, predicted/true row by row: {pairs}"
        _write(trainer, directory / self.key / filename, f"{self.key}/{name}", grid, caption)

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        self._start(due and not trainer.sanity_checking and self.applies(trainer, pl_module))

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._collect(pl_module, batch)

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module, "misclassified_val", f"misclassified_val_epoch{trainer.current_epoch:03d}.png")

    @override
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(self.applies(trainer, pl_module))

    @override
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._collect(pl_module, batch)

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module, "misclassified_test", "misclassified_test.png")
