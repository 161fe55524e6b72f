"""Where a plan's flags live (targets: an account and a region each) and the order a phase reaches them
(waves). Pure: no AWS, no YAML.

A plan without `targets:` has one target, the plan's own region in the caller's account, in one wave:
every single-target plan reads exactly as before. A step is (phase, wave): an advance takes one step,
the next wave of the current phase or the first wave of the next phase."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_TARGET = "default"  # the name of the one target of a plan without `targets:`
DEFAULT_WAVE = "all"  # the one wave of a plan without `waves:`


@dataclass(frozen=True)
class RolloutTarget:
    name: str
    region: str
    account: str | None = None  # None: the caller's own account
    role_arn: str | None = None  # assumed before each step when given
    external_id: str | None = None  # as written: may hold ${ENV} references, expanded when assumed

    @property
    def where(self) -> str:
        return f"{self.region}, account {self.account}" if self.account else f"{self.region}, the caller's account"


@dataclass(frozen=True)
class TargetScope:
    """What a target's plan (`Plan.at_target`) knows of the others: its own name, and the regions of every
    target in its account (the guard's roles are one pair per account: IAM is global)."""

    name: str
    account_regions: tuple[str, ...]


@dataclass(frozen=True)
class Wave:
    name: str
    targets: tuple[str, ...]
    bake: float = 0.0  # seconds between the previous wave entering a phase and this one


@dataclass(frozen=True)
class Fanout:
    """How fast waves may grow: the first at most `first_wave_max` targets, each next one at most
    `factor` times the one before (the Builders' Library's safe-deployment waves)."""

    first_wave_max: int = 1
    factor: float = 3.0

    def limit(self, index: int, previous: int) -> int:
        """The most targets wave `index` (0-based) may hold after a wave of `previous` targets."""
        return self.first_wave_max if index == 0 else math.floor(previous * self.factor)


def default_targets(region: str) -> tuple[tuple[RolloutTarget, ...], tuple[Wave, ...]]:
    return (RolloutTarget(DEFAULT_TARGET, region),), (Wave(DEFAULT_WAVE, (DEFAULT_TARGET,)),)


def steps(phases: tuple[str, ...], waves: tuple[Wave, ...]) -> list[tuple[str, str]]:
    """Every (phase, wave) in the order advances take them: each phase wave by wave."""
    return [(p, w.name) for p in phases for w in waves]


def rollback_waves(targets: tuple[RolloutTarget, ...], waves: tuple[Wave, ...],
                   only: str | None = None) -> list[list[RolloutTarget]]:
    """The targets in the order a rollback restores them: later waves first, a wave's targets together
    (`only`: that one target). The runbook's manual rollback follows the same order."""
    by_name = {t.name: t for t in targets}
    order = [[by_name[n] for n in w.targets if only in (None, n)] for w in reversed(waves)]
    return [w for w in order if w]


def account_of_role(role_arn: str) -> str:
    """arn:aws:iam::222222222222:role/name -> 222222222222."""
    return role_arn.split(":")[4]


def next_step(phases: tuple[str, ...], waves: tuple[Wave, ...], at: dict[str, str]) -> tuple[int, Wave, list[str]] | None:
    """The next step from where each target is (`at`: target -> its phase, or pending / rolled_back:
    before the first): (index of the phase to enter, the wave, its targets still behind). None when
    every target is at the last phase. The first wave with a target behind moves first, so a later wave
    never enters a phase before every earlier wave has."""
    index = {t: phases.index(p) if p in phases else -1 for t, p in at.items()}
    lowest = min(index.values())
    if lowest == len(phases) - 1:
        return None
    for wave in waves:
        behind = [t for t in wave.targets if index[t] == lowest]
        if behind:
            return lowest + 1, wave, behind
    return None
