"""Odd inputs through the real binary (`python -m cutover` in a subprocess, on the emulator): each is a
clear exit 2 with one `error:` line naming what is wrong and a hint, never "internal error", and never
an AWS request (the emulator's recorder stays empty). The subprocess timeout only catches a hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
E2E = str(ROOT / "tests" / "plans" / "e2e.yaml")
HANG = 30  # seconds: generous, a loaded machine must not flake; it only catches a hang


def cutover(*args: str, env: dict[str, str] | None = None, umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=HANG,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def assert_usage_error(p: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one error line (ours, or click's for a bad option value) naming the problem, no internal error."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, p.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, p.stderr)


@pytest.fixture
def odd(e2e, emulator, tmp_path):
    """Paths an operator could pass by mistake, and the emulator recording every request that reaches it."""
    paths = {"file": tmp_path / "evidence.txt", "dir": tmp_path / "somedir", "fifo": tmp_path / "plan.fifo",
             "big": tmp_path / "big.yaml", "ev": tmp_path / "ev"}
    paths["file"].write_text("not a directory\n")
    paths["dir"].mkdir()
    os.mkfifo(paths["fifo"])
    paths["big"].write_text("# padding\n" * 200_000)  # 2 MB of comments: valid YAML, far too big for a plan
    emulator.start_recording()
    yield {k: str(v) for k, v in paths.items()}
    emulator.stop_recording()


ENDPOINT = "AWS_ENDPOINT_URL"
CASES = [
    # (id, argv after --plan (placeholders from the `odd` fixture), extra environment, fragments of the error line)
    ("evidence-dir-is-a-file", ["--evidence-dir", "{file}", "advance", "--yes"], {}, ["--evidence-dir {file}", "is a file"]),
    ("evidence-dir-under-a-file", ["--evidence-dir", "{file}/sub", "advance", "--yes"], {}, ["{file}/sub", "{file} is a file"]),
    ("evidence-dir-preflight", ["--evidence-dir", "{file}", "preflight"], {}, ["--evidence-dir {file}"]),
    ("evidence-dir-watch", ["--evidence-dir", "{file}", "watch", "--auto-rollback"], {}, ["--evidence-dir {file}"]),
    ("evidence-dir-guard-arm", ["--evidence-dir", "{file}", "guard", "arm", "--yes"], {}, ["--evidence-dir {file}"]),
    ("evidence-dir-rehearse", ["--evidence-dir", "{file}", "rehearse"], {}, ["--evidence-dir {file}"]),
    ("out-md-is-a-directory", ["preflight", "--out-md", "{dir}"], {}, ["--out-md {dir}", "is a directory"]),
    ("out-md-under-a-file", ["preflight", "--out-md", "{file}/report.md"], {}, ["--out-md {file}/report.md", "is a file"]),
    ("plan-is-a-fifo", ["--plan", "{fifo}", "validate"], {}, ["{fifo}:1:1", "not a regular file"]),
    ("plan-is-a-fifo-status", ["--plan", "{fifo}", "status"], {}, ["{fifo}:1:1", "not a regular file"]),
    ("plan-is-a-device", ["--plan", "/dev/zero", "validate"], {}, ["/dev/zero:1:1", "not a regular file"]),
    ("plan-is-huge", ["--plan", "{big}", "validate"], {}, ["{big}:1:1", "too large (2000000 bytes"]),
    ("region-mars", ["--region", "mars-1", "status"], {}, ["--region mars-1", "not an AWS region"]),
    ("region-spaces", ["--region", "us east 2", "status"], {}, ["not an AWS region"]),
    ("region-unknown", ["--region", "us-east-9", "rollback", "--yes"], {}, ["--region us-east-9", "not a known AWS region"]),
    ("max-attempts-abc", ["status"], {"AWS_MAX_ATTEMPTS": "abc"}, ["AWS_MAX_ATTEMPTS"]),
    ("max-attempts-0", ["status"], {"AWS_MAX_ATTEMPTS": "0"}, ["AWS_MAX_ATTEMPTS"]),
    ("max-attempts-negative", ["status"], {"AWS_MAX_ATTEMPTS": "-1"}, ["AWS_MAX_ATTEMPTS"]),
    ("max-attempts-1e9", ["rollback", "--yes"], {"AWS_MAX_ATTEMPTS": "1e9"}, ["AWS_MAX_ATTEMPTS"]),
    ("max-attempts-huge", ["status"], {"AWS_MAX_ATTEMPTS": "1000000000"}, ["AWS_MAX_ATTEMPTS"]),
    ("retry-mode-bogus", ["status"], {"AWS_RETRY_MODE": "bogus"}, ["AWS_RETRY_MODE"]),
    ("endpoint-newline", ["status"], {ENDPOINT: "{endpoint}\nx"}, [ENDPOINT, "newline"]),
    ("endpoint-no-scheme", ["status"], {ENDPOINT: "127.0.0.1:9"}, [ENDPOINT, "http"]),
    ("endpoint-spaces", ["rollback", "--yes"], {ENDPOINT: "http://127.0.0.1 :9"}, [ENDPOINT, "space"]),
    ("endpoint-ftp", ["status"], {ENDPOINT: "ftp://127.0.0.1:9"}, [ENDPOINT, "http"]),
    ("endpoint-bad-port", ["status"], {ENDPOINT: "http://127.0.0.1:99999"}, [ENDPOINT, "port"]),
    ("endpoint-for-one-service", ["status"], {"AWS_ENDPOINT_URL_SSM": "localhost"}, ["AWS_ENDPOINT_URL_SSM", "http"]),
    ("watch-interval-nan", ["watch", "--interval", "nan"], {}, ["--interval", "1 to 3600"]),
    ("watch-interval-inf", ["watch", "--interval", "inf"], {}, ["--interval", "1 to 3600"]),
    ("watch-interval-zero", ["watch", "--interval", "0"], {}, ["--interval", "1 to 3600"]),
    ("watch-interval-negative", ["watch", "--interval", "-5"], {}, ["--interval", "1 to 3600"]),
    ("watch-interval-below-1", ["watch", "--interval", "0.5"], {}, ["--interval", "1 to 3600"]),
    ("sandbox-port-too-big", ["sandbox", "--port", "99999"], {}, ["--port", "65535"]),
    ("sandbox-port-negative", ["sandbox", "--port", "-1"], {}, ["--port", "65535"]),
]


@pytest.mark.parametrize("argv,env,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_odd_input_is_a_clear_usage_error_before_any_aws_request(odd, emulator, argv, env, fragments):
    fill = {**odd, "endpoint": emulator.endpoint}
    argv = [a.format(**fill) for a in argv]
    if "--plan" not in argv:
        argv = ["--plan", E2E, *argv]
    if "--evidence-dir" not in argv:
        argv = ["--evidence-dir", odd["ev"], *argv]
    p = cutover(*argv, env={k: v.format(**fill) for k, v in env.items()})
    assert_usage_error(p, *[f.format(**fill) for f in fragments])
    assert "hint:" in p.stderr or "Try '" in p.stderr  # ours carry a hint; click's name --help
    assert emulator.recorded_requests() == []  # not one request reached AWS


def test_advance_with_an_unusable_evidence_dir_does_not_enter_shadow(odd, e2e):
    p = cutover("--plan", E2E, "--evidence-dir", odd["file"], "advance", "--yes", "--reason", "test")
    assert_usage_error(p, "is a file: pass a directory")
    assert e2e.state().phase == "pending" and e2e.live() == e2e.plan.values_for("pending")


def test_a_rollback_is_not_stopped_by_an_unusable_evidence_dir(odd, e2e):
    """Nothing may stop a rollback from restoring flags: its evidence goes to a private temporary folder,
    named before any AWS call, and the exit code is the rollback's own."""
    assert cutover("--plan", E2E, "--evidence-dir", odd["ev"], "advance", "--yes", "--reason", "test").returncode == 0
    assert e2e.state().phase == "shadow"
    p = cutover("--plan", E2E, "--evidence-dir", odd["file"] + "/sub", "rollback", "--yes", "--reason", "test")
    assert p.returncode == 0, p.stderr
    assert e2e.state().phase == "rolled_back" and e2e.live() == e2e.plan.rollback_values()
    warning = next(line for line in p.stderr.splitlines() if line.startswith("warning: --evidence-dir"))
    assert f"{odd['file']} is a file" in warning and "the rollback goes on" in warning
    fallback = Path(warning.rsplit(" go to ", 1)[1])
    assert fallback.stat().st_mode & 0o777 == 0o700
    assert [r.name for r in fallback.glob("*-rollback-*/report.json")] == ["report.json"]


def test_a_read_only_command_works_where_its_log_cannot_be_written(odd, e2e):
    """status writes no evidence, only the log: an unusable folder skips the log and nothing else."""
    p = cutover("--plan", E2E, "--evidence-dir", odd["file"], "status")
    assert p.returncode == 0, p.stderr
    assert "pending" in p.stdout and p.stderr == ""


def test_a_port_in_use_is_a_usage_error(odd):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = cutover("--plan", E2E, "sandbox", "--port", str(port))
    assert_usage_error(p, f"--port {port}", "in use")


def test_a_region_unknown_to_botocore_goes_through_when_allowed(odd, emulator):
    """The way through for a region newer than the installed botocore: CUTOVER_ALLOW_UNKNOWN_REGION=1.
    (moto refuses unknown regions itself, so `validate` shows it: no AWS call is needed.)"""
    plan = Path(odd["dir"]) / "new-region.yaml"
    plan.write_text(Path(E2E).read_text().replace("region: us-east-2", "region: us-east-9"))
    p = cutover("--plan", str(plan), "validate")
    assert_usage_error(p, f"{plan}:", "region: us-east-9 is not a known AWS region")
    assert "CUTOVER_ALLOW_UNKNOWN_REGION=1" in p.stderr
    p = cutover("--plan", str(plan), "validate", env={"CUTOVER_ALLOW_UNKNOWN_REGION": "1"})
    assert p.returncode == 0, p.stderr
    assert "region us-east-9" in p.stdout


# --- file permissions ----------------------------------------------------------------------------------


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


def test_evidence_and_log_are_private_under_umask_022(odd, e2e):
    ev = Path(odd["ev"])
    p = cutover("--plan", E2E, "--evidence-dir", str(ev), "advance", "--yes", "--reason", "test", umask=0o022)
    assert p.returncode == 0, p.stderr
    p = cutover("--plan", E2E, "--evidence-dir", str(ev), "rollback", "--yes", "--reason", "test", umask=0o022)
    assert p.returncode == 0, p.stderr
    found = modes(ev)
    assert (ev / "cutover.log.jsonl").is_file() and len([f for f in found if f.endswith("report.json")]) == 2
    wrong = {path: oct(mode) for path, mode in found.items()
             if mode != (0o700 if (ev.parent / path).is_dir() else 0o600)}
    assert not wrong, wrong


def test_evidence_left_world_readable_by_an_older_version_is_tightened(odd, e2e):
    ev = Path(odd["ev"])
    old = ev / "20250101T000000Z-advance-0123abcd"
    old.mkdir(parents=True)
    (old / "report.json").write_text("{}\n")
    (ev / "cutover.log.jsonl").write_text("{}\n")
    for path, mode in ((ev, 0o755), (old, 0o755), (ev / "cutover.log.jsonl", 0o644)):
        path.chmod(mode)
    p = cutover("--plan", E2E, "--evidence-dir", str(ev), "preflight", umask=0o022)
    assert p.returncode == 0, p.stderr
    assert ev.stat().st_mode & 0o777 == 0o700  # everything in it is cutover's: the whole folder is closed
    assert (ev / "cutover.log.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_shared_folder_given_as_evidence_dir_keeps_its_mode(odd, e2e):
    """--evidence-dir . or /tmp must never chmod the user's folder: only what cutover creates is private."""
    shared = Path(odd["dir"])
    (shared / "notes.txt").write_text("someone else's file\n")
    shared.chmod(0o755)
    p = cutover("--plan", E2E, "--evidence-dir", str(shared), "preflight", umask=0o022)
    assert p.returncode == 0, p.stderr
    assert shared.stat().st_mode & 0o777 == 0o755
    assert (shared / "notes.txt").stat().st_mode & 0o777 == 0o644
    assert (shared / "cutover.log.jsonl").stat().st_mode & 0o777 == 0o600
    (run,) = [d for d in shared.iterdir() if d.is_dir()]
    assert run.stat().st_mode & 0o777 == 0o700 and (run / "report.md").stat().st_mode & 0o777 == 0o600


# --- region names (no AWS call: the plan and the flags are checked before any) ------------------------------


@pytest.mark.parametrize("region", ["us-east-2", "us-gov-west-1", "cn-north-1", "ap-southeast-5", "eusc-de-east-1",
                                    "us-isob-east-1", "il-central-1", "mx-central-1"])
def test_real_regions_are_accepted(region, monkeypatch):
    from cutover import regions
    from cutover.plan.load import parse_plan

    monkeypatch.delenv(regions.ALLOW_UNKNOWN, raising=False)
    assert regions.problem(region) is None
    assert parse_plan(Path(E2E).read_text().replace("region: us-east-2", f"region: {region}")).region == region


@pytest.mark.parametrize("region,says", [
    ("mars-1", "not an AWS region name"), ("US-EAST-2", "not an AWS region name"), ("us-east-2 ", "not an AWS region name"),
    ("us-east-9", "not a known AWS region"), ("xx-east-1", "not a known AWS region"),
])
def test_a_bad_region_in_the_plan_points_at_its_line(region, says, monkeypatch):
    from cutover import regions
    from cutover.errors import PlanError
    from cutover.plan.load import parse_plan

    monkeypatch.delenv(regions.ALLOW_UNKNOWN, raising=False)
    text = Path(E2E).read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("region:"))
    with pytest.raises(PlanError) as info:
        parse_plan(text.replace("region: us-east-2", f"region: '{region}'"), "e2e.yaml")
    assert (info.value.line, info.value.col) == (line, 9), str(info.value)
    assert says in info.value.detail and info.value.hint


def test_a_new_region_has_a_way_through_and_close_names_are_suggested(monkeypatch):
    from cutover import regions

    monkeypatch.delenv(regions.ALLOW_UNKNOWN, raising=False)
    message, hint = regions.problem("us-east-3")
    assert "us-east-1" in message and "us-east-2" in message  # the closest known names
    assert regions.ALLOW_UNKNOWN + "=1" in hint and "boto" in hint
    monkeypatch.setenv(regions.ALLOW_UNKNOWN, "1")
    assert regions.problem("us-east-3") is None
    assert regions.problem("mars-1") is not None  # a name of the wrong shape is never let through
