"""The plan format as a JSON Schema (draft 2020-12), and a small walker that checks a YAML node tree
against it.

The schema is the one source of truth for the plan's structure: `cutover validate --schema` prints it
for editors, and `cutover.plan.load` validates every plan with it before building the model. The walker
implements only the keywords used here (see `KEYWORDS`), and works on pyyaml nodes rather than loaded
data so that every error carries the line and column of the offending key or value, and so that YAML
1.1 surprises (unquoted `yes` read as a boolean, `0` as a number) are caught where text is needed.

Semantic rules (references between sections, duplicate names, mutations in GraphQL) live in
`cutover.plan.load`; the value formats used here (`format`) are checked by `FORMATS` below, which give a
precise message where a bare regular expression could not.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from typing import Any, Callable

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cutover import checks, regions
from cutover.checks.interface import list_of, ref, text
from cutover.model.durations import DURATION, DURATION_HINT, duration_seconds

# --- patterns (ECMA-262 compatible, so the schema works in editors too) ----------------------------

PLAN_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
PHASE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ITEM_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"  # flag and check names
REGION = regions.SHAPE  # us-east-2, us-gov-west-1, eusc-de-east-1
ROLE_ARN = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$"
LOG_GROUP = r"^[A-Za-z0-9._/#-]{1,512}$"
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
URL = r"^(https?://|\$\{)"
# A host name, or "*." and a domain of at least two labels (any host under it, not the domain itself).
HOST = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
# SSM: starts with /, no //, at most 15 levels, not under /aws or /ssm, allowed characters only.
SSM_NAME = r"^(?!.*//)(?!(?:/[^/]*){16})/(?![Aa][Ww][Ss])(?![Ss][Ss][Mm])[A-Za-z0-9_./-]*[A-Za-z0-9_.-]$"
SSM_PREFIX = r"^(?!.*//)(?!(?:/[^/]*){15})/(?![Aa][Ww][Ss])(?![Ss][Ss][Mm])[A-Za-z0-9_./-]*[A-Za-z0-9_.-]$"
SSM_NAME_MAX = 1011
SSM_PREFIX_MAX = SSM_NAME_MAX - len("/state")  # state and lock live under the prefix
SSM_VALUE_MAX = 4096  # standard tier
LAMBDA_NAME = r"[a-zA-Z0-9_-]{1,64}"
# A function's name, partial ARN (123456789012:function:NAME) or ARN; no version or alias qualifier.
LAMBDA_FUNCTION = (rf"^(?:(?:arn:aws[a-zA-Z-]*:lambda:[a-z]{{2}}(?:-[a-z]+)+-[0-9]{{1,2}}:)?[0-9]{{12}}:function:)?"
                   rf"{LAMBDA_NAME}$")
LAMBDA_VARIABLE = r"^[a-zA-Z][a-zA-Z0-9_]+$"
# A customer managed KMS key: its key ARN (key id a UUID, or mrk- and 32 hex for a multi-Region key) or
# an alias ARN. The region is checked against the plan's by plan.py.
KMS_KEY = (r"^arn:aws[a-zA-Z-]*:kms:[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:"
           r"(?:key/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias/[a-zA-Z0-9/_-]{1,250})$")
# Keys Lambda sets itself and refuses in UpdateFunctionConfiguration.
LAMBDA_RESERVED = frozenset(
    "_HANDLER _X_AMZN_TRACE_ID AWS_DEFAULT_REGION AWS_REGION AWS_EXECUTION_ENV AWS_LAMBDA_FUNCTION_NAME "
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE AWS_LAMBDA_FUNCTION_VERSION AWS_LAMBDA_INITIALIZATION_TYPE "
    "AWS_LAMBDA_LOG_GROUP_NAME AWS_LAMBDA_LOG_STREAM_NAME AWS_ACCESS_KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY "
    "AWS_SESSION_TOKEN AWS_LAMBDA_RUNTIME_API LAMBDA_TASK_ROOT LAMBDA_RUNTIME_DIR".split()
)

RESERVED_PHASES = ("pending", "rolled_back")  # machine states that are not phases

# The order the schema lists the check types in (the types in `cutover.checks.TYPES` fill their places;
# a type not named here comes after them).
_PUBLISHED_ORDER = ("env", "secrets", "http", "graphql", "log_freshness", "log_absent", "command", "alarms", "window",
                    "metric", "logs_query")
ALARM_COMPARISONS = (
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)


_ref, _str, _list_of = ref, text, list_of  # shared with the check types' own fragments


_METRIC = {
    "namespace": _str(minLength=1, maxLength=255, description="the metric's namespace, e.g. AWS/Lambda"),
    "metric": _str(minLength=1, maxLength=255, description="the metric name, e.g. Errors"),
    "dimensions": {
        "type": "object",
        "description": "the metric's dimensions, e.g. {FunctionName: my-fn}",
        "propertyNames": _str(title="dimension", minLength=1, maxLength=255),
        "additionalProperties": _str(minLength=1, maxLength=1024, description="the dimension's value, quoted"),
    },
}
METRIC_STAT = r"^(SampleCount|Average|Sum|Minimum|Maximum|p(100|[0-9]{1,2})(\.[0-9]{1,2})?)$"

_BASE: dict = {  # every check type's own fragment is added by _schema()
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cutover plan (phases.yaml), version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "name", "region", "flags", "phases"],
    "properties": {
        "version": {"type": "integer", "enum": [1], "description": "this cutover reads plan format version 1"},
        "name": _str(
            pattern=PLAN_NAME,
            description="lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters",
        ),
        "description": _str(),
        "region": _str(format="aws-region", pattern=REGION, description="an AWS Region such as us-east-2 (--region overrides)"),
        "account": _str(pattern=r"^[0-9]{12}$", description="the AWS account id (12 digits, quoted) the plan acts on: "
                        "credentials of another account are refused unless --region-override"),
        "state_prefix": _str(
            format="ssm-prefix",
            pattern=SSM_PREFIX,
            maxLength=SSM_PREFIX_MAX,
            description="SSM path for the state record and lock; default /cutover/<name>",
        ),
        "write_rate": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 10,
            "default": 3,
            "description": "PutParameter calls per second at most: 3 by default (the SSM write quota), "
            "10 only with higher throughput enabled",
        },
        "lock_lease": _ref("positive_duration", default="15m", description="how long a lock holds unless renewed"),
        "flags": {
            "type": "object",
            "minProperties": 1,
            "description": "every flag the plan may touch, in rollback order (kill switches first)",
            "propertyNames": _ref("flag_name"),
            "additionalProperties": _ref("flag"),
        },
        "checks": {
            "type": "object",
            "description": "named gates; phases refer to them by name",
            "propertyNames": _ref("check_name"),
            "additionalProperties": _ref("check"),
        },
        "phases": _list_of(_ref("phase"), description="the phases in order, Phase 0 first"),
        "targets": {
            "type": "object",
            "minProperties": 1,
            "description": "where the flags live, one account and region each; default: the plan's region, the caller's account",
            "propertyNames": _ref("target_name"),
            "additionalProperties": _ref("target"),
        },
        "waves": _list_of(_ref("wave"), description="the order every phase reaches the targets in, wave by wave"),
        "fanout": {
            "type": "object",
            "additionalProperties": False,
            "description": "how fast waves may grow (validate refuses waves that grow faster)",
            "properties": {
                "first_wave_max": {"type": "integer", "minimum": 1, "default": 1,
                                   "description": "the most targets the first wave may hold"},
                "factor": {"type": "number", "minimum": 1, "default": 3,
                           "description": "each wave at most this many times the one before"},
            },
        },
        "notify": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sns_topic_arn"],
            "description": "who hears of every state change, rollback and automatic rollback",
            "properties": {
                "sns_topic_arn": _str(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$",
                                      description="an SNS topic ARN"),
            },
        },
    },
    "$defs": {
        "flag_name": _str(title="flag", pattern=ITEM_NAME, description="letters, digits, '_', '.' and '-'"),
        "check_name": _str(title="check", pattern=ITEM_NAME, description="letters, digits, '_', '.' and '-'"),
        "target_name": _str(title="target", pattern=PHASE_NAME,
                            description="lowercase letters, digits, '_' and '-', at most 63 characters"),
        "target": {
            "type": "object",
            "additionalProperties": False,
            "required": ["region"],
            "properties": {
                "region": _str(format="aws-region", pattern=REGION, description="an AWS Region such as us-west-2"),
                "account": _str(pattern=r"^[0-9]{12}$", description="the AWS account id (12 digits, quoted)"),
                "role_arn": _str(pattern=ROLE_ARN, description="an IAM role ARN, assumed before each step: "
                                 "arn:aws:iam::ACCOUNT:role/NAME"),
                "external_id": _str(pattern=r"^([\w+=,.@:/-]{2,1224}|\$\{[A-Za-z_][A-Za-z0-9_]*\})$",
                                    description="sent when assuming role_arn: 2-1224 characters, or ${ENV_VAR}"),
            },
        },
        "wave": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "targets"],
            "properties": {
                "name": _str(pattern=PHASE_NAME, description="lowercase letters, digits, '_' and '-', at most 63 characters"),
                "targets": _list_of(_ref("target_name"), description="targets reached together, in parallel"),
                "bake": _ref("duration", default=0, description="how long the previous wave must hold in a phase "
                             "before this wave enters it"),
            },
        },
        "phase_name": _str(
            pattern=PHASE_NAME,
            description="lowercase letters, digits, '_' and '-', at most 63 characters",
        ),
        "flag_value": _str(
            minLength=1,
            maxLength=SSM_VALUE_MAX,
            description='SSM parameter values cannot be empty: use a placeholder such as "none"',
        ),
        "duration": {
            "type": ["string", "integer"],
            "format": "duration",
            "pattern": DURATION,
            "minimum": 0,
            "description": DURATION_HINT,
        },
        "positive_duration": {
            "type": ["string", "integer"],
            "format": "positive-duration",
            "pattern": DURATION,
            "exclusiveMinimum": 0,
            "description": DURATION_HINT + ", more than zero",
        },
        "ssm_parameter": _str(
            format="ssm-parameter",
            pattern=SSM_NAME,
            maxLength=SSM_NAME_MAX,
            description="a full SSM parameter name such as /team/prod/flag",
        ),
        "headers": {
            "type": "object",
            "propertyNames": _str(title="header", pattern=HEADER_NAME, description="an HTTP header name"),
            "additionalProperties": _str(description="may hold ${VAR} and {{secret:ID}}"),
        },
        "expect_status": _list_of(
            {"type": "integer", "minimum": 100, "maximum": 599, "description": "an HTTP status code, 100-599"},
            default=[200],
            description="the HTTP status codes that pass, e.g. [200]",
        ),
        "url": _str(pattern=URL, description="an http(s):// URL; may hold ${VAR} and ${VAR:-default}"),
        "allowed_hosts": _list_of(
            _str(format="host-name", pattern=HOST, description="a host name such as api.example.com, or *.example.com"),
            uniqueItems=True,
            description="hosts the check's {{secret:...}} may be sent to besides the host written in its url "
            "(needed when the url's host comes from a ${VAR})",
        ),
        "log_group": _str(pattern=LOG_GROUP, description="a CloudWatch Logs group name"),
        "alarm_name": _str(minLength=1, maxLength=255, description="a CloudWatch alarm name"),
        "flag": {
            "title": "flag",
            "type": "object",
            "additionalProperties": False,
            "required": ["rollback"],
            # Where the flag lives: an SSM parameter, or a variable in a Lambda function's environment.
            "oneOf": [{"required": ["parameter"]}, {"required": ["lambda"]}],
            "properties": {
                "parameter": _ref("ssm_parameter"),
                "lambda": _ref("lambda_target"),
                "rollback": _ref("flag_value"),  # the known-safe value that `rollback` restores
                "sensitive": {"type": "boolean", "default": False, "description": "never printed or logged"},
                "secure": {"type": "boolean", "default": False,
                           "description": "stored as SecureString (SSM flags only)"},
                "public_values": _list_of(
                    _ref("flag_value"),
                    uniqueItems=True,
                    description='values of a sensitive flag shown in plain text everywhere, e.g. ["none", "*"]; '
                    "each is its rollback value or a value some phase sets",
                ),
                "description": _str(),
            },
        },
        "lambda_target": {
            "title": "Lambda target",
            "type": "object",
            "additionalProperties": False,
            "required": ["function", "variable"],
            "description": "a variable in a Lambda function's environment: {function: NAME, variable: NAME}, and "
                           "kms_key: ARN when a customer managed key encrypts it",
            "properties": {
                "function": _str(format="lambda-function", pattern=LAMBDA_FUNCTION,
                                 description="the function's name or ARN, without a version or alias"),
                "variable": _str(format="lambda-variable", pattern=LAMBDA_VARIABLE,
                                 description="an environment variable name: a letter, then letters, digits or '_'"),
                "kms_key": _str(format="kms-key", pattern=KMS_KEY,
                                description="the customer managed KMS key encrypting the function's environment (key or "
                                            "alias ARN, the plan's region); the same for every flag of the function"),
            },
        },
        "phase": {
            "title": "phase",
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": _ref("phase_name"),
                "description": _str(),
                "set": {
                    "type": "object",
                    "description": "flag values this phase sets, on top of the previous phase's",
                    "propertyNames": _ref("flag_name"),
                    "additionalProperties": _ref("flag_value"),
                },
                "gates": {
                    "type": "array",
                    "items": _ref("check_name"),
                    "uniqueItems": True,
                    "description": "checks that must pass before advancing into this phase",
                },
                "bake": _ref("duration", default=0, description="how long the phase must hold before the next advance"),
                "approval": {"type": "boolean", "default": False, "description": "advancing into it needs --approve"},
                "approvers": _list_of(
                    _str(pattern=r"^arn:aws[a-z-]*:(iam|sts)::[0-9*?]*:[A-Za-z0-9+=,.@_/*?-]+$",
                         description="an IAM or STS ARN pattern, e.g. arn:aws:sts::123456789012:assumed-role/release-*/*"),
                    uniqueItems=True,
                    description="IAM/STS ARN patterns (* and ?) allowed to approve entering this phase",
                ),
                "separate_approver": {
                    "type": "boolean", "default": False,
                    "description": "the approver must not be who entered the previous phase (four eyes)",
                },
                "auto_rollback": {
                    "type": "boolean", "default": False,
                    "description": "`cutover watch` rolls back on an alarm or drift in this phase, as with --auto-rollback",
                },
                "watch": {
                    "type": "array",
                    "items": _ref("check_name"),
                    "uniqueItems": True,
                    "description": "metric checks judged at every `cutover watch` poll during the bake (a sequential test)",
                },
            },
        },
        "field_limit": {
            "title": "field limits",
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "max and/or min, e.g. {max: 0}",
            "properties": {"max": {"type": "number", "description": "FAIL when a row's value is above this"},
                           "min": {"type": "number", "description": "FAIL when a row's value is below this"}},
        },
        "metric_count": {
            "title": "metric",
            "type": "object",
            "additionalProperties": False,
            "required": ["namespace", "metric"],
            "properties": _METRIC,
        },
        "metric_value": {
            "title": "metric",
            "type": "object",
            "additionalProperties": False,
            "required": ["namespace", "metric", "stat"],
            "description": "a statistic of one metric, e.g. {namespace: AWS/Lambda, metric: Duration, stat: p99}",
            "properties": {
                **_METRIC,
                "stat": _str(pattern=METRIC_STAT, description="SampleCount, Average, Sum, Minimum, Maximum or a "
                             "percentile such as p99 or p99.9"),
            },
        },
        "metric_baseline": {
            "title": "baseline",
            "type": "object",
            "additionalProperties": False,
            "required": ["offsets"],
            "properties": {
                "offsets": _list_of(_ref("positive_duration"), uniqueItems=True,
                                    description="how far back the baseline windows are, e.g. [7d]; their counts are pooled"),
                "worse_by": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                             "description": "FAIL when the rate is worse than the baseline's by more than this, e.g. 0.005"},
                "confidence": {"type": "number", "exclusiveMinimum": 0.5, "maximum": 0.9999, "default": 0.99,
                               "description": "the one-sided confidence of the baseline test, e.g. 0.99"},
            },
        },
        "alarm_expect": {
            "title": "alarm expectation",
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "any of threshold, comparison, period, evaluation_periods, metric, namespace",
            "properties": {
                "threshold": {"type": "number", "description": "the alarm's Threshold, e.g. 5"},
                "comparison": {
                    "type": "string",
                    "enum": list(ALARM_COMPARISONS),
                    "description": "the alarm's ComparisonOperator, e.g. GreaterThanThreshold",
                },
                "period": _ref("positive_duration", description="the metric period: 10s, 20s, 30s or whole minutes"),
                "evaluation_periods": {"type": "integer", "minimum": 1, "description": "the alarm's EvaluationPeriods"},
                "metric": _str(minLength=1, maxLength=255, description="the alarm's MetricName"),
                "namespace": _str(minLength=1, maxLength=255, description="the alarm's metric Namespace, e.g. AWS/Lambda"),
            },
        },
    },
}

def check_types() -> tuple[str, ...]:
    """Every check type's `type:` word, in the schema's order."""
    listed = [t.kind for t in checks.TYPES]
    known = [k for k in _PUBLISHED_ORDER if k in listed]
    return (*known, *(k for k in listed if k not in known))


def _check_def(kinds: tuple[str, ...]) -> dict:
    """The `check` definition: a `type` from the list, then that type's own fragment."""
    return {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": list(kinds), "description": "the check type: " + ", ".join(kinds)},
        },
        "allOf": [
            {"if": {"required": ["type"], "properties": {"type": {"const": t}}}, "then": _ref(f"{t}_check")}
            for t in kinds
        ],
    }


def _schema() -> dict:
    """The plan schema with every check type's fragment, `check` first, where the schema has always had them."""
    return _assembled(tuple(checks.TYPES))


@functools.lru_cache(maxsize=4)
def _assembled(types: tuple) -> dict:
    kinds, own = check_types(), {t.kind: t.schema for t in types}
    defs: dict = {}
    for name, value in _BASE["$defs"].items():
        defs[name] = value
        if name == "phase":  # the checks come after the phases
            defs["check"] = _check_def(kinds)
            defs.update({f"{k}_check": own[k] for k in kinds})
    return {**_BASE, "$defs": defs}


KEYWORDS = frozenset(
    "$schema $defs $ref title description default type enum const format pattern minLength maxLength "
    "minimum maximum exclusiveMinimum properties additionalProperties required propertyNames minProperties "
    "items minItems uniqueItems allOf if then oneOf anyOf".split()
)


def plan_schema() -> dict:
    """The JSON Schema (draft 2020-12) of phases.yaml version 1 (a copy: callers may change it), with the
    rules cutover checks through its formats also spelled in standard keywords, for editors and other
    validators (formats are only annotations to them). cutover's own walker reports these rules through
    the formats, with its own messages."""
    out = copy.deepcopy(_schema())
    defs = out["$defs"]
    # Lambda sets these variables itself; it refuses to change them.
    defs["lambda_target"]["properties"]["variable"]["not"] = {"enum": sorted(LAMBDA_RESERVED)}
    # SecureString is an SSM parameter type: a Lambda flag cannot be secure.
    defs["flag"]["if"] = {"required": ["lambda"]}
    defs["flag"]["then"] = {"properties": {"secure": {"const": False}}}
    # Checks are read-only: a GraphQL document that starts a mutation or a subscription is refused.
    query = defs["graphql_check"]["properties"]["query"]
    query["not"] = {"pattern": r"^\s*(#[^\n]*\n\s*)*(mutation|subscription)\b"}
    return out


# --- value formats -----------------------------------------------------------------------------------

def _check_duration(text: str) -> tuple[str, str] | None:
    if duration_seconds(text) is None:
        return f"{_show(text)} is not a duration", DURATION_HINT
    return None


def _check_positive_duration(text: str) -> tuple[str, str] | None:
    bad = _check_duration(text)
    if bad is None and duration_seconds(text) == 0:
        return f"{_show(text)} is zero; it must be more than zero", DURATION_HINT
    return bad


def _ssm_name_problem(name: str, max_len: int, max_levels: int) -> str | None:
    if not name.startswith("/"):
        return "must start with '/'"
    if "//" in name:
        return "must not contain '//'"
    if name.endswith("/"):
        return "must not end with '/'"
    if name[1:4].lower() in ("aws", "ssm"):
        return "must not start with /aws or /ssm (reserved by AWS)"
    bad = sorted(set(re.sub(r"[A-Za-z0-9_./-]", "", name)))
    if bad:
        return "may only contain letters, digits and _ . - / (found " + " ".join(repr(c) for c in bad[:5]) + ")"
    if len(name) > max_len:
        return f"is too long ({len(name)} characters, at most {max_len})"
    if name.count("/") > max_levels:
        return f"has too many levels ({name.count('/')}, at most {max_levels})"
    return None


def _check_ssm_parameter(text: str) -> tuple[str, str] | None:
    problem = _ssm_name_problem(text, SSM_NAME_MAX, 15)
    if problem:
        return f"SSM parameter name {_show(text)} {problem}", "use a full name such as /team/prod/flag_name"
    return None


def _check_ssm_prefix(text: str) -> tuple[str, str] | None:
    problem = _ssm_name_problem(text, SSM_PREFIX_MAX, 14)
    if problem:
        return f"SSM path {_show(text)} {problem}", "use a path such as /cutover/<plan name>"
    return None


_GQL_IGNORED = re.compile(r'\s+|,|\ufeff|#[^\n\r]*|"""(?:\\"""|[^"]|"(?!""))*"""|"(?:\\.|[^"\\\n])*"')
_GQL_TOKEN = re.compile(r"[_A-Za-z][_0-9A-Za-z]*|\.\.\.|.", re.S)


def graphql_operations(query: str) -> list[str]:
    """The keyword opening each top-level definition: 'query', 'mutation', 'fragment', '{' (shorthand)..."""
    depth, at_start, found = 0, True, []
    pos = 0
    while pos < len(query):
        m = _GQL_IGNORED.match(query, pos)
        if m:
            pos = m.end()
            continue
        tok = _GQL_TOKEN.match(query, pos).group()
        pos += len(tok)
        if depth == 0 and at_start:
            found.append(tok)
            at_start = False
        if tok in ("{", "("):
            depth += 1
        elif tok in ("}", ")"):
            depth = max(depth - 1, 0)
            at_start = depth == 0 and tok == "}"
    return found


def _check_graphql_query(text: str) -> tuple[str, str] | None:
    ops = graphql_operations(text)
    hint = "checks are read-only: write a query such as 'query { shop { name } }'"
    for op in ops:
        if op in ("mutation", "subscription"):
            return f"the GraphQL document is a {op}, not a query", hint
        if op not in ("query", "fragment", "{"):
            return f"the GraphQL document starts with {_show(op)}, not 'query' or '{{'", hint
    if not ops:
        return "the GraphQL document has no operation", hint
    return None


def _check_lambda_function(text: str) -> tuple[str, str] | None:
    hint = "use the function's name (rp-mw-prod-worker) or its ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
    if re.match(LAMBDA_FUNCTION, text):
        return None
    base = re.match(rf"^(.*:function:)?({LAMBDA_NAME}):([^:]+)$", text)
    if base and (base.group(1) or not text.startswith("arn:")):
        return (f"Lambda function {_show(text)} has a version or alias ({_show(base.group(3))}); environment "
                "variables belong to the unpublished function ($LATEST)", "drop the qualifier: " + hint)
    name = text.split(":function:", 1)[-1]
    if not re.match(rf"^{LAMBDA_NAME}$", name):
        return (f"Lambda function name {_show(name)} is not valid: 1 to 64 letters, digits, '-' or '_'", hint)
    return f"{_show(text)} is not a Lambda function name or ARN", hint


def _check_lambda_variable(text: str) -> tuple[str, str] | None:
    if text in LAMBDA_RESERVED:
        return (f"{_show(text)} is reserved by Lambda (it sets it for every function)",
                "use another variable name; Lambda refuses to change reserved ones")
    if not re.match(LAMBDA_VARIABLE, text):
        return (f"Lambda would refuse the environment variable name {_show(text)}",
                "a name starts with a letter and has at least two characters: letters, digits and '_'")
    return None


def _schedule_problem(parser: str, text: str) -> tuple[str, str] | None:
    """A window entry through its parser in cutover.model.schedule (the one that evaluates it)."""
    from cutover.model import schedule

    try:
        getattr(schedule, parser)(text)
    except schedule.ScheduleError as err:
        return err.message, err.hint
    return None


_CALENDAR_NAME = r"[a-zA-Z0-9_.-]{3,128}"
_CALENDAR = re.compile(rf"^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{{12}}:document/)?{_CALENDAR_NAME}$")


def _check_change_calendar(text: str) -> tuple[str, str] | None:
    if _CALENDAR.match(text):
        return None
    return (f"{_show(text)} is not an SSM Change Calendar name or ARN",
            "write the calendar's name (3 to 128 letters, digits, '_', '-' or '.') or its ARN "
            "(arn:aws:ssm:REGION:ACCOUNT:document/NAME)")


def _check_stay_open_for(text: str) -> tuple[str, str] | None:
    if text == "bake" or duration_seconds(text) is not None:
        return None
    return f"{_show(text)} is neither bake nor a duration", "write bake (the phase's bake) or a duration: " + DURATION_HINT


def _check_kms_key(text: str) -> tuple[str, str] | None:
    hint = ("write the key's full ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY_ID, or its alias ARN, "
            "arn:aws:kms:REGION:ACCOUNT:alias/NAME (the function's KMSKeyArn shows it)")
    if re.match(r"^arn:aws[a-zA-Z-]*:kms:[^:]*:[0-9]{12}:alias/aws/", text):
        return (f"{_show(text)} is an AWS managed key: it needs no grant and cannot be named in a policy",
                "remove kms_key: Lambda's own key (aws/lambda) works for any role allowed to read the function")
    if re.match(KMS_KEY, text):
        return None
    return f"{_show(text)} is not a KMS key ARN", hint


def _check_host_name(text: str) -> tuple[str, str] | None:
    hint = "write a host name such as api.example.com (no scheme, port or path), or *.example.com"
    if not re.match(HOST, text):
        return f"{_show(text)} is not a host name", hint
    if text.startswith("*.") and text.rstrip(".").count(".") < 2:
        return f"{_show(text)} would allow every host under a top-level domain", "name at least the domain: *.example.com"
    return None


FORMATS: dict[str, Callable[[str], tuple[str, str] | None]] = {
    "kms-key": _check_kms_key,
    "host-name": _check_host_name,
    "lambda-function": _check_lambda_function,
    "lambda-variable": _check_lambda_variable,
    "duration": _check_duration,
    "positive-duration": _check_positive_duration,
    "ssm-parameter": _check_ssm_parameter,
    "ssm-prefix": _check_ssm_prefix,
    "graphql-query": _check_graphql_query,
    "aws-region": regions.problem,  # the shape, and a region botocore knows
    "time-zone": lambda text: _schedule_problem("parse_timezone", text),
    "weekly-range": lambda text: _schedule_problem("parse_weekly", text),
    "deny-range": lambda text: _schedule_problem("parse_deny", text),
    "change-calendar": _check_change_calendar,
    "stay-open-for": _check_stay_open_for,
}
# For a value of the wrong type where a format is expected: what to call it, and how to write one.
_FORMAT_NOUN = {"duration": ("a duration", DURATION_HINT), "positive-duration": ("a duration", DURATION_HINT)}


# --- the walker ------------------------------------------------------------------------------------

_Y = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_Y + t for t in ("str", "int", "float", "bool", "null"))
_KIND = {STR: "string", _Y + "value": "string", INT: "integer", FLOAT: "number", BOOL: "boolean", NULL: "null",
         _Y + "timestamp": "timestamp"}
_AS_READ = {  # what YAML 1.1 made of an unquoted value
    "integer": "a number",
    "number": "a number",
    "boolean": "a boolean (true/false)",
    "null": "empty (null)",
    "timestamp": "a date",
}
_NOUN = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
    "timestamp": "a date",
    "object": "a mapping (key: value)",
    "array": "a list",
}


class Violation(Exception):
    """A rule broken at `node` (or `mark`); `cutover.plan.load` turns it into a PlanError with line and column."""

    def __init__(self, node: Node | Any, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.mark = node.start_mark if isinstance(node, Node) else node
        self.message, self.hint = message, hint


def _show(value: Any, limit: int = 60) -> str:
    """A value quoted for a one-line message."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def where(path: tuple) -> str:
    """('phases', 1, 'set') -> 'phases[1].set'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "plan"


def _at(path: tuple, message: str) -> str:
    return f"{where(path)}: {message}" if path else message


def kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "object"
    if isinstance(node, SequenceNode):
        return "array"
    return _KIND.get(node.tag, "string")


_CONSTRUCT = SafeConstructor()
_SCALARS = {
    INT: _CONSTRUCT.construct_yaml_int,
    FLOAT: _CONSTRUCT.construct_yaml_float,
    BOOL: _CONSTRUCT.construct_yaml_bool,
    NULL: _CONSTRUCT.construct_yaml_null,
}


def scalar(node: ScalarNode, path: tuple = ()) -> Any:
    """A scalar's value as YAML 1.1 reads it (text stays text: dates are not constructed)."""
    construct = _SCALARS.get(node.tag)
    if construct is None:
        return node.value
    try:
        return construct(node)
    except (ValueError, OverflowError, KeyError, IndexError):  # '!!bool maybe', '!!int ""', 5000 digits...
        message = f"{_show(node.value)} cannot be read as {_NOUN[kind(node)]}"
        raise Violation(node, _at(path, message), "write a plain value, without a !! tag") from None


def fields_of(node: MappingNode) -> dict[str, tuple[Node, Node]]:
    """A validated mapping's entries by key: (key node, value node), so values keep their positions."""
    return {k.value: (k, v) for k, v in node.value}


def node_seconds(node: Node) -> float:
    """A validated duration (`30s`, `15m`, or whole seconds) in seconds."""
    if kind(node) == "integer":
        return float(scalar(node))
    seconds = duration_seconds(node.value)
    assert seconds is not None, "the schema admits only valid durations"
    return seconds


def key_text(key: Node, path: tuple) -> str:
    """A mapping key as text; YAML 1.1 booleans, numbers and complex keys are refused."""
    if isinstance(key, ScalarNode) and kind(key) == "string":
        return key.value
    if isinstance(key, ScalarNode) and key.value:
        message = f"key {_show(key.value)} is read by YAML as {_AS_READ[kind(key)]}, not a name"
        raise Violation(key, _at(path, message), f'quote it: "{key.value}"')
    raise Violation(key, _at(path, "keys must be plain names"), "write key: value")


def to_data(node: Node, path: tuple) -> Any:
    """A node as plain JSON data (for free-form values: json_match, variables)."""
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            name = key_text(k, path)
            if name in out:
                raise Violation(k, _at(path, f"duplicate key {_show(name)}"), "remove one of them")
            out[name] = to_data(v, (*path, name))
        return out
    if isinstance(node, SequenceNode):
        return [to_data(v, (*path, i)) for i, v in enumerate(node.value)]
    return scalar(node, path)


def _resolve(schema: dict, root: dict) -> dict:
    """Follow `$ref` (local `#/$defs/...` only), merging sibling keywords (draft 2020-12 semantics)."""
    while "$ref" in schema:
        target = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _hint(schema: dict) -> str:
    """How to fix a bad value: the format's own advice, else the schema's description."""
    return _FORMAT_NOUN.get(schema.get("format", ""), ("", schema.get("description", "")))[1]


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" or noun.startswith("http") else "a ") + noun


class Walker:
    """Validates a node tree against the schema; raises the first Violation, in document order."""

    def __init__(self, schema: dict) -> None:
        self.root = schema

    def validate(self, node: Node, schema: dict | None = None, path: tuple = (), anchor: Node | None = None) -> None:
        schema = _resolve(self.root if schema is None else schema, self.root)
        anchor = anchor or node
        self._type(node, schema, path)
        k = kind(node)
        if k == "object":
            self._object(node, schema, path, anchor)
        elif k == "array":
            self._array(node, schema, path)
        else:
            self._scalar(node, schema, path)
        for sub in schema.get("allOf", ()):
            self._conditional(node, _resolve(sub, self.root), path, anchor)
        self._alternatives(node, schema, path, anchor)

    def matches(self, node: Node, schema: dict, path: tuple) -> bool:
        try:
            self.validate(node, schema, path)
        except Violation:
            return False
        return True

    # -- keywords --------------------------------------------------------------------------------
    def _type(self, node: Node, schema: dict, path: tuple) -> None:
        want = schema.get("type")
        if want is None:
            return
        wanted = [want] if isinstance(want, str) else list(want)
        got = kind(node)
        if got == "boolean" and "boolean" in wanted and node.value.lower() not in ("true", "false"):
            # yes/no/on/off are booleans in YAML 1.1 only: an editor on YAML 1.2 shows them as text
            raise Violation(node, _at(path, f"{_show(node.value)} is a boolean only in YAML 1.1; YAML 1.2 editors "
                                            "and linters read it as text"), "write true or false")
        if got in wanted or (got == "integer" and "number" in wanted):
            return
        noun = _FORMAT_NOUN.get(schema.get("format", ""), (" or ".join(_NOUN[w] for w in wanted),))[0]
        hint = _hint(schema)
        if got == "null":
            expected = "" if noun == "text" else f"; expected {noun}"
            raise Violation(node, _at(path, f"empty value{expected}"), hint or "give it a value")
        if "string" in wanted and isinstance(node, ScalarNode) and node.style is None:
            as_text = ScalarNode(STR, node.value, node.start_mark, node.end_mark, style='"')
            if self.matches(as_text, schema, path):  # quoting would fix it: say so
                raise Violation(
                    node,
                    _at(path, f"{_show(node.value)} is read by YAML as {_AS_READ[got]}, not text"),
                    f'quote it: "{node.value}"',
                )
        raise Violation(node, _at(path, f"expected {noun}, got {_NOUN[got]}"), hint)

    def _scalar(self, node: ScalarNode, schema: dict, path: tuple) -> None:
        value = scalar(node, path)
        hint = _hint(schema)
        if "const" in schema and value != schema["const"]:
            raise Violation(node, _at(path, f"expected {_show(schema['const'])}"), hint)
        if "enum" in schema and (value not in schema["enum"] or isinstance(value, bool)):
            options = [str(o) for o in schema["enum"]]
            close = difflib.get_close_matches(str(value), options, n=1)
            tip = f"did you mean {_show(close[0])}? " if close else ""
            expected = options[0] if len(options) == 1 else "one of " + ", ".join(options)
            raise Violation(node, _at(path, f"{_show(node.value)} is not allowed; expected {expected}"), tip + hint)
        if kind(node) == "string":
            self._text(node, schema, path, hint)
        elif kind(node) in ("integer", "number"):
            self._number(node, value, schema, path, hint)

    def _text(self, node: ScalarNode, schema: dict, path: tuple, hint: str) -> None:
        text = node.value
        if len(text) < schema.get("minLength", 0):
            raise Violation(node, _at(path, "empty value"), hint or "give it a value")
        if len(text) > schema.get("maxLength", len(text)):
            raise Violation(node, _at(path, f"too long ({len(text)} characters, at most {schema['maxLength']})"), hint)
        fmt = FORMATS.get(schema.get("format", ""))
        problem = fmt(text) if fmt else None
        if problem:
            raise Violation(node, _at(path, problem[0]), problem[1])
        if "pattern" in schema and not re.search(schema["pattern"], text):
            raise Violation(node, _at(path, f"{_show(text)} is not valid"), hint)

    def _number(self, node: ScalarNode, value: float, schema: dict, path: tuple, hint: str) -> None:
        if "minimum" in schema and not value >= schema["minimum"]:
            raise Violation(node, _at(path, f"{node.value} is less than {schema['minimum']}"), hint)
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            raise Violation(node, _at(path, f"{node.value} must be more than {schema['exclusiveMinimum']}"), hint)
        if "maximum" in schema and not value <= schema["maximum"]:
            raise Violation(node, _at(path, f"{node.value} is more than {schema['maximum']}"), hint)

    def _object(self, node: MappingNode, schema: dict, path: tuple, anchor: Node) -> None:
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        names = _resolve(schema["propertyNames"], self.root) if "propertyNames" in schema else None
        noun = (names or {}).get("title", "key")
        seen: dict[str, Node] = {}
        for k, v in node.value:
            name = key_text(k, path)
            if name in seen:
                first = seen[name].start_mark.line + 1
                raise Violation(k, _at(path, f"duplicate {noun} {_show(name)} (first on line {first})"),
                                "remove or rename one of them")
            seen[name] = k
            if names is not None:
                self.validate(k, names, (*path, name))
            if name in props:
                self.validate(v, props[name], (*path, name), k)
            elif extra is False:
                raise self._unknown(k, name, schema, path)
            elif isinstance(extra, dict):
                self.validate(v, extra, (*path, name), k)
        for req in schema.get("required", ()):
            if req not in seen:
                owner = f" ({_article(schema['title'])})" if path and "title" in schema else ""
                desc = _resolve(props.get(req, {}), self.root).get("description", "")
                raise Violation(anchor, _at(path, f"missing required key {_show(req)}{owner}"), desc)
        if len(seen) < schema.get("minProperties", 0):
            raise Violation(anchor, _at(path, "empty; it needs at least one entry"), schema.get("description", ""))

    def _unknown(self, key: Node, name: str, schema: dict, path: tuple) -> Violation:
        allowed = list(schema.get("properties", {}))
        close = difflib.get_close_matches(name, allowed, n=1)
        tip = f"did you mean {_show(close[0])}? " if close else ""
        owner = f" for {_article(schema['title'])}" if "title" in schema else ""
        message = f"unknown key {_show(name)}{owner}" if path else f"unknown top-level key {_show(name)}"
        if schema.get("title") == "flag" and not close:
            message = f"unknown key {_show(name)} for a flag (no flag target of that kind)"
            tip = "a flag lives in `parameter: /ssm/name` or `lambda: {function: NAME, variable: NAME}`; "
        return Violation(key, _at(path, message), f"{tip}allowed keys: {', '.join(allowed)}")

    def _array(self, node: SequenceNode, schema: dict, path: tuple) -> None:
        items = schema.get("items")
        seen: dict[Any, Node] = {}
        for i, item in enumerate(node.value):
            if items is not None:
                self.validate(item, items, (*path, i))
            if schema.get("uniqueItems") and isinstance(item, ScalarNode):
                value = (kind(item), item.value)
                if value in seen:
                    first = seen[value].start_mark.line + 1
                    raise Violation(item, _at(path, f"{_show(item.value)} is listed twice (first on line {first})"),
                                    "remove the repeat")
                seen[value] = item
        if len(node.value) < schema.get("minItems", 0):
            raise Violation(node, _at(path, "empty list; it needs at least one item"), schema.get("description", ""))

    def _conditional(self, node: Node, sub: dict, path: tuple, anchor: Node) -> None:
        if "if" not in sub:
            self.validate(node, sub, path, anchor)
        elif self.matches(node, sub["if"], path):
            self.validate(node, sub["then"], path, anchor)

    def _alternatives(self, node: Node, schema: dict, path: tuple, anchor: Node) -> None:
        """oneOf / anyOf, used here only over `required` (exactly one / at least one of these keys)."""
        if kind(node) != "object":
            return
        keys = {key_text(k, path): k for k, _ in node.value}
        for keyword in ("oneOf", "anyOf"):
            if keyword not in schema:
                continue
            options = [b["required"][0] for b in schema[keyword]]
            present = [o for o in options if o in keys]
            title = f" ({_article(schema['title'])})" if "title" in schema else ""
            if not present:
                need = "one" if keyword == "oneOf" else "at least one"
                raise Violation(anchor, _at(path, f"needs {need} of {', '.join(options)}{title}"),
                                f"add {' or '.join(options)}")
            if keyword == "oneOf" and len(present) > 1:
                last = max((keys[o] for o in present), key=lambda n: n.start_mark.index)
                raise Violation(last, _at(path, f"has both {' and '.join(present)}; use only one"),
                                f"keep one of {', '.join(present)}")


def validate(node: Node) -> None:
    """Check a composed plan document against the schema; raises Violation."""
    Walker(_schema()).validate(node)


def schema_keywords(schema: Any = None) -> set[str]:
    """Every keyword the schema uses (for the test that the walker knows them all)."""
    schema = _schema() if schema is None else schema
    found: set[str] = set()
    if isinstance(schema, dict):
        for k, v in schema.items():
            found.add(k)
            if k in ("properties", "$defs"):
                for sub in v.values():
                    found |= schema_keywords(sub)
            elif k not in ("enum", "const", "default", "required"):
                found |= schema_keywords(v)
    elif isinstance(schema, list):
        for sub in schema:
            found |= schema_keywords(sub)
    return found
