"""Sample-quality metrics of a GAN during training: FID, Inception score, KID and mode score, from one extractor.

- FID (Heusel et al. 2017): ``||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` between Gaussians fitted to
  the features of real and generated images (torchmetrics ``FrechetInceptionDistance``, float64 statistics).
- Inception score (Salimans et al. 2016, section 4): ``exp(E_x KL(p(y|x) || p(y)))``, mean and std over
  ``is_splits`` splits of the shuffled samples, as the reference protocol (torchmetrics ``InceptionScore``).
- KID (Binkowski et al. 2018), optional: the unbiased MMD with a cubic polynomial kernel over random subsets
  (torchmetrics ``KernelInceptionDistance``).
- Mode score (Che et al. 2017): :class:`lightning_gan.metrics.ModeScore`.

:class:`ImageQualityMetrics` holds the torchmetrics objects and one :class:`~lightning_gan.metrics.FeatureExtractor`.
Each batch of images goes through the extractor ONCE (:meth:`ImageQuality.extract` returns features and logits side
by side); the metrics receive that output, and their ``feature`` modules (:class:`OutputSlice`) only pick their
columns. Real-image statistics are computed once per dataset, split, image count and extractor, and cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance
from typing_extensions import override

from lightning_gan.metrics.extractors import FeatureExtractor, build_extractor
from lightning_gan.metrics.mode_score import ModeScore

__all__ = ["DEFAULT_CACHE_DIR", "ImageQuality", "ImageQualityMetrics", "OutputSlice"]

DEFAULT_CACHE_DIR = "~/.cache/lightning_gan/real_stats"


class OutputSlice(nn.Module):
    """Columns ``[start, stop)`` of an extractor's output ``[B, F + K]``: the ``feature`` module handed to a metric.

    The metrics get the extractor's output instead of images, so each of them only selects its part (features for
    FID/KID, logits for IS) and the network runs once for all of them.

    Example:
        >>> OutputSlice(1, 3)(torch.arange(8.0).reshape(2, 4))
        tensor([[1., 2.],
                [5., 6.]])
    """

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop
        self.num_features = stop - start  # read by torchmetrics' FID instead of probing with a dummy image

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.start : self.stop]


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with the global RNG of the CPU (and of ``device`` if CUDA) seeded, then restore it.

    The metrics draw from the global RNG (the generator's ``sample_noise``, ``torch.randperm`` in IS and KID): inside
    this block they are reproducible, and training's random stream is left as it was.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def _cat_list_state(metric: nn.Module, name: str) -> None:
    """Concatenate a list state into one tensor, so every rank all-gathers exactly one tensor under DDP."""
    value = getattr(metric, name)
    if isinstance(value, list) and len(value) > 1:
        setattr(metric, name, [torch.cat(value)])


class ImageQuality(nn.Module):
    """FID, IS, mode score and (optionally) KID of images, with one extractor pass per batch; no Lightning inside.

    :meth:`update_real` and :meth:`update_fake` take image batches in ``value_range``; :meth:`compute` returns the
    scores of the generated images since the last :meth:`reset_fake`. The real statistics (FID's real sums, KID's
    real features, the classifier's mean prediction on real images) stay until :meth:`reset_real`, and can be read
    and written as plain tensors (:meth:`real_statistics`, :meth:`load_real_statistics`).

    Args:
        extractor: the network giving features and logits.
        value_range: pixel range of the images given to ``update_*``.
        is_splits: splits of the Inception score.
        kid: compute KID too (keeps all real and generated features in memory).
        kid_subsets: KID subsets.
        kid_subset_size: samples per KID subset (at most the number of real and of generated images).
        mode_score_prior: ``p*(y)`` of the mode score: ``"real"`` (the extractor's mean prediction on the real
            images), ``"uniform"``, or class frequencies.
        seed: seed of the shuffles of IS and KID.

    Example:
        >>> class Stub(FeatureExtractor):  # features: the mean pixel and its square; logits: 3 classes
        ...     name, num_features, num_classes = "stub", 2, 3
        ...     def forward(self, x):
        ...         m = x.mean(dim=(1, 2, 3))[:, None]
        ...         return torch.cat([m, m**2], 1), torch.cat([m, -m, 0 * m], 1)
        >>> quality = ImageQuality(Stub(), value_range=(0.0, 1.0), is_splits=2)
        >>> quality.update_real(torch.rand(20, 1, 8, 8))
        >>> quality.update_fake(torch.rand(20, 1, 8, 8))
        >>> sorted(quality.compute())
        ['fid', 'is_mean', 'is_std', 'mode_score']
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        value_range: tuple[float, float] = (0.0, 1.0),
        is_splits: int = 10,
        kid: bool = False,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        mode_score_prior: str | Sequence[float] = "real",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.seed = seed
        num_features, num_classes = int(extractor.num_features), int(extractor.num_classes)
        features, logits = OutputSlice(0, num_features), OutputSlice(num_features, num_features + num_classes)
        with warnings.catch_warnings():  # IS and KID warn that they keep their features: we know
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            self.fid = FrechetInceptionDistance(feature=features, reset_real_features=False)
            self.inception_score = InceptionScore(feature=logits, splits=is_splits)
            self.kid = (
                KernelInceptionDistance(
                    feature=features, subsets=kid_subsets, subset_size=kid_subset_size, reset_real_features=False
                )
                if kid
                else None
            )
        if isinstance(mode_score_prior, str) and mode_score_prior not in ("real", "uniform"):
            raise ValueError(
                f"mode_score_prior must be 'real', 'uniform' or class frequencies, got {mode_score_prior!r}"
            )
        self.prior_from_real = mode_score_prior == "real"
        fixed_prior = None if isinstance(mode_score_prior, str) else mode_score_prior
        self.mode_score = ModeScore(num_classes=num_classes, prior=fixed_prior)
        self.register_buffer("real_prob_sum", torch.zeros(num_classes, dtype=torch.float64))  # sum of p(y|x) on reals

    # ----- one extractor pass -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, images: Tensor) -> Tensor:
        """``[features | logits]``, ``[B, F + K]``, of images in ``value_range``: the extractor's one pass."""
        device = self.real_prob_sum.device
        x = self.extractor.prepare(images.to(device), self.value_range)
        features, logits = self.extractor(x)  # [B, F], [B, K]
        return torch.cat([features.reshape(len(x), -1), logits.reshape(len(x), -1)], dim=1).float()

    def _logits(self, out: Tensor) -> Tensor:
        return out[:, int(self.extractor.num_features) :]  # [B, K]

    @torch.no_grad()
    def update_real(self, images: Tensor) -> None:
        """Add real images to the real statistics."""
        out = self.extract(images)  # [B, F + K]
        self.fid.update(out, real=True)
        if self.kid is not None:
            self.kid.update(out, real=True)
        self.real_prob_sum += self._logits(out).double().softmax(dim=1).sum(dim=0)

    @torch.no_grad()
    def update_fake(self, images: Tensor) -> None:
        """Add generated images to every metric."""
        out = self.extract(images)  # [B, F + K]
        self.fid.update(out, real=False)
        if self.kid is not None:
            self.kid.update(out, real=False)
        self.inception_score.update(out)
        self.mode_score.update(self._logits(out))

    # ----- scores -------------------------------------------------------------------------------------------
    def compute(self) -> dict[str, Tensor]:
        """``fid``, ``is_mean``, ``is_std``, ``mode_score`` (and ``kid_mean``, ``kid_std``) of the generated images.

        Under DDP every rank must call it: torchmetrics gathers and sums the states of all ranks first. The shuffles of
        IS and KID draw from a generator seeded by ``seed``, so the same features give the same scores.
        """
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if int(self.fid.real_features_num_samples) < 2 and not distributed:
            raise RuntimeError("ImageQuality has no real statistics: call update_real or load_real_statistics first")
        _cat_list_state(self.inception_score, "features")
        if self.kid is not None:
            _cat_list_state(self.kid, "fake_features")
            _cat_list_state(self.kid, "real_features")
        scores = {"fid": self.fid.compute()}
        with seeded(self.seed):  # each shuffle seeded on its own: IS does not depend on whether KID is on
            scores["is_mean"], scores["is_std"] = self.inception_score.compute()
        if self.kid is not None:
            with seeded(self.seed):
                scores["kid_mean"], scores["kid_std"] = self.kid.compute()
        scores["mode_score"] = self.mode_score.compute()
        return {name: value.detach().float() for name, value in scores.items()}

    def reset_fake(self) -> None:
        """Forget the generated images; the real statistics stay."""
        for metric in (self.fid, self.inception_score, self.mode_score, self.kid):
            if metric is not None:
                metric.reset()

    def reset_real(self) -> None:
        """Forget everything, real statistics included."""
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.reset_real_features = True
                metric.reset()
                metric.reset_real_features = False
        self.reset_fake()
        self.real_prob_sum.zero_()

    # ----- real statistics as plain tensors ------------------------------------------------------------------
    def real_statistics(self) -> dict[str, Tensor]:
        """The real statistics on the CPU: FID's sums and count, the sum of p(y|x), KID's features if any."""
        stats = {
            "fid_sum": self.fid.real_features_sum.detach().cpu().clone(),  # [F] float64
            "fid_cov_sum": self.fid.real_features_cov_sum.detach().cpu().clone(),  # [F, F] float64
            "count": self.fid.real_features_num_samples.detach().cpu().clone(),  # long
            "prob_sum": self.real_prob_sum.detach().cpu().clone(),  # [K] float64
        }
        if self.kid is not None:
            features = self.kid.real_features or [torch.zeros(0, int(self.extractor.num_features))]
            stats["kid_features"] = torch.cat(features).detach().cpu()  # [N, F]
        return stats

    def load_real_statistics(self, stats: dict[str, Tensor], rank: int = 0, world_size: int = 1) -> None:
        """Install real statistics; under DDP each rank gets its share so that summing the ranks gives them once.

        FID's sums go to rank 0 (the other ranks hold zeros); KID's real features are split into ``world_size``
        chunks, one per rank. The mode score's prior (``"real"``) is the mean prediction on the real images.
        """
        device = self.real_prob_sum.device
        mine = rank == 0
        fid_sum, fid_cov = stats["fid_sum"].to(device), stats["fid_cov_sum"].to(device)
        self.fid.real_features_sum = fid_sum if mine else torch.zeros_like(fid_sum)
        self.fid.real_features_cov_sum = fid_cov if mine else torch.zeros_like(fid_cov)
        count = stats["count"].to(device)
        self.fid.real_features_num_samples = count if mine else torch.zeros_like(count)
        if self.kid is not None:
            if "kid_features" not in stats:
                raise KeyError("these real statistics have no KID features; recompute them with kid=True")
            self.kid.real_features = [torch.tensor_split(stats["kid_features"], world_size)[rank].to(device)]
        self.real_prob_sum.copy_(stats["prob_sum"])
        if self.prior_from_real:
            self.mode_score.set_prior(stats["prob_sum"] / stats["prob_sum"].sum())


def _key_filename(key: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{key['dataset']}-{key['split']}-{key['num_real']}-{key['extractor']}")
    return f"{readable}-{digest}.pt"


def _images_sha256(images: Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def _share(total: int, rank: int, world_size: int) -> int:
    """Rank ``rank``'s share of ``total`` samples: equal shares, the first ``total % world_size`` ranks one more."""
    return total // world_size + (1 if rank < total % world_size else 0)


class ImageQualityMetrics(Callback):
    """Every ``every_n_epochs`` epochs, FID, IS, mode score (and KID) of ``num_samples`` generated images.

    Logged keys (stable names; the sample count is an argument, not part of the key): ``metrics/fid``,
    ``metrics/is_mean``, ``metrics/is_std``, ``metrics/mode_score`` and, with ``kid=True``, ``metrics/kid_mean``,
    ``metrics/kid_std``. They are logged with ``pl_module.log`` at the end of the training epoch (so
    ``ModelCheckpoint(monitor="metrics/fid", mode="min")`` works), and at the end of fit (``at_fit_end``) straight to
    the loggers. :attr:`last_metrics` keeps the latest values.

    **Samples.** ``pl_module.sample(n)`` (the EMA generator when the model has one, eval mode) in batches of
    ``batch_size``; each batch goes through the extractor once, updates every metric and is dropped: generated images
    are never all in memory (IS keeps their logits, KID their features). The noise comes from the global RNG
    seeded with ``seed`` and the rank inside ``torch.random.fork_rng``: every evaluation uses the same noise (curves
    compare generators, not draws), ranks draw different samples, and training's random stream is untouched.
    Under DDP each rank draws ``num_samples / world_size`` images and torchmetrics sums the states of all ranks:
    the scores are those of ``num_samples`` images, identical on every rank.

    **Extractor.** ``"auto"``: the shipped MNIST classifier for 1x28x28 data (:func:`~lightning_gan.metrics.
    load_domain_classifier`), InceptionV3 otherwise (``inception_weights``: local weights file; ``antialias``:
    resize mode; see :class:`~lightning_gan.metrics.InceptionExtractor`). Images are mapped from the data module's
    ``value_range`` to what the extractor expects. Scores from different extractors are not comparable.

    **Real statistics** (FID's feature sums, KID's features, the mean prediction) of the first ``num_real`` images
    of the data module's ``real_split`` (``real_images(num_real, split)``) are computed once and cached under a key
    of dataset name, split, image count, extractor name (which includes a digest of its weights and Inception's
    resize mode), whether KID is on, and a SHA-256 of the images. The cache lives in the callback's ``state_dict``
    (so in checkpoints) and on disk in ``cache_dir`` (one ``.pt`` file per key, written by rank 0; default
    ``~/.cache/lightning_gan/real_stats``, shared by runs; ``None``: no disk cache). A cached entry is used only if
    its key matches; otherwise the statistics are recomputed.

    **Progress** of long computations shows as a transient ``rich`` bar on rank 0 when the console is a terminal;
    nothing is printed otherwise (CI logs stay clean).

    Args:
        every_n_epochs: evaluate after every this many training epochs (0: only at the end of fit).
        num_samples: generated images per evaluation, over all ranks (10,000 is the usual FID10k).
        batch_size: images per generator and extractor call.
        num_real: real images for the real statistics (fewer if the split is smaller).
        real_split: ``"train"``, ``"val"`` or ``"test"``: the split given to the data module's ``real_images``.
        extractor: ``"auto"``, ``"domain"``, ``"inception"``, or a :class:`~lightning_gan.metrics.FeatureExtractor`.
        inception_weights: local file ``weights-inception-2015-12-05-6726825d.pth`` for the Inception extractor.
        antialias: Inception resizes with antialiasing (torchmetrics >= 1.8 default); ``False``: the TF reference's
            bilinear resize.
        download: allow downloading the Inception weights (never done otherwise).
        kid: compute KID as well.
        kid_subsets: KID subsets.
        kid_subset_size: samples per KID subset (at most ``num_samples`` and ``num_real``).
        is_splits: splits of the Inception score (10 in the reference protocol).
        mode_score_prior: ``p*(y)`` of the mode score: ``"real"`` (the extractor's mean prediction on the real
            images, i.e. the training data's class distribution as the classifier sees it), ``"uniform"``, or class
            frequencies.
        cache_dir: folder of the on-disk cache of real statistics; ``None`` for none.
        at_fit_end: evaluate once more when fit ends (in ``on_train_end``), unless the last epoch was just evaluated.
        seed: seed of the generated noise and of the IS / KID shuffles.
        progress: allow the rich progress bar.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> metrics = ImageQualityMetrics(every_n_epochs=5, num_samples=10_000, cache_dir=None)
        >>> trainer = Trainer(callbacks=[metrics], logger=False, enable_progress_bar=False)
        >>> metrics.state_key
        "ImageQualityMetrics{'num_samples': 10000, 'real_split': 'train', 'extractor': 'auto'}"
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 10_000,
        batch_size: int = 100,
        num_real: int = 10_000,
        real_split: str = "train",
        extractor: str | FeatureExtractor = "auto",
        inception_weights: str | None = None,
        antialias: bool = True,
        download: bool = False,
        kid: bool = False,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        mode_score_prior: str | list[float] = "real",
        cache_dir: str | None = DEFAULT_CACHE_DIR,
        at_fit_end: bool = True,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if every_n_epochs < 0 or num_samples < 2 or batch_size < 1 or num_real < 2 or is_splits < 1:
            raise ValueError(
                "ImageQualityMetrics: every_n_epochs >= 0, num_samples >= 2, batch_size >= 1, num_real >= 2 and "
                f"is_splits >= 1 are required, got {every_n_epochs}, {num_samples}, {batch_size}, {num_real}, "
                f"{is_splits}"
            )
        if real_split not in ("train", "val", "test"):
            raise ValueError(f"real_split must be 'train', 'val' or 'test', got {real_split!r}")
        if kid and kid_subset_size > min(num_samples, num_real):
            raise ValueError(
                f"kid_subset_size ({kid_subset_size}) must not exceed num_samples ({num_samples}) or num_real "
                f"({num_real})"
            )
        if isinstance(mode_score_prior, str) and mode_score_prior not in ("real", "uniform"):
            raise ValueError(
                f"mode_score_prior must be 'real', 'uniform' or class frequencies, got {mode_score_prior!r}"
            )
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.num_real = num_real
        self.real_split = real_split
        self.extractor = extractor
        self.inception_weights = inception_weights
        self.antialias = antialias
        self.download = download
        self.kid = kid
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.is_splits = is_splits
        self.mode_score_prior = mode_score_prior
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.at_fit_end = at_fit_end
        self.seed = seed
        self.progress = progress
        self.quality: ImageQuality | None = None  # built on first use (setup, or evaluate)
        self.real_key: dict[str, Any] | None = None  # key of the cached real statistics
        self.real_stats: dict[str, Tensor] | None = None  # the cached real statistics (CPU)
        self._installed: str | None = None  # JSON of the key whose statistics are installed in self.quality
        self._installed_for: Any = None  # the data module they were checked against
        self.last_metrics: dict[str, float] = {}
        self.last_duration_s: float | None = None
        self._last_evaluated_step: int | None = None

    @property
    @override
    def state_key(self) -> str:
        name = self.extractor if isinstance(self.extractor, str) else type(self.extractor).__name__
        return self._generate_state_key(num_samples=self.num_samples, real_split=self.real_split, extractor=name)

    # ----- building -----------------------------------------------------------------------------------------
    def build(self, datamodule: Any, pl_module: LightningModule | None = None) -> ImageQuality:
        """The metrics and their extractor for ``datamodule``'s images (built once, then reused)."""
        if self.quality is None:
            for attr in ("real_images", "image_shape"):
                if not hasattr(datamodule, attr):
                    raise AttributeError(
                        f"ImageQualityMetrics needs a data module with real_images(n, split) and image_shape "
                        f"(ImageDataModule, SemiSupervisedDataModule); {type(datamodule).__name__} has no {attr}"
                    )
            extractor = build_extractor(
                self.extractor,
                image_shape=datamodule.image_shape,
                dataset_name=getattr(datamodule, "dataset_name", None),
                inception_weights=self.inception_weights,
                antialias=self.antialias,
                download=self.download,
            )
            self.quality = ImageQuality(
                extractor,
                value_range=_value_range(datamodule, pl_module),
                is_splits=self.is_splits,
                kid=self.kid,
                kid_subsets=self.kid_subsets,
                kid_subset_size=self.kid_subset_size,
                mode_score_prior=self.mode_score_prior,
                seed=self.seed,
            )
        return self.quality

    # ----- real statistics ----------------------------------------------------------------------------------
    def real_statistics_key(self, datamodule: Any, images: Tensor) -> dict[str, Any]:
        """The cache key of the real statistics of ``images`` (the data module's first real images)."""
        assert self.quality is not None
        return {
            "dataset": str(getattr(datamodule, "dataset_name", type(datamodule).__name__)),
            "split": self.real_split,
            "num_real": len(images),
            "extractor": self.quality.extractor.name,
            "kid": self.kid,
            "images_sha256": _images_sha256(images),
        }

    def cache_path(self, key: dict[str, Any]) -> Path | None:
        """The on-disk cache file of ``key`` (``None`` without ``cache_dir``)."""
        return None if self.cache_dir is None else self.cache_dir / _key_filename(key)

    def _read_disk_cache(self, key: dict[str, Any]) -> dict[str, Tensor] | None:
        path = self.cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: recompute, say why
            rank_zero_warn(f"ImageQualityMetrics: ignoring unreadable real-statistics cache {path} ({err})")
            return None
        if json.loads(saved.get("key", "null")) != key:
            rank_zero_warn(f"ImageQualityMetrics: the cache file {path} holds statistics of another key; recomputing")
            return None
        return saved["stats"]

    def _write_disk_cache(self, key: dict[str, Any], stats: dict[str, Tensor]) -> None:
        path = self.cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"key": json.dumps(key, sort_keys=True), "stats": stats}, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves half a file under the final name

    def _compute_real(self, images: Tensor, is_global_zero: bool) -> dict[str, Tensor]:
        assert self.quality is not None
        quality = self.quality
        quality.reset_real()
        with _progress(f"real statistics ({len(images)} images)", len(images), self.progress and is_global_zero) as bar:
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                quality.update_real(batch)
                bar(len(batch))
        return quality.real_statistics()

    def prepare_real(self, datamodule: Any, trainer: Trainer | None = None) -> dict[str, Any]:
        """Make the real statistics ready: from memory (e.g. a checkpoint), else the disk cache, else computed.

        Every rank computes them alike when they are not cached (the same images, no communication); rank 0 writes
        the disk cache. Done once per fit (the data do not change during one); returns the key.
        """
        quality = self.build(datamodule)
        if self._installed is not None and self.real_key is not None and self._installed_for is datamodule:
            return self.real_key
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        images = datamodule.real_images(self.num_real, split=self.real_split)
        if len(images) < self.num_real:
            rank_zero_warn(
                f"ImageQualityMetrics: the {self.real_split} split has {len(images)} images, fewer than "
                f"num_real={self.num_real}; using them all"
            )
        key = self.real_statistics_key(datamodule, images)
        if self.real_key is not None and self.real_key != key:
            rank_zero_warn(
                "ImageQualityMetrics: the real statistics in memory (from a checkpoint or an earlier fit) were "
                f"computed for {self.real_key}, not {key}; looking further"
            )
        stats = self.real_stats if self.real_key == key else None
        if stats is None:
            stats = self._read_disk_cache(key)
        if stats is None:
            stats = self._compute_real(images, rank == 0)
            if rank == 0:
                self._write_disk_cache(key, stats)
        self.real_key, self.real_stats = key, stats
        quality.load_real_statistics(stats, rank=rank, world_size=world_size)
        self._installed, self._installed_for = json.dumps(key, sort_keys=True), datamodule
        return key

    # ----- evaluation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, pl_module: LightningModule, datamodule: Any = None, trainer: Trainer | None = None
    ) -> dict[str, float]:
        """The scores of ``num_samples`` samples of ``pl_module`` now; works outside a ``Trainer`` too.

        Args:
            pl_module: a model with ``sample(n)`` (e.g. :class:`~lightning_gan.models.GAN`).
            datamodule: the data module of the real images (default ``trainer.datamodule``).
            trainer: the running trainer, for its rank, world size and data module; ``None`` for one process.

        Returns:
            ``{"metrics/fid": ..., "metrics/is_mean": ..., ...}`` as floats.
        """
        started = time.perf_counter()
        datamodule = datamodule if datamodule is not None else getattr(trainer, "datamodule", None)
        if datamodule is None:
            raise ValueError("ImageQualityMetrics needs a data module (trainer.fit(model, datamodule=...))")
        quality = self.build(datamodule, pl_module)
        device = pl_module.device
        quality.to(device)
        self.prepare_real(datamodule, trainer)
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        n = _share(self.num_samples, rank, world_size)
        quality.reset_fake()
        show = self.progress and rank == 0
        with seeded(self.seed + 7919 * rank, device), _progress(f"samples ({self.num_samples})", n, show) as bar:
            for start in range(0, n, self.batch_size):
                batch = min(self.batch_size, n - start)
                quality.update_fake(pl_module.sample(batch))  # [b, C, H, W], dropped after the update
                bar(batch)
        scores = quality.compute()
        quality.reset_fake()
        self.last_metrics = {f"metrics/{name}": float(value) for name, value in scores.items()}
        self.last_duration_s = time.perf_counter() - started
        return dict(self.last_metrics)

    # ----- hooks --------------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":  # build the extractor now: a missing weights file fails before training, not after
            self._installed = self._installed_for = None  # checked against this fit's data at its first evaluation
            if trainer.datamodule is None:
                raise ValueError("ImageQualityMetrics needs a data module (trainer.fit(model, datamodule=...))")
            self.build(trainer.datamodule, pl_module)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_epochs == 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        scores = self.evaluate(pl_module, trainer=trainer)
        pl_module.log_dict(scores, on_step=False, on_epoch=True, sync_dist=True)  # equal on every rank already
        self._last_evaluated_step = trainer.global_step

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_train_end, not on_fit_end: the model is still on its device and the loggers are still open
        if not self.at_fit_end or self._last_evaluated_step == trainer.global_step:
            return
        scores = self.evaluate(pl_module, trainer=trainer)
        self._last_evaluated_step = trainer.global_step
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(scores, step=trainer.global_step)

    @override
    def state_dict(self) -> dict[str, Any]:
        if self.real_key is None or self.real_stats is None:
            return {}
        return {"real_key": json.dumps(self.real_key, sort_keys=True), "real_stats": dict(self.real_stats)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the checkpoint's real statistics; they are used if their key matches the data at the next evaluation."""
        if "real_key" not in state_dict:
            return
        self.real_key = json.loads(state_dict["real_key"])
        self.real_stats = {name: value for name, value in state_dict["real_stats"].items()}
        self._installed = None


def _value_range(datamodule: Any, pl_module: LightningModule | None) -> tuple[float, float]:
    """The data module's ``value_range``, else the generator's, else (0, 1) with a warning."""
    for owner in (datamodule, getattr(pl_module, "generator", None)):
        found = getattr(owner, "value_range", None)
        if found is not None:
            return float(found[0]), float(found[1])
    rank_zero_warn("ImageQualityMetrics: no value_range on the data module or the generator; assuming [0, 1]")
    return 0.0, 1.0


@contextmanager
def _progress(description: str, total: int, enabled: bool) -> Iterator[Any]:
    """A transient rich progress bar when ``enabled`` and the console is a terminal; yields ``advance(n)``."""
    from rich import get_console
    from rich.errors import LiveError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = get_console()
    if not (enabled and console.is_terminal and not console.is_dumb_terminal):
        yield lambda n: None
        return
    bar = Progress(
        TextColumn(f"[bold]metrics[/bold] {description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    try:
        bar.start()
    except LiveError:  # another live display that cannot nest: go without
        yield lambda n: None
        return
    task = bar.add_task(description, total=total)
    try:
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()
