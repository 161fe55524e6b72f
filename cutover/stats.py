"""The judge behind the `metric` check type: CloudWatch numbers in, PASS / FAIL / INCONCLUSIVE out.

This module reads nothing: the caller fetches the datapoints and hands them over as (timestamp, value)
pairs, the shape GetMetricData returns (a period with no datapoint is simply absent). It is pure Python
and standard library only, so it can be tested to the last digit without AWS.

Outcomes. PASS, FAIL, INCONCLUSIVE (not enough data to judge: no datapoints, fewer events than
`min_total` in the window or in the baseline, an unusable baseline) and ERROR (for the caller: an API
error; nothing here returns it). No data is never a PASS. `Judgement.passes(inconclusive)` applies the
plan's `inconclusive: fail | pass` policy.

Rate checks (`bad` and `total` counts, statistic Sum). Missing periods of `bad` while `total` has data
are zero bad events; counts are rounded to whole events; more bad than total events is inconsistent
data (INCONCLUSIVE). Baseline offsets are pooled: their counts are summed. Two tests, either or both:

- `max_rate`: FAIL when the observed rate bad/total is above it (a limit the user wrote is a limit, not a
  hypothesis). The exact binomial p-value of "the true rate is at most max_rate" is shown beside it, so
  a reader sees whether the excess is beyond noise; `min_total` is what keeps a handful of events from
  deciding.
- `baseline`, "worse than the baseline by more than worse_by", tested one-sided at `confidence`. With
  worse_by = 0 it is Fisher's exact test (conditional on the total of bad events): exact, and sound for
  sparse or zero-error data, where normal approximations are not. With a margin it is the
  Farrington-Manning score test of the difference of two rates: its variance comes from rates fitted
  under the hypothesis being tested, so zero bad events in both windows still gives a finite, sensible
  statistic (a plain Wald test divides by zero there). Here a difference that is not significant PASSes:
  worse_by is already the user's tolerance, and comparing two noisy rates would otherwise fail half of
  all healthy windows.

Value checks (a statistic such as p99, Average, Maximum). The worst period is judged against `max`
(the highest value) and `min` (the lowest): every period must be within the limit. Asking CloudWatch for
one period spanning the window makes that the window's own statistic (a p99 over all its requests),
which is what most users mean; a p99 per minute, worst of 30, is a much stricter gate. `max_ratio`
compares the same number with the baseline's: per offset its worst period, then the median over the
offsets (so one odd week does not move it far).

Watching a bake (`watch_rate`). During a bake the check is judged at every poll; judging the same
test every minute at 99% would raise a false alarm in far more than 1% of healthy bakes. The watch uses
Wald's sequential probability ratio test (SPRT) on the per-period counts since the bake started:
H0, the rate is at the limit p0 (max_rate, or the baseline rate plus worse_by), against H1, the odds of
a bad event are `odds_ratio` (default 2) times those at the limit. Each period adds its log-likelihood
ratio. Two changes make it fit a gate:

- No lower boundary: a gate never "accepts H0" and stops looking, it keeps watching to the end of the
  bake. Without a lower boundary beta (the chance of missing H1) sets nothing: the chance of missing a
  sustained rate at or above H1's grows smaller with every event, and the upper bound is Wald's
  (1 - beta) / alpha with beta -> 0, log(1 / alpha).
- The sum never goes below zero (Page's CUSUM: the SPRT restarted after every period that leaves it
  negative). A quiet first hour would otherwise bank credit, and a regression starting late would need
  as much bad evidence again before it showed. To keep the false alarm rate, the bound is raised to
  log(K / alpha) for a bake of K periods: the SPRT started at any one period crosses log(K / alpha) with
  probability at most alpha / K whatever the number of looks (Ville's inequality), so over all K
  starting periods at most alpha. The reported p-value, K * exp(-evidence), is valid in the same way.

So a healthy bake at or below the limit raises a false alarm with probability at most 1 - confidence
over the whole bake, however often it is polled; a sustained rate well above the limit (above about
1.44 times it, for the default alternative) fails once enough events have been seen. With a baseline
the baseline's rate is itself noisy: the limit uses its one-sided Clopper-Pearson upper bound, and alpha
is split evenly between that bound and the sequential test. The judgement is computed afresh from the
whole bake's series at every poll (nothing to keep between polls), and a FAIL at any period so far is a
FAIL now.

Numerics. Binomial and hypergeometric tails are summed in log space from the first term outwards
(relative error about 1e-12 for counts up to 10^6 and 1e-7 at 10^9, from lgamma's rounding); when the
distribution's variance exceeds 10^8 (a standard deviation of 10,000 events, so at least 4*10^8
events) the normal approximation with a continuity correction is used instead (error below 1e-4 there).
The normal quantile is Acklam's rational approximation (relative error 1.2e-9) refined by one Halley
step, accurate to about 1e-15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Hashable, Sequence

PASS = "PASS"
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"
ERROR = "ERROR"  # for the caller (an API error); never returned here
_SEVERITY = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2, ERROR: 3}

Series = Sequence[tuple[Hashable, float]]  # (period timestamp, value), as GetMetricData returns them

DEFAULT_CONFIDENCE = 0.99
DEFAULT_ODDS_RATIO = 2.0


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Verdict:
    """One test's answer. `detail` is the human phrase (no check name); `threshold` the user's limit."""

    outcome: str
    test: str  # binomial_exact | fisher_exact | farrington_manning | sprt_cusum | max | min | max_ratio
    detail: str
    statistic: float | None = None
    p_value: float | None = None
    critical: float | None = None  # the statistic's bound for FAIL, where the test has one
    threshold: float | None = None

    def to_dict(self) -> dict:
        return {k: _json_number(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Judgement:
    """Everything one evaluation found. `tests` lists the deciding test(s) first."""

    check: str
    outcome: str
    reason: str  # one line: name, outcome, the figures and the test that decided
    window: tuple[Any, Any] | None = None  # (start, end) as the caller gave them
    bad: int | None = None
    total: int | None = None
    baseline_bad: int | None = None
    baseline_total: int | None = None
    value: float | None = None
    baseline_value: float | None = None
    tests: tuple[Verdict, ...] = ()

    @property
    def rate(self) -> float | None:
        return _rate(self.bad, self.total)

    @property
    def baseline_rate(self) -> float | None:
        return _rate(self.baseline_bad, self.baseline_total)

    @property
    def deciding(self) -> Verdict | None:
        return self.tests[0] if self.tests else None

    def passes(self, inconclusive: str = "fail") -> bool:
        """Whether a gate lets this through, under the plan's `inconclusive: fail | pass` policy."""
        return self.outcome == PASS or (self.outcome == INCONCLUSIVE and inconclusive == "pass")

    def to_dict(self) -> dict:
        """The evidence / --json document: every figure a number (null when absent or not finite)."""
        head = self.deciding
        start, end = self.window if self.window else (None, None)
        return {
            "check": self.check,
            "outcome": self.outcome,
            "reason": self.reason,
            "window": {"start": _iso(start), "end": _iso(end)},
            "bad": self.bad,
            "total": self.total,
            "rate": self.rate,
            "value": _json_number(self.value),
            "baseline": {"bad": self.baseline_bad, "total": self.baseline_total, "rate": self.baseline_rate,
                         "value": _json_number(self.baseline_value)},
            "test": head.test if head else None,
            "statistic": _json_number(head.statistic) if head else None,
            "p_value": _json_number(head.p_value) if head else None,
            "critical": _json_number(head.critical) if head else None,
            "threshold": _json_number(head.threshold) if head else None,
            "tests": [v.to_dict() for v in self.tests],
        }


def error_result(check: str, reason: str, window: tuple[Any, Any] | None = None) -> Judgement:
    """An ERROR judgement for the caller's own failures (an API error reading the metrics)."""
    return Judgement(check, ERROR, f"{check} {ERROR} {reason}", window)


def _rate(bad: int | None, total: int | None) -> float | None:
    return bad / total if bad is not None and total else None


def _iso(when: Any) -> Any:
    if isinstance(when, datetime):
        aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return when


def _json_number(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _judge(check: str, head: str, verdicts: list[Verdict], **fields: Any) -> Judgement:
    """Combine the tests: the worst outcome wins (FAIL over INCONCLUSIVE over PASS) and names the reason."""
    worst = max((v.outcome for v in verdicts), key=_SEVERITY.__getitem__)
    deciding = [v for v in verdicts if v.outcome == worst]
    rest = [v for v in verdicts if v.outcome != worst]
    reason = f"{check} {worst} {head} " + "; ".join(v.detail for v in deciding)
    return Judgement(check, worst, reason, tests=tuple(deciding + rest), **fields)


def _no_verdict(check: str, reason: str, **fields: Any) -> Judgement:
    return Judgement(check, INCONCLUSIVE, f"{check} {INCONCLUSIVE} {reason}", **fields)


# ---------------------------------------------------------------------------------------------------
# Formatting for people


def percent(x: float, unit: str = "%") -> str:
    """One decimal ("4.1%"); a nonzero figure under 0.1 keeps two significant digits ("0.042%")."""
    v = 100.0 * x
    if v != 0 and abs(v) < 0.1:
        return f"{v:.2g}{unit}"
    return f"{v:.1f}{unit}"


def points(x: float) -> str:
    """A difference of two rates in percentage points: "3.1 pp"."""
    return percent(x, " pp")


def p_text(p: float) -> str:
    """A p-value as people read it: "p < 0.001" or "p = 0.034"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def number(x: float) -> str:
    """A metric value: whole numbers from 10,000 up, four significant digits below ("3412", "0.2345")."""
    return f"{x:.0f}" if abs(x) >= 10_000 else f"{x:.4g}"


def _counts_text(bad: int, total: int) -> str:
    return f"{percent(bad / total)} ({bad}/{total})"


def _confidence_text(alpha: float) -> str:
    return f"{100 * (1 - alpha):.4g}% confidence"


# ---------------------------------------------------------------------------------------------------
# Numerics: the normal distribution


_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

# Acklam's coefficients (rational approximations of the central region and of the lower tail).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01, 1.0)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00, 1.0)
_P_LOW = 0.02425  # below this the tail approximation is used


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def normal_sf(z: float) -> float:
    """P(Z > z), accurate far into the upper tail (erfc, not 1 - cdf)."""
    return 0.5 * math.erfc(z / _SQRT2)


def _horner(coefficients: tuple[float, ...], x: float) -> float:
    acc = 0.0
    for c in coefficients:
        acc = acc * x + c
    return acc


def normal_quantile(p: float) -> float:
    """The z with P(Z <= z) = p, for 0 < p < 1 (Acklam's approximation, then one Halley step)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal_quantile needs 0 < p < 1, not {p!r}")
    if p > 0.5:  # the upper half by symmetry: 1 - p is exact there, and erfc stays accurate below 0.5
        return -normal_quantile(1.0 - p)
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = _horner(_C, q) / _horner(_D, q)
    else:
        q = p - 0.5
        x = q * _horner(_A, q * q) / _horner(_B, q * q)
    u = (normal_cdf(x) - p) * _SQRT2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


# ---------------------------------------------------------------------------------------------------
# Numerics: binomial and hypergeometric tails

_EXACT_VARIANCE = 1e8  # above this (sd 10,000 events) the tails use the normal approximation
_NEGLIGIBLE = 1e-17  # a term this small relative to the running sum ends the summation


@dataclass(frozen=True)
class _Discrete:
    """A unimodal distribution on lo..hi, described by its log pmf and the ratios of neighbouring terms.
    Each tail is summed from the requested point away from the mode, where the terms only shrink, so the
    sum stops as soon as they are negligible; the other tail is its complement."""

    lo: int
    hi: int
    mode: int
    mean: float
    var: float
    log_pmf: Callable[[int], float]
    up: Callable[[int], float]  # pmf(i + 1) / pmf(i)
    down: Callable[[int], float]  # pmf(i - 1) / pmf(i)

    def sf(self, k: int) -> float:
        """P(X >= k)."""
        if k <= self.lo:
            return 1.0
        if k > self.hi:
            return 0.0
        if self.var > _EXACT_VARIANCE:
            return normal_sf((k - 0.5 - self.mean) / math.sqrt(self.var))
        if k > self.mode:
            return self._sum(k, self.hi, self.up)
        return max(0.0, 1.0 - self._sum(k - 1, self.lo, self.down))

    def cdf(self, k: int) -> float:
        """P(X <= k)."""
        if k >= self.hi:
            return 1.0
        if k < self.lo:
            return 0.0
        if self.var > _EXACT_VARIANCE:
            return normal_cdf((k + 0.5 - self.mean) / math.sqrt(self.var))
        if k < self.mode:
            return self._sum(k, self.lo, self.down)
        return max(0.0, 1.0 - self._sum(k + 1, self.hi, self.up))

    def _sum(self, start: int, stop: int, ratio: Callable[[int], float]) -> float:
        # Summed relative to the first term, so nothing underflows before the final scaling.
        step = 1 if stop >= start else -1
        total = term = 1.0
        i = start
        while i != stop:
            term *= ratio(i)
            i += step
            total += term
            if term < total * _NEGLIGIBLE:
                break
        return min(1.0, math.exp(self.log_pmf(start) + math.log(total)))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _binomial(n: int, p: float) -> _Discrete:
    """Binomial(n, p); p = 0 and p = 1 are point masses (lo = hi), so log(0) is never taken."""
    lo = n if p >= 1.0 else 0
    hi = 0 if p <= 0.0 else n
    odds = p / (1.0 - p) if 0.0 < p < 1.0 else 1.0
    return _Discrete(
        lo, hi, min(max(math.floor((n + 1) * p), lo), hi), n * p, n * p * (1.0 - p),
        lambda i: _log_choose(n, i) + i * math.log(p) + (n - i) * math.log1p(-p),
        lambda i: (n - i) / (i + 1) * odds,
        lambda i: i / (n - i + 1) / odds,
    )


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return _binomial(n, p).sf(k)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return _binomial(n, p).cdf(k)


def _hypergeometric(population: int, successes: int, draws: int) -> _Discrete:
    """The number of successes in `draws` taken without replacement from `population`."""
    big_n, big_k, n = population, successes, draws
    lo, hi = max(0, n + big_k - big_n), min(n, big_k)
    fraction = big_k / big_n if big_n else 0.0
    var = n * fraction * (1 - fraction) * (big_n - n) / (big_n - 1) if big_n > 1 else 0.0
    return _Discrete(
        lo, hi, min(max(math.floor((n + 1) * (big_k + 1) / (big_n + 2)), lo), hi), n * fraction, var,
        lambda i: _log_choose(big_k, i) + _log_choose(big_n - big_k, n - i) - _log_choose(big_n, n),
        lambda i: (big_k - i) * (n - i) / ((i + 1) * (big_n - big_k - n + i + 1)),
        lambda i: i * (big_n - big_k - n + i) / ((big_k - i + 1) * (n - i + 1)),
    )


def fisher_worse_p(bad: int, total: int, base_bad: int, base_total: int) -> float:
    """One-sided Fisher exact p-value for "the window's rate is above the baseline's": given the bad
    events of both together, the chance that the window holds `bad` or more of them by luck alone."""
    return _hypergeometric(total + base_total, bad + base_bad, total).sf(bad)


def farrington_manning_z(bad: int, total: int, base_bad: int, base_total: int, margin: float) -> float:
    """Score statistic for H0: p - p_base <= margin (large z: the window is worse by more than margin).
    The variance uses the rates fitted under p - p_base = margin (the cubic's closed-form root, as in
    Farrington and Manning 1990), which keeps it positive with zero bad events."""
    p1, p2 = bad / total, base_bad / base_total
    fitted1, fitted2 = _restricted_rates(p1, p2, total, base_total, margin)
    var = fitted1 * (1 - fitted1) / total + fitted2 * (1 - fitted2) / base_total
    diff = p1 - p2 - margin
    if var <= 0.0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / math.sqrt(var)


def _restricted_rates(p1: float, p2: float, n1: int, n2: int, margin: float) -> tuple[float, float]:
    """The maximum-likelihood rates (q1, q2) with q1 - q2 = margin, from the observed p1 (n1), p2 (n2)."""
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + margin * (theta + 2.0))
    c = margin * margin + margin * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * margin * (1.0 + margin)
    v = b ** 3 / (27.0 * a ** 3) - b * c / (6.0 * a * a) + d / (2.0 * a)
    u = math.copysign(math.sqrt(max(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)), v)
    cos_arg = v / u ** 3 if u else 0.0
    w = (math.pi + math.acos(min(1.0, max(-1.0, cos_arg)))) / 3.0
    q1 = 2.0 * u * math.cos(w) - b / (3.0 * a)
    q1 = min(1.0, max(margin, q1))
    return q1, q1 - margin


@lru_cache(maxsize=4096)
def rate_upper_bound(bad: int, total: int, alpha: float) -> float:
    """One-sided Clopper-Pearson upper bound at confidence 1 - alpha: the highest true rate under which
    seeing `bad` or fewer bad events of `total` still has probability alpha (found by bisection)."""
    if bad >= total:
        return 1.0
    lo, hi = bad / total, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if binom_cdf(bad, total, mid) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


# ---------------------------------------------------------------------------------------------------
# Reading the caller's series


class _Unusable(Exception):
    """The data cannot be judged; the message says why (the judgement is INCONCLUSIVE)."""


@dataclass(frozen=True)
class Counts:
    bad: int
    total: int

    @property
    def rate(self) -> float | None:
        return _rate(self.bad, self.total)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.bad + other.bad, self.total + other.total)

    def check(self, where: str) -> Counts:
        if self.bad > self.total:
            raise _Unusable(f"{where} has more bad ({self.bad}) than total ({self.total}) events: "
                            "the two metrics do not count the same events")
        return self


def _whole(value: Any, where: str) -> int:
    """A Sum of events as a whole count; anything not a finite, non-negative number is unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Unusable(f"{where} has a datapoint that is not a count of events: {value!r}")
    return int(math.floor(value + 0.5))


def _by_period(series: Series, where: str) -> dict[Hashable, int]:
    out: dict[Hashable, int] = {}
    for stamp, value in series:
        if value is not None:
            out[stamp] = out.get(stamp, 0) + _whole(value, where)
    return out


def periods(bad: Series, total: Series, where: str = "the window") -> list[tuple[Hashable, Counts]]:
    """The per-period counts in time order. A period with total events but no bad datapoint had no bad
    events; one with neither is absent."""
    b, n = _by_period(bad, where), _by_period(total, where)
    stamps = sorted(set(b) | set(n))
    return [(s, Counts(b.get(s, 0), n.get(s, 0)).check(f"{where} at {_iso(s)}")) for s in stamps]


def counts(bad: Series, total: Series, where: str = "the window") -> Counts:
    """The window's total bad and total events (summed over its periods)."""
    b, n = _by_period(bad, where), _by_period(total, where)
    return Counts(sum(b.values()), sum(n.values())).check(where)


def pooled(baseline: Sequence[tuple[Series, Series]]) -> Counts:
    """The baseline offsets' counts summed: one (bad, total) pair of series per offset."""
    result = Counts(0, 0)
    for i, (bad, total) in enumerate(baseline):
        result = result + counts(bad, total, f"baseline offset {i + 1}")
    return result


def _enough(c: Counts, min_total: int, where: str) -> None:
    if c.total == 0:
        raise _Unusable(f"no traffic in the {where}: no total events")
    if c.total < min_total:
        raise _Unusable(f"only {c.total} events in the {where}, fewer than min_total {min_total}")


# ---------------------------------------------------------------------------------------------------
# Rate checks


def _usable_baseline(baseline, min_total: int, fields: dict[str, Any]) -> Counts | None:
    """The baseline's pooled counts (recorded in `fields`), or None without one; _Unusable when it
    holds fewer than `min_total` events."""
    if baseline is None:
        return None
    base = pooled(baseline)
    fields.update(baseline_bad=base.bad, baseline_total=base.total)
    _enough(base, min_total, "baseline")
    return base


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_rate_params(max_rate: float | None, has_baseline: bool, worse_by: float, confidence: float,
                       min_total: int) -> float:
    """Validate the plan's figures (the schema should already have); return alpha = 1 - confidence."""
    _require(max_rate is not None or has_baseline, "a rate check needs max_rate, a baseline, or both")
    _require(max_rate is None or 0.0 <= max_rate <= 1.0, f"max_rate must be from 0 to 1, not {max_rate!r}")
    _require(0.0 <= worse_by < 1.0, f"worse_by must be from 0 to below 1, not {worse_by!r}")
    _require(0.0 < confidence < 1.0, f"confidence must be between 0 and 1, not {confidence!r}")
    _require(isinstance(min_total, int) and min_total >= 0, f"min_total must be a whole number >= 0, not {min_total!r}")
    return 1.0 - confidence


def max_rate_verdict(c: Counts, max_rate: float) -> Verdict:
    """FAIL when the observed rate is above max_rate; the exact binomial p-value of "rate <= max_rate" is
    evidence for the reader, not the decision."""
    p = binom_sf(c.bad, c.total, max_rate)
    above = c.bad > max_rate * c.total
    detail = f"{'>' if above else '<='} max {percent(max_rate)} ({p_text(p)})"
    return Verdict(FAIL if above else PASS, "binomial_exact", detail, statistic=float(c.bad), p_value=p,
                   threshold=max_rate)


def baseline_verdict(c: Counts, base: Counts, worse_by: float, alpha: float) -> Verdict:
    """Is the window worse than the baseline by more than worse_by? Fisher's exact test when worse_by
    is 0, the Farrington-Manning score test otherwise; FAIL only when significant at 1 - alpha."""
    if worse_by == 0.0:
        test, critical = "fisher_exact", None
        statistic = float(c.bad)
        p = fisher_worse_p(c.bad, c.total, base.bad, base.total)
    else:
        test, critical = "farrington_manning", normal_quantile(1.0 - alpha)
        statistic = farrington_manning_z(c.bad, c.total, base.bad, base.total, worse_by)
        p = normal_sf(statistic)
    diff = c.bad / c.total - base.bad / base.total
    change = f"worse by {points(diff)}" if diff >= 0 else f"better by {points(-diff)}"
    head = f"vs baseline {_counts_text(base.bad, base.total)}: {change}"
    if p <= alpha:
        outcome, detail = FAIL, f"{head} > {points(worse_by)} ({p_text(p)})"
    elif diff > worse_by:
        outcome = PASS
        detail = f"{head}, not shown to exceed {points(worse_by)} at {_confidence_text(alpha)} ({p_text(p)})"
    else:
        outcome, detail = PASS, f"{head} ({p_text(p)})" if diff < 0 else f"{head} <= {points(worse_by)} ({p_text(p)})"
    return Verdict(outcome, test, detail, statistic=statistic, p_value=p, critical=critical, threshold=worse_by)


def judge_rate(check: str, bad: Series, total: Series, *, window: tuple[Any, Any] | None = None,
               min_total: int = 1, max_rate: float | None = None,
               baseline: Sequence[tuple[Series, Series]] | None = None, worse_by: float = 0.0,
               confidence: float = DEFAULT_CONFIDENCE) -> Judgement:
    """Judge one window of bad/total counts against max_rate and/or a baseline (one (bad, total) pair of
    series per offset, pooled). INCONCLUSIVE when the window or the baseline has too little traffic."""
    alpha = _check_rate_params(max_rate, baseline is not None, worse_by, confidence, min_total)
    fields: dict[str, Any] = {"window": window}
    try:
        c = counts(bad, total)
        fields.update(bad=c.bad, total=c.total)
        _enough(c, min_total, "window")
        base = _usable_baseline(baseline, min_total, fields)
    except _Unusable as why:
        return _no_verdict(check, str(why), **fields)
    verdicts = [max_rate_verdict(c, max_rate)] if max_rate is not None else []
    if base is not None:
        verdicts.append(baseline_verdict(c, base, worse_by, alpha))
    return _judge(check, f"rate {_counts_text(c.bad, c.total)}", verdicts, **fields)


# ---------------------------------------------------------------------------------------------------
# Watching a bake: the sequential test


def alternative_rate(p0: float, odds_ratio: float) -> float:
    """H1's rate: the odds of a bad event `odds_ratio` times those at p0 (about odds_ratio * p0 when small)."""
    return odds_ratio * p0 / (1.0 - p0 + odds_ratio * p0)


def log_likelihood_ratio(bad: int, total: int, p0: float, p1: float) -> float:
    """log P(counts | p1) / P(counts | p0). A limit of 0 tolerates no bad event; one of 1 tolerates all."""
    if p0 <= 0.0:
        return math.inf if bad else 0.0
    if p0 >= 1.0:
        return 0.0
    return bad * math.log(p1 / p0) + (total - bad) * math.log((1.0 - p1) / (1.0 - p0))


@dataclass(frozen=True)
class CusumPath:
    """Page's CUSUM over the bake: its highest value and, if it reached the bound, the stretch of periods
    (from the last restart to the first crossing) whose evidence did it."""

    best: float
    crossed_at: Hashable | None = None
    rise_from: Hashable | None = None
    rise: Counts | None = None
    rise_periods: int = 0


def cusum(steps: Sequence[tuple[Hashable, Counts]], p0: float, p1: float, bound: float) -> CusumPath:
    """The running sum of per-period log-likelihood ratios, restarted from 0 whenever it would go below."""
    s = best = 0.0
    start, run, length = None, Counts(0, 0), 0
    for stamp, c in steps:
        if s == 0.0:
            start, run, length = stamp, Counts(0, 0), 0
        s = max(0.0, s + log_likelihood_ratio(c.bad, c.total, p0, p1))
        run, length = run + c, length + 1
        best = max(best, s)
        if s >= bound:
            return CusumPath(best, stamp, start, run, length)
    return CusumPath(best)


def _watch_limit(max_rate: float | None, base: Counts | None, worse_by: float, alpha: float) -> tuple[float, str, float]:
    """The limit p0, a phrase saying where it comes from, and the alpha left for the sequential test."""
    limits = []
    if max_rate is not None:
        limits.append((max_rate, "max_rate"))
    if base is not None:
        upper = rate_upper_bound(base.bad, base.total, alpha / 2)
        limits.append((min(1.0, upper + worse_by),
                       f"baseline {_counts_text(base.bad, base.total)}, at most {percent(upper)}, + {points(worse_by)}"))
    p0, source = min(limits, key=lambda item: item[0])
    return p0, source, alpha / 2 if base is not None else alpha


def sprt_verdict(steps: Sequence[tuple[Hashable, Counts]], p0: float, source: str, alpha: float,
                 bake_periods: int, odds_ratio: float) -> Verdict:
    """FAIL when the CUSUM crosses log(K / alpha), K the bake's periods (module docstring: why). The
    p-value K * exp(-highest) bounds the chance of so high a sum anywhere in a bake at the limit."""
    k = max(bake_periods, len(steps))
    bound = math.log(k / alpha)
    path = cusum(steps, p0, alternative_rate(p0, odds_ratio), bound)
    p = min(1.0, k * math.exp(-path.best))
    limit = f"limit {percent(p0)} ({source})"
    evidence = f"log-likelihood ratio {path.best:.1f}"
    if path.rise is not None:
        outcome = FAIL
        detail = (f"{_counts_text(path.rise.bad, path.rise.total)} in {path.rise_periods} period(s) from "
                  f"{_iso(path.rise_from)} > {limit}: {evidence} >= {bound:.1f} ({p_text(p)})")
    else:
        outcome, detail = PASS, f"no sustained rise above {limit}: {evidence} < {bound:.1f}"
    return Verdict(outcome, "sprt_cusum", detail, statistic=path.best, p_value=p, critical=bound, threshold=p0)


def watch_rate(check: str, bad: Series, total: Series, *, bake_periods: int, window: tuple[Any, Any] | None = None,
               min_total: int = 1, max_rate: float | None = None,
               baseline: Sequence[tuple[Series, Series]] | None = None, worse_by: float = 0.0,
               confidence: float = DEFAULT_CONFIDENCE, odds_ratio: float = DEFAULT_ODDS_RATIO) -> Judgement:
    """Judge the bake so far: `bad`/`total` are the per-period series since the bake started (call again
    with the longer series at every poll), `bake_periods` how many periods the whole bake has. A FAIL
    needs only the evidence; short of one, too little traffic is INCONCLUSIVE, not PASS."""
    alpha = _check_rate_params(max_rate, baseline is not None, worse_by, confidence, min_total)
    _require(isinstance(bake_periods, int) and bake_periods >= 1, f"bake_periods must be >= 1, not {bake_periods!r}")
    _require(odds_ratio > 1.0, f"odds_ratio must be above 1, not {odds_ratio!r}")
    fields: dict[str, Any] = {"window": window}
    try:
        steps = periods(bad, total, "the bake")
        c = sum((s for _, s in steps), Counts(0, 0))
        fields.update(bad=c.bad, total=c.total)
        base = _usable_baseline(baseline, min_total, fields)
    except _Unusable as why:
        return _no_verdict(check, str(why), **fields)
    p0, source, sprt_alpha = _watch_limit(max_rate, base, worse_by, alpha)
    verdict = sprt_verdict(steps, p0, source, sprt_alpha, bake_periods, odds_ratio)
    if verdict.outcome != FAIL:
        try:
            _enough(c, min_total, "bake so far")
        except _Unusable as why:
            return _no_verdict(check, str(why), **fields)
    return _judge(check, f"rate {_counts_text(c.bad, c.total)} since the bake started;", [verdict], **fields)


# ---------------------------------------------------------------------------------------------------
# Value checks


def _values(series: Series, where: str) -> list[float]:
    out = []
    for _, value in series:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Unusable(f"{where} has a datapoint that is not a number: {value!r}")
        out.append(float(value))
    return out


def baseline_value(baseline: Sequence[Series]) -> float:
    """Per offset the highest period, then the median over the offsets that have datapoints."""
    per_offset = [max(v) for i, s in enumerate(baseline) if (v := _values(s, f"baseline offset {i + 1}"))]
    if not per_offset:
        raise _Unusable("the baseline has no datapoints")
    from statistics import median  # here: statistics (fractions, decimal, random) costs every plan load ~2 ms

    return median(per_offset)


def _limit_verdict(test: str, observed: float, shown: str, limit: float, too_high: bool) -> Verdict:
    bad = observed > limit if too_high else observed < limit
    sign = (">" if bad else "<=") if too_high else ("<" if bad else ">=")
    return Verdict(FAIL if bad else PASS, test, f"{shown} {sign} {test} {number(limit)}", statistic=observed,
                   threshold=limit)


def _ratio_verdict(observed: float, shown: str, base_value: float, max_ratio: float) -> Verdict:
    if base_value <= 0:
        return Verdict(INCONCLUSIVE, "max_ratio", f"{shown} vs baseline {number(base_value)}: no ratio to a "
                       "baseline that is not above 0", threshold=max_ratio)
    ratio = observed / base_value
    sign = ">" if ratio > max_ratio else "<="
    return Verdict(FAIL if ratio > max_ratio else PASS, "max_ratio",
                   f"{shown} = {ratio:.2f} x baseline {number(base_value)} {sign} max_ratio {max_ratio:g}",
                   statistic=ratio, threshold=max_ratio)


def _shown(value: float, which: str, count: int, of: str = "periods") -> str:
    """The figure judged, and which period (or row) it is when there were several."""
    return number(value) + (f" ({which} of {count} {of})" if count > 1 else "")


def judge_value(check: str, values: Series, *, stat: str = "value", window: tuple[Any, Any] | None = None,
                max_value: float | None = None, min_value: float | None = None,
                baseline: Sequence[Series] | None = None, max_ratio: float | None = None,
                of: str = "periods") -> Judgement:
    """Judge a statistic's datapoints (the plan's max, min, and max_ratio against a baseline: one series
    per offset). The worst period is judged: the highest against max and max_ratio, the lowest against min."""
    _require(max_value is not None or min_value is not None or max_ratio is not None,
             "a value check needs max, min or max_ratio")
    _require((max_ratio is None) == (baseline is None), "max_ratio and a baseline go together")
    _require(max_ratio is None or max_ratio > 0, f"max_ratio must be above 0, not {max_ratio!r}")
    fields: dict[str, Any] = {"window": window}
    try:
        observed = _values(values, "the window")
        if not observed:
            raise _Unusable("no datapoints in the window")
        high, low = max(observed), min(observed)
        fields["value"] = high
        base = None
        if max_ratio is not None:
            base = baseline_value(baseline or ())
            fields["baseline_value"] = base
    except _Unusable as why:
        return _no_verdict(check, str(why), **fields)
    highest, lowest = _shown(high, "highest", len(observed), of), _shown(low, "lowest", len(observed), of)
    verdicts = []
    if max_value is not None:
        verdicts.append(_limit_verdict("max", high, highest, max_value, too_high=True))
    if min_value is not None:
        verdicts.append(_limit_verdict("min", low, lowest, min_value, too_high=False))
    if base is not None:
        verdicts.append(_ratio_verdict(high, highest, base, max_ratio))
    return _judge(check, stat, verdicts, **fields)
