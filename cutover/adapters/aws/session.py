"""Sessions and clients: the AWS variables checked first, standard retries, timeouts, an assumed role."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Protocol
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bex
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials, RefreshableCredentials
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from cutover import regions
from cutover.errors import UsageError
from cutover.adapters.aws.errors import CONNECT_TIMEOUT, READ_TIMEOUT, one_line, aws_errors
from cutover.adapters.aws.readonly import refuse_writes


class SessionHook(Protocol):
    def attach(self, session: boto3.Session) -> None: ...


def make_session(
    region: str | None, profile: str | None, read_only: bool, *, hooks: Iterable[SessionHook] = (),
    credentials: Mapping[str, str] | Credentials | None = None,
) -> boto3.Session:
    """A session whose every client (made now or later) carries the read-only guard and the hooks.
    The AWS variables botocore reads (endpoints, retries, region) are checked first: a bad one is a
    usage error naming it, before any client exists, never a crash or minutes of retries later.
    `credentials` (from `assume_role`: refreshed before they expire) replace the profile's."""
    check_environment(os.environ)
    try:
        if isinstance(credentials, Credentials):
            session = boto3.Session(region_name=region or None, botocore_session=_session_with(credentials))
        else:
            session = boto3.Session(region_name=region or None, profile_name=None if credentials else (profile or None),
                                    **(credentials or {}))
    except bex.ProfileNotFound:
        raise UsageError(
            f"AWS profile {profile or os.environ.get('AWS_PROFILE', '')!r} not found",
            "list profiles with `aws configure list-profiles`; pass --profile or set AWS_PROFILE",
        ) from None
    if session.region_name and not region:  # from AWS_DEFAULT_REGION or the profile (--region and the plan are checked already)
        _check_region(session.region_name, "AWS_DEFAULT_REGION=" if os.environ.get("AWS_DEFAULT_REGION") else "the profile's region ")
    # Clients copy the session's event handlers when they are created, so registering here, before any
    # client exists, puts the guard in every client this session will ever make.
    if read_only:
        session.events.register("before-parameter-build", refuse_writes, unique_id="cutover-read-only")
    for hook in hooks:
        hook.attach(session)
    return session


ROLE_SECONDS = 3600  # an assumed role's session; refreshed on the clock before it ends (a bake outlives it)


def assume_role(role_arn: str, external_id: str | None, region: str, profile: str | None, session_name: str,
                clock=None, seconds: int = ROLE_SECONDS) -> RefreshableCredentials:
    """Credentials of `role_arn` (sent with `external_id` when given), for make_session: assumed from the
    caller's own credentials now (a role that cannot be assumed fails here, before any client uses it),
    and assumed again whenever they come within 15 minutes of their end on `clock` (botocore refreshes
    them before any call that would need them). Assuming writes nothing, so a dry run may do it too."""
    sts = Clients(make_session(region, profile, read_only=False))("sts")
    extra = {"ExternalId": external_id} if external_id else {}
    now = clock.now if clock is not None else (lambda: datetime.now(timezone.utc))

    def assume() -> dict:
        with aws_errors("sts:AssumeRole", role_arn):
            got = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds, **extra)["Credentials"]
        # Its end measured on our clock from now: the same moment (a little early) on the system clock.
        return {"access_key": got["AccessKeyId"], "secret_key": got["SecretAccessKey"], "token": got["SessionToken"],
                "expiry_time": (now() + timedelta(seconds=seconds)).isoformat()}

    first = assume()
    return RefreshableCredentials(first["access_key"], first["secret_key"], first["token"],
                                  datetime.fromisoformat(first["expiry_time"]), refresh_using=assume,
                                  method="assume-role", time_fetcher=now)


class _Given(CredentialProvider):
    """The credentials a session was given (an assumed role's), in place of the profile's chain."""

    METHOD = "assume-role"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _session_with(credentials: Credentials) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("credential_provider", CredentialResolver([_Given(credentials)]))
    return session


# SSM's write quota is ~3/s account-wide; 8 standard-mode attempts ride out a throttled burst.
MAX_ATTEMPTS = {"ssm": 8}
DEFAULT_MAX_ATTEMPTS = 5
ATTEMPTS_LIMIT = 20  # with standard back-off (up to 20 s each) more would hold a rollback for many minutes
RETRY_MODES = ("legacy", "standard", "adaptive")


def client_config(service: str, attempts: int | None = None) -> Config:
    # Attempts in total, first one included. AWS_MAX_ATTEMPTS (the standard variable, same meaning)
    # still wins, e.g. to fail fast in tests. (Config's `max_attempts` would count retries only.)
    attempts = attempts or _max_attempts(os.environ) or MAX_ATTEMPTS.get(service, DEFAULT_MAX_ATTEMPTS)
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra="cutover",
    )


def check_environment(environ: Mapping[str, str]) -> None:
    """UsageError naming the first AWS variable that botocore (or cutover) could not use."""
    _max_attempts(environ)
    mode = environ.get("AWS_RETRY_MODE", "")
    if mode and mode not in RETRY_MODES:
        raise UsageError(f"AWS_RETRY_MODE={mode!r} is not a retry mode (legacy, standard or adaptive)",
                         "unset AWS_RETRY_MODE: cutover always uses standard retries")
    for name in sorted(n for n in environ if n == "AWS_ENDPOINT_URL" or n.startswith("AWS_ENDPOINT_URL_")):
        problem = _endpoint_problem(environ[name])
        if problem:
            raise UsageError(f"{name}={environ[name]!r} {problem}",
                             f"set {name} to the emulator's or endpoint's URL, e.g. http://127.0.0.1:5000, or unset it to reach AWS")


def _max_attempts(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not raw:
        return None  # unset or empty: botocore ignores it too
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= ATTEMPTS_LIMIT):
        raise UsageError(f"AWS_MAX_ATTEMPTS={raw!r} is not a whole number from 1 to {ATTEMPTS_LIMIT}",
                         f"unset it (cutover makes {DEFAULT_MAX_ATTEMPTS} attempts per call, {MAX_ATTEMPTS['ssm']} for SSM) "
                         "or set e.g. AWS_MAX_ATTEMPTS=3")
    return int(raw)


def _endpoint_problem(url: str) -> str:
    """Why botocore (or an HTTP connection) could not use `url` as an endpoint; "" when it can."""
    if not url:
        return ""  # empty: botocore ignores it
    if "\n" in url or "\r" in url:
        return "contains a newline"
    if any(c.isspace() for c in url):
        return "contains a space"
    if not url.isprintable():
        return "contains a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError as e:  # "Invalid IPv6 URL", "Port out of range 0-65535"...
        return "has a bad port (a number from 1 to 65535)" if "port" in str(e).lower() else f"is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if not is_valid_endpoint_url(url) and not is_valid_ipv6_endpoint_url(url):
        return "is not a URL botocore accepts"
    return ""


def _check_region(region: str, source: str) -> None:
    problem = regions.problem(region)
    if problem:
        raise UsageError(f"{source}{problem[0]}", problem[1])


class Clients:
    """Clients made on first use (rollback needs only SSM), once, under a lock (gates run in threads)."""

    def __init__(self, session: boto3.Session, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, attempts: int | None = None):
        """`attempts`: a client of its own whose calls are tried that many times (a best-effort read)."""
        key = (service, attempts)
        with self._lock:
            if key not in self._made:
                with aws_errors(f"{service}:client"):
                    try:
                        self._made[key] = self._session.client(
                            service, config=client_config(service, attempts), endpoint_url=self._endpoint_url
                        )
                    except ValueError as e:  # botocore's "Invalid endpoint: ..." from endpoint_url in ~/.aws/config
                        raise UsageError(f"botocore refused the settings for a {service} client: {one_line(str(e), 120)}",
                                         "check endpoint_url, max_attempts and retry_mode in your AWS config file") from None
            return self._made[key]
