"""Statistics of a visual Turing test: the human error rate with a Wilson score interval.

Salimans et al. 2016 (section 4, "Assessment of image quality") judge samples by asking human annotators to tell
generated images from real ones; the figure of merit is their error rate, 50 % when the two cannot be told apart.
Each judgement is a Bernoulli trial (wrong or right), so the error rate of n judgements gets a binomial confidence
interval. The Wilson score interval (Wilson 1927) is used, computed with the standard library so the server needs
no scipy:

    p = k / n,  z = Phi^-1(1 - alpha / 2)
    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half-width = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)

Unlike the normal-approximation interval it stays inside [0, 1] and keeps its coverage near 0 % and 100 % errors.
The tests check it against ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

__all__ = ["ErrorRate", "Judgement", "Report", "chance_p_value", "summarize", "wilson_interval"]

ANSWERS = ("real", "generated")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (``(0, 1)`` when ``n == 0``: nothing is known).

    Example:
        >>> low, high = wilson_interval(7, 20)   # 7 wrong of 20
        >>> round(low, 4), round(high, 4)
        (0.1812, 0.5671)
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p, z2 = k / n, z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def chance_p_value(k: int, n: int) -> float:
    """Exact two-sided binomial test of "people answer at chance" (error rate 1/2): ``P(|X - n/2| >= |k - n/2|)``.

    Example:
        >>> round(chance_p_value(7, 20), 4)   # 2 * P(X <= 7), X ~ Binomial(20, 0.5)
        0.2632
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n  # the distribution is symmetric at p = 0.5
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class ErrorRate:
    """``wrong`` of ``total`` judgements, with its Wilson interval and the test against chance.

    Example:
        >>> e = ErrorRate(wrong=7, total=20)
        >>> e.rate, [round(v, 3) for v in e.interval]
        (0.35, [0.181, 0.567])
    """

    wrong: int
    total: int
    confidence: float = 0.95

    @property
    def rate(self) -> float:
        """Share of wrong answers (NaN without judgements)."""
        return self.wrong / self.total if self.total else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.wrong, self.total, self.confidence)

    @property
    def p_chance(self) -> float:
        return chance_p_value(self.wrong, self.total)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        rate = None if self.total == 0 else self.rate  # JSON has no NaN
        return {"wrong": self.wrong, "total": self.total, "error_rate": rate, "ci_low": low, "ci_high": high}

    def describe(self) -> str:
        """``0.350 (7/20), 95% CI [0.181, 0.567]``."""
        if self.total == 0:
            return "no judgements"
        low, high = self.interval
        return f"{self.rate:.3f} ({self.wrong}/{self.total}), {self.confidence:.0%} CI [{low:.3f}, {high:.3f}]"


@dataclass(frozen=True)
class Judgement:
    """One answered trial: who answered, what the image was, what they said.

    ``label`` is the class of the trial's image(s): the true label of real images and the averaged discriminator's
    predicted class of generated ones (K+1 models); ``None`` when unknown (an unconditional GAN's samples, or a grid
    of images of several classes).
    """

    session: str
    truth: str
    answer: str
    label: int | None = None

    @property
    def wrong(self) -> bool:
        return self.answer != self.truth


@dataclass(frozen=True)
class Report:
    """Error rates overall, by truth, by class (only when every judgement has a class) and by session."""

    overall: ErrorRate
    by_truth: dict[str, ErrorRate]
    by_class: dict[int, ErrorRate]
    by_session: dict[str, ErrorRate]
    sessions_in_progress: int = 0
    judgements_in_progress: int = 0
    confidence: float = field(default=0.95)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": f"Wilson score interval, {self.confidence:.0%}",
            "overall": {**self.overall.as_dict(), "p_chance": self.overall.p_chance},
            "by_truth": {k: v.as_dict() for k, v in self.by_truth.items()},
            "by_class": {str(k): v.as_dict() for k, v in self.by_class.items()},
            "by_session": {k: v.as_dict() for k, v in self.by_session.items()},
            "sessions_in_progress": self.sessions_in_progress,
            "judgements_in_progress": self.judgements_in_progress,
        }

    def format(self) -> str:
        """The report as plain text, for the terminal."""
        o = self.overall
        lines = [
            f"Visual Turing test: {o.total} judgement(s) from {len(self.by_session)} session(s); not counted: "
            f"{self.sessions_in_progress} session(s) in progress ({self.judgements_in_progress} judgement(s))",
            f"human error rate: {o.describe()} (Wilson score interval)",
        ]
        if o.total:
            lines.append(f"exact binomial test against chance (error rate 0.5): p = {o.p_chance:.4g}")
        lines += [
            f"  real images called generated: {self.by_truth['real'].describe()}",
            f"  generated images called real: {self.by_truth['generated'].describe()}",
        ]
        if self.by_class:
            lines.append("per class (real: true label; generated: the averaged discriminator's predicted class):")
            lines += [f"  class {c}: {e.describe()}" for c, e in sorted(self.by_class.items())]
        if self.by_session:
            lines.append("per session:")
            lines += [f"  {s}: {e.describe()}" for s, e in self.by_session.items()]
        return "\n".join(lines)


def summarize(
    judgements: Iterable[Judgement],
    sessions_in_progress: int = 0,
    judgements_in_progress: int = 0,
    confidence: float = 0.95,
) -> Report:
    """Count the wrong answers of ``judgements`` overall, by truth, by class and by session.

    Example:
        >>> js = [Judgement("a", "real", "real", 1), Judgement("a", "generated", "real", 1),
        ...       Judgement("b", "generated", "generated", 2)]
        >>> r = summarize(js)
        >>> r.overall.wrong, r.overall.total, r.by_class[1].rate, r.by_session["b"].rate
        (1, 3, 0.5, 0.0)
    """
    judgements = list(judgements)
    for j in judgements:
        if j.truth not in ANSWERS or j.answer not in ANSWERS:
            raise ValueError(f"truth and answer must be one of {ANSWERS}, got {j.truth!r} and {j.answer!r}")

    def rate(group: list[Judgement]) -> ErrorRate:
        return ErrorRate(sum(j.wrong for j in group), len(group), confidence)

    def grouped(key: Any) -> dict[Any, list[Judgement]]:
        groups: dict[Any, list[Judgement]] = defaultdict(list)
        for j in judgements:
            groups[key(j)].append(j)
        return groups

    labelled = bool(judgements) and all(j.label is not None for j in judgements)
    by_truth = grouped(lambda j: j.truth)
    return Report(
        overall=rate(judgements),
        by_truth={t: rate(by_truth.get(t, [])) for t in ANSWERS},
        by_class={c: rate(g) for c, g in sorted(grouped(lambda j: j.label).items())} if labelled else {},
        by_session={s: rate(g) for s, g in grouped(lambda j: j.session).items()},
        sessions_in_progress=sessions_in_progress,
        judgements_in_progress=judgements_in_progress,
        confidence=confidence,
    )
