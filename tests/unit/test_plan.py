"""phases.yaml: loading, every validation error (with its line), the repo's real plan, the summary and
the JSON Schema.

Error tests write the offending line with a trailing `# <-` marker; `assert_error` checks the error
points at exactly that line (and column, where given) and that the message names the problem.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.model import plan as model
from cutover.plan import schema
from cutover.plan import load as plan_module
from cutover.errors import PlanError, UsageError
from cutover.checks.alarms import AlarmsCheck
from cutover.checks.command import CommandCheck
from cutover.checks.env import EnvCheck
from cutover.checks.http import GraphqlCheck, HttpCheck
from cutover.checks.logs import LogAbsentCheck, LogFreshnessCheck
from cutover.checks.secrets import SecretsCheck
from cutover.model.durations import format_duration, parse_duration
from cutover.plan.load import load_plan, parse_plan, plan_schema, summarize
from cutover.redact import HIDDEN

ROOT = Path(__file__).resolve().parents[2]
PLANS = Path(__file__).resolve().parents[1] / "plans"
REPO_PLAN = ROOT / "phases.yaml"

HEAD = """\
version: 1
name: demo
region: us-east-2
"""
FLAGS = """\
flags:
  kill:
    parameter: /app/kill
    rollback: "false"
  allowlist:
    parameter: /app/allowlist
    rollback: "none"
    sensitive: true
"""
CHECKS = """\
checks:
  quiet:
    type: alarms
    names: [app-errors]
"""
PHASES = """\
phases:
  - name: one
    set: {kill: "true"}
    gates: [quiet]
"""


def plan_text(head: str = HEAD, flags: str = FLAGS, checks: str = CHECKS, phases: str = PHASES) -> str:
    return head + flags + checks + phases


def with_check(body: str) -> str:
    """The base plan plus one more check (written unindented, named in `body`)."""
    return plan_text(checks=CHECKS + textwrap.indent(textwrap.dedent(body), "  "))


def assert_error(text: str, *words: str, col: int | None = None) -> PlanError:
    """parse_plan(text) fails on the line marked `# <-`, and the message contains every word."""
    lines = text.splitlines()
    marked = [i + 1 for i, line in enumerate(lines) if "# <-" in line]
    assert len(marked) == 1, "mark exactly one line with # <-"
    with pytest.raises(PlanError) as info:
        parse_plan(text)
    err = info.value
    assert (err.line, err.path) == (marked[0], "phases.yaml"), f"{err} (hint: {err.hint})"
    for word in words:
        assert word in err.detail, f"{word!r} not in {err.detail!r}"
    if col is not None:
        assert err.col == col, str(err)
    assert "\n" not in str(err) and "\n" not in err.hint
    assert str(err).startswith(f"phases.yaml:{err.line}:{err.col}: ")
    return err


def test_base_plan_is_valid() -> None:
    plan = parse_plan(plan_text())
    assert plan.name == "demo" and plan.phase_names == ("one",)
    assert plan.state_prefix == "/cutover/demo"  # the default
    assert (plan.write_rate, plan.lock_lease, plan.version) == (3.0, 900.0, 1)
    assert plan.values_for("one") == {"kill": "true", "allowlist": "none"}


# --- keys and types -----------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest_and_lists_allowed() -> None:
    text = plan_text(flags=FLAGS.replace('    rollback: "false"', '    rolback: "false"  # <-'))
    err = assert_error(text, "unknown key 'rolback'", "flags.kill", col=5)
    assert "did you mean 'rollback'" in err.hint
    assert "parameter, lambda, rollback, sensitive, secure, public_values, description" in err.hint


def test_unknown_top_level_key() -> None:
    err = assert_error("verison: 1  # <-\n" + plan_text(), "unknown top-level key 'verison'", col=1)
    assert "did you mean 'version'" in err.hint


def test_unknown_key_is_per_check_type() -> None:
    text = with_check(
        """\
        probe:
          type: http
          url: https://example.com/
          query: "query { a }"  # <-
        """
    )
    err = assert_error(text, "unknown key 'query'", "http check")
    assert "url" in err.hint and "query" not in err.hint.split("allowed keys:")[1]


def test_unknown_phase_key() -> None:
    text = plan_text(phases=PHASES + "    aproval: true  # <-\n")
    assert "did you mean 'approval'" in assert_error(text, "unknown key 'aproval'", "phase").hint


def test_wrong_type() -> None:
    text = plan_text(head=HEAD, flags="flags: [kill]  # <-\n")
    assert_error(text, "flags", "expected a mapping", "got a list", col=8)


def test_wrong_type_for_boolean() -> None:
    text = plan_text(phases=PHASES + "    approval: \"yes\"  # <-\n")
    assert_error(text, "approval", "expected true or false, got text")


@pytest.mark.parametrize("word", ["false", "off", "no", "yes", "on", "true", "False"])
def test_unquoted_yaml_booleans_where_text_is_needed(word: str) -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', f"rollback: {word}  # <-"))
    err = assert_error(text, "flags.kill.rollback", "read by YAML as a boolean", col=15)
    assert err.hint == f'quote it: "{word}"'


def test_unquoted_number_where_text_is_needed() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', "rollback: 0  # <-"))
    assert assert_error(text, "read by YAML as a number").hint == 'quote it: "0"'


def test_unquoted_boolean_in_phase_set() -> None:
    text = plan_text(phases=PHASES.replace('{kill: "true"}', "{kill: true}  # <-"))
    assert assert_error(text, "phases[0].set.kill", "boolean").hint == 'quote it: "true"'


def test_unquoted_boolean_in_env_equals() -> None:
    text = with_check(
        """\
        shell:
          type: env
          equals:
            RICHPANEL_READ_ONLY: true  # <-
        """
    )
    assert "quote it" in assert_error(text, "equals.RICHPANEL_READ_ONLY", "boolean").hint


def test_unquoted_boolean_as_plan_name() -> None:
    text = plan_text(head=HEAD.replace("name: demo", "name: yes  # <-"))
    assert assert_error(text, "name", "boolean").hint == 'quote it: "yes"'


def test_boolean_as_a_name_key() -> None:
    text = plan_text(flags=FLAGS + "  on:  # <-\n    parameter: /app/on\n    rollback: x\n")
    assert "quote it" in assert_error(text, "key 'on'", "boolean").hint


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "OFF"])
def test_a_yaml_1_1_boolean_where_a_boolean_is_wanted_is_refused(word) -> None:
    """YAML 1.2 editors and linters read `sensitive: yes` as text: only true and false mean the same to both."""
    text = plan_text(flags=FLAGS + f"  extra:\n    parameter: /app/extra\n    rollback: x\n    sensitive: {word}  # <-\n")
    err = assert_error(text, "flags.extra.sensitive", f"'{word}' is a boolean only in YAML 1.1")
    assert err.hint == "write true or false"


@pytest.mark.parametrize("word", ["true", "false", "True", "FALSE"])
def test_true_and_false_are_booleans_in_both_yaml_versions(word) -> None:
    text = plan_text(flags=FLAGS + f"  extra:\n    parameter: /app/extra\n    rollback: x\n    sensitive: {word}\n")
    assert parse_plan(text).flag("extra").sensitive is (word.lower() == "true")


def test_an_unquoted_value_that_quoting_would_not_fix_gets_no_quote_hint() -> None:
    text = plan_text(phases=PHASES + "    bake: yes  # <-\n")
    err = assert_error(text, "bake", "expected a duration")
    assert "quote" not in err.hint and "30s" in err.hint


# --- empty values, names --------------------------------------------------------------------------


def test_empty_rollback_value() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', 'rollback: ""  # <-'))
    assert "cannot be empty" in assert_error(text, "flags.kill.rollback", "empty value").hint


def test_missing_rollback_value() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', "rollback:  # <-"))
    assert_error(text, "flags.kill.rollback", "empty value")


def test_empty_set_value() -> None:
    text = plan_text(phases=PHASES.replace('{kill: "true"}', "{kill: ''}  # <-"))
    assert_error(text, "phases[0].set.kill", "empty value")


@pytest.mark.parametrize("name", ["Demo", "-demo", "demo_1", "d" * 64, "'demo prod'"])
def test_invalid_plan_name(name: str) -> None:
    text = plan_text(head=HEAD.replace("name: demo", f"name: {name}  # <-"))
    assert "lowercase" in assert_error(text, "name", "is not valid", col=7).hint


def test_valid_plan_names() -> None:
    for name in ("a", "order-status-prod", "9-lives", "d" * 63):
        assert parse_plan(plan_text(head=HEAD.replace("name: demo", f"name: {name}"))).name == name


def test_invalid_phase_name() -> None:
    text = plan_text(phases=PHASES.replace("name: one", "name: Phase One  # <-"))
    assert_error(text, "phases[0].name", "is not valid")


@pytest.mark.parametrize("reserved", ["pending", "rolled_back"])
def test_reserved_phase_names(reserved: str) -> None:
    text = plan_text(phases=PHASES.replace("name: one", f"name: {reserved}  # <-"))
    assert_error(text, "reserved")


# --- versions, region, rates -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "0", '"1"', "1.0"])
def test_version_other_than_1(version: str) -> None:
    text = plan_text(head=HEAD.replace("version: 1", f"version: {version}  # <-"))
    assert_error(text, "version", col=10)


def test_region_is_required() -> None:
    text = plan_text(head="version: 1  # <-\nname: demo\n")
    assert_error(text, "missing required key 'region'", col=1)


def test_bad_region() -> None:
    assert_error(plan_text(head=HEAD.replace("us-east-2", "Ohio  # <-")), "region", "is not an AWS region name")


@pytest.mark.parametrize("rate", ["0", "-1", "10.5", "11", ".nan", ".inf"])
def test_write_rate_out_of_range(rate: str) -> None:
    text = plan_text(head=HEAD + f"write_rate: {rate}  # <-\n")
    assert "default" in assert_error(text, "write_rate", col=13).hint and "3" in assert_error(text).hint


def test_write_rate_in_range() -> None:
    for rate, expected in (("10", 10.0), ("0.5", 0.5), ("3", 3.0)):
        assert parse_plan(plan_text(head=HEAD + f"write_rate: {rate}\n")).write_rate == expected


def test_write_rate_must_be_a_number() -> None:
    assert_error(plan_text(head=HEAD + "write_rate: fast  # <-\n"), "write_rate", "expected a number")


def test_lock_lease_is_a_duration() -> None:
    assert parse_plan(plan_text(head=HEAD + "lock_lease: 20m\n")).lock_lease == 1200.0
    assert_error(plan_text(head=HEAD + "lock_lease: soon  # <-\n"), "lock_lease", "not a duration")
    assert_error(plan_text(head=HEAD + "lock_lease: 0m  # <-\n"), "lock_lease", "zero")


# --- durations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("15m", 900), ("8h", 28800), ("1d", 86400), ("1h30m", 5400), ("1d2h3m4s", 93784), ("45", 45),
     ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    plan = parse_plan(plan_text(phases=PHASES + f"    bake: {text}\n"))
    assert plan.phases[0].bake == seconds


@pytest.mark.parametrize("bad", ["30x", "1.5h", "m", "30m1h", "-5", "1 h", "30sec", "1.5", "[30m]"])
def test_bad_durations(bad: str) -> None:
    err = assert_error(plan_text(phases=PHASES + f"    bake: {bad}  # <-\n"), "phases[0].bake", col=11)
    assert "30s, 15m, 8h, 1d" in err.hint


def test_parse_and_format_duration() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration(30) == 30
    for bad in ("", "soon", -1, True, "1.5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    cases = {0: "0s", 45: "45s", 60: "1m", 1800: "30m", 3600: "1h", 5400: "1h30m", 86400: "1d", 90061: "1d1h1m1s"}
    for seconds, text in cases.items():
        assert format_duration(seconds) == text
        assert parse_duration(text) == seconds  # the two are inverses


# --- SSM names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameter, problem",
    [
        ("app/kill", "must start with '/'"),
        ("/app//kill", "'//'"),
        ("/app/kill/", "must not end with '/'"),
        ("/aws/kill", "/aws or /ssm"),
        ("/SSM/kill", "/aws or /ssm"),
        ("/awsome/kill", "/aws or /ssm"),
        ("'/app/ki ll'", "may only contain"),
        ("/app/kill$", "may only contain"),
        ("/" + "a" * 1011, "too long"),
        ("/a" * 16, "too many levels"),
    ],
)
def test_malformed_ssm_parameter(parameter: str, problem: str) -> None:
    text = plan_text(flags=FLAGS.replace("parameter: /app/kill", f"parameter: {parameter}  # <-"))
    assert_error(text, "flags.kill.parameter", problem, col=16)


def test_valid_ssm_parameters() -> None:
    for name in ("/a", "/rp-mw/prod/safe_mode", "/A.b-c_d/e", "/" + "a" * 1010, "/a" * 15, "/myaws/x"):
        plan = parse_plan(plan_text(flags=FLAGS.replace("/app/kill", name)))
        assert plan.flag("kill").parameter == name


@pytest.mark.parametrize("prefix", ["cutover/demo", "/cutover/", "/aws/cutover", "/cutover//demo", "''"])
def test_state_prefix_must_be_an_ssm_path(prefix: str) -> None:
    text = plan_text(head=HEAD + f"state_prefix: {prefix}  # <-\n")
    assert_error(text, "state_prefix", col=15)


def test_state_prefix_leaves_room_for_state_and_lock() -> None:
    ok = "/" + "p" * 1004
    assert parse_plan(plan_text(head=HEAD + f"state_prefix: {ok}\n")).state_parameter == ok + "/state"
    assert_error(plan_text(head=HEAD + f"state_prefix: {ok}p  # <-\n"), "state_prefix", "too long")


def test_flag_inside_state_prefix() -> None:
    text = plan_text(
        head=HEAD + "state_prefix: /app\n",
        flags=FLAGS.replace("parameter: /app/kill", "parameter: /app/kill  # <-"),
    )
    assert_error(text, "inside state_prefix")


def test_two_flags_on_one_parameter() -> None:
    text = plan_text(flags=FLAGS + "  kill_again:\n    parameter: /app/kill  # <-\n    rollback: x\n")
    assert_error(text, "already the target of flag 'kill'")


# --- references and duplicates -----------------------------------------------------------------------


def test_undeclared_flag_in_set() -> None:
    text = plan_text(phases=PHASES.replace('set: {kill: "true"}', 'set: {kil: "true"}  # <-'))
    err = assert_error(text, "undeclared flag 'kil'", "phases[0].set", col=11)
    assert "did you mean 'kill'" in err.hint


def test_undeclared_check_in_gates() -> None:
    text = plan_text(phases=PHASES.replace("gates: [quiet]", "gates:\n      - quiet\n      - loud  # <-"))
    err = assert_error(text, "undeclared check 'loud'", "phases[0].gates", col=9)
    assert "quiet" in err.hint


def test_gates_need_checks_declared_at_all() -> None:
    text = plan_text(checks="", phases=PHASES.replace("gates: [quiet]", "gates: [quiet]  # <-"))
    assert_error(text, "undeclared check 'quiet'")


def test_duplicate_flag() -> None:
    text = plan_text(flags=FLAGS + "  kill:  # <-\n    parameter: /app/other\n    rollback: x\n")
    assert_error(text, "duplicate flag 'kill'", "first on line 5", col=3)


def test_duplicate_check() -> None:
    text = plan_text(checks=CHECKS + "  quiet:  # <-\n    type: alarms\n    prefix: x\n")
    assert_error(text, "duplicate check 'quiet'", col=3)


def test_duplicate_phase() -> None:
    text = plan_text(phases=PHASES + "  - name: one  # <-\n")
    assert_error(text, "duplicate phase 'one'", col=11)


def test_duplicate_key_inside_a_flag() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', 'rollback: "false"\n    rollback: "true"  # <-'))
    assert_error(text, "duplicate key 'rollback'")


def test_duplicate_key_inside_free_form_data() -> None:
    text = with_check(
        """\
        fresh:
          type: log_freshness
          log_group: /x
          max_age: 1h
          json_match: {ok: true, ok: false}  # <-
        """
    )
    assert_error(text, "duplicate key 'ok'")


def test_gate_listed_twice() -> None:
    text = plan_text(phases=PHASES.replace("gates: [quiet]", "gates: [quiet, quiet]  # <-"))
    assert_error(text, "listed twice")


# --- plan shape -----------------------------------------------------------------------------------------


def test_no_phases() -> None:
    assert_error(plan_text(phases="phases: []  # <-\n"), "phases", "empty list")


def test_phases_key_missing() -> None:
    assert_error(plan_text(head="version: 1  # <-\nname: demo\nregion: us-east-2\n", phases=""),
                 "missing required key 'phases'")


def test_no_flags() -> None:
    assert_error(plan_text(flags="flags: {}  # <-\n"), "flags", "empty")


def test_phase_without_name() -> None:
    assert_error(plan_text(phases="phases:\n  - set: {kill: \"true\"}  # <-\n"), "missing required key 'name'")


def test_empty_and_non_mapping_documents() -> None:
    for text in ("", "# only a comment\n", "---\n"):
        with pytest.raises(PlanError, match="empty"):
            parse_plan(text)
    for text in ("- a\n- b\n", "just text\n"):
        with pytest.raises(PlanError, match="must be a mapping"):
            parse_plan(text)


def test_two_documents() -> None:
    with pytest.raises(PlanError, match="single document") as info:
        parse_plan(plan_text() + "---\nname: again\n")
    assert info.value.line == plan_text().count("\n") + 1


def test_yaml_syntax_error_has_the_mark() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', 'rollback: "false  # <-'))
    with pytest.raises(PlanError, match="invalid YAML") as info:
        parse_plan(text)
    assert info.value.line >= 7


def test_tab_indentation() -> None:
    text = plan_text(flags=FLAGS.replace('    rollback: "false"', '\trollback: "false"  # <-'))
    assert "tabs" in assert_error(text, "invalid YAML").hint


# --- check types ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, missing",
    [
        ("type: http", "url"),
        ("type: graphql\n  url: https://x.example/", "query"),
        ("type: secrets", "secret_ids"),
        ("type: command", "run"),
        ("type: log_freshness\n  log_group: /x\n  contains: ok", "max_age"),
        ("type: log_absent\n  log_group: /x\n  contains: ok", "window"),
        ("type: log_absent\n  window: 1h\n  contains: ok", "log_group"),
    ],
)
def test_check_missing_required_field(body: str, missing: str) -> None:
    text = with_check(f"probe:  # <-\n  {body}\n")
    assert_error(text, f"missing required key '{missing}'", "checks.probe", col=3)


def test_check_without_type() -> None:
    assert_error(with_check("probe:  # <-\n  url: https://x.example/\n"), "missing required key 'type'")


def test_unknown_check_type() -> None:
    err = assert_error(with_check("probe:\n  type: htp  # <-\n  url: https://x.example/\n"), "'htp'", "http")
    assert "did you mean 'http'" in err.hint


def test_env_check_needs_equals_or_present() -> None:
    assert_error(with_check("shell:  # <-\n  type: env\n"), "at least one of equals, present")


def test_alarms_check_needs_names_or_prefix() -> None:
    assert_error(with_check("alarms:  # <-\n  type: alarms\n  quiet_for: 5m\n"), "at least one of names, prefix")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "get"])
def test_http_method_must_be_get_or_head(method: str) -> None:
    text = with_check(f"probe:\n  type: http\n  url: https://x.example/\n  method: {method}  # <-\n")
    assert "GET or HEAD" in assert_error(text, f"'{method}'", "checks.probe.method", col=13).hint


@pytest.mark.parametrize(
    "query",
    [
        "mutation { shopUpdate { id } }",
        "  mutation Rename { a }",
        "subscription { orders { id } }",
        "# read the shop\\nmutation { a }",
        "fragment F on Shop { name } mutation { a }",
        "query A { a } mutation B { b }",
    ],
)
def test_graphql_mutations_and_subscriptions_are_refused(query: str) -> None:
    text = with_check(f'gql:\n  type: graphql\n  url: https://x.example/\n  query: "{query}"  # <-\n')
    err = assert_error(text, "checks.gql.query", "not a query", col=12)
    assert "read-only" in err.hint


@pytest.mark.parametrize(
    "query",
    [
        "query { shop { name } }",
        "{ shop { name } }",
        "query ShopName { shop { name } }",
        "  # comment\\n  query { a }",
        'query Q($mutation: ID) { a(note: \\"mutation { x }\\") }',
        "fragment F on Shop { name } query { shop { ...F } }",
    ],
)
def test_graphql_queries_are_accepted(query: str) -> None:
    text = with_check(f'gql:\n  type: graphql\n  url: https://x.example/\n  query: "{query}"\n')
    assert isinstance(parse_plan(text).checks["gql"], GraphqlCheck)


def test_graphql_document_that_is_not_an_operation() -> None:
    text = with_check("gql:\n  type: graphql\n  url: https://x.example/\n  query: \"type Shop { a: Int }\"  # <-\n")
    assert_error(text, "starts with 'type'")


# --- where a secret may go (http/graphql), what a command gets, which sensitive values are public -------


SECRET_HEADER = '  headers: {x-api-key: "{{secret:app/key}}"}\n'


@pytest.mark.parametrize("url", ["${API_BASE:-https://api.example.com}/v1", "https://${SHOP}/admin", "https://api${SUFFIX}/x",
                                 "${SCHEME}://api.example.com/x"])
def test_a_secret_with_a_var_in_the_host_needs_allowed_hosts(url: str) -> None:
    text = with_check(f'probe:\n  type: http\n  url: "{url}"  # <-\n' + SECRET_HEADER)
    err = assert_error(text, "checks.probe.url", "the host comes from a ${VAR}", "sends a secret", col=10)
    assert "allowed_hosts: [api.example.com]" in err.hint
    listed = with_check(f'probe:\n  type: http\n  url: "{url}"\n' + SECRET_HEADER + "  allowed_hosts: [api.example.com]\n")
    assert parse_plan(listed).checks["probe"].allowed_hosts == ("api.example.com",)


def test_a_secret_in_the_url_counts_and_a_var_in_the_path_is_fine() -> None:
    text = with_check('gql:\n  type: graphql\n  url: "${BASE}/graphql?key={{secret:app/key}}"  # <-\n  query: "{ a }"\n')
    assert_error(text, "checks.gql.url", "sends a secret")
    fixed = with_check('probe:\n  type: http\n  url: "https://api.example.com/${VERSION}/x"\n' + SECRET_HEADER)
    assert parse_plan(fixed).checks["probe"].allowed_hosts == ()
    no_secret = with_check('probe:\n  type: http\n  url: "${ANY_BASE}/health"\n')
    assert parse_plan(no_secret).checks["probe"].url == "${ANY_BASE}/health"


def test_a_secret_over_plain_http_is_refused() -> None:
    text = with_check('probe:\n  type: http\n  url: "http://api.example.com/v1"  # <-\n' + SECRET_HEADER)
    assert "https://" in assert_error(text, "checks.probe.url", "plain http", "in clear").hint
    local = with_check('probe:\n  type: http\n  url: "http://127.0.0.1:8080/v1"\n' + SECRET_HEADER)
    assert parse_plan(local)  # this machine: allowed by the plan; the gate allows it only in a sandbox


@pytest.mark.parametrize("host,problem", [("https://api.example.com", "is not a host name"), ("api.example.com/x", "is not a host name"),
                                          ("*.com", "every host under a top-level domain"), ("a..b", "is not a host name"),
                                          ("api.example.com:443", "is not a host name")])
def test_allowed_hosts_are_host_names(host: str, problem: str) -> None:
    text = with_check(f'probe:\n  type: http\n  url: "https://x.example/"\n  allowed_hosts: ["{host}"]  # <-\n')
    assert_error(text, "checks.probe.allowed_hosts[0]", problem)


def test_command_env_names_and_aws_variables() -> None:
    base = "report:\n  type: command\n  run: [python, report.py]\n"
    text = with_check(base + "  env: [SHOP, AWS_PROFILE]  # <-\n")
    err = assert_error(text, "checks.report.env[1]", "AWS_PROFILE is an AWS variable", "aws_credentials: true", col=17)
    assert "aws_credentials: true" in err.hint
    assert parse_plan(with_check(base + "  env: [SHOP, AWS_PROFILE]\n  aws_credentials: true\n")).checks["report"].env == (
        "SHOP", "AWS_PROFILE")
    assert_error(with_check(base + "  env: [not-a-name]  # <-\n"), "checks.report.env[0]", "is not valid")
    assert_error(with_check(base + "  read_only: maybe  # <-\n"), "checks.report.read_only")
    report = parse_plan(with_check(base)).checks["report"]
    assert (report.env, report.aws_credentials, report.read_only) == ((), False, False)  # the safe defaults


PUBLIC_FLAGS = FLAGS.replace('    sensitive: true\n', '    sensitive: true\n    public_values: ["none", "*"]\n')
PUBLIC_PHASES = PHASES + '  - name: two\n    set: {allowlist: "a@example.com"}\n  - name: three\n    set: {allowlist: "*"}\n'


def test_public_values_are_values_the_plan_gives_a_sensitive_flag() -> None:
    plan = parse_plan(plan_text(flags=PUBLIC_FLAGS, phases=PUBLIC_PHASES))
    assert plan.flag("allowlist").public_values == ("none", "*")
    text = plan_text(flags=PUBLIC_FLAGS.replace('["none", "*"]', '["none",\n      "everyone"]  # <-'), phases=PUBLIC_PHASES)
    err = assert_error(text, "flags.allowlist.public_values[1]", "'everyone' is neither the flag's rollback value nor a value a phase sets")
    assert "a@example.com" not in err.hint  # the flag's other values stay hidden, even here
    text = plan_text(flags=FLAGS.replace('    rollback: "false"\n', '    rollback: "false"\n    public_values: ["false"]  # <-\n', 1))
    assert "sensitive: true" in assert_error(text, "flags.kill.public_values", "only a sensitive flag").hint


def test_public_values_show_in_plain_text_and_the_rest_stays_hidden() -> None:
    from cutover.redact import sensitive_values, shown

    plan = parse_plan(plan_text(flags=PUBLIC_FLAGS, phases=PUBLIC_PHASES))
    s = summarize(plan)
    assert [p["changes"].get("allowlist") for p in s["phases"]] == [None, HIDDEN, "*"]
    assert s["flags"][1]["rollback"] == "none"
    assert sensitive_values(plan) == ["a@example.com"]  # public values are never registered with the redactor
    allow = plan.flag("allowlist")
    assert shown(allow, "none", label_rollback=True) == "none (rollback value)"
    assert shown(allow, "a@example.com") == HIDDEN and shown(allow, "someone-else@example.com") == HIDDEN
    assert shown(plan.flag("kill"), "false", label_rollback=True) == "false"  # not sensitive: the value says it all
    hidden_rollback = parse_plan(plan_text()).flag("allowlist")
    assert shown(hidden_rollback, "none", label_rollback=True) == "(sensitive, rollback value)"


@pytest.mark.parametrize("log_type, length", [("log_absent", "window"), ("log_freshness", "max_age")])
def test_log_checks_need_exactly_one_matcher(log_type: str, length: str) -> None:
    base = f"logs:  # <-\n  type: {log_type}\n  log_group: /x\n  {length}: 1h\n"
    assert_error(with_check(base), "needs one of json_match, contains")
    both = base.replace("  # <-", "") + "  contains: ERROR\n  json_match: {level: error}  # <-\n"
    assert_error(with_check(both), "has both json_match and contains")


@pytest.mark.parametrize("status", ["99", "600", "'200'", "2.5e2"])
def test_expect_status_must_be_http_codes(status: str) -> None:
    text = with_check(f"probe:\n  type: http\n  url: https://x.example/\n  expect_status: [200, {status}]  # <-\n")
    assert_error(text, "expect_status[1]")


def test_expect_status_must_be_a_list() -> None:
    text = with_check("probe:\n  type: http\n  url: https://x.example/\n  expect_status: 200  # <-\n")
    assert_error(text, "expect_status", "expected a list")


@pytest.mark.parametrize(
    "run, words",
    [("[]", ["empty list"]), ("python report.py", ["expected a list"]), ("[python, 7]", ["run[1]", "number"]),
     ("[python, '']", ["run[1]", "empty value"]), ("[python, [a]]", ["run[1]", "expected text"])],
)
def test_command_run_is_a_non_empty_list_of_strings(run: str, words: list[str]) -> None:
    assert_error(with_check(f"report:\n  type: command\n  run: {run}  # <-\n"), "checks.report.run", *words)


def test_bad_insufficient_data() -> None:
    text = with_check("a:\n  type: alarms\n  prefix: x\n  insufficient_data: maybe  # <-\n")
    assert "fail" in assert_error(text, "insufficient_data", "fail, ok").hint


def test_timeout_on_every_check_type_must_be_a_positive_duration() -> None:
    text = with_check("probe:\n  type: secrets\n  secret_ids: [a]\n  timeout: 0  # <-\n")
    assert_error(text, "checks.probe.timeout", "more than 0")


def test_url_must_be_http() -> None:
    text = with_check("probe:\n  type: http\n  url: ftp://example.com/  # <-\n")
    assert_error(text, "checks.probe.url", "is not valid")


def test_every_check_type_becomes_its_model() -> None:
    plan = load_plan(PLANS / "every_check.yaml")
    c = plan.checks
    assert c["env_ok"] == EnvCheck("env_ok", equals={"APP_ENV": "prod", "DRY": "true"}, present=("HOME",), timeout=5)
    assert c["secrets_ok"] == SecretsCheck(
        "secrets_ok",
        ("app/db", "arn:aws:secretsmanager:us-west-2:123456789012:secret:app/key-AbCdEf"),
        decrypt=False,
    )
    assert c["http_ok"] == HttpCheck(
        "http_ok",
        url="${API:-https://api.example.com}/health",
        method="HEAD",
        headers={"Authorization": "Bearer {{secret:app/key#token}}"},
        expect_status=(200, 204),
        timeout=3,
        allowed_hosts=("api.example.com", "*.api.example.com"),
    )
    gql = c["graphql_ok"]
    assert isinstance(gql, GraphqlCheck) and gql.query.startswith("# a comment")
    assert gql.variables == {"id": "gid://shop/1", "first": 10, "nested": {"deep": [1, True, None]}}
    assert (gql.expect_status, gql.timeout, gql.allowed_hosts) == ((200,), 10.0, ("api.example.com",))
    assert c["fresh"] == LogFreshnessCheck("fresh", "/aws/lambda/app-refresh", 86400, contains="refresh ok")
    assert c["quiet_logs"] == LogAbsentCheck(
        "quiet_logs", "/aws/lambda/app", 2700, json_match={"level": "ERROR", "code": 500}
    )
    assert c["report"] == CommandCheck("report", ("python", "scripts/report.py", "--days", "7"), timeout=120,
                                       env=("REPORT_DAYS", "SHOPIFY_SHOP_DOMAIN"), aws_credentials=True, read_only=True)
    assert c["alarms_ok"] == AlarmsCheck(
        "alarms_ok", ("app-errors",), prefix="app-", quiet_for=600, insufficient_data="ok"
    )
    assert list(c) == ["env_ok", "secrets_ok", "http_ok", "graphql_ok", "fresh", "quiet_logs", "report", "alarms_ok"]
    assert (plan.write_rate, plan.lock_lease, plan.state_prefix) == (2.5, 5400, "/ops/cutover/every-check")
    cohort = plan.flag("cohort")
    assert cohort.sensitive and cohort.secure and cohort.line == 14 and cohort.public_values == ("none",)
    assert plan.flag("mode").description == "the app's mode"
    assert plan.phase("second").gates == () and plan.phase("first").description == "first step"


def test_minimal_fixture_uses_defaults() -> None:
    plan = load_plan(PLANS / "minimal.yaml")
    assert plan.checks["quiet"] == AlarmsCheck("quiet", prefix="app-")
    assert plan.phase("live") == model.Phase("live", {"kill_switch": "on"}, ("quiet",))
    assert (plan.region, plan.state_prefix, plan.description) == ("eu-west-1", "/cutover/minimal", "")


# --- safety of the YAML reader ---------------------------------------------------------------------------------


def test_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(PlanError, match="anchors and aliases") as info:
        load_plan(PLANS / "billion_laughs.yaml")
    assert info.value.line == 2 and time.monotonic() - started < 1


def test_any_alias_is_refused() -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', 'rollback: &off "false"  # <-'))
    assert assert_error(text, "anchors and aliases").hint


def test_python_tag_is_refused() -> None:
    with pytest.raises(PlanError, match="unsupported YAML tag '!!python/object/apply:os.system'") as info:
        load_plan(PLANS / "python_tag.yaml")
    assert (info.value.line, info.value.col) == (5, 8)


@pytest.mark.parametrize("tag", ["!custom", "!!binary", "!!set", "!!omap", "!!map"])
def test_other_tags_are_refused(tag: str) -> None:
    text = plan_text(flags=FLAGS.replace('rollback: "false"', f'rollback: {tag} "false"  # <-'))
    assert_error(text, "unsupported YAML tag")


def test_explicit_str_tag_is_fine() -> None:
    plan = parse_plan(plan_text(flags=FLAGS.replace('rollback: "false"', "rollback: !!str false")))
    assert plan.flag("kill").rollback == "false"


@pytest.mark.parametrize("value", ["!!bool maybe", '!!int ""', "!!float x", '!!int "' + "9" * 5000 + '"'])
def test_explicit_tags_whose_value_cannot_be_read(value: str) -> None:
    assert_error(plan_text(head=HEAD + f"write_rate: {value}  # <-\n"), "write_rate")


def test_merge_key_is_refused() -> None:
    text = plan_text(flags=FLAGS.replace('    rollback: "false"', '    <<: {rollback: "false"}  # <-'))
    assert_error(text, "merge key")


def test_too_many_values_and_too_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PlanError, match="nested too deeply"):
        parse_plan("x: " + "[" * 5000 + "]" * 5000 + "\n")  # pyyaml's composer would hit the recursion limit
    monkeypatch.setattr(plan_module, "MAX_NODES", 100)  # the real cap is 20000; same code path, faster
    parse_plan(plan_text())  # the base plan is under 100 values
    with pytest.raises(PlanError, match="too many YAML values") as info:
        parse_plan("x: [" + ", ".join(["1"] * 100) + "]\n")
    assert info.value.line == 1


def test_non_utf8_is_refused_with_its_position() -> None:
    with pytest.raises(PlanError, match="not UTF-8") as info:
        parse_plan(plan_text().replace("us-east-2", "caf\u00e9").encode("latin-1"))
    assert (info.value.line, info.value.col) == (3, 12)
    with pytest.raises(PlanError, match="not UTF-8"):
        parse_plan(plan_text().encode("utf-16"))


def test_utf8_bom_and_unicode_text_are_fine() -> None:
    plan = parse_plan(("\ufeff" + plan_text(head=HEAD + "description: caf\u00e9 \u2615\n")).encode())
    assert plan.description == "caf\u00e9 \u2615"


def test_control_characters_are_refused() -> None:
    with pytest.raises(PlanError, match="unprintable") as info:
        parse_plan(plan_text().replace("name: demo", "name: de\x07mo"))
    assert (info.value.line, info.value.col) == (2, 9)


def test_oversized_input_is_refused() -> None:
    with pytest.raises(PlanError, match="too large"):
        parse_plan(b"# " + b"x" * (1024 * 1024))


# --- files ---------------------------------------------------------------------------------------------------------


def test_load_plan_digest_and_path(tmp_path: Path) -> None:
    data = plan_text().encode()
    path = tmp_path / "plan.yaml"
    path.write_bytes(data)
    plan = load_plan(str(path))
    assert plan.digest == hashlib.sha256(data).hexdigest() and plan.path == str(path)
    assert parse_plan(data, "x.yaml").digest == plan.digest == parse_plan(data.decode()).digest
    assert parse_plan(data, Path("p/x.yaml")).path == "p/x.yaml"


def test_load_plan_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not found") as info:
        load_plan(tmp_path / "nope.yaml")
    assert (info.value.line, info.value.col) == (1, 1) and "--plan" in info.value.hint
    assert str(info.value).startswith(str(tmp_path / "nope.yaml"))
    with pytest.raises(PlanError, match="directory"):
        load_plan(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan_text(phases="phases: []\n"))
    with pytest.raises(PlanError) as info:
        load_plan(bad)
    assert str(info.value).startswith(f"{bad}:16:9: phases: empty list")


# --- the repo's real plan ------------------------------------------------------------------------------------------

ROLLBACK = {
    "automation_enabled": "false",
    "safe_mode": "true",
    "richpanel_outbound_enabled": "false",
    "mw_outbound_enabled": "false",
    "richpanel_write_disabled": "true",
    "mw_prod_writes_ack": "none",
    "outbound_allowlist_emails": "none",
}
ALARMS = (
    "rp-mw-prod-worker-error-rate",
    "rp-mw-prod-shopify-refresh-errors",
    "rp-mw-prod-richpanel-429-spike",
    "rp-mw-prod-shopify-429-spike",
    "rp-mw-prod-openai-intent-failures",
)
SECRETS = (
    "rp-mw/prod/richpanel/api_key",
    "rp-mw/prod/shopify/admin_api_token",
    "rp-mw/prod/shopify/client_id",
    "rp-mw/prod/shopify/client_secret",
    "rp-mw/prod/openai/api_key",
)


@pytest.fixture(scope="module")
def repo_plan() -> model.Plan:
    return load_plan(REPO_PLAN)


def test_repo_plan_identity(repo_plan: model.Plan) -> None:
    p = repo_plan
    assert (p.name, p.region, p.state_prefix, p.write_rate, p.version) == (
        "order-status-prod", "us-east-2", "/cutover/order-status-prod", 3.0, 1)
    assert p.digest == hashlib.sha256(REPO_PLAN.read_bytes()).hexdigest()
    assert p.phase_names == ("shadow", "canary", "full")


WORKER_VARIABLES = {
    "richpanel_outbound_enabled": "RICHPANEL_OUTBOUND_ENABLED",
    "mw_outbound_enabled": "MW_OUTBOUND_ENABLED",
    "richpanel_write_disabled": "RICHPANEL_WRITE_DISABLED",
    "mw_prod_writes_ack": "MW_PROD_WRITES_ACK",
    "outbound_allowlist_emails": "MW_OUTBOUND_ALLOWLIST_EMAILS",
}


def test_repo_plan_flags_in_rollback_order(repo_plan: model.Plan) -> None:
    assert [f.name for f in repo_plan.flags] == list(ROLLBACK)
    assert repo_plan.rollback_values() == ROLLBACK
    ssm = {"automation_enabled", "safe_mode"}  # the kill switches; the worker's own switches are in its environment
    for f in repo_plan.flags:
        assert f.description
        assert f.sensitive == (f.name == "outbound_allowlist_emails") and not f.secure
        if f.name in ssm:
            assert f.parameter == f"/rp-mw/prod/{f.name}"
        else:
            assert (f.target.function, f.target.variable) == ("rp-mw-prod-worker", WORKER_VARIABLES[f.name])


def test_repo_plan_effective_values(repo_plan: model.Plan) -> None:
    assert repo_plan.values_for("pending") == repo_plan.values_for("rolled_back") == ROLLBACK
    assert repo_plan.values_for("shadow") == ROLLBACK  # shadow = everything off
    canary = repo_plan.values_for("canary")
    assert canary == {
        "automation_enabled": "true",
        "safe_mode": "false",
        "richpanel_outbound_enabled": "true",
        "mw_outbound_enabled": "true",
        "richpanel_write_disabled": "false",
        "mw_prod_writes_ack": "I_UNDERSTAND_PROD_WRITES",
        "outbound_allowlist_emails": canary["outbound_allowlist_emails"],
    }
    emails = canary["outbound_allowlist_emails"].split(",")
    assert 1 <= len(emails) <= 5 and all(e.endswith("@example.com") for e in emails)
    assert repo_plan.values_for("full") == {**canary, "outbound_allowlist_emails": "*"}


def test_repo_plan_phases(repo_plan: model.Plan) -> None:
    shadow, canary, full = repo_plan.phases
    assert [(p.bake, p.approval) for p in repo_plan.phases] == [(1800, False), (3600, True), (7200, False)]
    assert set(shadow.gates) == {
        "required_env", "required_secrets", "richpanel_read", "shopify_rest_read", "shopify_graphql_read",
        "token_refresh_recent", "alarms_quiet"}
    log_gates = [repo_plan.checks[g] for g in canary.gates if isinstance(repo_plan.checks[g], LogAbsentCheck)]
    assert sorted(c.contains for c in log_gates) == ["method=DELETE", "method=PATCH", "method=POST", "method=PUT"]
    assert all(c.log_group == "/aws/lambda/rp-mw-prod-worker" and c.window == 3600 for c in log_gates)
    assert {"required_secrets", "token_refresh_recent", "alarms_quiet"} <= set(canary.gates)
    assert set(full.gates) == {"token_refresh_recent", "alarms_quiet"}
    for phase in repo_plan.phases:
        assert [c.name for c in repo_plan.alarm_checks(phase.name)] == ["alarms_quiet"]


def test_repo_plan_checks(repo_plan: model.Plan) -> None:
    c = repo_plan.checks
    env = c["required_env"]
    assert isinstance(env, EnvCheck) and env.present == ("SHOPIFY_SHOP_DOMAIN",)
    assert env.equals == {
        "MW_ALLOW_NETWORK_READS": "true", "RICHPANEL_READ_ONLY": "true", "RICHPANEL_WRITE_DISABLED": "true",
        "RICHPANEL_OUTBOUND_ENABLED": "false", "SHOPIFY_OUTBOUND_ENABLED": "true", "SHOPIFY_WRITE_DISABLED": "true"}
    assert c["required_secrets"] == SecretsCheck("required_secrets", SECRETS)
    rp = c["richpanel_read"]
    assert isinstance(rp, HttpCheck) and rp.method == "GET"
    assert rp.url == "${RICHPANEL_API_BASE:-https://api.richpanel.com}/v1/users"
    assert rp.headers == {"x-richpanel-key": "{{secret:rp-mw/prod/richpanel/api_key}}"}
    shop = c["shopify_rest_read"]
    assert isinstance(shop, HttpCheck) and shop.url == "https://${SHOPIFY_SHOP_DOMAIN}/admin/api/2024-10/shop.json"
    assert shop.headers == {"X-Shopify-Access-Token": "{{secret:rp-mw/prod/shopify/admin_api_token}}"}
    gql = c["shopify_graphql_read"]
    assert isinstance(gql, GraphqlCheck) and gql.query == "query { shop { name } }"
    assert gql.url.endswith("/admin/api/2024-10/graphql.json")
    assert c["token_refresh_recent"] == LogFreshnessCheck(
        "token_refresh_recent", "/aws/lambda/rp-mw-prod-shopify-token-refresh", 28800,
        json_match={"refresh_succeeded": True})
    quiet = c["alarms_quiet"]
    assert (quiet.names, quiet.quiet_for, quiet.insufficient_data) == (ALARMS, 900, "fail")
    # The thresholds of the monitoring in ../shared/reference/order-status.md.
    expect = {name: e.declared() for name, e in quiet.expect.items()}
    assert expect == {
        "rp-mw-prod-worker-error-rate": {"threshold": 5, "comparison": "GreaterThanThreshold", "period": 900},
        "rp-mw-prod-shopify-refresh-errors": {"threshold": 0, "comparison": "GreaterThanThreshold", "period": 3600,
                                              "metric": "Errors", "namespace": "AWS/Lambda"},
        "rp-mw-prod-richpanel-429-spike": {"threshold": 5, "comparison": "GreaterThanOrEqualToThreshold", "period": 900},
        "rp-mw-prod-shopify-429-spike": {"threshold": 5, "comparison": "GreaterThanOrEqualToThreshold", "period": 900},
        "rp-mw-prod-openai-intent-failures": {"threshold": 0, "comparison": "GreaterThanThreshold", "period": 300},
    }


def test_repo_plan_explains_itself_in_comments() -> None:
    comments = [line for line in REPO_PLAN.read_text().splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 20


# --- summary -------------------------------------------------------------------------------------------------------


def test_summary(repo_plan: model.Plan) -> None:
    s = summarize(repo_plan)
    dumped = json.dumps(s)  # JSON-able
    assert "@example.com" not in dumped  # sensitive values that are not public: hidden
    assert (s["name"], s["region"], s["digest"]) == ("order-status-prod", "us-east-2", repo_plan.digest)
    assert [f["name"] for f in s["flags"]] == list(ROLLBACK)
    allow = s["flags"][-1]
    assert allow["rollback"] == "none" and allow["sensitive"]  # a public value and allow["target"].endswith("MW_OUTBOUND_ALLOWLIST_EMAILS")
    assert s["flags"][0] == {"name": "automation_enabled", "kind": "ssm", "target": "/rp-mw/prod/automation_enabled",
                             "parameter": "/rp-mw/prod/automation_enabled", "rollback": "false", "sensitive": False,
                             "secure": False}
    shadow, canary, full = s["phases"]
    assert shadow["changes"] == {} and shadow["bake"] == "30m" and not shadow["approval"]
    assert canary["changes"]["automation_enabled"] == "true" and canary["approval"] and canary["bake"] == "1h"
    assert canary["changes"]["outbound_allowlist_emails"] == HIDDEN
    assert full["changes"] == {"outbound_allowlist_emails": "*"} and full["bake"] == "2h"
    assert full["gates"] == ["token_refresh_recent", "alarms_quiet"]
    assert s["lock_lease"] == "15m" and {"name": "alarms_quiet", "type": "alarms"} in s["checks"]


# --- the schema --------------------------------------------------------------------------------------------------


def test_schema_is_json_and_names_every_top_level_key() -> None:
    s = json.loads(json.dumps(plan_schema()))
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    top = {"version", "name", "description", "region", "state_prefix", "write_rate", "lock_lease", "flags",
           "checks", "phases", "notify", "account", "targets", "waves", "fanout"}
    assert set(s["properties"]) == top
    assert set(s["$defs"]["flag"]["properties"]) == {"parameter", "lambda", "rollback", "sensitive", "secure",
                                                     "public_values", "description"}
    assert set(s["$defs"]["phase"]["properties"]) == {"name", "description", "set", "gates", "bake", "approval",
                                                      "approvers", "separate_approver", "auto_rollback", "watch"}
    plan_schema()["properties"].clear()  # callers get a copy
    assert plan_schema()["properties"]


def test_schema_uses_only_keywords_the_walker_knows() -> None:
    assert schema.schema_keywords() <= schema.KEYWORDS


def test_schema_check_keys_match_the_model() -> None:
    """Each check type's keys are its dataclass's fields (but `name`), and the timeout defaults agree."""
    defs = plan_schema()["$defs"]
    for kind, cls in (("env", EnvCheck), ("secrets", SecretsCheck), ("http", HttpCheck), ("graphql", GraphqlCheck),
                      ("log_freshness", LogFreshnessCheck), ("log_absent", LogAbsentCheck),
                      ("command", CommandCheck), ("alarms", AlarmsCheck)):
        props = defs[f"{kind}_check"]["properties"]
        model_fields = {f.name: f.default for f in fields(cls)}
        assert set(props) == set(model_fields) - {"name"}, kind
        assert parse_duration(props["timeout"]["default"]) == model_fields["timeout"], kind
    assert set(plan_schema()["$defs"]["check"]["properties"]["type"]["enum"]) == set(schema.check_types())


def test_schema_is_valid_draft_2020_12_and_accepts_the_repo_plan() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(plan_schema())
    validator.check_schema(plan_schema())
    for path in (REPO_PLAN, PLANS / "minimal.yaml", PLANS / "every_check.yaml"):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    bad = yaml.safe_load(with_check("probe:\n  type: http\n  url: https://x/\n  method: POST\n"))
    assert list(validator.iter_errors(bad))
    bad = yaml.safe_load(with_check("probe:\n  type: http\n  url: https://x/\n  query: x\n"))
    assert list(validator.iter_errors(bad))


@pytest.mark.parametrize("edit,why", [
    (lambda t: t.replace("variable: E2E_COHORT", "variable: AWS_REGION"), "reserved Lambda variable"),
    (lambda t: t.replace("variable: E2E_COHORT}", "variable: E2E_COHORT}\n    secure: true"), "secure Lambda flag"),
])
def test_the_published_schema_says_what_cutover_refuses_through_formats(edit, why) -> None:
    """Editors validate with the JSON Schema alone: the rules cutover checks through formats are there too."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(plan_schema())
    text = (PLANS / "e2e.yaml").read_text()
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    bad = edit(text)
    assert bad != text, why
    assert list(validator.iter_errors(yaml.safe_load(bad))), why
    with pytest.raises(PlanError):  # and cutover itself refuses it
        parse_plan(bad)


@pytest.mark.parametrize("query", ["mutation { x }", "  mutation M { x }", "subscription { y }", "# note\nmutation { x }"])
def test_the_published_schema_refuses_a_graphql_mutation(query) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(plan_schema())
    ok = yaml.safe_load(with_check("gq:\n  type: graphql\n  url: https://x/graphql\n  query: 'query { shop { name } }'\n"))
    assert list(validator.iter_errors(ok)) == []
    bad = yaml.safe_load(with_check(f"gq:\n  type: graphql\n  url: https://x/graphql\n  query: {json.dumps(query)}\n"))
    assert list(validator.iter_errors(bad)), query


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="/aAwWsSmM._-x1 $", max_size=24))
def test_ssm_pattern_agrees_with_the_validator(name: str) -> None:
    by_code = schema.FORMATS["ssm-parameter"](name) is None
    by_pattern = bool(re.search(schema.SSM_NAME, name)) and len(name) <= schema.SSM_NAME_MAX
    assert by_code == by_pattern


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123dhms1 .", max_size=10))
def test_duration_pattern_agrees_with_parse(text: str) -> None:
    assert (schema.FORMATS["duration"](text) is None) == bool(re.search(schema.DURATION, text))


# --- robustness ------------------------------------------------------------------------------------------------


def _parses_or_plan_error(data: str | bytes) -> None:
    try:
        parse_plan(data)
    except PlanError as err:
        assert "\n" not in str(err) and err.line >= 1 and err.col >= 1
    except UsageError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_plan_errors(data: bytes) -> None:
    _parses_or_plan_error(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_raises_only_plan_errors(text: str) -> None:
    _parses_or_plan_error(text)


_REPO_LINES = REPO_PLAN.read_text().splitlines()
_YAMLISH = st.sampled_from(["", " ", ":", "- ", "{", "}", "[", "]", '"', "'", "&a", "*a", "!!", "yes", "0", "#",
                            "\t", "? ", "|", ">", "~", "<<", "!x", ",", "%YAML 1.1", "---", "1h", "/a//b", "\\"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_REPO_LINES) - 1), st.integers(0, 80), _YAMLISH,
                          st.sampled_from(["insert", "replace", "drop", "dup"])), max_size=4))
def test_mutated_repo_plan_raises_only_plan_errors(edits: list) -> None:
    """Small edits to the real plan (the realistic case) either still parse or fail with a PlanError."""
    lines = list(_REPO_LINES)
    for line_no, col, piece, op in edits:
        line_no %= len(lines) or 1
        if not lines:
            break
        line = lines[line_no]
        if op == "insert":
            lines[line_no] = line[:col] + piece + line[col:]
        elif op == "replace":
            lines[line_no] = line[:col] + piece + line[col + 1:]
        elif op == "drop":
            del lines[line_no]
        else:
            lines.insert(line_no, line)
    _parses_or_plan_error("\n".join(lines) + "\n")


def test_import_stays_light() -> None:
    code = (
        "import sys, cutover.plan.load; "
        # statistics: only a metric baseline needs it (cutover.stats imports it there), ~2 ms at every load;
        # cutover.ports: the check types name its classes in annotations only, ~3 ms at every load
        "heavy = {'boto3', 'botocore', 'pydantic', 'jsonschema', 'rich', 'typer', 'statistics', 'cutover.ports'} "
        "& set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- Lambda flags ---------------------------------------------------------------------------------------
def lambda_flags(target: str = "{function: worker, variable: OUT_ENABLED}", extra: str = "") -> str:
    """The base flags plus one Lambda flag `out` (its `lambda:` line is the 7th of the flags section)."""
    return FLAGS + f"  out:\n    lambda: {target}\n    rollback: \"off\"\n{extra}"


def test_a_lambda_flag_parses_into_its_target():
    plan = parse_plan(plan_text(flags=lambda_flags(extra="    sensitive: true\n")))
    out = plan.flag("out")
    assert (out.kind, out.target.function, out.target.variable, out.key) == ("lambda", "worker", "OUT_ENABLED",
                                                                             "lambda:worker/OUT_ENABLED")
    assert out.where == "worker env OUT_ENABLED" and out.sensitive and plan.functions == ("worker",)
    assert [f.name for f in plan.ssm_flags] == ["kill", "allowlist"]


@pytest.mark.parametrize("target,words", [
    ("{function: worker, variable: 9LIVES}  # <-", ["Lambda would refuse the environment variable name '9LIVES'"]),
    ("{function: worker, variable: X}  # <-", ["Lambda would refuse"]),  # at least two characters
    ("{function: worker, variable: OUT-ENABLED}  # <-", ["Lambda would refuse"]),
    ("{function: worker, variable: AWS_REGION}  # <-", ["'AWS_REGION' is reserved by Lambda"]),
    ("{function: worker, variable: _HANDLER}  # <-", ["reserved by Lambda"]),
    ("{function: 'worker:live', variable: OUT}  # <-", ["has a version or alias ('live')", "$LATEST"]),
    ("{function: 'arn:aws:lambda:us-east-2:123456789012:function:worker:7', variable: OUT}  # <-", ["version or alias"]),
    ("{function: 'bad name!', variable: OUT}  # <-", ["is not valid"]),
    ("{function: 'arn:aws:lambda:eu-west-1:123456789012:function:worker', variable: OUT}  # <-",
     ["the function's ARN is in eu-west-1, the plan in us-east-2"]),
    ("{function: worker}  # <-", ["missing required key 'variable'"]),
    ("{function: worker, variable: OUT, qualifier: live}  # <-", ["unknown key 'qualifier'"]),
])
def test_lambda_targets_are_validated_with_line_numbers(target, words):
    assert_error(plan_text(flags=lambda_flags(target)), *words)


def test_an_unknown_target_kind_is_named():
    flags = FLAGS + '  out:\n    ecs_env: {service: worker, variable: OUT}  # <-\n    rollback: "off"\n'
    err = assert_error(plan_text(flags=flags), "unknown key 'ecs_env' for a flag (no flag target of that kind)")
    assert "`lambda: {function: NAME, variable: NAME}`" in err.hint


def test_a_flag_needs_exactly_one_target():
    both = FLAGS + '  out:\n    parameter: /app/out\n    lambda: {function: worker, variable: OUT}  # <-\n    rollback: "off"\n'
    assert_error(plan_text(flags=both), "has both parameter and lambda")
    neither = FLAGS + '  out:  # <-\n    rollback: "off"\n'
    assert_error(plan_text(flags=neither), "needs one of parameter, lambda")


def test_one_variable_is_one_flag():
    flags = lambda_flags() + '  out_again:\n    lambda: {function: worker, variable: OUT_ENABLED}  # <-\n    rollback: "off"\n'
    assert_error(plan_text(flags=flags), "worker env OUT_ENABLED is already the target of flag 'out'")


def test_a_function_named_two_ways_is_refused():
    arn = "arn:aws:lambda:us-east-2:123456789012:function:worker"
    flags = lambda_flags() + f'  more:\n    lambda: {{function: "{arn}", variable: MORE}}  # <-\n    rollback: "off"\n'
    err = assert_error(plan_text(flags=flags), "function worker is named 'worker' on line 13", repr(arn))
    assert "spell it the same way" in err.hint
    same = lambda_flags(f'{{function: "{arn}", variable: OUT}}') + \
        f'  more:\n    lambda: {{function: "{arn}", variable: MORE}}\n    rollback: "off"\n'
    assert parse_plan(plan_text(flags=same)).functions == (arn,)


def test_secure_is_for_ssm_only():
    assert_error(plan_text(flags=lambda_flags(extra="    secure: true  # <-\n")), "`secure` is for SSM parameters")


def test_the_4kb_environment_limit_is_checked_in_every_state():
    big = "x" * 2100
    flags = FLAGS + "".join(f'  v{i}:\n    lambda: {{function: worker, variable: V{i}}}\n    rollback: "off"\n' for i in (1, 2))
    phases = f'phases:\n  - name: one\n    set: {{v1: "{big}"}}\n  - name: two\n    set:\n      v2: "{big}"  # <-\n'
    err = assert_error(plan_text(flags=flags, phases=phases),
                       "the environment of Lambda function worker would be", "in phase two", "4096-byte limit")
    assert "v2" in err.hint or "v1" in err.hint
    rollback = FLAGS + "".join(f'  v{i}:\n    lambda: {{function: worker, variable: V{i}}}\n    rollback: "{big}"{"  # <-" if i == 1 else ""}\n'
                               for i in (1, 2))
    assert_error(plan_text(flags=rollback), "with the rollback values")
    fits = FLAGS + "".join(f'  v{i}:\n    lambda: {{function: worker, variable: V{i}}}\n    rollback: "{"x" * 1900}"\n' for i in (1, 2))
    assert parse_plan(plan_text(flags=fits)).functions == ("worker",)
