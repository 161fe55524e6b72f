"""Run one check (never raising) or a phase's gates (concurrently, results in plan order)."""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterable

from cutover.errors import UsageError
from cutover.model.plan import Plan

from cutover import checks as check_types
from cutover.checks.fmt import duration, one_line
from cutover.checks.interface import Fail, Passed, Skip

from .context import GateContext
from .result import FAIL, GateResult, failed, passed, skipped

log = logging.getLogger("cutover.gates")

MAX_WORKERS = 8
GRACE = 5.0  # how far past its own timeout a check may run before the runner gives up on it
_POLL = 0.25  # the runner's watchdog granularity (completions wake it at once)


def _clean(ctx: GateContext, text: str) -> str:
    """Every string leaving a gate: through the redactor, on one line."""
    return one_line(ctx.redactor.text(text or ""))


def _figures(ctx: GateContext, data: dict | None) -> dict | None:
    return ctx.redactor.value(data) if data is not None else None


def run_check(check, ctx: GateContext) -> GateResult:
    """Run one check. Never raises: any failure, expected or not, is a FAIL with a next action."""
    t0 = ctx.clock.monotonic()
    try:
        listed = check_types.by_kind().get(check.type)
        if listed is None:
            raise Fail(f"unknown check type {check.type!r}", "fix the check's type in the plan (see `cutover validate --schema`)")
        out = listed.run(check, ctx)
        detail, data = (out.detail, out.data) if isinstance(out, Passed) else (out, None)
        return passed(check, _clean(ctx, detail), ctx.clock.monotonic() - t0, _figures(ctx, data))
    except Skip as s:
        return skipped(check, _clean(ctx, s.detail), _clean(ctx, s.next_action))
    except Fail as f:
        return failed(check, _clean(ctx, f.detail), _clean(ctx, f.next_action), ctx.clock.monotonic() - t0,
                      _figures(ctx, f.data))
    except Exception as exc:  # noqa: BLE001 - fail closed; the args may hold secrets, so only the class is shown
        log.debug("gate %s crashed: %s", getattr(check, "name", "?"), ctx.redactor.text(traceback.format_exc()))
        return failed(
            check,
            f"internal error in the {getattr(check, 'type', '?')} check: {type(exc).__name__}",
            "re-run with -v for the (redacted) traceback; if it persists, report a cutover bug with the evidence",
            ctx.clock.monotonic() - t0,
        )


def _timed_out(check, elapsed: float) -> GateResult:
    return failed(
        check,
        f"timed out after {duration(check.timeout)}",
        "the check hung past its timeout: check connectivity to what it reaches (AWS, upstream), then re-run with -v",
        elapsed,
    )


def run_gates(
    plan: Plan,
    phase_name: str,
    ctx: GateContext,
    skip: Iterable[str] = (),
    *,
    grace: float = GRACE,
    max_workers: int = MAX_WORKERS,
) -> list[GateResult]:
    """The phase's gates, run concurrently; one result per gate, in the phase's order."""
    try:
        phase = plan.phase(phase_name)
    except KeyError:
        raise UsageError(f"unknown phase {phase_name!r}", f"phases: {', '.join(plan.phase_names)}") from None
    ctx = dataclasses.replace(ctx, bake=phase.bake)  # a window's `stay_open_for: bake` is this phase's
    skip = {skip} if isinstance(skip, str) else set(skip)
    if unknown := sorted(skip - set(plan.checks)):
        raise UsageError(f"--skip names no check: {', '.join(unknown)}", f"checks: {', '.join(plan.checks)}")

    results: list[GateResult | None] = [None] * len(phase.gates)
    jobs: list[tuple[int, object]] = []
    for i, name in enumerate(phase.gates):
        check = plan.checks.get(name)
        if check is None:  # the plan loader rejects this; fail closed if it slipped through
            results[i] = GateResult(name, "unknown", FAIL, "check is not declared in the plan",
                                    "declare it under checks: or remove it from the phase's gates")
        elif name in skip:
            results[i] = skipped(check, "skipped by --skip")
        else:
            jobs.append((i, check))

    if jobs:
        _run_concurrently(jobs, ctx, results, grace, max_workers)
    return results  # type: ignore[return-value]


def _run_concurrently(jobs, ctx: GateContext, results: list, grace: float, max_workers: int) -> None:
    # Watchdog deadlines use real time from when each check actually starts (queued checks wait their turn).
    started: dict[int, float] = {}

    def job(i: int, check) -> GateResult:
        started[i] = time.monotonic()
        return run_check(check, ctx)

    pool = ThreadPoolExecutor(max_workers=min(max_workers, len(jobs)), thread_name_prefix="cutover-gate")
    try:
        futures: dict[Future, tuple[int, object]] = {pool.submit(job, i, c): (i, c) for i, c in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_next_wake(pending, futures, started, grace), return_when=FIRST_COMPLETED)
            for f in done:
                i, check = futures[f]
                results[i] = f.result()  # run_check never raises
            now = time.monotonic()
            for f in list(pending):
                i, check = futures[f]
                if i in started and now - started[i] > check.timeout + grace:
                    results[i] = _timed_out(check, now - started[i])
                    pending.discard(f)  # its thread is abandoned; it ends on its own (socket/subprocess timeouts)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _next_wake(pending, futures, started: dict[int, float], grace: float) -> float:
    """Seconds until the nearest watchdog deadline among started checks, at most _POLL."""
    now, wake = time.monotonic(), _POLL
    for f in pending:
        i, check = futures[f]
        if i in started:
            wake = min(wake, started[i] + check.timeout + grace - now)
    return max(wake, 0.01)
