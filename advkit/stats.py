"""Small-sample statistics for the paper tables, in plain Python (math and random only).

Which test for which number (Dror et al. 2018, "The Hitchhiker's Guide to Testing
Statistical Significance in NLP"):

- `wilson`, `fmt_rate`: a rate (accuracy, attack success, ASR) on n examples. The Wilson
  score interval (Wilson 1927) stays inside [0, 1] and keeps its coverage near 0% and 100%,
  where the normal (Wald) interval collapses to a width of zero.
- `t_interval`: a mean over a few seeds; Student-t with df = n - 1, because with 3-5 seeds
  the normal quantile would understate the spread badly (t_{0.975,4} = 2.776, not 1.96).
- `mcnemar`: two predictors right/wrong on the SAME examples (McNemar 1947). Only the
  discordant pairs carry information; the exact binomial form is used because they are few.
- `paired_bootstrap`: any per-example metric on the same examples (success indicators,
  perturbation ratios, query counts) where no closed-form test fits (Efron & Tibshirani
  1993, "An Introduction to the Bootstrap").
- `mark`: the asterisk that flags a difference at p < 0.05 in a table cell (before correction).
- `holm`, `verdict`, `interval_verdict`, `Claim`, `Family`: the claims one table judges. A table
  that tests many claims at p < 0.05 finds some by chance, so the claims' p-values are adjusted
  together by Holm's step-down procedure (Holm 1979, "A simple sequentially rejective multiple test
  procedure"), which controls the family-wise error rate with no assumption on how the tests
  depend on each other (two attacks on the same examples are not independent). Every table says
  "reproduced", "contradicted" or "undecided" through `Family` and nowhere else.
- `fmt_interval`: every interval a table prints, "[low, high]".
- `auroc`: how well a score separates two groups (a backdoor defence's suspicion of triggered vs
  clean inputs): the Mann-Whitney U over n_pos * n_neg, exact from average ranks, ties counting 1/2.
"""

import math
import random
from typing import NamedTuple

Z95 = 1.959963984540054  # standard normal quantile at 0.975


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple:
    """Wilson score interval for successes/n; (None, None) when n == 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (None, None)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # The bounds are exactly 0 and 1 at the edges; rounding alone would give +-1e-17 there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df: the finite series of
    Abramowitz & Stegun 26.7.3, exact up to rounding (no table to mistype)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:  # odd: 2/pi * (theta + sin*cos*(1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 0.0  # even: sin * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return s * total


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with df degrees of freedom (two-sided 95%)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df > 300:
        # Cornish-Fisher expansion (A&S 26.7.5): error far below 1e-9 here, and the exact
        # series would cost O(df) per step.
        x, v = Z95, float(df)
        g1 = (x**3 + x) / 4
        g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
        g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
        g4 = (79 * x**9 + 776 * x**7 + 1482 * x**5 - 1920 * x**3 - 945 * x) / 92160
        return x + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4
    lo, hi = 0.0, 16.0  # t_{0.975,1} = 12.71 is the largest; P(|T| <= t) rises with t
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided(mid, df) < 0.95 else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: list) -> tuple:
    """(mean, half-width of the 95% Student-t interval); half-width None for fewer than
    two values, (None, None) for none."""
    n = len(values)
    if n == 0:
        return (None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return (mean, None)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))  # sample std
    return (mean, t975(n - 1) * sd / math.sqrt(n))


def paired_t(a: list, b: list) -> dict:
    """b - a paired by position (e.g. two methods' accuracies on the same seeds): the mean difference,
    its 95 % Student-t half-width, and the two-sided p of the paired t-test (None below two pairs;
    with no spread, p is 1.0 for a zero difference and 0.0 for any other)."""
    if len(a) != len(b):
        raise ValueError(f"paired_t needs pairs, got {len(a)} and {len(b)} values")
    d = [y - x for x, y in zip(a, b)]
    mean, half = t_interval(d)
    n = len(d)
    if half is None:
        return {"mean": mean, "half_width": None, "p_value": None, "n": n}
    se = half / t975(n - 1)
    if se == 0:
        return {"mean": mean, "half_width": 0.0, "p_value": 1.0 if mean == 0 else 0.0, "n": n}
    return {"mean": mean, "half_width": half, "p_value": 1 - _t_two_sided(abs(mean) / se, n - 1), "n": n}


def mcnemar(a_correct: list, b_correct: list) -> dict:
    """Exact McNemar test. n: paired examples; a_only: a right and b wrong (b01);
    b_only: a wrong and b right (b10); p_value: exact two-sided binomial p."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"lists differ in length: {len(a_correct)} vs {len(b_correct)}")
    a_only = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    m = a_only + b_only
    # Integer sum over 2**m in one true division: exact-then-rounded, no float underflow.
    tail = sum(math.comb(m, k) for k in range(min(a_only, b_only) + 1))
    p = min(1.0, 2 * tail / 2**m) if m else 1.0
    return {"n": len(a_correct), "a_only": a_only, "b_only": b_only, "p_value": p}


def paired_bootstrap(a: list, b: list, resamples: int = 10000, seed: int = 0) -> dict:
    """Paired bootstrap of mean(a) - mean(b) over the same examples: observed difference,
    95% percentile interval and two-sided p (shifted method). Cost O(resamples * n)."""
    if len(a) != len(b):
        raise ValueError(f"lists differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("paired_bootstrap needs at least one example")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if any(x is None for x in a) or any(y is None for y in b):
        raise ValueError("None entries are not allowed; pass aligned values")
    n = len(a)
    diffs = [x - y for x, y in zip(a, b)]  # resampling differences keeps the pairing
    observed = math.fsum(diffs) / n
    rng = random.Random(seed)
    boot = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    low = boot[max(0, math.ceil(0.025 * resamples) - 1)]  # nearest-rank percentiles
    high = boot[max(0, math.ceil(0.975 * resamples) - 1)]
    # Centring the bootstrap distribution at zero imitates the null; the +1s keep p > 0.
    count = sum(1 for d in boot if abs(d - observed) >= abs(observed))
    p = (count + 1) / (resamples + 1)
    return {"n": n, "difference": observed, "low": low, "high": high, "p_value": p}


def stratified_paired(strata: list, resamples: int = 10000, seed: int = 0) -> dict:
    """b vs a on paired 0/1 outcomes in several strata (e.g. seeds, each its own models on the same
    examples), pooled: the difference mean(b) - mean(a) over every pair, a stratified bootstrap 95 %
    interval (pairs resampled within each stratum, so each seed keeps its weight), and the exact p of
    McNemar's test on the discordant pairs summed over strata: for 1:1 matched pairs that is the
    Cochran-Mantel-Haenszel test (each pair a stratum of its own), valid whatever the strata's rates.
    strata: [(a_correct, b_correct), ...], each pair of lists aligned by example."""
    if not strata:
        raise ValueError("stratified_paired needs at least one stratum")
    diffs = []
    for a, b in strata:
        if len(a) != len(b) or not a:
            raise ValueError(f"each stratum needs aligned, non-empty lists, got {len(a)} and {len(b)}")
        diffs.append([float(y) - float(x) for x, y in zip(a, b)])
    n = sum(len(d) for d in diffs)
    observed = math.fsum(math.fsum(d) for d in diffs) / n
    rng = random.Random(seed)
    boot = sorted(sum(sum(rng.choices(d, k=len(d))) for d in diffs) / n for _ in range(resamples))
    low = boot[max(0, math.ceil(0.025 * resamples) - 1)]
    high = boot[max(0, math.ceil(0.975 * resamples) - 1)]
    pooled = mcnemar([x for a, _ in strata for x in a], [y for _, b in strata for y in b])
    return {"n": n, "strata": len(strata), "difference": observed, "low": low, "high": high,
            "p_value": pooled["p_value"], "a_only": pooled["a_only"], "b_only": pooled["b_only"]}


def auroc(positives: list, negatives: list) -> float:
    """P(a random positive scores above a random negative) + 1/2 P(a tie): the area under the ROC
    curve, exactly, as Mann-Whitney's U / (n_pos * n_neg) with average ranks for ties (no curve
    sampled). 1.0: every positive above every negative; 0.0: the inverse; 0.5: no separation."""
    if not positives or not negatives:
        raise ValueError(f"AUROC needs both groups, got {len(positives)} positives and {len(negatives)} negatives")
    pooled = sorted([(float(x), 1) for x in positives] + [(float(x), 0) for x in negatives])
    rank_sum, i = 0.0, 0
    while i < len(pooled):  # a run of equal scores shares the mean of its ranks i+1..j
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        rank_sum += (i + 1 + j) / 2 * sum(flag for _, flag in pooled[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def mark(p_value, alpha: float = 0.05) -> str:
    """"*" when p_value < alpha, else "" (also for a missing p-value)."""
    return "*" if p_value is not None and p_value < alpha else ""


def fmt_interval(low, high, scale: float = 100, spec: str = ".1f") -> str:
    """An interval as every table prints it, "[low, high]": each bound times `scale` (100: a rate in
    percent; 1: as it is) in the format `spec` (".1f"; "+.1f" for a signed difference; "g" for ranks).
    "" when a bound is missing."""
    if low is None or high is None:
        return ""
    return f"[{format(scale * low, spec)}, {format(scale * high, spec)}]"


def fmt_rate(successes: int, n: int, digits: int = 1) -> str:
    """A rate in percent with its Wilson interval, e.g. "81.0 [75.0, 85.8] (n=200)"."""
    if n == 0:
        return "n/a (n=0)"
    return f"{100 * successes / n:.{digits}f} {fmt_interval(*wilson(successes, n), spec=f'.{digits}f')} (n={n})"


# --- the claims of one table -------------------------------------------------------------

REPRODUCED, CONTRADICTED, UNDECIDED = "reproduced", "contradicted", "undecided"


def holm(p_values: list) -> list:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given.

    With the m p-values sorted p_(1) <= ... <= p_(m), the adjusted p_(i) is
    max_{j <= i} min(1, (m - j + 1) p_(j)): monotone in the raw p (ties get the same value) and
    capped at 1. Rejecting where the adjusted p < alpha is Holm's procedure at family-wise level
    alpha. None entries (a claim without a p-value) pass through as None and do not count in m."""
    for p in p_values:
        if p is not None and not 0 <= p <= 1:  # also NaN
            raise ValueError(f"p-values must lie in [0, 1], got {p}")
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(ranked)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(p_adjusted, effect, alpha: float = 0.05) -> str:
    """A claim judged by its (multiplicity-adjusted) p-value and its effect, signed so that > 0 is
    the direction the paper claims: reproduced (p < alpha, effect > 0), contradicted (p < alpha,
    effect < 0), otherwise undecided (at this n), also without a p-value or an effect."""
    if p_adjusted is None or effect is None or not p_adjusted < alpha or effect == 0:
        return UNDECIDED
    return REPRODUCED if effect > 0 else CONTRADICTED


def interval_verdict(mine: tuple, theirs: tuple) -> str:
    """A claim "mine is higher than theirs" judged by two 95 % intervals alone, where no test pairs
    them (different examples): reproduced when mine lies wholly above theirs, contradicted when wholly
    below, undecided when they overlap or a bound is missing. Weaker than a test (two intervals can
    overlap while the difference is significant), and outside any Holm family: use a p-value wherever
    one exists."""
    if None in (*mine, *theirs):
        return UNDECIDED
    if mine[0] > theirs[1]:
        return REPRODUCED
    return CONTRADICTED if mine[1] < theirs[0] else UNDECIDED


class Claim(NamedTuple):
    """One claim a table judges. p: its raw two-sided p-value (None: no test; then `intervals`, if
    given, judges it by `interval_verdict`); effect: the estimate, signed so that > 0 is the claimed
    direction; evidence: the estimate with its interval as the table words it (`fmt_interval`);
    intervals: (mine, theirs), the two 95 % intervals of a claim without a p-value."""
    name: str
    p: float | None
    effect: float | None = None
    evidence: str = ""
    intervals: tuple | None = None


class Family:
    """The claims of one table, judged together: Holm (`holm`) over those with a p-value, then
    `verdict` on each adjusted p; a claim without one is judged by its two intervals, outside the
    family, and says so."""

    def __init__(self, claims: list, alpha: float = 0.05):
        self.claims, self.alpha = list(claims), alpha
        self.adjusted = holm([c.p for c in self.claims])
        self.verdicts = [verdict(adj, c.effect, alpha) if c.p is not None
                         else interval_verdict(*c.intervals) if c.intervals else UNDECIDED
                         for c, adj in zip(self.claims, self.adjusted)]

    def __len__(self) -> int:
        return sum(c.p is not None for c in self.claims)

    def line(self, i: int) -> str:
        """Claim i as a list item: name, verdict, evidence, raw p and Holm-adjusted p."""
        c, adj, v = self.claims[i], self.adjusted[i], self.verdicts[i]
        if c.p is not None:
            test = f"p={c.p:.3g}, Holm-adjusted p={adj:.3g}"
        elif c.intervals:
            apart = "overlap" if v == UNDECIDED else "lie apart"
            test = f"no p-value: judged by the two 95 % intervals alone, which {apart}; not in the Holm family"
        else:
            test = "nothing to test"
        return f"- {c.name}: **{v}** ({c.evidence + '; ' if c.evidence else ''}{test})."

    def lines(self) -> list[str]:
        return [self.line(i) for i in range(len(self.claims))]

    def note(self) -> str:
        """What the family is and how its verdicts are reached, for the table's text."""
        without = len(self.claims) - len(self)
        return (f"Multiplicity: the family is the {len(self)} claim{'s' if len(self) != 1 else ''} below with a "
                f"p-value; Holm's step-down procedure (Holm 1979) adjusts their p-values together, and each line "
                f"gives its raw p and its Holm-adjusted p. Reproduced: adjusted p < {self.alpha:g} with the effect "
                f"in the claimed direction; contradicted: adjusted p < {self.alpha:g} the other way; otherwise "
                "undecided at this n."
                + (f" {without} claim{'s' if without != 1 else ''} without a p-value (no test pairs the two samples) "
                   f"{'are' if without != 1 else 'is'} judged by two 95 % intervals, apart or overlapping, listed "
                   "but outside the family." if without else ""))

    def count(self, verdict_: str, indices=None) -> int:
        """How many claims (of `indices`, default all) have this verdict."""
        return sum(self.verdicts[i] == verdict_ for i in (range(len(self.claims)) if indices is None else indices))
