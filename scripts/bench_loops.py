#!/usr/bin/env python3
"""The hand-written alternatives to `cutover rollback` that scripts/bench.py runs side by side, each as
its own process (so each pays its own start-up, as it would in an incident):

    python scripts/bench_loops.py MODE NAMES_FILE VALUE RATE

MODE is one of
    exact     each PutParameter 1/RATE s after the previous one started, then read everything back and
              rewrite what is wrong
    paced     the same with 10 ms more between writes
    burst     bursts of 3 writes, each 1 s after the write 3 before it (a bucket known to hold 3), then
              the same read-back
    default   every write at once, one after another, boto3's default retry mode; no read-back
    adaptive  the same with boto3's adaptive retry mode (client-side rate limiting); no read-back

Prints `confirmed NAME MONOTONIC` for each parameter a read-back saw at VALUE (CLOCK_MONOTONIC is one
clock for every process on the machine, so the benchmark lines it up with the proxy's timeline).
"""

from __future__ import annotations

import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BURST = 3
MARGIN = 0.01  # s; the quota is any one-second window, measured where the requests arrive


def schedule(mode: str, rate: float):
    """When write i may start, from the starts of the writes before it (None: as soon as the last ended).
    Spaced from the writes actually sent, not from a fixed timetable: one slow call must not make the
    next ones catch up in a burst the quota refuses."""
    if mode == "exact":  # exactly 1/RATE after the previous write started
        return lambda starts: starts[-1] + 1 / rate
    if mode == "paced":  # the same, plus the margin: the quota counts arrivals, which jitter by milliseconds
        return lambda starts: starts[-1] + 1 / rate + MARGIN
    if mode == "burst":  # 3 at once, then each 1 s after the one 3 before
        return lambda starts: starts[-BURST] + 1.0 + MARGIN if len(starts) >= BURST else starts[-1]
    return None


def write_all(client, names: list[str], value: str, at) -> None:
    starts: list[float] = []
    for name in names:
        if at is not None and starts:
            time.sleep(max(0.0, at(starts) - time.monotonic()))
        starts.append(time.monotonic())
        try:
            client.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        except ClientError:
            pass  # counted by the benchmark as a flag left wrong, unless a read-back repairs it


def read_back(client, names: list[str], value: str, at) -> None:
    """Read in tens (GetParameters' limit); rewrite the wrong ones at the same pace, until none is left."""
    wrong = list(names)
    while wrong:
        found = {}
        for i in range(0, len(wrong), 10):
            found.update({p["Name"]: p["Value"] for p in client.get_parameters(Names=wrong[i:i + 10])["Parameters"]})
        now = time.monotonic()
        for name in wrong:
            if found.get(name) == value:
                print(f"confirmed {name} {now:.6f}", flush=True)
        wrong = [n for n in wrong if found.get(n) != value]
        write_all(client, wrong, value, at)


def main(mode: str, names_file: str, value: str, rate: str) -> int:
    names = open(names_file, encoding="utf-8").read().split()
    config = Config(retries={"mode": "adaptive"}) if mode == "adaptive" else None
    client = boto3.client("ssm", config=config)
    at = schedule(mode, float(rate))
    write_all(client, names, value, at)
    if mode in ("exact", "paced", "burst"):
        read_back(client, names, value, at)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
