"""Shared fixtures. Integration tests talk to a real moto server over HTTP (boto3 with AWS_ENDPOINT_URL);
nothing here patches boto3."""

from __future__ import annotations

import pytest

REGION = "us-east-2"


@pytest.fixture(scope="session")
def emulator():
    """One moto server on 127.0.0.1 for the whole test session (moto's state is process-global)."""
    from cutover.sandbox import Emulator

    with Emulator(region=REGION) as emu:
        yield emu


@pytest.fixture
def aws_env(emulator, monkeypatch, tmp_path) -> dict[str, str]:
    """A clean emulator and an environment pointing boto3 at it (and nowhere else)."""
    emulator.reset()
    for name in emulator.UNSET + ("AWS_MAX_ATTEMPTS",):
        monkeypatch.delenv(name, raising=False)
    # Hermetic: the developer's ~/.aws must not add a profile, region or endpoint.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    env = emulator.env(REGION)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def aws_ports(aws_env):
    """Read-write AwsPorts on the clean emulator."""
    from cutover.aws import make_ports

    return make_ports(REGION, None, read_only=False)


@pytest.fixture
def http_stub():
    from cutover.sandbox import HttpStub

    with HttpStub() as stub:
        yield stub
