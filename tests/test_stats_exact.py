"""advkit.stats.paired_bootstrap against the exact bootstrap distribution (issue 33).

On n <= 5 paired examples every one of the n^n equally likely resamples can be listed, which gives
the exact bootstrap distribution of the mean difference (in fractions, no rounding). The function's
Monte Carlo answer must agree with it: its nearest-rank 2.5 % and 97.5 % points must lie between the
exact quantiles a few binomial standard errors either side of those levels, and its shifted two-sided
p must be the exact P(|D* - d| >= |d|) within Monte Carlo error, for several seeds.

The inputs are integers, so every resample mean is k / n: the function's floats name exact atoms,
and the ties |D* - d| = |d| (D* = 0 or 2d) are ties in floating point too.
"""

import itertools
import math
from collections import Counter
from fractions import Fraction

import pytest

from advkit.stats import paired_bootstrap

RESAMPLES = 100_000
SEEDS = (0, 1, 2)


def exact_bootstrap(diffs: list[int]) -> dict[Fraction, Fraction]:
    """P(mean of a resample = v) for every v, over all n^n resamples with replacement."""
    n = len(diffs)
    counts = Counter(Fraction(sum(pick), n) for pick in itertools.product(diffs, repeat=n))
    return {v: Fraction(k, n**n) for v, k in sorted(counts.items())}


def quantile(dist: dict[Fraction, Fraction], level: float) -> Fraction:
    """The smallest v with P(D* <= v) >= level: the exact nearest-rank percentile."""
    total = Fraction(0)
    for v, p in dist.items():
        total += p
        if total >= Fraction(level):
            return v
    return max(dist)


def band(dist, level: float, resamples: int) -> tuple[Fraction, Fraction]:
    """The exact quantiles 5 binomial standard errors either side of `level`: where R resamples' nearest-rank
    point can fall (the empirical CDF at any v is within 5 sd of the exact one but for a 1e-6 chance)."""
    eps = 5 * math.sqrt(level * (1 - level) / resamples)
    return quantile(dist, max(level - eps, 0.0)), quantile(dist, min(level + eps, 1.0))


def atom(x: float, n: int) -> Fraction:
    """The resample mean k / n that the float x is (x is fl(k / n))."""
    f = Fraction(x).limit_denominator(n)
    assert float(f) == x, (x, f)
    return f


CASES = [
    # a, b: diffs [3, -1, 0, 2, 4]; one-sided p 0.032, two-sided 0.070
    ([5, 1, 2, 4, 6], [2, 2, 2, 2, 2]),
    # large values that pairing cancels: diffs [4, -1, -1, 2, 6]; an unpaired resample spreads far wider
    ([104, 199, 299, 402, 506], [100, 200, 300, 400, 500]),
    # diffs [7, -3, 0, 1, 2]: p 0.372, interval wide across 0
    ([7, 0, 3, 1, 2], [0, 3, 3, 0, 0]),
    # n = 3, the 27 resamples of the brief: diffs [2, -1, 1]
    ([3, 0, 1], [1, 1, 0]),
]


@pytest.mark.parametrize("a,b", CASES)
def test_bootstrap_agrees_with_the_exact_distribution(a, b):
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    dist = exact_bootstrap(diffs)
    assert sum(dist.values()) == 1 and len(dist) > 3
    observed = Fraction(sum(diffs), n)
    exact_p = sum(p for v, p in dist.items() if abs(v - observed) >= abs(observed))
    lo_band, hi_band = band(dist, 0.025, RESAMPLES), band(dist, 0.975, RESAMPLES)
    # The bands are narrow enough to tell a 95 % interval from a 90 % one (quantiles 0.05 / 0.95) on the
    # n = 5 inputs; with n = 3 each extreme atom holds 1/27 > 2.5 %, so the interval is [min, max] exactly.
    if n == 5:
        assert band(dist, 0.05, RESAMPLES)[0] > lo_band[1] and band(dist, 0.95, RESAMPLES)[1] < hi_band[0]
    else:
        assert lo_band == (min(dist), min(dist)) and hi_band == (max(dist), max(dist))
    for seed in SEEDS:
        r = paired_bootstrap([float(x) for x in a], [float(x) for x in b], resamples=RESAMPLES, seed=seed)
        assert r["n"] == n and atom(r["difference"], n) == observed
        low, high = atom(r["low"], n), atom(r["high"], n)
        assert lo_band[0] <= low <= lo_band[1], (seed, float(low), [float(x) for x in lo_band])
        assert hi_band[0] <= high <= hi_band[1], (seed, float(high), [float(x) for x in hi_band])
        # p = (count + 1) / (R + 1), count ~ Binomial(R, exact p)
        tolerance = 5 * math.sqrt(float(exact_p * (1 - exact_p)) / RESAMPLES) + 2 / RESAMPLES
        assert r["p_value"] == pytest.approx(float(exact_p), abs=tolerance), (seed, r["p_value"], float(exact_p))


def test_exact_distribution_by_hand():
    """The enumeration itself, on two examples: resamples (2,2), (2,-1), (-1,2), (-1,-1)."""
    assert exact_bootstrap([2, -1]) == {Fraction(-1): Fraction(1, 4), Fraction(1, 2): Fraction(1, 2),
                                        Fraction(2): Fraction(1, 4)}
    dist = exact_bootstrap([2, -1, 1])
    assert dist[Fraction(2)] == Fraction(1, 27) and dist[Fraction(2, 3)] == Fraction(6, 27)  # (2,-1,1) in 3! orders
    assert quantile(dist, 0.025) == -1 and quantile(dist, 0.975) == 2
