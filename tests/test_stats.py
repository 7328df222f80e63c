"""advkit.stats against hand-computed values (each checked in a shell with math.comb and
closed forms before being written here)."""

import math

import pytest

from advkit.stats import (CONTRADICTED, REPRODUCED, UNDECIDED, Claim, Family, fmt_interval, fmt_rate, holm,
                          interval_verdict, mark, mcnemar, paired_bootstrap, paired_t, t975, t_interval, verdict,
                          wilson)


# --- Wilson ------------------------------------------------------------------------------

def test_wilson_8_of_10():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=5e-5)
    assert high == pytest.approx(0.9433, abs=5e-5)


def test_wilson_edges_are_exact():
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=5e-5)  # z^2/10 / (1 + z^2/10)
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=5e-5)
    assert high == 1.0


def test_wilson_empty_and_bad_input():
    assert wilson(0, 0) == (None, None)
    for k, n in [(11, 10), (-1, 10), (0, -1)]:
        with pytest.raises(ValueError):
            wilson(k, n)


# --- Student t ---------------------------------------------------------------------------

@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228),
                                          (30, 2.042), (100, 1.984), (1000, 1.962)])
def test_t975_table_values(df, expected):
    assert t975(df) == pytest.approx(expected, abs=5e-4)


def test_t975_closed_forms():
    # df=1 is Cauchy: tan(0.475 pi). df=2: t/sqrt(2+t^2) = 0.95 -> t^2 = 2*0.9025/0.0975.
    assert t975(1) == pytest.approx(math.tan(0.475 * math.pi), abs=1e-9)
    assert t975(2) == pytest.approx(math.sqrt(2 * 0.9025 / 0.0975), abs=1e-9)


def test_t975_decreasing_towards_normal_across_the_series_switch():
    qs = [t975(df) for df in range(1, 400)]
    assert all(a > b for a, b in zip(qs, qs[1:]))
    assert t975(300) - t975(301) == pytest.approx(2.65e-5, abs=1e-6)  # smooth at the seam
    assert t975(10**7) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError):
        t975(0)


def test_t_interval_one_to_five():
    mean, half = t_interval([1, 2, 3, 4, 5])
    assert mean == 3
    assert half == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), abs=1e-5)  # 1.9632
    assert half == pytest.approx(1.9632, abs=5e-5)


def test_t_interval_too_few_values():
    assert t_interval([0.7]) == (0.7, None)
    assert t_interval([]) == (None, None)
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 0.0)


# --- McNemar -----------------------------------------------------------------------------

def _pairs(a_only, b_only, both=0, neither=0):
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


def test_mcnemar_8_vs_2():
    # 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024 = 7/64
    r = mcnemar(*_pairs(8, 2, both=5, neither=3))
    assert r == {"n": 18, "a_only": 8, "b_only": 2, "p_value": 0.109375}


def test_mcnemar_direction_and_extremes():
    assert mcnemar(*_pairs(0, 10))["p_value"] == 0.001953125  # 2 / 2^10
    r = mcnemar(*_pairs(10, 0))
    assert (r["a_only"], r["b_only"], r["p_value"]) == (10, 0, 0.001953125)
    assert mcnemar(*_pairs(5, 5))["p_value"] == 1.0  # 2*P[X<=5] > 1 is capped
    assert mcnemar(*_pairs(0, 0, both=4, neither=4))["p_value"] == 1.0
    assert mcnemar([], [])["p_value"] == 1.0


def test_mcnemar_30_vs_10():
    # 2 * sum_{k<=10} C(40,k) / 2^40 = 305311533 / 137438953472
    assert mcnemar(*_pairs(30, 10, both=80, neither=80))["p_value"] == pytest.approx(0.0022214337732, rel=1e-12)


def test_mcnemar_length_mismatch():
    with pytest.raises(ValueError):
        mcnemar([True, False], [True])


# --- paired bootstrap --------------------------------------------------------------------

def test_bootstrap_deterministic_and_observed_difference():
    a = [1.0] * 200
    b = [1.0, 0.0] * 100
    r = paired_bootstrap(a, b, seed=3)
    assert r == paired_bootstrap(a, b, seed=3)
    assert r["n"] == 200
    assert r["difference"] == 0.5
    # |d* - 0.5| >= 0.5 needs all 200 draws equal (prob 2^-199): count 0 -> p = 1/10001
    assert r["p_value"] == 1 / 10001
    assert r["p_value"] < 0.01
    assert 0 < r["low"] < 0.5 < r["high"]


def test_bootstrap_matches_normal_approximation():
    # 30 pairs a-only, 10 b-only, 160 ties: d = 0.1, se = sqrt(0.2 - 0.01)/sqrt(200) = 0.03082,
    # normal 95% interval [0.0396, 0.1604], normal p 0.0012, exact McNemar p 0.0022.
    a, b = _pairs(30, 10, both=80, neither=80)
    r = paired_bootstrap([float(x) for x in a], [float(x) for x in b])
    assert r["difference"] == pytest.approx(0.1)
    assert r["low"] == pytest.approx(0.0396, abs=0.01)
    assert r["high"] == pytest.approx(0.1604, abs=0.01)
    assert 0.0002 < r["p_value"] < 0.01


def test_bootstrap_small_difference_is_not_significant():
    # 12 vs 8 discordant of 200: d = 0.02, se = 0.0223, normal p 0.37, exact McNemar p 0.50
    a, b = _pairs(12, 8, neither=180)
    r = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert r["difference"] == pytest.approx(0.02)
    assert r["low"] < 0 < r["high"]
    assert r["p_value"] > 0.2
    assert mark(r["p_value"]) == ""


def test_bootstrap_identical_lists():
    r = paired_bootstrap([0.3, 0.5, 1.0], [0.3, 0.5, 1.0], resamples=500)
    assert (r["difference"], r["low"], r["high"], r["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_bad_input():
    for a, b, kw in [([1.0, 0.0], [1.0], {}), ([], [], {}), ([1.0, None], [1.0, 0.0], {}),
                     ([1.0], [0.0], {"resamples": 0})]:
        with pytest.raises(ValueError):
            paired_bootstrap(a, b, **kw)


# --- table helpers -----------------------------------------------------------------------

def test_mark():
    assert mark(0.049) == "*"
    assert mark(0.05) == ""
    assert mark(0.2, alpha=0.25) == "*"
    assert mark(None) == ""


def test_fmt_rate():
    # 162/200: Wilson (0.74999, 0.85833)
    assert fmt_rate(162, 200) == "81.0 [75.0, 85.8] (n=200)"
    assert fmt_rate(162, 200, digits=2) == "81.00 [75.00, 85.83] (n=200)"
    assert fmt_rate(0, 10) == "0.0 [0.0, 27.8] (n=10)"
    assert fmt_rate(0, 0) == "n/a (n=0)"


def test_paired_t_matches_the_textbook_test():
    # differences 1..5: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426 on 4 df, p = 0.013236
    t = paired_t([0] * 5, [1, 2, 3, 4, 5])
    assert t["mean"] == 3 and t["n"] == 5
    assert abs(t["half_width"] - 2.776445 * math.sqrt(2.5) / math.sqrt(5)) < 1e-5
    assert abs(t["p_value"] - 0.013236) < 1e-5
    # the sign of the difference does not change p; a small, noisy difference is not significant
    assert abs(paired_t([1, 2, 3, 4, 5], [0] * 5)["p_value"] - 0.013236) < 1e-5
    assert abs(paired_t([0.5, 0.6, 0.7], [0.52, 0.58, 0.75])["p_value"] - 0.497481) < 1e-5


def test_paired_t_edges():
    assert paired_t([0.5], [0.6])["p_value"] is None
    assert paired_t([1, 2], [3, 4])["p_value"] == 0.0  # every difference +2: no spread
    assert paired_t([0.5, 0.6], [0.5, 0.6])["p_value"] == 1.0
    with pytest.raises(ValueError):
        paired_t([1, 2], [1])


# --- Holm and the verdicts -------------------------------------------------------------------

def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04: times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04; the running maximum makes
    # the last 0.06; back in the order given
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # 2 * 0.6 = 1.2 capped at 1; then 0.9, raised to 1 by the running max
    assert holm([0.03]) == [0.03]  # a family of one: no correction
    assert holm([]) == []


def test_holm_is_monotone_and_ties_share_a_value():
    raw = [0.02, 0.001, 0.02, 0.3, 0.02, 0.04]
    adjusted = holm(raw)
    # 0.001 * 6 = 0.006; the three 0.02 take 5, 4 and 3 times 0.02 -> all 0.1 (the running maximum);
    # 0.04 * 2 = 0.08 -> 0.1; 0.3 * 1 -> 0.3
    assert adjusted == pytest.approx([0.1, 0.006, 0.1, 0.3, 0.1, 0.1])
    pairs = sorted(zip(raw, adjusted))
    assert all(a1 <= a2 for (_, a1), (_, a2) in zip(pairs, pairs[1:]))  # a smaller p never gets a larger adjusted p
    assert all(a >= p for p, a in zip(raw, adjusted)) and max(adjusted) <= 1


def test_holm_passes_none_through_and_does_not_count_it():
    # two p-values, so m = 2: 0.01 * 2 = 0.02, 0.04 * 1 -> 0.04
    assert holm([None, 0.04, None, 0.01]) == pytest.approx([None, 0.04, None, 0.02])
    assert holm([None]) == [None]


def test_holm_rejects_what_is_no_p_value():
    for bad in ([1.5], [-0.1], [float("nan")]):
        with pytest.raises(ValueError):
            holm(bad)


def test_verdict_boundaries():
    assert verdict(0.0499, 0.1) == REPRODUCED == "reproduced"
    assert verdict(0.0499, -0.1) == CONTRADICTED == "contradicted"
    assert verdict(0.05, 0.1) == UNDECIDED == "undecided"  # p < alpha, strictly
    assert verdict(0.2, 0.1, alpha=0.25) == REPRODUCED
    assert verdict(0.001, 0.0) == UNDECIDED  # no direction
    assert verdict(None, 0.1) == UNDECIDED and verdict(0.001, None) == UNDECIDED


def test_interval_verdict_apart_or_overlapping():
    assert interval_verdict((0.8, 0.95), (0.5, 0.7)) == REPRODUCED  # wholly above
    assert interval_verdict((0.2, 0.4), (0.5, 0.7)) == CONTRADICTED  # wholly below
    assert interval_verdict((0.6, 0.9), (0.5, 0.7)) == UNDECIDED  # overlap
    assert interval_verdict((0.7, 0.9), (0.5, 0.7)) == UNDECIDED  # touching is overlapping
    assert interval_verdict((None, None), (0.5, 0.7)) == UNDECIDED


def test_fmt_interval():
    assert fmt_interval(0.75, 0.8583) == "[75.0, 85.8]"
    assert fmt_interval(-0.013, 0.0132, spec="+.1f") == "[-1.3, +1.3]"
    assert fmt_interval(20689, 21683.5, scale=1, spec="g") == "[20689, 21683.5]"
    assert fmt_interval(None, 0.5) == ""


def test_a_family_of_three_adjusts_a_claim_at_p_003_to_undecided():
    family = Family([Claim("a", 0.03, 0.2, "+20.0 [+2.0, +38.0] points"), Claim("b", 0.001, 0.5),
                     Claim("c", 0.4, -0.1)])
    # sorted 0.001, 0.03, 0.4: 0.003, 0.06, 0.4
    assert family.adjusted == pytest.approx([0.06, 0.003, 0.4])
    assert family.verdicts == [UNDECIDED, REPRODUCED, UNDECIDED]  # "a" alone, at p = 0.03, would be reproduced
    assert Family([Claim("a", 0.03, 0.2)]).verdicts == [REPRODUCED]
    assert family.lines()[0] == "- a: **undecided** (+20.0 [+2.0, +38.0] points; p=0.03, Holm-adjusted p=0.06)."
    assert family.lines()[1] == "- b: **reproduced** (p=0.001, Holm-adjusted p=0.003)."
    assert len(family) == 3 and "the family is the 3 claims below with a p-value" in family.note()
    assert family.count(UNDECIDED) == 2 and family.count(UNDECIDED, [1, 2]) == 1


def test_a_claim_without_a_p_value_is_judged_by_its_intervals_outside_the_family():
    family = Family([Claim("paired", 0.03, 0.2), Claim("apart", None, evidence="different examples",
                                                        intervals=((0.8, 0.9), (0.5, 0.7))),
                     Claim("nothing", None)])
    assert len(family) == 1 and family.adjusted == [0.03, None, None]  # m = 1: 0.03 stays 0.03
    assert family.verdicts == [REPRODUCED, REPRODUCED, UNDECIDED]
    assert family.lines()[1] == ("- apart: **reproduced** (different examples; no p-value: judged by the two 95 % "
                                 "intervals alone, which lie apart; not in the Holm family).")
    assert family.lines()[2] == "- nothing: **undecided** (nothing to test)."
    assert "2 claims without a p-value" in family.note() and "outside the family" in family.note()


def test_stratified_paired_pools_discordant_pairs_and_keeps_each_strata_weight():
    from advkit.stats import mcnemar, stratified_paired

    # seed 1: 10 pairs, b gains 3 (a wrong, b right) and loses 1; seed 2: 20 pairs, b gains 1, loses 0
    s1 = ([0, 0, 0, 1] + [1] * 6, [1, 1, 1, 0] + [1] * 6)
    s2 = ([0] + [1] * 19, [1] + [1] * 19)
    r = stratified_paired([s1, s2], resamples=2000)
    assert (r["n"], r["strata"], r["a_only"], r["b_only"]) == (30, 2, 1, 4)
    assert r["difference"] == pytest.approx((3 - 1 + 1) / 30)  # every pair weighs the same
    # the pooled test is McNemar on the summed discordant pairs: 1 vs 4 -> 2 * (C(5,0) + C(5,1)) / 2^5
    assert r["p_value"] == pytest.approx(12 / 32) == mcnemar(s1[0] + s2[0], s1[1] + s2[1])["p_value"]
    assert r["low"] <= r["difference"] <= r["high"]
    # resampling within strata: a seed where b wins every pair and one where nothing differs give every
    # resample the same mean, 10/20 (pooled resampling across seeds would spread it)
    fixed = stratified_paired([([0] * 10, [1] * 10), ([1] * 10, [1] * 10)], resamples=500)
    assert fixed["low"] == fixed["high"] == fixed["difference"] == 0.5
    # a stratum with no discordant pair adds weight but no evidence: the difference shrinks, p stays
    same = ([1] * 30, [1] * 30)
    diluted = stratified_paired([s1, s2, same], resamples=2000)
    assert diluted["difference"] == pytest.approx(3 / 60) and diluted["p_value"] == r["p_value"]
    with pytest.raises(ValueError):
        stratified_paired([([1, 0], [1])])
    with pytest.raises(ValueError):
        stratified_paired([])
