"""A digit classifier as the feature network of Inception Score and FID on 28x28 grayscale images.

Inception features of 28x28 digits upsampled to 299x299 mean little, so sample quality on MNIST is measured with a
classifier of the domain itself: its logits give the Inception Score (Salimans et al. 2016, "Improved Techniques for
Training GANs", Section 4) and its penultimate features the Frechet distance (Heusel et al. 2017, eq. 6), as
Inception's do for natural images. The network is the small VGG-style CNN of Keras' ``mnist_cnn`` example (two
conv-conv-pool blocks, a 128-unit feature layer, dropout, 10 logits). Its MNIST weights ship with the package
(``weights/mnist_classifier.pt``, 99.38 % test accuracy, see ``weights/mnist_classifier.json``); they are trained by
``benchmarks/train_domain_classifier.py``, which also trains FashionMNIST weights where that data is at hand.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["DOMAIN_WEIGHTS", "WEIGHTS_DIR", "DigitClassifier", "default_weights_path", "load_domain_classifier"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Folder of the shipped weights files, inside the installed package."""

DOMAIN_WEIGHTS: dict[str, str] = {
    "mnist": "mnist_classifier.pt",  # shipped
    "fashion_mnist": "fashion_mnist_classifier.pt",  # not shipped: train it with the benchmark script
}
"""Weights file name in :data:`WEIGHTS_DIR` of each dataset :func:`load_domain_classifier` knows."""

TRAIN_SCRIPT = "benchmarks/train_domain_classifier.py"


class DigitClassifier(nn.Module):
    """A small CNN classifying [B, 1, 28, 28] grayscale images with pixel values in [0, 1] into 10 classes.

    conv 3x3 32 -> conv 32 -> max-pool -> conv 64 -> conv 64 -> max-pool -> linear 128 (the features) -> dropout ->
    linear 10 (the logits); ReLU after every conv and after the feature layer, no padding (28 -> 26 -> 24 -> 12 ->
    10 -> 8 -> 4), about 197,000 parameters (0.8 MB in float32). Inputs must be in [0, 1] as the training images were
    (the bytes / 255), not normalised to [-1, 1]: map a generator's output with ``(x + 1) / 2`` first.

    Args:
        num_classes: number of logits.
        num_features: width of the penultimate (feature) layer.
        dropout: dropout probability between the features and the logits (training only).

    Example:
        >>> net = DigitClassifier().eval()
        >>> x = torch.rand(4, 1, 28, 28)
        >>> net(x).shape, net.features(x).shape
        (torch.Size([4, 10]), torch.Size([4, 128]))
        >>> torch.allclose(net(x), net.head(net.features(x)))
        True
    """

    def __init__(self, num_classes: int = 10, num_features: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 32, 3),  # [B, 32, 26, 26]
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),  # [B, 32, 24, 24]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [B, 32, 12, 12]
            nn.Conv2d(32, 64, 3),  # [B, 64, 10, 10]
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),  # [B, 64, 8, 8]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [B, 64, 4, 4]
            nn.Flatten(),  # [B, 1024]
            nn.Linear(64 * 4 * 4, num_features),
            nn.ReLU(),  # [B, F]: the FID features
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))  # [B, K]

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``[B, num_features]`` (after the ReLU) of images ``x`` [B, 1, 28, 28] in [0, 1].

        Raises:
            ValueError: ``x`` is not [B, 1, 28, 28].
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(
                f"DigitClassifier expects images [B, 1, 28, 28] with pixel values in [0, 1], got {list(x.shape)}"
            )
        return self.trunk(x)

    def logits_from_features(self, features: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` from :meth:`features`, so both come from one pass through the trunk."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` of images ``x`` [B, 1, 28, 28] in [0, 1]."""
        return self.head(self.features(x))


def default_weights_path(dataset: str = "mnist") -> Path:
    """Where the weights of ``dataset``'s classifier are (shipped) or go (trained by the benchmark script).

    Raises:
        ValueError: ``dataset`` is not a key of :data:`DOMAIN_WEIGHTS`; the message lists the keys.

    Example:
        >>> default_weights_path("mnist").name
        'mnist_classifier.pt'
    """
    if dataset not in DOMAIN_WEIGHTS:
        raise ValueError(f"no domain classifier for dataset {dataset!r}; available: {', '.join(DOMAIN_WEIGHTS)}")
    return WEIGHTS_DIR / DOMAIN_WEIGHTS[dataset]


def load_domain_classifier(dataset: str = "mnist", weights_path: str | Path | None = None) -> DigitClassifier:
    """The trained :class:`DigitClassifier` of ``dataset``, frozen: eval mode, ``requires_grad`` off, on the CPU.

    Args:
        dataset: a key of :data:`DOMAIN_WEIGHTS` (``"mnist"``, ``"fashion_mnist"``).
        weights_path: a ``state_dict`` file of your own (e.g. written by ``benchmarks/train_domain_classifier.py``);
            by default the packaged ``weights/<dataset>_classifier.pt``. Read with ``weights_only=True``.

    Returns:
        The classifier; move it with ``.to(device)``.

    Raises:
        ValueError: unknown ``dataset``; the message lists the available ones.
        FileNotFoundError: no weights file; the message names it and the command that trains it.

    Example:
        >>> net = load_domain_classifier("mnist")
        >>> net.training, any(p.requires_grad for p in net.parameters())
        (False, False)
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    default = default_weights_path(dataset)
    path = Path(weights_path) if weights_path is not None else default
    if not path.is_file():
        raise FileNotFoundError(
            f"weights of the {dataset} domain classifier not found: {path}. Only the MNIST weights ship with "
            f"lightning_gan; train these with `python {TRAIN_SCRIPT} --dataset {dataset} --data-dir <dir holding "
            f"the {dataset} files>`, which writes {default}, or pass your own state_dict file as weights_path"
        )
    net = DigitClassifier()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.requires_grad_(False)
    return net.eval()
