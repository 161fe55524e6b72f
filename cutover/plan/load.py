"""phases.yaml -> a frozen `Plan`, with every error reported as FILE:LINE:COL.

Three steps, each refusing with a `PlanError`:
1. read: UTF-8 only, size-capped; YAML composed (not constructed) by pyyaml's composer with limits that
   refuse anchors/aliases (no alias bombs), unknown tags, and documents too big or too deep; its events
   come from libyaml (C) where pyyaml has it and the two read the text alike, else from pure pyyaml;
2. structure: the node tree is checked against the JSON Schema (`cutover.plan.schema`), the one source of
   truth for keys, types and value formats;
3. meaning: references (phase `set` -> flags, `gates` -> checks), duplicate names and parameters,
   reserved phase names, then the model is built.

Kept light on purpose: `cutover validate` runs before any AWS call, so no boto3 (nor rich, typer...)
is imported here.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from cutover import checks as check_types
from cutover.plan import schema
from cutover.plan import targets as plan_targets
from cutover.errors import PlanError
from cutover.model.plan import Check, Flag, Phase, Plan, LambdaTarget, SsmTarget
from cutover.redact import REDACTOR, sensitive_values, shown
from cutover.plan.schema import Violation, fields_of, kind, node_seconds, plan_schema, scalar, where
from cutover.model.durations import format_duration

__all__ = ["load_plan", "parse_plan", "plan_schema", "summarize"]

MAX_BYTES = 1024 * 1024  # a plan is a page of YAML; anything bigger is a mistake
MAX_NODES = 20_000  # every YAML value counts; caps work even without aliases
MAX_DEPTH = 32  # pyyaml's composer recurses; the plan itself is at most ~6 levels deep

_Y = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_Y + t for t in ("str", "int", "float", "bool", "null", "timestamp", "value")}
_MERGE = _Y + "merge"


class _Pos(NamedTuple):
    """A 0-based position, shaped like a yaml Mark."""

    line: int
    column: int


# --- reading -----------------------------------------------------------------------------------------


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan file at `path`; PlanError (with a line and column) if it is unusable."""
    name = str(path)
    try:
        _check_plan_file(name, os.stat(path))  # before open(): opening a FIFO for reading waits for a writer
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: a file that grows after the check must not hang us
    except FileNotFoundError:
        raise PlanError(name, 1, 1, "plan file not found", "pass --plan PATH or set CUTOVER_PLAN") from None
    except NotADirectoryError:
        raise PlanError(name, 1, 1, "plan file not found (a folder in its path is a file)", "pass --plan PATH") from None
    except PermissionError:
        raise PlanError(name, 1, 1, "cannot read the plan file: permission denied", "check its permissions") from None
    except OSError as e:
        raise PlanError(name, 1, 1, f"cannot read the plan file: {e.strerror or e}", "check the path") from None
    plan = parse_plan(raw, name)
    # From here on no output of this process can show a sensitive flag's declared values.
    REDACTOR.register_all(sensitive_values(plan))
    return plan


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def _check_plan_file(name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise PlanError(name, 1, 1, "this is a directory, not a plan file", "pass --plan PATH/phases.yaml")
    if not stat.S_ISREG(st.st_mode):
        what = next((word for test, word in _NOT_REGULAR if test(st.st_mode)), "not a file")
        raise PlanError(name, 1, 1, f"not a regular file ({what})", "pass --plan PATH of a YAML file")
    if st.st_size > MAX_BYTES:
        raise PlanError(name, 1, 1, *_too_large(st.st_size))


def _too_large(size: int) -> tuple[str, str]:
    return f"the plan is too large ({size} bytes, at most {MAX_BYTES})", "a plan is a short YAML file; is this the right file?"


def parse_plan(text_or_bytes: str | bytes, path: str | Path = "phases.yaml") -> Plan:
    """Validate a plan given as text or bytes; `path` is only used in messages and `Plan.path`."""
    path = str(path)
    try:
        raw, text = _decode(text_or_bytes)
        root = _compose(text)
        schema.validate(root)
        return _build(root, digest=hashlib.sha256(raw).hexdigest(), path=path)
    except Violation as v:
        raise PlanError(path, v.mark.line + 1, v.mark.column + 1, v.message, v.hint) from None


def _decode(data: str | bytes) -> tuple[bytes, str]:
    """The file's bytes (for the digest) and its text; only UTF-8 is accepted."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise Violation(_position(data, e.start), "the plan contains a character that is not valid Unicode",
                            "save the file as UTF-8") from None
        text = data
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            pos = _Pos(raw.count(b"\n", 0, e.start), e.start - (raw.rfind(b"\n", 0, e.start) + 1))
            raise Violation(pos, f"the plan is not UTF-8 text (byte 0x{raw[e.start]:02x})",
                            "save the file as UTF-8") from None
    if len(raw) > MAX_BYTES:
        raise Violation(_Pos(0, 0), *_too_large(len(raw)))
    return raw, text


def _position(text: str, index: int) -> _Pos:
    line = text.count("\n", 0, index)
    return _Pos(line, index - (text.rfind("\n", 0, index) + 1))


class _Limits:
    """The composer's limits, for either parser under it: no anchors or aliases, core tags only, bounded
    size and depth (mixed in before pyyaml's `Composer`)."""

    def compose_document(self) -> Node:
        self._nodes, self._depth = 0, 0
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise Violation(event.start_mark, "YAML anchors and aliases (&name, *name) are not supported",
                            "write each value out in full")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise Violation(event.start_mark, f"the plan has too many YAML values (more than {MAX_NODES})",
                            "a plan is a short YAML file; is this the right file?")
        if self._depth >= MAX_DEPTH:
            raise Violation(event.start_mark, f"the plan is nested too deeply (more than {MAX_DEPTH} levels)",
                            "check the indentation")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        _check_tag(node)
        return node


class _Loader(_Limits, yaml.SafeLoader):
    """Pure Python: pyyaml's reader, scanner, parser and composer. Its messages are the plan's YAML errors."""


if yaml.__with_libyaml__:

    class _LibyamlLoader(_Limits, Composer, Resolver, yaml._yaml.CParser):
        """libyaml's scanner and parser (C, several times faster) feeding pyyaml's composer, so the
        limits, tags and nodes are the pure-Python loader's; its marks have line, column and index only."""

        def __init__(self, text: str) -> None:
            yaml._yaml.CParser.__init__(self, text)
            Composer.__init__(self)
            Resolver.__init__(self)

        def compose_scalar_node(self, anchor: Any) -> ScalarNode:
            node = super().compose_scalar_node(anchor)
            if node.style == "":  # libyaml's word for plain; pyyaml says None (and the schema reads it)
                node.style = None
            return node

else:
    _LibyamlLoader = None  # pyyaml built without libyaml: everything is read by `_Loader`

_READ_DIFFERENTLY = "\t?!\ufeff"  # libyaml and pyyaml disagree on these (tests/unit/test_plan_loaders.py)


def _libyaml_reads_it_alike(text: str) -> bool:
    """False for text libyaml may read otherwise than pyyaml: with a tab (`v\tersion:` is a key to
    libyaml), '?' (`{a?b: 1}`: a key), '!' (`key: !` is '' to libyaml, null to pyyaml), a byte-order mark
    anywhere, a character pyyaml's reader refuses as unprintable, or no line break at its end (libyaml
    then puts the end of the stream on a line after the last). (~40 us for a 12 KB plan.)"""
    return ((not text or text.endswith("\n")) and not any(c in text for c in _READ_DIFFERENTLY)
            and not yaml.reader.Reader.NON_PRINTABLE.search(text))


def _check_tag(node: Node) -> None:
    if node.tag == _MERGE:
        raise Violation(node, "'<<' (a YAML merge key) is not supported", 'quote it if you mean the text: "<<"')
    expected = {MappingNode: {_Y + "map"}, SequenceNode: {_Y + "seq"}}.get(type(node), _SCALAR_TAGS)
    if node.tag not in expected:
        tag = node.tag.replace(_Y, "!!", 1)
        raise Violation(node, f"unsupported YAML tag {tag!r}", "remove the tag: a plan is plain YAML")


def _compose(text: str) -> MappingNode:
    root, _ = _document(text)
    if root is None or (isinstance(root, ScalarNode) and kind(root) == "null"):
        raise Violation(_Pos(0, 0), "the plan is empty", "run `cutover validate --schema` for the format")
    if not isinstance(root, MappingNode):
        raise Violation(root, "the plan must be a mapping of keys (version:, name:, flags:, phases: ...)",
                        "run `cutover validate --schema` for the format")
    return root


def _document(text: str) -> tuple[Node | None, str]:
    """The text's one YAML document as nodes, and which parser read it: "libyaml" when pyyaml has it and
    the text holds nothing the two read differently, else "pyyaml" (also when libyaml's reading is refused,
    by YAML or by a limit: pyyaml then finds the same refusal, in its own words as always)."""
    if _LibyamlLoader is not None and _libyaml_reads_it_alike(text):
        loader = _LibyamlLoader(text)
        try:
            return loader.get_single_node(), "libyaml"
        except (yaml.YAMLError, Violation):
            pass
        finally:
            loader.dispose()
    return _pyyaml_document(text), "pyyaml"


def _pyyaml_document(text: str) -> Node | None:
    try:
        loader = _Loader(text)  # a str is checked for unprintable characters here
    except yaml.reader.ReaderError as e:
        raise _reader_violation(e, text) from None
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        raise _syntax_violation(e) from None
    except yaml.reader.ReaderError as e:
        raise _reader_violation(e, text) from None
    except yaml.YAMLError as e:
        raise Violation(_Pos(0, 0), "invalid YAML: " + _one_line(str(e)), "check the file's syntax") from None
    finally:
        loader.dispose()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _syntax_violation(e: yaml.MarkedYAMLError) -> Violation:
    mark = e.problem_mark or e.context_mark or _Pos(0, 0)
    problem = _one_line(e.problem or "syntax error")
    context = f" ({_one_line(e.context)})" if e.context else ""
    tip = "indent with spaces, not tabs" if "\\t" in problem else "check indentation, quoting and ':' near here"
    return Violation(mark, f"invalid YAML: {problem}{context}", tip)


def _reader_violation(e: yaml.reader.ReaderError, text: str) -> Violation:
    char = e.character if isinstance(e.character, int) else ord(e.character or "\0")
    return Violation(_position(text, e.position), f"the plan contains an unprintable character (#x{char:04x})",
                     "remove it: a plan is plain text")


# --- building the model ------------------------------------------------------------------------------


def _value(fields: dict[str, tuple[Node, Node]], key: str, default: Any = None) -> Any:
    return scalar(fields[key][1]) if key in fields else default


def _build(root: MappingNode, digest: str, path: str) -> Plan:
    top = fields_of(root)
    name = top["name"][1].value
    state_prefix = _value(top, "state_prefix", f"/cutover/{name}")
    flags = _flags(top["flags"][1], state_prefix, top["region"][1].value)
    checks = _checks(top["checks"][1]) if "checks" in top else {}
    phases = _phases(top["phases"][1], {f.name for f in flags}, checks)
    _public_values(top["flags"][1], flags, phases)
    targets, waves, fanout = plan_targets.build(top, _value(top, "account", None))
    plan = Plan(
        name=name,
        region=top["region"][1].value,
        state_prefix=state_prefix,
        flags=flags,
        checks=checks,
        phases=phases,
        description=_value(top, "description", ""),
        write_rate=float(_value(top, "write_rate", 3.0)),
        lock_lease=node_seconds(top["lock_lease"][1]) if "lock_lease" in top else 900.0,
        version=_value(top, "version"),
        notify_topic=fields_of(top["notify"][1])["sns_topic_arn"][1].value if "notify" in top else None,
        account=_value(top, "account", None),
        targets=targets,
        waves=waves,
        fanout=fanout,
        digest=digest,
        path=path,
    )
    if plan.functions:
        _check_environment_sizes(plan, root)
    return plan


def _flags(node: MappingNode, state_prefix: str, region: str) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    owner: dict[str, str] = {}  # target key -> flag name
    spelled: dict[str, Node] = {}  # Lambda function name -> the first node naming it
    keyed: dict[str, tuple] = {}  # Lambda function name -> (its kms_key or None, the node that said so)
    for key, value in node.value:
        fields = fields_of(value)
        if "parameter" in fields:
            target = _ssm_target(fields, key.value, state_prefix)
        else:
            target = _lambda_target(fields, key.value, region, spelled, keyed)
        anchor = fields.get("parameter", fields.get("lambda"))[1]
        if target.key in owner:
            raise Violation(anchor, f"{where(('flags', key.value))}: {target.describe()} is already the target of flag "
                            f"{owner[target.key]!r}", "each flag needs its own parameter or variable")
        owner[target.key] = key.value
        flags.append(
            Flag(
                name=key.value,
                target=target,
                rollback=fields["rollback"][1].value,
                sensitive=_value(fields, "sensitive", False),
                secure=_value(fields, "secure", False),
                description=_value(fields, "description", ""),
                line=key.start_mark.line + 1,
                public_values=tuple(v.value for v in fields["public_values"][1].value) if "public_values" in fields else (),
            )
        )
    return tuple(flags)


def _public_values(node: MappingNode, flags: tuple[Flag, ...], phases: tuple[Phase, ...]) -> None:
    """`public_values` belong to a sensitive flag, and each is a value the plan gives it."""
    for (key, value), flag in zip(node.value, flags):
        fields = fields_of(value)
        if "public_values" not in fields:
            continue
        here = ("flags", flag.name, "public_values")
        if not flag.sensitive:
            raise Violation(fields["public_values"][0], f"{where(here)}: only a sensitive flag has public values "
                            "(every value of this flag is shown)", "add sensitive: true, or remove public_values")
        declared = [flag.rollback] + [p.set[flag.name] for p in phases if flag.name in p.set]
        for i, item in enumerate(fields["public_values"][1].value):
            if item.value not in declared:
                raise Violation(item, f"{where((*here, i))}: {item.value!r} is neither the flag's rollback value nor "
                                "a value a phase sets", "list only values the plan gives this flag (its other "
                                "values stay hidden, so they are not listed here)")


def _ssm_target(fields: dict, flag: str, state_prefix: str) -> SsmTarget:
    param_node = fields["parameter"][1]
    param, here = param_node.value, ("flags", flag, "parameter")
    if param == state_prefix or param.startswith(state_prefix + "/"):
        raise Violation(param_node, f"{where(here)}: {param} is inside state_prefix {state_prefix}, "
                        "where cutover keeps its state and lock", "move the flag or set another state_prefix")
    return SsmTarget(param)


def _lambda_target(fields: dict, flag: str, region: str, spelled: dict[str, Node], keyed: dict) -> LambdaTarget:
    here = ("flags", flag, "lambda")
    if _value(fields, "secure", False):
        raise Violation(fields["secure"][0], f"{where(('flags', flag, 'secure'))}: `secure` is for SSM parameters; "
                        "a Lambda environment is always encrypted at rest", "remove `secure`; keep `sensitive: true` "
                        "to keep the value out of output")
    target_fields = fields_of(fields["lambda"][1])
    fn_node = target_fields["function"][1]
    key_node = target_fields.get("kms_key", (None, None))[1]
    target = LambdaTarget(fn_node.value, target_fields["variable"][1].value,
                          kms_key=key_node.value if key_node is not None else None)
    arn_region = fn_node.value.split(":")[3] if fn_node.value.startswith("arn:") else region
    if arn_region != region:
        raise Violation(fn_node, f"{where((*here, 'function'))}: the function's ARN is in {arn_region}, the plan in "
                        f"{region}", "name a function in the plan's region (or change `region:`)")
    first = spelled.setdefault(target.function_name, fn_node)
    if first.value != fn_node.value:
        raise Violation(fn_node, f"{where((*here, 'function'))}: function {target.function_name} is named "
                        f"{first.value!r} on line {first.start_mark.line + 1} and {fn_node.value!r} here",
                        "spell it the same way in every flag (its name, or the same ARN)")
    _check_kms_key(target, key_node or fields["lambda"][1], here, region, keyed)
    return target


def _check_kms_key(target: LambdaTarget, node: Node, here: tuple, region: str, keyed: dict) -> None:
    """A function's environment has one key: every flag of the function names the same one (or none)."""
    at = where((*here, "kms_key"))
    if target.kms_key is not None and target.kms_key.split(":")[3] != region:
        raise Violation(node, f"{at}: the key's ARN is in {target.kms_key.split(':')[3]}, the plan in {region}",
                        "Lambda uses a key in the function's region: name that one (the plan's region)")
    first_key, first_node = keyed.setdefault(target.function_name, (target.kms_key, node))
    if first_key != target.kms_key:
        said = f"kms_key {first_key!r}" if first_key else "no kms_key"
        raise Violation(node, f"{at}: function {target.function_name} has {said} on line {first_node.start_mark.line + 1} "
                        f"and {repr(target.kms_key) if target.kms_key else 'none here'}",
                        "a function's environment has one key: give every flag of the function the same kms_key")


def _check_environment_sizes(plan: Plan, root: MappingNode) -> None:
    """Lambda refuses an environment over 4 KB: the plan's own variables of a function must fit in
    every state, with room left for the function's other variables (checked again before a write)."""
    from cutover.limits import ENV_LIMIT, env_size

    top = fields_of(root)
    flag_nodes = fields_of(top["flags"][1])
    phase_nodes = top["phases"][1].value
    for state_index, state in enumerate(["rolled_back", *plan.phase_names]):
        values = plan.values_for(state)
        for function in plan.functions:
            mine = [f for f in plan.flags if isinstance(f.target, LambdaTarget) and f.target.function == function]
            size = env_size({f.target.variable: values[f.name] for f in mine})
            if size <= ENV_LIMIT:
                continue
            longest = max(mine, key=lambda f: len(values[f.name]))
            if state_index == 0:
                anchor = fields_of(flag_nodes[longest.name][1])["rollback"][1]
                when = "with the rollback values"
            else:  # point at the largest value this phase sets for the function (else at the phase)
                phase = fields_of(phase_nodes[state_index - 1])
                sets = fields_of(phase["set"][1]) if "set" in phase else {}
                here = [f for f in mine if f.name in sets]
                longest = max(here, key=lambda f: len(values[f.name])) if here else longest
                anchor = sets[longest.name][1] if here else phase["name"][1]
                when = f"in phase {state}"
            raise Violation(anchor, f"the environment of Lambda function {function} would be {size} bytes {when}, "
                            f"over Lambda's {ENV_LIMIT}-byte limit", "shorten the values (the largest is flag "
                            f"{longest.name!r}); the function's other variables count too")


# How each check key becomes a model value; a key means the same thing in every check type.
_DURATIONS = {"timeout", "max_age", "window", "quiet_for"}
_LISTS = {"present", "secret_ids", "expect_status", "run", "names", "env", "allowed_hosts", "allow", "deny",
          "change_calendars"}
_TEXT_MAPS = {"equals", "headers"}
_DATA = {"json_match", "variables"}


class _Nodes:
    """The node readers a check type's `value` hook gets (`cutover.checks.interface.Nodes`)."""

    fields = staticmethod(fields_of)
    seconds = staticmethod(node_seconds)
    scalar = staticmethod(scalar)

    @staticmethod
    def number(node: Node) -> float:
        return float(scalar(node))


def _check_value(key: str, node: Node, path: tuple, check_type: check_types.CheckType) -> Any:
    if (value := check_type.value(key, node, _Nodes)) is not None:  # a key the type reads itself
        return value
    if key in _DURATIONS or (key == "stay_open_for" and node.value != "bake"):
        return node_seconds(node)
    if key in _LISTS:
        return tuple(scalar(item) for item in node.value)
    if key in _TEXT_MAPS:
        return {k.value: v.value for k, v in node.value}
    if key in _DATA:
        return schema.to_data(node, path)
    return scalar(node)


def _checks(node: MappingNode) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    for key, value in node.value:
        own = fields_of(value)
        type_field = own.pop("type")
        fields = {"type": type_field, **own}  # `type` first, as `CheckType.problems` is promised
        listed = check_types.by_kind()[type_field[1].value]  # the schema admits only listed types
        kwargs = {k: _check_value(k, v, ("checks", key.value, k), listed) for k, (_, v) in own.items()}
        checks[key.value] = listed.build(key.value, kwargs)
        for node, sub, message, hint in listed.problems(checks[key.value], fields):
            raise Violation(node, f"{where(('checks', key.value, *sub))}: {message}", hint)
    return checks


RESERVED_PHASES = schema.RESERVED_PHASES


def _phases(node: SequenceNode, flag_names: set[str], checks: dict[str, Check]) -> tuple[Phase, ...]:
    phases: list[Phase] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(node.value):
        fields = fields_of(item)
        name_node = fields["name"][1]
        name, here = name_node.value, ("phases", i, "name")
        if name in RESERVED_PHASES:
            raise Violation(name_node, f"{where(here)}: {name!r} is reserved (the state before the first phase "
                            "or after a rollback)", "choose another name")
        if name in first_line:
            raise Violation(name_node, f"{where(here)}: duplicate phase {name!r} (first on line {first_line[name]})",
                            "rename one of them")
        first_line[name] = name_node.start_mark.line + 1
        phases.append(
            Phase(
                name=name,
                set=_phase_set(fields, flag_names, ("phases", i, "set")),
                gates=_phase_gates(fields, checks, ("phases", i, "gates")),
                description=_value(fields, "description", ""),
                bake=node_seconds(fields["bake"][1]) if "bake" in fields else 0.0,
                approval=_value(fields, "approval", False),
                approvers=tuple(scalar(a) for a in fields["approvers"][1].value) if "approvers" in fields else (),
                separate_approver=_value(fields, "separate_approver", False),
                auto_rollback=_value(fields, "auto_rollback", False),
                watch=_phase_watch(fields, checks, ("phases", i, "watch")),
            )
        )
    return tuple(phases)


def _undeclared(node: Node, path: tuple, noun: str, name: str, declared: list[str], section: str) -> Violation:
    close = difflib.get_close_matches(name, declared, n=1)
    tip = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(declared) or "none"
    return Violation(node, f"{where(path)}: undeclared {noun} {name!r}",
                     f"{tip}declare it under {section}: (declared: {known})")


def _phase_set(fields: dict, flag_names: set[str], path: tuple) -> dict[str, str]:
    if "set" not in fields:
        return {}
    values = {}
    for k, v in fields["set"][1].value:
        if k.value not in flag_names:
            raise _undeclared(k, path, "flag", k.value, sorted(flag_names), "flags")
        values[k.value] = v.value
    return values


def _phase_gates(fields: dict, checks: dict[str, Check], path: tuple) -> tuple[str, ...]:
    if "gates" not in fields:
        return ()
    for item in fields["gates"][1].value:
        if item.value not in checks:
            raise _undeclared(item, path, "check", item.value, list(checks), "checks")
    return tuple(item.value for item in fields["gates"][1].value)


def _phase_watch(fields: dict, checks: dict[str, Check], path: tuple) -> tuple[str, ...]:
    """A phase's `watch:` names declared metric checks (what a poll can judge)."""
    if "watch" not in fields:
        return ()
    for item in fields["watch"][1].value:
        if item.value not in checks:
            raise _undeclared(item, path, "check", item.value, list(checks), "checks")
        if checks[item.value].type != "metric":
            raise Violation(item, f"{where(path)}: {item.value!r} is a {checks[item.value].type} check; watch: takes "
                            "metric checks", "list it under gates:, or watch a check of type: metric")
    return tuple(item.value for item in fields["watch"][1].value)


# --- durations and the summary -----------------------------------------------------------------------


def summarize(plan: Plan) -> dict:
    """A JSON-able view for `validate`: flags in rollback order, and per phase the flag values it
    changes relative to the phase before it (sensitive values as `redact.shown` displays them)."""
    phases, before = [], plan.rollback_values()
    for p in plan.phases:
        values = plan.values_for(p.name)
        changes = {k: shown(plan.flag(k), v) for k, v in values.items() if before[k] != v}
        phases.append(
            {
                "name": p.name,
                "description": p.description,
                "changes": changes,
                "gates": list(p.gates),
                "bake": format_duration(p.bake),
                "approval": p.approval,
            }
        )
        before = values
    return {
        "name": plan.name,
        "description": plan.description,
        "path": plan.path,
        "digest": plan.digest,
        "region": plan.region,
        "state_prefix": plan.state_prefix,
        "write_rate": plan.write_rate,
        "lock_lease": format_duration(plan.lock_lease),
        "flags": [
            {
                "name": f.name,
                "kind": f.kind,
                "target": f.where,
                **({"parameter": f.parameter} if f.kind == "ssm" else {"function": f.target.function,
                                                                      "variable": f.target.variable,
                                                                      **({"kms_key": f.target.kms_key} if f.target.kms_key else {})}),
                "rollback": shown(f, f.rollback),
                "sensitive": f.sensitive,
                "secure": f.secure,
            }
            for f in plan.flags
        ],
        "checks": [{"name": c.name, "type": c.type} for c in plan.checks.values()],
        "phases": phases,
        **({"targets": [{k: v for k, v in vars(t).items() if v is not None} for t in plan.targets],
            "waves": [{"name": w.name, "targets": list(w.targets), "bake": format_duration(w.bake)} for w in plan.waves]}
           if plan.targets else {}),
    }
