"""`kms_key` on a Lambda flag: the customer managed key encrypting the function's environment, so the
rollback's permissions (operator, guard) can grant it. Validated with the plan, FILE:LINE:COL + hint."""

from __future__ import annotations

import json

import pytest

from cutover.plan.load import parse_plan
from tests.unit.test_plan import FLAGS, assert_error, lambda_flags, plan_text

KEY = "arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = "arn:aws:kms:us-east-2:123456789012:alias/worker-env"
MRK = "arn:aws:kms:us-east-2:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def keyed(key: str, variable: str = "OUT_ENABLED", mark: str = "") -> str:
    return f'{{function: worker, variable: {variable}, kms_key: "{key}"}}{mark}'


@pytest.mark.parametrize("key", [KEY, ALIAS, MRK])
def test_a_lambda_flag_may_name_its_functions_kms_key(key):
    plan = parse_plan(plan_text(flags=lambda_flags(keyed(key))))
    out = plan.flag("out")
    assert out.target.kms_key == key and plan.function_keys == {"worker": key}
    assert parse_plan(plan_text(flags=lambda_flags())).function_keys == {"worker": None}


@pytest.mark.parametrize("key,words,hint", [
    ("1234abcd-12ab-34cd-56ef-1234567890ab", ["is not a KMS key ARN"], "arn:aws:kms:REGION:ACCOUNT:key/KEY_ID"),
    ("alias/worker-env", ["is not a KMS key ARN"], "alias/NAME"),
    ("arn:aws:kms:us-east-2:123456789012:key/not-a-key-id", ["is not a KMS key ARN"], "key/KEY_ID"),
    ("arn:aws:kms:us-east-2:123456789012:alias/aws/lambda", ["AWS managed key"], "remove kms_key"),
    ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", ["the key's ARN is in eu-west-1, the plan in us-east-2"],
     "plan's region"),
    ("arn:aws:s3:::bucket", ["is not a KMS key ARN"], "key/KEY_ID"),
])
def test_a_kms_key_is_validated_with_line_numbers(key, words, hint):
    err = assert_error(plan_text(flags=lambda_flags(keyed(key, mark="  # <-"))), "flags.out.lambda.kms_key", *words)
    assert hint in err.hint


def test_every_flag_of_one_function_names_the_same_key():
    other = KEY.replace("1234abcd-", "9999abcd-")
    two = lambda_flags(keyed(KEY)) + f'  more:\n    lambda: {keyed(other, "MORE")}  # <-\n    rollback: "off"\n'
    err = assert_error(plan_text(flags=two), "function worker has kms_key", "on line 13", "and", other)
    assert "the same kms_key" in err.hint
    missing = lambda_flags(keyed(KEY)) + '  more:\n    lambda: {function: worker, variable: MORE}  # <-\n    rollback: "off"\n'
    assert_error(plan_text(flags=missing), "function worker has kms_key", "none here")
    first_missing = lambda_flags() + f'  more:\n    lambda: {keyed(KEY, "MORE")}  # <-\n    rollback: "off"\n'
    assert_error(plan_text(flags=first_missing), "function worker has no kms_key on line 13")
    same = lambda_flags(keyed(KEY)) + f'  more:\n    lambda: {keyed(KEY, "MORE")}\n    rollback: "off"\n'
    assert parse_plan(plan_text(flags=same)).function_keys == {"worker": KEY}


def test_kms_key_is_for_lambda_flags_and_in_the_schema():
    ssm = FLAGS.replace("    parameter: /app/kill\n", f'    parameter: /app/kill\n    kms_key: "{KEY}"  # <-\n')
    assert_error(plan_text(flags=ssm), "unknown key 'kms_key'")
    from cutover.plan.schema import plan_schema

    prop = plan_schema()["$defs"]["lambda_target"]["properties"]["kms_key"]
    assert prop["type"] == "string" and "pattern" in prop and "customer managed" in prop["description"]
    json.dumps(prop)
