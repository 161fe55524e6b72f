#!/usr/bin/env python3
"""Benchmarks: rollback at the SSM write quota against the honest minimum and the hand-written
alternatives, start-up, gate concurrency, API economy, scale, a mixed SSM + Lambda plan.

    python scripts/bench.py                 # about 30 minutes; writes docs/benchmarks.json and docs/BENCHMARKS.md
    python scripts/bench.py --quick         # rollback at 12 and 48 flags, scale at 10 and 100: about 4 minutes
    python scripts/bench.py --sizes 12,48 --scale-sizes 10,100,500
    python scripts/bench.py --render        # docs/BENCHMARKS.md again from docs/benchmarks.json, nothing run
    python scripts/bench.py --only api,gates  # some sections, printed; docs/ left as they are

Everything runs on this machine: moto's server on 127.0.0.1 as AWS, cutover's fault proxy in front of
it as the account-wide PutParameter quota (3 calls in any one-second window, ThrottlingException
beyond), a local HTTP server for the upstream checks. Every rollback method is its own process, timed
from spawn to exit; the proxy's timeline (CLOCK_MONOTONIC, one clock for all processes) says when
each write was accepted. These are benchmark figures, not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cutover.testing.faultproxy import Faults, FaultProxy  # noqa: E402
from cutover.sandbox.emulator import Emulator  # noqa: E402

REGION = "us-east-2"
QUOTA = 3  # PutParameter per second, the proxy's window and every plan's write_rate
BURST = 3  # what a bucket that allows bursts would let through at once
WORK = Path(tempfile.gettempdir())  # a fresh folder of its own for each run: see main()
CUTOVER = [sys.executable, "-m", "cutover"]
LOOPS = str(ROOT / "scripts" / "bench_loops.py")
JSON_OUT = ROOT / "docs" / "benchmarks.json"
MD_OUT = ROOT / "docs" / "BENCHMARKS.md"

SIZES = (12, 48, 200, 500)
QUICK_SIZES = (12, 48)
SCALE_SIZES = (10, 100, 500, 2000)
QUICK_SCALE_SIZES = (10, 100)
# The alternatives that lose writes, and the AWS CLI (one process per write), only up to these sizes:
# at 3 writes/s each run at 500 flags takes about 3 minutes, and the whole run should stay near 30.
MAX_FLAGS = {"exact_loop": 200, "boto3_default": 200, "boto3_adaptive": 200, "aws_cli": 48}
METHODS = ("cutover", "exact_loop", "paced_loop", "burst_loop", "boto3_default", "boto3_adaptive", "aws_cli")
METHOD_TITLES = {
    "cutover": "cutover rollback",
    "exact_loop": "boto3 loop paced at exactly 1/rate + read-back",
    "paced_loop": "boto3 loop paced at 1/rate + 10 ms + read-back",
    "burst_loop": "burst-aware boto3 loop + read-back",
    "boto3_default": "boto3 loop, default retries",
    "boto3_adaptive": "boto3 loop, adaptive retries",
    "aws_cli": "AWS CLI loop",
}


# --- plans --------------------------------------------------------------------------------------------
def plan_text(name: str, flags: int, alarms: int, phases: int, write_rate: float = QUOTA, http_urls: list[str] = (),
              log_group: str | None = None) -> str:
    lines = ["version: 1", f"name: {name}", f"region: {REGION}", f"write_rate: {write_rate}", "flags:"]
    for i in range(flags):
        lines += [f"  f{i:04d}:", f"    parameter: /bench/{name}/f{i:04d}", '    rollback: "off"']
    lines.append("checks:")
    gates = []
    if not (alarms or http_urls or log_group):
        lines[-1] = "checks: {}"
    if alarms:
        lines += ["  quiet:", "    type: alarms", "    names:"] + [f"      - {name}-alarm-{i:04d}" for i in range(alarms)]
        lines.append("    quiet_for: 0s")
        gates.append("quiet")
    for i, url in enumerate(http_urls):
        lines += [f"  http{i}:", "    type: http", f'    url: "{url}"', "    timeout: 5s"]
        gates.append(f"http{i}")
    if log_group:
        lines += ["  fresh:", "    type: log_freshness", f"    log_group: {log_group}", '    contains: "refresh ok"', "    max_age: 8h"]
        gates.append("fresh")
    lines.append("phases:")
    phases = min(phases, flags)
    per_phase = max(1, math.ceil(flags / phases))
    for p in range(phases):
        chunk = range(p * per_phase, min(flags, (p + 1) * per_phase))
        sets = ", ".join(f'f{i:04d}: "on"' for i in chunk)
        lines += [f"  - name: p{p}", f"    set: {{{sets}}}", f"    gates: [{', '.join(gates)}]"]
    path = WORK / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def flag_names(name: str, flags: int) -> list[str]:
    return [f"/bench/{name}/f{i:04d}" for i in range(flags)]


def seed(emu: Emulator, plan_path: str, flag_value: str | None) -> None:
    """The plan's resources, its flags at their rollback values, then (unless None) every flag at `flag_value`."""
    from cutover.plan.load import load_plan
    from cutover.sandbox.emulator import seed as seed_plan

    plan = load_plan(plan_path)
    seed_plan(plan, emu)
    if flag_value is not None:
        seeder = emu.seeder(REGION)
        for f in plan.flags:
            seeder.put_parameter(f.parameter, flag_value)


def env_for(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        env.pop(k, None)
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    return env


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start, proc


def median_of(cmd: list[str], n: int, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    runs = [run(cmd, env) for _ in range(n)]
    return statistics.median(w for w, _ in runs), runs[-1][1]


def live_values(endpoint: str, names: list[str]) -> dict[str, str]:
    from cutover.adapters.aws import make_ports

    os.environ.update(env_for(endpoint))
    return {n: p.value for n, p in make_ports(REGION, None, True).params.get_many(names).items()}


# --- 1. rollback at the write quota ---------------------------------------------------------------------
def bench_rollback(emu: Emulator, sizes: tuple[int, ...], capped: bool = True) -> dict:
    """Per size: every method that applies, each preceded by a minimal boto3 process (its start-up is
    measured between the runs, under the same load), all through a fresh quota proxy."""
    sizes_out, runs = [], []
    for n in sizes:
        plan_path = plan_text(f"rb{n}", n, 0, 2)
        names = flag_names(f"rb{n}", n)
        names_file = WORK / f"rb{n}.names"
        names_file.write_text("\n".join(names) + "\n")
        probes = []
        for method in METHODS:
            if method == "aws_cli" and not shutil.which("aws"):
                continue
            if capped and n > MAX_FLAGS.get(method, n):
                continue
            probes.append(_boto3_probe(emu))
            runs.append(_run_method(emu, method, n, plan_path, names, str(names_file)))
            print(f"  rollback {n:>4} flags  {method:<15} {runs[-1]['wall_s']:>7} s  lost {runs[-1]['lost']}", file=sys.stderr)
        boto3_wall = statistics.median(p["wall_s"] for p in probes)
        first = _first_write_pairs(emu, plan_path, names)
        sizes_out.append({
            "flags": n, "even_s": round((n - 1) / QUOTA, 3), "burst_s": float((n - 1) // BURST),
            "boto3_process_s": round(boto3_wall, 3),
            "boto3_first_write_s": round(statistics.median(p["first_write_s"] for p in probes), 3),
            "honest_minimum_s": round(boto3_wall + (n - 1) / QUOTA, 3),
            "burst_minimum_s": round(boto3_wall + (n - 1) // BURST, 3),
            "load_average": round(os.getloadavg()[0], 2),
            "first_write": first,
        })
        for r in runs:
            if r["flags"] == n:
                r["ratio_to_honest_minimum"] = round(r["wall_s"] / sizes_out[-1]["honest_minimum_s"], 3)
    return {"quota": QUOTA, "retry_mode_default": _default_retry_mode(), "aws_cli": _aws_cli_version(),
            "capped_at": MAX_FLAGS if capped else {}, "sizes": sizes_out, "runs": runs}


def _method_command(method: str, plan_path: str, names_file: str, evidence: Path) -> list[str]:
    if method == "cutover":
        return [*CUTOVER, "--plan", plan_path, "--evidence-dir", str(evidence), "rollback", "--yes", "--reason", "bench"]
    if method == "aws_cli":  # what an operator types in a shell: one `aws` process per parameter
        loop = 'for n in $(cat "$1"); do aws ssm put-parameter --name "$n" --value off --type String --overwrite >/dev/null; done'
        return ["bash", "-c", loop, "aws-loop", names_file]
    mode = {"exact_loop": "exact", "paced_loop": "paced", "burst_loop": "burst", "boto3_default": "default", "boto3_adaptive": "adaptive"}[method]
    return [sys.executable, LOOPS, mode, names_file, "off", str(QUOTA)]


def _through_quota(emu: Emulator, cmd: list[str]) -> dict:
    """One process through a fresh quota proxy: its wall time and the proxy's timeline, from spawn."""
    with FaultProxy(emu.endpoint, Faults(write_quota=QUOTA)) as proxy:
        spawn, spawn_wall = time.monotonic(), time.time()
        proc = subprocess.run(cmd, env=env_for(proxy.endpoint), capture_output=True, text=True, cwd=ROOT)
        wall = time.monotonic() - spawn
        puts = [(t - spawn, name) for t, op, name in proxy.write_log if op == "PutParameter"]
        throttled = proxy.injected["quota"]
    return {"proc": proc, "wall": wall, "puts": puts, "throttled": throttled, "spawn": spawn, "spawn_wall": spawn_wall}


def _boto3_probe(emu: Emulator) -> dict:
    """The start-up every method must pay at least: spawn, import boto3, make a client, one write, exit."""
    code = ("import boto3; boto3.client('ssm').put_parameter(Name='/bench/probe', Value='off', Type='String', "
            "Overwrite=True)")
    t = _through_quota(emu, [sys.executable, "-c", code])
    return {"wall_s": t["wall"], "first_write_s": t["puts"][0][0] if t["puts"] else float("nan")}


FIRST_WRITE_PAIRS = 7


def _first_write_pairs(emu: Emulator, plan_path: str, names: list[str]) -> dict:
    """A rollback's first write, as medians of interleaved pairs: a minimal boto3 process, then `cutover
    rollback --yes` with every flag out of place, stopped (SIGKILL, by the proxy) once its first write is
    applied: only the spawn-to-first-write part is timed, so the pairs cost seconds, not a rollback each."""
    mine, theirs = [], []
    for _ in range(FIRST_WRITE_PAIRS):
        theirs.append(_boto3_probe(emu)["first_write_s"])
        emu.reset()
        seeder = emu.seeder(REGION)
        for name in names:
            seeder.put_parameter(name, "on")
        cmd = _method_command("cutover", plan_path, "", WORK / "ev-first-write")
        with FaultProxy(emu.endpoint, Faults(write_quota=QUOTA, kill_after_writes=1)) as proxy:
            spawn = time.monotonic()
            proc = subprocess.Popen(cmd, env=env_for(proxy.endpoint), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
            proxy.faults.kill_pid = proc.pid  # (its first write comes a few hundred ms after spawn)
            proc.wait(timeout=120)
            puts = [(t - spawn, name) for t, op, name in proxy.write_log if op == "PutParameter"]
        if puts and puts[0][1] == names[0]:  # the kill switch, first
            mine.append(puts[0][0])
    return {"pairs": FIRST_WRITE_PAIRS, "cutover_s": _round(statistics.median(mine)) if mine else None,
            "boto3_s": round(statistics.median(theirs), 3), "kill_switch_first": len(mine)}


def _run_method(emu: Emulator, method: str, n: int, plan_path: str, names: list[str], names_file: str) -> dict:
    emu.reset()
    seeder = emu.seeder(REGION)
    for name in names:  # every flag out of place
        seeder.put_parameter(name, "on")
    evidence = WORK / f"ev-{method}-{n}"
    t = _through_quota(emu, _method_command(method, plan_path, names_file, evidence))
    live = live_values(emu.endpoint, names)
    first_write = next((s for s, name in t["puts"] if name == names[0]), None)
    if method == "cutover":
        confirmed = _confirm_times(evidence / "cutover.log.jsonl", t["spawn_wall"]).get("f0000")
    else:
        confirmed = next((float(line.split()[2]) - t["spawn"] for line in t["proc"].stdout.splitlines()
                          if line.startswith("confirmed ") and line.split()[1] == names[0]), None)
    return {"method": method, "flags": n, "exit": t["proc"].returncode, "wall_s": round(t["wall"], 3),
            "writes": len(t["puts"]), "flag_writes": sum(1 for _, name in t["puts"] if name in set(names)),
            "throttled": t["throttled"], "lost": sum(1 for name in names if live.get(name) != "off"),
            "kill_switch_written_s": _round(first_write), "kill_switch_confirmed_s": _round(confirmed)}


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _confirm_times(log: Path, t0: float) -> dict[str, float]:
    out = {}
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("event") == "flag_confirmed" and ev.get("flag") not in out:
            ts = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
            out[ev["flag"]] = ts - t0
    return out


def _default_retry_mode() -> str:
    import botocore.session

    return f"{botocore.session.get_session().get_config_variable('retry_mode')} (botocore {botocore.__version__})"


def _aws_cli_version() -> str | None:
    if not shutil.which("aws"):
        return None
    proc = subprocess.run(["aws", "--version"], capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip().split(" ")[0] or None


# --- 2. gate concurrency --------------------------------------------------------------------------------
class Slow(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.3)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def bench_gates(emu: Emulator) -> dict:
    from cutover.commands import orchestrator
    from cutover.adapters.aws import make_ports
    from cutover.gates import run_gates
    from cutover.plan.load import load_plan

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{server.server_address[1]}/check/{i}" for i in range(8)]
    emu.reset()
    plan_path = plan_text("gates", 4, 5, 1, http_urls=urls, log_group="/bench/refresh")
    seed(emu, plan_path, "off")
    os.environ.update(env_for(emu.endpoint))
    plan = load_plan(plan_path)
    rt = orchestrator.Runtime(plan=plan, aws=make_ports(REGION, None, True), env=dict(os.environ), evidence_dir=None)
    run_gates(plan, "p0", rt.gate_context())  # warm: clients made, connections open
    walls, slowest = [], []
    for _ in range(3):
        start = time.perf_counter()
        results = run_gates(plan, "p0", rt.gate_context())
        walls.append(time.perf_counter() - start)
        slowest.append(max(r.duration for r in results))
    server.shutdown()
    wall, slow = statistics.median(walls), statistics.median(slowest)
    return {"checks": len(results), "all_passed": all(r.passed for r in results), "wall_s": round(wall, 3),
            "slowest_check_s": round(slow, 3), "sum_of_checks_s": round(sum(r.duration for r in results), 3),
            "ratio": round(wall / slow, 2)}


# --- 3. API economy -------------------------------------------------------------------------------------
def bench_api(emu: Emulator) -> dict:
    emu.reset()
    plan_path = plan_text("economy", 50, 40, 2)
    seed(emu, plan_path, "off")
    with FaultProxy(emu.endpoint) as proxy:
        wall, proc = run([*CUTOVER, "--plan", plan_path, "--evidence-dir", str(WORK / "ev-api"), "status"], env_for(proxy.endpoint))
        calls = dict(proxy.calls)
    minimum = math.ceil(50 / 10) + 1 + 1  # GetParameters for the flags, one DescribeAlarms, state+lock in one read
    return {"exit": proc.returncode, "calls": calls, "total": sum(calls.values()), "minimum": minimum,
            "over_minimum": sum(calls.values()) - minimum}




# --- 4. start-up ----------------------------------------------------------------------------------------
HEAVY = ("boto3", "botocore", "moto", "pydantic", "structlog", "rich")


def bench_startup(runs: int) -> dict:
    """`--help` and `validate` against `python -c "import typer"`, interleaved, median of `runs`; and
    which heavy libraries each imports (from `python -X importtime`)."""
    cmds = {"import_typer": [sys.executable, "-c", "import typer"], "help": [*CUTOVER, "--help"],
            "validate": [*CUTOVER, "--plan", str(ROOT / "phases.yaml"), "validate"]}
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        run(cmd)  # warm the file cache
    for _ in range(runs):
        for name, cmd in cmds.items():
            walls[name].append(run(cmd)[0])
    med = {k: statistics.median(v) for k, v in walls.items()}
    out = {f"{k}_s": round(v, 3) for k, v in med.items()}
    for name in ("help", "validate"):
        out[f"{name}_ratio"] = round(med[name] / med["import_typer"], 2)
        out[f"{name}_heavy_imports"] = _heavy_imports(cmds[name][1:])
    out["runs"] = runs
    return out


def _heavy_imports(args: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT)
    top = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return sorted(top & set(HEAVY))


# --- 5. scale -------------------------------------------------------------------------------------------
SCALE_COMMANDS = {"validate": ["validate"], "status": ["status"], "advance --dry-run": ["advance", "--dry-run"],
                  "runbook": ["runbook", "--out", "-"], "guard bootstrap": ["guard", "bootstrap"]}


def bench_scale(emu: Emulator, sizes: tuple[int, ...]) -> dict:
    """Each command at each size, median of 3, process start to exit; a 1-flag plan gives each command's
    fixed cost, subtracted to show what each flag adds."""
    rows = []
    for n in (1, *sizes):
        alarms = max(1, n // 10)
        emu.reset()
        plan_path = plan_text(f"scale{n}", n, alarms, 10, write_rate=10)
        seed(emu, plan_path, None)
        env = env_for(emu.endpoint)
        row = {"flags": n, "alarms": alarms, "phases": min(10, n)}
        for label, args in SCALE_COMMANDS.items():
            reps = 5 if n == 1 else 3  # the fixed cost is subtracted from every size: measure it more often
            wall, proc = median_of([*CUTOVER, "--plan", plan_path, "--evidence-dir", str(WORK / "ev-scale"), *args], reps, env)
            row[label] = {"wall_s": round(wall, 3), "exit": proc.returncode}
        print(f"  scale {n:>5} flags  " + "  ".join(f"{k} {row[k]['wall_s']}" for k in SCALE_COMMANDS), file=sys.stderr)
        rows.append(row)
    fixed = rows[0]
    for row in rows[1:]:
        for label in SCALE_COMMANDS:
            added = row[label]["wall_s"] - fixed[label]["wall_s"]
            row[label]["per_flag_ms"] = round(added / (row["flags"] - 1) * 1000, 3)
    return {"fixed": fixed, "rows": rows[1:]}


# --- 6. a mixed plan: SSM and Lambda flags (the repo's Order Status plan) ---------------------------------
def bench_mixed(emu: Emulator) -> dict:
    from cutover.plan.load import load_plan
    from cutover.sandbox.emulator import OTHER_VARIABLES, function_environments, seed as seed_plan, set_flags

    plan_path = str(ROOT / "phases.yaml")
    plan = load_plan(plan_path)
    emu.reset()
    seed_plan(plan, emu)
    set_flags(plan, emu, plan.values_for("full"))  # every flag out of place
    evidence = WORK / "ev-mixed"
    with FaultProxy(emu.endpoint, Faults(write_quota=QUOTA)) as proxy:
        t0 = time.time()
        wall, proc = run([*CUTOVER, "--plan", plan_path, "--evidence-dir", str(evidence), "rollback", "--yes"],
                         env_for(proxy.endpoint))
        rollback_calls = dict(proxy.calls)
        proxy.calls.clear()
        _, status = run([*CUTOVER, "--plan", plan_path, "--evidence-dir", str(evidence), "status", "--check"],
                        env_for(proxy.endpoint))
        status_calls = dict(proxy.calls)
    envs = function_environments(plan, emu)
    flag_vars = {f.target.variable for f in plan.flags if f.kind == "lambda"}
    others_kept = all({k: v for k, v in env.items() if k not in flag_vars} == OTHER_VARIABLES for env in envs.values())
    confirmed = _confirm_times(evidence / "cutover.log.jsonl", t0)
    return {"plan": "phases.yaml", "ssm_flags": len(plan.ssm_flags), "lambda_flags": len(plan.flags) - len(plan.ssm_flags),
            "functions": len(plan.functions), "exit": proc.returncode, "wall_s": round(wall, 2),
            "rollback_calls": rollback_calls, "updates_per_function": rollback_calls.get("UpdateFunctionConfiguration", 0) / len(plan.functions),
            "kill_switch_confirmed_s": _round(confirmed.get(plan.flags[0].name)),
            "others_kept": others_kept, "status_exit": status.returncode, "status_calls": status_calls,
            "status_minimum": 1 + len(plan.functions) + 1}  # one GetParameters (flags, state, lock), one read per function, alarms




# --- run and render -------------------------------------------------------------------------------------
SECTIONS = ("rollback", "startup", "gates", "api", "scale", "mixed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="rollback at 12 and 48 flags, scale at 10 and 100")
    ap.add_argument("--sizes", help="rollback sizes, comma-separated (default 12,48,200,500)")
    ap.add_argument("--scale-sizes", help="scale sizes, comma-separated (default 10,100,500,2000)")
    ap.add_argument("--no-caps", action="store_true", help="run every alternative at every size (much longer)")
    ap.add_argument("--only", help=f"comma-separated sections among {','.join(SECTIONS)}; printed, docs/ left as they are")
    ap.add_argument("--render", action="store_true", help=f"only render {MD_OUT.name} from {JSON_OUT.name}")
    args = ap.parse_args(argv)
    if args.render:
        MD_OUT.write_text(render(json.loads(JSON_OUT.read_text())))
        return 0
    sizes = _ints(args.sizes) or (QUICK_SIZES if args.quick else SIZES)
    scale_sizes = _ints(args.scale_sizes) or (QUICK_SCALE_SIZES if args.quick else SCALE_SIZES)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    # As `pip install` does: byte-compiled modules. This machine sets PYTHONDONTWRITEBYTECODE, and an
    # editable install is never compiled, so every run would otherwise compile cutover from source.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "cutover")], check=True, capture_output=True)
    global WORK
    WORK = Path(tempfile.mkdtemp(prefix="cutover-bench-"))  # plans, name lists, evidence; removed at the end
    started = time.perf_counter()
    results = {"meta": _meta(sys.argv[1:] if argv is None else argv)}
    with Emulator(region=REGION) as emu:
        steps = {"rollback": lambda: bench_rollback(emu, sizes, capped=not args.no_caps),
                 "startup": lambda: bench_startup(7 if args.quick else 15), "gates": lambda: bench_gates(emu),
                 "api": lambda: bench_api(emu), "scale": lambda: bench_scale(emu, scale_sizes), "mixed": lambda: bench_mixed(emu)}
        for name in SECTIONS:
            if name in only:
                print(f"{name}...", file=sys.stderr)
                results[name] = steps[name]()
    shutil.rmtree(WORK, ignore_errors=True)
    results["meta"]["total_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.only:  # a partial run must not overwrite the committed figures of a whole one
        print(json.dumps(results, indent=2))
        print(render(results))
        return 0
    JSON_OUT.parent.mkdir(exist_ok=True)
    JSON_OUT.write_text(json.dumps(results, indent=2) + "\n")
    MD_OUT.write_text(render(results))
    print(MD_OUT.read_text())
    return 0


def _ints(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",")) if text else ()


def _meta(argv: list[str]) -> dict:
    import boto3
    import botocore

    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": platform.machine(),
            "cores": os.cpu_count(), "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "boto3": boto3.__version__, "botocore": botocore.__version__,
            "command": " ".join(["python scripts/bench.py", *argv]).strip(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def _cell(x) -> str:
    return "-" if x is None else str(x)


def render(r: dict) -> str:
    m = r["meta"]
    out = [
        "# Benchmarks", "",
        "Generated by `python scripts/bench.py` (raw numbers in `docs/benchmarks.json`; `--render` redraws this file",
        "from them); do not edit by hand.", "",
        f"- date: {m['date']}; command: `{m['command']}` (total {m.get('total_s', '?')} s)",
        f"- machine: {m['machine']}, {m['cores']} cores, Python {m['python']}, {m['system']}, boto3 {m['boto3']}, botocore {m['botocore']}",
        f"- **the machine was shared**: {m['cores']} cores with other work running (load average "
        f"{m['load_average_start'][0]} at the start, {m.get('load_average_end', ['?'])[0]} at the end); absolute times are noisy,",
        "  which is why every method's start-up is measured between the runs, under the same load",
        f"- AWS: moto server on 127.0.0.1; the write quota is cutover's fault proxy ({QUOTA} PutParameter in any 1 s window,",
        "  ThrottlingException beyond); cutover's modules byte-compiled first, as `pip install` leaves them", "",
    ]
    if "rollback" in r:
        out += _render_rollback(r["rollback"])
    if "startup" in r:
        out += _render_startup(r["startup"], r.get("rollback"))
    if "gates" in r:
        g = r["gates"]
        out += ["## 3. Gate concurrency", "",
                "8 HTTP checks against a local server answering each after 300 ms, plus an alarms gate (5 alarms) and a log gate;",
                "`run_gates` in-process (clients warm), median of 3.", "",
                "| checks | all passed | wall s | slowest check s | sum of checks s | wall / slowest |", "|---|---|---|---|---|---|",
                f"| {g['checks']} | {g['all_passed']} | {g['wall_s']} | {g['slowest_check_s']} | {g['sum_of_checks_s']} | {g['ratio']} |",
                "", "Target: wall at most 1.5 x the slowest check.", ""]
    if "api" in r:
        a = r["api"]
        out += ["## 4. API economy", "", "`cutover status` on a plan with 50 flags and 40 alarms; every call counted by the proxy.", "",
                "| exit | calls by operation | total | minimum | over minimum |", "|---|---|---|---|---|",
                f"| {a['exit']} | {_calls(a['calls'])} | {a['total']} | {a['minimum']} | {a['over_minimum']} |",
                "", "Minimum: 5 GetParameters for the flags, 1 DescribeAlarms, the state and lock reads (they ride in one "
                "GetParameters). Target: at most minimum + 2.", ""]
    if "scale" in r:
        out += _render_scale(r["scale"])
    if "mixed" in r:
        x = r["mixed"]
        out += ["## 6. A mixed plan: SSM and Lambda flags", "",
                f"The repo's `phases.yaml` ({x['ssm_flags']} SSM flags, {x['lambda_flags']} variables of {x['functions']} Lambda function), every flag",
                "out of place; `cutover rollback --yes` through the write quota, then `cutover status --check`; calls counted by the proxy.", "",
                "| exit | wall s | rollback calls | updates per function | kill switch confirmed s | other variables kept | status calls | status minimum |",
                "|---|---|---|---|---|---|---|---|",
                f"| {x['exit']} | {x['wall_s']} | {_calls(x['rollback_calls'])} | {x['updates_per_function']} | {x['kill_switch_confirmed_s']} | "
                f"{x['others_kept']} | {_calls(x['status_calls'])} | {x['status_minimum']} |",
                "", "Targets: one UpdateFunctionConfiguration per function; every other variable kept; status at most minimum + 2 calls.", ""]
    out += ["## Verdicts", "", "Each target with the measured figure; a miss is a miss.", ""] + [f"- {v}" for v in verdicts(r)] + [""]
    return "\n".join(out)


def _calls(calls: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))


def _render_rollback(rb: dict) -> list[str]:
    caps = ", ".join(f"{METHOD_TITLES[k]} up to {v}" for k, v in rb["capped_at"].items()) or "none"
    out = ["## 1. Rollback at the SSM write quota", "",
           "Every flag out of place (SSM parameters); each method is its own process, timed from spawn to exit, through a",
           f"fresh quota proxy. boto3's default retry mode here: {rb['retry_mode_default']}. AWS CLI: {rb['aws_cli'] or 'not installed: no AWS CLI loop'}.", "",
           "The bound on N flag writes at 3 per second: even pacing puts the last write (N-1)/3 s after the first; a bucket",
           "that allowed bursts of 3 would need floor((N-1)/3) s. The **honest minimum** adds the wall time of a minimal",
           "boto3 process (spawn, `import boto3`, a client, one PutParameter, exit), run before every method's run under the",
           "same load (the median per size). It leaves out any read-back, so a method that verifies its writes cannot reach 1.0.", "",
           "| flags | even pacing s | burst-3 s | minimal boto3 process s | its first write after spawn s | honest minimum s | burst-3 minimum s | load |",
           "|---|---|---|---|---|---|---|---|"]
    for s in rb["sizes"]:
        out.append(f"| {s['flags']} | {s['even_s']} | {s['burst_s']} | {s['boto3_process_s']} | {s['boto3_first_write_s']} | "
                   f"{s['honest_minimum_s']} | {s['burst_minimum_s']} | {s['load_average']} |")
    out += ["", "Per run: wall; its ratio to the honest minimum; PutParameter calls accepted (cutover's include its state",
            "record and lock); calls the quota refused; flags left wrong at the end (lost); when the kill switch (the first",
            "flag) was accepted by the proxy and when the method itself had confirmed it by reading it back, after spawn",
            "(\"-\": the method never reads back).", "",
            "| flags | method | exit | wall s | x honest minimum | writes | throttled | lost | kill switch written s | kill switch confirmed s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for x in rb["runs"]:
        out.append(f"| {x['flags']} | {METHOD_TITLES[x['method']]} | {x['exit']} | {x['wall_s']} | {x.get('ratio_to_honest_minimum')} | "
                   f"{x['writes']} | {x['throttled']} | {x['lost']} | {_cell(x['kill_switch_written_s'])} | {_cell(x['kill_switch_confirmed_s'])} |")
    out += ["", f"Sizes run per alternative (to keep a full run near 30 minutes): {caps}.", "",
            "Targets: cutover's wall at most 1.05 x the honest minimum at 48 and 200 flags; faster than every alternative that",
            "ends correct (exit 0, nothing lost); 0 lost, 0 throttled.", ""]
    return out


def _render_startup(s: dict, rb: dict | None) -> list[str]:
    out = ["## 2. Start-up", "", f"Interleaved runs, median of {s['runs']}; heavy libraries from `python -X importtime` "
           f"(any of {', '.join(HEAVY)}).", "",
           "| python -c 'import typer' s | cutover --help s | help ratio | help imports | cutover validate s | validate ratio | validate imports |",
           "|---|---|---|---|---|---|---|",
           f"| {s['import_typer_s']} | {s['help_s']} | {s['help_ratio']} | {', '.join(s['help_heavy_imports']) or 'none'} | "
           f"{s['validate_s']} | {s['validate_ratio']} | {', '.join(s['validate_heavy_imports']) or 'none'} |", ""]
    first = _first_writes(rb) if rb else []
    if first:
        out += ["A rollback's first write: spawn to the proxy applying the kill switch (the plan's first flag), against",
                "the minimal boto3 process's one write; medians of interleaved pairs (each cutover run stopped once its first",
                "write is applied). cutover reads the state record, the lock and the first flags in one call before it.", "",
                "| flags | pairs | cutover rollback s | minimal boto3 process s | ratio | kill switch first |", "|---|---|---|---|---|---|"]
        out += [f"| {f['flags']} | {f['pairs']} | {f['cutover']} | {f['boto3']} | {f['ratio']} | {f['kill_switch_first']} of {f['pairs']} |"
                for f in first] + [""]
    out += ["Targets: --help at most 1.5 x and validate at most 2 x `import typer`, neither importing a heavy library;",
            "a rollback's first write at most 1.2 x the minimal boto3 process's.", ""]
    return out


def _first_writes(rb: dict) -> list[dict]:
    """Per size: cutover's kill switch accepted after spawn, against the minimal boto3 process's one write."""
    out = []
    for s in rb["sizes"]:
        f = s.get("first_write")
        if f and f["cutover_s"] is not None:
            out.append({"flags": s["flags"], "pairs": f["pairs"], "cutover": f["cutover_s"], "boto3": f["boto3_s"],
                        "ratio": round(f["cutover_s"] / f["boto3_s"], 2), "kill_switch_first": f["kill_switch_first"]})
    return out


def _render_scale(sc: dict) -> list[str]:
    labels = list(SCALE_COMMANDS)
    f = sc["fixed"]
    out = ["## 5. Scale", "",
           "Generated plans (10 phases, one alarms check over flags/10 alarms, write rate 10); each command from process",
           "start to exit, median of 3 (of 5 for the 1-flag plan). A 1-flag plan gives each command's fixed cost (start-up,",
           "imports, AWS clients); per flag = (wall - fixed) / (flags - 1), noise at 10 flags. Linear growth shows as a flat",
           "per-flag cost.", "",
           "| flags | " + " | ".join(f"{k} s (per flag ms)" for k in labels) + " |", "|---|" + "---|" * len(labels),
           f"| fixed (1 flag) | " + " | ".join(f"{f[k]['wall_s']}" + ("" if f[k]['exit'] == 0 else f" exit {f[k]['exit']}") for k in labels) + " |"]
    for row in sc["rows"]:
        out.append(f"| {row['flags']} | " + " | ".join(
            f"{row[k]['wall_s']} ({row[k]['per_flag_ms']})" + ("" if row[k]["exit"] == 0 else f" exit {row[k]['exit']}") for k in labels) + " |")
    out += ["", "`runbook` is `runbook --out -`; `guard bootstrap` renders the guard's CloudFormation template (no AWS calls);",
            "a non-zero exit is shown beside its time: `guard bootstrap` exits 2 from 100 flags on (the guard's automation",
            "role policy would pass IAM's 10,240 characters), so from there its time is that of the refusal.", "",
            "Target: time grows linearly with size (the per-flag cost at the largest size at most 1.5 x that at the one before).", ""]
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def verdicts(r: dict) -> list[str]:
    """Each target, met or missed, from the numbers above."""
    out = []
    if "rollback" in r:
        out += _rollback_verdicts(r["rollback"])
    if "startup" in r:
        s = r["startup"]
        for name, target in (("help", 1.5), ("validate", 2.0)):
            heavy = s[f"{name}_heavy_imports"]
            out.append(f"start-up, {name}: {s[f'{name}_ratio']} x `import typer` ({s[f'{name}_s']} s against {s['import_typer_s']} s), "
                       f"target {target}: {_met(s[f'{name}_ratio'] <= target)}; heavy imports: {', '.join(heavy) or 'none'}")
        for f in _first_writes(r["rollback"]) if "rollback" in r else []:
            out.append(f"start-up, rollback of {f['flags']} flags, first write: {f['cutover']} s after spawn against {f['boto3']} s "
                       f"for a minimal boto3 process, {f['ratio']} x, target 1.2: {_met(f['ratio'] <= 1.2)}")
    if "gates" in r:
        g = r["gates"]
        out.append(f"gate concurrency: {g['ratio']} x the slowest check, target 1.5: {_met(g['ratio'] <= 1.5)}")
    if "api" in r:
        a = r["api"]
        out.append(f"API economy: {a['total']} calls, minimum {a['minimum']}, target minimum + 2: {_met(a['over_minimum'] <= 2)}")
    if "scale" in r:
        rows = r["scale"]["rows"]
        if len(rows) >= 2:
            before, last = rows[-2], rows[-1]
            for label in SCALE_COMMANDS:
                a, b = before[label]["per_flag_ms"], last[label]["per_flag_ms"]
                linear = b <= max(a, 0.05) * 1.5  # below 0.05 ms a flag, the difference is noise
                exits = {row[label]["exit"] for row in rows}
                out.append(f"scale, {label}: {a} ms a flag at {before['flags']} flags, {b} at {last['flags']}: "
                           f"{'linear' if linear else 'SUPERLINEAR'}" + ("" if exits == {0} else f" (exit codes {sorted(exits)})"))
    if "mixed" in r:
        m = r["mixed"]
        ok = m["updates_per_function"] == 1 and m["others_kept"] and m["exit"] == 0
        out.append(f"mixed plan: {m['updates_per_function']} update(s) per function, other variables kept: {m['others_kept']}, "
                   f"exit {m['exit']}: {_met(ok)}")
        total = sum(m["status_calls"].values())
        out.append(f"mixed plan status: {total} calls, minimum {m['status_minimum']}: {_met(total <= m['status_minimum'] + 2)}")
    return out


def _rollback_verdicts(rb: dict) -> list[str]:
    out = []
    honest = {s["flags"]: s["honest_minimum_s"] for s in rb["sizes"]}
    for n in honest:
        runs = {x["method"]: x for x in rb["runs"] if x["flags"] == n}
        mine = runs.get("cutover")
        if mine is None:
            continue
        correct = mine["exit"] == 0 and mine["lost"] == 0
        out.append(f"rollback, {n} flags: {mine['wall_s']} s, {mine['ratio_to_honest_minimum']} x the honest minimum "
                   f"({honest[n]} s)" + (f", target 1.05: {_met(mine['ratio_to_honest_minimum'] <= 1.05)}" if n in (48, 200) else "")
                   + f"; {mine['lost']} lost, {mine['throttled']} throttled: {_met(correct and mine['throttled'] == 0)}")
        rivals = {k: x for k, x in runs.items() if k != "cutover" and x["exit"] == 0 and x["lost"] == 0}
        faster = sorted(f"{METHOD_TITLES[k]} {x['wall_s']} s" for k, x in rivals.items() if x["wall_s"] <= mine["wall_s"])
        wrong = sorted(f"{METHOD_TITLES[k]} (lost {x['lost']}, exit {x['exit']})" for k, x in runs.items()
                       if k != "cutover" and not (x["exit"] == 0 and x["lost"] == 0))
        out.append(f"rollback, {n} flags: faster than every alternative that ends correct: {_met(not faster)}"
                   + (f" (faster: {', '.join(faster)})" if faster else "")
                   + (f"; not correct: {', '.join(wrong)}" if wrong else ""))
    return out


if __name__ == "__main__":
    sys.exit(main())
