from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from lightning_gan.turing.report import ErrorRate, Judgement, chance_p_value, summarize, wilson_interval


def test_wilson_interval_of_7_wrong_in_20_by_hand():
    z = 1.959963984540054  # Phi^-1(0.975)
    p, n = 0.35, 20
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)  # (0.35 + 0.096037) / 1.192073
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert centre == pytest.approx(0.37417, abs=1e-5) and half == pytest.approx(0.19298, abs=1e-5)
    low, high = wilson_interval(7, 20)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.1812, 0.5671)


@pytest.mark.parametrize("k, n", [(0, 1), (0, 10), (3, 10), (7, 20), (20, 20), (51, 100), (1, 400)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_agrees_with_scipy(k, n, confidence):
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-9)


@pytest.mark.parametrize("k, n", [(0, 1), (7, 20), (10, 20), (13, 20), (40, 100), (0, 12)])
def test_chance_p_value_is_scipys_exact_two_sided_test(k, n):
    assert chance_p_value(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue, abs=1e-12)


def test_no_judgements_know_nothing():
    e = ErrorRate(0, 0)
    assert math.isnan(e.rate) and e.interval == (0.0, 1.0) and e.as_dict()["error_rate"] is None
    assert e.describe() == "no judgements"


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5)])
def test_impossible_counts_are_refused(k, n):
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(k, n)


def test_summary_groups_by_truth_class_and_session():
    js = [
        *[Judgement("a", "real", "generated", 1)] * 2,  # 2 wrong
        *[Judgement("a", "generated", "generated", 2)] * 3,
        *[Judgement("b", "generated", "real", 2)] * 1,  # 1 wrong
        *[Judgement("b", "real", "real", 1)] * 4,
    ]
    r = summarize(js)
    assert (r.overall.wrong, r.overall.total) == (3, 10)
    assert (r.by_truth["real"].wrong, r.by_truth["real"].total) == (2, 6)
    assert (r.by_truth["generated"].wrong, r.by_truth["generated"].total) == (1, 4)
    assert {c: (e.wrong, e.total) for c, e in r.by_class.items()} == {1: (2, 6), 2: (1, 4)}
    assert {s: (e.wrong, e.total) for s, e in r.by_session.items()} == {"a": (2, 5), "b": (1, 5)}
    text = r.format()
    assert "0.300 (3/10), 95% CI" in text and "class 2: 0.250 (1/4)" in text and "b: 0.200 (1/5)" in text


def test_no_per_class_rates_when_a_judgement_has_no_class():
    """An unconditional GAN's samples have no class: per-class rates would count real images only."""
    r = summarize([Judgement("a", "real", "real", 4), Judgement("a", "generated", "real", None)])
    assert r.by_class == {} and r.overall.total == 2


def test_unknown_answers_are_refused():
    with pytest.raises(ValueError, match="truth and answer"):
        summarize([Judgement("a", "real", "fake")])
