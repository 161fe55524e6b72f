"""SSM: Parameter Store (flags, state record, lock), Change Calendar states, service settings."""

from __future__ import annotations

from datetime import datetime, timezone

from cutover.errors import NotFound
from cutover.ports import HIGH_THROUGHPUT_SETTING, CalendarReading, Param, ParamVersion
from cutover.adapters.aws.errors import ClientFactory, chunks, few_names, unique, as_utc, aws_errors


class SsmParameterStore:
    """ParameterStore on SSM Parameter Store."""

    BATCH = 10  # GetParameters takes at most 10 names
    PARALLEL = 8  # calls at once: under botocore's 10 pooled connections per client

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm")

    def get_many(self, names: list[str]) -> dict[str, Param]:
        """Up to 10 names per GetParameters call; the calls of a long list run side by side (a rollback
        reads every flag before its second write: 48 flags are 5 calls, one round trip, not five)."""
        batches = list(chunks(unique(names), self.BATCH))
        if len(batches) <= 1:
            pages = [self._get(batch) for batch in batches]
        else:
            from concurrent.futures import ThreadPoolExecutor  # (only here: most commands read one batch)

            with ThreadPoolExecutor(max_workers=min(self.PARALLEL, len(batches))) as pool:
                pages = list(pool.map(self._get, batches))  # the first failing batch's error is raised
        return {p.name: p for page in pages for p in page}

    def _get(self, batch: list[str]) -> list[Param]:
        with aws_errors("ssm:GetParameters", few_names(batch)):
            resp = self._client().get_parameters(Names=batch, WithDecryption=True)
        return [  # InvalidParameters (missing names) are simply absent
            Param(p["Name"], p["Value"], int(p["Version"]), p.get("Type", "String"), as_utc(p.get("LastModifiedDate")))
            for p in resp.get("Parameters", [])
        ]

    def put(self, name: str, value: str, *, secure: bool = False, overwrite: bool = True) -> int:
        with aws_errors("ssm:PutParameter", name):
            resp = self._client().put_parameter(
                Name=name, Value=value, Type="SecureString" if secure else "String", Overwrite=overwrite
            )
        return int(resp["Version"])

    def delete(self, name: str) -> None:
        try:
            with aws_errors("ssm:DeleteParameter", name):
                self._client().delete_parameter(Name=name)
        except NotFound:
            pass

    def history(self, name: str) -> list[ParamVersion]:
        versions: list[ParamVersion] = []
        with aws_errors("ssm:GetParameterHistory", name):
            pages = self._client().get_paginator("get_parameter_history")
            for page in pages.paginate(Name=name, WithDecryption=True, PaginationConfig={"PageSize": 50}):
                for p in page.get("Parameters", []):
                    user = p.get("LastModifiedUser")
                    versions.append(
                        ParamVersion(
                            p["Name"],
                            p.get("Value", ""),
                            int(p["Version"]),
                            as_utc(p.get("LastModifiedDate")),
                            None if user in (None, "", "N/A") else user,  # moto says "N/A"
                        )
                    )
        return sorted(versions, key=lambda v: v.version)


class SsmChangeCalendars:
    """ChangeCalendars on ssm:GetCalendarState, one calendar per call so an error names its calendar.
    (The emulator has no Change Calendar: the sandbox and rehearsals use `sandbox.OpenCalendars`.)"""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm")

    def state(self, calendar: str, at: datetime) -> CalendarReading:
        with aws_errors("ssm:GetCalendarState", f"change calendar {calendar}"):
            resp = self._client().get_calendar_state(
                CalendarNames=[calendar], AtTime=at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return CalendarReading(str(resp.get("State", "")), _iso_instant(resp.get("NextTransitionTime")))


class SsmServiceSettings:
    """ServiceSettings on ssm:GetServiceSetting. Tried once: it only feeds a hint, and a status must not
    wait out retries for it. (The emulator has no GetServiceSetting: tests answer it with a fake server.)"""

    HIGH_THROUGHPUT = HIGH_THROUGHPUT_SETTING

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm", attempts=1)

    def high_throughput(self) -> bool:
        with aws_errors("ssm:GetServiceSetting", self.HIGH_THROUGHPUT):
            resp = self._client().get_service_setting(SettingId=self.HIGH_THROUGHPUT)
        return str(resp.get("ServiceSetting", {}).get("SettingValue", "")).lower() == "true"


def _iso_instant(text: str | None) -> datetime | None:
    """GetCalendarState's ISO 8601 times ("2026-12-24T18:00:00Z") -> aware UTC; None if absent or unreadable."""
    if not text:
        return None
    try:
        return as_utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None
