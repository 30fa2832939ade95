"""A visual Turing test (Salimans et al. 2016, section 4): people judge real vs generated images on a local page.

``python -m lightning_gan turing --ckpt RUN.ckpt`` serves it (:mod:`lightning_gan.turing.cli`). The pieces, from the
bottom up: :mod:`~lightning_gan.turing.report` (error rates, Wilson intervals), :mod:`~lightning_gan.turing.store`
(SQLite), :mod:`~lightning_gan.turing.images` (the pool, metadata-free PNGs), :mod:`~lightning_gan.turing.checkpoint`
(model and real data), :mod:`~lightning_gan.turing.app` (FastAPI).
"""

from lightning_gan.turing.report import ErrorRate, Judgement, Report, chance_p_value, summarize, wilson_interval
from lightning_gan.turing.store import AlreadyAnswered, PoolImage, Progress, Trial, TuringStore, UnknownId

__all__ = [
    "AlreadyAnswered",
    "ErrorRate",
    "Judgement",
    "PoolImage",
    "Progress",
    "Report",
    "Trial",
    "TuringStore",
    "UnknownId",
    "chance_p_value",
    "summarize",
    "wilson_interval",
]
