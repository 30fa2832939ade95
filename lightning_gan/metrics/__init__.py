"""Sample-quality metrics: feature extractors (InceptionV3, the domain classifier), the mode score."""

from lightning_gan.metrics.domain_classifier import DigitClassifier, load_domain_classifier
from lightning_gan.metrics.extractors import (
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_URL,
    DomainExtractor,
    FeatureExtractor,
    InceptionExtractor,
    build_extractor,
    default_inception_weights_path,
    weights_digest,
)
from lightning_gan.metrics.mode_score import ModeScore, mode_score

__all__ = [
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_URL",
    "DigitClassifier",
    "DomainExtractor",
    "FeatureExtractor",
    "InceptionExtractor",
    "ModeScore",
    "build_extractor",
    "default_inception_weights_path",
    "load_domain_classifier",
    "mode_score",
    "weights_digest",
]
