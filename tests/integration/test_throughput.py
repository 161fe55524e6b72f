"""SSM's higher-throughput setting (GetServiceSetting): the adapter over real HTTP, against a fake SSM
server (the emulator has no GetServiceSetting), and what `status` says with it."""

import pytest

from cutover.adapters.aws import Clients, SsmServiceSettings, make_session
from cutover.commands import orchestrator
from cutover.errors import AwsError
from tests.integration.test_window import _CalendarServer as FakeSsm  # answers any JSON 1.1 SSM call as told

SETTING = "/ssm/parameter-store/high-throughput-enabled"


def settings_from(answer):
    server = FakeSsm(answer)
    return server, SsmServiceSettings(Clients(make_session("us-east-2", None, True), endpoint_url=server.url))


def answer(value: str) -> tuple[int, dict]:
    return 200, {"ServiceSetting": {"SettingId": SETTING, "SettingValue": value, "Status": "Customized"}}


@pytest.mark.parametrize("value,on", [("true", True), ("false", False)])
def test_the_adapter_reads_the_setting(aws_env, value, on):
    server, settings = settings_from(answer(value))
    try:
        assert settings.high_throughput() is on
    finally:
        server.close()
    assert server.requests == [("AmazonSSM.GetServiceSetting", {"SettingId": SETTING})]


def test_the_adapter_tries_once_and_says_what_it_could_not_read(aws_env):
    server, settings = settings_from((400, {"__type": "AccessDeniedException", "message": "not authorized"}))
    try:
        with pytest.raises(AwsError) as err:
            settings.high_throughput()
    finally:
        server.close()
    assert len(server.requests) == 1 and "GetServiceSetting" in str(err.value.message) + str(err.value.hint)


def status_with(e2e, answer_, **plan_changes):
    import dataclasses

    server, settings = settings_from(answer_)
    rt = e2e(dry_run=True, plan=dataclasses.replace(e2e.plan, **plan_changes))
    rt.aws = dataclasses.replace(rt.aws, settings=settings)
    try:
        return orchestrator.status(rt)
    finally:
        server.close()


def test_status_suggests_write_rate_10_when_the_setting_is_on(e2e):
    out = status_with(e2e, answer("true"), write_rate=3)
    hint = [line for line in out.lines if "higher throughput" in line]
    assert hint and "`write_rate: 10`" in hint[0] and "3 writes/s now" in hint[0], out.lines
    assert out.data["high_throughput"] is True


@pytest.mark.parametrize("answer_,rate,seen", [(answer("false"), 3, False), (answer("true"), 10, True),
                                               ((400, {"__type": "AccessDeniedException", "message": "no"}), 3, None)])
def test_status_says_nothing_when_off_already_fast_or_unreadable(e2e, answer_, rate, seen):
    out = status_with(e2e, answer_, write_rate=rate)
    assert not [line for line in out.lines if "higher throughput" in line], out.lines
    assert out.data["high_throughput"] is seen and out.exit_code == 0
