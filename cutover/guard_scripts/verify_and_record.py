import json
from datetime import datetime, timezone

import boto3
from botocore.config import Config

CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
RECORD_LIMIT = 4096  # bytes: an SSM standard parameter


def handler(events, context):
    ssm = boto3.client("ssm", config=CONFIG)
    live = still_live(ssm, boto3.client("lambda", config=CONFIG), [entry(f) for f in events["Flags"]])
    record = dict(events["Record"], updated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if live:
        record.update(phase=recorded_phase(ssm, events["StateParameter"]), status="rolling_back", target="rolled_back",
                      reason=record["reason"] + ": UNFINISHED, still live: " + ", ".join(live))
    else:
        record["entered_at"] = record["updated_at"]
    problems = []
    try:
        ssm.put_parameter(Name=events["StateParameter"], Value=fit(record), Type="String", Overwrite=True)
    except Exception as err:  # the topic is still told
        problems.append(f"the state record was not written ({type(err).__name__}: {err})")
    told = tell(events, record, live)
    if live or problems:
        raise RuntimeError(f"rollback UNFINISHED: {len(live)} flag(s) still live: {', '.join(live) or 'none'}; "
                           + "; ".join([*problems, told]) + "; run `cutover rollback` to finish it")
    return {"Restored": len(events["Flags"]), "Notified": told}


def entry(flag):
    """A flag to check: a mapping, or in a compact document [flag, parameter, value] (+ "SecureString")."""
    if isinstance(flag, dict):
        return flag
    name, parameter, value, *kind = flag
    return {"Label": f"{name} ({parameter})", "Parameter": parameter, "Value": value, "Type": kind[0] if kind else "String"}


def still_live(ssm, lam, flags):
    """Labels of the flags not at their rollback values (or that cannot be read back), in rollback order."""
    names = [f["Parameter"] for f in flags if "Parameter" in f]
    params, unread = {}, {}
    for i in range(0, len(names), 10):
        try:
            for p in ssm.get_parameters(Names=names[i:i + 10], WithDecryption=True)["Parameters"]:
                params[p["Name"]] = p
        except Exception as err:
            unread.update((n, type(err).__name__) for n in names[i:i + 10])
    envs = {}
    for fn in dict.fromkeys(f["Function"] for f in flags if "Function" in f):
        try:
            env = lam.get_function_configuration(FunctionName=fn).get("Environment") or {}
            envs[fn] = None if env.get("Error") else env.get("Variables") or {}
        except Exception:
            envs[fn] = None
    out = []
    for f in flags:
        if "Parameter" in f:
            p = params.get(f["Parameter"]) or {}
            ok = p.get("Value") == f["Value"] and (f.get("Type") != "SecureString" or p.get("Type") == "SecureString")
            why = f" (not read back: {unread[f['Parameter']]})" if f["Parameter"] in unread else ""
        else:
            env = envs[f["Function"]]
            ok = env is not None and env.get(f["Variable"]) == f["Value"]
            why = " (its environment cannot be read)" if env is None else ""
        if not ok:
            out.append(f["Label"] + why)
    return out


def recorded_phase(ssm, name):
    """The phase the record names now: the unfinished rollback is from there (pending if unreadable)."""
    try:
        return json.loads(ssm.get_parameters(Names=[name])["Parameters"][0]["Value"])["phase"]
    except Exception:
        return "pending"


def fit(record):
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > RECORD_LIMIT:  # the plan's fingerprints are a convenience; then cut the reason
        record.pop("plan_items", None)
        record["reason"] = record["reason"][:1000]
        text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return text


def tell(events, record, live):
    """One message to the plan's SNS topic: names and places only, never a value."""
    topic = events.get("Topic")
    if not topic:
        return "no topic to tell"
    if live:
        subject = f"cutover {record['plan']}: guard rollback UNFINISHED, {len(live)} flag(s) still live"
        lines = [f"The guard fired (alarm {events['Alarm']}) and rolled back, but these flags are still live "
                 "(not at their rollback values):", *(f"  - {label}" for label in live),
                 "Finish it now: cutover rollback --yes --reason \"guard unfinished\"; cutover status shows each flag."]
    else:
        subject = f"cutover {record['plan']}: guard ROLLED BACK"
        lines = [f"The guard fired (alarm {events['Alarm']}): all {len(events['Flags'])} flag(s) read back at their "
                 "rollback values; the state is recorded rolled_back."]
    lines.append(f"plan: {record['plan']} (sha256 {record['plan_digest'][:12]}), automation execution {record['run_id']}")
    try:
        boto3.client("sns", config=CONFIG).publish(TopicArn=topic, Subject=subject[:100], Message="\n".join(lines))
        return f"told {topic}"
    except Exception as err:
        return f"could not tell {topic} ({type(err).__name__})"
