"""cutover.stats against known values: SciPy 1.17's results for the same inputs, written here as numbers
(scipy.stats.norm, binom, fisher_exact(alternative='greater'), beta.ppf for Clopper-Pearson; the
Farrington-Manning statistic with its restricted rates found by scipy.optimize.brentq on the score
equation, not by the closed form the module uses)."""

from __future__ import annotations

import math
import random

import pytest

from cutover import stats
from cutover.stats import FAIL, INCONCLUSIVE, PASS

NORMAL_QUANTILES = [  # (p, scipy.stats.norm.ppf(p))
    (1e-300, -37.0470962993612), (1e-12, -7.034483825301131), (1e-06, -4.753424308822899),
    (0.001, -3.090232306167813), (0.01, -2.3263478740408408), (0.02, -2.053748910631823),
    (0.02425, -1.972961051311885), (0.025, -1.9599639845400545), (0.1, -1.2815515655446004),
    (0.3, -0.5244005127080409), (0.5, 0.0), (0.7, 0.5244005127080407), (0.9, 1.2815515655446004),
    (0.975, 1.959963984540054), (0.99, 2.3263478740408408), (0.995, 2.5758293035489004),
    (0.999999, 4.753424308817087),
]
NORMAL_SF = [  # (z, scipy.stats.norm.sf(z))
    (-5.0, 0.9999997133484281), (-1.0, 0.8413447460685429), (0.0, 0.5), (1.0, 0.15865525393145707),
    (2.326, 0.010009275340867669), (6.0, 9.865876450376946e-10), (10.0, 7.61985302416047e-24),
    (30.0, 4.906713927147908e-198),
]
BINOM_SF = [  # (k, n, p, scipy.stats.binom.sf(k - 1, n, p)) = P(X >= k)
    (1, 3, 0.05, 0.142625), (11, 200, 0.05, 0.41693281791882825), (20, 200, 0.05, 0.0026645795498294435),
    (41, 1000, 0.05, 0.919363426743309), (70, 1000, 0.05, 0.0034743586988460833), (0, 100, 0.01, 1.0),
    (1, 100, 0.01, 0.6339676587267705), (100, 100, 0.01, 1.000000000000002e-200),
    (600, 10**6, 0.0005, 7.74506258311731e-06), (400, 10**6, 0.0005, 0.9999983614653264),
    (5000, 10**7, 0.0005, 0.5018820448957881), (5300, 10**7, 0.0005, 1.348148256812001e-05),
    (30, 10**7, 1e-06, 2.5099024221281256e-07), (520, 52000, 0.01, 0.5059196279457103),
    (3, 5, 0.999, 0.999999990014994),
]
BINOM_CDF = [  # (k, n, p, scipy.stats.binom.cdf(k, n, p)) = P(X <= k)
    (0, 3, 0.05, 0.857375), (2, 200, 0.05, 0.002336294190063899), (10, 200, 0.05, 0.5830671820811717),
    (41, 1000, 0.05, 0.10629617073627556), (0, 5200, 0.001, 0.005502230438738847),
    (300, 10**6, 0.0005, 2.779558931405979e-22), (4700, 10**7, 0.0005, 9.445296809434415e-06),
    (490, 52000, 0.01, 0.09588295244452943), (52, 5200, 0.0141, 0.005248023642033384),
]
BINOM_NORMAL_APPROX = [  # variance above 1e8: (k, n, p, scipy.stats.binom.sf(k - 1, n, p))
    (205_010_000, 410_000_000, 0.5, 0.16165464476047264), (205_030_000, 410_000_000, 0.5, 0.0015225930936999608),
    (100_030_000, 10**10, 0.01, 0.0012851911623177243),
]
FISHER_GREATER = [  # (bad, total, base_bad, base_total, fisher_exact([[bad, total-bad], [base_bad, base_total-base_bad]], 'greater'))
    (41, 1000, 52, 5200, 1.29770353929632e-10), (11, 1000, 52, 5200, 0.43866507352892303),
    (1, 1000, 0, 5200, 0.16129032258064516), (0, 1000, 0, 5200, 1.0), (3, 10, 0, 10, 0.10526315789473684),
    (0, 200, 5, 300, 1.0), (2, 50, 1, 60, 0.43137800018533956), (150, 20000, 500, 100000, 1.5371911974688227e-05),
    (1, 3, 0, 200, 0.014778325123152709),
]
FARRINGTON_MANNING_Z = [  # (bad, total, base_bad, base_total, margin, z)
    (41, 1000, 52, 5200, 0.005, 5.760778043455843), (16, 1000, 52, 5200, 0.005, 0.24389148861192803),
    (0, 1000, 0, 5200, 0.005, -2.2416791983111017), (3, 200, 1, 300, 0.01, 0.18762402072510934),
    (10, 400, 0, 400, 0.02, 0.7142857142857144), (60, 1000, 40, 1000, 0.01, 1.030940288382043),
    (500, 10000, 450, 10000, 0.001, 1.3300067289232915),
]
CLOPPER_PEARSON_UPPER = [  # (bad, total, alpha, scipy.stats.beta.ppf(1 - alpha, bad + 1, total - bad))
    (52, 5200, 0.005, 0.014128898924304805), (0, 5200, 0.005, 0.0010183882762031364), (0, 10, 0.05, 0.2588655508930522),
    (9, 10, 0.01, 0.99899547129175), (520, 52000, 0.005, 0.011179337091169974), (3, 100000, 0.01, 0.0001004476367557172),
]


@pytest.mark.parametrize("p, z", NORMAL_QUANTILES)
def test_normal_quantile_matches_scipy(p, z):
    assert stats.normal_quantile(p) == pytest.approx(z, rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("z, sf", NORMAL_SF)
def test_normal_sf_matches_scipy_far_into_the_tail(z, sf):
    assert stats.normal_sf(z) == pytest.approx(sf, rel=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_normal_quantile_refuses_p_outside_0_1(p):
    with pytest.raises(ValueError):
        stats.normal_quantile(p)


@pytest.mark.parametrize("k, n, p, sf", BINOM_SF)
def test_binomial_upper_tail_matches_scipy(k, n, p, sf):
    assert stats.binom_sf(k, n, p) == pytest.approx(sf, rel=1e-7)


@pytest.mark.parametrize("k, n, p, cdf", BINOM_CDF)
def test_binomial_lower_tail_matches_scipy(k, n, p, cdf):
    assert stats.binom_cdf(k, n, p) == pytest.approx(cdf, rel=1e-7)


@pytest.mark.parametrize("k, n, p, sf", BINOM_NORMAL_APPROX)
def test_binomial_normal_approximation_for_huge_counts(k, n, p, sf):
    assert stats.binom_sf(k, n, p) == pytest.approx(sf, rel=1e-3)


@pytest.mark.parametrize("bad, total, base_bad, base_total, p", FISHER_GREATER)
def test_fisher_one_sided_matches_scipy(bad, total, base_bad, base_total, p):
    assert stats.fisher_worse_p(bad, total, base_bad, base_total) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("bad, total, base_bad, base_total, margin, z", FARRINGTON_MANNING_Z)
def test_farrington_manning_matches_a_numeric_root_of_the_score_equation(bad, total, base_bad, base_total, margin, z):
    assert stats.farrington_manning_z(bad, total, base_bad, base_total, margin) == pytest.approx(z, rel=1e-9)


@pytest.mark.parametrize("bad, total, alpha, upper", CLOPPER_PEARSON_UPPER)
def test_clopper_pearson_upper_bound_matches_scipy(bad, total, alpha, upper):
    assert stats.rate_upper_bound(bad, total, alpha) == pytest.approx(upper, rel=1e-9)


# --- judge_rate ------------------------------------------------------------------------------------

def one(value):
    return [("t0", value)]


def baseline(bad, total):
    return [(one(bad), one(total))]


def test_the_issue_example_fails_with_its_reason_line_and_every_figure():
    j = stats.judge_rate("order_success", one(41), one(1000), min_total=200, baseline=baseline(52, 5200),
                         worse_by=0.005)
    assert j.outcome == FAIL
    assert j.reason == ("order_success FAIL rate 4.1% (41/1000) vs baseline 1.0% (52/5200): "
                        "worse by 3.1 pp > 0.5 pp (p < 0.001)")
    d = j.to_dict()
    assert (d["bad"], d["total"], d["rate"]) == (41, 1000, 0.041)
    assert d["baseline"] == {"bad": 52, "total": 5200, "rate": 0.01, "value": None}
    assert d["test"] == "farrington_manning"
    assert d["statistic"] == pytest.approx(5.760778043455843, rel=1e-9)
    assert d["critical"] == pytest.approx(2.3263478740408408)
    assert d["threshold"] == 0.005 and d["p_value"] < 1e-8


def test_within_baseline_passes():
    j = stats.judge_rate("s", one(16), one(1000), min_total=200, baseline=baseline(52, 5200), worse_by=0.005)
    assert j.outcome == PASS, j.reason
    assert j.deciding.p_value == pytest.approx(stats.normal_sf(0.24389148861192803), rel=1e-9)


def test_worse_by_zero_uses_fisher_exact():
    j = stats.judge_rate("s", one(41), one(1000), min_total=1, baseline=baseline(52, 5200))
    assert (j.outcome, j.deciding.test) == (FAIL, "fisher_exact")
    assert j.deciding.p_value == pytest.approx(1.29770353929632e-10, rel=1e-9)


def test_zero_errors_in_both_windows_pass_with_a_finite_statistic():
    j = stats.judge_rate("s", [], one(1000), min_total=200, baseline=baseline(0, 5200), worse_by=0.005)
    assert j.outcome == PASS and math.isfinite(j.deciding.statistic)
    assert j.bad == 0


def test_max_rate_fails_above_the_limit_and_passes_at_it():
    assert stats.judge_rate("s", one(11), one(200), max_rate=0.05).outcome == FAIL
    assert stats.judge_rate("s", one(10), one(200), max_rate=0.05).outcome == PASS
    j = stats.judge_rate("s", one(11), one(200), max_rate=0.05)
    assert j.reason == "s FAIL rate 5.5% (11/200) > max 5.0% (p = 0.417)"
    assert j.deciding.p_value == pytest.approx(0.41693281791882825, rel=1e-9)


@pytest.mark.parametrize("bad, total, why", [
    ([], [], "no traffic in the window"),
    (one(5), one(100), "only 100 events in the window, fewer than min_total 200"),
])
def test_no_data_or_too_few_events_is_inconclusive_never_pass(bad, total, why):
    j = stats.judge_rate("s", bad, total, min_total=200, max_rate=0.05)
    assert j.outcome == INCONCLUSIVE and why in j.reason
    assert not j.passes("fail") and j.passes("pass")


def test_a_thin_baseline_is_inconclusive():
    j = stats.judge_rate("s", one(1), one(1000), min_total=200, baseline=baseline(0, 150), worse_by=0.005)
    assert j.outcome == INCONCLUSIVE and "in the baseline" in j.reason
    assert (j.baseline_bad, j.baseline_total) == (0, 150)


def test_missing_bad_periods_count_as_zero_and_baseline_offsets_pool():
    bad = [("t1", 3)]
    total = [("t0", 100), ("t1", 100), ("t2", 100)]
    assert stats.periods(bad, total) == [("t0", stats.Counts(0, 100)), ("t1", stats.Counts(3, 100)),
                                         ("t2", stats.Counts(0, 100))]
    j = stats.judge_rate("s", bad, total, min_total=1, max_rate=0.05,
                         baseline=[(one(1), one(100)), (one(2), one(300))])
    assert (j.bad, j.total, j.baseline_bad, j.baseline_total) == (3, 300, 3, 400)


def test_more_bad_than_total_is_inconclusive():
    j = stats.judge_rate("s", one(5), one(3), max_rate=0.5)
    assert j.outcome == INCONCLUSIVE and "more bad" in j.reason


# --- judge_value -----------------------------------------------------------------------------------

def test_value_max_min_and_ratio():
    series = [("a", 2000.0), ("b", 3412.0)]
    j = stats.judge_value("p99", series, stat="p99", max_value=3000)
    assert j.reason == "p99 FAIL p99 3412 (highest of 2 periods) > max 3000" and j.value == 3412.0
    assert stats.judge_value("p99", series, min_value=2500).outcome == FAIL
    assert stats.judge_value("p99", series, max_value=4000, min_value=1000).outcome == PASS
    # max_ratio: median over offsets of each offset's highest period
    j = stats.judge_value("p99", [("a", 2412.0)], baseline=[[("x", 2000.0)], [("y", 1000.0), ("z", 2100.0)],
                          [("w", 5000.0)]], max_ratio=1.2)
    assert (j.outcome, j.baseline_value) == (PASS, 2100.0)
    assert stats.judge_value("v", [], max_value=1).outcome == INCONCLUSIVE
    assert stats.judge_value("v", one(1.0), baseline=[[]], max_ratio=2).outcome == INCONCLUSIVE


# --- watch_rate: the sequential test ---------------------------------------------------------------

BAKE = 60  # one-minute periods: an hour's bake
PER_PERIOD = 200


def _bake(rng: random.Random, rate: float, periods: int = BAKE, start_bad_at: int = 0, bad_rate: float = 0.0):
    bad, total = [], []
    for i in range(periods):
        r = bad_rate if i >= start_bad_at and bad_rate else rate
        bad.append((i, sum(rng.random() < r for _ in range(PER_PERIOD))))
        total.append((i, PER_PERIOD))
    return bad, total


def _fires_at_some_poll(bad, total, **kw) -> bool:
    """Judged afresh at every poll, as `cutover watch` does; a FAIL at any poll is an alarm."""
    return any(stats.watch_rate("w", bad[:n], total[:n], bake_periods=BAKE, **kw).outcome == FAIL
               for n in range(1, len(bad) + 1, 5))


def test_watch_false_alarms_stay_below_the_level_over_many_polled_bakes():
    rng = random.Random(18)
    bakes, alpha = 300, 0.05
    healthy = [_bake(rng, 0.01) for _ in range(bakes)]
    alarms = sum(_fires_at_some_poll(bad, total, max_rate=0.01, confidence=1 - alpha) for bad, total in healthy)
    assert alarms / bakes < alpha, alarms
    # The control: the exact binomial test at the same level, repeated at each of the 12 polls, fires in
    # far more than 5% of the same healthy bakes (this is what the sequential test is for).
    naive = sum(_fixed_level_fires(bad, total, 0.01, alpha) for bad, total in healthy)
    assert naive / bakes > 2 * alpha, naive


def _fixed_level_fires(bad, total, limit: float, alpha: float) -> bool:
    for n in range(1, len(bad) + 1, 5):
        b, t = sum(v for _, v in bad[:n]), sum(v for _, v in total[:n])
        if stats.binom_sf(b, t, limit) <= alpha:
            return True
    return False


def test_watch_fires_on_a_sustained_regression_that_starts_late():
    rng = random.Random(7)
    bad, total = _bake(rng, 0.01, start_bad_at=40, bad_rate=0.04)
    assert stats.watch_rate("w", bad[:39], total[:39], bake_periods=BAKE, max_rate=0.01).outcome == PASS
    j = stats.watch_rate("w", bad, total, bake_periods=BAKE, max_rate=0.01)
    assert j.outcome == FAIL and j.deciding.test == "sprt_cusum", j.reason
    assert j.deciding.statistic >= j.deciding.critical == pytest.approx(math.log(BAKE / 0.01))


def test_watch_with_a_baseline_uses_its_upper_bound_as_the_limit():
    bad, total = [(0, 2)], [(0, 100)]
    j = stats.watch_rate("w", bad, total, bake_periods=10, baseline=baseline(52, 5200), worse_by=0.005)
    assert j.deciding.threshold == pytest.approx(0.014128898924304805 + 0.005, rel=1e-9)


def test_watch_with_too_little_traffic_is_inconclusive_unless_it_already_failed():
    assert stats.watch_rate("w", [], [(0, 10)], bake_periods=10, min_total=100, max_rate=0.01).outcome == INCONCLUSIVE
    j = stats.watch_rate("w", [(0, 50)], [(0, 50)], bake_periods=10, min_total=100, max_rate=0.01)
    assert j.outcome == FAIL
