"""The guard's SSM step: write several flags, in order, each one attempted even when another fails.

One step per batch of SSM flags keeps the document within 64 KB (one step per flag does not fit at a few
hundred flags). botocore's adaptive retries pace the writes to the quota; the step fails, naming every
flag not written, once all were attempted (the next steps still run: onFailure Continue). Each flag is
[parameter, value], or [parameter, value, "SecureString"].
"""

import boto3
from botocore.config import Config

CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})


def handler(events, context):
    ssm, failed = boto3.client("ssm", config=CONFIG), []
    for name, value, *kind in events["Parameters"]:
        try:
            ssm.put_parameter(Name=name, Value=value, Type=kind[0] if kind else "String", Overwrite=True)
        except Exception as err:
            failed.append(f"{name} ({type(err).__name__})")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(events['Parameters'])} flag(s) not written: {', '.join(failed)}")
    return {"Written": len(events["Parameters"])}
