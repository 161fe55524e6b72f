"""The write pacer on an injected clock: no sleeping, no timing assertions; what is asserted is when
each write was sent, on the fake clock."""

import pytest

from cutover.core.flags import PACING_MARGIN, Pacer, PatientStore
from cutover.errors import AwsError
from cutover.ports import Param
from cutover.retry import backoff
from cutover.testing.clock import FakeClock

RATE = 3
INTERVAL = 1 / RATE + PACING_MARGIN


class TimedStore:
    """Each put takes `rtts[i]` seconds of fake time (the last one repeats); `throttle` puts fail first."""

    def __init__(self, clock: FakeClock, rtts=(0.02,), throttle: int = 0) -> None:
        self.clock, self.rtts, self.throttle = clock, list(rtts), throttle
        self.sent: list[float] = []
        self.values: dict[str, str] = {}

    def put(self, name, value, *, secure=False, overwrite=True):
        self.sent.append(self.clock.monotonic())
        self.clock.advance(self.rtts[min(len(self.sent), len(self.rtts)) - 1])
        if self.throttle:
            self.throttle -= 1
            raise AwsError("Rate exceeded", code="ThrottlingException", transient=True)
        self.values[name] = value
        return len(self.sent)

    def get_many(self, names):
        return {n: Param(n, self.values[n], 1) for n in names if n in self.values}


def write(n: int, store: TimedStore, clock: FakeClock) -> list[float]:
    patient = PatientStore(store, clock, Pacer(RATE, clock))
    for i in range(n):
        patient.put(f"/p/{i}", "off")
    return [t - store.sent[0] for t in store.sent]


def test_writes_start_one_interval_apart_never_in_a_burst():
    clock = FakeClock()
    starts = write(6, TimedStore(clock), clock)
    assert starts == pytest.approx([i * INTERVAL for i in range(6)])
    assert INTERVAL == pytest.approx(1 / RATE + PACING_MARGIN) and PACING_MARGIN <= 0.005


def test_a_slow_round_trip_spaces_the_next_write_from_its_late_arrival():
    clock = FakeClock()
    # The third write takes 0.2 s instead of 0.02: it may have reached AWS up to 0.18 s late.
    starts = write(4, TimedStore(clock, rtts=(0.02, 0.02, 0.2, 0.02)), clock)
    assert starts[:3] == pytest.approx([0, INTERVAL, 2 * INTERVAL])
    assert starts[3] == pytest.approx(2 * INTERVAL + 0.18 + INTERVAL)


def test_only_a_real_throttle_backs_off_then_the_retry_takes_the_next_slot():
    clock = FakeClock()
    store = TimedStore(clock, throttle=1)
    starts = write(2, store, clock)
    # The throttled attempt, its retry after our back-off (later than the next slot), the next write.
    assert starts[1] == pytest.approx(0.02 + backoff(0))
    assert starts[2] == pytest.approx(starts[1] + INTERVAL)
    assert store.values == {"/p/0": "off", "/p/1": "off"}
