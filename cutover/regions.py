"""AWS Region names, checked before any AWS call: a misspelt region otherwise costs a DNS failure and
every retry (minutes), or an emulator's 500s.

Two checks. The shape (`us-east-2`, `us-gov-west-1`, `eusc-de-east-1`) is always required. A well-shaped
name must also be one the installed botocore lists in its partition data, unless
CUTOVER_ALLOW_UNKNOWN_REGION=1: the way through for a region newer than the installed botocore.
The partition data is read as a file, without importing botocore, so `validate` stays quick.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import os
import re
from pathlib import Path

SHAPE = r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$"
ALLOW_UNKNOWN = "CUTOVER_ALLOW_UNKNOWN_REGION"
_SHAPE = re.compile(SHAPE)


@functools.lru_cache(maxsize=1)
def known() -> frozenset[str]:
    """Every region in botocore's partitions.json; empty when it cannot be found (then only the shape counts)."""
    spec = importlib.util.find_spec("botocore")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    try:
        data = json.loads((Path(spec.submodule_search_locations[0]) / "data" / "partitions.json").read_text("utf-8"))
        return frozenset(r for p in data["partitions"] for r in p["regions"] if _SHAPE.fullmatch(r))
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def problem(region: str) -> tuple[str, str] | None:
    """None for a usable region name; otherwise (what is wrong, the fix), to be prefixed with where it came from."""
    if not _SHAPE.fullmatch(region):
        shown = region if region.isprintable() and region.strip() == region else repr(region)
        return f"{shown} is not an AWS region name", "region names look like us-east-2, eu-west-1 or us-gov-west-1"
    names = known()
    if not names or region in names or os.environ.get(ALLOW_UNKNOWN) == "1":
        return None
    close = difflib.get_close_matches(region, sorted(names), n=3, cutoff=0.6)
    return (f"{region} is not a known AWS region" + (f" (closest: {', '.join(sorted(close))})" if close else ""),
            f"check the spelling; if {region} is a new region, upgrade boto3 (pip install -U boto3) "
            f"or set {ALLOW_UNKNOWN}=1")
