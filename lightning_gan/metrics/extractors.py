"""Feature extractors for image-quality metrics: one network gives features (FID, KID) and logits (IS, mode score).

Every extractor is a :class:`FeatureExtractor`: ``prepare(images, value_range)`` turns a batch of images in the data's
pixel range into the network's input, and ``forward(x)`` returns ``(features [B, F], logits [B, K])`` from ONE pass,
so FID, KID, IS and the mode score can share it.

- :class:`InceptionExtractor`: InceptionV3 of torch-fidelity (the TF-ported FID network, Heusel et al. 2017) through
  torchmetrics' ``NoTrainInceptionV3``: pool features (2048) and unbiased logits (1008), the inputs torchmetrics'
  FID and IS use by default. Its weights are read from a local file; nothing is downloaded unless asked to.
- :class:`DomainExtractor`: a classifier trained on the data's own domain, the usual substitute for Inception on
  MNIST-like images (Inception features of 28x28 digits upsampled to 299x299 mean little). By default the shipped
  MNIST digit classifier (:func:`lightning_gan.metrics.load_domain_classifier`).

:func:`build_extractor` picks one by name; ``"auto"`` means the domain classifier for 1x28x28 images and Inception
otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_URL",
    "DomainExtractor",
    "FeatureExtractor",
    "InceptionExtractor",
    "build_extractor",
    "default_inception_weights_path",
    "to_unit_range",
    "weights_digest",
]

# torch-fidelity's InceptionV3 weights (converted from the TF FID graph), the file torchmetrics would download
INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILENAME}"
)


def to_unit_range(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map ``images`` linearly from ``value_range`` ``(lo, hi)`` to [0, 1], clamped; float32.

    Example:
        >>> to_unit_range(torch.tensor([-1.0, 0.0, 1.0, 3.0]), (-1.0, 1.0))
        tensor([0.0000, 0.5000, 1.0000, 1.0000])
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {tuple(value_range)}")
    x = images.float()
    if (lo, hi) != (0.0, 1.0):
        x = (x - lo) / (hi - lo)
    return x.clamp(0.0, 1.0)


def weights_digest(module: nn.Module, length: int = 8) -> str:
    """The first ``length`` hex digits of a SHA-256 over ``module``'s state dict (names, shapes, dtypes, values).

    Part of an extractor's name, so that statistics cached with other weights are never taken for this network's.

    Example:
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> weights_digest(a) == weights_digest(b), len(weights_digest(a))
        (True, 8)
    """
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


class FeatureExtractor(nn.Module):
    """Base class: a frozen network giving features and logits of a batch of images in one forward pass.

    Subclasses set ``name`` (a stable identifier, used in cache keys, that changes with the weights),
    ``num_features`` (F) and ``num_classes`` (K), and implement ``forward(x) -> (features [B, F], logits [B, K])`` of a
    prepared batch (``nn.Module`` refuses to run without it). The network never trains:
    ``train()`` keeps every submodule in eval mode and no parameter requires gradients.
    """

    name: str
    num_features: int
    num_classes: int

    def prepare(self, images: Tensor, value_range: tuple[float, float]) -> Tensor:
        """Turn generated or real ``images`` ``[B, C, H, W]`` in ``value_range`` into the network's input.

        The default maps them to float [0, 1] (clamped: generators overshoot a little).
        """
        return to_unit_range(images, value_range)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Always eval mode: batch norm and dropout must behave identically for real and generated images."""
        return super().train(False)

    def freeze(self) -> FeatureExtractor:
        """Eval mode and no gradients; returns ``self``."""
        self.requires_grad_(False)
        return self.eval()


class DomainExtractor(FeatureExtractor):
    """A classifier of the data's own domain as extractor: its penultimate features and its logits.

    Works with any module having ``features(x) -> [B, F]`` and ``forward(x) -> [B, K]`` and the attributes
    ``num_features`` and ``num_classes``, e.g. :class:`lightning_gan.metrics.DigitClassifier`. When it also has
    ``logits_from_features(features) -> [B, K]`` (or a ``head`` module such that ``forward(x) = head(features(x))``),
    the logits are computed from the features and the trunk runs once; otherwise twice. Inputs are images in [0, 1].

    Args:
        classifier: the trained classifier.
        name: name in cache keys; the digest of the classifier's weights is appended.

    Example:
        >>> class Tiny(nn.Module):
        ...     num_features, num_classes = 4, 3
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.trunk, self.head = nn.Sequential(nn.Flatten(), nn.Linear(784, 4)), nn.Linear(4, 3)
        ...     def features(self, x):
        ...         return self.trunk(x)
        ...     def forward(self, x):
        ...         return self.head(self.features(x))
        >>> extractor = DomainExtractor(Tiny(), name="tiny")
        >>> x = extractor.prepare(torch.zeros(2, 1, 28, 28), value_range=(-1.0, 1.0))  # -> 0.5 everywhere
        >>> features, logits = extractor(x)
        >>> features.shape, logits.shape, extractor.name.startswith("tiny@")
        (torch.Size([2, 4]), torch.Size([2, 3]), True)
    """

    def __init__(self, classifier: nn.Module, name: str = "domain") -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = int(classifier.num_features)
        self.num_classes = int(classifier.num_classes)
        self.freeze()
        self.name = f"{name}@{weights_digest(classifier)}"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.classifier.features(x)  # [B, F]
        if hasattr(self.classifier, "logits_from_features"):
            return features, self.classifier.logits_from_features(features)  # [B, K]
        head = getattr(self.classifier, "head", None)
        if isinstance(head, nn.Module):
            return features, head(features)  # [B, K]
        return features, self.classifier(x)  # [B, K], a second pass through the trunk


def default_inception_weights_path() -> Path:
    """Where torch hub (and so torch-fidelity and torchmetrics) keeps the Inception weights once downloaded.

    ``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``, i.e. by default
    ``~/.cache/torch/hub/checkpoints/...`` (``$TORCH_HOME`` moves it).
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME


def _missing_weights_message(searched: Sequence[Path]) -> str:
    where = ", ".join(str(p) for p in searched)
    return (
        f"InceptionV3 weights not found (looked for {where}). Download {INCEPTION_WEIGHTS_FILENAME} from "
        f"{INCEPTION_WEIGHTS_URL} and pass its path as weights_path (ImageQualityMetrics: inception_weights), or put "
        f"it at {default_inception_weights_path()}; or pass download=True to let torch hub fetch it. Nothing is "
        "downloaded otherwise. For MNIST-like data use the domain classifier instead (extractor='domain')"
    )


class InceptionExtractor(FeatureExtractor):
    """InceptionV3 of the FID reference (torch-fidelity weights) via torchmetrics: pool3 features and logits.

    One pass gives the 2048-d pool features (FID, KID; torchmetrics' ``FrechetInceptionDistance(feature=2048)``)
    and the 1008 unbiased logits (IS; torchmetrics' ``InceptionScore()`` default ``"logits_unbiased"``).

    Input convention (torchmetrics' ``normalize=True``): images are mapped from ``value_range`` to [0, 1], grayscale is
    repeated to 3 channels and pixels become uint8 as ``(x * 255).byte()``; the network resizes them to 299x299.

    Resizing (``antialias``): torchmetrics >= 1.8 resizes with ``torch.nn.functional.interpolate(mode="bilinear",
    antialias=True)`` by default. The TF FID reference (and torch-fidelity) uses TF1's bilinear resize without
    antialiasing; ``antialias=False`` reproduces it (``interpolate_bilinear_2d_like_tensorflow1x``), which is what
    FIDs published with the TF code are comparable to. Upsampling small images (28x28, 32x32) is affected less than
    downsampling large ones, but the two modes give different numbers: report which one you used. The mode is part
    of :attr:`name`, so cached real statistics never mix them.

    Weights: ``weights_path`` if given; else the torch hub cache (:func:`default_inception_weights_path`) if the file
    is there; else, with ``download=True``, torch hub downloads :data:`INCEPTION_WEIGHTS_URL` into that cache; else a
    ``FileNotFoundError`` naming the file to provide. Nothing is downloaded unless ``download=True``.

    Args:
        weights_path: local copy of ``weights-inception-2015-12-05-6726825d.pth`` (a plain state dict).
        antialias: resize with antialiasing (torchmetrics' default) instead of the TF reference's resize.
        download: allow downloading the weights when no local file is found.

    Example:
        Needs torch-fidelity and the weights file, hence skipped by doctest:

        >>> extractor = InceptionExtractor("weights-inception-2015-12-05-6726825d.pth")  # doctest: +SKIP
        >>> x = extractor.prepare(torch.rand(4, 1, 28, 28), value_range=(0.0, 1.0))  # doctest: +SKIP
        >>> [t.shape for t in extractor(x)]  # doctest: +SKIP
        [torch.Size([4, 2048]), torch.Size([4, 1008])]
    """

    num_features = 2048
    num_classes = 1008

    def __init__(self, weights_path: str | Path | None = None, antialias: bool = True, download: bool = False) -> None:
        super().__init__()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as err:  # pragma: no cover - torchmetrics is a dependency
            raise ImportError("InceptionExtractor needs torchmetrics >= 1.8") from err
        if not _TORCH_FIDELITY_AVAILABLE:
            raise ModuleNotFoundError(
                "InceptionExtractor needs torch-fidelity: pip install torch-fidelity (or lightning-gan[inception])"
            )
        path = self.resolve_weights(weights_path, download)
        self.antialias = antialias
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(path),
            antialias=antialias,
        )
        self.freeze()
        resize = "antialias" if antialias else "tf1-bilinear"
        self.name = f"inception-v3-compat-{resize}@{weights_digest(self.net)}"

    @staticmethod
    def resolve_weights(weights_path: str | Path | None, download: bool = False) -> Path:
        """The weights file to load: ``weights_path``, else the torch hub cache, else a download if allowed."""
        if weights_path is not None:
            path = Path(weights_path).expanduser()
            if not path.is_file():
                raise FileNotFoundError(_missing_weights_message([path]))
            return path
        cached = default_inception_weights_path()
        if cached.is_file():
            return cached
        if not download:
            raise FileNotFoundError(_missing_weights_message([cached]))
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_WEIGHTS_URL, str(cached), progress=True)
        return cached

    def prepare(self, images: Tensor, value_range: tuple[float, float]) -> Tensor:
        x = to_unit_range(images, value_range)  # [B, C, H, W] in [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grayscale -> RGB
        if x.shape[1] != 3:
            raise ValueError(f"InceptionV3 takes 1- or 3-channel images, got {list(images.shape)}")
        return (x * 255).byte()  # torchmetrics' normalize=True conversion (truncation, as FID/IS do)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # torchmetrics' copy of torch-fidelity's forward, with its antialias switch; returns the requested features
        features, logits = self.net._torch_fidelity_forward(x)
        return features.reshape(len(x), -1), logits.reshape(len(x), -1)  # [B, 2048], [B, 1008]


def _domain_dataset(dataset_name: str | None) -> str:
    """The domain classifier's dataset key for a data module's ``dataset_name`` (``MNIST`` -> ``mnist``)."""
    key = re.sub(r"[^a-z0-9]+", "_", (dataset_name or "mnist").lower()).strip("_")
    return "fashion_mnist" if key.replace("_", "") == "fashionmnist" else "mnist"


def build_extractor(
    extractor: str | FeatureExtractor = "auto",
    image_shape: Sequence[int] | None = None,
    dataset_name: str | None = None,
    inception_weights: str | Path | None = None,
    antialias: bool = True,
    download: bool = False,
    domain_weights: str | Path | None = None,
) -> FeatureExtractor:
    """An extractor by name: ``"auto"``, ``"domain"`` or ``"inception"``; an instance is returned as it is.

    Args:
        extractor: ``"auto"`` (the domain classifier for 1x28x28 images, Inception otherwise), ``"domain"``,
            ``"inception"``, or a :class:`FeatureExtractor`.
        image_shape: ``(C, H, W)`` of the data, for ``"auto"``.
        dataset_name: the data module's ``dataset_name``; picks the domain classifier (FashionMNIST or MNIST).
        inception_weights: local InceptionV3 weights file (see :class:`InceptionExtractor`).
        antialias: Inception's resize mode (see :class:`InceptionExtractor`).
        download: allow downloading the Inception weights.
        domain_weights: weights file of the domain classifier instead of the shipped one.

    Example:
        >>> build_extractor("auto", image_shape=(1, 28, 28), dataset_name="MNIST").name.startswith("mnist_classifier@")
        True
    """
    if isinstance(extractor, FeatureExtractor):
        return extractor
    if extractor == "auto":
        extractor = "domain" if image_shape is not None and tuple(image_shape) == (1, 28, 28) else "inception"
    if extractor == "inception":
        return InceptionExtractor(inception_weights, antialias=antialias, download=download)
    if extractor == "domain":
        from lightning_gan.metrics.domain_classifier import load_domain_classifier

        dataset = _domain_dataset(dataset_name)
        return DomainExtractor(load_domain_classifier(dataset, weights_path=domain_weights), f"{dataset}_classifier")
    raise ValueError(f"extractor must be 'auto', 'domain', 'inception' or a FeatureExtractor, got {extractor!r}")
