"""The boto3 adapters against the moto server, over real HTTP."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError

from cutover.testing.counter import CallCounter, FaultInjector
from cutover.adapters.aws import make_ports, make_session, translate
from cutover.errors import AlreadyExists, AwsError, NotFound, ReadOnlyViolation, UsageError

REGION = "us-east-2"


@pytest.fixture
def counter():
    return CallCounter()


@pytest.fixture
def ports(aws_env, counter):
    return make_ports(REGION, None, read_only=False, counter=counter)


@pytest.fixture
def seeder(emulator):
    return emulator.seeder(REGION)


def one_line(err: Exception) -> bool:
    return "\n" not in str(err) and len(str(err)) <= 200


# --- SSM ------------------------------------------------------------------------------------------------


def test_get_many_batches_by_ten_and_leaves_missing_names_out(ports, counter, seeder):
    names = [f"/t/p{i:02d}" for i in range(23)]
    for n in names:
        seeder.put_parameter(n, f"v-{n}")
    counter.reset()

    got = ports.params.get_many(names + ["/t/missing-1", "/t/missing-2"])

    assert set(got) == set(names)
    assert got["/t/p07"].value == "v-/t/p07" and got["/t/p07"].version == 1
    assert got["/t/p07"].last_modified.tzinfo is not None
    assert counter.calls["ssm:GetParameters"] == 3  # 25 names: 10 + 10 + 5


def test_put_returns_the_new_version_and_reads_back(ports):
    assert ports.params.put("/t/flag", "false") == 1
    assert ports.params.put("/t/flag", "true") == 2
    got = ports.params.get_many(["/t/flag"])["/t/flag"]
    assert (got.value, got.version, got.type) == ("true", 2, "String")


def test_secure_string_is_stored_encrypted_and_read_decrypted(ports):
    ports.params.put("/t/emails", "a@example.com", secure=True)
    got = ports.params.get_many(["/t/emails"])["/t/emails"]
    assert (got.value, got.type) == ("a@example.com", "SecureString")


def test_create_if_absent_on_an_existing_name_is_already_exists(ports):
    ports.params.put("/t/lock", "holder-a", overwrite=False)
    with pytest.raises(AlreadyExists) as exc:
        ports.params.put("/t/lock", "holder-b", overwrite=False)
    assert exc.value.code == "ParameterAlreadyExists"
    assert exc.value.operation == "ssm:PutParameter"
    assert "holder-b" not in str(exc.value)
    assert ports.params.get_many(["/t/lock"])["/t/lock"].value == "holder-a"


def test_delete_is_idempotent(ports):
    ports.params.put("/t/gone", "x")
    ports.params.delete("/t/gone")
    ports.params.delete("/t/gone")  # already missing: not an error
    assert ports.params.get_many(["/t/gone"]) == {}


def test_history_is_oldest_first_decrypted_and_paged(ports, counter, seeder):
    for i in range(1, 56):  # 55 versions: more than one page of 50
        seeder.put_parameter("/t/state", f"s{i}", secure=True)
    counter.reset()

    history = ports.params.history("/t/state")

    assert [v.version for v in history] == list(range(1, 56))
    assert history[0].value == "s1" and history[-1].value == "s55"
    assert history[0].last_modified <= history[-1].last_modified
    assert history[0].last_modified_user is None  # moto reports "N/A"
    assert counter.calls["ssm:GetParameterHistory"] == 2


def test_history_of_a_missing_parameter_is_not_found(ports):
    with pytest.raises(NotFound) as exc:
        ports.params.history("/t/never")
    assert exc.value.code == "ParameterNotFound"
    assert one_line(exc.value)


# --- CloudWatch alarms -----------------------------------------------------------------------------------


def test_alarms_by_name_batch_by_a_hundred_and_by_prefix(ports, counter, seeder):
    named = [f"svc-a-{i:03d}" for i in range(130)]
    for n in named:
        seeder.put_alarm(n, "OK")
    for n in ("svc-b-1", "svc-b-2"):
        seeder.put_alarm(n, "ALARM", reason="injected")
    counter.reset()

    alarms = ports.alarms.describe(named + ["svc-a-missing"], prefix="svc-b-")

    by_name = {a.name: a for a in alarms}
    assert set(by_name) == set(named) | {"svc-b-1", "svc-b-2"}
    assert counter.calls["cloudwatch:DescribeAlarms"] == 3  # 131 names -> 2 batches, + 1 prefix query
    assert by_name["svc-b-1"].state == "ALARM" and by_name["svc-b-1"].reason == "injected"
    assert by_name["svc-a-000"].state == "OK"
    assert by_name["svc-a-000"].updated_at.tzinfo == timezone.utc


def test_alarm_state_change_moves_the_timestamp(ports, seeder):
    seeder.put_alarm("svc-c", "OK")
    before = ports.alarms.describe(["svc-c"])[0]
    seeder.set_alarm_state("svc-c", "ALARM", "incident")
    after = ports.alarms.describe(["svc-c"])[0]
    assert after.state == "ALARM" and after.updated_at >= before.updated_at
    assert abs(after.updated_at - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_no_alarm_names_and_no_prefix_makes_no_call(ports, counter):
    assert ports.alarms.describe([]) == []
    assert counter.total == 0


# --- Logs ------------------------------------------------------------------------------------------------


def test_log_events_page_through_next_token_within_the_window(ports, counter, seeder):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for i in range(25):
        seeder.put_log_event("/t/worker", f"ERROR n={i}", now - timedelta(minutes=30) + timedelta(seconds=i))
    seeder.put_log_event("/t/worker", "ERROR too old", now - timedelta(hours=3))
    seeder.put_log_event("/t/worker", "INFO fine", now - timedelta(minutes=1))
    ports.logs.page_size = 10
    counter.reset()

    events = list(ports.logs.events("/t/worker", now - timedelta(hours=1), now, "ERROR"))

    assert [e.message for e in events] == [f"ERROR n={i}" for i in range(25)]
    assert events[0].timestamp == now - timedelta(minutes=30)
    assert counter.calls["logs:FilterLogEvents"] == 3


def test_missing_log_group_is_not_found(ports):
    now = datetime.now(timezone.utc)
    with pytest.raises(NotFound) as exc:
        list(ports.logs.events("/t/nope", now - timedelta(hours=1), now))
    assert exc.value.operation == "logs:FilterLogEvents"
    assert "/t/nope" in str(exc.value)


# --- Secrets Manager, STS --------------------------------------------------------------------------------


def test_secret_value_and_metadata(ports, seeder, aws_env):
    seeder.put_secret("app/key", "s3cr3t-value")
    boto3.client("secretsmanager").create_secret(Name="app/bin", SecretBinary=b"binary-value")

    assert ports.secrets.get_value("app/key") == "s3cr3t-value"
    assert ports.secrets.get_value("app/bin") == "binary-value"
    meta = ports.secrets.describe("app/key")
    assert meta["Name"] == "app/key" and "ResponseMetadata" not in meta
    assert "s3cr3t-value" not in repr(meta)


def test_missing_secret_is_not_found(ports):
    with pytest.raises(NotFound) as exc:
        ports.secrets.get_value("app/absent")
    assert exc.value.code == "ResourceNotFoundException"
    assert exc.value.operation == "secretsmanager:GetSecretValue"
    assert one_line(exc.value)


def test_caller_identity(ports):
    me = ports.identity.caller()
    assert me.account == "123456789012" and me.arn.startswith("arn:aws:")


# --- the read-only guard ---------------------------------------------------------------------------------


def test_read_only_refuses_writes_before_they_reach_aws(aws_env, emulator, seeder):
    seeder.put_parameter("/t/flag", "false")
    ro = make_ports(REGION, None, read_only=True)
    emulator.start_recording()

    with pytest.raises(ReadOnlyViolation) as exc:
        ro.params.put("/t/flag", "true")
    assert str(exc.value) == "dry-run is read-only: refused ssm:PutParameter"
    assert exc.value.operation == "ssm:PutParameter"
    with pytest.raises(ReadOnlyViolation):
        ro.params.delete("/t/flag")
    assert ro.params.get_many(["/t/flag"])["/t/flag"].value == "false"
    assert ro.alarms.describe(["x"]) == []

    assert emulator.write_requests() == []
    assert [r["operation"] for r in emulator.recorded_requests()] == ["GetParameters", "DescribeAlarms"]


def test_read_only_covers_clients_made_later_for_any_service(aws_env, emulator):
    session = make_session(REGION, None, read_only=True)
    emulator.start_recording()
    refused = [
        lambda: session.client("ssm").put_parameter(Name="/t/x", Value="1", Type="String"),
        lambda: session.client("cloudwatch").set_alarm_state(AlarmName="a", StateValue="OK", StateReason="r"),
        lambda: session.client("logs").create_log_group(logGroupName="/t/g"),
        lambda: session.client("secretsmanager").create_secret(Name="s", SecretString="v"),
        lambda: session.client("events").put_rule(Name="r", EventPattern="{}"),
    ]
    for call in refused:
        with pytest.raises(ReadOnlyViolation):
            call()
    session.client("sts").get_caller_identity()
    assert emulator.write_requests() == []
    assert [r["operation"] for r in emulator.recorded_requests()] == ["GetCallerIdentity"]


def test_recorder_sees_writes_that_do_reach_the_emulator(ports, emulator):
    emulator.start_recording()
    ports.params.put("/t/flag", "true")
    writes = emulator.write_requests()
    assert [(w["service"], w["operation"]) for w in writes] == [("AmazonSSM", "PutParameter")]


# --- retries and error translation -----------------------------------------------------------------------


def test_throttling_is_retried_through_the_real_retry_path(aws_env, counter):
    faults = FaultInjector().throttle("ssm:PutParameter", times=1)
    ports = make_ports(REGION, None, read_only=False, counter=counter, hooks=[faults])
    assert ports.params.put("/t/flag", "true") == 1
    assert counter.calls["ssm:PutParameter"] == 1
    assert counter.attempts["ssm:PutParameter"] == 2


def test_throttling_that_outlasts_the_retries_is_one_line(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    faults = FaultInjector().throttle("ssm:PutParameter", times=1)
    ports = make_ports(REGION, None, read_only=False, hooks=[faults])
    with pytest.raises(AwsError) as exc:
        ports.params.put("/t/flag", "true")
    assert exc.value.code == "ThrottlingException"
    assert str(exc.value) == "AWS throttled ssm:PutParameter on /t/flag after 1 attempts"
    assert "write_rate" in exc.value.hint


def test_unreachable_endpoint(aws_env, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(AwsError) as exc:
        make_ports(REGION, None, read_only=False).params.get_many(["/t/a"])
    assert exc.value.code == "EndpointConnectionError"
    assert str(exc.value).startswith(f"could not connect to http://127.0.0.1:{port}")
    assert "AWS_ENDPOINT_URL" in exc.value.hint
    assert one_line(exc.value)


def test_no_credentials(aws_env, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(AwsError) as exc:
        make_ports(REGION, None, read_only=False).identity.caller()
    assert exc.value.code == "NoCredentialsError"
    assert "AWS_PROFILE" in exc.value.hint and "aws sso login" in exc.value.hint


def test_unknown_profile_is_a_usage_error(aws_env):
    with pytest.raises(UsageError) as exc:
        make_session(REGION, "no-such-profile", read_only=False)
    assert "no-such-profile" in str(exc.value)


def test_access_denied_names_the_action_and_the_resource():
    err = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "User: arn:aws:sts::1:role/x\nis not authorized"}},
        "PutParameter",
    )
    out = translate(err, "ssm:PutParameter", "/rp-mw/prod/safe_mode")
    assert str(out) == "AWS denied ssm:PutParameter on /rp-mw/prod/safe_mode"
    assert "cutover iam-policy" in out.hint
    assert (out.code, out.operation) == ("AccessDeniedException", "ssm:PutParameter")


def test_aws_messages_that_echo_values_are_scrubbed():
    err = ClientError(
        {"Error": {"Code": "ValidationException",
                   "Message": "1 validation error detected: Value 'hunter2-secret' at 'value' failed\nto satisfy"}},
        "PutParameter",
    )
    out = translate(err, "ssm:PutParameter", "/t/x")
    assert "hunter2-secret" not in str(out) and one_line(out)
    assert str(out).startswith("AWS rejected ssm:PutParameter on /t/x: ValidationException")


def test_a_rejected_write_is_one_line_with_the_aws_code(ports):
    with pytest.raises(AwsError) as exc:
        ports.params.put("/t/x", "")  # moto: "Value '' at 'value' failed to satisfy constraint..."
    assert exc.value.code == "ValidationException" and one_line(exc.value)
    assert str(exc.value).startswith("AWS rejected ssm:PutParameter on /t/x: ValidationException")


# --- the AWS environment, checked before any client exists ------------------------------------------------


@pytest.mark.parametrize("name,value,says", [
    ("AWS_MAX_ATTEMPTS", "abc", "whole number"),
    ("AWS_MAX_ATTEMPTS", "0", "from 1 to"),
    ("AWS_MAX_ATTEMPTS", "-1", "from 1 to"),
    ("AWS_MAX_ATTEMPTS", "1e9", "whole number"),
    ("AWS_MAX_ATTEMPTS", "999", "from 1 to"),
    ("AWS_RETRY_MODE", "bogus", "legacy, standard or adaptive"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000\n", "newline"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000\t", "space"),
    ("AWS_ENDPOINT_URL", "127.0.0.1:5000", "http:// or https://"),
    ("AWS_ENDPOINT_URL", "ftp://127.0.0.1:5000", "http:// or https://"),
    ("AWS_ENDPOINT_URL", "http://", "no host"),
    ("AWS_ENDPOINT_URL", "http://[::1", "not a URL"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:0x50", "port"),
    ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://bad host", "space"),
    ("AWS_DEFAULT_REGION", "mars-1", "not an AWS region name"),
])
def test_a_bad_aws_variable_is_a_usage_error_naming_it(aws_env, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    region = None if name == "AWS_DEFAULT_REGION" else REGION  # the environment's region counts only when none is given
    with pytest.raises(UsageError) as exc:
        make_session(region, None, read_only=True)
    assert str(exc.value).startswith(name) and says in str(exc.value), str(exc.value)
    assert exc.value.hint and one_line(exc.value)


@pytest.mark.parametrize("name,value", [
    ("AWS_MAX_ATTEMPTS", "1"), ("AWS_MAX_ATTEMPTS", " 3 "), ("AWS_MAX_ATTEMPTS", "20"), ("AWS_RETRY_MODE", "adaptive"),
    ("AWS_ENDPOINT_URL", "https://ssm.us-east-2.amazonaws.com"), ("AWS_ENDPOINT_URL", "http://[::1]:4566/"),
    ("AWS_ENDPOINT_URL_SSM", "http://localhost:4566"), ("AWS_DEFAULT_REGION", "eusc-de-east-1"),
])
def test_a_good_aws_variable_makes_clients_botocore_accepts(aws_env, monkeypatch, name, value):
    """Whatever cutover accepts, botocore must accept too when it reads the same variable."""
    monkeypatch.setenv(name, value)
    session = make_session(REGION, None, read_only=True)
    from cutover.adapters.aws import client_config

    for service in ("ssm", "lambda", "secretsmanager"):
        session.client(service, config=client_config(service))


def test_the_attempts_come_from_aws_max_attempts(aws_env, monkeypatch):
    from cutover.adapters.aws import client_config

    assert client_config("ssm").retries["total_max_attempts"] == 8
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert client_config("ssm").retries["total_max_attempts"] == 2


def test_bad_settings_in_the_aws_config_file_are_usage_errors(aws_env, monkeypatch, tmp_path):
    config = tmp_path / "aws-config"
    config.write_text("[default]\nendpoint_url = local host\nregion = mars-1\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(UsageError, match="the profile's region mars-1 is not an AWS region name"):
        make_session(None, None, read_only=True)
    with pytest.raises(UsageError, match="Invalid endpoint: local host") as exc:
        make_ports(REGION, None, read_only=True).params.get_many(["/t/a"])
    assert "AWS config file" in exc.value.hint
