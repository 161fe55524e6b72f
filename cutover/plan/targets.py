"""`targets:`, `waves:` and `fanout:` of phases.yaml -> the model's Targets, Waves and Fanout, each
broken rule a Violation at its node (the schema has checked keys, types and formats already)."""

from __future__ import annotations

from yaml.nodes import MappingNode

from cutover.model.targets import DEFAULT_WAVE, Fanout, RolloutTarget, Wave, account_of_role
from cutover.plan.schema import Violation, fields_of, node_seconds, where


def build(top: dict, plan_account: str | None) -> tuple[tuple[RolloutTarget, ...], tuple[Wave, ...], Fanout | None]:
    """The plan's targets, waves and fanout as declared; none at all without `targets:` (the plan's own
    region in the caller's account: `model.targets.default_targets`)."""
    if "targets" not in top:
        for key in ("waves", "fanout"):
            if key in top:
                raise Violation(top[key][0], f"{key}: needs targets: (the accounts and regions the waves reach)",
                                f"declare targets:, e.g. use2: {{region: us-east-2}}, or remove {key}:")
        return (), (), None
    targets = _targets(top["targets"][1], plan_account)
    waves = _waves(*top["waves"], targets) if "waves" in top else (Wave(DEFAULT_WAVE, tuple(targets)),)
    if "waves" not in top and len(targets) > 1:
        raise Violation(top["targets"][0], f"targets: {len(targets)} targets and no waves: (the order they are reached in)",
                        f"add waves:, e.g. - {{name: pilot, targets: [{next(iter(targets))}]}} then the rest")
    fanout = _fanout(top["fanout"][1]) if "fanout" in top else None
    if fanout is not None:
        _check_fanout(top["waves"][1] if "waves" in top else top["targets"][1], waves, fanout)
    return tuple(targets.values()), waves, fanout


def _targets(node: MappingNode, plan_account: str | None) -> dict[str, RolloutTarget]:
    targets: dict[str, RolloutTarget] = {}
    places: dict[tuple[str, str | None], str] = {}
    for key, value in node.value:
        fields = fields_of(value)
        here = ("targets", key.value)
        role = fields["role_arn"][1].value if "role_arn" in fields else None
        account = fields["account"][1].value if "account" in fields else (account_of_role(role) if role else plan_account)
        if role and account_of_role(role) != account:
            raise Violation(fields["role_arn"][1], f"{where(here + ('role_arn',))}: the role is in account "
                            f"{account_of_role(role)}, the target says {account}", "make account: and the role's account agree")
        if "external_id" in fields and not role:
            raise Violation(fields["external_id"][0], f"{where(here + ('external_id',))}: an external_id is only sent "
                            "when assuming role_arn", "add role_arn:, or remove external_id:")
        target = RolloutTarget(key.value, fields["region"][1].value, account, role,
                        fields["external_id"][1].value if "external_id" in fields else None)
        place = (target.region, target.account)
        if place in places:
            raise Violation(key, f"{where(here)}: the same account and region as target {places[place]!r} ({target.where})",
                            "each target is one account and region: remove one of them")
        places[place] = key.value
        targets[key.value] = target
    return targets


def _waves(key, node, targets: dict[str, RolloutTarget]) -> tuple[Wave, ...]:
    waves: list[Wave] = []
    seen_wave: dict[str, int] = {}
    placed: dict[str, str] = {}
    for i, item in enumerate(node.value):
        fields = fields_of(item)
        name_node = fields["name"][1]
        if name_node.value in seen_wave:
            raise Violation(name_node, f"{where(('waves', i, 'name'))}: duplicate wave {name_node.value!r} "
                            f"(first on line {seen_wave[name_node.value]})", "rename one of them")
        seen_wave[name_node.value] = name_node.start_mark.line + 1
        names = []
        for j, t in enumerate(fields["targets"][1].value):
            here = ("waves", i, "targets", j)
            if t.value not in targets:
                raise Violation(t, f"{where(here)}: unknown target {t.value!r}",
                                f"declare it under targets: (declared: {', '.join(targets) or 'none'})")
            if t.value in placed:
                raise Violation(t, f"{where(here)}: target {t.value!r} is already in wave {placed[t.value]!r}",
                                "a target is reached once per phase: keep it in one wave")
            placed[t.value] = name_node.value
            names.append(t.value)
        waves.append(Wave(name_node.value, tuple(names), node_seconds(fields["bake"][1]) if "bake" in fields else 0.0))
    if left := [t for t in targets if t not in placed]:
        raise Violation(key, f"waves: target(s) {', '.join(left)} in no wave: no phase would ever reach them",
                        "add them to a wave, or remove them from targets:")
    return tuple(waves)


def _fanout(node: MappingNode) -> Fanout:
    fields = fields_of(node)
    return Fanout(first_wave_max=int(fields["first_wave_max"][1].value) if "first_wave_max" in fields else 1,
                  factor=float(fields["factor"][1].value) if "factor" in fields else 3.0)


def _check_fanout(node, waves: tuple[Wave, ...], fanout: Fanout) -> None:
    previous = 0
    for i, wave in enumerate(waves):
        most = fanout.limit(i, previous)
        if len(wave.targets) > most:
            at = node.value[i] if hasattr(node, "value") and isinstance(node.value, list) and i < len(node.value) else node
            grows = (f"the first wave may hold {most}" if i == 0
                     else f"after {previous} target(s), fanout allows at most {most} (factor {fanout.factor:g})")
            raise Violation(at, f"waves[{i}] ({wave.name}): {len(wave.targets)} targets; {grows}",
                            "split it into more waves, or raise fanout: (first_wave_max, factor)")
        previous = len(wave.targets)
